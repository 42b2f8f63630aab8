"""Figures 1 and 4: updates/s and latency, Concierge's processor against PTB's sequential
default and PTB's own concurrent processing; and the handlers' own time per update, vendor time
taken out.

Every resident's flow arrives at once, everyone's first step first (a backlog, as getUpdates
hands it over); latency runs from queueing an update to the end of its handling. Each side runs
on its own copy of the same database, against the same sandbox, with the same updates.

PTB's sequential side handles one update at a time, so at 50 and 200 ms of vendor latency a
thousand residents would take many minutes. There it is measured on a sample of residents and
the whole backlog is replayed from the sample's measured per-update times (one FIFO server:
each update ends when all before it have ended, plus its own time). The output says so.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram.ext import BaseUpdateProcessor

from bench.harness import (
    Busy,
    Community,
    Handled,
    Resident,
    TimedConcurrentProcessor,
    TimedPerChatProcessor,
    TimedSequentialProcessor,
    Timings,
    feed,
    interleaved,
    percentile,
    running_bot,
    set_remote_latency,
    set_vendor_latency,
)
from bench.report import Figure, Target
from conversations.flowkit import CANCELLED, CLOSED

if TYPE_CHECKING:
    from bench.databases import Databases

CONCIERGE = "concierge"
PTB = "ptb_sequential"
PTB_CONCURRENT = "ptb_concurrent"
SIDE_NAMES = {
    CONCIERGE: "Concierge (per-chat)",
    PTB: "PTB default (sequential)",
    PTB_CONCURRENT: "PTB concurrent_updates",
}
MAX_RUNNING = 64  # the bot's default, Settings.max_concurrent_updates
# At 0 ms both sides are bound by the CPU and within noise of each other, so each runs this
# many times (alternating) and keeps its best; on a shared machine one run can be unlucky.
ZERO_LATENCY_ROUNDS = 2
HANDLER_TARGET_MS = 10.0  # issue 20's, the persistence flushing or not
SPEEDUP_TARGET = 10.0
# Concierge keeps each chat's order; PTB's concurrent processing does not, which is the most a
# PTB bot can do, so it is the yardstick Concierge must come close to.
CONCURRENT_SHARE_TARGET = 0.9
FLOW_ENDS = frozenset({CANCELLED, CLOSED})  # English: the bench's residents speak it
COMMUNITY = "community"  # the template database `prepare_community` fills
COPIES = itertools.count(1)  # every copy of the community gets a name of its own


class BenchFailure(RuntimeError):
    """The workload cannot be measured as described."""


@dataclass(frozen=True)
class Run:
    """One side at one vendor latency, measured."""

    side: str
    latency: float
    residents: int
    records: list[Handled]
    labels: dict[int, str]
    queued: float
    out_of_order: int
    errors: int
    finished_flows: int
    cpu_seconds: float
    persistence_busy: Busy = field(default_factory=Busy)

    @property
    def makespan(self) -> float:
        """From queueing the backlog to the end of its last update."""
        return max(r.ended for r in self.records) - self.queued

    def figures(self) -> dict[str, Any]:
        """Updates per second and latency percentiles, as measured."""
        latencies = [r.latency for r in self.records]
        return {
            "measured": "all residents",
            "residents": self.residents,
            "updates": len(self.records),
            "seconds": round(self.makespan, 3),
            "updates_per_s": round(len(self.records) / self.makespan, 2),
            "cpu_ms_per_update": round(self.cpu_seconds / len(self.records) * 1000, 2),
            "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "errors": self.errors,
            "out_of_order": self.out_of_order,
            "flows_finished": self.finished_flows,
        }


def _label(step: str) -> str:
    return "button: open a repair" if step.startswith("press:") else step


async def measure(
    community: Community,
    residents: Sequence[Resident],
    *,
    side: str,
    latency: float,
    databases: Databases,
) -> Run:
    """Runs every flow of `residents` through one side, on its own copy of the community's
    database, and times each update."""
    steps = interleaved(residents)
    timings = Timings(len(steps))
    processor: BaseUpdateProcessor
    if side == CONCIERGE:
        processor = TimedPerChatProcessor(timings, MAX_RUNNING)
    elif side == PTB_CONCURRENT:
        processor = TimedConcurrentProcessor(timings, MAX_RUNNING)
    else:
        processor = TimedSequentialProcessor(timings)
    name = f"{side}-{round(latency * 1000)}ms-{len(residents)}-{next(COPIES)}"
    database = await databases.copy(COMMUNITY, name)
    await _set_latency(community, latency)
    cpu_before = _cpu_seconds()
    try:
        async with running_bot(
            database, community.sandbox, processor, sandbox_url=community.sandbox_url
        ) as bot:
            queued = await feed(bot, timings, steps)
            told = bot.telegram.last_text
            # /cancel ends a flow: "Closed." after a view, "Cancelled." in a draft.
            finished = sum(1 for r in residents if told.get(r.telegram_id) in FLOW_ENDS)
            errors = len(bot.errors)
            busy = bot.persistence_busy
            cpu = _cpu_seconds() - cpu_before
    finally:
        await _set_latency(community, 0)
    return Run(
        side=side,
        latency=latency,
        residents=len(residents),
        records=list(timings.records),
        labels={uid: _label(step) for uid, step in timings.steps.items()},
        queued=queued,
        out_of_order=timings.out_of_order(),
        errors=errors,
        finished_flows=finished,
        cpu_seconds=cpu,
        persistence_busy=busy,
    )


async def _set_latency(community: Community, seconds: float) -> None:
    if community.sandbox_url is None:
        set_vendor_latency(community.sandbox, seconds)
    else:
        await set_remote_latency(community.sandbox_url, seconds)


def _cpu_seconds() -> float:
    """CPU this process used so far (all threads; the sandbox's too when it runs here)."""
    times = os.times()
    return times.user + times.system


def replay(
    sample: Run, sampled: Sequence[Resident], everyone: Sequence[Resident]
) -> dict[str, Any]:
    """The whole backlog on one FIFO server, each update costing what the same step of a
    sampled resident with the same flow cost."""
    by_chat: dict[int, list[Handled]] = defaultdict(list)
    for record in sorted(sample.records, key=lambda r: r.update_id):
        by_chat[record.chat_id].append(record)
    # Time the server spent between updates (taking the next one, persistence flushes) is
    # spread over the updates, so a replay of the sample alone takes as long as the sample did.
    busy = sum(r.wall for r in sample.records)
    gap = max(0.0, sample.makespan - busy) / len(sample.records)
    twins: dict[tuple[str, ...], list[Resident]] = defaultdict(list)
    for resident in sampled:
        twins[resident.flow].append(resident)
    chosen: dict[int, Resident] = {}
    used: Counter[tuple[str, ...]] = Counter()
    for resident in everyone:
        candidates = twins.get(resident.flow)
        if not candidates:
            raise BenchFailure(f"no sampled resident has the flow {resident.flow}")
        chosen[resident.telegram_id] = candidates[used[resident.flow] % len(candidates)]
        used[resident.flow] += 1
    step_of: Counter[int] = Counter()
    clock = 0.0
    latencies: list[float] = []
    for resident, _step in interleaved(everyone):
        twin = chosen[resident.telegram_id]
        clock += by_chat[twin.telegram_id][step_of[resident.telegram_id]].wall + gap
        step_of[resident.telegram_id] += 1
        latencies.append(clock)
    return {
        "measured": f"{len(sampled)} residents measured, {len(everyone)} replayed",
        "residents": len(everyone),
        "updates": len(latencies),
        "seconds": round(clock, 3),
        "updates_per_s": round(len(latencies) / clock, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": sample.errors,
        "out_of_order": sample.out_of_order,
        "flows_finished": sample.finished_flows,
        "cpu_ms_per_update": sample.figures()["cpu_ms_per_update"],
        "sample": sample.figures(),
    }


def _best(runs: Sequence[Run]) -> Run:
    return max(runs, key=lambda run: len(run.records) / run.makespan)


def _rounds(runs: Sequence[Run]) -> dict[str, Any]:
    """Every round's updates/s, when there was more than one."""
    if len(runs) < 2:
        return {}
    return {"rounds_updates_per_s": [r.figures()["updates_per_s"] for r in runs]}


def _table_row(latency_ms: int, side: str, figures: dict[str, Any], speedup: str) -> list[str]:
    return [
        f"{latency_ms} ms",
        SIDE_NAMES[side],
        str(figures["measured"]),
        str(figures["updates"]),
        f"{figures['updates_per_s']:.1f}",
        f"{figures['p50_ms']:.0f} ms",
        f"{figures['p99_ms']:.0f} ms",
        f"{figures['cpu_ms_per_update']:.1f} ms",
        str(figures["out_of_order"]),
        speedup,
    ]


async def run_throughput(
    community: Community,
    *,
    latencies: Sequence[float],
    sample_residents: int,
    databases: Databases,
) -> tuple[Figure, Figure]:
    """Figure 1 (both sides at each vendor latency) and figure 4 (handler time), on the
    community's template database (`COMMUNITY` of `databases`), copied for every run."""
    everyone = list(community.residents)
    sampled = everyone[: max(1, sample_residents)]
    # Lazy imports, translations and connection pools warm up here, outside any measurement.
    await measure(community, everyone[:10], side=CONCIERGE, latency=0, databases=databases)
    rows: list[dict[str, Any]] = []
    table: list[list[str]] = []
    handler_run: Run | None = None
    for latency in latencies:
        full = latency == 0 or len(sampled) >= len(everyone)
        rounds: dict[str, list[Run]] = {CONCIERGE: [], PTB: [], PTB_CONCURRENT: []}
        for _ in range(ZERO_LATENCY_ROUNDS if latency == 0 else 1):
            rounds[CONCIERGE].append(
                await measure(
                    community, everyone, side=CONCIERGE, latency=latency, databases=databases
                )
            )
            rounds[PTB].append(
                await measure(
                    community,
                    everyone if full else sampled,
                    side=PTB,
                    latency=latency,
                    databases=databases,
                )
            )
            rounds[PTB_CONCURRENT].append(
                await measure(
                    community, everyone, side=PTB_CONCURRENT, latency=latency, databases=databases
                )
            )
        ours = _best(rounds[CONCIERGE])
        theirs = _best(rounds[PTB])
        if latency == 0:
            handler_run = theirs
        ours_figures = ours.figures() | _rounds(rounds[CONCIERGE])
        theirs_figures = (
            theirs.figures() if full else replay(theirs, sampled, everyone)
        ) | _rounds(rounds[PTB])
        concurrent_figures = _best(rounds[PTB_CONCURRENT]).figures() | _rounds(
            rounds[PTB_CONCURRENT]
        )
        speedup = round(ours_figures["updates_per_s"] / theirs_figures["updates_per_s"], 2)
        share = round(ours_figures["updates_per_s"] / concurrent_figures["updates_per_s"], 2)
        latency_ms = round(latency * 1000)
        rows.append(
            {
                "vendor_latency_ms": latency_ms,
                CONCIERGE: ours_figures,
                PTB: theirs_figures,
                PTB_CONCURRENT: concurrent_figures,
                "speedup": speedup,
                "share_of_ptb_concurrent": share,
            }
        )
        table.append(_table_row(latency_ms, CONCIERGE, ours_figures, f"{speedup:.1f}×"))
        table.append(_table_row(latency_ms, PTB, theirs_figures, "1×"))
        concurrent_speedup = concurrent_figures["updates_per_s"] / theirs_figures["updates_per_s"]
        table.append(
            _table_row(
                latency_ms, PTB_CONCURRENT, concurrent_figures, f"{concurrent_speedup:.1f}×"
            )
        )
    throughput = _throughput_figure(
        rows, table, len(everyone), out_of_process=community.sandbox_url is not None
    )
    return throughput, _handler_figure(handler_run)


def _throughput_figure(
    rows: list[dict[str, Any]], table: list[list[str]], users: int, *, out_of_process: bool
) -> Figure:
    figure = Figure(
        key="throughput",
        title=f"Updates/s and per-update latency, {users} residents at once",
        headers=[
            "vendor latency",
            "processing",
            "measured",
            "updates",
            "updates/s",
            "p50",
            "p99",
            "CPU/update",
            "out of order",
            "speedup",
        ],
        table=table,
        data={
            "residents": users,
            "max_running": MAX_RUNNING,
            "rows": rows,
            "sandbox": "own process" if out_of_process else "in process",
        },
    )
    highest = max(rows, key=lambda r: r["vendor_latency_ms"])
    lowest = min(rows, key=lambda r: r["vendor_latency_ms"])
    figure.targets.append(
        Target(
            f"≥ {SPEEDUP_TARGET:.0f}× at {highest['vendor_latency_ms']} ms",
            highest["speedup"] >= SPEEDUP_TARGET,
            f"{highest['speedup']}×",
        )
    )
    figure.targets.append(
        Target(
            f"not slower at {lowest['vendor_latency_ms']} ms",
            lowest["speedup"] >= 1.0,
            f"{lowest['speedup']}×",
        )
    )
    figure.targets.append(
        Target(
            f"≥ {CONCURRENT_SHARE_TARGET}× PTB concurrent_updates at "
            f"{highest['vendor_latency_ms']} ms",
            highest["share_of_ptb_concurrent"] >= CONCURRENT_SHARE_TARGET,
            f"{highest['share_of_ptb_concurrent']}×",
        )
    )
    wrong = sum(row[CONCIERGE]["out_of_order"] for row in rows)
    theirs = sum(row[PTB_CONCURRENT]["out_of_order"] for row in rows)
    figure.targets.append(
        Target(
            "no chat saw its updates out of order under Concierge",
            wrong == 0,
            f"{wrong} out of order; PTB concurrent_updates {theirs}",
        )
    )
    flawed = [
        f"{row['vendor_latency_ms']} ms {SIDE_NAMES[side]}"
        for row in rows
        for side in (CONCIERGE, PTB)
        if row[side]["errors"]
        or (
            row[side]["flows_finished"] != row[side]["residents"]
            and "replayed" not in row[side]["measured"]
        )
    ]
    figure.targets.append(
        Target(
            "every flow ran to its end without a handler error (sanity check)",
            not flawed,
            "all did" if not flawed else "not in: " + ", ".join(flawed),
        )
    )
    figure.notes += [
        "Each resident sends /start, then /repairs and opens their newest repair with its "
        "button, or /bookings; then /cancel. Every flow is queued at once; latency is queueing "
        "to handled.",
        "Bot API calls go to a recording request (no sockets, no rate limiter): this measures "
        "the bot, not Telegram's flood limits. Vendors are the sandbox in its own process on "
        "127.0.0.1 (over loopback HTTP, when the run gives one; the JSON's sandbox says), with "
        "the latency added to every vendor request.",
        "PTB's sequential side at a vendor latency above 0 is measured on the sample shown and "
        "replayed for every resident: one update at a time, each costing what the same step of "
        "a sampled resident with the same flow cost.",
        f"Concierge runs at most {MAX_RUNNING} updates at once (the default setting); PTB's "
        f"concurrent_updates side the same number, in no order. Out of order counts the updates "
        "that began before an earlier update of their chat had ended, or overtook it; PTB's "
        "concurrent side is left out of the flows-finished check, since a chat's updates taken "
        "out of order need not finish its flow.",
        f"At 0 ms each side ran {ZERO_LATENCY_ROUNDS} times, alternating, and its best run is "
        "shown (every round is in the JSON). CPU/update is the bot process's CPU time over "
        "the updates (the sandbox's is its own process's): steadier than updates/s on a busy "
        "machine.",
    ]
    return figure


def _handler_figure(run: Run | None) -> Figure:
    figure = Figure(
        key="handler_time",
        title="Handler time per update, vendor time taken out (vendor latency 0)",
        headers=["step", "updates", "p50", "p99", "max", "vendor calls/update"],
    )
    if run is None:
        figure.notes.append("not measured: no run at vendor latency 0")
        return figure
    by_step: dict[str, list[Handled]] = defaultdict(list)
    for record in run.records:
        by_step[run.labels.get(record.update_id, "?")].append(record)
    by_step["all updates"] = list(run.records)
    flushing = [r for r in run.records if run.persistence_busy.overlaps(r.started, r.ended)]
    by_step["all, while the persistence flushed"] = flushing
    by_step["all, no flush meanwhile"] = [
        r for r in run.records if not run.persistence_busy.overlaps(r.started, r.ended)
    ]
    steps: dict[str, Any] = {}
    for step, records in by_step.items():
        if not records:
            steps[step] = {"updates": 0}
            figure.table.append([step, "0", "–", "–", "–", "–"])
            continue
        own = [r.own * 1000 for r in records]
        calls = sum(r.vendor_calls for r in records) / len(records)
        steps[step] = {
            "updates": len(records),
            "p50_ms": round(percentile(own, 50), 2),
            "p99_ms": round(percentile(own, 99), 2),
            "max_ms": round(max(own), 2),
            "vendor_calls_per_update": round(calls, 2),
        }
        figure.table.append(
            [
                step,
                str(len(records)),
                f"{percentile(own, 50):.1f} ms",
                f"{percentile(own, 99):.1f} ms",
                f"{max(own):.1f} ms",
                f"{calls:.1f}",
            ]
        )
    figure.data = {"source": f"{SIDE_NAMES[run.side]} at vendor latency 0", "steps": steps}
    overall = steps["all updates"]["p99_ms"]
    figure.targets.append(
        Target(f"p99 ≤ {HANDLER_TARGET_MS:.0f} ms", overall <= HANDLER_TARGET_MS, f"{overall} ms")
    )
    flushing = steps["all, while the persistence flushed"].get("p99_ms")
    figure.targets.append(
        Target(
            f"p99 ≤ {HANDLER_TARGET_MS:.0f} ms while the persistence flushed",
            flushing is not None and flushing <= HANDLER_TARGET_MS,
            "no update ran during a flush" if flushing is None else f"{flushing} ms",
        )
    )
    figure.notes.append(
        "Measured in the sequential run at vendor latency 0, where each update runs alone: its "
        "wall time minus the time its vendor calls (the in-process sandbox) took. Database and "
        "PTB time stay in."
    )
    figure.notes.append(
        "The last two rows split the updates by whether the Application's periodic persistence "
        "flush (the user_data, chat_data and conversations updates changed since the last, "
        "written in transactions of a few rows) was under way while they ran: they share "
        "SQLite's single writer and the event loop with it."
    )
    return figure
