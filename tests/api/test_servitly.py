"""ServitlyClient over httpx.MockTransport: auth, renewal, every operation and failure."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.base import RetryPolicy
from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from api.redaction import secrets_filter
from api.servitly import ServitlyClient
from api.servitly_models import (
    AlertDefinition,
    AuthToken,
    ErrorBody,
    HistoricalEvent,
    HistoricalEventFilter,
    HistoricalEventPage,
    HistoricalEventWrite,
    MaintenanceWork,
    MaintenanceWorkWrite,
    PasswordLoginRequest,
    PatLoginRequest,
    RenewTokenRequest,
)
from api.times import from_epoch_millis, to_epoch_millis

FIXTURES = Path(__file__).parent.parent / "fixtures" / "servitly"
BASE = "https://servitly.test"
API_KEY = "api-key-0123456789abcdef"
PAT = "pat-secret-0123456789abcdef"
PASSWORD = "password-secret-0123456789"
TENANT = "acme"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeServitly:
    """Just enough Servitly: issues numbered tokens and routes other calls to handlers."""

    def __init__(self, clock: FakeClock, *, tenant_header: str = "X-Servitly-Tenant") -> None:
        self.clock = clock
        self.tenant_header = tenant_header
        self.requests: list[httpx.Request] = []
        self.issued = 0
        self.lifetime = timedelta(hours=1)
        self.routes: dict[tuple[str, str], Handler] = {}
        self.login_status = 200
        self.renew_status = 200

    def jwt(self, number: int) -> str:
        return f"eyJhbGciOiJIUzUxMiJ9.jwt-{number}.signature-{number:04d}"

    def token_body(self) -> dict[str, Any]:
        self.issued += 1
        return {
            "token": self.jwt(self.issued),
            "tokenExpirationTimestamp": to_epoch_millis(self.clock() + self.lifetime),
            "refreshToken": f"refresh-{self.issued}-cd2bd3a0-861d",
            "userId": "6616689a0de6d87b47cd6308",
            "tenantId": "661533a57bba156cf6e8d04b",
        }

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)

    def last(self, method: str, path: str) -> httpx.Request:
        return [r for r in self.requests if r.method == method and r.url.path == path][-1]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get(self.tenant_header) != TENANT:
            return httpx.Response(403, json={"message": "Tenant not found"})
        path = request.url.path
        if path in ("/identity/users/patLogin", "/identity/users/login"):
            if self.login_status != 200:
                return httpx.Response(self.login_status, json={"message": "Invalid credentials"})
            return httpx.Response(200, json=self.token_body())
        if path == "/identity/users/me/renewToken":
            if self.renew_status != 200:
                return httpx.Response(self.renew_status, json={"message": "Token not expired"})
            return httpx.Response(200, json=self.token_body())
        handler = self.routes.get((request.method, path))
        if handler is None:
            return httpx.Response(404, json={"message": "Resource not found"})
        return handler(request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeServitly:
    return FakeServitly(clock)


@pytest.fixture
def delays() -> list[float]:
    return []


def make_client(
    server: FakeServitly,
    clock: FakeClock,
    delays: list[float] | None = None,
    **overrides: Any,
) -> ServitlyClient:
    recorded = delays if delays is not None else []

    async def sleep(delay: float) -> None:
        recorded.append(delay)

    options: dict[str, Any] = {
        "base_url": BASE,
        "api_key": API_KEY,
        "pat": PAT,
        "tenant": TENANT,
        "transport": httpx.MockTransport(server),
        "retry": RetryPolicy(retries=2, base_delay=0.01, max_delay=1.0),
        "sleep": sleep,
        "clock": clock,
    }
    options.update(overrides)
    return ServitlyClient(**options)


def event_write(**changes: Any) -> HistoricalEventWrite:
    fields: dict[str, Any] = {
        "alert_definition_id": "ad-maintenance",
        "start_timestamp": T0 - timedelta(hours=2),
        "end_timestamp": T0,
        "thing_id": "thing-elevator-a",
        "notes": "Replaced the door sensor",
    }
    fields.update(changes)
    return HistoricalEventWrite(**fields)


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# --- fixtures: every doc example parses, every request serialises to the doc's shape --------


def test_maintenance_work_request_fixture_round_trips() -> None:
    doc = fixture("maintenance_works.request.json")
    work = MaintenanceWorkWrite.model_validate(doc)
    assert work.start_timestamp == from_epoch_millis(1578438000000)
    assert work.type == "REPAIR"
    assert work.body() == doc


def test_maintenance_work_201_fixture_parses() -> None:
    doc = fixture("maintenance_works.201.json")
    work = MaintenanceWork.model_validate(doc)
    assert work.id == "5e14b7f0c9e77c0001a1b2e5"
    assert work.outcome == "Impossible to reset error..."
    assert work.properties == {"foo": "abc", "bar": "123"}
    assert work.model_dump(by_alias=True, exclude_none=True) == doc


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("maintenance_works.400.json", "Bad request"),
        ("maintenance_works.401.json", "User not authenticated"),
        ("maintenance_works.403.json", "User not authorized"),
        ("maintenance_works.429.json", "API call rate limit exeeded"),
        ("maintenance_works.500.json", "Internal Server Error"),
        ("login.401.json", "Invalid credentials"),
    ],
)
def test_error_fixtures_parse(name: str, message: str) -> None:
    assert ErrorBody.model_validate(fixture(name)).message == message


def test_login_fixtures() -> None:
    token = AuthToken.model_validate(fixture("login.response.json"))
    assert token.token_expiration_timestamp == from_epoch_millis(1578438000000)
    assert token.user_id == "6616689a0de6d87b47cd6308"
    assert "661fd29342541977c4002ec7" not in repr(token)
    assert token.model_dump(by_alias=True) == fixture("login.response.json")

    pat_doc = fixture("pat_login.request.json")
    assert PatLoginRequest.model_validate(pat_doc).model_dump(by_alias=True) == pat_doc
    login_doc = fixture("login.request.json")
    assert PasswordLoginRequest.model_validate(login_doc).model_dump(by_alias=True) == login_doc
    renew_doc = fixture("renew_token.request.json")
    assert RenewTokenRequest.model_validate(renew_doc).model_dump(by_alias=True) == renew_doc


def test_historical_event_fixtures() -> None:
    request_doc = fixture("historical_event.request.json")
    assert HistoricalEventWrite.model_validate(request_doc).body() == request_doc

    created = HistoricalEvent.model_validate(fixture("historical_event.201.json"))
    assert created.id == "1234abcd"
    assert created.is_maintenance
    assert created.start_timestamp == from_epoch_millis(1578438000000)

    page = HistoricalEventPage.model_validate(fixture("historical_events.page.json"))
    assert page.total_elements == 1
    assert page.is_last
    assert page.content[0].notes == "Maintenance notes"


def test_alert_definition_fixture() -> None:
    definitions = [
        AlertDefinition.model_validate(item) for item in fixture("alert_definitions.response.json")
    ]
    assert [d.is_maintenance for d in definitions] == [False, True]
    assert definitions[0].severity == "CRITICAL"


def test_event_needs_a_target_and_ordered_times() -> None:
    with pytest.raises(ValueError, match="thingId or a locationId"):
        event_write(thing_id=None)
    with pytest.raises(ValueError, match="before"):
        event_write(end_timestamp=T0 - timedelta(days=1))
    assert event_write(thing_id=None, location_id="loc-block-a").body()["locationId"]


def test_page_is_last_from_total_pages_when_last_is_absent() -> None:
    page = HistoricalEventPage.model_validate(
        {"content": [{"id": "e1"}], "totalPages": 3, "number": 1}
    )
    assert not page.is_last
    assert HistoricalEventPage.model_validate({"content": []}).is_last


def test_filter_params_are_ms_and_skip_absent_conditions() -> None:
    params = HistoricalEventFilter(
        thing_id="t1", event_severity=5, min_start_timestamp=T0
    ).params()
    assert params == {
        "thingId": "t1",
        "eventSeverity": "5",
        "minStartTimestamp": str(to_epoch_millis(T0)),
    }


# --- construction ---------------------------------------------------------------------------


def test_constructor_needs_a_way_to_log_in(server: FakeServitly, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="personal access token"):
        make_client(server, clock, pat=None)
    with pytest.raises(ValueError, match="tenant"):
        make_client(server, clock, tenant="")


# --- authentication -------------------------------------------------------------------------


async def test_pat_login_sends_key_and_pat_with_tenant_header(
    server: FakeServitly, clock: FakeClock
) -> None:
    async with make_client(server, clock) as client:
        token = await client.login()
    request = server.last("POST", "/identity/users/patLogin")
    assert json_body(request) == {"apiKey": API_KEY, "pat": PAT}
    assert request.headers["X-Servitly-Tenant"] == TENANT
    assert "Authorization" not in request.headers
    assert token.token.get_secret_value() == server.jwt(1)
    assert token.token_expiration_timestamp == T0 + timedelta(hours=1)


async def test_password_login_puts_the_api_key_in_the_query(
    server: FakeServitly, clock: FakeClock
) -> None:
    async with make_client(
        server, clock, pat=None, email="manager@demo.community", password=PASSWORD
    ) as client:
        await client.login()
    request = server.last("POST", "/identity/users/login")
    assert request.url.params["apiKey"] == API_KEY
    assert json_body(request) == {"email": "manager@demo.community", "password": PASSWORD}


async def test_bad_credentials_raise_auth_error_without_retry(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.login_status = 401
    async with make_client(server, clock) as client:
        with pytest.raises(AuthError, match="Invalid credentials") as caught:
            await client.list_alert_definitions("td-1")
    assert caught.value.status == 401
    assert server.count("POST", "/identity/users/patLogin") == 1


async def test_login_on_5xx_is_retried(
    server: FakeServitly, clock: FakeClock, delays: list[float]
) -> None:
    answers = iter([503, 503, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status != 200:
            return httpx.Response(status, json={"message": "down"})
        return httpx.Response(200, json=server.token_body())

    async with make_client(server, clock, delays, transport=httpx.MockTransport(flaky)) as client:
        token = await client.login()
    assert token.token.get_secret_value() == server.jwt(1)
    assert len(delays) == 2


@pytest.mark.parametrize("header", ["X-Servitly-Tenant", "X-Semioty-Tenant"])
async def test_tenant_header_name_is_configurable(clock: FakeClock, header: str) -> None:
    server = FakeServitly(clock, tenant_header=header)
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=[])
    )
    async with make_client(server, clock, tenant_header=header) as client:
        assert await client.list_alert_definitions("td-1") == []
    other = "X-Semioty-Tenant" if header == "X-Servitly-Tenant" else "X-Servitly-Tenant"
    for request in server.requests:
        assert request.headers[header] == TENANT
        assert other not in request.headers


async def test_wrong_tenant_header_is_an_auth_error(clock: FakeClock) -> None:
    server = FakeServitly(clock, tenant_header="X-Semioty-Tenant")
    async with make_client(server, clock) as client:
        with pytest.raises(AuthError) as caught:
            await client.login()
    assert caught.value.status == 403


async def test_calls_carry_bearer_and_reuse_the_token(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=fixture("alert_definitions.response.json"))
    )
    async with make_client(server, clock) as client:
        await client.list_alert_definitions("td-1")
        await client.list_alert_definitions("td-1")
    call = server.last("GET", "/inventory/thingDefinitions/td-1/alertDefinitions")
    assert call.headers["Authorization"] == f"Bearer {server.jwt(1)}"
    assert call.headers["X-Servitly-Tenant"] == TENANT
    assert server.issued == 1


async def test_no_renewal_while_the_token_is_valid(server: FakeServitly, clock: FakeClock) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=[])
    )
    async with make_client(server, clock) as client:
        await client.list_alert_definitions("td-1")
        clock.now += timedelta(minutes=59)
        await client.list_alert_definitions("td-1")
    assert server.count("POST", "/identity/users/me/renewToken") == 0


async def test_expired_token_is_renewed_with_refresh_token(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=[])
    )
    async with make_client(server, clock) as client:
        await client.list_alert_definitions("td-1")
        clock.now += timedelta(hours=1)
        await client.list_alert_definitions("td-1")
    renew = server.last("POST", "/identity/users/me/renewToken")
    assert renew.headers["Authorization"] == f"Bearer {server.jwt(1)}"
    assert json_body(renew) == {
        "refreshToken": "refresh-1-cd2bd3a0-861d",
        "userId": "6616689a0de6d87b47cd6308",
        "tenantId": "661533a57bba156cf6e8d04b",
    }
    call = server.last("GET", "/inventory/thingDefinitions/td-1/alertDefinitions")
    assert call.headers["Authorization"] == f"Bearer {server.jwt(2)}"
    assert server.count("POST", "/identity/users/patLogin") == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_refused_renewal_falls_back_to_login(
    server: FakeServitly, clock: FakeClock, status: int
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=[])
    )
    server.renew_status = status
    async with make_client(server, clock) as client:
        await client.login()
        clock.now += timedelta(hours=2)
        await client.list_alert_definitions("td-1")
    assert server.count("POST", "/identity/users/me/renewToken") == 1
    assert server.count("POST", "/identity/users/patLogin") == 2
    call = server.last("GET", "/inventory/thingDefinitions/td-1/alertDefinitions")
    assert call.headers["Authorization"] == f"Bearer {server.jwt(2)}"


async def test_renew_without_a_login_is_an_auth_error(
    server: FakeServitly, clock: FakeClock
) -> None:
    async with make_client(server, clock) as client:
        with pytest.raises(AuthError):
            await client.renew_token()


async def test_401_logs_in_again_once_and_repeats_the_create(
    server: FakeServitly, clock: FakeClock
) -> None:
    def create(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {server.jwt(1)}":
            return httpx.Response(401, json={"message": "User not authenticated"})
        return httpx.Response(201, json={"id": "ev-1", **json_body(request)})

    server.routes["POST", "/inventory/historicalEvents"] = create
    async with make_client(server, clock) as client:
        created = await client.create_historical_event(event_write())
    assert created.id == "ev-1"
    assert server.count("POST", "/identity/users/patLogin") == 2
    assert server.count("POST", "/inventory/historicalEvents") == 2


async def test_401_twice_is_an_auth_error(server: FakeServitly, clock: FakeClock) -> None:
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(401, json={"message": "User not authenticated"})
    )
    async with make_client(server, clock) as client:
        with pytest.raises(AuthError, match="User not authenticated"):
            await client.list_historical_events()
    assert server.count("POST", "/identity/users/patLogin") == 2


async def test_concurrent_calls_share_one_login(server: FakeServitly, clock: FakeClock) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=[])
    )
    async with make_client(server, clock) as client:
        await asyncio.gather(*(client.list_alert_definitions("td-1") for _ in range(5)))
    assert server.issued == 1


# --- historical events ----------------------------------------------------------------------


async def test_create_historical_event(server: FakeServitly, clock: FakeClock) -> None:
    def create(request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        return httpx.Response(201, json={"id": "ev-42", "eventSeverity": 5, **body})

    server.routes["POST", "/inventory/historicalEvents"] = create
    async with make_client(server, clock) as client:
        created = await client.create_historical_event(event_write(properties={"taskId": "t-9"}))
    assert json_body(server.last("POST", "/inventory/historicalEvents")) == {
        "alertDefinitionId": "ad-maintenance",
        "startTimestamp": to_epoch_millis(T0 - timedelta(hours=2)),
        "endTimestamp": to_epoch_millis(T0),
        "thingId": "thing-elevator-a",
        "notes": "Replaced the door sensor",
        "properties": {"taskId": "t-9"},
    }
    assert created.id == "ev-42"
    assert created.is_maintenance
    assert created.end_timestamp == T0


ERRORS: list[tuple[int, str, type[ApiError]]] = [
    (400, "maintenance_works.400.json", InvalidRequest),
    (403, "maintenance_works.403.json", AuthError),
    (404, "maintenance_works.400.json", NotFound),
    (429, "maintenance_works.429.json", RateLimited),
    (500, "maintenance_works.500.json", Unavailable),
    (503, "maintenance_works.500.json", Unavailable),
]


@pytest.mark.parametrize(("status", "name", "error"), ERRORS)
async def test_create_historical_event_failures_are_not_resent(
    server: FakeServitly, clock: FakeClock, status: int, name: str, error: type[ApiError]
) -> None:
    server.routes["POST", "/inventory/historicalEvents"] = lambda request: httpx.Response(
        status, json=fixture(name), headers={"Retry-After": "2"}
    )
    async with make_client(server, clock) as client:
        with pytest.raises(error) as caught:
            await client.create_historical_event(event_write())
    assert caught.value.status == status
    assert caught.value.message == fixture(name)["message"]
    assert server.count("POST", "/inventory/historicalEvents") == 1
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 2.0


async def test_create_after_a_read_timeout_is_outcome_unknown(
    server: FakeServitly, clock: FakeClock
) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    server.routes["POST", "/inventory/historicalEvents"] = timeout
    async with make_client(server, clock) as client:
        with pytest.raises(Unavailable) as caught:
            await client.create_historical_event(event_write())
    assert caught.value.outcome_unknown
    assert server.count("POST", "/inventory/historicalEvents") == 1


async def test_update_historical_event(server: FakeServitly, clock: FakeClock) -> None:
    server.routes["PUT", "/inventory/historicalEvents/ev 1/x"] = lambda request: httpx.Response(
        200
    )
    async with make_client(server, clock) as client:
        await client.update_historical_event("ev 1/x", event_write(notes="Done"))
    request = server.last("PUT", "/inventory/historicalEvents/ev 1/x")
    assert request.url.raw_path == b"/inventory/historicalEvents/ev%201%2Fx"
    assert json_body(request)["notes"] == "Done"


@pytest.mark.parametrize(("status", "name", "error"), ERRORS)
async def test_update_historical_event_failures(
    server: FakeServitly,
    clock: FakeClock,
    delays: list[float],
    status: int,
    name: str,
    error: type[ApiError],
) -> None:
    server.routes["PUT", "/inventory/historicalEvents/ev-1"] = lambda request: httpx.Response(
        status, json=fixture(name)
    )
    async with make_client(server, clock, delays) as client:
        with pytest.raises(error):
            await client.update_historical_event("ev-1", event_write())
    # A PUT replaces the same record, so transient failures are retried.
    expected = 3 if error in (Unavailable, RateLimited) else 1
    assert server.count("PUT", "/inventory/historicalEvents/ev-1") == expected


async def test_list_historical_events_sends_filters_and_paging(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(200, json=fixture("historical_events.page.json"))
    )
    filters = HistoricalEventFilter(
        location_id="loc-block-a",
        event_severity=5,
        min_start_timestamp=T0 - timedelta(days=7),
        max_start_timestamp=T0,
    )
    async with make_client(server, clock) as client:
        page = await client.list_historical_events(filters, page=2, size=10)
    params = dict(server.last("GET", "/v2/identity/users/me/historicalEvents").url.params)
    assert params == {
        "locationId": "loc-block-a",
        "eventSeverity": "5",
        "minStartTimestamp": str(to_epoch_millis(T0 - timedelta(days=7))),
        "maxStartTimestamp": str(to_epoch_millis(T0)),
        "page": "2",
        "size": "10",
    }
    assert page.content[0].id == "1234abcd"


async def test_list_rejects_bad_paging(server: FakeServitly, clock: FakeClock) -> None:
    async with make_client(server, clock) as client:
        with pytest.raises(ValueError, match="page"):
            await client.list_historical_events(page=-1)
        with pytest.raises(ValueError, match="size"):
            await client.list_historical_events(size=0)


async def test_iter_historical_events_walks_every_page(
    server: FakeServitly, clock: FakeClock
) -> None:
    events = [{"id": f"ev-{n}", "eventSeverity": 5} for n in range(5)]

    def pages(request: httpx.Request) -> httpx.Response:
        page, size = int(request.url.params["page"]), int(request.url.params["size"])
        chunk = events[page * size : (page + 1) * size]
        total_pages = -(-len(events) // size)
        return httpx.Response(
            200,
            json={
                "content": chunk,
                "number": page,
                "size": size,
                "totalElements": len(events),
                "totalPages": total_pages,
                "last": page + 1 >= total_pages,
                "first": page == 0,
                "numberOfElements": len(chunk),
            },
        )

    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = pages
    async with make_client(server, clock) as client:
        seen = [event.id async for event in client.iter_historical_events(size=2)]
    assert seen == [f"ev-{n}" for n in range(5)]
    assert server.count("GET", "/v2/identity/users/me/historicalEvents") == 3


@pytest.mark.parametrize(("status", "name", "error"), ERRORS)
async def test_list_historical_events_failures(
    server: FakeServitly,
    clock: FakeClock,
    delays: list[float],
    status: int,
    name: str,
    error: type[ApiError],
) -> None:
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(status, json=fixture(name), headers={"Retry-After": "0"})
    )
    async with make_client(server, clock, delays) as client:
        with pytest.raises(error):
            await client.list_historical_events()
    retried = error in (Unavailable, RateLimited)
    assert server.count("GET", "/v2/identity/users/me/historicalEvents") == (3 if retried else 1)
    assert len(delays) == (2 if retried else 0)


async def test_read_recovers_after_a_transient_failure(
    server: FakeServitly, clock: FakeClock, delays: list[float]
) -> None:
    answers = iter([500, 200])
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(500, json={"message": "Internal Server Error"})
        if next(answers) == 500
        else httpx.Response(200, json=fixture("historical_events.page.json"))
    )
    async with make_client(server, clock, delays) as client:
        page = await client.list_historical_events()
    assert page.total_elements == 1
    assert len(delays) == 1


async def test_garbled_answer_is_unavailable(server: FakeServitly, clock: FakeClock) -> None:
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(200, content=b"<html>oops")
    )
    server.routes["POST", "/inventory/historicalEvents"] = lambda request: httpx.Response(
        201, json={"no": "id"}
    )
    async with make_client(server, clock, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(Unavailable, match="not JSON"):
            await client.list_historical_events()
        with pytest.raises(Unavailable, match="unexpected answer"):
            await client.create_historical_event(event_write())


async def test_connection_refused_is_unavailable_and_nothing_sent(clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    server = FakeServitly(clock)
    async with make_client(
        server, clock, transport=httpx.MockTransport(refuse), retry=RetryPolicy(retries=0)
    ) as client:
        with pytest.raises(Unavailable) as caught:
            await client.create_historical_event(event_write())
    assert not caught.value.outcome_unknown


# --- alert definitions ----------------------------------------------------------------------


async def test_alert_definitions_and_maintenance_lookup(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=fixture("alert_definitions.response.json"))
    )
    async with make_client(server, clock) as client:
        definitions = await client.list_alert_definitions("td-1")
        maintenance = await client.find_maintenance_alert_definition("td-1")
    assert [d.id for d in definitions] == ["abcd1234", "abcd5678"]
    assert maintenance.id == "abcd5678"


async def test_no_maintenance_definition_is_not_found(
    server: FakeServitly, clock: FakeClock
) -> None:
    only_failures = fixture("alert_definitions.response.json")[:1]
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json=only_failures)
    )
    async with make_client(server, clock) as client:
        with pytest.raises(NotFound, match="MAINTENANCE"):
            await client.find_maintenance_alert_definition("td-1")


@pytest.mark.parametrize(("status", "name", "error"), ERRORS)
async def test_alert_definition_failures(
    server: FakeServitly,
    clock: FakeClock,
    delays: list[float],
    status: int,
    name: str,
    error: type[ApiError],
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(status, json=fixture(name))
    )
    async with make_client(server, clock, delays) as client:
        with pytest.raises(error):
            await client.list_alert_definitions("td-1")


async def test_alert_definitions_that_are_not_a_list_are_unavailable(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["GET", "/inventory/thingDefinitions/td-1/alertDefinitions"] = lambda request: (
        httpx.Response(200, json={"content": []})
    )
    async with make_client(server, clock, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(Unavailable):
            await client.list_alert_definitions("td-1")


# --- deprecated maintenance works -----------------------------------------------------------


async def test_create_maintenance_work_as_documented(
    server: FakeServitly, clock: FakeClock
) -> None:
    server.routes["POST", "/inventory/maintenanceWorks"] = lambda request: httpx.Response(
        201, json=fixture("maintenance_works.201.json")
    )
    work = MaintenanceWorkWrite.model_validate(fixture("maintenance_works.request.json"))
    async with make_client(server, clock) as client:
        created = await client.create_maintenance_work(work)
    request = server.last("POST", "/inventory/maintenanceWorks")
    assert json_body(request) == fixture("maintenance_works.request.json")
    assert request.headers["Authorization"] == f"Bearer {server.jwt(1)}"
    assert created.id == "5e14b7f0c9e77c0001a1b2e5"
    assert created.start_timestamp == from_epoch_millis(1578438000000)


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (400, "maintenance_works.400.json", InvalidRequest),
        (401, "maintenance_works.401.json", AuthError),
        (403, "maintenance_works.403.json", AuthError),
        (429, "maintenance_works.429.json", RateLimited),
        (500, "maintenance_works.500.json", Unavailable),
    ],
)
async def test_create_maintenance_work_documented_failures(
    server: FakeServitly, clock: FakeClock, status: int, name: str, error: type[ApiError]
) -> None:
    server.routes["POST", "/inventory/maintenanceWorks"] = lambda request: httpx.Response(
        status, json=fixture(name)
    )
    work = MaintenanceWorkWrite.model_validate(fixture("maintenance_works.request.json"))
    async with make_client(server, clock) as client:
        with pytest.raises(error) as caught:
            await client.create_maintenance_work(work)
    assert caught.value.message == fixture(name)["message"]
    # Only a 401 is repeated (after a fresh login): it proves nothing was stored.
    assert server.count("POST", "/inventory/maintenanceWorks") == (2 if status == 401 else 1)


# --- secrets --------------------------------------------------------------------------------


async def test_no_secret_in_logs_exceptions_or_reprs(
    server: FakeServitly, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The bot installs the process-wide filter on its handlers; do the same for the capture.
    caplog.handler.addFilter(secrets_filter)
    answers = iter([401, 500, 500, 500, 429])
    server.routes["GET", "/v2/identity/users/me/historicalEvents"] = lambda request: (
        httpx.Response(next(answers, 400), json={"message": "nope"})
    )
    raised: list[ApiError] = []
    try:
        async with make_client(
            server, clock, pat=None, email="manager@demo.community", password=PASSWORD
        ) as client:
            for _ in range(3):
                try:
                    await client.list_historical_events()
                except ApiError as exc:
                    raised.append(exc)
            clock.now += timedelta(hours=3)
            server.renew_status = 400
            try:
                await client.list_historical_events()
            except ApiError as exc:
                raised.append(exc)
            token = client.token
            assert token is not None
            texts = [caplog.text, repr(client), repr(token), str(token)]
    finally:
        caplog.handler.removeFilter(secrets_filter)
    texts += [str(exc) for exc in raised] + [repr(exc) for exc in raised]
    secrets = [API_KEY, PASSWORD, *(server.jwt(n) for n in range(1, server.issued + 1))]
    secrets += [f"refresh-{n}-cd2bd3a0-861d" for n in range(1, server.issued + 1)]
    assert raised, "the failures were meant to raise"
    assert "HTTP Request" in caplog.text, "httpx's request log was meant to be captured"
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_own_log_lines_hold_no_secret_even_unfiltered(
    server: FakeServitly, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="api")
    server.routes["POST", "/inventory/historicalEvents"] = lambda request: httpx.Response(
        401, json={"message": "User not authenticated"}
    )
    async with make_client(server, clock) as client:
        with pytest.raises(AuthError):
            await client.create_historical_event(event_write())
        clock.now += timedelta(hours=2)
        server.renew_status = 401
        with pytest.raises(AuthError):
            await client.create_historical_event(event_write())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("api")]
    assert any("logging in again" in line for line in lines)
    for line in lines:
        for secret in [API_KEY, PAT, *(server.jwt(n) for n in range(1, server.issued + 1))]:
            assert secret not in line
