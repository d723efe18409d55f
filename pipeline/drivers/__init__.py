"""The commands behind the CLI: run, resume, refine, status, aggregate, plot, download."""
