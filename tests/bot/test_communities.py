"""The deployment's communities as the flows reach them: each community's rules, the vendor
clients it is served by, and the community a resident lands in."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from conversations.community import UnknownCommunity
from tests.support_bot import link_demo_resident, running_bot


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
