"""What every command shares: the typer apps, the consoles, option types, `fail`."""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from pipeline.cli.guard import EXIT_CODES_HELP, OK

LOG_WIDTH = 250
CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion; see cli/completion.py
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
    help="Phase-diagram campaigns for deep learning: run a grid of trainings on "
    "Ray, store them in Parquet, resume, inspect.\n\n" + EXIT_CODES_HELP,
)
data_app = typer.Typer(
    no_args_is_help=True,
    context_settings=CONTEXT,
    help="Datasets: which are here, where, download.",
)
app.add_typer(data_app, name="data")
# Not a terminal (a log file, a pipe): tables at full width instead of rich's 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=LOG_WIDTH)

Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address HOST:PORT (default: $RAY_ADDRESS, else embedded Ray here); "
        "it must answer within $PHASEGRID_ADDRESS_TIMEOUT_S (default 15) seconds.",
    ),
]
Campaign = Annotated[str, typer.Argument(help="Campaign directory or URI, e.g. results/demo.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"phasegrid {metadata.version('phasegrid')}", markup=False, highlight=False)
        raise typer.Exit(OK)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Phase-diagram campaigns for deep learning (see `phasegrid -h`)."""


def fail(message: str, code: int) -> NoReturn:
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)
