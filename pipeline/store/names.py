"""The names of a campaign's tables and files, defined once for the whole shell."""

from __future__ import annotations

# Per-cell tables, <table>/<cell_id>.parquet, in commit order: cells last, so a cell is
# "done" only once every other table of it is in place.
CELL_TABLES = ("measurements", "predictions", "kernels", "weights", "cells")
PER_CELL = ("cells", "measurements", "predictions", "kernels", "weights")
AGGREGATES = ("ensembles", "boundaries")  # rebuilt by `aggregate`
STORED_TABLES = PER_CELL + AGGREGATES  # what `load_results` returns
MANIFEST_FILE = "manifest.parquet"
QUARANTINE = "_quarantine"
