"""The figures, the sizes they run at, and the JSON a run leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import platform
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.databases import KINDS as DATABASE_KINDS
from bench.databases import SQLITE, Databases
from bench.report import Figure

RESULTS = Path(__file__).resolve().parent / "results"
T = TypeVar("T")
# Figure 1 with its three sides takes about 15 minutes on two cores busy with other work
# (PostgreSQL, load 30); well past that, something hangs.
FIGURE_LIMIT_SECONDS = 1800.0
FIGURES = ("throughput", "persistence", "fanout", "handler_time", "memory", "cpu", "cluster")
# Issue 20: these also run on PostgreSQL, what a deployment uses.
ON_EVERY_DATABASE = ("throughput", "persistence", "handler_time")
_SUFFIXES = tuple(f"_{kind}" for kind in DATABASE_KINDS if kind != SQLITE)
POSTGRES_NOTE = (
    "On PostgreSQL: a throwaway cluster on this machine over loopback, as the tests start one "
    "(sandbox/postgres.py), with fsync and synchronous_commit off: a durable server's commits "
    "cost more."
)


@dataclass(frozen=True)
class Sizes:
    """How big each figure's workload is."""

    residents: int
    vendor_latencies: tuple[float, ...]
    sequential_sample: int  # residents PTB's sequential side is measured on above 0 ms
    stored_conversations: tuple[int, ...]
    persistence_updates: int
    pickle_budget: int  # stored × updates PicklePersistence writes per size, at most
    recipients: int
    fanout_rate: float
    fanout_several: int  # alerts each for some recipients...
    fanout_several_every: int  # ...every this many-th
    memory_conversations: int
    cpu_residents: int  # measured one update at a time, on each checkout
    cluster_residents: int = 300


FULL = Sizes(
    residents=1000,
    vendor_latencies=(0.0, 0.05, 0.2),
    sequential_sample=10,
    stored_conversations=(1_000, 10_000, 100_000),
    persistence_updates=300,
    pickle_budget=50_000,
    recipients=1500,
    fanout_rate=30.0,
    fanout_several=7,
    fanout_several_every=100,
    memory_conversations=100_000,
    cpu_residents=100,
)
QUICK = Sizes(
    residents=200,
    vendor_latencies=(0.0, 0.05, 0.2),
    sequential_sample=10,
    stored_conversations=(1_000, 10_000),
    persistence_updates=100,
    pickle_budget=20_000,
    recipients=300,
    fanout_rate=30.0,
    fanout_several=7,
    fanout_several_every=50,
    memory_conversations=10_000,
    cpu_residents=40,
)
# For the smoke test: every code path, next to no time; the figures mean nothing at this size.
TINY = Sizes(
    residents=6,
    vendor_latencies=(0.0, 0.005),
    sequential_sample=2,
    stored_conversations=(20, 60),
    persistence_updates=4,
    pickle_budget=100,
    recipients=12,
    fanout_rate=30.0,
    fanout_several=3,
    fanout_several_every=6,
    memory_conversations=50,
    cpu_residents=4,
    cluster_residents=6,
)


