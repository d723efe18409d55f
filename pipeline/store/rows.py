"""Records of tasks/ (CellSpec, Measurement, CellResult) as rows of the stored tables.

Pure functions: specs and records in, pyarrow Tables of the results_schema schemas out.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

import results_schema as rs
from tasks.records import KERNEL_PCA_COLUMNS, CellResult, Measurement
from tasks.specs import CellSpec

GRID_COLUMNS = tuple(f.name for f in rs.tables.GRID)


@dataclass(frozen=True)
class Provenance:
    """Where and when one attempt of a cell ran."""

    attempt_id: str
    attempts: int
    host: str | None
    device: str | None
    code_version: str
    started_at: datetime | None
    finished_at: datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def grid_values(spec: CellSpec) -> dict:
    """The grid columns of a cell: width, alpha_tilde, alpha, train_size, seed, depth."""
    return {
        "width": spec.width,
        "alpha_tilde": spec.alpha_tilde,
        "alpha": spec.alpha,
        "train_size": spec.train_size,
        "seed": spec.seed,
        "depth": spec.model.depth,
    }


def cell_parameters(spec: CellSpec) -> dict:
    """cell_id, the grid columns and the fixed settings of a cell (manifest and cells)."""
    data, model, flow = spec.data, spec.model, spec.flow
    return {
        "cell_id": spec.cell_id,
        **grid_values(spec),
        "dataset": data.dataset,
        "dimension": data.dimension,
        "pca": data.pca,
        "perpendicular_scale": data.perpendicular_scale,
        "parallel_dimension": data.parallel_dimension,
        "test_size": data.test_size,
        "kernel_size": data.kernel_size,
        "train_seed": data.train_seed,
        "test_seed": data.test_seed,
        "kernel_seed": data.kernel_seed,
        "arch": model.arch,
        "activation": model.activation,
        "activation_beta": model.activation_beta,
        "bias": model.bias,
        "loss": spec.loss.kind,
        "loss_beta": spec.loss.beta,
        "max_steps": flow.max_steps,
        "max_time": flow.max_time,
        "max_wall_seconds": flow.max_wall_seconds,
        "integrator": flow.integrator,
        "max_local_error": None if flow.integrator == "paper" else flow.max_local_error,
        "dtype": spec.observables.dtype,
    }


def manifest_table(specs: list[CellSpec]) -> pa.Table:
    """Manifest rows: parameters plus the resolved spec as JSON (what resume re-runs)."""
    now = utc_now()
    rows = [
        {**cell_parameters(s), "config": json.dumps(s.to_dict(), sort_keys=True), "added_at": now}
        for s in specs
    ]
    return pa.Table.from_pylist(rows, schema=rs.MANIFEST)


def spec_from_config(config: str) -> CellSpec:
    return CellSpec.from_dict(json.loads(config))


def measurements_table(spec: CellSpec, measurements: list[Measurement]) -> pa.Table:
    grid = {"cell_id": spec.cell_id, **grid_values(spec)}
    rows = [{**grid, **dataclasses.asdict(m)} for m in measurements]
    return pa.Table.from_pylist(rows, schema=rs.MEASUREMENTS)


def _result_values(result: CellResult) -> dict:
    arrays = (
        "test_outputs",
        "test_labels",
        "h0_eigenvalues",
        *KERNEL_PCA_COLUMNS,
        "weights_initial",
        "weights_final",
    )
    return {
        f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in arrays
    }


def _run_values(run: Provenance, error: str | None) -> dict:
    return {
        "attempts": run.attempts,
        "attempt_id": run.attempt_id,
        "error": error,
        "host": run.host,
        "device": run.device,
        "code_version": run.code_version,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def done_cell_table(spec: CellSpec, result: CellResult, run: Provenance) -> pa.Table:
    row = {
        **cell_parameters(spec),
        "status": "done",
        **_result_values(result),
        **_run_values(run, None),
    }
    return pa.Table.from_pylist([row], schema=rs.CELLS)


def failed_cell_table(spec: CellSpec, error: str, run: Provenance) -> pa.Table:
    row = {**cell_parameters(spec), "status": "failed", **_run_values(run, error)}
    return pa.Table.from_pylist([row], schema=rs.CELLS)


def _broadcast(spec: CellSpec, n: int) -> dict:
    """cell_id and grid columns repeated n times (columnar, for long tables)."""
    values = {"cell_id": spec.cell_id, **grid_values(spec)}
    return {k: pa.array([v] * n, type=rs.PREDICTIONS.field(k).type) for k, v in values.items()}


def predictions_table(spec: CellSpec, result: CellResult) -> pa.Table:
    outputs = np.asarray(result.test_outputs, dtype=np.float64).reshape(-1)
    labels = np.asarray(result.test_labels).reshape(-1).astype(np.int8)
    columns = {
        **_broadcast(spec, len(outputs)),
        "test_index": pa.array(np.arange(len(outputs), dtype=np.int64)),
        "test_output": pa.array(outputs),
        "test_label": pa.array(labels),
    }
    return pa.table(columns, schema=rs.PREDICTIONS)


def _float_list(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=np.float64).reshape(-1).tolist()


def kernels_table(spec: CellSpec, result: CellResult) -> pa.Table:
    spectrum = np.asarray(result.h0_eigenvalues, dtype=np.float64).reshape(-1).tolist()
    row = {
        "cell_id": spec.cell_id,
        **grid_values(spec),
        "ntk_norm_initial": result.ntk_norm_initial,
        "ntk_norm_final": result.ntk_norm_final,
        "ntk_change": result.ntk_change,
        "h0_eigenvalues": spectrum,
        **{name: _float_list(getattr(result, name)) for name in KERNEL_PCA_COLUMNS},
    }
    return pa.Table.from_pylist([row], schema=rs.KERNELS)


def weights_table(spec: CellSpec, result: CellResult, measurements: list[Measurement]) -> pa.Table:
    """Rows (checkpoint, neuron) of W₁[i, :] and W₂[:, i] at start and end (Fig. 9 left)."""
    rows = []
    ends = (
        ("initial", result.weights_initial, 0, 0.0),
        ("final", result.weights_final, result.steps, result.flow_time),
    )
    for checkpoint, weights, step, flow_time in ends:
        if weights is None:
            continue
        first, outgoing = weights  # [h, d], [n_out, h]
        rows += [
            {
                "cell_id": spec.cell_id,
                **grid_values(spec),
                "checkpoint": checkpoint,
                "step": step,
                "flow_time": flow_time,
                "neuron": i,
                "first_layer_weights": first[i].tolist(),
                "output_weights": outgoing[:, i].tolist(),
            }
            for i in range(first.shape[0])
        ]
    return pa.Table.from_pylist(rows, schema=rs.WEIGHTS)


def done_tables(
    spec: CellSpec, result: CellResult, measurements: list[Measurement], run: Provenance
) -> dict[str, pa.Table]:
    """All tables of a done cell, keyed by table name, each validated (`weights` only
    when the cell recorded them)."""
    tables = {
        "measurements": measurements_table(spec, measurements),
        "predictions": predictions_table(spec, result),
        "kernels": kernels_table(spec, result),
    }
    if result.weights_initial is not None or result.weights_final is not None:
        tables["weights"] = weights_table(spec, result, measurements)
    tables["cells"] = done_cell_table(spec, result, run)
    for name, table in tables.items():
        rs.validate(name, table)
    return tables
