"""The authorisation matrix: every action for every role, on own and others' records."""

from __future__ import annotations

import pytest

from conversations.domain import Actor, Role
from conversations.roles import (
    REFUSAL_MESSAGES,
    RESIDENT_ACTIONS,
    Action,
    Refusal,
    Target,
    decide,
)

RESIDENT = Actor(1, Role.RESIDENT, residence_ids=frozenset({"r-own"}))
UNLINKED = Actor(2, Role.RESIDENT)
WORKER = Actor(3, Role.WORKER, worker_id="w-own")
WORKER_UNLINKED = Actor(4, Role.WORKER)
MANAGER = Actor(5, Role.MANAGER, project_ids=frozenset({"p-own"}))
MANAGER_RESIDENT = Actor(
    6, Role.MANAGER, residence_ids=frozenset({"r-home"}), project_ids=frozenset({"p-own"})
)
ADMIN = Actor(7, Role.ADMIN)

OWN_HOME = Target(residence_id="r-own")
OTHER_HOME = Target(residence_id="r-other")
OWN_TASK = Target(worker_id="w-own", project_id="p-own")
OTHER_WORKERS_TASK = Target(worker_id="w-other", project_id="p-own")
OTHER_PROJECT = Target(project_id="p-other")

MANAGER_ONLY = [
    Action.TASK_ACCEPT,
    Action.TASK_REOPEN,
    Action.TASK_DELETE,
    Action.TASK_ASSIGN,
    Action.REPAIRS_VIEW_ALL,
    Action.BOOKINGS_VIEW_PENDING,
    Action.ALERTS_CONFIGURE,
]

CASES: list[tuple[Actor, Action, Target | None, Refusal | None]] = [
    *[
        (actor, a, None, None)
        for actor in (RESIDENT, UNLINKED, WORKER, MANAGER, ADMIN)
        for a in (Action.HELP, Action.WHOAMI, Action.LANGUAGE, Action.ACCOUNT_LINK)
    ],
    *[(RESIDENT, a, OWN_HOME, None) for a in RESIDENT_ACTIONS],
    *[(RESIDENT, a, OTHER_HOME, Refusal.NOT_YOURS) for a in RESIDENT_ACTIONS],
    *[(UNLINKED, a, OWN_HOME, Refusal.NOT_LINKED) for a in RESIDENT_ACTIONS],
    *[(WORKER, a, OWN_HOME, Refusal.NOT_LINKED) for a in RESIDENT_ACTIONS],
    *[(MANAGER_RESIDENT, a, Target(residence_id="r-home"), None) for a in RESIDENT_ACTIONS],
    *[(RESIDENT, a, OWN_TASK, Refusal.WRONG_ROLE) for a in [Action.TASK_VIEW, *MANAGER_ONLY]],
    (RESIDENT, Action.INVITE_CREATE, None, Refusal.WRONG_ROLE),
    (WORKER, Action.TASK_VIEW, OWN_TASK, None),
    (WORKER, Action.TASK_ACKNOWLEDGE, OWN_TASK, None),
    (WORKER, Action.TASK_VIEW, OTHER_WORKERS_TASK, Refusal.NOT_YOURS),
    (WORKER, Action.TASK_ACKNOWLEDGE, OTHER_WORKERS_TASK, Refusal.NOT_YOURS),
    (WORKER_UNLINKED, Action.TASK_VIEW, OWN_TASK, Refusal.NOT_LINKED),
    *[(WORKER, a, OWN_TASK, Refusal.WRONG_ROLE) for a in MANAGER_ONLY],
    (WORKER, Action.INVITE_CREATE, None, Refusal.WRONG_ROLE),
    *[(MANAGER, a, OWN_TASK, None) for a in [Action.TASK_VIEW, *MANAGER_ONLY]],
    *[(MANAGER, a, OTHER_PROJECT, Refusal.NOT_YOURS) for a in [Action.TASK_VIEW, *MANAGER_ONLY]],
    (MANAGER, Action.TASK_ACKNOWLEDGE, OWN_TASK, Refusal.WRONG_ROLE),
    (MANAGER, Action.INVITE_CREATE, None, Refusal.WRONG_ROLE),
    *[(MANAGER, a, OWN_HOME, Refusal.NOT_LINKED) for a in RESIDENT_ACTIONS],
    *[(ADMIN, a, OTHER_PROJECT, None) for a in [*MANAGER_ONLY, Action.INVITE_CREATE]],
    (ADMIN, Action.TASK_ACKNOWLEDGE, OWN_TASK, Refusal.WRONG_ROLE),
]


@pytest.mark.parametrize(("actor", "action", "target", "expected"), CASES)
def test_matrix(
    actor: Actor, action: Action, target: Target | None, expected: Refusal | None
) -> None:
    assert decide(actor, action, target) == expected


def test_every_action_is_covered_by_the_matrix() -> None:
    assert {case[1] for case in CASES} == set(Action)


def test_every_refusal_has_a_message() -> None:
    assert set(REFUSAL_MESSAGES) == set(Refusal)


# ---- across communities --------------------------------------------------------------------
# Community A is 1, B is 2. The staff of A hold vendor ids that B's records may share (one
# Akubela base, worker ids reused across Tuya projects), so only the community tells them apart.
A, B = 1, 2
HOME_IN = {A: "r-a", B: "r-b"}
STAFF_OF: dict[str, Actor] = {
    "worker of A": Actor(11, Role.WORKER, worker_id="w-1", community_ids=frozenset({A})),
    "manager of A": Actor(
        12, Role.MANAGER, project_ids=frozenset({"p-1"}), community_ids=frozenset({A})
    ),
    "manager of A and B": Actor(
        13, Role.MANAGER, project_ids=frozenset({"p-1"}), community_ids=frozenset({A, B})
    ),
    "resident of A": Actor(14, Role.RESIDENT, residence_ids=frozenset({HOME_IN[A]})),
    "administrator": Actor(15, Role.ADMIN),
}


def _may(who: str, action: Action, community: int) -> bool:
    """The policy across communities, written out apart from `decide`: staff act only in the
    communities they serve (an administrator in all), a resident only on their home."""
    actor = STAFF_OF[who]
    if action in {Action.HELP, Action.WHOAMI, Action.LANGUAGE, Action.ACCOUNT_LINK}:
        return True
    if action in RESIDENT_ACTIONS:
        return who == "resident of A" and community == A
    if who == "administrator":
        return action is not Action.TASK_ACKNOWLEDGE
    if who == "worker of A":
        return action in {Action.TASK_VIEW, Action.TASK_ACKNOWLEDGE} and community == A
    if who.startswith("manager"):
        return action in [*MANAGER_ONLY, Action.TASK_VIEW] and community in actor.community_ids
    return False


def test_nobody_acts_in_a_community_they_do_not_belong_to() -> None:
    tried = refused = 0
    wrong = []
    for who, actor in STAFF_OF.items():
        for action in Action:
            for community in (A, B):
                # The record is the actor's own in every way but its community.
                target = Target(
                    residence_id=HOME_IN[community] if action in RESIDENT_ACTIONS else None,
                    worker_id="w-1",
                    project_id="p-1",
                    community_id=community,
                )
                allowed = decide(actor, action, target) is None
                if _may(who, action, community) != allowed:
                    wrong.append(f"{who} {action} in {community}: allowed={allowed}")
                if community == B and not _may(who, action, B):
                    tried += 1
                    refused += not allowed
    print(f"across communities (pure rules): tried {tried}, refused {refused}")
    assert wrong == []
    assert (tried, refused) == (83, 83)
