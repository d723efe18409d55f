"""Whether a campaign location can be written, asked before a run writes anything.

Local: a probe file is created (and deleted at once) in the campaign directory, or in
its nearest existing parent when the campaign is new, so a read-only mount, a missing
permission or a path through a regular file is found while the store is still untouched
(the probe, a hidden name, is gone again when the check returns). Object stores: a probe
object at the campaign prefix, written and deleted.
"""

from __future__ import annotations

import os
import uuid

import pyarrow as pa

from pipeline.store.location import Location, is_uri

PROBE_PREFIX = ".phasegrid-write-probe-"


def unwritable_reason(campaign_uri: str) -> str | None:
    """Why nothing can be written at `campaign_uri` (one line with the fix); None if it can."""
    if is_uri(campaign_uri):
        return _object_store_reason(campaign_uri)
    directory = os.path.abspath(campaign_uri)
    while not os.path.lexists(directory):
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory):
        return (
            f"cannot write the campaign {campaign_uri}: {directory} is a file, not a "
            "directory; choose another --store"
        )
    probe = os.path.join(directory, PROBE_PREFIX + uuid.uuid4().hex[:8])
    try:
        with open(probe, "xb"):
            pass
        os.remove(probe)
    except OSError as err:
        return (
            f"cannot write the campaign {campaign_uri}: {directory} is not writable "
            f"({err.strerror or err}); choose a writable --store, or fix its permissions"
        )
    return None


def _object_store_reason(campaign_uri: str) -> str | None:
    name = PROBE_PREFIX + uuid.uuid4().hex[:8]
    try:
        location = Location.open(campaign_uri)
        location.write_bytes(name, b"")
        location.delete_file(name)
    except (OSError, pa.ArrowException, ValueError) as err:
        return (
            f"cannot write the campaign {campaign_uri} ({type(err).__name__}: {err}); "
            "check the bucket, the credentials (AWS_* variables) and the endpoint"
        )
    return None
