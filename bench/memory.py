"""Figure 5: memory per stored conversation, as the growth of the bot process's RSS.

At start the bot reads only which users and chats have stored state; a chat's conversations,
user_data and chat_data are read into memory when its first update comes (bot/persistence.py),
and drafts stay in their table and are read per update. Two fresh
processes build the real Application on a database with none and with N stored conversations
(the residents of figure 2, half way through a repair report), start it, and report their RSS;
the difference over N is the cost of one. Each also reports how long it took to start.
Run as `python -m bench.memory DATABASE_URL` it is the child that measures one database.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.child_server import run_child
from bench.harness import RecordingRequest, bench_settings, sqlite_url
from bench.persistence_cost import populate_database
from bench.report import Figure, Target

PER_CONVERSATION_TARGET_KIB = 0.75
START_TARGET_SECONDS = 3.0


def rss_bytes() -> int:
    """This process's resident set size (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def measure_here(database_url: str) -> dict[str, Any]:
    """Builds and starts the Application on `database_url`; RSS before and after it loads."""
    from bot.app import build_application
    from bot.persistence import DatabasePersistence
    from bot.services import Services

    settings = bench_settings(database_url)
    opened = time.perf_counter()
    services = Services.open(settings)
    try:
        app = build_application(
            settings,
            services,
            persistence=DatabasePersistence(services.storage.sessions),
            request=RecordingRequest(),
            rate_limiter=False,
        )
        gc.collect()
        before = rss_bytes()
        # initialize() reads which users and chats have stored state (their state waits for
        # their first update).
        await app.initialize()
        # Start-up as far as the bot can take updates.
        start_seconds = time.perf_counter() - opened
        gc.collect()
        after = rss_bytes()
        trimmed = after - _trim_released()
        loaded = len(app.user_data)
        await app.shutdown()
    finally:
        await services.aclose()
    return {
        "rss_before": before,
        "rss_after": after,
        "rss_after_trim": trimmed,
        "users_loaded": loaded,
        "start_seconds": round(start_seconds, 3),
    }


def _trim_released() -> int:
    """How much RSS glibc gives back when asked to return freed memory (0 elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return 0
    before = rss_bytes()
    libc.malloc_trim(0)
    return max(0, before - rss_bytes())


async def measure_in_child(database_url: str) -> dict[str, Any]:
    """`measure_here` in a fresh interpreter, so nothing else this process did is counted."""
    out = await run_child(sys.executable, "-m", "bench.memory", database_url)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


async def run_memory(*, stored: int, workdir: Path) -> Figure:
    """Figure 5: RSS with no stored conversations and with `stored`, in fresh processes."""
    empty = sqlite_url(workdir / "memory-0.db")
    full = sqlite_url(workdir / f"memory-{stored}.db")
    await populate_database(empty, 0)
    await populate_database(full, stored)
    # One after the other: the start-up time depends on the CPU the process gets.
    baseline = await measure_in_child(empty)
    loaded = await measure_in_child(full)
    if loaded["users_loaded"] != 0:
        raise RuntimeError(f"the bot held {loaded['users_loaded']} users' data before any update")
    growth = loaded["rss_after"] - baseline["rss_after"]
    per = growth / stored
    live = loaded["rss_after_trim"] - baseline["rss_after_trim"]
    figure = Figure(
        key="memory",
        title="Memory per stored conversation (RSS growth)",
        headers=[
            "stored conversations",
            "RSS after start",
            "growth",
            "per conversation",
            "per conversation, freed memory returned",
            "start-up",
        ],
        table=[
            [
                "0",
                f"{baseline['rss_after'] / 2**20:.1f} MiB",
                "",
                "",
                "",
                f"{baseline['start_seconds']:.2f} s",
            ],
            [
                f"{stored:,}",
                f"{loaded['rss_after'] / 2**20:.1f} MiB",
                f"{growth / 2**20:.1f} MiB",
                f"{per / 1024:.2f} KiB",
                f"{live / stored / 1024:.2f} KiB",
                f"{loaded['start_seconds']:.2f} s",
            ],
        ],
        data={
            "stored": stored,
            "empty": baseline,
            "loaded": loaded,
            "growth_bytes": growth,
            "bytes_per_conversation": round(per),
            "bytes_per_conversation_after_trim": round(live / stored),
        },
    )
    figure.targets += [
        Target(
            f"≤ {PER_CONVERSATION_TARGET_KIB} KiB per stored conversation",
            per / 1024 <= PER_CONVERSATION_TARGET_KIB,
            f"{per / 1024:.2f} KiB",
        ),
        Target(
            f"start-up ≤ {START_TARGET_SECONDS:.0f} s with {stored:,} stored",
            loaded["start_seconds"] <= START_TARGET_SECONDS,
            f"{loaded['start_seconds']:.2f} s",
        ),
    ]
    figure.notes += [
        "Each stored conversation: a `repair` conversation state, the resident's user_data "
        "and chat_data, read into memory with the chat's first update after a start (only "
        "the ids of who has stored state are read at start), and their draft, which stays "
        "in the drafts table (read per update, never held in memory).",
        "Start-up runs from opening the services to the end of Application.initialize(), "
        "where the bot can take updates; the targets "
        "are issue 20's. RSS after start, in two fresh processes on a database "
        "with none and with the stored conversations (Linux /proc/self/statm). The last "
        "column asks glibc to return freed memory first (malloc_trim): what the loaded data "
        "itself holds, without the allocator's leftovers from reading the rows.",
    ]
    return figure


def main() -> None:
    """The child: measures one database and prints one JSON line."""
    print(json.dumps(asyncio.run(measure_here(sys.argv[1]))))


if __name__ == "__main__":
    main()
