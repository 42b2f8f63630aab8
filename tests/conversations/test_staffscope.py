"""Which communities a staff view covers, and how it names them (pure; the views themselves are
tried through the bot in their own tests)."""

from __future__ import annotations

from conversations.community import Community
from conversations.domain import Actor, Role
from conversations.staffscope import ALL, picked, scope_for

SHANGHAI = Community(id=1, name_en="Jade Garden", name_zh="翡翠花园")
SINGAPORE = Community(id=2, name_en="Marina Court", name_zh="滨海苑")
EVERY = [SHANGHAI, SINGAPORE]


def _manager(*communities: int) -> Actor:
    return Actor(
        7, Role.MANAGER, project_ids=frozenset({"p"}), community_ids=frozenset(communities)
    )


def test_a_manager_of_one_community_sees_only_it_and_no_names() -> None:
    scope = scope_for(_manager(2), EVERY)
    assert scope.served == (SINGAPORE,)
    assert not scope.several
    assert scope.tag(2, "en") == ""
    # Their community's records carry no tag; another community is not theirs at all.
    assert scope.of(1) is None


def test_a_manager_of_both_sees_both_named_and_may_pick_one() -> None:
    scope = scope_for(_manager(1, 2), EVERY)
    assert scope.several
    assert scope.shown() == (SHANGHAI, SINGAPORE)
    assert (scope.tag(1, "en"), scope.tag(2, "zh")) == ("🏘 Jade Garden", "🏘 滨海苑")
    assert scope_for(_manager(1, 2), EVERY, chosen=2).shown() == (SINGAPORE,)


def test_a_pick_outside_ones_communities_shows_only_ones_own() -> None:
    # A crafted chip naming community 1 by a manager of community 2 alone.
    scope = scope_for(_manager(2), EVERY, chosen=picked("1"))
    assert (scope.chosen, scope.shown()) == (ALL, (SINGAPORE,))
    assert picked("x") == ALL


def test_an_administrator_serves_every_community() -> None:
    assert scope_for(Actor(9, Role.ADMIN), EVERY).served == (SHANGHAI, SINGAPORE)
    assert scope_for(Actor(10, Role.RESIDENT), EVERY).served == ()
