"""AkubelaClient over httpx.MockTransport: every command, every failure class, token renewal."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from api.akubela import AkubelaClient, AkubelaTokens, MemoryTokenStore, failure_message
from api.akubela_models import TokenSet
from api.base import RetryPolicy
from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from api.times import parse_vendor_datetime
from sandbox.akubela_errors import ErrorStyle, Failure, render

FIXTURES = Path(__file__).parent.parent / "fixtures" / "akubela"
BASE = "https://akubela.test/base"
CLIENT_SECRET = "client-secret-value-1234"
ACCESS = "access-token-value-0001"
REFRESH = "refresh-token-value-0001"
NEW_ACCESS = "access-token-value-0002"
NEW_REFRESH = "refresh-token-value-0002"
PASSWORD = "manager-password-value"
COMMAND_PATH = "/base/api/v1.0/invoke/open-ability/method/user-commands"
MANAGER_PATH = "/base/api/v1.0/invoke/open-ability/method/manager-commands"
TOKEN_PATH = "/base/api/v1.0/invoke/open-ability/method/oauth2/token"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PROJECT = "p-demo-garden-court"

Handler = Callable[[httpx.Request], httpx.Response]


def load(name: str) -> Any:
    """Reads one fixture file."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def ok(result: Any) -> httpx.Response:
    """A successful envelope."""
    return httpx.Response(200, json={"success": True, "timestamp": 1, "result": result})


def token_answer(access: str = NEW_ACCESS, refresh: str | None = NEW_REFRESH) -> httpx.Response:
    """A token endpoint answer valid for two hours."""
    result: dict[str, Any] = {"access_token": access, "expires_in": 7200, "token_type": "Bearer"}
    if refresh is not None:
        result["refresh_token"] = refresh
    return ok(result)


@dataclass
class Fake:
    """A scripted vendor: answers commands with `command` and tokens with `token`."""

    command: Handler
    token: Handler = field(default=lambda _request: token_answer())
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    now: datetime = NOW

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == TOKEN_PATH:
            return self.token(request)
        return self.command(request)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(self) -> AkubelaClient:
        return AkubelaClient(
            base_url=BASE,
            client_id="concierge",
            client_secret=SecretStr(CLIENT_SECRET),
            transport=httpx.MockTransport(self.handle),
            retry=RetryPolicy(retries=2, base_delay=0.01, max_delay=5.0),
            sleep=self.sleep,
            clock=lambda: self.now,
        )

    def commands(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path != TOKEN_PATH]

    def token_forms(self) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(r.content.decode()).items()}
            for r in self.requests
            if r.url.path == TOKEN_PATH
        ]


def tokens(expires_in: float = 3600, refresh: str | None = REFRESH) -> TokenSet:
    """A resident's tokens as the bot stored them."""
    return TokenSet(
        access_token=SecretStr(ACCESS),
        refresh_token=SecretStr(refresh) if refresh else None,
        expires_at=NOW + timedelta(seconds=expires_in),
    )


def holder(client: AkubelaClient, **kwargs: Any) -> AkubelaTokens:
    """A resident's token holder with fresh tokens."""
    return client.user_tokens(tokens(**kwargs))


# ---- every command, driven by its doc example ------------------------------------------------

Call = Callable[[AkubelaClient, AkubelaTokens, dict[str, Any], str], Awaitable[Any]]

CALLS: dict[str, Call] = {
    "get_maintenance_list": lambda c, a, p, _i: c.get_maintenance_list(a, p["residence_id"]),
    "get_maintenance_info": lambda c, a, p, _i: c.get_maintenance_info(
        a, p["residence_id"], p["maintenance_id"]
    ),
    "create_maintenance_info": lambda c, a, p, i: c.create_maintenance_info(
        a,
        p["residence_id"],
        start_time=parse_vendor_datetime(p["start_time"]),
        finish_time=parse_vendor_datetime(p["finish_time"]),
        description=p["description"],
        contact=p["contact"],
        filename=p["filename"],
        command_id=i,
    ),
    "delete_maintenance_info": lambda c, a, p, i: c.delete_maintenance_info(
        a, p["residence_id"], p["maintenance_id"], command_id=i
    ),
    "batch_delete_maintenance_info": lambda c, a, p, i: c.batch_delete_maintenance_info(
        a, p["residence_id"], [m["maintenance_id"] for m in p["maintenances"]], command_id=i
    ),
    "get_booking_list": lambda c, a, p, _i: c.get_booking_list(a, p["residence_id"]),
    "get_booking_info": lambda c, a, p, _i: c.get_booking_info(
        a, p["residence_id"], p["booking_id"]
    ),
    "get_booking_amenity_list": lambda c, a, p, _i: c.get_booking_amenity_list(
        a, p["residence_id"]
    ),
    "get_booking_time_list": lambda c, a, p, _i: c.get_booking_time_list(
        a, p["residence_id"], p["amenity_id"], date.fromisoformat(p["date"])
    ),
    "create_booking_info": lambda c, a, p, i: c.create_booking_info(
        a,
        p["residence_id"],
        amenity_id=p["amenity_id"],
        start_time=parse_vendor_datetime(p["start_time"]),
        duration=p["duration"],
        command_id=i,
    ),
    "create_code_booking_info": lambda c, a, p, i: c.create_code_booking_info(
        a, p["residence_id"], p["booking_code"], command_id=i
    ),
    "delete_booking_info": lambda c, a, p, i: c.delete_booking_info(
        a, p["residence_id"], p["booking_id"], command_id=i
    ),
    "batch_delete_booking_info": lambda c, a, p, i: c.batch_delete_booking_info(
        a, p["residence_id"], [b["booking_id"] for b in p["bookings"]], command_id=i
    ),
}
WRITES = {name for name in CALLS if name.startswith(("create", "delete", "batch"))}


