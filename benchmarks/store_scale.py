"""store-scale: what the store's commands cost as a campaign grows (issue 16).

    .venv/bin/python -m benchmarks --only store-scale

For each size, a campaign is synthesised through the store's own write path, without
training (benchmarks/store_synthesis.py: one real stripe cell's rows repeated under every
cell of a grid of that size). Up to PER_CELL_MAX cells it is written one file per cell and
table, then compacted (`compact`, timed); above, straight into compacted parts
(`write_compacted`: one file per table and 4,096 cells, as `compact` leaves them), since
writing 4·10⁵ small files alone takes an hour here. Then, each command in its own process
(wall seconds and peak resident set; `phasegrid ...` commands include the interpreter's
start-up, the probes time the call alone):
    status, load_results(tables=["cells"]), measurements filtered to one width — on the
    per-cell store (the baseline, up to PER_CELL_MAX) and compacted;
    run with nothing to do, aggregate, one more cell's commit, and the compaction of that
    one cell.
Rows: seconds per command and size (ours = compacted, baseline = per cell where both are
measured), then the growth exponent of each command over the sizes (slope of log time
against log cells; 1 = linear, 0 = independent of the campaign) and the peak memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Row
from benchmarks.store_synthesis import WIDTHS, synthesize

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (8, 16)
PER_CELL_MAX = 1_000  # larger campaigns are synthesised compacted (see the docstring)
PHASEGRID = str(Path(sys.executable).parent / "phasegrid")
WRAPPER = (  # runs argv[1:], prints its wall and CPU seconds and peak RSS (MiB) as JSON
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "s = time.perf_counter() - t\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "peak, cpu = use.ru_maxrss / 1024, use.ru_utime + use.ru_stime\n"
    "print(json.dumps({'seconds': s, 'peak_mib': peak, 'cpu_seconds': cpu, 'rc': r.returncode,"
    " 'out': r.stdout[-400:], 'err': r.stderr[-800:]}))\n"
)


def measure(*argv: str) -> dict:
    """Run argv in a fresh process; its wall seconds and peak resident set."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result['err']}")
    return result


def probe(what: str, campaign: str) -> dict:
    """`python -m benchmarks.store_scale WHAT CAMPAIGN` in a fresh process: the seconds
    of the call alone (imports excluded) printed as JSON, plus the process's peak RSS."""
    result = measure(sys.executable, "-m", "benchmarks.store_scale", what, campaign)
    return {**json.loads(result["out"].strip().splitlines()[-1]), "peak_mib": result["peak_mib"]}


def commands(spec: Path, campaign: str) -> dict[str, tuple[str, ...]]:
    return {
        "status": (PHASEGRID, "status", campaign),
        "run with nothing to do": (
            PHASEGRID,
            "run",
            str(spec),
            "--store",
            str(Path(campaign).parent),
        ),
        "aggregate": (PHASEGRID, "aggregate", campaign),
    }


PROBES = ("load cells", "measurements of one width")


