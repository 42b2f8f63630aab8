"""The deployment's communities as the flows reach them: each community's rules, the vendor
clients it is served by, and the community a resident lands in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from api.errors import InvalidRequest, NotFound
from bot.communities import stored_values
from bot.demo import demo_communities
from conversations import callbacks
from conversations.booking import at_arg
from conversations.community import UnknownCommunity
from conversations.domain import Role
from sandbox.tuya import ROOM_A_1201
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot


async def test_a_deployment_of_one_community_is_community_1_from_its_settings(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(
        database_url, sandbox_app, timezone="Europe/Berlin", service_hours_start="09:00"
    ) as bot:
        services = bot.services
        [community] = services.communities()
        assert community.id == 1
        assert community.time_zone == "Europe/Berlin"
        assert community.service_hours_start.hour == 9
        assert community.akubela_project_id == bot.settings.akubela_project_id
        assert services.community(1) == community
        with pytest.raises(UnknownCommunity):
            services.community(2)
        # The same board, log and desk (and so the same token and name caches) as before.
        assert services.task_board_of(1) is services.task_board
        assert services.maintenance_log_of(1) is services.maintenance_log
        assert services.project_desk_of(1) is services.project_desk
        await link_demo_resident(bot, sandbox_app, 5101)
        assert await services.community_of(5101) == community
        assert await services.community_of(5999) == community  # nobody's: the first


# ---- two communities: Garden Court (Shanghai) and Marina Bay (Singapore) ---------------------

GRACE = 1101  # Grace Tan, Marina Bay
BOB = 1002  # Bob Wang, Garden Court
POOL = "a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b01"
SINGAPORE = ZoneInfo("Asia/Singapore")


@pytest.fixture
async def two(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as bot:
        services = bot.services
        for access in demo_communities(bot.settings, sandbox_app):
            await services.storage.communities.save(
                access.community.id, stored_values(access, services.cipher)
            )
        await services.load_communities()
        await link_demo_resident(bot, sandbox_app, GRACE, email="grace@marina.demo")
        await link_demo_resident(bot, sandbox_app, BOB, email="bob@demo.community")
        yield bot


async def test_a_resident_lands_in_the_community_of_their_residence(two: BotUnderTest) -> None:
    services = two.services
    assert [c.name_en for c in services.communities()] == ["Garden Court", "Marina Bay"]
    assert (await services.community_of(GRACE)).id == 2
    assert (await services.community_of(BOB)).id == 1
    desk = await services.resident_desk(GRACE)
    assert desk is not None
    assert {a.name for a in await desk.amenities()} == {"Pool / 游泳池", "Tennis court / 网球场"}


async def test_each_community_reaches_its_own_vendors(two: BotUnderTest) -> None:
    services = two.services
    marina = await services.project_desk_of(2).repairs()
    garden = await services.project_desk_of(1).repairs()
    assert [r.description for r in marina] == ["Aircon drips onto the floor. 空调滴水。"]
    assert marina[0].id not in {r.id for r in garden}
    assert {room.name for room in await services.task_board_of(2).rooms()} == {
        "Tower 1 #12-01",
        "Tower 2 #08-04",
        "Pool deck",
    }
    assert services.task_board_of(2) is not services.task_board_of(1)
    # Another community's room is unknown to a project, as Tuya would have it.
    with pytest.raises(NotFound):
        await services.task_board_of(2).create("1306411812723001", {ROOM_A_1201: ["0012243300b1"]})
    log = services.maintenance_log_of(2)
    assert log.places(["145267896505320001"]) == [{"locationId": "loc-marina-tower-1"}]
    assert not log.covers([ROOM_A_1201])
    start = datetime.now(UTC) - timedelta(hours=2)
    event = await log.record_event(
        place={"locationId": "loc-marina-tower-1"},
        reference="task-1",
        start=start,
        end=start + timedelta(hours=1),
        notes="Door lock fixed",
    )
    assert event
    with pytest.raises(InvalidRequest):  # Garden Court's place, under Marina Bay's tenant
        await log.record_event(
            place={"locationId": "loc-block-a"},
            reference="task-1",
            start=start,
            end=start + timedelta(hours=1),
            notes="Door lock fixed",
        )


async def test_one_manager_login_per_account(two: BotUnderTest) -> None:
    vendors = two.services.vendors
    assert vendors.manager(1) is two.services.manager_auth
    assert vendors.manager(2) is not vendors.manager(1)
    assert vendors.manager(2) is vendors.manager(2)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_singapore_resident_books_the_pool_on_its_60_minute_grid(
    two: BotUnderTest, sandbox_app: Starlette, language: str
) -> None:
    chat = two.chat(GRACE, language_code=language)
    await chat.send("/book")
    await chat.press(callbacks.build("book", "am", POOL))
    tomorrow = datetime.now(SINGAPORE).date() + timedelta(days=1)
    await chat.press(callbacks.build("book", "day", tomorrow.isoformat()))
    labels = [b["text"] for row in two.telegram.last_buttons() for b in row]
    starts = [label for label in labels if label[:2].isdigit()]
    # The pool opens 07:00-21:00 Singapore time: every start on the hour, in Singapore time.
    assert starts == [f"{hour:02d}:00" for hour in range(7, 21)]
    await chat.send("8:30am" if language == "en" else "早上8点半")
    assert (two.telegram.last.text or "").startswith(
        "08:30 can't be booked." if language == "en" else "08:30 无法预约。"
    )
    start = datetime.combine(tomorrow, time(8), tzinfo=SINGAPORE)
    await chat.press(callbacks.build("book", "at", at_arg(start)))
    await chat.press(callbacks.build("book", "dur", "60"))
    summary = two.telegram.last.text or ""
    assert summary.endswith("08:00–09:00 (1 h)" if language == "en" else "08:00–09:00（1 小时）")
    await chat.press(callbacks.build("book", "confirm"))
    vendor = sandbox_app.state.control.vendors["akubela"]
    [made] = [b for b in vendor._bookings.values() if b.amenity_id == POOL]
    assert made.start_time == start


async def test_the_watcher_reads_every_communitys_repairs(two: BotUnderTest) -> None:
    # A repair of Marina Bay, once seen, is still there at the next poll: each community's
    # round reads its own manager list, so nobody hears it was withdrawn, and only those who
    # serve Marina Bay hear of it at all.
    both, garden_court_only = 3101, 3102
    invites = two.services.invites
    for manager, communities in ((both, [1, 2]), (garden_court_only, [1])):
        code = await invites.create(
            Role.MANAGER,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            community_ids=communities,  # and so their projects
        )
        await invites.redeem(code, manager, now=datetime.now(UTC))
    assert two.app.job_queue is not None
    (job,) = two.app.job_queue.get_jobs_by_name("alerts")
    await job.run(two.app)  # the baseline
    desk = await two.services.resident_desk(GRACE)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=1)
    await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=2),
        description="The lift lobby light is out",
        contact="+65 9000 0001",
        command_id="c-marina-1",
    )
    await job.run(two.app)  # sees it new
    await job.run(two.app)  # and still there

    def told(manager: int) -> list[str]:
        return [
            str(call.params.get("text", ""))
            for call in two.telegram.sent("sendMessage")
            if int(call.params["chat_id"]) == manager
        ]

    assert not [text for text in told(both) if "withdrawn" in text]
    assert len([text for text in told(both) if "The lift lobby light is out" in text]) == 1
    assert not [text for text in told(garden_court_only) if "lift lobby" in text]
