"""The column reference (results_schema/README.md) generated from the schemas.

`python -m results_schema > results_schema/README.md` rewrites it; a test checks that the
file in the repository is what this prints, so the doc cannot drift from the schemas.
"""

from __future__ import annotations

import pyarrow as pa

from results_schema.registry import TABLES
from results_schema.tables import SCHEMA_VERSION

INTRO = """\
# Results schema (version {version})

A campaign directory `<store>/<name>/` (a local path or a pyarrow filesystem URI such as
`s3://bucket/store/name`) holds:

| path | what |
|---|---|
| `spec.json`, `spec.toml` | the resolved campaign spec and the TOML it came from (latest run) |
| `manifest.parquet` | every cell ever requested, with its resolved configuration |
| `cells/<cell_id>.parquet` | one row per finished cell (done or failed); written last, it is the cell's "done" record |
| `measurements/<cell_id>.parquet` | the cell's time series (done cells only) |
| `predictions/<cell_id>.parquet` | the cell's final test outputs (done cells only) |
| `kernels/<cell_id>.parquet` | the cell's NTK summary and H₀ spectrum (done cells only) |
| `weights/<cell_id>.parquet` | first-layer weights at start and end (done FC cells with `[observables] weights = true`) |
| `<table>/part-<run>-<k>.parquet` | compacted rows (`phasegrid compact`, or a run/resume ending with every cell done): the done cells of chunk k of compaction `<run>` (the same cells in every table), sorted by width, α̃, P, depth, seed, in large row groups; new cells land as `<cell_id>.parquet` beside them |
| `_compacted/<run>.json` | the cells of each chunk of a compaction (which cells a damaged part holds) |
| `_verified.parquet` | path, size and time of every file last read in full by a driver: the next take-over reads only files new or changed since (`phasegrid resume --deep`: all) |
| `_compact/<run>/` | a compaction in progress (staged parts, then `plan.json`); finished or discarded when the campaign is next opened |
| `ensembles/`, `boundaries/` | aggregates over seeds and phase boundaries, rewritten by `phasegrid aggregate` |
| `_live/<cell_id>/<attempt_id>/part-*.parquet` | measurements of running cells (streaming) |
| `_pending/<cell_id>/` | a commit in progress; finished or discarded when the campaign is next opened |
| `_checkpoints/<cell_id>.parquet` | a running cell's training-state snapshot (`checkpoint_every_seconds`): raw arrays, never pickled; its next attempt continues from it |
| `_quarantine/<when>/` | unreadable files moved aside with every file of their cell (the cell is run again; for a compacted part, the same part of every table), and `report.json` saying why |

Each table directory reads directly: `pandas.read_parquet("<campaign>/cells")`,
`duckdb.sql("select * from '<campaign>/cells/*.parquet'")`, or `pipeline.load_results(campaign)`.
Names starting with `_` or `.` are ignored by these readers. A cell's rows come from exactly
one attempt (the one that finished). The schema version is stored in every file's metadata
under `phasegrid.schema_version`. Every file the store writes has a CRC per page, which the
store's own readers verify (pyarrow: `page_checksum_verification=True`); a file that does
not read is reported by `phasegrid status` and quarantined by the next `run` or `resume`.
While a commit moves its files (or after a driver was killed mid-commit, until the next
driver opens the campaign), a direct reader may see a cell's rows before its `cells`
record; `load_results` shows only the rows of cells that have one.
"""


def table_markdown(name: str, schema: pa.Schema) -> str:
    """One table's section: its description, then a row per column."""
    lines = [
        f"## `{name}`",
        "",
        schema.metadata[b"description"].decode(),
        "",
        "| column | type | nullable | meaning |",
        "|---|---|---|---|",
    ]
    for field in schema:
        doc = field.metadata[b"description"].decode().replace("|", "\\|")
        lines.append(
            f"| `{field.name}` | {field.type} | {'yes' if field.nullable else 'no'} | {doc} |"
        )
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The whole README: layout, then every table's columns."""
    parts = [INTRO.format(version=SCHEMA_VERSION)]
    parts += [table_markdown(name, schema) for name, schema in TABLES.items()]
    return "\n".join(parts)