def check_result(command: str, value: Any) -> None:
    """What each command returns for its doc example."""
    if command in {"get_maintenance_list", "get_booking_list", "get_booking_amenity_list"}:
        assert len(value) == 1
    if command == "get_maintenance_list":
        assert value[0].maintenance_id == "m31adc223cc4b3bedb6bd4742dedcfa52"
        assert value[0].state == "in progress"
    elif command == "get_maintenance_info":
        # The doc's info result has no id: it comes from the request.
        assert value.maintenance_id == "m31adc223cc4b3bedb6bd4742dedcfa52"
        assert value.finish_time == datetime(2024, 1, 17, 13, 32, 45, tzinfo=UTC)
    elif command == "create_maintenance_info":
        assert value == "m8b5a73f8dd84abaa94dcs248be49b0d1"
    elif command == "get_booking_list":
        assert value[0].booking_id == "bfa332e258aae1badbb27d31128f442d1"
        assert value[0].is_expired is True
    elif command == "get_booking_info":
        assert value.booking_id == "b31adc223cc4b3bedb6bd4742dedcfa52"
        assert value.pin_code == "123456"
    elif command == "get_booking_amenity_list":
        assert value[0].amenity_name == "Gym"
    elif command == "get_booking_time_list":
        assert len(value.disallowed_booking_time) == 2
    elif command in {"create_booking_info", "create_code_booking_info"}:
        assert value == "b8b5a73f8dd84abaa94dcs248be49b0d1"
    else:
        assert value is None


@pytest.mark.parametrize("command", sorted(CALLS))
async def test_command_sends_doc_request_and_reads_doc_response(command: str) -> None:
    request_doc = load(f"{command}.request.json")
    response_doc = load(f"{command}.response.json")
    fake = Fake(command=lambda _r: httpx.Response(200, json=response_doc))
    async with fake.client() as client:
        value = await CALLS[command](client, holder(client), request_doc["param"], "cmd-0001")
    check_result(command, value)
    (sent,) = fake.requests
    assert sent.url.path == COMMAND_PATH
    assert sent.headers["Authorization"] == f"Bearer {ACCESS}"
    # Both headers the documents mark required, exactly as they show them.
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    body = json.loads(sent.content)
    assert body["command"] == request_doc["command"]
    assert body["param"] == request_doc["param"]
    if command in WRITES:
        # The outbox resends a write under its first id.
        assert body["id"] == "cmd-0001"
    else:
        assert len(body["id"]) == 32
        int(body["id"], 16)


async def test_every_call_gets_a_fresh_command_id() -> None:
    fake = Fake(command=lambda _r: ok([]))
    async with fake.client() as client:
        auth = holder(client)
        await client.get_maintenance_list(auth, "r1")
        await client.get_maintenance_list(auth, "r1")
        await client.create_code_booking_info(auth, "r1", "code")
    ids = [body["id"] for body in fake.commands()]
    assert len(set(ids)) == 3
    assert all(len(i) == 32 for i in ids)


async def test_family_list_and_account_info() -> None:
    answers = {
        "get_family_list": load("designed/get_family_list.response.json"),
        "get_account_info": load("designed/get_account_info.response.json"),
    }
    fake = Fake(
        command=lambda r: httpx.Response(200, json=answers[json.loads(r.content)["command"]])
    )
    async with fake.client() as client:
        auth = holder(client)
        families = await client.get_family_list(auth)
        account = await client.get_account_info(auth)
    assert families[0].residence_id == "r31adc223cc4b3bedb6bd4742dedcfa52"
    assert families[0].project_id == "p-demo-garden-court"
    assert account.name == "Alice Chen"
    assert [b["param"] for b in fake.commands()] == [{}, {}]


# ---- the docs' inconsistencies ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"success": True, "timestamp": 1, "result": {}},
        {"success": True, "timestamp": 1},
        {"success": True, "timestamp": 1, "result": None},
        {"success": True, "timestamp": 1, "result": "ok"},
    ],
    ids=["empty", "absent", "null", "bare"],
)
@pytest.mark.parametrize(
    "command", ["create_maintenance_info", "create_booking_info", "create_code_booking_info"]
)
async def test_create_without_id_is_a_success_without_id(
    command: str, answer: dict[str, Any]
) -> None:
    fake = Fake(command=lambda _r: httpx.Response(200, json=answer))
    async with fake.client() as client:
        param = load(f"{command}.request.json")["param"]
        assert await CALLS[command](client, holder(client), param, "c1") is None


