"""`phasegrid`: the command line (typer). Thin: parse, call a pipeline function, print.

Commands: run, resume, status, data (list / locate / download). Other modules add
commands by importing `app` and decorating, or by a line at the bottom of this file.
Exit codes: 0 success (failed cells are results too: recorded, shown by `status`, re-run
by `resume`), 1 runtime failure (Ray, store, lock), 2 bad input (invalid spec,
no campaign at the path, unknown dataset), 130 interrupted.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Phase-diagram campaigns for deep learning: run a grid of trainings on "
    "Ray, store them in Parquet, resume, inspect.",
)
data_app = typer.Typer(no_args_is_help=True, help="Datasets: which are here, where, download.")
app.add_typer(data_app, name="data")
out, err = Console(), Console(stderr=True)

Address = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster address (default: $RAY_ADDRESS, else embedded Ray here)."
    ),
]
Campaign = Annotated[str, typer.Argument(help="Campaign directory or URI, e.g. results/demo.")]


def fail(message: str, code: int) -> None:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def _run_guarded(title: str, action, again: str = "phasegrid resume <campaign>") -> None:
    """Run `action(progress)` under a progress bar, mapping known errors to exit codes;
    `again` is the command that continues after an interrupt."""
    from pipeline.execute.progress import CellProgress
    from pipeline.execute.ray_session import RayConnectError
    from pipeline.spec.campaign import SpecError
    from pipeline.store.campaign_store import CampaignLockedError, CampaignNotFoundError

    try:
        with CellProgress(title, console=err) as progress:
            summary = action(progress)
    except (SpecError, CampaignNotFoundError) as error:
        fail(f"error: {error}", 2)
    except (CampaignLockedError, RayConnectError) as error:
        fail(f"error: {error}", 1)
    except KeyboardInterrupt:
        fail(f"interrupted: finished cells are stored; continue with `{again}`", 130)
    out.print(summary.describe(), markup=False, highlight=False)
    out.print(
        f"tables: {summary.campaign}/{{cells,measurements,predictions,kernels}} "
        f"(pipeline.load_results({summary.campaign!r}))",
        markup=False,
        highlight=False,
    )
    if summary.failed:
        out.print(
            f"{summary.failed} cells failed: `phasegrid status {summary.campaign}` "
            f"shows why, `phasegrid resume {summary.campaign}` re-runs them",
            markup=False,
            highlight=False,
        )


@app.command()
def run(
    spec: Annotated[str, typer.Argument(help="Campaign spec (TOML).")],
    store: Annotated[
        str,
        typer.Option(
            "--store",
            help="Where campaigns live (a directory or URI); the campaign is STORE/<name>.",
        ),
    ] = "results",
    address: Address = None,
) -> None:
    r"""Run a campaign: every cell of SPEC without a done record (a grown grid runs only the
    new cells); then, if SPEC has a \[refine] section, refine that boundary."""
    from pipeline.drivers.refine import run_and_refine

    _run_guarded("cells", lambda progress: run_and_refine(spec, store, address, progress))


@app.command()
def resume(
    campaign: Campaign,
    address: Address = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Read every file in full for damage first (default: only the files new or "
            "changed since they were last read in full).",
        ),
    ] = False,
) -> None:
    """Re-run the failed, interrupted and missing cells of a stored campaign."""
    from pipeline.drivers.run import resume_campaign

    _run_guarded("cells", lambda progress: resume_campaign(campaign, address, progress, deep=deep))


@app.command()
def status(
    campaign: Campaign,
    live: Annotated[
        str | None,
        typer.Option(
            "--live",
            help="Show the measurements streamed so far by this running cell "
            "(a cell_id or its prefix).",
        ),
    ] = None,
) -> None:
    """Done / failed / running / pending cells, and why cells failed."""
    from pipeline.drivers.status import campaign_status
    from pipeline.store.campaign_store import CampaignNotFoundError

    try:
        state = campaign_status(campaign)
    except CampaignNotFoundError as error:
        fail(f"error: {error}", 2)
    counts = Table(title=campaign)
    for column in ("cells", "done", "failed", "running", "pending"):
        counts.add_column(column, justify="right")
    counts.add_row(
        *(str(v) for v in (state.total, state.done, state.failed, state.running, state.pending))
    )
    out.print(counts)
    if len(state.failures):
        failures = Table(title="failed cells")
        for column in state.failures.columns:
            failures.add_column(column)
        for row in state.failures.itertuples(index=False):
            failures.add_row(*(str(v) for v in row))
        out.print(failures)
    _print_health(campaign, state)
    _print_brackets(campaign)
    if live is not None:
        _print_live(campaign, live)


def _print_health(campaign: str, state) -> None:
    """Done cells per stop reason (a diverged cell shows as nan), and unreadable files."""
    if state.stop_reasons:
        reasons = Table(title="done cells by stop reason")
        for reason in state.stop_reasons:
            reasons.add_column(reason, justify="right")
        reasons.add_row(*(str(n) for n in state.stop_reasons.values()))
        out.print(reasons)
    if state.stalled is not None and len(state.stalled):
        stalled = Table(title=f"stalled cells ({len(state.stalled)})")
        for column in state.stalled.columns:
            stalled.add_column(column)
        for row in state.stalled.itertuples(index=False):
            stalled.add_row(*(str(v) for v in row))
        out.print(stalled)
        from pipeline.drivers.status import STALL_FIX

        err.print(STALL_FIX, markup=False, highlight=False)
    for bad in state.corrupt:
        err.print(f"corrupt: {bad.describe(campaign)}", markup=False, highlight=False)
    if state.corrupt:
        err.print(
            f"{len(state.corrupt)} unreadable files: `phasegrid resume {campaign}` moves "
            f"them to {campaign}/_quarantine/ and runs their cells again",
            markup=False,
            highlight=False,
        )


def _print_brackets(campaign: str) -> None:
    """Per boundary point: its bracket and whether it is resolved (drivers/refine_status)."""
    from pipeline.drivers.refine_status import bracket_table, campaign_brackets

    rows = bracket_table(campaign_brackets(campaign))
    if len(rows):
        table = Table(title="boundary brackets")
        for column in rows.columns:
            table.add_column(column)
        for row in rows.itertuples(index=False):
            table.add_row(*row)
        out.print(table)


def _print_live(campaign: str, cell: str) -> None:
    from pipeline.store.campaign_store import ParquetStore

    rows = ParquetStore.open(campaign).read_live().to_pandas()
    rows = rows.loc[rows.cell_id.str.startswith(cell)]
    if rows.empty:
        fail(
            f"no live measurements for cell {cell!r}: it is not running (done cells are in "
            f"{campaign}/measurements)",
            1,
        )
    table = Table(title=f"live: cell {rows.cell_id.iloc[0]}, attempt {rows.attempt_id.iloc[0]}")
    columns = ["step", "flow_time", "train_loss", "n_unsatisfied", "test_error", "wall_seconds"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows.sort_values("step")[columns].itertuples(index=False):
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


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


# Commands of other modules register here, e.g. `app.command("aggregate")(aggregate_command)`.


@app.command()
def aggregate(campaign: Campaign) -> None:
    """Write CAMPAIGN/ensembles and CAMPAIGN/boundaries from the cells done so far (also
    while the campaign runs; failed cells are left out and counted)."""
    from pipeline.drivers.aggregate import aggregate_campaign
    from pipeline.store.campaign_store import CampaignNotFoundError

    try:
        report = aggregate_campaign(campaign)
    except CampaignNotFoundError as error:
        fail(f"error: {error}", 2)
    out.print(report.summary(), markup=False, highlight=False)
    if not report.tables_written:
        out.print("nothing written yet: no cell is done", markup=False, highlight=False)


@app.command()
def compact(campaign: Campaign) -> None:
    """Rewrite the per-cell files of CAMPAIGN's done cells into a few large sorted files
    (run and resume do this themselves when every cell is done, unless [resources]
    compact_when_done = false). New cells keep landing beside them."""
    from pipeline.drivers.compact import compact_campaign
    from pipeline.store.campaign_store import CampaignLockedError, CampaignNotFoundError
    from pipeline.store.compaction import CompactionError

    try:
        report = compact_campaign(campaign)
    except CampaignNotFoundError as error:
        fail(f"error: {error}", 2)
    except (CampaignLockedError, CompactionError) as error:
        fail(f"error: {error}", 1)
    out.print(report.describe(), markup=False, highlight=False)


@app.command()
def plot(
    campaign: Campaign,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="File format, repeatable (default: png and pdf)."),
    ] = None,
    figures: Annotated[
        list[str] | None,
        typer.Option("--figure", help="Only this figure, repeatable (default: all)."),
    ] = None,
) -> None:
    """Draw the paper's figures into CAMPAIGN/figures/; a figure whose data the campaign
    lacks is skipped with the reason."""
    from pipeline.drivers.plot import plot_campaign
    from pipeline.store.campaign_store import CampaignNotFoundError

    try:
        outcomes = plot_campaign(campaign, tuple(formats or ("png", "pdf")), figures)
    except (CampaignNotFoundError, ValueError) as error:
        fail(f"error: {error}", 2)
    for outcome in outcomes:
        out.print(outcome.summary(), markup=False, highlight=False)


@app.command()
def refine(
    campaign: Campaign,
    boundary: Annotated[
        str | None,
        typer.Option(
            "--boundary",
            help="crossover (ntk_change = c, bisecting log alpha_tilde at each "
            "width) or jamming (fitted fraction = 1/2, bisecting log h at "
            "each alpha_tilde). Default: the spec's [refine].",
        ),
    ] = None,
    level: Annotated[
        float | None,
        typer.Option(
            "--level", help="c of the crossover (default 1), or the jamming fraction (default 0.5)."
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Stop when each boundary point is bracketed within this "
            "factor (default 1.25; jamming also stops at adjacent "
            "widths).",
        ),
    ] = None,
    max_cells: Annotated[
        int | None,
        typer.Option("--max-cells", help="Cap on the campaign's cells, coarse grid included."),
    ] = None,
    address: Address = None,
) -> None:
    """Add grid points (all seeds each) where a phase boundary lies, round by round, until
    each of its points is bracketed within the tolerance or --max-cells is reached. Run it
    again to continue after an interrupt."""
    from pipeline.drivers.refine import RefineTargetError, refine_on_ray

    again = f"phasegrid refine {campaign}" + (f" --boundary {boundary}" if boundary else "")
    try:
        _run_guarded(
            "refine",
            lambda progress: refine_on_ray(
                campaign, boundary, level, tolerance, max_cells, address, progress
            ),
            again,
        )
    except RefineTargetError as error:
        fail(f"error: {error}", 2)
