"""Training-state snapshots of running cells, so a preempted cell continues instead of
restarting: `_checkpoints/<cell_id>.parquet` in the campaign (readers skip `_` names).

A running cell with `[resources] checkpoint_every_seconds` yields a
`tasks.records.TrainingState` that often; the driver stores it here with every
measurement so far (`save_snapshot`, one atomic file that replaces the previous one).
When the cell is run again (its worker or node died, or the campaign is resumed after
the driver died), the driver hands the snapshot to the new attempt (`load_snapshot`),
which continues the same trajectory and reports the measurements from step 0. The
snapshot is deleted when the cell is committed.

Format: one Parquet row; tensors are raw little-endian bytes with their dtype (float32
or float64; int64 batch indices, uint8 generator state) and a SHA-256 over them, scalars
are columns, measurements a list of structs. Nothing is pickled: loading a snapshot
can never run code. A snapshot that does not read back, or does not check out, is moved
to `_quarantine/` with a warning and the cell starts from zero: time lost, nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import results_schema as rs
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.kill_points import kill_point
from pipeline.store.quarantine import CorruptFile, CorruptFileWarning, quarantine
from tasks.records import Measurement, TrainingState

SNAPSHOTS = "_checkpoints"
FORMAT = "phasegrid-training-state/2"  # 2: + forward_evaluations, window_time
FLOAT_DTYPES = ("float32", "float64")
SCALARS = {
    "step": pa.int64(),
    "flow_time": pa.float64(),
    "dt": pa.float64(),
    "gradient_norm": pa.float64(),
    "evaluations": pa.int64(),
    "rejections": pa.int64(),
    "wall_seconds": pa.float64(),
    "forward_evaluations": pa.int64(),
    "window_time": pa.float64(),
}
ARRAYS = ("theta", "gradient", "outputs", "batch", "batch_generator_state")
_MEASURED = [f.name for f in dataclasses.fields(Measurement)]
MEASUREMENT_TYPE = pa.struct(
    [pa.field(name, rs.MEASUREMENTS.field(name).type) for name in _MEASURED]
)
SCHEMA = pa.schema(
    [("format", pa.string()), ("cell_id", pa.string()), ("dtype", pa.string())]
    + list(SCALARS.items())
    + [(name, pa.large_binary()) for name in ARRAYS]
    + [("sha256", pa.string()), ("measurements", pa.list_(MEASUREMENT_TYPE))]
)


class SnapshotError(ValueError):
    """A stored snapshot that does not check out."""


@dataclass(frozen=True)
class Snapshot:
    """A cell's training state and every measurement taken before it."""

    state: TrainingState
    measurements: tuple[Measurement, ...]


def snapshot_path(cell_id: str) -> str:
    return f"{SNAPSHOTS}/{cell_id}.parquet"


def _digest(arrays: list[np.ndarray | None]) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        sha.update(b"-" if array is None else np.ascontiguousarray(array).view(np.uint8).data)
    return sha.hexdigest()


def _raw(array: np.ndarray | None) -> bytes | None:
    """The array's values as little-endian bytes."""
    if array is None:
        return None
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def snapshot_table(cell_id: str, snapshot: Snapshot) -> pa.Table:
    """The one-row table of a snapshot (see the module docstring)."""
    state = snapshot.state
    if str(state.theta.dtype) not in FLOAT_DTYPES:
        raise SnapshotError(f"theta has dtype {state.theta.dtype}, not one of {FLOAT_DTYPES}")
    arrays = [getattr(state, name) for name in ARRAYS]
    row = {
        "format": FORMAT,
        "cell_id": cell_id,
        "dtype": str(state.theta.dtype),
        **{name: getattr(state, name) for name in SCALARS},
        **{name: _raw(array) for name, array in zip(ARRAYS, arrays)},
        "sha256": _digest(arrays),
        "measurements": [dataclasses.asdict(m) for m in snapshot.measurements],
    }
    return pa.Table.from_pylist([row], schema=SCHEMA)