async def test_info_keeps_an_id_the_vendor_does_send_and_unknown_states() -> None:
    fake = Fake(command=lambda _r: ok({"booking_id": "b-from-vendor", "state": "waitlisted"}))
    async with fake.client() as client:
        booking = await client.get_booking_info(holder(client), "r1", "b-asked")
    assert booking.booking_id == "b-from-vendor"
    assert booking.state == "waitlisted"


async def test_a_result_of_the_wrong_shape_is_unavailable_not_a_crash() -> None:
    fake = Fake(command=lambda _r: ok({"not": "a list"}))
    async with fake.client() as client:
        with pytest.raises(Unavailable):
            await client.get_booking_list(holder(client), "r1")


# ---- failures -------------------------------------------------------------------------------


def failure(status: int = 200, **body: Any) -> Handler:
    """A handler that always fails the same way."""
    envelope = {"success": False, "timestamp": 1, **body}
    return lambda _r: httpx.Response(status, json=envelope)


FAILURES: dict[str, tuple[Handler, type[ApiError]]] = {
    "refused": (
        failure(code="invalid_param", message="start_time is in the past"),
        InvalidRequest,
    ),
    "refused-400": (
        failure(400, code="missing_param", message="residence_id missing"),
        InvalidRequest,
    ),
    "not-found": (failure(code="not_found", message="booking does not exist"), NotFound),
    "not-found-404": (failure(404, message="no such record"), NotFound),
    "auth-401": (failure(401, code="invalid_token", message="access token expired"), AuthError),
    "auth-in-200": (failure(code="token_expired", message="token has expired"), AuthError),
    "rate-limited": (
        lambda _r: httpx.Response(429, json={"success": False}, headers={"Retry-After": "2"}),
        RateLimited,
    ),
    "server-error": (lambda _r: httpx.Response(503, text="<html>down</html>"), Unavailable),
    "garbled": (lambda _r: httpx.Response(200, text="{not json"), Unavailable),
    "success-missing": (lambda _r: httpx.Response(200, json={"result": {}}), InvalidRequest),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
@pytest.mark.parametrize("command", sorted(CALLS))
async def test_command_failure_classes(command: str, kind: str) -> None:
    handler, expected = FAILURES[kind]
    # A refused refresh token: the resident has to link the account again.
    fake = Fake(command=handler, token=failure(400, error="invalid_grant"))
    async with fake.client() as client:
        with pytest.raises(expected) as caught:
            await CALLS[command](
                client, holder(client), load(f"{command}.request.json")["param"], "c"
            )
    assert caught.value.vendor == "akubela"
    sent = len(fake.commands())
    if expected in (Unavailable, RateLimited):
        # Reads are retried twice; a write is sent exactly once.
        assert sent == (1 if command in WRITES else 3)
    elif expected is AuthError:
        # One refresh attempt (refused), no blind resend.
        assert sent == 1
        assert [f["grant_type"] for f in fake.token_forms()] == ["refresh_token"]
    else:
        assert sent == 1
    if isinstance(caught.value, Unavailable):
        assert caught.value.outcome_unknown


@pytest.mark.parametrize("kind", ["refused", "not-found", "auth-401", "server-error", "garbled"])
async def test_account_and_manager_calls_fail_the_same_way(kind: str) -> None:
    handler, expected = FAILURES[kind]
    fake = Fake(command=handler, token=failure(400, error="invalid_grant"))
    async with fake.client() as client:
        auth = holder(client)
        with pytest.raises(expected):
            await client.get_family_list(auth)
        with pytest.raises(expected):
            await client.get_account_info(auth)
        with pytest.raises(expected):
            await client.get_project_maintenance_page(auth, "p1")


async def test_failure_envelope_carries_code_and_message() -> None:
    fake = Fake(
        command=lambda _r: httpx.Response(200, json=load("designed/failure.response.json"))
    )
    async with fake.client() as client:
        with pytest.raises(NotFound) as caught:
            await client.get_maintenance_info(holder(client), "r1", "m1")
    assert caught.value.code == "maintenance_not_found"
    assert "does not exist" in caught.value.message
    assert caught.value.status == 200


async def test_rate_limit_honours_retry_after() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "3"}, json={"success": False}), ok([])]
    )
    fake = Fake(command=lambda _r: next(answers))
    async with fake.client() as client:
        assert await client.get_booking_list(holder(client), "r1") == []
    assert fake.sleeps == [3.0]


