"""Who may do what: the one place every command and button press is checked.

A decision needs the actor (role and links) and, for a record, whose it is: the residence a
repair or booking belongs to, the worker a task is assigned to, the project and the community
it is in. Rules are pure so the whole matrix is tested without Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conversations.domain import Actor, Role
from conversations.i18n import N_


class Action(StrEnum):
    """Everything a user can ask the bot to do."""

    HELP = "help"
    WHOAMI = "whoami"
    LANGUAGE = "language"
    ACCOUNT_LINK = "account.link"
    ACCOUNT_UNLINK = "account.unlink"
    RESIDENCE_SWITCH = "residence.switch"
    REPAIR_CREATE = "repair.create"
    REPAIR_VIEW = "repair.view"
    REPAIR_CANCEL = "repair.cancel"
    REPAIR_CLEAR = "repair.clear"
    BOOKING_CREATE = "booking.create"
    BOOKING_VIEW = "booking.view"
    BOOKING_CANCEL = "booking.cancel"
    BOOKING_BY_CODE = "booking.by_code"
    TASK_VIEW = "task.view"
    TASK_ACKNOWLEDGE = "task.acknowledge"
    TASK_ACCEPT = "task.accept"
    TASK_REOPEN = "task.reopen"
    TASK_DELETE = "task.delete"
    TASK_ASSIGN = "task.assign"
    REPAIRS_VIEW_ALL = "repairs.view_all"
    BOOKINGS_VIEW_PENDING = "bookings.view_pending"
    ALERTS_CONFIGURE = "alerts.configure"
    INVITE_CREATE = "invite.create"


class Refusal(StrEnum):
    """Why an action was refused; each has a polite explanation in both languages."""

    NOT_LINKED = "not_linked"  # needs an Akubela link, a worker link or a project
    WRONG_ROLE = "wrong_role"  # the user's role never allows this
    NOT_YOURS = "not_yours"  # the record belongs to someone else


@dataclass(frozen=True, slots=True)
class Target:
    """Whose record an action touches; empty for actions on no particular record."""

    residence_id: str | None = None
    worker_id: str | None = None
    project_id: str | None = None
    community_id: int | None = None


EVERYONE = frozenset({Action.HELP, Action.WHOAMI, Action.LANGUAGE, Action.ACCOUNT_LINK})

# Anyone with an Akubela link acts as a resident of their own residences: a manager who lives
# in the community books the gym like everyone else.
RESIDENT_ACTIONS = frozenset(
    {
        Action.ACCOUNT_UNLINK,
        Action.RESIDENCE_SWITCH,
        Action.REPAIR_CREATE,
        Action.REPAIR_VIEW,
        Action.REPAIR_CANCEL,
        Action.REPAIR_CLEAR,
        Action.BOOKING_CREATE,
        Action.BOOKING_VIEW,
        Action.BOOKING_CANCEL,
        Action.BOOKING_BY_CODE,
    }
)

WORKER_ACTIONS = frozenset({Action.TASK_VIEW, Action.TASK_ACKNOWLEDGE})

MANAGER_ACTIONS = frozenset(
    {
        Action.TASK_VIEW,
        Action.TASK_ACCEPT,
        Action.TASK_REOPEN,
        Action.TASK_DELETE,
        Action.TASK_ASSIGN,
        Action.REPAIRS_VIEW_ALL,
        Action.BOOKINGS_VIEW_PENDING,
        Action.ALERTS_CONFIGURE,
    }
)

ADMIN_ACTIONS = MANAGER_ACTIONS | {Action.INVITE_CREATE}


def decide(actor: Actor, action: Action, target: Target | None = None) -> Refusal | None:
    """None when `actor` may do `action` on `target`, otherwise why not."""
    target = target or Target()
    if action in EVERYONE:
        return None
    if action in RESIDENT_ACTIONS:
        return _as_resident(actor, target)
    if actor.role is Role.ADMIN and action in ADMIN_ACTIONS:
        return None
    if actor.role is Role.WORKER and action in WORKER_ACTIONS:
        return _as_worker(actor, target)
    if actor.role is Role.MANAGER and action in MANAGER_ACTIONS:
        return _as_manager(actor, target)
    return Refusal.WRONG_ROLE


def _as_resident(actor: Actor, target: Target) -> Refusal | None:
    if not actor.residence_ids:
        return Refusal.NOT_LINKED
    if target.residence_id is not None and target.residence_id not in actor.residence_ids:
        return Refusal.NOT_YOURS
    return None


def _as_worker(actor: Actor, target: Target) -> Refusal | None:
    if actor.worker_id is None:
        return Refusal.NOT_LINKED
    if target.worker_id is not None and target.worker_id != actor.worker_id:
        return Refusal.NOT_YOURS
    return _in_their_community(actor, target)


def _as_manager(actor: Actor, target: Target) -> Refusal | None:
    if not actor.project_ids:
        return Refusal.NOT_LINKED
    if target.project_id is not None and target.project_id not in actor.project_ids:
        return Refusal.NOT_YOURS
    return _in_their_community(actor, target)


def _in_their_community(actor: Actor, target: Target) -> Refusal | None:
    # A record of a community the worker or manager does not serve is someone else's, even
    # where vendor ids (a worker id, a project) happen to match across communities.
    if target.community_id is not None and not actor.serves(target.community_id):
        return Refusal.NOT_YOURS
    return None


REFUSAL_MESSAGES: dict[Refusal, str] = {
    Refusal.NOT_LINKED: N_(
        "Please link your Akubela account first: send /start and tap “Link your Akubela account”."
    ),
    Refusal.WRONG_ROLE: N_("Sorry, that is not available to you."),
    Refusal.NOT_YOURS: N_("Sorry, that record is not yours."),
}
