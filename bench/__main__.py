"""`python -m bench [--quick] [--json PATH] [--baseline REV] [--databases KINDS]`: runs the
figures of issues 9, 19 and 20 (1, 2 and 4 on SQLite and on PostgreSQL), prints a table with
every target met or not, and writes the results as JSON (to bench/results/ by default).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.databases import KINDS as DATABASE_KINDS
from bench.report import render, summary
from bench.run import FIGURES, FULL, QUICK, RESULTS, results_json, run_figures


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the bench from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument("--json", type=Path, help="where to write the results JSON")
    parser.add_argument(
        "--only", help=f"comma-separated figures to run (default all: {','.join(FIGURES)})"
    )
    parser.add_argument(
        "--fanout-rate",
        type=float,
        help="alert delivery's overall messages per second for figure 3 (Telegram's 30)",
    )
    parser.add_argument(
        "--databases",
        default=",".join(DATABASE_KINDS),
        help="comma-separated databases figures 1, 2 and 4 run on (default: "
        f"{','.join(DATABASE_KINDS)}; PostgreSQL on a throwaway cluster)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="a git revision whose CPU per update is measured beside this tree's (a worktree)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.fanout_rate is not None:
        sizes = dataclasses.replace(sizes, fanout_rate=args.fanout_rate)
    only = tuple(args.only.split(",")) if args.only else FIGURES
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    databases = tuple(args.databases.split(","))
    if set(databases) - set(DATABASE_KINDS) or not databases:
        parser.error(f"databases are some of: {', '.join(DATABASE_KINDS)}")
    # The bot's own info logs would drown the table; warnings and errors still show.
    # As the concierge command does where its process starts: PTB's durations as timedelta.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as workdir:
        figures = asyncio.run(
            run_figures(sizes, Path(workdir), only, baseline=args.baseline, databases=databases)
        )
    seconds = time.perf_counter() - started
    command = "python -m bench" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    print(render(figures))
    print(summary(figures))
    load_after = os.getloadavg()
    print(
        f"\nRan in {seconds:.0f} s on {os.cpu_count()} CPUs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after."
    )
    target = args.json or RESULTS / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = results_json(figures, sizes, command=command, seconds=seconds, load_before=load_before)
    target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"Results: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