async def test_transport_errors_become_unavailable_and_writes_go_once() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    fake = Fake(command=refuse)
    async with fake.client() as client:
        with pytest.raises(Unavailable) as caught:
            await client.create_code_booking_info(holder(client), "r1", "code")
    assert caught.value.outcome_unknown
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "a", "msg": "b", "error_description": "c", "error": "d"}, "a"),
        ({"msg": "b", "error_description": "c", "error": "d"}, "b"),
        ({"error_description": "c", "error": "d"}, "c"),
        ({"error": "d", "result": {"message": "e"}}, "d"),
        ({"result": {"message": "e", "msg": "f"}}, "e"),
        ({"result": {"msg": "f"}}, "f"),
        ({"message": "  ", "result": {"msg": "f"}}, "f"),
        ({}, None),
        ([1, 2], None),
    ],
)
def test_failure_message_precedence(body: Any, expected: str | None) -> None:
    assert failure_message(body) == expected


async def test_message_from_result_reaches_the_exception() -> None:
    fake = Fake(command=failure(result={"msg": "amenity closed on that day"}))
    async with fake.client() as client:
        with pytest.raises(InvalidRequest, match="amenity closed"):
            await client.get_booking_amenity_list(holder(client), "r1")


# ---- the undocumented failure page, in every shape the sandbox can give it ------------------

STYLES = list(ErrorStyle)


def styled(style: ErrorStyle, code: str, message: str, *, malformed: bool = False) -> Handler:
    """A handler failing exactly as the sandbox does in `style`."""
    answer = render(Failure(code, message, malformed=malformed), style, 1)
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    body = bytes(answer.body)
    return lambda _r: httpx.Response(answer.status_code, headers=headers, content=body)


STYLED: dict[str, tuple[tuple[str, str, bool], type[ApiError]]] = {
    "expired-token": (("token_expired", "access token expired", False), AuthError),
    "wrong-scope": (("insufficient_scope", "these commands need scope user", False), AuthError),
    "not-found": (("booking_not_found", "booking b1 not found", False), NotFound),
    "refused": (("slot_taken", "that time is already booked or closed", False), InvalidRequest),
    "malformed": (("missing_param", "param residence_id is required", True), InvalidRequest),
    "bad-header": (("not_acceptable", "Accept must be application/json", False), InvalidRequest),
}


@pytest.mark.parametrize("kind", sorted(STYLED))
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("command", sorted(CALLS))
async def test_failure_classes_in_every_error_style(
    command: str, style: ErrorStyle, kind: str
) -> None:
    (code, message, malformed), expected = STYLED[kind]
    refused_grant = styled(style, "invalid_grant", "refresh token is invalid or expired")
    fake = Fake(command=styled(style, code, message, malformed=malformed), token=refused_grant)
    async with fake.client() as client:
        with pytest.raises(expected) as caught:
            await CALLS[command](
                client, holder(client), load(f"{command}.request.json")["param"], "c"
            )
    assert type(caught.value) is expected
    if kind == "expired-token":
        # The token was refused: one renewal is tried (here refused too), nothing resent.
        assert [f["grant_type"] for f in fake.token_forms()] == ["refresh_token"]
    else:
        # A wrong scope is not cured by a new token: the single-use refresh token is kept.
        assert fake.token_forms() == []
    assert len(fake.commands()) == 1


@pytest.mark.parametrize("style", STYLES)
async def test_a_refused_token_renews_and_retries_once_in_every_error_style(
    style: ErrorStyle,
) -> None:
    expired = styled(style, "token_expired", "access token expired")

    def command(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {ACCESS}":
            return expired(request)
        if json.loads(request.content)["command"] == "get_booking_list":
            return ok([])
        return ok({"booking_id": "b9"})

    fake = Fake(command=command)
    async with fake.client() as client:
        auth = client.user_tokens(tokens())
        booking_id = await client.create_booking_info(
            auth, "r1", amenity_id="a1", start_time=NOW, duration=60, command_id="same-id"
        )
        listed = await client.get_booking_list(auth, "r1")
    assert booking_id == "b9"
    assert listed == []
    assert [f["grant_type"] for f in fake.token_forms()] == ["refresh_token"]
    assert [b["id"] for b in fake.commands()[:2]] == ["same-id", "same-id"]


@pytest.mark.parametrize("style", STYLES)
async def test_a_token_still_refused_after_renewal_is_raised_in_every_error_style(
    style: ErrorStyle,
) -> None:
    fake = Fake(command=styled(style, "invalid_token", "invalid access token"))
    async with fake.client() as client:
        with pytest.raises(AuthError):
            await client.get_booking_list(holder(client), "r1")
    assert len(fake.commands()) == 2
    assert len(fake.token_forms()) == 1


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("invalid_grant", AuthError),
        ("invalid_client", AuthError),
        ("unsupported_grant_type", InvalidRequest),
        ("invalid_scope", InvalidRequest),
    ],
)
async def test_token_endpoint_failures_in_every_error_style(
    style: ErrorStyle, code: str, expected: type[ApiError]
) -> None:
    fake = Fake(command=failure(), token=styled(style, code, f"{code} refused"))
    async with fake.client() as client:
        with pytest.raises(expected):
            await client.exchange_code("code-1", redirect_uri="https://bot.test/cb")


