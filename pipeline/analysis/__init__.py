"""Pure analysis of campaign tables: seed ensembles, boundaries, refinement planning.

No file or Ray I/O here: every function takes DataFrames and returns DataFrames."""
