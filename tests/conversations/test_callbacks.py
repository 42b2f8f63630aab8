"""Callback data stays inside Telegram's limits and stale or forged presses are recognised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.callbacks import CallbackDataError, Press, build, parse, pattern


def test_round_trip() -> None:
    data = build("repair", "cancel", "m31adc223cc4b3bedb6bd4742dedcfa52")
    assert parse(data) == Press("repair", "cancel", "m31adc223cc4b3bedb6bd4742dedcfa52")
    assert parse(data, job="repair") is not None
    assert parse(data, job="booking") is None


def test_no_argument() -> None:
    assert parse(build("book", "confirm")) == Press("book", "confirm", "")


@pytest.mark.parametrize(
    ("job", "action", "arg"),
    [
        ("repair", "x", "a" * 60),
        ("", "x", ""),
        ("repair", "", ""),
        ("rép", "x", ""),
        ("a:b", "x", ""),
    ],
)
def test_refuses_what_would_break(job: str, action: str, arg: str) -> None:
    with pytest.raises(CallbackDataError):
        build(job, action, arg)


@pytest.mark.parametrize(
    "data", [None, "", "repair:cancel", "0:repair:cancel", "1:repair", "1:repair::x", "1:r:a:b:c"]
)
def test_stale_or_malformed_presses(data: str | None) -> None:
    assert parse(data) is None


@given(st.text(max_size=80))
def test_any_text_parses_or_is_rejected_without_error(data: str) -> None:
    press = parse(data)
    if press is not None:
        assert build(press.job, press.action, press.arg) == data


def test_pattern_matches_only_its_job() -> None:
    import re

    assert re.match(pattern("book"), build("book", "day", "2026-11-24"))
    assert not re.match(pattern("book"), build("bookings", "list"))