@pytest.mark.parametrize("style", STYLES)
async def test_manager_logs_in_again_when_refresh_is_refused_in_every_error_style(
    style: ErrorStyle,
) -> None:
    expired = styled(style, "token_expired", "access token expired")
    refused = styled(style, "invalid_grant", "refresh token is invalid or expired")

    def token(request: httpx.Request) -> httpx.Response:
        if parse_qs(request.content.decode())["grant_type"] == ["refresh_token"]:
            return refused(request)
        return token_answer(access=f"manager-at-{len(fake.token_forms())}")

    def command(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer manager-at-1":
            return expired(request)
        return ok({"total": 0, "list": []})

    fake = Fake(command=command, token=token)
    async with fake.client() as client:
        auth = client.manager_tokens("manager@x", SecretStr(PASSWORD))
        page = await client.get_project_maintenance_page(auth, PROJECT)
    assert page.total == 0
    assert [f["grant_type"] for f in fake.token_forms()] == [
        "password",
        "refresh_token",
        "password",
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (40100, AuthError),
        ("401", AuthError),
        (4031002, AuthError),
        (40400, NotFound),
        (42900, RateLimited),
        (50000, Unavailable),
        (40000, InvalidRequest),
        (10003, InvalidRequest),
        ("E1", InvalidRequest),
    ],
)
async def test_numeric_codes_shaped_like_http_statuses(
    code: int | str, expected: type[ApiError]
) -> None:
    fake = Fake(command=failure(code=code, message="操作失败"))
    async with fake.client() as client:
        with pytest.raises(expected) as caught:
            await client.get_booking_list(holder(client), "r1")
    assert caught.value.status == 200
    assert caught.value.code == code


# ---- tokens ---------------------------------------------------------------------------------


def test_login_url() -> None:
    client = Fake(command=failure()).client()
    url = urlsplit(client.login_url(redirect_uri="https://bot.test/cb", state="s-1"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        f"{BASE}/api/v1.0/invoke/open-ability/method/oauth2/auth"
    )
    assert {k: v[0] for k, v in parse_qs(url.query).items()} == {
        "response_type": "code",
        "client_id": "concierge",
        "redirect_uri": "https://bot.test/cb",
        "scope": "user",
        "state": "s-1",
    }
    assert CLIENT_SECRET not in url.geturl()


async def test_exchange_code_posts_a_form_and_dates_expiry() -> None:
    fake = Fake(command=failure())
    async with fake.client() as client:
        got = await client.exchange_code("the-auth-code", redirect_uri="https://bot.test/cb")
    assert got.access_token.get_secret_value() == NEW_ACCESS
    assert got.refresh_token is not None
    assert got.refresh_token.get_secret_value() == NEW_REFRESH
    assert got.expires_at == NOW + timedelta(hours=2)
    (sent,) = fake.requests
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert fake.token_forms() == [
        {
            "grant_type": "authorization_code",
            "code": "the-auth-code",
            "redirect_uri": "https://bot.test/cb",
            "client_id": "concierge",
            "client_secret": CLIENT_SECRET,
        }
    ]


async def test_password_and_refresh_grants() -> None:
    fake = Fake(command=failure())
    async with fake.client() as client:
        await client.password_login("manager@x", SecretStr(PASSWORD))
        await client.refresh(SecretStr(REFRESH))
    password_form, refresh_form = fake.token_forms()
    assert password_form == {
        "grant_type": "password",
        "username": "manager@x",
        "password": PASSWORD,
        "scope": "manager",
        "client_id": "concierge",
        "client_secret": CLIENT_SECRET,
    }
    assert refresh_form["grant_type"] == "refresh_token"
    assert refresh_form["refresh_token"] == REFRESH


async def test_plain_oauth_token_answer_is_accepted() -> None:
    fake = Fake(
        command=failure(),
        token=lambda _r: httpx.Response(200, json={"access_token": "plain-at", "expires_in": 60}),
    )
    async with fake.client() as client:
        got = await client.refresh(SecretStr(REFRESH))
    assert got.access_token.get_secret_value() == "plain-at"
    assert got.refresh_token is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (failure(400, error="invalid_grant", error_description="code already used"), AuthError),
        (failure(401, error="invalid_client"), AuthError),
        (failure(400, error="unsupported_grant_type"), InvalidRequest),
        (lambda _r: ok({"token_type": "Bearer"}), Unavailable),
        (lambda _r: httpx.Response(200, text="<html>"), Unavailable),
    ],
)
async def test_token_failures(answer: Handler, expected: type[ApiError]) -> None:
    fake = Fake(command=failure(), token=answer)
    async with fake.client() as client:
        with pytest.raises(expected):
            await client.exchange_code("code-1", redirect_uri="https://bot.test/cb")


async def test_token_calls_are_retried_on_server_errors() -> None:
    answers = iter([httpx.Response(502), token_answer()])
    fake = Fake(command=failure(), token=lambda _r: next(answers))
    async with fake.client() as client:
        got = await client.refresh(SecretStr(REFRESH))
    assert got.access_token.get_secret_value() == NEW_ACCESS
    assert len(fake.sleeps) == 1


