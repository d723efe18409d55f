"""`make bench` = `python -m benchmarks`: every row side by side, one table, results
appended to benchmarks/results/bench.csv (see benchmarks/README.md).

    python -m benchmarks [--only ROW ...] [--quick] [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from benchmarks.suite import ROWS

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ROWS,
        metavar="ROW",
        help=f"run only this row (repeatable): {', '.join(ROWS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (seconds, for the smoke test; numbers meaningless)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for every row (default 1: one Ray task per core; "
        "more threads spin against other load on a shared machine)",
    )
    parser.add_argument(
        "--tune-fresh-workers",
        action="store_true",
        help="Ray Tune with its default reuse_actors=False (a new worker process "
        "per trial; minutes for 200 cells)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not append to the results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # fresh processes (ntk) inherit it
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.common import append_results, machine, table, unavailable
    from benchmarks.suite import BENCHMARKS, ROWS

    info = machine(args.device, args.threads)
    print(f"phasegrid benchmarks on {info}", flush=True)
    rows, failed, start = [], [], time.perf_counter()
    for name in args.only or ROWS:
        began = time.perf_counter()
        try:
            new = BENCHMARKS[name](
                quick=args.quick, device=args.device, tune_fresh_workers=args.tune_fresh_workers
            )
        except Exception as err:  # one broken row must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
            new = [unavailable(name, "-", f"FAILED: {type(err).__name__}: {err}"[:300])]
        rows += new
        print(f"[{name}: {time.perf_counter() - began:.0f} s]", flush=True)
    print(table(rows))
    print(
        f"total {time.perf_counter() - start:.0f} s; load average at the end "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    if not args.no_save:
        print(f"appended to {append_results(rows, {**info, 'quick': args.quick})}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
