"""`make reproduce`: the paper's phenomena at CPU scale, run end to end and written up.

    python -m reproduction                       # every campaign of campaigns/reproduce/
    python -m reproduction --only stripe_curves  # a subset (repeat --only)
    python -m reproduction --report-only         # rewrite docs from what is stored

Each campaign of campaigns/reproduce/ goes through the real pipeline: `run_campaign` on
embedded Ray (one Ray session for all of them), `aggregate_campaign`, `plot_campaign`
(PNGs under <store>/<name>/figures/). Then reproduction.claims measures each claim of the paper
on every campaign present in the store, small copies of the figures go to docs/figures/,
and docs/reproduction.md is written (reproduction.report).

Resumable: the store keeps every finished cell, so running again skips them and only the
cells still missing are trained. A campaign whose dataset is absent (Fashion-MNIST without
Debian's dataset-fashion-mnist) is skipped with the reason. Wall times of the runs that did
work are added up in <store>/reproduce-log.json, which the report quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Relative to the working directory (`make reproduce` runs in the checkout); all three are
# arguments, so an installed phasegrid reproduces into any folder.
CAMPAIGNS = Path("campaigns") / "reproduce"
DEFAULT_STORE = "results/reproduce"
DOCS = Path("docs")
LOG_FILE = "reproduce-log.json"
PRINT_SECONDS = 20.0
# Order of the runs: the cheapest first, so that a partial run still says something;
# features_alignment before features_compressed, whose perpendicular_scale it measures.
ORDER = (
    "jamming_random",
    "jamming_mnist",
    "stripe_curves",
    "features_alignment",
    "features_compressed",
    "features_kpca",
    "features_cnn",
    "fashion_regimes",
    "mnist_phase",
)


def gpu_hours_estimate(
    widths,
    n_alpha: int,
    n_seeds: int,
    train_size: int,
    dimension: int,
    steps_per_cell: float,
    members: int = 1,
    flops_per_second: float = 5e12,
    latency_seconds: float = 1e-3,
    rejection_factor: float = 1.05,
) -> float:
    """Estimated GPU-hours of an FC L = 2 (no bias) grid whose bundles of `members` cells
    train as one batched ensemble: each bundle step costs
    members · 6·P·N / flops_per_second + latency (N = d·h + h² + h), times
    steps_per_cell · rejection_factor, summed over every bundle. An estimate (the headers of
    campaigns/paper_*.toml quote it), not a measurement."""
    n = np.array([dimension * h + h * h + h for h in widths], float)
    step = members * 6.0 * train_size * n / flops_per_second + latency_seconds
    bundles_per_width = n_alpha * n_seeds / members
    return float(bundles_per_width * step.sum() * steps_per_cell * rejection_factor / 3600)


def reproductions(directory: Path = CAMPAIGNS) -> dict[str, Path]:
    """{file stem: TOML} of the reproduction campaigns, in ORDER (unknown stems last)."""
    found = {p.stem: p for p in sorted(directory.glob("*.toml"))}
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


class PrintProgress:
    """pipeline.drivers.run.Progress as a line every PRINT_SECONDS (and at the end): plain
    text, so `make reproduce > log` and `nohup` stay readable."""

    def __init__(self, name: str, every: float = PRINT_SECONDS):
        self.name, self.every, self.start, self.last = name, every, time.monotonic(), 0.0

    def update(self, done: int, failed: int, running: int, total: int) -> None:
        now = time.monotonic()
        finished = done + failed
        if finished < total and now - self.last < self.every:
            return
        self.last, elapsed = now, now - self.start
        eta = f", ETA {elapsed / finished * (total - finished) / 60:.1f} min" if finished else ""
        print(
            f"  [{self.name}] {finished}/{total} cells ({failed} failed, {running} running), "
            f"{elapsed / 60:.1f} min{eta}",
            flush=True,
        )


@dataclass(frozen=True)
class Outcome:
    """One campaign of a driver run: where it is, the seconds its run took, or why not."""

    name: str
    campaign: str | None
    run_seconds: float = 0.0
    cells_run: int = 0
    skipped: str | None = None


def run_one(name: str, spec_path: Path, store: str, address: str | None) -> Outcome:
    """Run (or finish) one campaign, then aggregate it and draw its figures."""
    from pipeline.drivers.aggregate import aggregate_campaign
    from pipeline.drivers.plot import plot_campaign
    from pipeline.drivers.run import run_campaign
    from pipeline.spec.campaign import SpecError, load_campaign

    try:
        spec = load_campaign(spec_path)
    except SpecError as err:
        print(f"[{name}] skipped: {err}", flush=True)
        return Outcome(name, None, skipped=str(err).splitlines()[-1])
    print(f"[{name}] {spec.n_cells} cells: {spec.description}", flush=True)
    summary = run_campaign(spec_path, store, address, PrintProgress(name))
    print(f"[{name}] {summary.describe()}", flush=True)
    print(f"[{name}] {aggregate_campaign(summary.campaign).summary()}", flush=True)
    plot_campaign(summary.campaign, formats=("png",))
    ran = summary.done + summary.failed
    return Outcome(name, summary.campaign, summary.wall_seconds if ran else 0.0, ran)


def machine() -> str:
    """CPU model, cores and load, for the report."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, {platform.system()} (load average {load})"


