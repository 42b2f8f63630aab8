"""CPU per update: the bot's own CPU time, database statements and Bot API calls, per step.

Each side is measured in a fresh interpreter on its own checkout: this tree, and with
`--baseline REV` a git worktree of REV in a temporary directory. The child runs this file (read
from the current tree) with the checkout as its working directory and first on `sys.path`, so
`bot`, `conversations`, `sandbox` and `bench.harness` are the checkout's own; the child reports
where `bot` was imported from and the parent refuses a result whose code came from elsewhere.
Only the harness names that both trees share are used here, and the baseline needs no package
the current venv lacks.

Updates run one at a time (PTB's sequential processor, vendor latency 0), so every CPU second,
statement and Bot API call in an update's window is that update's: the window's process CPU
time (every thread, so aiosqlite's too) minus the CPU the in-process vendor sandbox spent
answering it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

# Only bench.harness and bench.report at the top: the child imports this file beside another
# checkout's bench package, which may have nothing else.
from bench.report import Figure, Target

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
CPU_TARGET_SHARE = 0.6  # of the baseline's CPU per update
COMMAND_STATEMENTS_TARGET = 2
PRESS_STATEMENTS_TARGET = 3
TYPED_TEXT = "The kitchen tap drips"
PRESS = "a press: open a repair"
TYPED = "typed text: a repair's description"
# Only the persistence's flush writes PTB's rows (a chat's first update reads them).
FLUSH_WRITES = tuple(
    f"{verb} {table}"
    for verb in ("INSERT INTO", "DELETE FROM", "UPDATE")
    for table in ("USER_DATA", "CHAT_DATA", "CONVERSATION_STATES", "CALLBACK_DATA")
)
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class CpuMeteredApp:
    """The vendor sandbox, keeping the CPU time it spends answering (taken out of the bot's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seconds = 0.0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Answers a request, its CPU time noted."""
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.process_time() - started


def _tree_of(module_file: str) -> str:
    """The checkout a package's `__init__.py` lies in."""
    return str(Path(module_file).resolve().parent.parent)


def _label(step: str) -> str:
    if step.startswith("press:"):
        return PRESS
    if step == TYPED_TEXT:
        return TYPED
    return step.split()[0]


async def measure_here(residents: int, workdir: Path) -> dict[str, Any]:
    """Every step of `residents` flows, one update at a time; per step: CPU ms, statements and
    Bot API calls per update. Runs on whatever `bot` and `bench.harness` this interpreter has."""
    from sqlalchemy import event
    from telegram.ext import SimpleUpdateProcessor

    import bot
    from bench import harness

    community = await harness.prepare_community(workdir, residents)
    people = []
    for number, resident in enumerate(community.residents):
        # Odd residents also type text into a flow: the repair report's description.
        extra: tuple[str, ...] = () if number % 2 == 0 else ("/repair", TYPED_TEXT)
        flow = resident.steps[:-1] + extra + resident.steps[-1:]
        people.append(harness.Resident(resident.telegram_id, flow))
    steps = harness.interleaved(people)
    timings = harness.Timings(len(steps))
    sandbox = CpuMeteredApp(community.sandbox)
    statements = [0]
    flush_statements = [0]
    per_update: list[tuple[int, float, int, int]] = []
    state: dict[str, Any] = {}

    class Metered(SimpleUpdateProcessor):
        async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
            telegram = state["bot"].telegram
            calls, queries, vendor = sum(telegram.methods.values()), statements[0], sandbox.seconds
            started = time.process_time()
            await timings.run(update, coroutine)
            cpu = time.process_time() - started - (sandbox.seconds - vendor)
            update_id = getattr(update, "update_id", 0)
            made = sum(telegram.methods.values()) - calls
            per_update.append((update_id, cpu, statements[0] - queries, made))

    database = harness.copy_database(community.template, workdir / "cpu.db")
    url = harness.sqlite_url(database)
    async with harness.running_bot(url, sandbox, Metered(1)) as running:  # type: ignore[arg-type]
        state["bot"] = running

        def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            # The persistence's periodic flush (PTB's rows, written every few seconds for every
            # update since the last) lands in whichever update's window it happens to run in:
            # counted apart, not as that update's.
            if statement.lstrip().upper().startswith(FLUSH_WRITES):
                flush_statements[0] += 1
            else:
                statements[0] += 1

        event.listen(running.services.storage.engine.sync_engine, "before_cursor_execute", count)
        await harness.feed(running, timings, steps)
        errors = len(running.errors)
    by_step: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for update_id, cpu, queries, calls in per_update:
        label = _label(timings.steps.get(update_id, "?"))
        by_step[label].append((cpu, queries, calls))
        by_step["all updates"].append((cpu, queries, calls))
    return {
        "code": _tree_of(bot.__file__),
        "residents": residents,
        "errors": errors,
        "flush_statements": flush_statements[0],
        "steps": {
            label: {
                "updates": len(rows),
                "cpu_ms_per_update": round(sum(r[0] for r in rows) / len(rows) * 1000, 3),
                "statements_per_update": round(sum(r[1] for r in rows) / len(rows), 2),
                "max_statements": max(r[1] for r in rows),
                "bot_api_calls_per_update": round(sum(r[2] for r in rows) / len(rows), 2),
            }
            for label, rows in by_step.items()
        },
    }


async def measure_checkout(checkout: Path, residents: int) -> dict[str, Any]:
    """`measure_here` in a fresh interpreter whose code is `checkout`'s own."""
    from bench.child_server import run_child

    environment = {**os.environ, "PYTHONPATH": str(checkout), "PTB_TIMEDELTA": "true"}
    script = f"import runpy; runpy.run_path({str(HERE)!r}, run_name='__main__')"
    out = await run_child(
        sys.executable, "-c", script, str(residents), cwd=checkout, env=environment
    )
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if not _same_directory(result["code"], checkout):
        raise RuntimeError(f"CPU probe meant for {checkout} ran the code in {result['code']}")
    return result


def _same_directory(reported: str, checkout: Path) -> bool:
    return Path(reported) == checkout.resolve()


def _git() -> str:
    found = shutil.which("git")
    if found is None:
        raise RuntimeError("--baseline needs git")
    return found


async def baseline_checkout(revision: str, directory: Path) -> Path:
    """A detached git worktree of `revision` under `directory`."""
    from bench.child_server import run_child

    target = directory / f"baseline-{revision}"
    await run_child(_git(), "-C", str(REPO), "worktree", "add", "--detach", str(target), revision)
    return target


async def remove_checkout(checkout: Path) -> None:
    """Removes a worktree `baseline_checkout` made."""
    from bench.child_server import run_child

    await run_child(_git(), "-C", str(REPO), "worktree", "remove", "--force", str(checkout))


ROUNDS = 2


def _overall_cpu(run: dict[str, Any]) -> float:
    return float(run["steps"]["all updates"]["cpu_ms_per_update"])


STEP_ORDER = ("/start", "/repairs", PRESS, "/bookings", "/repair", TYPED, "/cancel", "all updates")


def _row(label: str, ours: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    cells = [
        label,
        str(ours["updates"]),
        f"{ours['cpu_ms_per_update']:.2f} ms",
        f"{ours['statements_per_update']:.1f}",
        f"{ours['bot_api_calls_per_update']:.1f}",
    ]
    if base is None:
        return [*cells, "–", "–", "–", "–"]
    ratio = ours["cpu_ms_per_update"] / base["cpu_ms_per_update"]
    return [
        *cells,
        f"{base['cpu_ms_per_update']:.2f} ms",
        f"{base['statements_per_update']:.1f}",
        f"{base['bot_api_calls_per_update']:.1f}",
        f"{ratio:.0%}",
    ]


async def run_cpu(*, residents: int, baseline: str | None, workdir: Path) -> Figure:
    """The figure: this tree's CPU, statements and Bot API calls per step, beside the
    baseline's when one is given."""
    trees = {"current": REPO}
    if baseline is not None:
        trees["baseline"] = await baseline_checkout(baseline, workdir)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in trees}
    try:
        # The sides take turns and each keeps its least busy round: on a shared machine one
        # round can be unlucky, and the two must not be measured at different moments.
        for _ in range(ROUNDS):
            for side, tree in trees.items():
                runs[side].append(await measure_checkout(tree, residents))
    finally:
        if baseline is not None:
            await remove_checkout(trees["baseline"])
    best = {side: min(found, key=_overall_cpu) for side, found in runs.items()}
    ours, base = best["current"], best.get("baseline")
    figure = Figure(
        key="cpu",
        title=f"CPU per update, the bot's own, per step ({residents} residents, one at a time)",
        headers=[
            "step",
            "updates",
            "CPU/update",
            "DB statements",
            "Bot API calls",
            "baseline CPU",
            "baseline statements",
            "baseline Bot API calls",
            "CPU ÷ baseline",
        ],
        data={
            "current": ours,
            "baseline": base,
            "baseline_revision": baseline,
            "rounds_cpu_ms_per_update": {
                side: [_overall_cpu(run) for run in found] for side, found in runs.items()
            },
        },
    )
    steps = ours["steps"]
    for label in STEP_ORDER:
        if label in steps:
            other = base["steps"].get(label) if base is not None else None
            figure.table.append(_row(label, steps[label], other))
    overall = steps["all updates"]["cpu_ms_per_update"]
    if base is not None:
        before = base["steps"]["all updates"]["cpu_ms_per_update"]
        share = overall / before
        figure.data["cpu_share_of_baseline"] = round(share, 3)
        figure.targets.append(
            Target(
                f"CPU per update ≤ {CPU_TARGET_SHARE:.0%} of {baseline}'s",
                share <= CPU_TARGET_SHARE,
                f"{share:.0%}: {overall:.2f} ms against {before:.2f} ms",
            )
        )
    else:
        figure.notes.append("No baseline given (--baseline REV): the CPU target is not judged.")
    commands = {k: v for k, v in steps.items() if k.startswith("/")}
    worst_command = max(commands.items(), key=lambda kv: kv[1]["max_statements"])
    figure.targets.append(
        Target(
            f"≤ {COMMAND_STATEMENTS_TARGET} database statements for a command",
            worst_command[1]["max_statements"] <= COMMAND_STATEMENTS_TARGET,
            f"at most {worst_command[1]['max_statements']}, in {worst_command[0]}",
        )
    )
    if PRESS in steps:
        pressed = steps[PRESS]["max_statements"]
        figure.targets.append(
            Target(
                f"≤ {PRESS_STATEMENTS_TARGET} database statements for a press",
                pressed <= PRESS_STATEMENTS_TARGET,
                f"at most {pressed}",
            )
        )
    errors = ours["errors"] + (base["errors"] if base is not None else 0)
    figure.targets.append(
        Target("no handler error on either side (sanity check)", errors == 0, f"{errors}")
    )
    figure.notes += [
        f"Each side ran {ROUNDS} times, taking turns, and keeps its round with the least CPU "
        "per update (every round is in the JSON). "
        "Each side runs in a fresh interpreter on its own checkout (the baseline a git worktree "
        "of the revision, on the same venv, its directory first on sys.path); the child says "
        "where `bot` came from and a result from the wrong tree is refused.",
        "Updates run one at a time at vendor latency 0. CPU is the process's CPU time (every "
        "thread) in the update's window minus what the in-process vendor sandbox spent; "
        "statements are every before_cursor_execute on the bot's engine in that window but the "
        "persistence flush's writes of PTB's rows (counted apart, in the JSON as "
        "flush_statements: the flush runs every few seconds for all updates since the last and "
        "lands in whichever window it happens to); Bot API calls are every call the bot made.",
    ]
    return figure


def main() -> None:
    """The child's side: measures, prints one JSON line."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    residents = int(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="concierge-cpu-") as workdir:
        result = asyncio.run(measure_here(residents, Path(workdir)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
