"""The real ServitlyClient against the Servitly sandbox, in-process and over real uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from api.base import RetryPolicy
from api.errors import AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from api.servitly import ServitlyClient
from api.servitly_models import (
    HistoricalEventFilter,
    HistoricalEventWrite,
    MaintenanceWorkWrite,
)
from api.times import from_epoch_millis, to_epoch_millis
from bot.settings import Settings
from sandbox.app import create_app
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule
from sandbox.servitly import (
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    MAINTENANCE_DEFINITION_ID,
    THING_DEFINITION_ID,
    TOKEN_LIFETIME_SECONDS,
    ServitlySandbox,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "servitly"
ASGI_BASE = "http://sandbox.test"
PAT_LOGIN = "/servitly/identity/users/patLogin"
LOGIN = "/servitly/identity/users/login"
RENEW = "/servitly/identity/users/me/renewToken"
EVENTS = "/servitly/v2/identity/users/me/historicalEvents"


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on and remembers their method and path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.calls.append((request.method, request.url.path, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, path: str, status: int | None = None) -> int:
        return sum(
            1
            for m, p, s in self.calls
            if m == method and p == path and (status is None or s == status)
        )


@dataclass
class Target:
    """Where the sandbox answers: its base URL and a recording transport to reach it."""

    base_url: str
    transport: RecordingTransport


@pytest.fixture(params=["asgi", "live"])
def target(request: pytest.FixtureRequest, sandbox_app: Starlette) -> Target:
    """The sandbox in-process (ASGITransport) and on real uvicorn on 127.0.0.1."""
    if request.param == "asgi":
        asgi: httpx.ASGITransport = request.getfixturevalue("asgi_transport")
        return Target(ASGI_BASE, RecordingTransport(asgi))
    live: str = request.getfixturevalue("live_sandbox")
    return Target(live, RecordingTransport(httpx.AsyncHTTPTransport()))


@pytest.fixture
def asgi_target(asgi_transport: httpx.ASGITransport) -> Target:
    """The sandbox in-process only, for the many checks that need no socket."""
    return Target(ASGI_BASE, RecordingTransport(asgi_transport))


@pytest.fixture
def servitly(sandbox_app: Starlette) -> ServitlySandbox:
    vendor = sandbox_app.state.control.vendors["servitly"]
    assert isinstance(vendor, ServitlySandbox)
    return vendor


def make_client(
    target: Target, settings: Settings, clock: Clock, **overrides: Any
) -> ServitlyClient:
    async def no_sleep(delay: float) -> None:
        return None

    options: dict[str, Any] = {
        "base_url": f"{target.base_url}/servitly",
        "api_key": settings.servitly_api_key,
        "pat": settings.servitly_pat,
        "tenant": settings.servitly_tenant,
        "tenant_header": settings.servitly_tenant_header,
        "transport": target.transport,
        "clock": clock.now,
        "sleep": no_sleep,
        "retry": RetryPolicy(retries=2, base_delay=0.0, max_delay=1.0),
    }
    options.update(overrides)
    return ServitlyClient(**options)


@pytest.fixture
async def client(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock
) -> AsyncIterator[ServitlyClient]:
    async with make_client(asgi_target, sandbox_settings, clock) as servitly_client:
        yield servitly_client


def maintenance_event(clock: Clock, **changes: Any) -> HistoricalEventWrite:
    fields: dict[str, Any] = {
        "alert_definition_id": MAINTENANCE_DEFINITION_ID,
        "start_timestamp": clock.now() - timedelta(hours=2),
        "end_timestamp": clock.now() - timedelta(hours=1),
        "thing_id": "thing-elevator-a",
        "notes": "Door sensor replaced; accepted by the manager.",
    }
    fields.update(changes)
    return HistoricalEventWrite(**fields)


# --- login and renewal ----------------------------------------------------------------------


async def test_pat_login_and_renewal_follow_the_clock(
    target: Target, sandbox_settings: Settings, clock: Clock, servitly: ServitlySandbox
) -> None:
    async with make_client(target, sandbox_settings, clock) as client:
        first = await client.login()
        expiry = first.token_expiration_timestamp
        assert expiry is not None
        assert expiry == servitly.token_expires_at(first.token.get_secret_value())
        assert expiry - clock.now() == pytest.approx(
            timedelta(seconds=TOKEN_LIFETIME_SECONDS), abs=timedelta(seconds=5)
        )

        # Still valid: Servitly refuses to renew, as documented.
        with pytest.raises(InvalidRequest, match="not yet expired") as caught:
            await client.renew_token()
        assert caught.value.status == 400

        clock.advance(TOKEN_LIFETIME_SECONDS + 1)
        renewed = await client.renew_token()
    assert renewed.token.get_secret_value() != first.token.get_secret_value()
    assert first.refresh_token is not None
    assert renewed.refresh_token is not None
    assert renewed.refresh_token.get_secret_value() != first.refresh_token.get_secret_value()
    # The renewed JWT replaced the old one, which is spent.
    assert servitly.token_expires_at(first.token.get_secret_value()) is None


async def test_expiry_end_to_end_renews_then_calls_with_the_new_token(
    target: Target, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(target, sandbox_settings, clock) as client:
        await client.list_historical_events()
        clock.advance(TOKEN_LIFETIME_SECONDS + 60)
        page = await client.list_historical_events()
    assert page.total_elements == 6
    calls = target.transport
    assert calls.count("POST", PAT_LOGIN) == 1
    assert calls.count("POST", RENEW, 200) == 1
    assert calls.count("GET", EVENTS, 401) == 0
    assert calls.count("GET", EVENTS, 200) == 2


async def test_forced_expiry_unknown_to_the_client_means_a_401_then_a_new_login(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock, sandbox_app: Starlette
) -> None:
    async with make_client(asgi_target, sandbox_settings, clock) as client:
        await client.list_historical_events()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox_app), base_url=ASGI_BASE
        ) as control:
            answer = await control.post("/_sandbox/expire-tokens", json={"vendor": "servitly"})
            assert answer.status_code == 200
        await client.list_historical_events()
    calls = asgi_target.transport
    assert calls.count("GET", EVENTS, 401) == 1
    assert calls.count("POST", PAT_LOGIN) == 2
    assert calls.count("GET", EVENTS, 200) == 2


async def test_renewal_is_refused_with_a_spent_refresh_token(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(asgi_target, sandbox_settings, clock) as client:
        first = await client.login()
        assert first.refresh_token is not None
        clock.advance(TOKEN_LIFETIME_SECONDS + 1)
        await client.renew_token()
    async with httpx.AsyncClient(
        transport=asgi_target.transport, base_url=f"{ASGI_BASE}/servitly"
    ) as raw:
        answer = await raw.post(
            "/identity/users/me/renewToken",
            headers={
                "X-Servitly-Tenant": sandbox_settings.servitly_tenant,
                "Authorization": f"Bearer {first.token.get_secret_value()}",
            },
            json={"refreshToken": first.refresh_token.get_secret_value()},
        )
    assert answer.status_code == 401
    assert answer.json() == {"message": "User not authenticated"}


async def test_password_login(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(
        asgi_target,
        sandbox_settings,
        clock,
        pat=None,
        email=DEMO_USER_EMAIL,
        password=DEMO_USER_PASSWORD,
    ) as client:
        token = await client.login()
        alerts = await client.list_alert_definitions(THING_DEFINITION_ID)
    assert token.user_id
    assert alerts
    assert asgi_target.transport.count("POST", LOGIN, 200) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"pat": "not-the-pat"},
        {"api_key": "not-the-key"},
        {"pat": None, "email": DEMO_USER_EMAIL, "password": "wrong-password"},
        {"pat": None, "email": DEMO_USER_EMAIL, "password": DEMO_USER_PASSWORD, "api_key": "x"},
    ],
)
async def test_wrong_credentials_are_refused(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock, overrides: dict[str, Any]
) -> None:
    async with make_client(asgi_target, sandbox_settings, clock, **overrides) as client:
        with pytest.raises(AuthError, match="Invalid credentials") as caught:
            await client.list_historical_events()
    assert caught.value.status == 401


# --- tenant header --------------------------------------------------------------------------


async def test_missing_and_wrong_tenant_header(target: Target, sandbox_settings: Settings) -> None:
    async with httpx.AsyncClient(
        transport=target.transport, base_url=f"{target.base_url}/servitly"
    ) as raw:
        body = {
            "apiKey": sandbox_settings.servitly_api_key.get_secret_value(),
            "pat": sandbox_settings.servitly_pat.get_secret_value(),
        }
        missing = await raw.post("/identity/users/patLogin", json=body)
        wrong = await raw.post(
            "/identity/users/patLogin", json=body, headers={"X-Servitly-Tenant": "other"}
        )
        events = await raw.get("/v2/identity/users/me/historicalEvents")
    assert missing.status_code == 401
    assert "message" in missing.json()
    assert wrong.status_code == 403
    assert wrong.json() == {"message": "User not authorized: unknown tenant"}
    assert events.status_code == 401


async def test_client_with_a_wrong_tenant_gets_auth_error(
    asgi_target: Target, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(asgi_target, sandbox_settings, clock, tenant="someone-else") as client:
        with pytest.raises(AuthError) as caught:
            await client.login()
    assert caught.value.status == 403


@pytest.mark.parametrize("configured", ["X-Servitly-Tenant", "X-Semioty-Tenant"])
@pytest.mark.parametrize("sent", ["X-Servitly-Tenant", "X-Semioty-Tenant"])
async def test_only_the_tenants_own_header_name_is_accepted(
    clock: Clock, configured: str, sent: str
) -> None:
    settings = Settings(_env_file=None, servitly_tenant_header=configured)
    sandbox = ServitlySandbox(settings, clock)
    app = create_app(settings, clock=clock, vendors=[sandbox])
    transport = RecordingTransport(httpx.ASGITransport(app=app))
    target = Target(ASGI_BASE, transport)
    async with make_client(target, settings, clock, tenant_header=sent) as client:
        if sent == configured:
            assert await client.list_alert_definitions(THING_DEFINITION_ID)
        else:
            # A tenant on the new name does not answer to the legacy one, nor the reverse.
            with pytest.raises(AuthError) as caught:
                await client.login()
            assert caught.value.status == 401
    assert sandbox.demo_info()["tenant_header"] == configured


# --- historical events ----------------------------------------------------------------------


async def test_create_update_and_list_events(
    target: Target, sandbox_settings: Settings, clock: Clock, servitly: ServitlySandbox
) -> None:
    async with make_client(target, sandbox_settings, clock) as client:
        definition = await client.find_maintenance_alert_definition(THING_DEFINITION_ID)
        created = await client.create_historical_event(
            maintenance_event(clock, alert_definition_id=definition.id)
        )
        assert created.id
        assert created.is_maintenance
        assert created.location_id == "loc-block-a"
        assert created.title == "Maintenance"

        await client.update_historical_event(
            created.id,
            maintenance_event(
                clock, notes="Second visit: rails lubricated", properties={"v": "2"}
            ),
        )
        stored = servitly.event(created.id)
        assert stored["notes"] == "Second visit: rails lubricated"
        assert stored["properties"] == {"v": "2"}

        mine = await client.list_historical_events(
            HistoricalEventFilter(thing_id="thing-elevator-a", event_severity=5)
        )
    ids = [event.id for event in mine.content]
    assert created.id in ids
    assert all(e.thing_id == "thing-elevator-a" and e.is_maintenance for e in mine.content)


async def test_list_filters_by_location_and_time_range(
    client: ServitlyClient, clock: Clock
) -> None:
    block_b = await client.list_historical_events(HistoricalEventFilter(location_id="loc-block-b"))
    assert block_b.total_elements == 3
    assert {e.thing_id for e in block_b.content} == {"thing-hvac-b"}

    recent = await client.list_historical_events(
        HistoricalEventFilter(min_start_timestamp=clock.now() - timedelta(days=3))
    )
    assert recent.total_elements == 2
    window = await client.list_historical_events(
        HistoricalEventFilter(
            min_start_timestamp=clock.now() - timedelta(days=10),
            max_start_timestamp=clock.now() - timedelta(days=7),
        )
    )
    assert window.total_elements == 2
    maintenance = await client.list_historical_events(
        HistoricalEventFilter(topics="in;MAINTENANCE")
    )
    assert maintenance.total_elements == 2
    assert all(e.is_maintenance for e in maintenance.content)


async def test_paging_is_spring_style_and_the_iterator_sees_every_event(
    client: ServitlyClient, clock: Clock
) -> None:
    for n in range(7):
        await client.create_historical_event(
            maintenance_event(
                clock,
                start_timestamp=clock.now() - timedelta(minutes=10 + n),
                end_timestamp=None,
                notes=f"visit {n}",
            )
        )
    first = await client.list_historical_events(page=0, size=5)
    assert (first.total_elements, first.total_pages, first.number, first.size) == (13, 3, 0, 5)
    assert first.first is True
    assert first.last is False
    assert first.number_of_elements == 5
    last = await client.list_historical_events(page=2, size=5)
    assert last.last is True
    assert last.number_of_elements == 3
    beyond = await client.list_historical_events(page=9, size=5)
    assert beyond.content == []
    assert beyond.last is True

    seen = [event.id async for event in client.iter_historical_events(size=4)]
    assert len(seen) == len(set(seen)) == 13
    starts = [
        event.start_timestamp
        async for event in client.iter_historical_events(size=4)
        if event.start_timestamp is not None
    ]
    assert len(starts) == 13
    assert starts == sorted(starts, reverse=True)  # newest first by default


async def test_sort_ascending(client: ServitlyClient) -> None:
    page = await client.list_historical_events(
        HistoricalEventFilter(sort="startTimestamp,ASC"), size=50
    )
    starts = [event.start_timestamp for event in page.content]
    assert starts == sorted(s for s in starts if s is not None)


async def test_refused_events(client: ServitlyClient, clock: Clock) -> None:
    with pytest.raises(InvalidRequest, match="alertDefinitionId"):
        await client.create_historical_event(
            maintenance_event(clock, alert_definition_id="ad-unknown")
        )
    with pytest.raises(InvalidRequest, match="thingId"):
        await client.create_historical_event(maintenance_event(clock, thing_id="thing-unknown"))
    with pytest.raises(InvalidRequest, match="location"):
        await client.create_historical_event(maintenance_event(clock, location_id="loc-block-b"))
    with pytest.raises(NotFound):
        await client.update_historical_event("ev-9999", maintenance_event(clock))


async def test_location_only_event(client: ServitlyClient, clock: Clock) -> None:
    created = await client.create_historical_event(
        maintenance_event(clock, thing_id=None, location_id="loc-block-b")
    )
    assert created.location_id == "loc-block-b"
    assert created.thing_id is None


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/inventory/historicalEvents", b"{not json"),
        ("POST", "/inventory/historicalEvents", b"[1, 2]"),
        ("POST", "/inventory/historicalEvents", b'{"alertDefinitionId": "ad-maintenance"}'),
        (
            "POST",
            "/inventory/historicalEvents",
            b'{"alertDefinitionId": "ad-maintenance", "startTimestamp": true, "thingId": "x"}',
        ),
        (
            "POST",
            "/inventory/historicalEvents",
            b'{"alertDefinitionId": "ad-maintenance", "startTimestamp": 1, "notes": 5,'
            b' "thingId": "thing-gate-main"}',
        ),
        (
            "POST",
            "/inventory/historicalEvents",
            b'{"alertDefinitionId": "ad-maintenance", "startTimestamp": 1,'
            b' "thingId": "thing-gate-main", "properties": {"a": 1}}',
        ),
        ("PUT", "/inventory/historicalEvents/ev-0001", b'"text"'),
        ("POST", "/inventory/maintenanceWorks", b"{"),
        ("POST", "/inventory/maintenanceWorks", b'{"startTimestamp": 1578438000}'),
        (
            "POST",
            "/inventory/historicalEvents",
            b'{"alertDefinitionId": "ad-maintenance", "startTimestamp": 1578438000,'
            b' "thingId": "thing-gate-main"}',
        ),
        ("GET", "/v2/identity/users/me/historicalEvents?minStartTimestamp=1578438000", b""),
        ("POST", "/inventory/maintenanceWorks", b'{"thingId": "thing-gate-main", "type": 3}'),
        ("GET", "/v2/identity/users/me/historicalEvents?page=-1", b""),
        ("GET", "/v2/identity/users/me/historicalEvents?size=abc", b""),
        ("GET", "/v2/identity/users/me/historicalEvents?minStartTimestamp=yesterday", b""),
        ("GET", "/v2/identity/users/me/historicalEvents?eventSeverity=high", b""),
        ("GET", "/v2/identity/users/me/historicalEvents?sort=name,SIDEWAYS", b""),
        ("POST", "/identity/users/patLogin", b"{]"),
        ("POST", "/identity/users/me/renewToken", b'{"refreshToken": 7}'),
    ],
)
async def test_bad_input_gets_a_400_message_never_a_crash(
    client: ServitlyClient,
    asgi_target: Target,
    sandbox_settings: Settings,
    method: str,
    path: str,
    content: bytes,
) -> None:
    token = await client.login()
    async with httpx.AsyncClient(
        transport=asgi_target.transport, base_url=f"{ASGI_BASE}/servitly"
    ) as raw:
        answer = await raw.request(
            method,
            path,
            content=content,
            headers={
                "X-Servitly-Tenant": sandbox_settings.servitly_tenant,
                "Authorization": f"Bearer {token.token.get_secret_value()}",
                "Content-Type": "application/json",
            },
        )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Bad request")


async def test_unknown_path_answers_in_the_vendor_error_shape(asgi_target: Target) -> None:
    async with httpx.AsyncClient(transport=asgi_target.transport, base_url=ASGI_BASE) as raw:
        answer = await raw.get("/servitly/inventory/nothing-here")
    assert answer.status_code == 404
    assert answer.json() == {"message": "Resource not found"}


async def test_concurrent_creates_all_land_with_distinct_ids(
    client: ServitlyClient, clock: Clock
) -> None:
    created = await asyncio.gather(
        *(client.create_historical_event(maintenance_event(clock)) for _ in range(10))
    )
    assert len({event.id for event in created}) == 10


# --- alert definitions ----------------------------------------------------------------------


async def test_alert_definitions_include_one_maintenance_definition(
    client: ServitlyClient,
) -> None:
    definitions = await client.list_alert_definitions(THING_DEFINITION_ID)
    assert len(definitions) >= 3
    assert [d.id for d in definitions if d.is_maintenance] == [MAINTENANCE_DEFINITION_ID]
    assert {d.event_severity for d in definitions} >= {1, 2, 5}
    with pytest.raises(NotFound):
        await client.list_alert_definitions("td-unknown")


async def test_maintenance_definition_id_follows_the_setting(clock: Clock) -> None:
    settings = Settings(
        _env_file=None, servitly_maintenance_alert_definition_id="ad-from-settings"
    )
    sandbox = ServitlySandbox(settings, clock)
    assert sandbox.demo_info()["maintenance_alert_definition_id"] == "ad-from-settings"
    assert "ad-from-settings" in sandbox.demo_info()["alert_definition_ids"]


# --- deprecated maintenance works -----------------------------------------------------------


async def test_deprecated_maintenance_works(
    target: Target, sandbox_settings: Settings, clock: Clock, servitly: ServitlySandbox
) -> None:
    doc = json.loads((FIXTURES / "maintenance_works.request.json").read_text(encoding="utf-8"))
    # The doc's example ids are placeholders; the sandbox knows the demo community's.
    doc.update(thingId="thing-hvac-b", locationId="loc-block-b")
    work = MaintenanceWorkWrite.model_validate(doc)
    async with make_client(target, sandbox_settings, clock) as client:
        created = await client.create_maintenance_work(work)
        logged = await client.list_historical_events(
            HistoricalEventFilter(thing_id="thing-hvac-b", event_severity=5)
        )
    assert created.id is not None
    assert created.model_dump(by_alias=True, exclude_none=True) == {"id": created.id, **doc}
    assert servitly.maintenance_work(created.id)["outcome"] == "Impossible to reset error..."
    # Servitly steers these to events: the work shows up as a MAINTENANCE event too.
    mirrored = [e for e in logged.content if (e.properties or {}).get("maintenanceWorkId")]
    assert len(mirrored) == 1
    assert mirrored[0].start_timestamp == from_epoch_millis(1578438000000)


async def test_deprecated_maintenance_work_refusals(client: ServitlyClient) -> None:
    with pytest.raises(InvalidRequest, match="unknown locationId"):
        await client.create_maintenance_work(MaintenanceWorkWrite(location_id="loc-nowhere"))
    with pytest.raises(InvalidRequest, match="milliseconds"):
        await client.create_maintenance_work(
            MaintenanceWorkWrite.model_validate({"startTimestamp": 1578438000})
        )


# The document's body fields each come with an example; none is marked required.
DOC_WORK = json.loads((FIXTURES / "maintenance_works.doc.request.json").read_text("utf-8"))


@pytest.mark.parametrize("body", [{}, DOC_WORK], ids=["empty", "doc-example"])
async def test_maintenance_works_takes_any_body_the_document_allows(
    client: ServitlyClient,
    asgi_target: Target,
    sandbox_settings: Settings,
    servitly: ServitlySandbox,
    body: dict[str, Any],
) -> None:
    token = await client.login()
    async with httpx.AsyncClient(
        transport=asgi_target.transport, base_url=f"{ASGI_BASE}/servitly"
    ) as raw:
        answer = await raw.post(
            "/inventory/maintenanceWorks",
            json=body,
            headers={
                "X-Servitly-Tenant": sandbox_settings.servitly_tenant,
                "Authorization": f"Bearer {token.token.get_secret_value()}",
            },
        )
    assert answer.status_code == 201
    created = answer.json()
    assert isinstance(created["id"], str)
    assert {k: v for k, v in created.items() if k != "id"} == body
    assert servitly.maintenance_work(created["id"]) == created


# --- faults as the client sees them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (FaultRule(kind=FaultKind.ERROR, status=503), Unavailable),
        (FaultRule(kind=FaultKind.RATE_LIMIT, retry_after=0), RateLimited),
        (FaultRule(kind=FaultKind.MALFORMED), Unavailable),
        (FaultRule(kind=FaultKind.DROP), Unavailable),
    ],
)
async def test_faults_reach_the_client_as_typed_errors(
    client: ServitlyClient,
    clock: Clock,
    sandbox_app: Starlette,
    rule: FaultRule,
    error: type[Exception],
) -> None:
    await client.login()
    rule.path = "/servitly/inventory/historicalEvents"
    sandbox_app.state.control.faults.add(rule)
    with pytest.raises(error):
        await client.create_historical_event(maintenance_event(clock))
    # A create is never resent: the fault fired exactly once.
    assert rule.hits == 1


async def test_reads_ride_out_a_short_outage(
    client: ServitlyClient, asgi_target: Target, sandbox_app: Starlette
) -> None:
    await client.login()
    sandbox_app.state.control.faults.add(
        FaultRule(kind=FaultKind.ERROR, path=EVENTS, status=500, times=2)
    )
    page = await client.list_historical_events()
    assert page.total_elements == 6
    assert asgi_target.transport.count("GET", EVENTS, 500) == 2


# --- control protocol -----------------------------------------------------------------------


def test_demo_info_names_everything_a_demo_needs(
    servitly: ServitlySandbox, sandbox_settings: Settings
) -> None:
    info = servitly.demo_info()
    assert info["api_key"] == sandbox_settings.servitly_api_key.get_secret_value()
    assert info["tenant"] == sandbox_settings.servitly_tenant
    assert info["maintenance_alert_definition_id"] == MAINTENANCE_DEFINITION_ID
    assert {t["id"] for t in info["things"]} == {
        "thing-elevator-a",
        "thing-hvac-b",
        "thing-gate-main",
    }
    assert {loc["name"] for loc in info["locations"]} >= {"Block A", "Block B"}
    assert info["user"] == {"email": DEMO_USER_EMAIL, "password": DEMO_USER_PASSWORD}


async def test_demo_endpoint_serves_servitly_info(asgi_target: Target) -> None:
    async with httpx.AsyncClient(transport=asgi_target.transport, base_url=ASGI_BASE) as raw:
        answer = await raw.get("/_sandbox/demo")
    assert answer.status_code == 200
    info = answer.json()
    assert info["servitly"]["thing_definition_id"] == THING_DEFINITION_ID
    assert info["base_urls"]["servitly"] == f"{ASGI_BASE}/servitly"


def test_seed_ids_are_stable_across_instances_and_resets(
    servitly: ServitlySandbox, sandbox_settings: Settings, clock: Clock
) -> None:
    other = ServitlySandbox(sandbox_settings, clock)
    assert servitly.demo_info() == other.demo_info()
    assert servitly.event("ev-0001")["alertDefinitionId"] == "ad-overheating"
    assert other.event("ev-0006")["thingId"] == "thing-gate-main"


async def test_reset_drops_created_events_and_sessions(
    client: ServitlyClient, clock: Clock, servitly: ServitlySandbox
) -> None:
    created = await client.create_historical_event(maintenance_event(clock))
    token = client.token
    assert token is not None
    servitly.reset()
    with pytest.raises(KeyError):
        servitly.event(created.id)
    assert servitly.token_expires_at(token.token.get_secret_value()) is None
    # The client notices its token is gone (401) and logs in again by itself.
    page = await client.list_historical_events()
    assert page.total_elements == 6


def test_advance_closes_an_open_event(servitly: ServitlySandbox, clock: Clock) -> None:
    open_event = servitly.event("ev-0005")
    assert open_event["endTimestamp"] is None
    before = to_epoch_millis(clock.now())
    closed = servitly.advance("event", "ev-0005", "close")
    assert before <= closed["endTimestamp"] <= to_epoch_millis(clock.now())
    with pytest.raises(ValueError, match="already ended"):
        servitly.advance("event", "ev-0005")
    with pytest.raises(ValueError, match="only be closed"):
        servitly.advance("event", "ev-0006", "approve")
    with pytest.raises(KeyError):
        servitly.advance("event", "ev-9999")
    with pytest.raises(KeyError):
        servitly.advance("booking", "ev-0006")


def test_auto_advance_closes_the_oldest_open_event(servitly: ServitlySandbox) -> None:
    servitly.auto_advance()
    assert servitly.event("ev-0005")["endTimestamp"] is not None
    assert servitly.event("ev-0006")["endTimestamp"] is None
    servitly.auto_advance()
    assert servitly.event("ev-0006")["endTimestamp"] is not None
    servitly.auto_advance()  # nothing left open: a quiet tick


async def test_control_api_advance_maps_errors(asgi_target: Target) -> None:
    async with httpx.AsyncClient(transport=asgi_target.transport, base_url=ASGI_BASE) as raw:
        ok = await raw.post(
            "/_sandbox/advance", json={"vendor": "servitly", "kind": "event", "id": "ev-0005"}
        )
        again = await raw.post(
            "/_sandbox/advance", json={"vendor": "servitly", "kind": "event", "id": "ev-0005"}
        )
        missing = await raw.post(
            "/_sandbox/advance", json={"vendor": "servitly", "kind": "event", "id": "nope"}
        )
    assert ok.status_code == 200
    assert ok.json()["endTimestamp"] is not None
    assert again.status_code == 409
    assert missing.status_code == 404


async def test_expire_tokens_allows_renewal_without_moving_the_clock(
    client: ServitlyClient, servitly: ServitlySandbox
) -> None:
    first = await client.login()
    with pytest.raises(InvalidRequest, match="not yet expired"):
        await client.renew_token()
    servitly.expire_tokens()
    renewed = await client.renew_token()
    assert renewed.token.get_secret_value() != first.token.get_secret_value()
    assert servitly.token_expires_at(first.token.get_secret_value()) is None
