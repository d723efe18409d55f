"""`phasegrid data list | locate | download`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.common import data_app, fail, out


@data_app.command("list")
def data_list(
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir", help="Look here first (else $PHASEGRID_DATA, the cache, system dirs)."
        ),
    ] = None,
) -> None:
    """Which datasets are available here, from where, and how to get the others."""
    from tasks.data import available_datasets

    table = Table(title="datasets")
    for column in ("name", "available", "source", "examples", "how to get it"):
        table.add_column(column)
    for info in available_datasets(data_dir):
        table.add_row(
            info.name,
            "yes" if info.available else "no",
            info.source,
            "unlimited" if info.n_examples is None else str(info.n_examples),
            info.how_to_get,
        )
    out.print(table)


@data_app.command("locate")
def data_locate(
    name: str, data_dir: Annotated[str | None, typer.Option("--data-dir")] = None
) -> None:
    """Where dataset NAME would be read from."""
    from tasks.data import DatasetNotFoundError, locate_dataset

    try:
        out.print(locate_dataset(name, data_dir), markup=False, highlight=False)
    except (DatasetNotFoundError, ValueError) as error:
        fail(f"error: {error}", 2)


@data_app.command("download")
def data_download(
    name: str,
    dest: Annotated[
        str | None,
        typer.Option(
            "--dest", help="Directory to download into (default: the phasegrid cache dir)."
        ),
    ] = None,
) -> None:
    """Download dataset NAME's canonical files (checksums verified) where phasegrid looks."""
    from pipeline.drivers.download import download_dataset
    from tasks.data_files import cache_dir

    try:
        report = download_dataset(name, dest or cache_dir())
    except ValueError as error:
        fail(f"error: {error}", 2)
    except OSError as error:
        fail(f"error: download of {name} failed ({error}); are you online?", 1)
    out.print(
        f"{name}: {report.directory} (downloaded {len(report.downloaded)}, "
        f"already there {len(report.present)})",
        markup=False,
        highlight=False,
    )