async def _timed(name: str, work: Awaitable[T]) -> tuple[T, float]:
    """The figure's result and its seconds; a hung run ends the bench instead of waiting."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(FIGURE_LIMIT_SECONDS):
            result = await work
    except TimeoutError:
        limit = f"{FIGURE_LIMIT_SECONDS:.0f} s"
        raise RuntimeError(f"{name} ran over {limit} and was stopped") from None
    return result, time.perf_counter() - started


async def _figure(name: str, work: Awaitable[Figure]) -> Figure:
    figure, seconds = await _timed(name, work)
    figure.seconds = seconds
    return figure


async def run_figures(
    sizes: Sizes,
    workdir: Path,
    only: Sequence[str] = FIGURES,
    *,
    baseline: str | None = None,
    databases: Sequence[str] = DATABASE_KINDS,
) -> list[Figure]:
    """Runs the chosen figures (in the issue's order) and returns them; `baseline` is a git
    revision whose CPU per update is measured beside this tree's. Figures 1, 2 and 4 run on
    each of `databases` (PostgreSQL on a throwaway cluster); the others on SQLite."""
    from bench.cluster import run_cluster
    from bench.cpu import run_cpu
    from bench.fanout import run_fanout
    from bench.memory import run_memory
    from sandbox.postgres import throwaway_server

    done: dict[str, Figure] = {}
    with contextlib.ExitStack() as servers:
        for kind in databases:
            if not set(only) & set(ON_EVERY_DATABASE):
                break
            if kind == SQLITE:
                place = Databases(workdir)
            else:
                folder = workdir / kind
                folder.mkdir(exist_ok=True)
                place = Databases(folder, servers.enter_context(throwaway_server()))
            found = await _on_database(sizes, place, only)
            for figure in found:
                if kind != SQLITE:
                    figure.key = f"{figure.key}_{kind}"
                    figure.notes.append(POSTGRES_NOTE)
                if len(databases) > 1:
                    figure.title += f" — {place.label}"
                done[figure.key] = figure
    if "fanout" in only:
        done["fanout"] = await _figure(
            "fanout",
            run_fanout(
                recipients=sizes.recipients,
                rate=sizes.fanout_rate,
                several=sizes.fanout_several,
                every=sizes.fanout_several_every,
                workdir=workdir,
            ),
        )
    if "memory" in only:
        done["memory"] = await _figure(
            "memory", run_memory(stored=sizes.memory_conversations, workdir=workdir)
        )
    if "cpu" in only:
        done["cpu"] = await _figure(
            "cpu", run_cpu(residents=sizes.cpu_residents, baseline=baseline, workdir=workdir)
        )
    if "cluster" in only:
        done["cluster"] = await _figure(
            "cluster", run_cluster(residents=sizes.cluster_residents, workdir=workdir)
        )
    keys = [f"{key}{suffix}" for key in FIGURES for suffix in ("", *_SUFFIXES)]
    return [done[key] for key in keys if key in done]


async def _on_database(sizes: Sizes, databases: Databases, only: Sequence[str]) -> list[Figure]:
    """Figures 1, 4 and 2 on one kind of database, those of them chosen."""
    from bench.child_server import ChildServer
    from bench.harness import prepare_community
    from bench.persistence_cost import run_persistence_cost
    from bench.sandbox_server import HEALTH_PATH
    from bench.throughput import COMMUNITY, run_throughput

    found: list[Figure] = []
    if "throughput" in only or "handler_time" in only:
        # The sandbox in its own process: the bot's process then spends its CPU on the bot.
        async with ChildServer("bench.sandbox_server", [], health=HEALTH_PATH) as sandbox:
            community = await prepare_community(
                databases.directory,
                sizes.residents,
                sandbox_url=sandbox.base,
                database_url=await databases.fresh(COMMUNITY),
            )
            (throughput, handler), seconds = await _timed(
                "throughput",
                run_throughput(
                    community,
                    latencies=sizes.vendor_latencies if "throughput" in only else (0.0,),
                    sample_residents=sizes.sequential_sample,
                    databases=databases,
                ),
            )
        # One set of runs measures both figures; the time is the throughput figure's.
        throughput.seconds = seconds
        found += [f for f in (throughput, handler) if f.key in only]
    if "persistence" in only:
        found.append(
            await _figure(
                "persistence",
                run_persistence_cost(
                    sizes=sizes.stored_conversations,
                    updates=sizes.persistence_updates,
                    pickle_budget=sizes.pickle_budget,
                    databases=databases,
                ),
            )
        )
    return found


def results_json(
    figures: Sequence[Figure],
    sizes: Sizes,
    *,
    command: str,
    seconds: float,
    load_before: Sequence[float] = (),
) -> dict[str, Any]:
    """Everything a run found, with what it ran on."""
    return {
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine slows every figure; these say how busy it was.
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "sizes": dataclasses.asdict(sizes),
        "figures": {figure.key: figure.to_json() for figure in figures},
    }
