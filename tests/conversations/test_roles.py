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
