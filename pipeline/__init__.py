"""The shell around tasks/: campaign specs, the Ray scheduler, the Parquet store, the CLI.

`load_results(campaign)` is the Python entry point to a campaign's tables.
"""
from pipeline.results import Results, load_results

__all__ = ["Results", "load_results"]
