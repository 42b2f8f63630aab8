"""The alert pacer's arithmetic on a clock the test moves: Telegram's windows, counted from
answers, and whose turn it is."""

from __future__ import annotations

from bot.alert_pacing import SendPacer
from bot.send_budget import SendLimits

LIMITS = SendLimits(overall=4, overall_period=1.0, per_chat=2, per_chat_period=2.0, in_flight=3)


def _send(pacer: SendPacer, now: float) -> int | None:
    """Takes the next chat and has Telegram answer at once."""
    chat = pacer.take(now)
    if chat is not None:
        pacer.answered(chat, now)
    return chat


def test_a_chat_past_its_burst_steps_aside_and_the_next_oldest_goes() -> None:
    pacer = SendPacer(LIMITS)
    pacer.want(1, 10, 0.0)
    assert _send(pacer, 0.0) == 1
    pacer.want(1, 11, 0.0)
    assert _send(pacer, 0.0) == 1
    pacer.want(1, 12, 0.0)  # chat 1 has had its burst
    pacer.want(2, 20, 0.0)
    assert _send(pacer, 0.0) == 2
    assert pacer.take(0.0) is None
    assert pacer.next_moment(0.0) == 2.0
    assert _send(pacer, 2.0) == 1


def test_the_overall_window_counts_sends_under_way_and_frees_from_their_answers() -> None:
    pacer = SendPacer(LIMITS)
    for chat in range(1, 6):
        pacer.want(chat, chat, 0.0)
    assert [_send(pacer, 0.0) for _ in range(3)] == [1, 2, 3]
    assert pacer.take(0.1) == 4  # under way: it holds the last place in this second
    assert pacer.take(0.1) is None
    pacer.answered(4, 0.5)
    assert pacer.take(0.9) is None
    assert pacer.next_moment(0.9) == 1.0
    assert _send(pacer, 1.0) == 5


def test_a_chat_telegram_asked_to_wait_goes_once_its_retry_after_has_passed() -> None:
    pacer = SendPacer(LIMITS)
    pacer.want(1, 1, 0.0)
    pacer.want(2, 2, 0.0)
    assert pacer.take(0.0) == 1
    pacer.answered(1, 0.0)
    pacer.hold(1, 3.0)
    pacer.want(1, 1, 0.0)
    assert _send(pacer, 0.0) == 2
    assert pacer.take(2.9) is None
    assert _send(pacer, 3.0) == 1
    assert len(pacer) == 0
