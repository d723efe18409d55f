"""Fig. 9 left and Fig. 10 on trained stripe nets: the weight alignment Λ grows in the
feature regime and stays at its initial value in the lazy one; the top kernel-PCA
eigenvectors of the NTK become informative on the labels only with feature learning; and
both reach the store as columns that pandas and duckdb read.

Smooth nets (softplus, soft hinge): the flow follows them without kinks."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.drivers.plot import plot_campaign
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import Provenance, done_tables, utc_now
from tasks.records import KERNEL_PCA_COLUMNS, CellResult, Measurement
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec
from tasks.train_bundle import train_bundle

FEATURE, LAZY = 1e-2, 1e3  # α̃ deep in each regime (ntk_change ≈ 360 vs ≈ 1e-3)
KERNEL_SIZE = 100


def _spec(alpha_tilde: float) -> CellSpec:
    return CellSpec(
        alpha_tilde=alpha_tilde,
        seed=0,
        data=DataSpec("stripe", dimension=5, train_size=64, test_size=128, kernel_size=KERNEL_SIZE),
        model=ModelSpec(arch="one-hidden", width=32, activation="softplus", activation_beta=1.0),
        loss=LossSpec("softhinge", 20.0),
        flow=FlowSpec(max_steps=1000),
        observables=ObservableSpec(weights=alpha_tilde == FEATURE),
    )


@pytest.fixture(scope="module")
def trained() -> dict[float, tuple[CellSpec, list[Measurement], CellResult]]:
    out = {}
    for alpha_tilde in (FEATURE, LAZY):
        spec = _spec(alpha_tilde)
        records = [r for _, r in train_bundle([spec])]
        out[alpha_tilde] = (spec, records[:-1], records[-1])
    return out


def _alignment(measurements: list[Measurement]) -> np.ndarray:
    return np.array([m.weight_alignment for m in measurements])


def test_weight_alignment_grows_with_feature_learning_and_not_in_the_lazy_regime(trained):
    feature, lazy = _alignment(trained[FEATURE][1]), _alignment(trained[LAZY][1])
    assert feature[0] == lazy[0]  # same initial weights
    assert feature[-1] > 2.0 * feature[0]  # measured: 0.70 → 3.4
    assert lazy[-1] == pytest.approx(lazy[0], rel=0.05)  # measured: 0.699 → 0.712
    assert trained[FEATURE][2].ntk_change > 10 and trained[LAZY][2].ntk_change < 0.01


def test_top_kernel_pca_modes_become_informative_only_with_feature_learning(trained):
    feature, lazy = trained[FEATURE][2], trained[LAZY][2]
    for result in (feature, lazy):
        for name in KERNEL_PCA_COLUMNS:
            assert len(getattr(result, name)) == KERNEL_SIZE  # rank 100 ≤ P_K = 100
        assert np.all(np.diff(result.kpca_eigenvalues_final) <= 0)
    np.testing.assert_array_equal(
        feature.kpca_mutual_information_initial, lazy.kpca_mutual_information_initial
    )
    top = slice(0, 10)
    # measured: MI of the top 10 modes 0.044 → 0.115 bits (feature), → 0.043 (lazy);
    # their label projection Σω 0.271 → 0.387 (feature), → 0.272 (lazy)
    assert (
        feature.kpca_mutual_information_final[top].mean()
        > 2.0 * feature.kpca_mutual_information_initial[top].mean()
    )
    assert lazy.kpca_mutual_information_final[top].mean() == pytest.approx(
        lazy.kpca_mutual_information_initial[top].mean(), abs=0.02
    )
    assert (
        feature.kpca_label_projection_final[top].sum()
        > feature.kpca_label_projection_initial[top].sum() + 0.05
    )
    assert lazy.kpca_label_projection_final[top].sum() == pytest.approx(
        lazy.kpca_label_projection_initial[top].sum(), abs=0.01
    )


def test_new_columns_reach_the_store_and_read_with_pandas_and_duckdb(trained, tmp_path):
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    for spec, measurements, result in trained.values():
        run = Provenance("a", 1, "host", "cpu", "test", utc_now(), utc_now())
        store.commit(spec.cell_id, done_tables(spec, result, measurements, run))
    campaign = tmp_path / "campaign"
    kernels = pd.read_parquet(campaign / "kernels")
    feature_id = trained[FEATURE][0].cell_id
    row = kernels.set_index("cell_id").loc[feature_id]
    np.testing.assert_array_equal(
        row["kpca_mutual_information_final"], trained[FEATURE][2].kpca_mutual_information_final
    )
    measured = pd.read_parquet(campaign / "measurements")
    last = measured[measured.cell_id == feature_id].sort_values("step").weight_alignment.iloc[-1]
    assert last == trained[FEATURE][1][-1].weight_alignment
    sql = (
        duckdb.sql(
            f"select cell_id, len(kpca_eigenvalues_initial) as n, "
            f"kpca_label_projection_final[1] as top from '{campaign}/kernels/*.parquet'"
        )
        .df()
        .set_index("cell_id")
    )
    assert (sql.n == KERNEL_SIZE).all()
    assert sql.loc[feature_id, "top"] == trained[FEATURE][2].kpca_label_projection_final[0]
    aligned = duckdb.sql(
        f"select max(weight_alignment) from '{campaign}/measurements/*.parquet'"
    ).fetchall()[0][0]
    assert aligned == pytest.approx(_alignment(trained[FEATURE][1]).max())
    drawn = {o.name: o for o in plot_campaign(str(campaign), formats=("png",))}
    for name in ("feature_alignment", "kernel_pca", "weight_scatter"):
        assert drawn[name].skipped is None, drawn[name].summary()
        assert (campaign / "figures" / f"{name}.png").stat().st_size > 10_000


def test_weights_table_holds_the_first_layer_at_start_and_end(trained, tmp_path):
    spec, measurements, result = trained[FEATURE]
    assert trained[LAZY][2].weights_initial is None  # off by default
    first0, out0 = result.weights_initial
    first1, out1 = result.weights_final
    assert first0.shape == first1.shape == (32, 5) and out0.shape == out1.shape == (1, 32)
    from tasks.alignment import weight_alignment

    # the stored weights give back the measured Λ at both ends
    assert weight_alignment(torch.from_numpy(first0), torch.from_numpy(out0), [0]) == pytest.approx(
        measurements[0].weight_alignment, rel=1e-12
    )
    assert weight_alignment(torch.from_numpy(first1), torch.from_numpy(out1), [0]) == pytest.approx(
        measurements[-1].weight_alignment, rel=1e-12
    )
    store = ParquetStore.open(str(tmp_path / "c"), create=True)
    run = Provenance("a", 1, "host", "cpu", "test", utc_now(), utc_now())
    tables = done_tables(spec, result, measurements, run)
    lazy_spec, lazy_measured, lazy_result = trained[LAZY]
    assert "weights" not in done_tables(lazy_spec, lazy_result, lazy_measured, run)
    store.commit(spec.cell_id, tables)
    rows = pd.read_parquet(tmp_path / "c" / "weights")
    assert len(rows) == 2 * 32 and set(rows.checkpoint) == {"initial", "final"}
    final = rows[rows.checkpoint == "final"].sort_values("neuron")
    np.testing.assert_array_equal(np.stack(final.first_layer_weights.to_numpy()), first1)
    assert final.step.iloc[0] == result.steps
    n = duckdb.sql(
        f"select count(*) from '{tmp_path}/c/weights/*.parquet' where checkpoint = 'initial'"
    ).fetchall()[0][0]
    assert n == 32
