"""Settings are part of a campaign's identity (issue 13, case 5): `run` of a changed fixed
setting under the same name is refused with the diff and the two ways on, leaving the
store byte-identical; `--add-settings-group` adds the cells as a second group, and the
aggregates and figures keep the groups apart instead of averaging two budgets."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from pipeline import load_results
from pipeline.cli import app


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_changed_budget_is_refused_then_added_as_a_second_group(
    tmp_path, stripe_spec, ray_session
):
    store, grid = tmp_path / "results", {"width": [8], "alpha_tilde": [1.0], "seed": [0, 1]}
    first = cli("run", str(stripe_spec(grid=grid, flow={"max_steps": 100})), "--store", str(store))
    assert first.exit_code == 0, first.output
    campaign = store / "stripe-small"
    before = snapshot(campaign)

    longer = stripe_spec(grid=grid, flow={"max_steps": 150})
    refused = cli("run", str(longer), "--store", str(store))
    assert refused.exit_code == 2, refused.output
    (line,) = [x for x in refused.stderr.splitlines() if x.strip()]
    assert "flow.max_steps: 100 -> 150" in line
    assert "new `name`" in line and "--add-settings-group" in line
    assert snapshot(campaign) == before  # spec.toml not overwritten, no cell added

    grown = cli("run", str(longer), "--store", str(store), "--add-settings-group")
    assert grown.exit_code == 0, grown.output
    assert cli("aggregate", str(campaign)).exit_code == 0
    results = load_results(str(campaign))
    assert sorted(results.cells["max_steps"]) == [100, 100, 150, 150]
    ensembles = results.ensembles.sort_values("max_steps")
    assert ensembles["max_steps"].tolist() == [100, 150]  # one row per group, not one of 4
    assert ensembles["n_seeds"].tolist() == [2, 2]
    kept = list(campaign.glob("settings_groups/*/spec.toml"))
    assert len(kept) == 1 and "max_steps = 100" in kept[0].read_text()

    # figures per group, never one mixing the budgets, each captioned by its group; the
    # figure drawn while the campaign had one group (its name names none) is replaced
    (campaign / "figures").mkdir()
    (campaign / "figures" / "phase_diagram.png").write_bytes(b"drawn before the second group")
    plotted = cli("plot", str(campaign), "--format", "png", "--figure", "phase_diagram")
    assert plotted.exit_code == 0, plotted.output
    first, second = plotted.stdout.splitlines()
    assert first.startswith("phase_diagram [max_steps = 100]: ")
    assert first.endswith(
        "(removed figures/phase_diagram.png: drawn before the second settings group)"
    )
    assert second.startswith("phase_diagram [max_steps = 150]: ") and "removed" not in second
    files = sorted(p.name for p in (campaign / "figures").iterdir())
    assert files == ["phase_diagram.max_steps-100.png", "phase_diagram.max_steps-150.png"]
    for budget, k in ((100, 1), (150, 2)):
        with Image.open(campaign / "figures" / f"phase_diagram.max_steps-{budget}.png") as png:
            caption = png.text["Description"]
        assert caption.startswith(f"campaign stripe-small · budget {budget} steps · integrator ")
        assert caption.endswith(
            f"loss softhinge (β = 20) · settings group max_steps = {budget} ({k} of 2)"
        )


def test_a_changed_setting_without_a_column_cannot_be_a_group(tmp_path, stripe_spec):
    store, grid = tmp_path / "results", {"width": [8], "alpha_tilde": [1.0], "seed": [0]}
    campaign = store / "stripe-small"
    campaign.mkdir(parents=True)  # a stored campaign: its spec is all the check reads
    from pipeline.spec.campaign import load_campaign
    from pipeline.store.campaign_store import ParquetStore

    ParquetStore.open(str(campaign), create=True).write_spec(
        load_campaign(stripe_spec(grid=grid)).to_dict(), ""
    )
    before = snapshot(campaign)
    changed = stripe_spec(grid=grid, flow={"max_output_change": 0.05})
    for extra in ((), ("--add-settings-group",)):
        refused = cli("run", str(changed), "--store", str(store), *extra)
        assert refused.exit_code == 2, refused.output
        assert "flow.max_output_change: 0.1 -> 0.05" in refused.stderr
    assert "no column in the tables" in refused.stderr
    assert snapshot(campaign) == before
