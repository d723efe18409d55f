"""Every stored table by name: the per-cell tables (tables.py) and the aggregates
(aggregates.py). Add a new table's schema here."""

from __future__ import annotations

import pyarrow as pa

from results_schema.aggregates import AGGREGATE_TABLES
from results_schema.tables import TABLES as CELL_TABLES

TABLES: dict[str, pa.Schema] = {**CELL_TABLES, **AGGREGATE_TABLES}
