"""A campaign's files from one recursive listing, and reads that need nothing else.

On an object store every `exists`, `listdir` and file open is a request (an open is two:
HEAD for the size, then GET). `status` lists the whole campaign once (one request per
1,000 keys) and then reads each Parquet file it needs through a dataset fragment given
the size the listing reported (pyarrow then skips the HEAD): a footer read and one
coalesced read of the columns per file. `live_attempts` and the existence checks are
answered from the same listing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

import results_schema as rs
from pipeline.store.location import Entry, Location
from pipeline.store.reading import VERIFIED_PARQUET, read_readable_files, visible_parquet


@dataclass(frozen=True)
class Listing:
    """Every file below the campaign root (path relative to it -> its entry, with size
    and modification time), as one recursive listing saw it."""

    location: Location
    files: dict[str, Entry]

    @classmethod
    def of(cls, location: Location) -> Listing:
        return cls(location, {e.name: e for e in location.files_under("")})

    def exists(self, rel: str) -> bool:
        return rel in self.files

    def children(self, folder: str) -> list[Entry]:
        """The files directly in `folder` (names relative to it), in name order."""
        prefix = f"{folder}/" if folder else ""
        return [
            Entry(path.removeprefix(prefix), False, e.mtime, e.size)
            for path, e in sorted(self.files.items())
            if path.startswith(prefix) and "/" not in path.removeprefix(prefix)
        ]

    def under(self, folder: str) -> list[Entry]:
        """Every file below `folder` (names relative to it)."""
        prefix = f"{folder}/"
        return [
            Entry(path.removeprefix(prefix), False, e.mtime, e.size)
            for path, e in sorted(self.files.items())
            if path.startswith(prefix)
        ]

    def dataset(self, rels: list[str], schema: pa.Schema) -> pads.Dataset:
        """The files `rels` as one dataset read with `schema`, page CRCs verified, each
        fragment given its listed size (no HEAD request per file)."""
        fragments = [
            VERIFIED_PARQUET.make_fragment(
                self.location.path(rel), self.location.fs, file_size=self.files[rel].size
            )
            for rel in rels
        ]
        return pads.FileSystemDataset(fragments, schema, VERIFIED_PARQUET, self.location.fs)

    def table_files(self, table: str) -> list[str]:
        """The visible Parquet files of `table` (paths relative to the campaign)."""
        return [f"{table}/{e.name}" for e in self.children(table) if visible_parquet(e.name)]

    def read_table(
        self, table: str, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pa.Table:
        """`ParquetStore.read_table` from the listing: the same rows, fewer requests (an
        unreadable file: the same file-by-file fallback, each one named in a warning)."""
        schema = rs.schema_of(table)
        try:
            return self.dataset(self.table_files(table), schema).to_table(
                columns=columns, filter=filter
            )
        except (pa.ArrowException, OSError):
            return read_readable_files(self.location, table, columns, filter)

    def read_file(self, rel: str, schema: pa.Schema, columns: list[str]) -> pa.Table:
        """`columns` of the one file `rel` (which must be listed)."""
        return self.dataset([rel], schema).to_table(columns=columns)

    def read_ids(self, rel: str, schema: pa.Schema) -> tuple[set[str], str | None]:
        """(the cell ids in the one file `rel`, why it does not read or None)."""
        try:
            ids = self.read_file(rel, schema, ["cell_id"])["cell_id"]
        except (pa.ArrowException, OSError) as error:
            return set(), f"{type(error).__name__}: {error}"
        return set(ids.to_pylist()), None
