"""Which files of a campaign have been read in full (every page CRC checked) and are
unchanged since: `_verified.parquet`, one row per file (path, size, mtime).

A driver taking the campaign over reads in full only the files that are new or changed
since the last take-over (a commit, a compaction, damage from outside all change a file's
size or time), so a campaign with nothing new costs one listing per table, not a read of
every row. `phasegrid resume --deep` (and a campaign whose registry is unreadable) reads
every file again.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.store.listing import Listing
from pipeline.store.location import Entry, Location

REGISTRY = "_verified.parquet"
SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime", pa.string())])


def signature(entry: Entry) -> tuple[int | None, str]:
    """What identifies one version of a file: its size and modification time."""
    return entry.size, entry.mtime.isoformat() if entry.mtime else ""


def read_registry(
    location: Location, listing: Listing | None = None
) -> dict[str, tuple[int | None, str]]:
    """path -> signature of every file verified before; empty if none (or unreadable:
    then everything is read again, which is only slower). `listing`: the campaign as
    listed already (no existence check, no HEAD)."""
    if not (location.exists(REGISTRY) if listing is None else listing.exists(REGISTRY)):
        return {}
    try:
        if listing is None:
            rows = location.read_parquet(REGISTRY).to_pydict()
        else:
            rows = listing.read_file(REGISTRY, SCHEMA, SCHEMA.names).to_pydict()
    except (pa.ArrowException, OSError):
        return {}
    return {p: (s, m) for p, s, m in zip(rows["path"], rows["size"], rows["mtime"])}


def write_registry(
    location: Location,
    files: dict[str, Entry],
    also: dict[str, tuple[int | None, str]] | None = None,
) -> None:
    """Record `files` (path -> its entry as listed) and `also` (path -> signature) as
    verified, replacing the registry."""
    known = {**(also or {}), **{p: signature(e) for p, e in files.items()}}
    paths = sorted(known)
    signatures = [known[p] for p in paths]
    table = pa.table(
        {"path": paths, "size": [s for s, _ in signatures], "mtime": [m for _, m in signatures]},
        schema=SCHEMA,
    )
    location.write_parquet(REGISTRY, table)


def record(location: Location, tables: tuple[str, ...], written: set[str]) -> None:
    """After a compaction: the files of `tables` that were verified and are unchanged stay
    recorded, the files at the paths `written` (built from verified rows) join them, and
    files that are gone leave the registry."""
    known = read_registry(location)
    listed = {
        f"{table}/{e.name}": e for table in tables for e in location.listdir(table) if not e.is_dir
    }
    keep = {
        path: entry
        for path, entry in listed.items()
        if path in written or known.get(path) == signature(entry)
    }
    others = {path: sig for path, sig in known.items() if path.split("/")[0] not in tables}
    write_registry(location, keep, others)