def _array(raw: bytes | None, dtype: str, name: str) -> np.ndarray | None:
    if raw is None:
        return None
    item = np.dtype(dtype).newbyteorder("<")
    if len(raw) % item.itemsize:
        raise SnapshotError(f"{name} has {len(raw)} bytes, not a whole number of {dtype}")
    return np.frombuffer(raw, dtype=item).astype(np.dtype(dtype))


def snapshot_from_table(table: pa.Table, cell_id: str) -> Snapshot:
    """The Snapshot of a table written by `snapshot_table`; raises SnapshotError if it is
    not one of `cell_id` or its arrays do not match their checksum."""
    if table.num_rows != 1 or not set(SCHEMA.names) <= set(table.column_names):
        raise SnapshotError(
            f"not a snapshot table ({table.num_rows} rows, columns {table.column_names})"
        )
    row = table.to_pylist()[0]
    if row["format"] != FORMAT or row["cell_id"] != cell_id or row["dtype"] not in FLOAT_DTYPES:
        raise SnapshotError(
            f"format {row['format']!r}, cell {row['cell_id']!r}, dtype "
            f"{row['dtype']!r}; expected {FORMAT!r}, {cell_id!r}, one of "
            f"{FLOAT_DTYPES}"
        )
    dtypes = {
        "theta": row["dtype"],
        "gradient": row["dtype"],
        "outputs": row["dtype"],
        "batch": "int64",
        "batch_generator_state": "uint8",
    }
    arrays: dict[str, Any] = {name: _array(row[name], dtypes[name], name) for name in ARRAYS}
    if _digest(list(arrays.values())) != row["sha256"]:
        raise SnapshotError("its arrays do not match their SHA-256: the file is damaged")
    if arrays["batch_generator_state"] is None:
        raise SnapshotError("batch_generator_state is missing")
    measurements = tuple(Measurement(**m) for m in row["measurements"])
    last = measurements[-1] if measurements else None
    return Snapshot(
        TrainingState(**{name: row[name] for name in SCALARS}, **arrays, last_measurement=last),
        measurements,
    )


def save_snapshot(store: ParquetStore, cell_id: str, snapshot: Snapshot) -> None:
    """Store (atomically replace) the cell's snapshot. `snapshot.measurements` must end
    with the state's last measurement (the resumed attempt continues after it)."""
    last = snapshot.state.last_measurement
    if (last is None) != (not snapshot.measurements) or (
        last is not None and snapshot.measurements[-1].step != last.step
    ):
        raise SnapshotError("the measurements must end with the state's last measurement")
    store.location.write_parquet(snapshot_path(cell_id), snapshot_table(cell_id, snapshot))
    kill_point("snapshot")


def load_snapshot(store: ParquetStore, cell_id: str) -> Snapshot | None:
    """The cell's stored snapshot, or None if it has none. One that cannot be read or does
    not check out is quarantined with a CorruptFileWarning (the cell starts from zero)."""
    rel = snapshot_path(cell_id)
    if not store.location.exists(rel):
        return None
    try:
        return snapshot_from_table(store.location.read_parquet(rel), cell_id)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as error:
        problem = CorruptFile(rel, "snapshot", None, f"{type(error).__name__}: {error}")
        moved = quarantine(store, [problem])
        warnings.warn(
            CorruptFileWarning(
                f"{problem.describe(store.uri)}; moved to {store.uri}/{moved[0]['to']}, the cell "
                "starts from zero"
            ),
            stacklevel=2,
        )
        return None


def delete_snapshot(store: ParquetStore, cell_id: str) -> None:
    store.location.delete_file(snapshot_path(cell_id))


def clean_up(store: ParquetStore) -> None:
    """What a killed driver may have left: temp files of snapshot writes, and snapshots of
    cells it committed but had no time to delete. Call only while holding the campaign."""
    from pipeline.store.location import TEMP_SUFFIX

    entries = store.location.listdir(SNAPSHOTS)
    if not entries:  # the usual case: no cell states to read
        return
    done = {cell for cell, (status, _) in store.cell_states().items() if status == "done"}
    for entry in entries:
        if entry.name.endswith(TEMP_SUFFIX) or entry.name.removesuffix(".parquet") in done:
            store.location.delete_file(f"{SNAPSHOTS}/{entry.name}")
