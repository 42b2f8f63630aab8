"""Deferred writes: kept while the vendor is down, sent once when it is back, never twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from bot.jobs import deliver_outbox
from bot.outbox import MAX_ATTEMPTS
from bot.storage.models import OutboxItem, OutboxStatus
from conversations.common import new_command_id
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

USER = 4242


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock_() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, clock_: MovableClock
) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app, clock=clock_) as running:
        yield running


def _repair_payload(residence_id: str, description: str) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    return {
        "residence_id": residence_id,
        "start": start.isoformat(),
        "finish": (start + timedelta(hours=3)).isoformat(),
        "description": description,
        "contact": "+86 138 0000 0000",
    }


async def _run_job(bot: BotUnderTest) -> None:
    job = bot.app.job_queue.get_jobs_by_name("outbox")[0] if bot.app.job_queue else None
    assert job is not None, "the outbox job is not scheduled"
    await job.run(bot.app)


async def _item(bot: BotUnderTest, command_id: str) -> OutboxItem:
    from sqlalchemy import select

    async with bot.services.storage.sessions() as session:
        item = await session.scalar(select(OutboxItem).where(OutboxItem.command_id == command_id))
    assert item is not None
    return item


async def _repairs_described(bot: BotUnderTest, description: str) -> int:
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    return sum(1 for r in await desk.repairs() if r.description == description)


async def test_a_write_waits_out_an_outage_and_goes_through_once(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Kitchen tap drips all night, outage test"
    command_id = new_command_id()
    await bot.services.outbox.defer(
        USER,
        "akubela.repair.create",
        _repair_payload(person["residence_ids"][0], description),
        command_id=command_id,
    )
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=503))
    await _run_job(bot)
    item = await _item(bot, command_id)
    assert item.status is OutboxStatus.PENDING
    assert item.last_error == "Unavailable"
    assert bot.telegram.sent("sendMessage") == []

    faults.clear()
    await _run_job(bot)  # not due yet: the backoff holds it
    assert (await _item(bot, command_id)).status is OutboxStatus.PENDING
    clock_.advance(minutes=2)
    await _run_job(bot)
    assert (await _item(bot, command_id)).status is OutboxStatus.DONE
    assert await _repairs_described(bot, description) == 1
    assert "went through" in (bot.telegram.last.text or "")

    clock_.advance(minutes=10)
    await _run_job(bot)
    assert await _repairs_described(bot, description) == 1
    assert len(bot.telegram.sent("sendMessage")) == 1


async def test_a_deferred_repair_keeps_its_photos_once_created(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Window latch broken, photos deferred"
    payload = _repair_payload(person["residence_ids"][0], description) | {
        "photo_file_ids": ["p-1", "p-2"]
    }
    await bot.services.outbox.defer(
        USER, "akubela.repair.create", payload, command_id=new_command_id()
    )
    await _run_job(bot)
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    (repair,) = [r for r in await desk.repairs() if r.description == description]
    assert repair.maintenance_id is not None
    report = await bot.services.repair_reports.get(
        repair.maintenance_id, residence_id=desk.residence_id
    )
    assert report is not None
    assert report.photo_file_ids == ["p-1", "p-2"]


async def test_a_record_that_landed_without_an_answer_is_not_created_again(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Hallway light flickers, answer lost"
    payload = _repair_payload(person["residence_ids"][0], description)
    command_id = new_command_id()
    await bot.services.outbox.defer(USER, "akubela.repair.create", payload, command_id=command_id)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.DROP, path="/akubela/api"))
    await _run_job(bot)
    faults.clear()
    # The vendor took it after all (the answer was what got lost).
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    await desk.report_repair(
        start=datetime.fromisoformat(payload["start"]),
        finish=datetime.fromisoformat(payload["finish"]),
        description=description,
        contact=payload["contact"],
        command_id=command_id,
    )
    clock_.advance(minutes=2)
    await _run_job(bot)
    assert (await _item(bot, command_id)).status is OutboxStatus.DONE
    assert await _repairs_described(bot, description) == 1


async def test_after_the_retry_budget_the_user_is_told_in_their_language(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    await bot.services.storage.users.set_language(USER, "zh")
    command_id = new_command_id()
    await bot.services.outbox.defer(
        USER,
        "akubela.repair.create",
        _repair_payload(person["residence_ids"][0], "Balcony door will not lock"),
        command_id=command_id,
    )
    sandbox_app.state.control.faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api"))
    for _ in range(MAX_ATTEMPTS):
        await _run_job(bot)
        clock_.advance(hours=1)
    assert (await _item(bot, command_id)).status is OutboxStatus.FAILED
    messages = bot.telegram.sent("sendMessage")
    assert len(messages) == 1
    assert "未能" in (messages[0].text or "")


async def test_an_unlinked_user_gets_a_clear_failure(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    command_id = new_command_id()
    await bot.services.outbox.defer(
        USER,
        "akubela.booking.cancel",
        {"residence_id": person["residence_ids"][0], "booking_id": "b-1"},
        command_id=command_id,
    )
    await bot.services.accounts.unlink_resident(USER)
    await _run_job(bot)
    assert (await _item(bot, command_id)).status is OutboxStatus.FAILED
    assert "no longer linked" in (bot.telegram.last.text or "")


async def test_the_same_command_deferred_twice_stays_one_item(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    command_id = new_command_id()
    payload = {"residence_id": person["residence_ids"][0], "booking_code": "x"}
    await bot.services.outbox.defer(
        USER, "akubela.booking.by_code", payload, command_id=command_id
    )
    await bot.services.outbox.defer(
        USER, "akubela.booking.by_code", payload, command_id=command_id
    )
    from sqlalchemy import func, select

    async with bot.services.storage.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxItem))
    assert count == 1


def test_the_job_callback_is_the_delivery() -> None:
    assert deliver_outbox.__name__ == "deliver_outbox"
