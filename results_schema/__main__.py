"""`python -m results_schema` prints the column reference (results_schema/README.md)."""

from results_schema.doc import markdown

print(markdown(), end="")
