"""The shell around tasks/: campaign specs, the Ray scheduler, the Parquet store, the CLI.

`load_results(campaign)` is the Python entry point to a campaign's tables. It is
imported lazily so that `import pipeline.spec.campaign` (and the CLI's --help) stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.store.results import Results, load_results

__all__ = ["Results", "load_results"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipeline.store import results

        return getattr(results, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
