"""The one error handler: log with context and a trace id (never secrets or what the user
typed), apologise to the user with that id, and report to the operator, throttled."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from telegram import Update
from telegram.error import Forbidden, TelegramError

from bot.app_type import ConciergeApp, application_of
from bot.metrics import mark_update, where_of
from bot.writes import handler_failed
from conversations.context import SERVICES_KEY, ConciergeContext
from conversations.i18n import N_, tr
from conversations.notify import language_of, mark_blocked

logger = logging.getLogger(__name__)

APOLOGY = N_(
    "Sorry, something went wrong on our side. Please try again in a moment. (Reference: {trace})"
)
REPORT_ONE = N_("⚠️ Concierge error {trace}: {error} in {flow} / {step}.")
REPORT_MANY = N_("⚠️ Concierge: {count} unhandled errors since the last report.")
REPORT_LINE = N_("• {count}× {error} in {flow} / {step}")
REPORT_TRACES = N_("First trace {first}, last trace {last}.")


def new_trace_id() -> str:
    """A short id that ties the user's apology, the operator's report and the log line."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """What the operator learns of one error: its type and where, never its message."""

    trace_id: str
    error: str
    flow: str
    step: str


def render_reports(reports: Sequence[ErrorReport], lang: str) -> str:
    """One message for a batch of reports; several are counted by type and place."""
    if len(reports) == 1:
        only = reports[0]
        return tr(
            lang, REPORT_ONE, trace=only.trace_id, error=only.error, flow=only.flow, step=only.step
        )
    places = Counter((r.error, r.flow, r.step) for r in reports)
    lines = [tr(lang, REPORT_MANY, count=len(reports))]
    lines += [
        tr(lang, REPORT_LINE, count=count, error=error, flow=flow, step=step)
        for (error, flow, step), count in places.most_common(10)
    ]
    lines.append(tr(lang, REPORT_TRACES, first=reports[0].trace_id, last=reports[-1].trace_id))
    return "\n".join(lines)


SendReports = Callable[[Sequence[ErrorReport]], Awaitable[None]]


class OperatorReports:
    """Reports to the operator: the first error of a burst waits `delay` seconds for the rest,
    then one message goes out; the next waits until `interval` has passed since, so a storm is
    one message with a count, not a message per error."""

    def __init__(
        self,
        *,
        delay: float,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._delay = delay
        self._interval = interval
        self._clock = clock
        self._pending: list[ErrorReport] = []
        self._last_sent: float | None = None
        self._flushing: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Reports waiting to go out."""
        return len(self._pending)

    def add(self, report: ErrorReport, send: SendReports) -> None:
        """Queues a report; the batch it joins goes out through `send` when it is due."""
        self._pending.append(report)
        if self._flushing is not None and not self._flushing.done():
            return
        wait = self._delay
        if self._last_sent is not None:
            wait = max(wait, self._last_sent + self._interval - self._clock())
        self._flushing = asyncio.get_running_loop().create_task(
            self._flush_after(wait, send), name="operator-report"
        )

    async def _flush_after(self, wait: float, send: SendReports) -> None:
        await asyncio.sleep(wait)
        await self.flush(send)

    async def flush(self, send: SendReports) -> None:
        """Sends what is pending now, as one message."""
        reports, self._pending = self._pending, []
        if not reports:
            return
        self._last_sent = self._clock()
        try:
            await send(reports)
        except TelegramError as exc:
            logger.warning("could not report %d errors to the operator: %s", len(reports), exc)

    async def aclose(self) -> None:
        """Stops a report that is waiting (at shutdown)."""
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            await asyncio.gather(self._flushing, return_exceptions=True)


def _report_sender(application: ConciergeApp, chat_id: int) -> SendReports:
    async def send(reports: Sequence[ErrorReport]) -> None:
        services = application.bot_data[SERVICES_KEY]
        lang = await language_of(application, services, chat_id)
        await application.bot.send_message(chat_id, render_reports(reports, lang))

    return send


async def on_error(update: object, context: ConciergeContext) -> None:
    """Logs an unhandled failure, tells the user (with a trace id) that it was ours, and
    reports it to the operator."""
    error = context.error
    mark_update("error")
    handler_failed()
    trace = new_trace_id()
    if update is None and context.job is not None:
        flow, step = "job", context.job.name or "job"
    else:
        flow, step = where_of(error) or ("update", type(update).__name__)
    update_id = update.update_id if isinstance(update, Update) else None
    user_id = (
        update.effective_user.id if isinstance(update, Update) and update.effective_user else None
    )
    logger.error(
        "unhandled %s in %s/%s (trace %s, update %s, user %s)",
        type(error).__name__,
        flow,
        step,
        trace,
        update_id,
        user_id,
        exc_info=error,
    )
    services = context.bot_data.get(SERVICES_KEY)
    operator = services.settings.operator_chat_id if services is not None else None
    if services is not None and operator is not None:
        report = ErrorReport(trace, type(error).__name__, flow, step)
        services.reports.add(report, _report_sender(application_of(context), operator))
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        await context.bot.send_message(update.effective_chat.id, context.t(APOLOGY, trace=trace))
    except Forbidden:
        logger.info("user %s has blocked the bot; no apology sent", user_id)
        if user_id is not None:
            await mark_blocked(context.application, context.services, user_id)
    except TelegramError as exc:
        logger.warning("could not apologise to user %s: %s", user_id, type(exc).__name__)
