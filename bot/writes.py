"""Writes that know their own outcome: one mechanism for every vendor write.

Before a create, cancel, delete or task move leaves the bot, it is recorded (`vendor_writes`):
what it is, for whom, and how to recognise its result (`conversations.writes`). The process
sending it holds it for a lease and marks it `maybe_sent` the moment before it goes out.

Whenever the outcome is unknown (the bot was killed mid-call, the answer timed out, the
connection dropped), the next attempt first asks the vendor what happened (`find`): a write
that is there is done and reported once, with its id; one that is not is sent again under its
command id. At start, writes held by processes that are gone are taken over at once; the
`outbox` job retries the rest with backoff. The user hears once: from their conversation when
the answer came at once, otherwise from here when the write ended.

`on_outcome` hooks run wherever a write ends (in a conversation, in the job, at start): the
one place to hang what follows a write (its photos kept, the audit log, announcements).

A write that ends in a conversation is told by that update's handler, so it counts as told
only when the update's handling is stored (`reported_by_handler`): in cluster mode in the
transaction that marks the update handled, in one process once the update was processed.
Until then its process holds it, however long the handler runs. A process killed before that
point leaves it untold, and the job (or the next start) tells it, in the user's language, as
it tells a write that ended away from its conversation. A kill in between the handler's reply
and that point tells it twice, never not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime, timedelta

from pydantic import ValidationError

from api.errors import ApiError, RateLimited, Unavailable
from bot.storage.models import WriteRecord, WriteStatus
from bot.storage.repositories import Storage
from bot.storage.writes import FollowUp
from conversations.i18n import N_
from conversations.writes import (
    CannotTell,
    NotLinked,
    Outcome,
    Result,
    Targets,
    TaskAccept,
    Write,
    dump_write,
    load_write,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=30)

REASON_NOT_LINKED = N_("the Akubela account is no longer linked")
REASON_NO_ANSWER = N_("no answer after several tries")
REASON_UNREADABLE = N_("an unknown kind of request")
REASON_UNDERWAY = N_("⏳ That is already on its way; you will hear back here when it is done.")
REASON_REFUSED = N_("it refused the request")
# The reasons a refusal is stored with that can be told as they are (else: REASON_REFUSED).
_TOLD_REASONS = {REASON_NOT_LINKED, REASON_NO_ANSWER, REASON_UNREADABLE}

Hook = Callable[[Outcome], Awaitable[None]]
Report = Callable[[Outcome], Awaitable[None]]
Hold = Callable[[list[int]], Awaitable[None]]
TargetsFor = Callable[[int], Targets]

_RESULTS = {
    Result.DONE: WriteStatus.DONE,
    Result.REFUSED: WriteStatus.FAILED,
    Result.UNKNOWN: WriteStatus.UNKNOWN,
}
_ENDS = {status: result for result, status in _RESULTS.items()}


class HandlerReports:
    """The writes that ended while one update was handled, told by its handler.

    While the handler runs on (it may wait for Telegram's send limits or a slow vendor), its
    process keeps holding them: from the first one on, a renewal moves their hold a lease on
    every third of a lease, until the block ends. A process that dies stops renewing, so the
    journal takes them over one lease later.
    """

    __slots__ = ("_done", "_holding", "row_ids", "task")

    def __init__(self) -> None:
        # Only the update's own task: a task a handler starts does not tell the user itself.
        self.task = asyncio.current_task()
        self.row_ids: list[int] = []
        self._holding: asyncio.Task[None] | None = None
        self._done: asyncio.Event | None = None

    def add(self, row_id: int, hold: Hold, every: float) -> None:
        """`row_id` ended in this update; `hold(row_ids)` keeps them held, every `every` s."""
        self.row_ids.append(row_id)
        if self._holding is None:
            self._done = asyncio.Event()
            self._holding = asyncio.create_task(
                self._keep_holding(hold, every, self._done), name="concierge-writes-hold"
            )

    async def _keep_holding(self, hold: Hold, every: float, done: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every)
                return
            if not self.row_ids:
                continue  # given up (the handler failed): the journal tells them
            try:
                await hold(list(self.row_ids))
            except Exception as error:
                # The hold still runs for two thirds of a lease: the next round tries again.
                logger.warning("could not renew the hold on told writes: %s", type(error).__name__)

    async def close(self) -> None:
        """The block ended: the renewal stops, between two statements rather than in one, and
        is gone when this returns (cancelled with it if the caller is cancelled meanwhile)."""
        if self._holding is not None and self._done is not None:
            self._done.set()
            await self._holding


_HANDLER_REPORTS: ContextVar[HandlerReports | None] = ContextVar(
    "concierge_handler_reports", default=None
)


@contextlib.asynccontextmanager
async def reported_by_handler() -> AsyncIterator[HandlerReports | None]:
    """Writes that end inside the block are told by the update's handler: they count as told
    once the caller stores the update's handling and marks `row_ids` reported with it. The
    caller does that right after the block; within it, this process keeps holding them.

    Inside another block of the same task (the Application's inside the cluster dispatcher's)
    this yields None: they belong to the outer one, whose owner stores them.
    """
    if _handler_reports() is not None:
        yield None
        return
    reports = HandlerReports()
    token = _HANDLER_REPORTS.set(reports)
    try:
        yield reports
    finally:
        _HANDLER_REPORTS.reset(token)
        await reports.close()


def handler_failed() -> None:
    """The update's handler failed: the writes that ended in it may never have been told, so
    they do not count as told with the update and are no longer held; the journal tells them
    once their hold runs out."""
    reports = _handler_reports()
    if reports is not None:
        reports.row_ids.clear()


def _handler_reports() -> HandlerReports | None:
    reports = _HANDLER_REPORTS.get()
    if reports is None or reports.task is not asyncio.current_task():
        return None
    return reports


def process_owner() -> str:
    """Names this process: host, pid and a start id (a pid is reused; the start id is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_gone(owner: str, me: str) -> bool:
    """Whether the process named `owner` is certainly gone (on this host; elsewhere: unknown)."""
    if owner == me:
        return False
    try:
        host, pid_text, _start = owner.rsplit(":", 2)
        my_host, my_pid, _ = me.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host:
        return False  # another machine's process: its lease says when it is gone
    if str(pid) == my_pid:
        return True  # an earlier start of a process with our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class WriteJournalService:
    """Records, sends and settles vendor writes (the conversations' `WriteJournal`)."""

    def __init__(
        self,
        storage: Storage,
        *,
        targets_for: TargetsFor,
        clock: Callable[[], datetime],
        lease: timedelta,
        owner: str | None = None,
    ) -> None:
        self._storage = storage
        self._targets_for = targets_for
        self._clock = clock
        self._lease = lease
        self.owner = owner or process_owner()
        self._hooks: list[Hook] = []

    def on_outcome(self, hook: Hook) -> None:
        """Runs `hook` once for every write that ends (done, refused or unknown), wherever."""
        self._hooks.append(hook)

    @contextlib.asynccontextmanager
    async def told_by_update(self) -> AsyncIterator[None]:
        """One update's handling in a single process: the writes that ended in it count as
        told once it was processed. A process that dies first (or a block that raises) leaves
        them to `recover`. Inside the cluster dispatcher's block this adds to that one."""
        async with reported_by_handler() as reports:
            yield
        if reports is not None and reports.row_ids:
            await self._storage.writes.reported(reports.row_ids, now=self._clock())

    async def _hold_told(self, row_ids: list[int]) -> None:
        await self._storage.writes.hold_unreported(
            row_ids, owner=self.owner, until=self._clock() + self._lease
        )

    # ---- the conversations' entry point ----------------------------------------------------

    async def submit(
        self, telegram_id: int, write: Write, *, command_id: str, draft: str | None = None
    ) -> Outcome:
        """Records `write` (handing `draft` over to it), sends it, and says how it ended."""
        now = self._clock()
        begun = await self._storage.writes.begin(
            command_id=command_id,
            telegram_id=telegram_id,
            vendor=write.vendor,
            kind=write.kind,
            subject=write.subject(),
            write=dump_write(write),
            owner=self.owner,
            now=now,
            lease_until=now + self._lease,
            draft_job=draft,
        )
        row = begun.row
        if begun.other:
            logger.info("a %s on %s is already in flight", write.kind, write.subject())
            return Outcome(telegram_id, command_id, write, Result.KEPT, reason=REASON_UNDERWAY)
        if not begun.held:
            stored = self._read(row) or write
            if row.status is WriteStatus.DONE:
                return Outcome(
                    row.telegram_id,
                    row.command_id,
                    stored,
                    Result.DONE,
                    record_id=row.record_id,
                    settled_before=True,
                )
            return Outcome(telegram_id, command_id, stored, Result.KEPT, reason=REASON_UNDERWAY)
        readable = self._read(row)
        if readable is None:
            return await self._settle(row, write, Result.REFUSED, reason=REASON_UNREADABLE)
        return await self._attempt(row, readable)

    # ---- the job and the start ---------------------------------------------------------------

    async def deliver_due(self, report: Report) -> int:
        """One attempt at every write whose retry is due; reports each that ended."""
        now = self._clock()
        rows = await self._storage.writes.claim_due(
            now=now, owner=self.owner, lease_until=now + self._lease
        )
        return await self._run(rows, report)

    async def recover(self, report: Report) -> int:
        """At start: takes over what gone processes were sending, then what is due."""
        now = self._clock()
        orphans = await self._storage.writes.claim_orphans(
            now=now,
            owner=self.owner,
            lease_until=now + self._lease,
            gone=lambda owner: owner_gone(owner, self.owner),
        )
        if orphans:
            logger.info("taking over %d writes a stopped process was sending", len(orphans))
        ended = await self._run(orphans, report) + await self.deliver_due(report)
        return ended + await self.tell_unreported(report)

    async def tell_unreported(self, report: Report) -> int:
        """Tells the writes that ended in an update whose handling was never stored (its
        process died) or not in time; each is marked told once its report was made."""
        now = self._clock()
        rows = await self._storage.writes.claim_unreported(
            now=now,
            owner=self.owner,
            lease_until=now + self._lease,
            gone=lambda owner: owner_gone(owner, self.owner),
        )
        for row in rows:
            write = self._read(row)
            if write is not None:
                logger.info("write %s ended untold; telling it now", row.command_id)
                try:
                    await report(self._ended(row, write))
                except Exception:
                    # Told or not, it is not told again: one failed notice must not repeat.
                    logger.exception("could not report write %s", row.command_id)
            await self._storage.writes.reported([row.id], now=self._clock())
        return len(rows)

    @staticmethod
    def _ended(row: WriteRecord, write: Write) -> Outcome:
        """How a stored write that ended is told."""
        result = _ENDS[row.status]
        reason = None
        if result is Result.REFUSED:
            reason = row.last_error if row.last_error in _TOLD_REASONS else REASON_REFUSED
        return Outcome(
            row.telegram_id, row.command_id, write, result, record_id=row.record_id, reason=reason
        )

    async def _run(self, rows: list[WriteRecord], report: Report) -> int:
        ended = 0
        for row in rows:
            write = self._read(row)
            if write is None:
                await self._settle_unreadable(row)
                continue
            outcome = await self._attempt(row, write)
            if outcome.result is Result.KEPT or outcome.settled_before:
                continue
            ended += 1
            try:
                await report(outcome)
            except Exception:
                # The write itself ended; a failed notice must not hold up the others.
                logger.exception("could not report write %s", row.command_id)
        return ended

    # ---- one attempt ---------------------------------------------------------------------------

    def _read(self, row: WriteRecord) -> Write | None:
        try:
            return load_write(row.write)
        except ValidationError:
            logger.warning("write %s of kind %s cannot be read", row.id, row.kind)
            return None

    async def _settle_unreadable(self, row: WriteRecord) -> None:
        # Written by a version that knew a kind this one does not: ended, never guessed at.
        await self._storage.writes.settle(
            row.id, WriteStatus.FAILED, now=self._clock(), error="unreadable"
        )

    async def _attempt(self, row: WriteRecord, write: Write) -> Outcome:
        """Looks first when an earlier attempt may have landed; else (or then) sends."""
        targets = self._targets_for(row.telegram_id)
        maybe_sent = row.maybe_sent
        sent_now = False
        try:
            if maybe_sent:
                found = await write.find(targets)
                if found is not None:
                    logger.info("write %s was found at %s", row.command_id, write.vendor)
                    return await self._settle(
                        row, write, Result.DONE, record_id=found.record_id, found=True
                    )
            prepared = await write.prepare(targets)
            if prepared is not write:
                write = prepared
                await self._storage.writes.update_write(row.id, self.owner, dump_write(write))
            await self._storage.writes.sending(row.id, self.owner)
            sent_now = True
            record_id = await write.perform(targets, row.command_id)
        except CannotTell:
            return await self._settle(row, write, Result.UNKNOWN)
        except NotLinked:
            return await self._settle(row, write, Result.REFUSED, reason=REASON_NOT_LINKED)
        except (Unavailable, RateLimited) as error:
            if sent_now:
                maybe_sent = isinstance(error, Unavailable) and error.outcome_unknown
            return await self._unanswered(row, write, error, maybe_sent, looked=not sent_now)
        except ApiError as error:
            # A refusal: the vendor looked at it and did nothing.
            logger.info("write %s refused: %s", row.command_id, type(error).__name__)
            return await self._settle(row, write, Result.REFUSED, error=error)
        return await self._settle(row, write, Result.DONE, record_id=record_id)

    async def _unanswered(
        self,
        row: WriteRecord,
        write: Write,
        error: Unavailable | RateLimited,
        maybe_sent: bool,
        *,
        looked: bool,
    ) -> Outcome:
        """The vendor did not answer: look once more if it may have acted, else keep it."""
        if maybe_sent and not looked:
            try:
                found = await write.find(self._targets_for(row.telegram_id))
            except (ApiError, CannotTell, NotLinked):
                found = None
            if found is not None:
                logger.info("write %s landed without its answer", row.command_id)
                return await self._settle(
                    row, write, Result.DONE, record_id=found.record_id, found=True
                )
        if row.attempts >= MAX_ATTEMPTS:
            if maybe_sent:
                return await self._settle(row, write, Result.UNKNOWN, error=error)
            return await self._settle(
                row, write, Result.REFUSED, error=error, reason=REASON_NO_ANSWER
            )
        wait = min(LONGEST_WAIT, FIRST_RETRY * 2 ** max(0, row.attempts - 1))
        if isinstance(error, RateLimited) and error.retry_after:
            wait = max(wait, timedelta(seconds=error.retry_after))
        await self._storage.writes.release(
            row.id,
            self.owner,
            maybe_sent=maybe_sent,
            error=type(error).__name__,
            next_attempt_at=self._clock() + wait,
        )
        logger.info("write %s (%s) is kept; next try in %s", row.command_id, write.kind, wait)
        return Outcome(row.telegram_id, row.command_id, write, Result.KEPT, error=error)

    async def _settle(
        self,
        row: WriteRecord,
        write: Write,
        result: Result,
        *,
        record_id: str | None = None,
        error: ApiError | None = None,
        reason: str | None = None,
        found: bool = False,
    ) -> Outcome:
        """Ends the write once; runs the hooks and the writes that follow it."""
        then = (
            [
                (f"{row.command_id}/{number}", follow)
                for number, follow in enumerate(write.then, start=1)
            ]
            if result is Result.DONE and isinstance(write, TaskAccept)
            else []
        )
        # Ended inside an update: its handler tells it, and it counts as told with the update.
        reports = _handler_reports()
        now = self._clock()
        settled = await self._storage.writes.settle(
            row.id,
            _RESULTS[result],
            now=now,
            reporter=self.owner if reports is not None else None,
            report_by=now + self._lease,
            record_id=record_id,
            error=type(error).__name__ if error is not None else reason,
            then=[
                FollowUp(
                    command_id=command_id,
                    telegram_id=row.telegram_id,
                    vendor=follow.vendor,
                    kind=follow.kind,
                    subject=follow.subject(),
                    write=dump_write(follow),
                )
                for command_id, follow in then
            ],
        )
        outcome = Outcome(
            row.telegram_id,
            row.command_id,
            write,
            result,
            record_id=record_id,
            error=error,
            reason=reason,
            found=found,
            settled_before=not settled,
        )
        if not settled:
            return outcome
        if reports is not None:
            reports.add(row.id, self._hold_told, self._lease.total_seconds() / 3)
        logger.info("write %s (%s) ended: %s", row.command_id, write.kind, result.value)
        for hook in self._hooks:
            try:
                await hook(outcome)
            except Exception:
                # What follows a write must not undo knowing how it ended.
                logger.exception("a hook failed after write %s", row.command_id)
        if then:
            # Recorded with the settling above; sent now (or, after a crash, by the next start).
            followed = [
                await self.submit(row.telegram_id, follow, command_id=command_id)
                for command_id, follow in then
            ]
            outcome = dataclasses.replace(outcome, followed=followed)
        return outcome
