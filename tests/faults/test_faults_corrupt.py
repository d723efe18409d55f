"""A campaign's store damaged on disk, and cells whose numbers break down, on the shared
embedded Ray: reported with paths and stop reasons, never a crashed reader, never a
silent loss; damaged cells are quarantined and run again to the same numbers."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline import load_results
from pipeline.cli import app
from pipeline.drivers.run import resume_campaign, run_campaign
from pipeline.drivers.status import campaign_status
from pipeline.store.quarantine import QUARANTINE, REPORT, CorruptFileWarning
from support.fault_tools import (
    TABLES,
    assert_rows_are_the_uninterrupted_runs,
    assert_store_is_right,
)

pytestmark = pytest.mark.usefixtures("ray_session")
COMPARED = ["step", "flow_time", "dt", "train_loss", "test_error", "gradient_norm"]


def damage(campaign: str, cells: list[str]) -> dict[str, str]:
    """Four kinds of damage, one per cell: path -> kind."""
    a, b, c, d = cells
    paths = {
        f"cells/{a}.parquet": "truncated",
        f"measurements/{b}.parquet": "garbage",
        f"predictions/{c}.parquet": "bad page",
        f"kernels/{d}.parquet": "wrong table",
    }
    for rel, kind in paths.items():
        path = Path(campaign, rel)
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif kind == "garbage":
            path.write_bytes(os.urandom(len(data)))
        elif kind == "bad page":  # footer intact, a page whose CRC fails
            middle = len(data) // 3
            path.write_bytes(data[:middle] + bytes(64) + data[middle + 64 :])
            with pytest.raises(OSError, match="CRC"):
                pq.read_table(path, page_checksum_verification=True)
        else:
            shutil.copy(Path(campaign, "measurements", f"{d}.parquet"), path)
    return paths


def test_unreadable_files_are_reported_quarantined_and_their_cells_run_again(tmp_path, stripe_spec):
    spec = stripe_spec(  # 6 cells, kept per cell (tests/store/test_compaction.py: compacted)
        name="damaged",
        grid={"width": [8], "seed": [0, 1, 2]},
        resources={"compact_when_done": False},
    )
    campaign = run_campaign(spec, str(tmp_path / "results")).campaign
    before = {t: pd.read_parquet(f"{campaign}/{t}") for t in TABLES}
    ids = sorted(before["cells"].cell_id)
    paths = damage(campaign, ids[:4])

    status = campaign_status(campaign)  # footers and schemas: a cheap check
    assert {c.path for c in status.corrupt} == set(paths) - {f"predictions/{ids[2]}.parquet"}
    assert (status.total, status.done, status.pending) == (6, 3, 3)
    shown = CliRunner().invoke(app, ["status", campaign])
    assert shown.exit_code == 0
    for rel in status.corrupt:
        assert f"corrupt: {campaign}/{rel.path}" in shown.output.replace("\n", "")

    with warnings.catch_warnings(record=True) as seen:  # readers warn, name, go on
        warnings.simplefilter("always")
        results = load_results(campaign)
    named = " ".join(str(w.message) for w in seen if w.category is CorruptFileWarning)
    for rel in paths:
        assert f"{campaign}/{rel}" in named, rel
    assert len(results.cells) == 5 and len(results.kernels) == 4  # a: no record; d: foreign
    with pytest.warns(CorruptFileWarning):
        aggregated = CliRunner().invoke(app, ["aggregate", campaign])
    assert aggregated.exit_code == 0, aggregated.output

    summary = resume_campaign(campaign)
    assert (summary.already_done, summary.done, summary.failed) == (2, 4, 0)
    moved = [line.split(" -> ")[0] for line in summary.quarantined]
    assert set(paths) <= set(moved) and all(m.split("/")[1][:16] in ids[:4] for m in moved)
    report = json.loads(next(Path(campaign, QUARANTINE).glob(f"*/{REPORT}")).read_text())
    for entry in report:
        assert Path(campaign, entry["to"]).exists() and entry["reason"]
    assert_store_is_right(campaign, 6)
    after = {t: pd.read_parquet(f"{campaign}/{t}") for t in TABLES}
    kept = before["cells"].set_index("cell_id").attempt_id
    rerun = after["cells"].set_index("cell_id").attempt_id
    assert (kept[ids[4:]] == rerun[ids[4:]]).all() and (kept[ids[:4]] != rerun[ids[:4]]).all()
    for table, columns in (("measurements", COMPARED), ("predictions", ["test_output"])):
        old = before[table].sort_values(list(before[table].columns[:7])).reset_index(drop=True)
        new = after[table].sort_values(list(after[table].columns[:7])).reset_index(drop=True)
        pd.testing.assert_frame_equal(old[["cell_id"] + columns], new[["cell_id"] + columns])


def test_diverged_and_out_of_budget_cells_are_recorded_and_the_campaign_goes_on(
    tmp_path, stripe_spec
):
    """α̃ = 1e-300 overflows the gradient (1/α) at step 0: nan. α̃ = 1 needs 914 steps
    (measured), α̃ = 100 786, so a budget of 850 stops one and fits the other."""
    spec = stripe_spec(
        name="numerics",
        grid={"width": [64], "alpha_tilde": [1e-300, 1.0, 100.0], "seed": [0]},
        data={"train_size": 16},
        flow={"max_steps": 850, "integrator": "paper"},
    )  # steps measured with it
    summary = run_campaign(spec, str(tmp_path / "results"))
    assert (summary.done, summary.failed) == (3, 0)
    cells = load_results(summary.campaign).cells.set_index("alpha_tilde").sort_index()
    assert cells.stop_reason.to_dict() == {1e-300: "nan", 1.0: "max_steps", 100.0: "fitted"}
    assert cells.fitted.tolist() == [False, False, True] and cells.steps[1e-300] == 0
    status = campaign_status(summary.campaign)
    assert status.stop_reasons == {"fitted": 1, "max_steps": 1, "nan": 1}
    shown = CliRunner().invoke(app, ["status", summary.campaign])
    assert "done cells by stop reason" in shown.output
    assert assert_rows_are_the_uninterrupted_runs(summary.campaign) > 3 * 16
    again = resume_campaign(summary.campaign)  # a stop reason is a result: not re-run
    assert (again.already_done, again.done) == (3, 0)
