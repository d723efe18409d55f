"""Campaigns of 10³–10⁵ done cells made in minutes, for the store-scale benchmark.

One real stripe cell is trained once; its rows (`pipeline.store.rows.done_tables`) are
repeated under every cell of the grid, each copy with that cell's id, grid columns and
parameters (from the manifest). Nothing is trained, and everything is stored through
the store's own write path:
- compacted (the default): `pipeline.store.bulk_parts.write_compacted`, chunk by chunk of
  compaction.CELLS_PER_PART cells, exactly the parts `compact` leaves after one commit per
  cell (same sort, row groups, index and verified registry);
- per cell (the baseline, and what `compact` is timed on): each cell's final files
  `<table>/<cell_id>.parquet`, written by `Location.write_parquet` as a commit's last
  step moves them there (the pending/COMMIT steps are skipped: they leave nothing).
Either way `status` counts every cell done and `resume --deep` accepts the campaign.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.common import REPO
from tasks.specs import CellSpec

WIDTHS = (8, 16, 32, 64, 128)


def spec_text(n: int) -> str:
    """campaigns/stripe_small.toml with a grid of about `n` cells (widths × α̃ × seeds)."""
    widths = WIDTHS if n >= 50 else WIDTHS[:2]
    alphas = 10 if n >= 50 else 2
    seeds = max(1, n // (len(widths) * alphas))
    grid = (
        f"[grid]\nwidth = {list(widths)}\nalpha_tilde = {{logspace = [-2, 4, {alphas}]}}\n"
        f"seed = {{range = [0, {seeds}]}}\n\n[resources]\nmax_cells = 1000000\n"
        "compact_when_done = false\n"
    )
    base = (REPO / "campaigns" / "stripe_small.toml").read_text()
    base = re.sub(r'name = "stripe-small"', f'name = "scale-{n}"', base)
    base = re.sub(r"max_steps = \d+", "max_steps = 100", base)
    return base[: base.index("[grid]")] + grid


def template_tables(cell: CellSpec) -> dict[str, pa.Table]:
    """The stored tables of `cell`, really trained (a stripe cell of 100 steps: seconds)."""
    from pipeline.execute.stream import AttemptFinished, run_cell
    from pipeline.store.rows import Provenance, done_tables, utc_now

    finished = next(e for e in run_cell(cell, 0.0) if isinstance(e, AttemptFinished))
    if finished.result is None:
        raise RuntimeError(f"the template cell failed: {finished.error}")
    run = Provenance("synthetic", 1, socket.gethostname(), "cpu", "bench", None, utc_now())
    return done_tables(cell, finished.result, list(finished.measurements), run)


NOISY = ("measurements", "predictions")  # their float columns get a per-row jitter


def repeated(template: pa.Table, cells: pa.Table, rng: np.random.Generator | None) -> pa.Table:
    """`template` (the rows of one cell) once per row of `cells` (manifest rows), each
    copy carrying that cell's values in every column the two share. With `rng`, every
    float64 column not shared is multiplied by 1 + 10⁻³·N(0, 1) per row, so that copies
    differ and the files compress like real ones (not to one dictionary page)."""
    per_cell, n = template.num_rows, cells.num_rows
    out = template.take(np.tile(np.arange(per_cell), n))
    owner = pa.array(np.repeat(np.arange(n), per_cell))
    shared = set(template.column_names) & set(cells.column_names) - {"config", "added_at"}
    for name in shared:
        column = cells[name].take(owner).cast(template.schema.field(name).type)
        out = out.set_column(template.schema.get_field_index(name), name, column)
    for index, field in enumerate(out.schema):
        if rng is not None and field.name not in shared and field.type == pa.float64():
            jitter = pa.array(1.0 + 1e-3 * rng.standard_normal(out.num_rows))
            out = out.set_column(index, field, pc.multiply(out[field.name], jitter))
    return out


def chunks_of(
    templates: dict[str, pa.Table], manifest: pa.Table, size: int
) -> Iterator[dict[str, pa.Table]]:
    """The tables of `size` manifest cells at a time (in the manifest's order)."""
    rng = np.random.default_rng(0)
    for start in range(0, manifest.num_rows, size):
        cells = manifest.slice(start, size)
        yield {
            name: repeated(template, cells, rng if name in NOISY else None)
            for name, template in templates.items()
        }


def synthesize(
    root: Path, n: int, per_cell: bool = False, store: str | None = None
) -> tuple[Path, str, float]:
    """(spec path, campaign, seconds): a campaign of about `n` done cells (see the module
    docstring), compacted or one file per cell and table, in `store` (a directory or URI;
    default `root`/results), its spec file in `root`."""
    from pipeline.spec.campaign import load_campaign_text
    from pipeline.store.bulk_parts import write_compacted
    from pipeline.store.campaign_store import ParquetStore
    from pipeline.store.compaction import CELLS_PER_PART, SORT_KEYS
    from pipeline.store.location import join_uri
    from pipeline.store.rows import manifest_table

    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / f"scale-{n}.toml"
    spec_path.write_text(spec_text(n))
    spec, text = load_campaign_text(spec_path)
    cells = spec.cells()
    templates = template_tables(cells[0])
    start = time.perf_counter()  # the synthesis proper: the training above is seconds
    campaign = join_uri(store or str(root / "results"), spec.name)
    store_ = ParquetStore.open(campaign, create=True)
    store_.extend_manifest(manifest_table(cells))
    store_.write_spec(spec.to_dict(), text)  # after the manifest, as `run` does
    manifest = store_.manifest().sort_by([(k, "ascending") for k in SORT_KEYS])
    with store_.lock():
        if per_cell:
            rows = {name: t.num_rows for name, t in templates.items()}
            for chunk in chunks_of(templates, manifest, 1024):
                _write_per_cell(store_.location, chunk, rows)
        else:
            write_compacted(store_.location, chunks_of(templates, manifest, CELLS_PER_PART))
    return spec_path, campaign, time.perf_counter() - start


def _write_per_cell(location, chunk: dict[str, pa.Table], rows: dict[str, int]) -> None:
    """Each cell's slice of each table as `<table>/<cell_id>.parquet`, cells last."""
    ids = chunk["cells"]["cell_id"].to_pylist()
    for name in sorted(chunk, key=lambda t: t == "cells"):
        for i, cell in enumerate(ids):
            piece = chunk[name].slice(i * rows[name], rows[name])
            location.write_parquet(f"{name}/{cell}.parquet", piece)
