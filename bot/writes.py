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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
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

Hook = Callable[[Outcome], Awaitable[None]]
Report = Callable[[Outcome], Awaitable[None]]
TargetsFor = Callable[[int], Targets]

_RESULTS = {
    Result.DONE: WriteStatus.DONE,
    Result.REFUSED: WriteStatus.FAILED,
    Result.UNKNOWN: WriteStatus.UNKNOWN,
}


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
        return await self._run(orphans, report) + await self.deliver_due(report)

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
        settled = await self._storage.writes.settle(
            row.id,
            _RESULTS[result],
            now=self._clock(),
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
