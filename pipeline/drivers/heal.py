"""A campaign whose spec.json or manifest.parquet is damaged is rebuilt, not refused: both
derive from the stored spec (issue 13, case 7).

- spec.json unreadable (truncated, not JSON): the spec is read from spec.toml, the TOML
  the campaign was run with, and spec.json rewritten from it by `resume`;
- manifest.parquet unreadable: `resume`'s take-over moves it to _quarantine/
  (pipeline/store/quarantine.py); `heal` then writes it again from the spec's cells.
Done cells are untouched: they are in cells/, keyed by cell_id, which the spec reproduces.
Cells added by `refine` outside the spec's grid are not in a rebuilt manifest; a later
`refine` plans them again from the done cells.
"""

from __future__ import annotations

import json
import tomllib

from pipeline.drivers.sources import resolve_sources
from pipeline.spec.campaign import CampaignSpec, parse_campaign
from pipeline.spec.overrides import with_overrides_applied
from pipeline.store.campaign_store import CampaignNotFoundError, ParquetStore
from pipeline.store.names import MANIFEST_FILE
from pipeline.store.rows import manifest_table


def spec_json_problem(store: ParquetStore) -> str | None:
    """Why spec.json cannot be read (None when it can)."""
    try:
        store.read_spec()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"spec.json unreadable ({type(err).__name__}: {err})"
    return None


def readable_spec(store: ParquetStore) -> CampaignSpec:
    """The stored spec: from spec.json, else from spec.toml. Reads only. Raises
    CampaignNotFoundError, with the fix, when neither can be read."""
    if spec_json_problem(store) is None:
        return parse_campaign(store.read_spec(), f"{store.uri}/spec.json")
    try:
        raw = with_overrides_applied(store.read_spec_toml(), f"{store.uri}/spec.toml")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CampaignNotFoundError(
            f"{store.uri}: spec.json and spec.toml are both unreadable ({err}); run the "
            "campaign's spec again with `phasegrid run SPEC.toml --store <its parent>` "
            "(done cells are kept)"
        ) from None
    return resolve_sources(parse_campaign(raw, f"{store.uri}/spec.toml"))


def heal(store: ParquetStore) -> tuple[CampaignSpec, tuple[str, ...]]:
    """Rewrite a damaged spec.json (from spec.toml) and a missing manifest (from the
    spec's cells). Call while holding the campaign, after the take-over. Returns the spec
    and one line per repair."""
    repairs = []
    problem = spec_json_problem(store)
    spec = readable_spec(store)
    if problem:
        store.write_spec(spec.to_dict(), store.read_spec_toml())
        repairs.append(f"rebuilt spec.json from spec.toml ({problem})")
    if not store.location.exists(MANIFEST_FILE):
        added = store.extend_manifest(manifest_table(spec.cells()))
        repairs.append(f"rebuilt {MANIFEST_FILE} from the stored spec ({added} cells)")
    return spec, tuple(repairs)
