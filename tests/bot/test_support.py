"""The test helpers themselves: a quickly linked resident really reaches the sandbox."""

from __future__ import annotations

from starlette.applications import Starlette

from tests.support_bot import link_demo_resident, running_bot


async def test_linked_demo_resident_has_a_working_desk(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        person = await link_demo_resident(bot, sandbox_app, 900)
        desk = await bot.services.resident_desk(900)
        assert desk is not None
        assert desk.residence_id == person["residence_ids"][0]
        assert await desk.amenities()
