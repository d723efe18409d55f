"""`phasegrid status` and `phasegrid logs`: what a campaign holds, for people and scripts."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli.common import Campaign, app, err, fail, out
from pipeline.cli.guard import BAD_INPUT, resume_line


def status_json(state: Any) -> dict[str, Any]:
    """`status --json`: the counts, stop reasons, failures, running and unreadable files."""
    from pipeline.store.quarantine import corrupt_report

    return {
        "campaign": state.campaign,
        **{k: getattr(state, k) for k in ("total", "done", "failed", "running", "pending")},
        "stop_reasons": state.stop_reasons,
        "failures": state.failures.to_dict("records"),
        "running_cells": list(state.running_cells),
        "corrupt": corrupt_report(list(state.corrupt)),
        "spec_problem": state.spec_problem,
    }


@app.command()
def logs(
    campaign: Campaign,
    cell: Annotated[str, typer.Argument(help="The cell's id, or a unique prefix of it.")],
    last: Annotated[int, typer.Option("--last", help="How many measurements to show.")] = 10,
) -> None:
    """One cell: its record, its full error, and its last measurements."""
    from pipeline.drivers.cell_log import UnknownCellError, cell_log
    from pipeline.store.campaign_store import CampaignNotFoundError

    try:
        log = cell_log(campaign, cell, last)
    except (CampaignNotFoundError, UnknownCellError) as error:
        fail(f"error: {error}", BAD_INPUT)
    record = {k: v for k, v in log.record.items() if k != "error"}
    out.print(f"cell {log.cell_id}: {log.status}", markup=False, highlight=False)
    for key, value in record.items():
        out.print(f"  {key} = {value}", markup=False, highlight=False, soft_wrap=True)
    if log.record.get("error"):
        out.print("error:", markup=False)
        out.print(log.record["error"], markup=False, highlight=False, soft_wrap=True)
    table = Table(title=f"last {len(log.measurements)} measurements")
    for column in log.measurements.columns:
        table.add_column(column, justify="right")
    for row in log.measurements.itertuples(index=False):
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the state as one JSON object (for scripts).")
    ] = False,
) -> None:
    """Done / failed / running / pending cells, and why cells failed."""
    from pipeline.drivers.status import campaign_status
    from pipeline.store.campaign_store import CampaignNotFoundError

    try:
        state = campaign_status(campaign)
    except CampaignNotFoundError as error:
        fail(f"error: {error}", 2)
    if as_json:
        out.print_json(json.dumps(status_json(state), default=str))
        return
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
    if not state.spec_problem and not any(c.table == "manifest" for c in state.corrupt):
        _print_brackets(campaign)  # reads the spec and manifest: not while they are damaged
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
    if state.spec_problem:
        err.print(
            f"damaged: {state.spec_problem}; `{resume_line(campaign)}` rebuilds it from spec.toml",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
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
