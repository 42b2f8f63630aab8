"""Which communities a staff view covers: the asker's own, all of them or the one picked, with
each item naming its community where there are several.

A worker or manager serves the communities their invites bound them to, an administrator every
community. A view over one community looks as it did before there were several: no chips, no
names. Over several it shows one chip per community (and "All"), and every item carries its
community's name in the reader's language. What a press names is looked up only in the
communities the asker serves, so a crafted press carrying another community's ids finds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from telegram import InlineKeyboardButton, Update

from conversations import flowkit
from conversations.community import Community
from conversations.context import ConciergeContext
from conversations.domain import Actor
from conversations.i18n import N_, tr
from conversations.roles import REFUSAL_MESSAGES, Action, Refusal, Target, decide

logger = logging.getLogger(__name__)

ALL: Final = 0  # no community picked: every community the asker serves
ACTION: Final = "community"  # the press that picks a community in a view
ALL_WORDS: Final = N_("All communities")
TAG: Final = N_("🏘 {community}")


@dataclass(frozen=True, slots=True)
class Scope:
    """The communities a view covers for one asker, and the one they picked (or all)."""

    served: tuple[Community, ...]  # in id order
    chosen: int = ALL

    @property
    def several(self) -> bool:
        """Whether the asker serves more than one community (then items name theirs)."""
        return len(self.served) > 1

    def shown(self) -> tuple[Community, ...]:
        """The communities the view lists now: the one picked, else every one served."""
        if self.chosen == ALL:
            return self.served
        return tuple(c for c in self.served if c.id == self.chosen)

    def of(self, community_id: int) -> Community | None:
        """A community the asker serves, by id (None for any other)."""
        return next((c for c in self.served if c.id == community_id), None)

    def tag(self, community_id: int, lang: str) -> str:
        """ "🏘 Name" for an item of that community when there are several, else ""."""
        community = self.of(community_id)
        if not self.several or community is None:
            return ""
        return tr(lang, TAG, community=community.name(lang))


def scope_for(actor: Actor, every: Sequence[Community], chosen: int = ALL) -> Scope:
    """The communities `actor` serves among `every`; a pick outside them means all of theirs."""
    served = tuple(c for c in every if actor.serves(c.id))
    if not any(c.id == chosen for c in served):
        chosen = ALL
    return Scope(served, chosen)


def _anywhere(_community: Community) -> Target:
    return Target()


async def scope_or_refusal(
    context: ConciergeContext,
    action: Action,
    *,
    chosen: int = ALL,
    target_of: Callable[[Community], Target] = _anywhere,
) -> Scope | Refusal:
    """The communities in which the asker may do `action` (on `target_of` the community, in
    it), read fresh at every press; why not when there is none."""
    assert context.user_id is not None
    actor = await context.services.directory.actor(context.user_id)
    refusal: Refusal | None = decide(actor, action)
    allowed: list[Community] = []
    for community in context.services.communities() if refusal is None else ():
        why = decide(actor, action, replace(target_of(community), community_id=community.id))
        if why is None:
            allowed.append(community)
        refusal = refusal or why
    if allowed:
        return scope_for(actor, allowed, chosen)
    return refusal or Refusal.NOT_YOURS


async def allowed_scope(
    update: Update,
    context: ConciergeContext,
    action: Action,
    *,
    chosen: int = ALL,
    target_of: Callable[[Community], Target] = _anywhere,
) -> Scope | None:
    """`scope_or_refusal`, the refusal said politely (then None)."""
    if context.user_id is None:
        return None
    found = await scope_or_refusal(context, action, chosen=chosen, target_of=target_of)
    if isinstance(found, Scope):
        return found
    logger.warning("user %s refused %s: %s", context.user_id, action.value, found.value)
    await flowkit.say(update, context.t(REFUSAL_MESSAGES[found]))
    return None


def picked(text: str) -> int:
    """A community press's argument as an id (ALL for anything else)."""
    return int(text) if text.isdigit() else ALL


def chips(
    job: str, context: ConciergeContext, scope: Scope, counts: Mapping[int, int] | None = None
) -> list[list[InlineKeyboardButton]]:
    """One chip per community served and "All", the current one marked; none over one
    community. With `counts` (by community id), each chip says how many items it shows."""
    if not scope.several:
        return []
    lang = context.lang

    def label(community_id: int, words: str) -> str:
        mark = "• " if community_id == scope.chosen else ""
        if counts is None:
            return f"{mark}{words}"
        count = sum(counts.values()) if community_id == ALL else counts.get(community_id, 0)
        return f"{mark}{words} ({count})"

    row = [flowkit.button(job, label(ALL, tr(lang, ALL_WORDS)), ACTION, str(ALL))]
    row += [
        flowkit.button(job, label(c.id, c.name(lang)), ACTION, str(c.id)) for c in scope.served
    ]
    return [row[i : i + 3] for i in range(0, len(row), 3)]