def one_size(root: Path, n: int, per_cell_max: int = PER_CELL_MAX) -> dict[str, dict]:
    """Every measurement at one size: name -> {seconds, peak_mib[, baseline]}."""
    spec, campaign, made = synthesize(root, n, per_cell=n <= per_cell_max)
    out: dict[str, dict] = {"synthesis": {"seconds": made, "peak_mib": float("nan")}}
    per_cell = {}
    if n <= per_cell_max:
        per_cell = {"status": measure(*commands(spec, campaign)["status"])}
        per_cell |= {name: probe(name, campaign) for name in PROBES}
        out["compact (whole campaign)"] = probe("compact", campaign)
    for name, argv in commands(spec, campaign).items():
        out[name] = measure(*argv)
    out |= {name: probe(name, campaign) for name in PROBES}
    out["commit of one cell"] = probe("commit one", campaign)
    out["compact (that one cell)"] = probe("compact", campaign)
    for name, baseline in per_cell.items():
        out[name]["baseline"] = baseline["seconds"]
        out[name]["baseline_peak_mib"] = baseline["peak_mib"]
    return out


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log seconds against log cells (NaN below two sizes)."""
    if len(sizes) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def s3_status_requests(root: Path, n: int) -> Row:
    """The requests `phasegrid status --json` makes (the state alone: the same reads as
    `status` without its boundary-bracket table) on a compacted campaign of `n` cells on
    a local S3 (moto), counted server side; seconds: the whole command, start-up included."""
    from benchmarks.s3_requests import CountingS3

    with CountingS3() as s3:
        _, campaign, _ = synthesize(root, n, store=s3.bucket("phase"))
        start = time.perf_counter()
        shown, requests = s3.counted(
            lambda: subprocess.run(
                [PHASEGRID, "status", campaign, "--json"], capture_output=True, text=True
            )
        )
        seconds = time.perf_counter() - start
    status = json.loads(shown.stdout) if shown.returncode == 0 else {}
    if not status or status["done"] != status["total"]:
        raise RuntimeError(f"status on S3 failed or the campaign is not all done: {shown}")
    kinds = {m: sum(1 for r in requests if r[0] == m) for m in ("GET", "HEAD")}
    lists = sum(1 for r in requests if "list-type" in r[2])
    return Row(
        "store-scale",
        f"status on S3, {n} cells: requests",
        float(len(requests)),
        20.0,
        "target (issue 16)",
        "requests",
        20.0 / len(requests),
        1.0,
        f"{lists} listing, {kinds['GET'] - lists} GET, {kinds['HEAD']} HEAD; {seconds:.2f} s",
        {"requests": requests, "seconds": seconds},
    )


def run(
    sizes: tuple[int, ...] = SIZES, per_cell_max: int = PER_CELL_MAX, s3_cells: int = 0
) -> list[Row]:
    """The rows: seconds per command and size, then each command's growth exponent, then
    (with `s3_cells`) the requests of `status` on S3 at that size."""
    measured: dict[int, dict[str, dict]] = {}
    s3_row = []
    with tempfile.TemporaryDirectory(prefix="store-scale-") as root:
        if s3_cells:
            s3_row.append(s3_status_requests(Path(root) / "s3", s3_cells))
        for n in sizes:
            measured[n] = one_size(Path(root) / str(n), n, per_cell_max)
            print(f"store-scale: {n} cells measured", flush=True)
    names = list(dict.fromkeys(k for n in sizes for k in measured[n] if k != "synthesis"))
    rows = []
    for n in sizes:
        for name in [k for k in [*names, "synthesis"] if k in measured[n]]:
            rows.append(_size_row(name, n, measured[n][name]))
    for name in names:
        at = [n for n in sizes if name in measured[n]]
        seconds = [measured[n][name]["seconds"] for n in at]
        slope = exponent(at, seconds)
        rows.append(
            Row(
                "store-scale",
                f"{name}: growth exponent",
                slope,
                1.0,
                "linear",
                "exponent",
                slope / 1.0,
                None,
                f"over {at} cells",
                {"sizes": at, "seconds": seconds},
            )
        )
    return rows + s3_row


def _size_row(name: str, n: int, m: dict) -> Row:
    base = m.get("baseline", float("nan"))
    note = f"peak {m['peak_mib']:.0f} MiB"
    if "cpu_seconds" in m:
        note += f", CPU {m['cpu_seconds']:.3g} s"
    if "baseline_peak_mib" in m:
        note += f" (per cell: {m['baseline_peak_mib']:.0f} MiB)"
    return Row(
        "store-scale",
        f"{name}, {n} cells",
        m["seconds"],
        base,
        "per-cell store",
        "s",
        base / m["seconds"],
        None,
        note,
        m,
    )


def _probe_main(what: str, campaign: str) -> None:
    from pipeline.store.campaign_store import ParquetStore
    from pipeline.store.compaction import compact
    from pipeline.store.results import load_results

    start = time.perf_counter()
    if what == "load cells":
        rows = len(load_results(campaign, tables=["cells"]).cells)
    elif what == "measurements of one width":
        rows = len(
            load_results(
                campaign, tables=["measurements"], filters=[("width", "=", WIDTHS[1])]
            ).measurements
        )
    elif what == "compact":
        store = ParquetStore.open(campaign)
        with store.lock():
            rows = compact(store.location).cells
    elif what == "commit one":
        rows, start = _commit_one(ParquetStore.open(campaign))
    else:
        raise SystemExit(f"unknown probe {what!r}")
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))


def _commit_one(store) -> tuple[int, float]:
    """Commit the rows of one stored cell again under a new id (the store's write path);
    returns (rows committed, the moment the commit began)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cell = store.read_table("cells", ["cell_id"])["cell_id"][0].as_py()
    wanted = pc.field("cell_id") == cell
    tables = {}
    for name in ("measurements", "predictions", "kernels", "cells"):
        table = store.read_table(name, None, wanted)
        index = table.schema.get_field_index("cell_id")
        tables[name] = table.set_column(
            index, "cell_id", pa.array(["0123456789abcdef"] * len(table), pa.string())
        )
    start = time.perf_counter()
    store.commit("0123456789abcdef", tables)
    return sum(t.num_rows for t in tables.values()), start


if __name__ == "__main__":
    _probe_main(sys.argv[1], sys.argv[2])
