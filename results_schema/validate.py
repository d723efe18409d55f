"""Check a pyarrow Table against the schema of its table, naming every problem."""

from __future__ import annotations

import pyarrow as pa

from results_schema.registry import TABLES


class SchemaError(ValueError):
    """A table does not match its results_schema schema; the message lists each mismatch."""


def schema_of(table_name: str) -> pa.Schema:
    """The schema of `table_name`; unknown names raise with the list of known ones."""
    try:
        return TABLES[table_name]
    except KeyError:
        raise SchemaError(
            f"unknown table {table_name!r}; known tables: {', '.join(sorted(TABLES))}"
        ) from None


def validate(table_name: str, table: pa.Table) -> None:
    """Raise SchemaError unless `table` has exactly the columns of `table_name`'s schema,
    each with the schema's type, and no nulls in non-nullable columns. Column order is free."""
    schema = schema_of(table_name)
    problems = []
    expected, present = set(schema.names), set(table.column_names)  # built once, not per name
    missing = [n for n in schema.names if n not in present]
    extra = [n for n in table.column_names if n not in expected]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unknown columns {extra} (add them to results_schema first)")
    for field in schema:
        if field.name not in present:
            continue
        column = table.column(field.name)
        if column.type != field.type:
            problems.append(
                f"column {field.name!r} has type {column.type}, schema says {field.type}"
            )
        if not field.nullable and column.null_count:
            problems.append(
                f"column {field.name!r} has {column.null_count} nulls but may not be null"
            )
    if problems:
        raise SchemaError(
            f"table {table_name!r} does not match results_schema: " + "; ".join(problems)
        )
