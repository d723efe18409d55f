"""`perpendicular_scale = {from_campaign = …}`: the compressed-data control takes Λ(P) from a
feature-regime campaign that ran (real trained stripe cells in a real store), per P, and
refuses a source that lacks a P or does not exist, before anything runs. The spec wing
only parses the source; `pipeline.drivers.sources` reads it through the store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.drivers.refine_state import spec_rows, store_tables, stored_spec
from pipeline.drivers.run import run_spec
from pipeline.drivers.sources import load_resolved_campaign, load_resolved_campaign_text
from pipeline.execute.local import LocalExecutor
from pipeline.spec.campaign import SpecError, load_campaign
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import Provenance, done_tables, manifest_table, utc_now
from tasks.data import load_task
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec
from tasks.train_bundle import train_bundle

SIZES = (32, 64)


def _source_cell(train_size: int, seed: int, alpha_tilde: float) -> CellSpec:
    return CellSpec(
        alpha_tilde=alpha_tilde,
        seed=seed,
        data=DataSpec("stripe", dimension=3, train_size=train_size, test_size=64, kernel_size=16),
        model=ModelSpec(arch="one-hidden", width=16, activation="softplus", activation_beta=1.0),
        loss=LossSpec("softhinge", 20.0),
        flow=FlowSpec(max_steps=300),
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[str, dict[int, float]]:
    """A 'feature' campaign (α̃ = 0.01, 2 seeds per P, plus a lazy α̃ = 100 cell) in a store;
    returns its path and the expected Λ(P): geometric mean of the seeds' final Λ."""
    root = str(tmp_path_factory.mktemp("source") / "feature")
    store = ParquetStore.open(root, create=True)
    finals: dict[int, list[float]] = {}
    for p in SIZES:
        for seed, alpha_tilde in ((0, 0.01), (1, 0.01), (0, 100.0)):
            spec = _source_cell(p, seed, alpha_tilde)
            store.extend_manifest(manifest_table([spec]))
            records = [r for _, r in train_bundle([spec])]
            run = Provenance("a", 1, "host", "cpu", "test", utc_now(), utc_now())
            store.commit(spec.cell_id, done_tables(spec, records[-1], records[:-1], run))
            if alpha_tilde == 0.01:
                finals.setdefault(p, []).append(records[-2].weight_alignment)
    return root, {p: math.exp(np.mean(np.log(v))) for p, v in finals.items()}


def _write_spec(tmp_path, campaign: str, sizes=SIZES, extra: str = "") -> str:
    path = tmp_path / "compressed.toml"
    path.write_text(f"""
name = "compressed"
[data]
dataset = "stripe"
dimension = 3
test_size = 64
kernel_size = 16
perpendicular_scale = {{from_campaign = "{campaign}", at = "end"{extra}}}
[model]
arch = "one-hidden"
activation = "softplus"
activation_beta = 1.0
[flow]
max_steps = 10
[grid]
width = [16]
alpha_tilde = [100.0]
train_size = {list(sizes)}
seed = [0]
""")
    return str(path)


def test_each_train_size_gets_the_alignment_the_source_measured_there(source, tmp_path):
    campaign, expected = source
    spec = load_resolved_campaign(_write_spec(tmp_path, campaign))
    scales = {c.train_size: c.data.perpendicular_scale for c in spec.cells()}
    assert scales.keys() == expected.keys()
    for p in SIZES:
        assert scales[p] == pytest.approx(expected[p], rel=1e-12)
    assert scales[SIZES[0]] != scales[SIZES[1]] and min(scales.values()) > 1.05
    cell = spec.cells()[0]  # the data really are compressed
    plain = load_task(DataSpec("stripe", 3, cell.train_size, 64, 16))
    squeezed = load_task(cell.data)
    np.testing.assert_allclose(
        squeezed.x_train[:, 1:], plain.x_train[:, 1:] / scales[cell.train_size]
    )
    again = spec.to_dict()["data"]["perpendicular_scale"]
    assert again == {"from_campaign": campaign, "at": "end"}


def test_the_lazy_alpha_of_the_source_can_be_chosen(source, tmp_path):
    campaign, expected = source
    spec = load_resolved_campaign(_write_spec(tmp_path, campaign, extra=", alpha_tilde = 100.0"))
    lazy = {c.train_size: c.data.perpendicular_scale for c in spec.cells()}
    assert all(abs(lazy[p] - 1.0) < abs(expected[p] - 1.0) for p in SIZES)


def test_a_train_size_the_source_did_not_run_is_refused(source, tmp_path):
    campaign, _ = source
    with pytest.raises(
        SpecError, match=r"train_size 128 \(it has \[32, 64\]\).*data\.perpendicular_scale"
    ):
        load_resolved_campaign(_write_spec(tmp_path, campaign, sizes=(32, 128)))


def test_a_missing_source_campaign_is_refused(tmp_path):
    with pytest.raises(SpecError, match="cannot read the campaign"):
        load_resolved_campaign(_write_spec(tmp_path, str(tmp_path / "nowhere")))


def test_an_unresolved_spec_refuses_to_expand_its_cells(source, tmp_path):
    campaign, _ = source
    spec = load_campaign(_write_spec(tmp_path, campaign))  # parsed, the source not read
    assert spec.perpendicular_scales is None
    with pytest.raises(ValueError, match="resolve it first"):
        spec.cells()  # never a silent factor of 1


def test_a_run_campaign_stores_the_resolved_factors_and_refine_reads_its_rows(source, tmp_path):
    campaign, expected = source
    spec, text = load_resolved_campaign_text(_write_spec(tmp_path, campaign))
    summary = run_spec(spec, text, str(tmp_path / "results"), LocalExecutor())
    store = ParquetStore.open(summary.campaign)
    _, cells = store_tables(store)
    rows = spec_rows(cells, stored_spec(store))  # the stored spec.json, not resolved again
    factors = {int(r.train_size): r.perpendicular_scale for r in rows.itertuples()}
    assert factors == pytest.approx(expected, rel=1e-12)
