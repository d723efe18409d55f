"""Smoke tests of the benchmark suite: every row runs at a tiny size, so the benchmarks
cannot rot. No timing assertions (speed targets are met in `make bench`, not here);
what is checked is what can be wrong whatever the machine: the rows' arithmetic, the
FLOP count against the model's own parameter count, the NTK paths agreeing, the results
file, the CLI."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from benchmarks import orchestration
from benchmarks.__main__ import main
from benchmarks.common import Row, append_results, fc_parameters, table
from benchmarks.suite import BENCHMARKS, ROWS
from tasks.models import build_model, count_parameters

IN_PROCESS = [name for name in ROWS if name not in ("orchestration", "store-scale")]


@pytest.fixture(scope="module")
def quick_rows() -> dict[str, list[Row]]:
    """Each row but orchestration, run once at its --quick size on the CPU, on one torch
    thread as `make bench` runs them (two threads spin against each other under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: BENCHMARKS[name](quick=True, device="cpu") for name in IN_PROCESS}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", IN_PROCESS)
def test_each_row_runs_at_tiny_size_with_finite_numbers(quick_rows, name):
    rows = quick_rows[name]
    assert rows and all(r.benchmark == name for r in rows)
    for r in rows:
        if name == "ensemble" and r.unit == "-":  # trainer not there yet: said so
            assert "not available" in r.note
            continue
        assert math.isfinite(r.ours) and math.isfinite(r.baseline), r
        assert r.ours > 0 or name == "scaling", r  # a fitted exponent may be anything


def test_ratios_say_how_much_better_ours_is(quick_rows):
    """Throughput and FLOP rates: ours/baseline; times and memory: baseline/ours."""
    for r in (r for rows in quick_rows.values() for r in rows if r.unit != "-"):
        higher_is_better = r.unit in ("cells·steps/s", "GFLOP/s", "cells/s")
        if r.benchmark == "scaling":
            expected = r.ours / r.baseline
        else:
            expected = r.ours / r.baseline if higher_is_better else r.baseline / r.ours
        assert r.ratio == pytest.approx(expected), r


def test_flop_count_uses_the_nets_parameter_count():
    for d, h, depth in ((3, 16, 2), (10, 256, 2), (5, 32, 3)):
        assert fc_parameters(d, h, depth) == count_parameters(build_model(d, h, depth))


def test_fast_and_jacobian_ntk_agree_in_the_ntk_row(quick_rows):
    for r in quick_rows["ntk"]:
        assert r.details["fast"]["relative_difference"] < 1e-10


def test_scaling_rows_fit_an_exponent_per_series(quick_rows):
    for r in quick_rows["scaling"]:
        assert r.unit == "exponent" and r.baseline in (1.0, 2.0)
        assert len(r.details["seconds"]) == len(r.details["values"]) >= 2


def test_table_and_results_file_hold_every_row(quick_rows, tmp_path):
    rows = [r for name in IN_PROCESS for r in quick_rows[name]]
    text = table(rows)
    assert all(r.case in text for r in rows)
    path = tmp_path / "bench.csv"
    append_results(rows, {"host": "test"}, path)
    append_results(rows[:1], {"host": "test"}, path)  # appends, one header
    with open(path) as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows) + 1
    assert {"date", "commit", "machine", "ratio", "target", "met"} <= set(read[0])


def test_cli_runs_one_row_and_prints_the_table(capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main sets it; restored afterwards
    threads = torch.get_num_threads()  # main sets torch's too
    try:
        assert main(["--quick", "--only", "peer", "--no-save"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "peer" in out and "ms/step" in out and "reference (recorded)" in out


def test_orchestration_skips_on_a_gpu_machine_without_ray():
    (row,) = BENCHMARKS["orchestration"](quick=True, device="cuda")
    assert "no Ray" in row.note and math.isnan(row.ratio)


def test_orchestration_campaign_has_the_asked_number_of_cells(tmp_path):
    assert len(orchestration._cells(orchestration.write_spec(tmp_path, 200))) == 200
    assert len(orchestration._cells(orchestration.write_spec(tmp_path, 5))) == 5


def test_orchestration_rows_compare_walls():
    walls = {
        "startup": (10.0, ""),
        "phasegrid": (20.0, ""),
        "bare": (15.0, ""),
        "tune": (100.0, ""),
    }
    near, tune = orchestration._rows(walls, loop=2.0, cells=200)
    assert near.ratio == pytest.approx(15.0 / 20.0) and near.met == "yes"
    assert tune.ratio == pytest.approx(5.0) and tune.met == "yes"
    assert "phasegrid 45.0 ms" in near.note  # (20 − 10 − 2/2)/200 s, with 2 CPUs
    failed = orchestration._rows(
        {**walls, "tune": (math.nan, "No module named 'ray.tune'")}, loop=2.0, cells=200
    )[1]
    assert "not run" in failed.note and failed.met == ""


def test_bare_ray_way_runs_the_cells(ray_session, tmp_path):
    """The bare-Ray way, in this process on the shared embedded Ray."""
    orchestration.bare(orchestration.write_spec(tmp_path, 5))


@pytest.mark.slow
def test_ray_tune_way_runs_the_cells(ray_session, tmp_path):
    """The Ray Tune way on the shared embedded Ray (Tune's fixed cost: ~40 s here)."""
    orchestration.tune_grid(orchestration.write_spec(tmp_path, 5), tmp_path / "tune")


@pytest.mark.slow
def test_orchestration_row_end_to_end():
    """Every way in its own process, the CLI included (about two minutes here)."""
    rows = BENCHMARKS["orchestration"](quick=True, device="cpu")
    assert len(rows) == 2 and all(math.isfinite(r.ours) for r in rows)


@pytest.mark.slow  # ~2 min here: a dozen fresh processes, each importing the pipeline
def test_store_scale_row_measures_every_command_on_a_tiny_campaign():
    """One tiny size (8 cells): every command runs on the synthesised campaign, the
    commit adds one cell, and both compactions absorb what they should."""
    from benchmarks import store_scale

    rows = {r.case: r for r in store_scale.run((8,))}
    for name in (
        "status",
        "load cells",
        "measurements of one width",
        "compact (whole campaign)",
        "run with nothing to do",
        "aggregate",
        "commit of one cell",
        "compact (that one cell)",
    ):
        row = rows[f"{name}, 8 cells"]
        assert math.isfinite(row.ours) and row.ours > 0, row
    assert math.isfinite(rows["status, 8 cells"].baseline)  # measured on the per-cell store too
    assert rows["load cells, 8 cells"].details["rows"] == 8
    assert rows["compact (whole campaign), 8 cells"].details["rows"] == 8
    assert rows["compact (that one cell), 8 cells"].details["rows"] == 1
    assert 0 < rows["measurements of one width, 8 cells"].details["rows"]