async def test_refresh_shortly_before_expiry_and_store_new_tokens() -> None:
    stored: list[TokenSet] = []

    async def on_refresh(new: TokenSet) -> None:
        stored.append(new)

    fake = Fake(command=lambda _r: ok([]))
    async with fake.client() as client:
        auth = client.user_tokens(tokens(expires_in=30), on_refresh=on_refresh)
        await client.get_maintenance_list(auth, "r1")
        await client.get_maintenance_list(auth, "r1")
    assert [f["grant_type"] for f in fake.token_forms()] == ["refresh_token"]
    assert fake.token_forms()[0]["refresh_token"] == REFRESH
    assert [r.headers["Authorization"] for r in fake.requests[1:]] == [f"Bearer {NEW_ACCESS}"] * 2
    assert len(stored) == 1
    assert auth.tokens is stored[0]


async def test_no_refresh_while_token_is_fresh() -> None:
    fake = Fake(command=lambda _r: ok([]))
    async with fake.client() as client:
        await client.get_maintenance_list(holder(client, expires_in=120), "r1")
    assert fake.token_forms() == []


@pytest.mark.parametrize("kind", ["auth-401", "auth-in-200"])
async def test_refresh_once_on_auth_failure_then_retry(kind: str) -> None:
    def command(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {ACCESS}":
            return FAILURES[kind][0](request)
        return ok({"booking_id": "b9"})

    stored: list[TokenSet] = []

    async def on_refresh(new: TokenSet) -> None:
        stored.append(new)

    fake = Fake(command=command)
    async with fake.client() as client:
        auth = client.user_tokens(tokens(), on_refresh=on_refresh)
        booking_id = await client.create_booking_info(
            auth, "r1", amenity_id="a1", start_time=NOW, duration=60, command_id="same-id"
        )
    assert booking_id == "b9"
    assert len(stored) == 1
    # Refused before acting, so the write goes again, under the same id.
    assert [b["id"] for b in fake.commands()] == ["same-id", "same-id"]


async def test_auth_failure_after_refresh_is_raised() -> None:
    fake = Fake(command=FAILURES["auth-401"][0])
    async with fake.client() as client:
        with pytest.raises(AuthError):
            await client.get_booking_list(holder(client), "r1")
    assert len(fake.commands()) == 2
    assert len(fake.token_forms()) == 1


async def test_without_refresh_token_the_account_must_be_linked_again() -> None:
    fake = Fake(command=lambda _r: ok([]))
    async with fake.client() as client:
        auth = holder(client, expires_in=-10, refresh=None)
        with pytest.raises(AuthError, match="linked again"):
            await client.get_booking_list(auth, "r1")
    assert fake.requests == []


def rotating_token_endpoint() -> tuple[Handler, list[str]]:
    """A token endpoint whose refresh tokens work once, as Akubela's do; and what it issued."""
    live = {REFRESH}
    issued: list[str] = []

    def token(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        if form["refresh_token"][0] not in live:
            return failure(400, error="invalid_grant")(request)
        live.remove(form["refresh_token"][0])
        number = len(issued) + 2
        issued.append(f"access-token-value-{number:04d}")
        live.add(f"refresh-token-value-{number:04d}")
        return token_answer(issued[-1], f"refresh-token-value-{number:04d}")

    return token, issued


@pytest.mark.parametrize("expired", ["by-clock", "refused"])
async def test_holders_of_one_account_sharing_a_store_spend_the_refresh_token_once(
    expired: str,
) -> None:
    # What production has: several holders of one account (each bot process has its own), one
    # store of its tokens. Sharing a holder would prove nothing.
    token, issued = rotating_token_endpoint()

    def command(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {ACCESS}":
            return FAILURES["auth-401"][0](request)
        return ok([])

    fake = Fake(command=command, token=token)
    stored = tokens(expires_in=-1 if expired == "by-clock" else 3600)
    store = MemoryTokenStore(stored)
    async with fake.client() as client:
        holders = [client.user_tokens(stored, store=store) for _ in range(3)]
        await asyncio.gather(*(client.get_booking_list(holders[i % 3], "r1") for i in range(9)))
    assert len(fake.token_forms()) == 1
    assert issued == [NEW_ACCESS]
    assert store.tokens is not None
    assert store.tokens.access_token.get_secret_value() == NEW_ACCESS
    assert all(
        h.tokens is not None and h.tokens.access_token == store.tokens.access_token
        for h in holders
    )
    assert store.lost is None


async def test_a_holder_uses_tokens_another_holder_stored_instead_of_refreshing() -> None:
    token, _issued = rotating_token_endpoint()
    fake = Fake(command=lambda _r: ok([]), token=token)
    stored = tokens(expires_in=-1)
    store = MemoryTokenStore(stored)
    async with fake.client() as client:
        first, second = (client.user_tokens(stored, store=store) for _ in range(2))
        await client.get_booking_list(first, "r1")
        await client.get_booking_list(second, "r1")  # its own copy is stale: reads the store
    assert len(fake.token_forms()) == 1
    assert {r.headers["Authorization"] for r in fake.requests if r.url.path == COMMAND_PATH} == {
        f"Bearer {NEW_ACCESS}"
    }


async def test_concurrent_rejections_of_one_holder_share_one_refresh() -> None:
    def command(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {ACCESS}":
            return FAILURES["auth-401"][0](request)
        return ok([])

    fake = Fake(command=command)
    async with fake.client() as client:
        auth = holder(client)
        await asyncio.gather(*(client.get_booking_list(auth, "r1") for _ in range(4)))
    assert len(fake.token_forms()) == 1


async def test_a_lost_refresh_answer_is_recovered_when_akubela_had_not_acted() -> None:
    # The answer is lost before Akubela spent the refresh token: sending it again works.
    answers: list[httpx.Response | Exception] = [httpx.ReadTimeout("lost"), token_answer()]

    def token(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fake = Fake(command=lambda _r: ok([]), token=token)
    store = MemoryTokenStore(tokens(expires_in=-1))
    async with fake.client() as client:
        await client.get_booking_list(client.user_tokens(tokens(expires_in=-1), store=store), "r1")
    assert [f["refresh_token"] for f in fake.token_forms()] == [REFRESH, REFRESH]
    assert store.lost is None


async def test_a_refresh_answer_lost_after_akubela_rotated_the_token_loses_the_login_once() -> (
    None
):
    token, issued = rotating_token_endpoint()

    def act_then_lose(request: httpx.Request) -> httpx.Response:
        answer = token(request)  # Akubela rotates the token ...
        if len(issued) == 1 and len(fake.token_forms()) == 1:
            raise httpx.ReadTimeout("answer lost")  # ... and that answer never arrives
        return answer

    fake = Fake(command=lambda _r: ok([]), token=act_then_lose)
    store = MemoryTokenStore(tokens(expires_in=-1))
    async with fake.client() as client:
        first, second = (client.user_tokens(tokens(expires_in=-1), store=store) for _ in range(2))
        with pytest.raises(AuthError):
            await client.get_booking_list(first, "r1")
        # The store knows: nobody sends the dead refresh token again.
        with pytest.raises(AuthError, match="linked again"):
            await client.get_booking_list(second, "r1")
    assert issued == [NEW_ACCESS]
    assert len(fake.token_forms()) == 2  # the lost one, and one resend that was refused
    assert isinstance(store.lost, AuthError)
    assert fake.commands() == []


async def test_wrong_client_credentials_do_not_lose_the_residents_login() -> None:
    fake = Fake(command=lambda _r: ok([]), token=failure(401, error="invalid_client"))
    store = MemoryTokenStore(tokens(expires_in=-1))
    async with fake.client() as client:
        with pytest.raises(AuthError):
            await client.get_booking_list(
                client.user_tokens(tokens(expires_in=-1), store=store), "r1"
            )
    assert store.lost is None


async def test_a_renewal_that_fails_says_the_call_never_left() -> None:
    fake = Fake(command=lambda _r: ok({}), token=lambda _r: httpx.Response(503))
    async with fake.client() as client:
        with pytest.raises(Unavailable) as caught:
            await client.create_booking_info(
                holder(client, expires_in=-1), "r1", amenity_id="a1", start_time=NOW, duration=60
            )
    assert fake.commands() == []
    assert not caught.value.outcome_unknown


async def test_refresh_answer_without_refresh_token_keeps_the_old_one() -> None:
    fake = Fake(command=lambda _r: ok([]), token=lambda _r: token_answer(refresh=None))
    async with fake.client() as client:
        auth = holder(client, expires_in=0)
        await client.get_booking_list(auth, "r1")
    assert auth.tokens is not None
    assert auth.tokens.refresh_token is not None
    assert auth.tokens.refresh_token.get_secret_value() == REFRESH


async def test_manager_logs_in_with_password_and_again_when_refresh_is_refused() -> None:
    def token(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        if form["grant_type"] == ["refresh_token"]:
            return failure(400, error="invalid_grant")(request)
        return token_answer(access=f"manager-at-{len(fake.token_forms())}")

    fake = Fake(
        command=lambda _r: ok(
            load("designed/manager_get_maintenance_list.response.json")["result"]
        ),
        token=token,
    )
    async with fake.client() as client:
        auth = client.manager_tokens("manager@x", SecretStr(PASSWORD))
        page = await client.get_project_maintenance_page(auth, PROJECT, page_size=20)
        fake.now += timedelta(hours=3)
        await client.get_project_maintenance_page(auth, "p1", page_size=20)
    assert page.items[0].residence_id == "r31adc223cc4b3bedb6bd4742dedcfa52"
    assert [f["grant_type"] for f in fake.token_forms()] == [
        "password",
        "refresh_token",
        "password",
    ]
    manager_calls = [r for r in fake.requests if r.url.path == MANAGER_PATH]
    assert len(manager_calls) == 2
    assert (
        json.loads(manager_calls[0].content)["param"]
        == load("designed/manager_get_maintenance_list.request.json")["param"]
    )


def test_token_holder_needs_tokens_or_a_login() -> None:
    client = Fake(command=failure()).client()
    with pytest.raises(ValueError, match="tokens or a way to log in"):
        AkubelaTokens(client)


async def test_manager_iterator_walks_every_page() -> None:
    repairs = [
        {"maintenance_id": f"m{i}", "residence_id": "r1", "state": "completed"} for i in range(5)
    ]

    def command(request: httpx.Request) -> httpx.Response:
        param = json.loads(request.content)["param"]
        start = (param["page_index"] - 1) * param["page_size"]
        items = repairs[start : start + param["page_size"]]
        return ok(
            {
                "total": 5,
                "page_index": param["page_index"],
                "page_size": param["page_size"],
                "list": items,
            }
        )

    fake = Fake(command=command)
    async with fake.client() as client:
        auth = holder(client)
        seen = [
            m.maintenance_id
            async for m in client.iter_project_maintenance(auth, "p1", page_size=2)
        ]
    assert seen == [f"m{i}" for i in range(5)]
    assert [b["param"]["page_index"] for b in fake.commands()] == [1, 2, 3]


async def test_manager_iterator_stops_when_total_is_misreported() -> None:
    fake = Fake(command=lambda _r: ok({"total": 999, "list": [{"maintenance_id": "m1"}]}))
    async with fake.client() as client:
        seen = [
            m async for m in client.iter_project_maintenance(holder(client), "p1", page_size=2)
        ]
    assert len(seen) == 1
    assert len(fake.commands()) == 1


# ---- secrets never leak -----------------------------------------------------------------------


async def test_no_secret_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "api", "api.akubela", "api.base"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[BaseException] = []

    def command(request: httpx.Request) -> httpx.Response:
        # Echo the token back, as a careless vendor might.
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"success": False, "message": f"bad token {token}"})

    fake = Fake(
        command=command,
        token=lambda r: httpx.Response(
            400, json={"error": "invalid_grant", "error_description": r.content.decode()}
        ),
    )
    async with fake.client() as client:
        auth = client.manager_tokens("manager@x", SecretStr(PASSWORD), tokens=tokens())
        for call in (
            lambda: client.get_booking_list(auth, "r1"),
            lambda: client.exchange_code("secret-auth-code", redirect_uri="https://b/cb"),
            lambda: client.refresh(SecretStr(REFRESH)),
        ):
            try:
                await call()
            except ApiError as exc:
                errors.append(exc)
        texts = [repr(client), repr(auth), repr(auth.tokens)]
    assert len(errors) == 3
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [record.getMessage() for record in caplog.records]
    everything = "\n".join(texts)
    assert "HTTP Request" in caplog.text  # httpx's own log lines were captured
    for secret in (ACCESS, REFRESH, CLIENT_SECRET, PASSWORD, "secret-auth-code"):
        assert secret not in everything
        assert secret not in caplog.text


def _manager_repairs(count: int) -> list[dict[str, Any]]:
    return [
        {"maintenance_id": f"m{i}", "residence_id": "r1", "state": "completed"}
        for i in range(count)
    ]


async def test_the_manager_list_may_be_a_bare_array_of_the_page_asked_for() -> None:
    repairs = _manager_repairs(5)

    def command(request: httpx.Request) -> httpx.Response:
        param = json.loads(request.content)["param"]
        start = (param["page_index"] - 1) * param["page_size"]
        return ok(repairs[start : start + param["page_size"]])  # no page object around it

    fake = Fake(command=command)
    async with fake.client() as client:
        page = await client.get_project_maintenance_page(holder(client), "p1", page_size=2)
        seen = [
            m.maintenance_id
            async for m in client.iter_project_maintenance(holder(client), "p1", page_size=2)
        ]
    assert [m.maintenance_id for m in page.items] == ["m0", "m1"]
    assert page.total is None
    assert seen == [f"m{i}" for i in range(5)]
    assert [b["param"]["page_index"] for b in fake.commands()[1:]] == [1, 2, 3]


@pytest.mark.parametrize("count", [3, 4, 7])
async def test_a_bare_array_that_ignores_paging_is_read_once(count: int) -> None:
    # Each page asked for answers the whole list: every repair once, and the walk ends.
    fake = Fake(command=lambda _r: ok(_manager_repairs(count)))
    async with fake.client() as client:
        seen = [
            m.maintenance_id
            async for m in client.iter_project_maintenance(holder(client), "p1", page_size=4)
        ]
    assert seen == [f"m{i}" for i in range(count)]
    assert len(fake.commands()) <= 2


@pytest.mark.parametrize("result", [None, [], {"total": 0, "list": None}])
async def test_an_empty_manager_list_in_any_shape_is_empty(result: Any) -> None:
    fake = Fake(command=lambda _r: ok(result))
    async with fake.client() as client:
        seen = [m async for m in client.iter_project_maintenance(holder(client), "p1")]
    assert seen == []
