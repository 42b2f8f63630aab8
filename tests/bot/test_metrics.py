"""/metrics: scraped during a real flow, every metric the operator reads moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from telegram.error import NetworkError, RetryAfter, TimedOut

from api.errors import AuthError, RateLimited, Unavailable
from bot.alert_kinds import Alert, AlertKind
from bot.alert_watcher import AlertWatcher
from bot.metrics import Metrics
from bot.send_budget import MemorySendBudget
from bot.telegram_limiter import BudgetRateLimiter
from bot.web import create_web_app
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

RESIDENT = 801


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> Any:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


def _web(bot: BotUnderTest, client: tuple[str, int] = ("127.0.0.1", 40000)) -> httpx.AsyncClient:
    async def metrics() -> tuple[bytes, str]:
        return await bot.services.metrics.render(
            bot.services.storage.sessions, bot.services.clock()
        )

    async def healthy() -> bool:
        return True

    app = create_web_app(
        on_oauth_callback=bot.services.linker.complete, health=healthy, metrics=metrics
    )
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://bot")


async def scrape(bot: BotUnderTest) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by name and labels."""
    async with _web(bot) as web:
        page = await web.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_real_flow_moves_every_metric(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    before = await scrape(bot)
    assert value(before, "concierge_outbox_pending") == 0
    assert value(before, "concierge_conversations_active") == 0

    await link_demo_resident(bot, sandbox_app, RESIDENT)
    chat = bot.chat(RESIDENT)
    await chat.send("/start")
    await chat.send("/repairs")
    await chat.send("/repair")  # a conversation left open
    await bot.app.update_persistence()
    # A write the vendor could not take, waiting for ten minutes.
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    begun = await bot.services.storage.writes.begin(
        command_id="cmd-metrics-1",
        telegram_id=RESIDENT,
        vendor="akubela",
        kind="akubela.repair.create",
        subject=None,
        write={"kind": "akubela.repair.create"},
        owner="test",
        now=ten_minutes_ago,
        lease_until=ten_minutes_ago,
    )
    await bot.services.storage.writes.release(
        begun.row.id,
        "test",
        maybe_sent=False,
        error="Unavailable",
        next_attempt_at=datetime.now(UTC) + timedelta(hours=1),
    )
    # One alert delivered, one waiting for a recipient nobody knows yet.
    watcher = AlertWatcher(bot.services)
    now = datetime.now(UTC)
    await watcher.ledger.record(
        Alert("k-sent", AlertKind.BOOKING_REMINDER, RESIDENT, "Nothing changed."), now
    )
    await watcher.deliver(bot.app, now)
    await bot.services.storage.alerts.record("k-pending", recipient=999, kind="repair_new")

    after = await scrape(bot)
    assert value(after, "concierge_updates_total", kind="message", outcome="ok") == 3
    assert value(after, "concierge_handler_seconds_count", flow="account") >= 1
    assert value(after, "concierge_handler_seconds_count", flow="repairs") >= 1
    assert value(after, "concierge_handler_seconds_count", flow="repair") >= 1
    assert value(after, "concierge_handler_seconds_count", flow="flood") == 3
    # The quick link asked for a token; /repairs read the list.
    akubela = {"vendor": "akubela", "outcome": "ok"}
    assert value(after, "concierge_vendor_requests_total", operation="token", **akubela) >= 1
    listed = value(
        after, "concierge_vendor_requests_total", operation="get_maintenance_list", **akubela
    )
    assert listed >= 1
    assert (
        value(
            after,
            "concierge_vendor_request_seconds_count",
            vendor="akubela",
            operation="get_maintenance_list",
        )
        == listed
    )
    assert value(after, "concierge_outbox_pending") == 1
    assert 590 <= value(after, "concierge_outbox_oldest_pending_seconds") <= 700
    assert value(after, "concierge_alerts_pending") == 1
    assert value(after, "concierge_alerts_sent_total", kind="booking_reminder") == 1
    assert value(after, "concierge_conversations_active") >= 1


async def test_vendor_failures_are_counted_by_what_they_meant(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/tuya/", status=503, times=1))
    await bot.services.tuya.list_tasks(page_size=1)  # the token grant fails once, then all is well
    samples = await scrape(bot)
    grant = {"vendor": "tuya", "operation": "GET /v1.0/token"}
    assert value(samples, "concierge_vendor_requests_total", **grant, outcome="unavailable") == 1
    assert value(samples, "concierge_vendor_requests_total", **grant, outcome="ok") == 1
    tuya = {
        dict(labels)["operation"]
        for name, labels in samples
        if name == "concierge_vendor_requests_total" and ("vendor", "tuya") in labels
    }
    assert tuya == {"GET /v1.0/token", "GET /v1.0/osaas/projects/{id}/maintenance/tasks"}

    # Akubela says no inside an HTTP 200: counted as what it meant, not as ok.
    with pytest.raises(AuthError):
        await bot.services.akubela.password_login("nobody@demo.community", SecretStr("nope"))
    samples = await scrape(bot)
    refused = [
        labels
        for name, labels in samples
        if name == "concierge_vendor_requests_total"
        and ("vendor", "akubela") in labels
        and ("outcome", "ok") not in labels
    ]
    assert refused, "the refused login was not counted"
    assert all(("operation", "token") in labels for labels in refused)


def test_error_kinds_are_snake_case_labels() -> None:
    from api.base import outcome_of, path_template

    assert outcome_of(RateLimited("x", vendor="v")) == "rate_limited"
    assert outcome_of(AuthError("x", vendor="v")) == "auth_error"
    assert outcome_of(Unavailable("x", vendor="v")) == "unavailable"
    assert path_template("/v1.0/token/AbCdEfGhIjKl") == "/v1.0/token/{id}"
    assert path_template("/v1.0/osaas/rooms/145267896505310001/devices") == (
        "/v1.0/osaas/rooms/{id}/devices"
    )
    assert path_template("/inventory/historicalEvents/evt-42") == (
        "/inventory/historicalEvents/{id}"
    )


async def test_telegram_retries_are_counted_by_reason() -> None:
    metrics = Metrics()
    limiter = BudgetRateLimiter(MemorySendBudget(), max_retries=2, on_retry=metrics.telegram_retry)
    attempts = 0

    async def flaky(*args: Any, **kwargs: Any) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RetryAfter(timedelta(seconds=0))
        return True

    await limiter.initialize()
    try:
        assert await limiter.process_request(flaky, (), {}, "sendMessage", {"chat_id": 1}, None)
    finally:
        await limiter.shutdown()
    metrics.polling_failed(TimedOut())
    metrics.polling_failed(NetworkError("connection reset"))
    metrics.polling_failed(RetryAfter(timedelta(seconds=1)))
    assert metrics.telegram_retries.labels("429")._value.get() == 2
    assert metrics.telegram_retries.labels("network")._value.get() == 2


@pytest.mark.parametrize(
    ("client", "headers"),
    [
        (("10.1.2.3", 5000), {}),
        (("127.0.0.1", 5000), {"X-Forwarded-For": "203.0.113.9"}),
        (("127.0.0.1", 5000), {"Forwarded": "for=203.0.113.9"}),
    ],
)
async def test_metrics_are_for_loopback_only_and_never_through_a_proxy(
    bot: BotUnderTest, client: tuple[str, int], headers: dict[str, str]
) -> None:
    async with _web(bot, client) as web:
        assert (await web.get("/metrics", headers=headers)).status_code == 403