def update_log(
    store: str, outcomes: list[Outcome], total_seconds: float, machine_at_start: str = ""
) -> dict:
    """Add this run's seconds to <store>/reproduce-log.json; returns the whole log."""
    path = Path(store) / LOG_FILE
    log = json.loads(path.read_text()) if path.exists() else {"campaigns": {}, "runs": []}
    for o in outcomes:
        entry = log["campaigns"].setdefault(o.name, {"run_seconds": 0.0, "cells_run": 0})
        entry["run_seconds"] += o.run_seconds
        entry["cells_run"] += o.cells_run
    if any(o.cells_run for o in outcomes):
        log["runs"].append(
            {
                "seconds": total_seconds,
                "cells_run": sum(o.cells_run for o in outcomes),
                "campaigns": [o.name for o in outcomes if o.cells_run],
                "machine_at_start": machine_at_start,
                "machine": machine(),
                "finished": time.strftime("%Y-%m-%d %H:%M"),
            }
        )
    from reproduction.report import write_atomically

    write_atomically(path, json.dumps(log, indent=1).encode())
    return log


def run_all(names: list[str], store: str, address: str | None, directory: Path) -> list[Outcome]:
    """Run the campaigns `names` (stems) on one Ray session, in ORDER."""
    from pipeline.execute.ray_session import start_ray

    available = reproductions(directory)
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise SystemExit(f"unknown reproduction(s) {unknown}; choose from {list(available)}")
    session = start_ray(address)
    try:
        return [run_one(n, p, store, address) for n, p in available.items() if n in names]
    finally:
        session.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reproduction",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this campaign (file stem in campaigns/reproduce/); repeat",
    )
    parser.add_argument("--store", default=DEFAULT_STORE, help="where the campaigns live")
    parser.add_argument("--docs", default=str(DOCS), help="where reproduction.md and figures/ go")
    parser.add_argument("--campaigns", default=str(CAMPAIGNS), help="folder of the specs")
    parser.add_argument("--address", default=None, help="Ray cluster (default: embedded)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: re-aggregate and rewrite the report",
    )
    args = parser.parse_args(argv)
    directory = Path(args.campaigns)
    names = list(reproductions(directory))
    if args.only:  # file stems; campaign names (with '-') work too
        names = [n.replace("-", "_") for n in args.only]
    start, at_start = time.monotonic(), machine()
    print(f"reproduce: {', '.join(names)} into {args.store} on {at_start}", flush=True)
    outcomes = [] if args.report_only else run_all(names, args.store, args.address, directory)
    log = update_log(args.store, outcomes, time.monotonic() - start, at_start)
    from reproduction.report import write_report

    path = write_report(args.store, Path(args.docs), reproductions(directory), log)
    print(f"reproduce: wrote {path} in {(time.monotonic() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
