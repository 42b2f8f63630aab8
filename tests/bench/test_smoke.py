"""The bench harness at tiny sizes: it runs end to end and reports every figure's keys.

No timing is asserted here (the bench measures; the suite only checks that it can), beyond the
pure arithmetic of the harness: percentiles, the order check and the sequential replay.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.fanout import Attempt, stalls
from bench.harness import Handled, Resident, Timings, interleaved, percentile
from bench.report import render
from bench.run import FIGURES, ON_EVERY_DATABASE, TINY, results_json, run_figures
from bench.throughput import PTB, PTB_CONCURRENT, Run, replay

SIDE_KEYS = {
    "measured",
    "updates",
    "updates_per_s",
    "p50_ms",
    "p99_ms",
    "cpu_ms_per_update",
    "out_of_order",
    "errors",
}


async def test_every_figure_runs_and_reports_its_keys(tmp_path: Path) -> None:
    # The baseline is this tree's own commit: the worktree path runs, the figures mean nothing.
    figures = await run_figures(TINY, tmp_path, baseline="HEAD")
    data = json.loads(json.dumps(results_json(figures, TINY, command="smoke", seconds=0.0)))

    # Figures 1, 2 and 4 run on PostgreSQL too, each right after its SQLite run.
    assert list(data["figures"]) == [
        f"{key}{suffix}"
        for key in FIGURES
        for suffix in ("", "_postgresql")
        if not suffix or key in ON_EVERY_DATABASE
    ]
    for key, figure in data["figures"].items():
        assert figure["title"]
        assert (figure["seconds"] is None) == key.startswith("handler_time")
        assert figure["table"]["rows"]
        assert all(len(row) == len(figure["table"]["headers"]) for row in figure["table"]["rows"])
        for target in figure["targets"]:
            assert set(target) == {"name", "met", "measured"}
            assert isinstance(target["met"], bool)

    throughput = data["figures"]["throughput"]
    assert len(throughput["targets"]) == 5
    assert throughput["data"]["sandbox"] == "own process"
    rows = throughput["data"]["rows"]
    assert [row["vendor_latency_ms"] for row in rows] == [0, 5]
    for row in rows:
        assert set(row["concierge"]) >= SIDE_KEYS
        assert set(row[PTB]) >= SIDE_KEYS
        # PTB's concurrent processing runs every resident at every latency, never replayed.
        assert set(row[PTB_CONCURRENT]) >= SIDE_KEYS
        assert row[PTB_CONCURRENT]["measured"] == "all residents"
        assert row["share_of_ptb_concurrent"] > 0
        assert row["speedup"] > 0
    assert len(rows[0]["concierge"]["rounds_updates_per_s"]) == 2
    # Above 0 ms the sequential side is sampled and replayed, and says so.
    assert "replayed" in rows[1][PTB]["measured"]
    assert rows[1][PTB]["updates"] == rows[1]["concierge"]["updates"]

    persistence = data["figures"]["persistence"]["data"]
    assert [row["stored"] for row in persistence["rows"]] == list(TINY.stored_conversations)
    for row in persistence["rows"]:
        assert {"median_ms", "mean_ms", "updates"} <= set(row["concierge"])
        assert {"median_ms", "mean_ms", "updates"} <= set(row["pickle"])
    assert "growth" in persistence
    on_postgres = data["figures"]["persistence_postgresql"]
    assert on_postgres["data"]["database"] == "postgresql"
    assert [row["stored"] for row in on_postgres["data"]["rows"]] == list(
        TINY.stored_conversations
    )
    assert len(on_postgres["targets"]) == 1
    throughput_on_postgres = data["figures"]["throughput_postgresql"]
    assert len(throughput_on_postgres["targets"]) == 5
    for row in [*rows, *throughput_on_postgres["data"]["rows"]]:
        assert set(row["concierge"]) >= SIDE_KEYS
        assert row["concierge"]["errors"] == 0
        # Every resident's flow ran to its /cancel and heard that it ended.
        assert row["concierge"]["flows_finished"] == row["concierge"]["residents"]
    assert "PostgreSQL" in data["figures"]["handler_time_postgresql"]["title"]

    fanout = data["figures"]["fanout"]["data"]
    assert fanout["recipients"] == TINY.recipients
    assert {"achieved_rate", "share", "responses_429", "sent", "seconds", "stalls"} <= set(fanout)
    # Every sixth recipient gets three alerts: 2 × 3 + 10 × 1.
    assert fanout["alerts"] == 16
    assert fanout["sent"] == 16
    assert len(data["figures"]["fanout"]["targets"]) == 4

    handler = data["figures"]["handler_time"]
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(handler["data"]["steps"]["all updates"])
    assert len(handler["targets"]) == 2

    memory = data["figures"]["memory"]["data"]
    # Stored, but nobody's state held at start: it is read with each chat's first update.
    assert memory["stored"] == TINY.memory_conversations
    assert memory["loaded"]["users_loaded"] == 0
    assert {"growth_bytes", "bytes_per_conversation"} <= set(memory)
    assert memory["loaded"]["start_seconds"] > 0
    assert len(data["figures"]["memory"]["targets"]) == 2

    cpu = data["figures"]["cpu"]["data"]
    assert cpu["baseline_revision"] == "HEAD"
    for side in ("current", "baseline"):
        assert cpu[side]["errors"] == 0
        steps = cpu[side]["steps"]
        assert {"/start", "a press: open a repair", "typed text: a repair's description"} <= set(
            steps
        )
        for step in steps.values():
            assert {"cpu_ms_per_update", "statements_per_update", "bot_api_calls_per_update"} <= (
                set(step)
            )
    assert cpu["baseline"]["code"] != cpu["current"]["code"]
    assert [len(rounds) for rounds in cpu["rounds_cpu_ms_per_update"].values()] == [2, 2]
    assert len(data["figures"]["cpu"]["targets"]) == 4

    printed = render(figures)
    assert all(figure.title in printed for figure in figures)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def _handled(update_id: int, chat_id: int, started: float, ended: float) -> Handled:
    return Handled(update_id, chat_id, 0.0, started, ended, 0.0, 0)


def test_the_order_check_sees_overlap_and_overtaking() -> None:
    timings = Timings(expected=4)
    timings.records += [
        _handled(1, 10, 0.0, 1.0),
        _handled(2, 10, 1.0, 2.0),  # in turn
        _handled(3, 20, 0.5, 2.0),
        _handled(4, 20, 1.5, 3.0),  # began before 3 ended
    ]
    assert timings.out_of_order() == 1
    timings.records.append(_handled(5, 30, 0.0, 1.0))
    timings.records.append(_handled(6, 30, -1.0, -0.5))  # handled before an earlier update
    assert timings.out_of_order() == 2


def test_replay_queues_the_whole_backlog_on_one_server() -> None:
    a = Resident(1, ("/start", "/repairs"))
    b = Resident(2, ("/start",))
    # The sample: a's steps cost 1 s and 2 s, b's 3 s, back to back from 0.
    records = [_handled(100, 1, 0.0, 1.0), _handled(101, 2, 1.0, 4.0), _handled(102, 1, 4.0, 6.0)]
    sample = Run(
        side=PTB,
        latency=0.2,
        residents=2,
        records=records,
        labels={},
        queued=0.0,
        out_of_order=0,
        errors=0,
        finished_flows=2,
        cpu_seconds=0.6,
    )
    everyone = [a, b, Resident(3, a.steps), Resident(4, b.steps)]
    assert len(interleaved(everyone)) == 6

    result = replay(sample, [a, b], everyone)

    # Order: a1 b1 c1 d1 a2 c2, costing 1 3 1 3 2 2: done at 1 4 5 8 10 12.
    assert result["updates"] == 6
    assert result["seconds"] == 12.0
    assert result["updates_per_s"] == 0.5
    assert result["p50_ms"] == 5000.0
    assert result["p99_ms"] == 12000.0
    assert result["cpu_ms_per_update"] == 200.0


def test_a_stall_is_one_chat_holding_the_others_up() -> None:
    held_up = [
        Attempt(1, 0.0, 200),
        Attempt(1, 0.1, 429),
        Attempt(1, 2.1, 200),  # nothing else went out for 2 s: a stall
        Attempt(2, 2.2, 200),
    ]
    assert stalls(held_up) == [2.0]
    went_on = [Attempt(1, 0.1, 429), Attempt(2, 0.2, 200), Attempt(1, 2.1, 200)]
    assert stalls(went_on) == []
    # The last chat waiting on itself holds no one up.
    alone = [Attempt(2, 0.0, 200), Attempt(1, 0.1, 429), Attempt(1, 2.1, 200)]
    assert stalls(alone) == []
