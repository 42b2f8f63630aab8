"""A user flooding the bot is slowed down politely, once, without affecting anyone else."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from bot.flood import FLOOD_GROUP, SLOW_DOWN, FloodGate, Verdict
from bot.gate import GATE_GROUP
from conversations.i18n import tr
from tests.hostile.community import OTHER_RESIDENT, RESIDENT, Community, community

SLOW_DOWN_EN = tr("en", SLOW_DOWN)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_one_warning_then_silence_until_the_bucket_refills() -> None:
    clock = Clock()
    gate = FloodGate(rate=2.0, burst=3, clock=clock)
    assert [gate.admit(1) for _ in range(6)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
        Verdict.DROP,
    ]
    clock.now += 0.4  # 0.8 of a token: still too early
    assert gate.admit(1) is Verdict.DROP
    clock.now += 0.2
    assert gate.admit(1) is Verdict.ALLOW
    # Back to normal, a new flood is told again.
    assert gate.admit(1) is Verdict.WARN
    clock.now += 60  # a long pause refills the burst, never more
    assert [gate.admit(1) for _ in range(4)] == [Verdict.ALLOW] * 3 + [Verdict.WARN]


def test_users_have_their_own_buckets() -> None:
    clock = Clock()
    gate = FloodGate(rate=1.0, burst=2, clock=clock)
    assert [gate.admit(1) for _ in range(3)][-1] is Verdict.WARN
    assert [gate.admit(2) for _ in range(2)] == [Verdict.ALLOW, Verdict.ALLOW]


def test_rate_zero_turns_it_off_and_nonsense_is_refused() -> None:
    gate = FloodGate(rate=0, burst=1, clock=Clock())
    assert {gate.admit(1) for _ in range(1000)} == {Verdict.ALLOW}
    with pytest.raises(ValueError, match="burst"):
        FloodGate(rate=1, burst=0)
    with pytest.raises(ValueError, match="rate"):
        FloodGate(rate=-1, burst=5)


def test_memory_stays_bounded_with_many_users() -> None:
    clock = Clock()
    gate = FloodGate(rate=1.0, burst=2, clock=clock, max_users=100)
    for user in range(10_000):
        gate.admit(user)
        clock.now += 0.001
    assert len(gate._buckets) <= 100
    # A user who is mid-flood is not forgotten while they keep flooding.
    for _ in range(3):
        gate.admit(10_000)
    assert gate.admit(10_000) is Verdict.DROP


@pytest.fixture
async def flooded(sqlite_url: str, sandbox_app: Starlette) -> AsyncIterator[Community]:
    # One token every 100 seconds: no refill can happen during the test, however slow CI is.
    async with community(sqlite_url, sandbox_app, flood_rate=0.01, flood_burst=5) as running:
        yield running


def _answers_to(town: Community, user: int, since: int) -> list[str]:
    found = []
    for call in town.calls[since:]:
        if call.method == "answerCallbackQuery":
            found.append(str(call.params.get("text")))
        elif str(call.params.get("chat_id")) == str(user) and call.text is not None:
            found.append(call.text)
    return found


async def test_a_flooding_user_is_told_once_and_others_are_served(
    flooded: Community, figures: Counter[str]
) -> None:
    town = flooded
    flood, other = town.chat(RESIDENT), town.chat(OTHER_RESIDENT)
    start = len(town.calls)
    for n in range(30):
        await flood.send("/help")
        if n % 10 == 0:
            # Someone else writes in the middle of the flood, and is answered.
            before = len(town.calls)
            await other.send("/whoami")
            assert _answers_to(town, OTHER_RESIDENT, before)[0].startswith("You are a resident")
    figures["flood_updates_sent"] += 30
    answers = _answers_to(town, RESIDENT, start)
    assert answers.count(SLOW_DOWN_EN) == 1
    help_replies = [a for a in answers if a.startswith("Here is what I can do")]
    assert len(help_replies) == 5  # the burst
    assert answers[5] == SLOW_DOWN_EN
    assert len(answers) == 6  # the other 24 updates cost no Bot API call at all
    figures["flood_updates_dropped"] += 24
    assert town.errors == []


async def test_a_flood_of_presses_is_answered_with_a_pop_up_and_starts_nothing(
    flooded: Community,
) -> None:
    town = flooded
    chat = town.chat(RESIDENT)
    for _ in range(5):
        await chat.press("1:acct:lang:zh")
    start = len(town.calls)
    await chat.press("1:menu:repair")  # over the limit: told, not started
    await chat.press("1:menu:book")
    await chat.send("/repair")
    answers = town.calls[start:]
    # Told once; the press dropped after that is still answered (quietly), as Telegram needs.
    assert [call.method for call in answers] == ["answerCallbackQuery"] * 2
    # The user chose Chinese with the presses that got through.
    assert answers[0].params["text"] == tr("zh", SLOW_DOWN)
    assert answers[0].params["show_alert"] is True
    assert "text" not in answers[1].params
    assert town.conversations(RESIDENT) == {}


def test_the_gate_runs_before_every_other_handler(town: Community) -> None:
    groups = sorted(town.bot.app.handlers)
    # Only the gate that keeps edits and groups out of every flow comes first.
    assert groups[:2] == [GATE_GROUP, FLOOD_GROUP]
    assert FLOOD_GROUP < -1  # before even remembering who wrote
