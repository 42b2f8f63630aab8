"""Figure 3: alerts to N recipients, some of them several, through the bot's alert delivery
(which paces itself per chat and overall, `bot.alert_pacing`) and the bot's own rate limiter,
against the local Bot API over a real socket with its own rulebook's flood control, Telegram's
limits (30 messages a second overall; per private chat a burst of 5, then one a second; see
`bench.botapi_server`): the achieved rate as a share of the configured one, how many 429s the
server answered, and whether any chat's alerts waited behind another's.

The alerts wait in `sent_alerts` as the watcher leaves them, a recipient's several ones side by
side as they are created; `AlertDelivery.deliver` sends them as it does after every poll
(rendered in each recipient's language and zone, one message each, marked sent one by one).

An alert is delayed behind another chat's when delivery waits on one chat's own limit (a 429
for chat X, until X's retry goes through) and sends nothing to any other chat meanwhile, though
other chats' alerts are pending: a stall. Every stall and the seconds it took are reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select
from telegram.ext import ApplicationBuilder, ContextTypes
from telegram.request import HTTPXRequest, RequestData

from bench.botapi_server import STATS_PATH, TOKEN
from bench.child_server import ChildServer
from bench.harness import bench_settings, now, sqlite_url
from bench.report import Figure, Target
from bot.alert_delivery import AlertDelivery
from bot.alert_kinds import MSG_BOOKING_REMINDER, Alert, AlertKind
from bot.app import file_url_for, telegram_rate_limiter
from bot.app_type import ConciergeApp
from bot.send_budget import TELEGRAM
from bot.services import Services
from bot.storage.db import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import AlertStatus, SentAlert, TelegramUser
from bot.storage.repositories import storable_key
from conversations.context import ConciergeContext

FIRST_RECIPIENT = 8_000_000
SHARE_TARGET = 0.95
ROWS_PER_INSERT = 1_000
# A wait on one chat longer than this (two intervals at Telegram's 30/s) is a stall, not the
# ordinary spacing between two messages.
STALL_SECONDS = 2 / 30


def reminder(recipient: int, starts: datetime, number: int = 0) -> Alert:
    """The booking reminder the watcher would owe this resident (its `number`-th booking)."""
    return Alert(
        key=f"booking:b-bench-{recipient}-{number}:remind:{starts.isoformat()}:{recipient}",
        kind=AlertKind.BOOKING_REMINDER,
        recipient=recipient,
        message=MSG_BOOKING_REMINDER,
        values={"amenity": "Gym", "when": starts.isoformat()},
        moments=("when",),
        urgent=True,
    )


def alerts_of(number: int, *, several: int, every: int) -> int:
    """How many alerts the `number`-th recipient gets: `several` for every `every`-th."""
    return several if every > 0 and number % every == 0 else 1


async def store_alerts(database_url: str, recipients: int, *, several: int, every: int) -> int:
    """Migrates the database and leaves pending reminders: one for each recipient, `several`
    for every `every`-th, side by side; returns how many."""
    await upgrade(database_url)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    engine = create_engine(database_url)
    stored = 0
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
                alerts = [
                    reminder(i, starts, k)
                    for i in ids
                    for k in range(alerts_of(i - FIRST_RECIPIENT, several=several, every=every))
                ]
                stored += len(alerts)
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
    return stored


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """One send the bot made: to which chat, when it ended, what Telegram answered."""

    chat_id: int
    ended: float
    status: int


class AttemptLog(HTTPXRequest):
    """The bot's HTTP request, noting every send it makes (each retry after a 429 too)."""

    def __init__(self) -> None:
        super().__init__(connection_pool_size=8)
        self.attempts: list[Attempt] = []

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Sends, and notes the answer."""
        status, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        chat_id = (request_data.parameters if request_data is not None else {}).get("chat_id")
        if isinstance(chat_id, int | str):
            self.attempts.append(Attempt(int(chat_id), now(), status))
        return status, payload


def stalls(attempts: list[Attempt]) -> list[float]:
    """The seconds of every stall: a 429 for one chat until that chat's next accepted send,
    with nothing sent to any other chat in between (though alerts for others were pending)."""
    found: list[float] = []
    for index, attempt in enumerate(attempts):
        if attempt.status != 429:
            continue
        for later in attempts[index + 1 :]:
            if later.chat_id != attempt.chat_id and later.status == 200:
                break  # other chats went on meanwhile: no one waited behind this one
            if later.chat_id == attempt.chat_id and later.status == 200:
                others_after = any(a.chat_id != attempt.chat_id for a in attempts[index + 1 :])
                waited = later.ended - attempt.ended
                if others_after and waited > STALL_SECONDS:
                    found.append(waited)
                break
    return found


class LocalBotApi(ChildServer):
    """`bench.botapi_server` in a child process on a loopback port, with Telegram's limits
    (`rate` None) or a bucket of `rate` messages a second."""

    def __init__(self, recipients: int, rate: float | None) -> None:
        limits = ["--strict"] if rate is None else ["--rate", str(rate)]
        arguments = ["--recipients", str(recipients), "--first-id", str(FIRST_RECIPIENT)]
        super().__init__("bench.botapi_server", [*arguments, *limits], health="/_botapi/health")

    async def stats(self) -> dict[str, Any]:
        """What the server accepted and refused."""
        async with httpx.AsyncClient(base_url=self.base) as client:
            found: dict[str, Any] = (await client.get(STATS_PATH)).json()
        return found


async def run_fanout(
    *, recipients: int, rate: float, several: int, every: int, workdir: Path
) -> Figure:
    """Figure 3: delivers the pending alerts, paced at `rate` messages per second overall and
    Telegram's per-chat limit, against Telegram's own limits."""
    database_url = sqlite_url(workdir / f"fanout-{recipients}.db")
    total = await store_alerts(database_url, recipients, several=several, every=every)
    log = AttemptLog()
    async with LocalBotApi(recipients, None) as botapi:
        base_url = f"{botapi.base}/bot"
        settings = bench_settings(database_url, telegram_base_url=base_url)
        services = Services.open(settings)
        try:
            # The bot's own limiter, as `concierge run` builds it.
            builder: Any = (
                ApplicationBuilder()
                .token(TOKEN)
                .base_url(base_url)
                .base_file_url(file_url_for(base_url))
                .request(log)
                .rate_limiter(telegram_rate_limiter(services))
                .context_types(ContextTypes(context=ConciergeContext))
            )
            app: ConciergeApp = builder.build()
            async with app:
                delivery = AlertDelivery(
                    services, limits=dataclasses.replace(TELEGRAM, overall=round(rate))
                )
                started = now()
                await delivery.deliver(app, services.clock())
                elapsed = now() - started
        finally:
            await services.aclose()
        server = await botapi.stats()
    sent = await _count_sent(database_url)
    achieved = sent / elapsed
    share = achieved / rate
    refused = int(server["refused_429"])
    stalled = stalls(log.attempts)
    several_recipients = sum(
        1 for n in range(recipients) if alerts_of(n, several=several, every=every) > 1
    )
    figure = Figure(
        key="fanout",
        title=(
            f"Alert fan-out: {total:,} alerts to {recipients:,} recipients at Telegram's limits"
        ),
        headers=[
            "configured",
            "alerts",
            "sent",
            "seconds",
            "achieved",
            "share",
            "429s",
            "stalls behind one chat",
            "seconds stalled",
        ],
        table=[
            [
                f"{rate:g} msg/s",
                f"{total:,}",
                f"{sent:,}",
                f"{elapsed:.1f}",
                f"{achieved:.1f} msg/s",
                f"{share:.1%}",
                str(refused),
                str(len(stalled)),
                f"{sum(stalled):.1f}",
            ]
        ],
        data={
            "recipients": recipients,
            "alerts": total,
            "recipients_with_several": several_recipients,
            "alerts_each_of_those": several,
            "configured_rate": rate,
            "sent": sent,
            "seconds": round(elapsed, 3),
            "achieved_rate": round(achieved, 2),
            "share": round(share, 4),
            "responses_429": refused,
            "stalls": len(stalled),
            "stalled_seconds": round(sum(stalled), 3),
            "server": server,
        },
    )
    figure.targets.append(
        Target("achieved ≥ 95% of configured", share >= SHARE_TARGET, f"{share:.1%}")
    )
    figure.targets.append(Target("no 429", refused == 0, f"{refused}"))
    figure.targets.append(
        Target(
            "no alert delayed behind another chat's",
            not stalled,
            f"{len(stalled)} stalls, {sum(stalled):.1f} s",
        )
    )
    figure.targets.append(
        Target("every alert marked sent (sanity check)", sent == total, f"{sent:,} of {total:,}")
    )
    figure.notes += [
        "AlertDelivery.deliver sends the pending alerts (booking reminders, rendered per "
        "recipient), the chats taking turns, paced at the configured rate overall and at "
        "Telegram's per-chat limit (bot.alert_pacing), through the bot's own rate limiter (each "
        "message waits for its turn in the send budget, bot.send_budget), "
        "to the local Bot API on 127.0.0.1 in its own process, playing Telegram's flood "
        "control from its rulebook (sandbox/botapi/rules.py): 30 msg/s overall, and per "
        "private chat a burst of 5 then one a second, answering 429 with retry_after beyond.",
        f"{several_recipients} recipients get {several} alerts each, stored side by side; "
        "everyone else one. A stall is a 429 for one chat followed by nothing sent to any other "
        "chat until that chat's retry went through, while other chats' alerts were pending.",
        "Achieved = alerts sent ÷ time delivery took; 429s are every one the server answered.",
    ]
    return figure
