"""Figure 3: one alert to each of N recipients through the bot's alert delivery and PTB's
`AIORateLimiter`, against the local Bot API over a real socket (with Telegram's flood control
in front, see `bench.botapi_server`): the achieved rate as a share of the configured one, and
how many 429s the server had to answer.

The alerts wait in `sent_alerts` as the watcher leaves them; `AlertWatcher.deliver` sends them
as it does after every poll (rendered in each recipient's language and zone, one message each,
marked sent one by one).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select
from telegram.ext import AIORateLimiter, ApplicationBuilder, ContextTypes

from bench.botapi_server import STATS_PATH, TOKEN
from bench.harness import bench_settings, now, sqlite_url
from bench.report import Figure, Target
from bot.alert_kinds import MSG_BOOKING_REMINDER, Alert, AlertKind
from bot.alert_watcher import AlertWatcher
from bot.app import file_url_for
from bot.app_type import ConciergeApp
from bot.services import Services
from bot.storage.db import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import AlertStatus, SentAlert, TelegramUser
from bot.storage.repositories import storable_key
from conversations.context import ConciergeContext

REPO = Path(__file__).resolve().parent.parent
FIRST_RECIPIENT = 8_000_000
SHARE_TARGET = 0.95
ROWS_PER_INSERT = 1_000


def reminder(recipient: int, starts: datetime) -> Alert:
    """The booking reminder the watcher would owe this resident."""
    return Alert(
        key=f"booking:b-bench-{recipient}:remind:{starts.isoformat()}:{recipient}",
        kind=AlertKind.BOOKING_REMINDER,
        recipient=recipient,
        message=MSG_BOOKING_REMINDER,
        values={"amenity": "Gym", "when": starts.isoformat()},
        moments=("when",),
        urgent=True,
    )


async def store_alerts(database_url: str, recipients: int) -> None:
    """Migrates the database and leaves one pending reminder for each recipient."""
    await upgrade(database_url)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for first in range(0, recipients, ROWS_PER_INSERT):
                ids = range(
                    FIRST_RECIPIENT + first,
                    FIRST_RECIPIENT + min(recipients, first + ROWS_PER_INSERT),
                )
                await connection.execute(
                    insert(TelegramUser),
                    [{"telegram_id": i, "language": "en", "display_name": "R"} for i in ids],
                )
                alerts = [reminder(i, starts) for i in ids]
                await connection.execute(
                    insert(SentAlert),
                    [
                        {
                            "dedupe_key": storable_key(a.key),
                            "recipient": a.recipient,
                            "kind": a.kind.value,
                            "status": AlertStatus.PENDING,
                            "attempts": 0,
                            "payload": a.payload(),
                        }
                        for a in alerts
                    ],
                )
    finally:
        await engine.dispose()


async def _count_sent(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            sent = await connection.scalar(
                select(func.count())
                .select_from(SentAlert)
                .where(SentAlert.status == AlertStatus.SENT)
            )
    finally:
        await engine.dispose()
    return int(sent or 0)


class LocalBotApi:
    """`bench.botapi_server` in a child process on a loopback port."""

    def __init__(self, recipients: int, rate: float) -> None:
        self._arguments = [
            "--recipients",
            str(recipients),
            "--first-id",
            str(FIRST_RECIPIENT),
            "--rate",
            str(rate),
        ]
        self._child: asyncio.subprocess.Process | None = None
        self.base = ""

    async def __aenter__(self) -> LocalBotApi:
        self._child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.botapi_server",
            *self._arguments,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._child.stdout is not None
        line = await asyncio.wait_for(self._child.stdout.readline(), 60)
        if not line.strip().isdigit():
            await self._stop()
            raise RuntimeError("the local Bot API did not start")
        self.base = f"http://127.0.0.1:{int(line)}"
        async with httpx.AsyncClient(base_url=self.base) as client:
            for _ in range(600):
                try:
                    if (await client.get("/_botapi/health")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        await self._stop()
        raise RuntimeError("the local Bot API never answered its health check")

    async def stats(self) -> dict[str, Any]:
        """What the server accepted and refused."""
        async with httpx.AsyncClient(base_url=self.base) as client:
            found: dict[str, Any] = (await client.get(STATS_PATH)).json()
        return found

    async def _stop(self) -> None:
        if self._child is not None and self._child.returncode is None:
            self._child.terminate()
            await self._child.communicate()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()


async def run_fanout(*, recipients: int, rate: float, workdir: Path) -> Figure:
    """Figure 3: delivers `recipients` pending alerts at `rate` messages per second."""
    database_url = sqlite_url(workdir / f"fanout-{recipients}.db")
    await store_alerts(database_url, recipients)
    async with LocalBotApi(recipients, rate) as botapi:
        base_url = f"{botapi.base}/bot"
        settings = bench_settings(database_url, telegram_base_url=base_url)
        services = Services.open(settings)
        try:
            limiter = AIORateLimiter(overall_max_rate=rate, overall_time_period=1, max_retries=3)
            # The builder's generic parameters change with each call; the result is typed here.
            builder: Any = (
                ApplicationBuilder()
                .token(TOKEN)
                .base_url(base_url)
                .base_file_url(file_url_for(base_url))
                .rate_limiter(limiter)
                .context_types(ContextTypes(context=ConciergeContext))
            )
            app: ConciergeApp = builder.build()
            async with app:
                watcher = AlertWatcher(services)
                started = now()
                await watcher.deliver(app, services.clock())
                elapsed = now() - started
        finally:
            await services.aclose()
        server = await botapi.stats()
    sent = await _count_sent(database_url)
    achieved = sent / elapsed
    share = achieved / rate
    refused = int(server["refused_429"])
    figure = Figure(
        key="fanout",
        title=f"Alert fan-out to {recipients:,} recipients through AIORateLimiter",
        headers=["configured", "sent", "seconds", "achieved", "share", "429s"],
        table=[
            [
                f"{rate:g} msg/s",
                f"{sent:,}",
                f"{elapsed:.1f}",
                f"{achieved:.1f} msg/s",
                f"{share:.1%}",
                str(refused),
            ]
        ],
        data={
            "recipients": recipients,
            "configured_rate": rate,
            "sent": sent,
            "seconds": round(elapsed, 3),
            "achieved_rate": round(achieved, 2),
            "share": round(share, 4),
            "responses_429": refused,
            "server": server,
        },
    )
    figure.targets.append(
        Target("achieved ≥ 95% of configured", share >= SHARE_TARGET, f"{share:.1%}")
    )
    figure.targets.append(Target("no 429", refused == 0, f"{refused}"))
    figure.targets.append(
        Target(
            "every alert marked sent (sanity check)",
            sent == recipients,
            f"{sent:,} of {recipients:,}",
        )
    )
    figure.notes += [
        "AlertWatcher.deliver sends the pending alerts (booking reminders, rendered per "
        "recipient) through an Application whose AIORateLimiter is set to the configured "
        "rate, to the local Bot API on 127.0.0.1 in its own process. In front of it, "
        "Telegram-like flood control: a bucket of one second's worth of messages (plus 50 ms "
        "for jitter), refilled at the configured rate, answering 429 with retry_after beyond.",
        "Achieved = alerts sent ÷ time delivery took. The limiter lets one second's worth go "
        "at once before it settles to the rate, so a share slightly above 100% is expected.",
        "PTB's default (and the bot's) is Telegram's 30 msg/s; the bench uses a higher rate "
        "so the run stays short, which asks more of delivery (each message, and its "
        "bookkeeping, must fit in a shorter interval). `--fanout-rate 30` runs Telegram's.",
    ]
    return figure
