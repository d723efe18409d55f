"""`phasegrid`: the command line (typer). Thin: parse, call a pipeline function, print.

Commands: run, resume, status, logs, aggregate, compact, plot, refine, data (list / locate /
download), completion.
Exit codes and signals: pipeline/cli/guard.py (0 done, 1 runtime failure, 2 bad input
before anything is written, 3 failed or stalled cells, 130 SIGINT, 143 SIGTERM).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Annotated, Any

import typer

from pipeline.cli import completion, data, guard, inspect
from pipeline.cli.common import Address, Campaign, app, err, fail, out


def _run_guarded(title: str, action: Callable[[Any], Any], again: str) -> None:
    """Run `action(progress)` under a progress bar, mapping known errors to exit codes
    (pipeline/cli/guard.py); `again` is the command that continues after a stop."""
    from pipeline.drivers.settings import SettingsChangedError
    from pipeline.execute.feasibility import InfeasibleRunError
    from pipeline.execute.progress import CellProgress
    from pipeline.execute.ray_session import RayConnectError
    from pipeline.spec.campaign import SpecError
    from pipeline.store.campaign_store import CampaignLockedError, CampaignNotFoundError

    try:
        with guard.sigterm_as_exception(), CellProgress(title, console=err) as progress:
            summary = action(progress)
    except (SpecError, CampaignNotFoundError, InfeasibleRunError, SettingsChangedError) as error:
        fail(f"error: {error}", guard.BAD_INPUT)
    except (CampaignLockedError, RayConnectError) as error:
        fail(f"error: {error}", guard.RUNTIME_FAILURE)
    except KeyboardInterrupt:
        fail(guard.stopped_message("interrupted", again), guard.INTERRUPTED)
    except guard.Terminated:
        fail(guard.stopped_message("terminated (SIGTERM)", again), guard.TERMINATED)
    _print_summary(summary)
    if summary.failed or getattr(summary, "stalled", ()):
        raise typer.Exit(guard.CELLS_FAILED)


def _print_summary(summary: Any) -> None:
    def say(text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    say(summary.describe())
    say(
        f"tables: {summary.campaign}/{{cells,measurements,predictions,kernels}} "
        f"(pipeline.load_results({summary.campaign!r}))"
    )
    if summary.failed:
        say(
            f"{summary.failed} cells failed: `phasegrid status {summary.campaign}` "
            f"shows why, `{guard.resume_line(summary.campaign)}` re-runs them"
        )


def _load_spec(spec: str, overrides: list[str] | None = None) -> tuple[Any, str]:
    """The spec (with `--set` overrides) and its TOML, or exit 2 before anything starts
    (no progress bar)."""
    from pipeline.drivers.sources import load_resolved_campaign_text
    from pipeline.spec.campaign import SpecError

    try:
        return load_resolved_campaign_text(spec, overrides=overrides or ())
    except SpecError as error:
        fail(f"error: {error}", guard.BAD_INPUT)


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
    add_settings_group: Annotated[
        bool,
        typer.Option(
            "--add-settings-group",
            help="SPEC changes fixed settings of the stored campaign (e.g. max_steps): add its "
            "cells as a further settings group (aggregated apart) instead of refusing.",
        ),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a spec key, KEY=VALUE with a TOML value (e.g. flow.max_steps=150); "
            "repeatable; recorded in the stored spec.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check everything and print the cells (new / done), tasks and a cost bound "
            "from the budgets; write nothing, start no Ray.",
        ),
    ] = False,
) -> None:
    r"""Run a campaign: every cell of SPEC without a done record (a grown grid runs only the
    new cells); then, if SPEC has a \[refine] section, refine that boundary. Checks the
    spec, data, device, resources, store and --address first (exit 2, nothing written)."""
    from pipeline.drivers.refine import run_and_refine
    from pipeline.store.location import join_uri

    campaign, toml_text = _load_spec(spec, overrides)
    if dry_run:
        _dry_run(campaign, store, address, add_settings_group)
        return
    again = guard.resume_line(join_uri(store, campaign.name), address)
    _run_guarded(
        "cells",
        lambda progress: run_and_refine(
            campaign, toml_text, store, address, progress, add_settings_group
        ),
        again,
    )


def _dry_run(spec: Any, store: str, address: str | None, add_settings_group: bool) -> None:
    from pipeline.drivers.dry_run import dry_run
    from pipeline.drivers.settings import SettingsChangedError
    from pipeline.execute.feasibility import InfeasibleRunError

    try:
        plan = dry_run(spec, store, address, add_settings_group)
    except (InfeasibleRunError, SettingsChangedError) as error:
        fail(f"error: {error}", guard.BAD_INPUT)
    out.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)


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

    _run_guarded(
        "cells",
        lambda progress: resume_campaign(campaign, address, progress, deep=deep),
        guard.resume_line(campaign, address),
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
    r"""Rewrite the per-cell files of CAMPAIGN's done cells into a few large sorted files
    (run and resume do this themselves when every cell is done, unless \[resources]
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
    """Draw the paper's figures into CAMPAIGN/figures/, each captioned with the campaign,
    its budget, integrator and loss; a figure whose data the campaign lacks is skipped
    with the reason. A campaign of several settings groups gets each figure once per
    group (NAME.<group>.png, e.g. phase_diagram.max_steps-150.png), never one mixing them."""
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
            "each alpha_tilde). Default: the spec's \\[refine].",
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

    words = ["phasegrid", "refine", campaign, *(["--boundary", boundary] if boundary else [])]
    again = shlex.join(words + (["--address", address] if address else []))
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


__all__ = ["app", "completion", "data", "inspect"]  # these register their commands
