"""Errors reach a person: the user's apology and the operator's report share a trace id; a
storm of errors is one report with a count; logs stay quiet and can be JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from bot.errors import ErrorReport, OperatorReports, render_reports
from bot.logs import configure_logging
from bot.storage.accounts import Accounts
from tests.support_bot import BotUnderTest, running_bot
from tests.support_telegram import Call

OPERATOR = 900
SECRET_WORDS = "my door code is 4711"


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> Any:
    async with running_bot(
        database_url,
        sandbox_app,
        operator_chat_id=OPERATOR,
        operator_report_delay_seconds=0.2,
        operator_report_interval_seconds=1.0,
    ) as running:
        yield running


def _break_the_menu(bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database said no ({SECRET_WORDS}, {bot.settings.secret_key})")

    monkeypatch.setattr(Accounts, "actor", broken)


def _to(bot: BotUnderTest, chat_id: int) -> list[Call]:
    return [c for c in bot.telegram.sent("sendMessage") if c.params.get("chat_id") == chat_id]


async def _reports(bot: BotUnderTest, count: int) -> list[str]:
    for _ in range(100):
        texts = [c.text or "" for c in _to(bot, OPERATOR)]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    return [c.text or "" for c in _to(bot, OPERATOR)]


async def test_the_user_and_the_operator_get_the_same_trace_id(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_the_menu(bot, monkeypatch)
    await bot.chat(601).send("/start")
    apology = _to(bot, 601)[-1].text or ""
    found = re.search(r"\(Reference: ([0-9a-f]{8})\)", apology)
    assert found, apology
    trace = found.group(1)
    [report] = await _reports(bot, 1)
    assert trace in report
    assert "RuntimeError in account / start" in report
    assert "database said no" not in report
    assert SECRET_WORDS not in report


async def test_the_apology_speaks_chinese_with_the_same_id(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_the_menu(bot, monkeypatch)
    await bot.chat(602, language_code="zh-hans").send("/start")
    apology = _to(bot, 602)[-1].text or ""
    found = re.search(r"（编号：([0-9a-f]{8})）", apology)
    assert found, apology
    assert apology.startswith("抱歉")
    [report] = await _reports(bot, 1)
    assert found.group(1) in report


async def test_a_storm_is_one_report_with_a_count(
    database_url: str, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bot(
        database_url,
        sandbox_app,
        operator_chat_id=OPERATOR,
        operator_report_delay_seconds=2.0,
        operator_report_interval_seconds=1.0,
    ) as bot:
        await _two_storms(bot, monkeypatch)


async def _two_storms(bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_the_menu(bot, monkeypatch)
    for user in range(610, 640):
        await bot.chat(user).send("/start")
    assert _to(bot, OPERATOR) == []  # the first report waits for the rest of the burst
    reports = await _reports(bot, 1)
    await asyncio.sleep(0.3)
    reports = [c.text or "" for c in _to(bot, OPERATOR)]
    assert len(reports) == 1, reports
    assert "30 unhandled errors" in reports[0]
    assert "30× RuntimeError in account / start" in reports[0]
    # The next storm waits out the interval and is one message again.
    for user in range(640, 650):
        await bot.chat(user).send("/start")
    reports = await _reports(bot, 2)
    assert len(reports) == 2
    assert "10 unhandled errors" in reports[1]
    texts = "\n".join(reports)
    assert bot.settings.telegram_bot_token.get_secret_value() not in texts
    assert SECRET_WORDS not in texts


async def test_without_an_operator_nobody_is_reported_to(
    database_url: str, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bot(database_url, sandbox_app, operator_report_delay_seconds=0) as bot:
        _break_the_menu(bot, monkeypatch)
        await bot.chat(650).send("/start")
        await asyncio.sleep(0.1)
        assert bot.services.reports.pending == 0
        assert {c.params.get("chat_id") for c in bot.telegram.sent("sendMessage")} == {650}


async def test_reports_wait_for_the_interval_and_count_what_came_meanwhile() -> None:
    moments = [100.0]
    reports = OperatorReports(delay=0, interval=60, clock=lambda: moments[-1])
    sent: list[str] = []

    async def send(batch: Any) -> None:
        sent.append(render_reports(batch, "en"))

    reports.add(ErrorReport("aaaa0001", "KeyError", "repair", "receive_description"), send)
    await asyncio.sleep(0.01)
    assert sent == ["⚠️ Concierge error aaaa0001: KeyError in repair / receive_description."]
    for n in range(3):
        reports.add(ErrorReport(f"bbbb000{n}", "TimedOut", "job", "alerts"), send)
    await asyncio.sleep(0.01)
    assert len(sent) == 1  # held back: the last report went out less than 60 s ago
    assert reports.pending == 3
    await reports.aclose()
    await reports.flush(send)
    assert sent[1].splitlines() == [
        "⚠️ Concierge: 3 unhandled errors since the last report.",
        "• 3× TimedOut in job / alerts",
        "First trace bbbb0000, last trace bbbb0002.",
    ]
    assert render_reports([ErrorReport("c1", "KeyError", "repair", "x")], "zh").startswith(
        "⚠️ Concierge 出错 c1"
    )


# ---- logs ------------------------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Leaves the root logger and the quietened libraries as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("apscheduler", "httpx")}
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def test_json_logs_are_one_object_per_line(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger().handlers = []  # pytest's own capture, added for the test's call
    configure_logging(json_lines=True)
    log = logging.getLogger("bot.test")
    log.info("user %s linked", 42)
    try:
        raise ValueError("boom\nwith a second line")
    except ValueError:
        log.exception("it failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "user 42 linked"
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.test"
    assert "ValueError: boom" in second["traceback"]


def test_the_scheduler_narrates_nothing_by_default(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger().handlers = []
    configure_logging()
    logging.getLogger("apscheduler.executors.default").info('Running job "outbox"')
    logging.getLogger("apscheduler.executors.default").warning("job missed")
    err = capsys.readouterr().err
    assert "Running job" not in err
    assert "job missed" in err


async def test_a_stale_press_is_logged_at_debug_only(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="conversations.account"):
        await bot.chat(660).press("1:nothing:here")
    stale = [r for r in caplog.records if "stale" in r.getMessage()]
    assert stale
    assert all(r.levelno == logging.DEBUG for r in stale)
