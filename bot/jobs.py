"""Background jobs on PTB's JobQueue: vendor writes that ended away from their conversation,
and the alert watcher. At start, writes a stopped process left in flight are settled first."""

from __future__ import annotations

import asyncio
import logging

from bot.alert_watcher import watch_vendors
from bot.app_type import ConciergeApp, application_of
from bot.cluster import shared_job
from bot.services import Services
from bot.settings import Settings
from conversations.context import SERVICES_KEY, ConciergeContext
from conversations.i18n import N_
from conversations.notify import tell
from conversations.tasks import followed_line
from conversations.writes import Outcome, Result

logger = logging.getLogger(__name__)

FAILED_MESSAGE = N_("⚠️ {vendor} did not take your request ({reason}). Nothing was done.")
UNKNOWN_MESSAGE = N_(
    "⚠️ {vendor} did not answer, and it cannot show whether your request went through. "
    "Please check there before you ask again."
)
VENDOR_NAMES = {
    "akubela": "Akubela",
    "tuya": N_("The task system"),
    "servitly": N_("The maintenance log"),
}
# How long the start waits for what was in flight before it takes updates; the rest is
# settled by the repeating job.
RECOVERY_SECONDS = 30.0
RECOVERY_KEY = "writes_recovery"
# The repeating jobs' names, which logs, the error metrics (a failed job's "flow") and
# dashboards know them by: declared once, apart from module names, so that moving or renaming
# a module (the write journal was once the outbox module) renames nothing anyone relies on.
RETRY_WRITES_JOB = "outbox"
WATCH_VENDORS_JOB = "alerts"


async def report_outcome(application: ConciergeApp, services: Services, outcome: Outcome) -> None:
    """Tells whoever asked how a write ended that their conversation could not report."""
    write = outcome.write
    user = outcome.telegram_id
    vendor = VENDOR_NAMES.get(write.vendor, write.vendor)
    if outcome.result is Result.DONE:
        await tell(
            application,
            services,
            user,
            write.done_message,
            translate_values=True,
            **write.done_values(outcome.record_id),
        )
        line = followed_line(outcome.followed)
        if line is not None:
            await tell(application, services, user, line[0], **line[1])
    elif outcome.result is Result.UNKNOWN:
        await tell(
            application, services, user, UNKNOWN_MESSAGE, translate_values=True, vendor=vendor
        )
    elif outcome.result is Result.REFUSED:
        reason = outcome.reason or (outcome.error.message if outcome.error else "?")
        await tell(
            application,
            services,
            user,
            FAILED_MESSAGE,
            translate_values=True,
            vendor=vendor,
            reason=reason,
        )


async def deliver_outbox(context: ConciergeContext) -> None:
    """Takes over the writes of processes that are gone, and retries the writes whose time has
    come, first looking whether they already landed."""
    services: Services = context.bot_data[SERVICES_KEY]

    async def report(outcome: Outcome) -> None:
        await report_outcome(application_of(context), services, outcome)

    # In a cluster a process may die while others carry on: its writes are taken over here,
    # within one interval, not only when some process starts.
    await services.writes.recover(report)


async def recover_writes(application: ConciergeApp) -> None:
    """At start: finds out what became of the writes a stopped process left in flight.

    Waits up to RECOVERY_SECONDS before updates are taken; a recovery still running then
    (a vendor slow to answer) carries on beside them, never cut off half way.
    """
    services: Services = application.bot_data[SERVICES_KEY]

    async def report(outcome: Outcome) -> None:
        await report_outcome(application, services, outcome)

    recovery = asyncio.create_task(services.writes.recover(report), name="writes-recovery")
    application.bot_data[RECOVERY_KEY] = recovery
    done, _ = await asyncio.wait({recovery}, timeout=RECOVERY_SECONDS)
    if not done:
        logger.warning("writes left in flight are still being settled; updates go on meanwhile")
        return
    try:
        recovery.result()
    except Exception:
        logger.exception("settling the writes left in flight failed; the job retries them")


def schedule_jobs(application: ConciergeApp, settings: Settings) -> None:
    """Registers the repeating jobs (in cluster mode one process runs them for all)."""
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("the bot needs PTB's job queue (python-telegram-bot[job-queue])")
    job_queue.run_repeating(
        shared_job(deliver_outbox),
        interval=settings.outbox_interval_seconds,
        first=settings.outbox_interval_seconds,
        name=RETRY_WRITES_JOB,
    )
    job_queue.run_repeating(
        shared_job(watch_vendors),
        interval=settings.alert_poll_seconds,
        first=settings.alert_poll_seconds,
        name=WATCH_VENDORS_JOB,
    )
