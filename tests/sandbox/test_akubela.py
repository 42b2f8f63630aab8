"""The real AkubelaClient against the Akubela sandbox, in-process and over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from api.akubela import AkubelaClient, AkubelaTokens
from api.akubela_models import BookingState, MaintenanceState, TokenSet
from api.base import RetryPolicy
from api.errors import ApiError, AuthError, InvalidRequest, NotFound
from bot.settings import Settings
from sandbox.akubela import BBQ, GYM, MEETING_ROOM, AkubelaSandbox
from sandbox.akubela_errors import ErrorStyle
from sandbox.app import create_app, default_vendors
from sandbox.core import Clock

METHOD = "/akubela/api/v1.0/invoke/open-ability/method"
REDIRECT = "https://bot.example/akubela/callback"
ALICE_HOME, ALICE_STUDIO = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b601", "r3f9a1c2d4e5b6a7980c1d2e3f4a5b602"
BOB_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"
CAROL_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b604"
ALICE_WAITING_REPAIR = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01"
BOB_COMPLETED_REPAIR = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c03"
ALICE_GYM_BOOKING = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"
BOB_PENDING_ROOM = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02"
PASSWORDS = {
    "alice@demo.community": "alice-demo-pass",
    "bob@demo.community": "bob-demo-pass",
    "carol@demo.community": "carol-demo-pass",
}


async def no_sleep(_seconds: float) -> None:
    """Retries in tests wait for nothing."""


@pytest.fixture
def sandbox(sandbox_app: Starlette) -> AkubelaSandbox:
    """The Akubela part of the running sandbox."""
    vendor = sandbox_app.state.control.vendors["akubela"]
    assert isinstance(vendor, AkubelaSandbox)
    return vendor


def make_client(
    settings: Settings, clock: Clock, base: str, transport: httpx.AsyncBaseTransport | None
) -> AkubelaClient:
    """The production client, pointed at the sandbox."""
    return AkubelaClient(
        base_url=f"{base}/akubela",
        client_id=settings.akubela_client_id,
        client_secret=settings.akubela_client_secret,
        transport=transport,
        retry=RetryPolicy(retries=0),
        sleep=no_sleep,
        clock=clock.now,
    )


@pytest.fixture
async def client(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> AsyncIterator[AkubelaClient]:
    """The client over ASGITransport."""
    async with make_client(sandbox_settings, clock, "http://sandbox.test", asgi_transport) as c:
        yield c


@pytest.fixture
async def raw(asgi_transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the sandbox, for what the client never sends."""
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox.test") as c:
        yield c


async def login(client: AkubelaClient, email: str = "alice@demo.community") -> AkubelaTokens:
    """A resident's tokens through the password grant."""
    tokens = await client.password_login(email, SecretStr(PASSWORDS[email]), scope="user")
    return client.user_tokens(tokens)


async def manager(client: AkubelaClient, settings: Settings) -> AkubelaTokens:
    """The property manager's tokens."""
    return client.manager_tokens(
        settings.akubela_manager_username, settings.akubela_manager_password
    )


def local_day(settings: Settings, clock: Clock, days: int) -> date:
    """A community date relative to today."""
    return clock.now().astimezone(settings.zone).date() + timedelta(days=days)


def local(settings: Settings, day: date, hour: int, minute: int = 0) -> datetime:
    """A community-local wall time as aware UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=settings.zone).astimezone(UTC)


def weekday_ahead(settings: Settings, clock: Clock, at_least: int) -> date:
    """The first Monday-to-Friday date at least `at_least` days ahead."""
    day = local_day(settings, clock, at_least)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


# ---- OAuth2 ---------------------------------------------------------------------------------


async def code_flow(
    http: httpx.AsyncClient, client: AkubelaClient, email: str, password: str, **form: str
) -> httpx.Response:
    """Opens the login page as a browser would and submits the form."""
    url = client.login_url(redirect_uri=REDIRECT, state="st-42")
    page = await http.get(url)
    assert page.status_code == 200
    assert "电子邮箱" in page.text
    assert "E-mail" in page.text
    fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return await http.post(
        urlsplit(url).path, data={**fields, "email": email, "password": password, **form}
    )


async def test_code_flow_end_to_end(client: AkubelaClient, raw: httpx.AsyncClient) -> None:
    answer = await code_flow(raw, client, "alice@demo.community", "alice-demo-pass")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "st-42"
    tokens = await client.exchange_code(query["code"], redirect_uri=REDIRECT)
    assert tokens.scope == "user"
    account = await client.get_account_info(client.user_tokens(tokens))
    assert account.email == "alice@demo.community"
    # Codes are single use.
    with pytest.raises(AuthError):
        await client.exchange_code(query["code"], redirect_uri=REDIRECT)


async def test_login_page_refuses_wrong_password_and_bad_requests(
    client: AkubelaClient, raw: httpx.AsyncClient
) -> None:
    answer = await code_flow(raw, client, "alice@demo.community", "wrong")
    assert answer.status_code == 401
    assert "密码错误" in answer.text
    assert 'value="alice@demo.community"' in answer.text
    bad_client = await raw.get(f"{METHOD}/oauth2/auth", params={"client_id": "nope"})
    assert bad_client.status_code == 400
    bad_redirect = await raw.get(
        f"{METHOD}/oauth2/auth",
        params={"client_id": "concierge-demo", "redirect_uri": "javascript:alert(1)"},
    )
    assert bad_redirect.status_code == 400
    garbage = await raw.post(
        f"{METHOD}/oauth2/auth",
        content=b"\xff\x00",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert garbage.status_code == 400


async def test_code_is_bound_to_redirect_uri_and_expires(
    client: AkubelaClient, raw: httpx.AsyncClient, clock: Clock
) -> None:
    codes = []
    for _ in range(2):
        answer = await code_flow(raw, client, "bob@demo.community", "bob-demo-pass")
        codes.append(parse_qs(urlsplit(answer.headers["location"]).query)["code"][0])
    with pytest.raises(AuthError):
        await client.exchange_code(codes[0], redirect_uri="https://elsewhere.example/cb")
    clock.advance(6 * 60)
    with pytest.raises(AuthError):
        await client.exchange_code(codes[1], redirect_uri=REDIRECT)


async def test_refresh_tokens_are_single_use(client: AkubelaClient) -> None:
    first = await client.password_login(
        "alice@demo.community", SecretStr("alice-demo-pass"), scope="user"
    )
    assert first.refresh_token is not None
    second = await client.refresh(first.refresh_token)
    with pytest.raises(AuthError):
        await client.refresh(first.refresh_token)
    families = await client.get_family_list(client.user_tokens(second))
    assert {f.residence_id for f in families} == {ALICE_HOME, ALICE_STUDIO}


async def test_access_tokens_expire_by_the_clock(
    client: AkubelaClient, raw: httpx.AsyncClient, clock: Clock
) -> None:
    tokens = await client.password_login(
        "bob@demo.community", SecretStr("bob-demo-pass"), scope="user"
    )
    assert tokens.expires_at - clock.now() <= timedelta(hours=2)
    clock.advance(2 * 3600 + 1)
    answer = await raw.post(
        f"{METHOD}/user-commands",
        headers={"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"},
        json={"command": "get_family_list", "id": "x1", "param": {}},
    )
    assert answer.status_code == 401
    assert answer.json()["success"] is False
    assert answer.json()["code"] == "token_expired"
    # The holder sees the expiry on the same clock and refreshes before calling.
    stored: list[TokenSet] = []

    async def keep(new: TokenSet) -> None:
        stored.append(new)

    auth = client.user_tokens(tokens, on_refresh=keep)
    assert [f.residence_id for f in await client.get_family_list(auth)] == [BOB_HOME]
    assert len(stored) == 1


async def test_forced_expiry_is_recovered_by_one_refresh(
    client: AkubelaClient, sandbox: AkubelaSandbox
) -> None:
    auth = await login(client)
    sandbox.expire_tokens()
    before = auth.tokens
    assert await client.get_booking_list(auth, ALICE_HOME)
    assert auth.tokens is not before


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"grant_type": "password", "username": "x", "password": "y"}, AuthError),
        ({"grant_type": "magic"}, InvalidRequest),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, AuthError),
        ({"grant_type": "authorization_code", "code": "nope"}, AuthError),
    ],
)
async def test_token_endpoint_refusals(
    client: AkubelaClient, form: dict[str, str], expected: type[ApiError]
) -> None:
    with pytest.raises(expected):
        await client._token(form)


async def test_wrong_client_secret_is_refused(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> None:
    bad = sandbox_settings.model_copy(update={"akubela_client_secret": SecretStr("wrong-one")})
    async with make_client(bad, clock, "http://sandbox.test", asgi_transport) as client:
        with pytest.raises(AuthError, match="client authentication failed"):
            await client.password_login("bob@demo.community", SecretStr("bob-demo-pass"))


async def test_scopes_keep_residents_and_managers_apart(
    client: AkubelaClient, sandbox_settings: Settings
) -> None:
    with pytest.raises(InvalidRequest):
        await client.password_login(
            "bob@demo.community", SecretStr("bob-demo-pass"), scope="manager"
        )
    bob = await login(client, "bob@demo.community")
    with pytest.raises(AuthError):
        await client.get_project_maintenance_page(bob, sandbox_settings.akubela_project_id)
    boss = await manager(client, sandbox_settings)
    with pytest.raises(AuthError):
        await client.get_maintenance_list(boss, BOB_HOME)


# ---- malformed calls never crash the sandbox -------------------------------------------------


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def command(name: str, **param: Any) -> dict[str, Any]:
    """A command body as the documents show it."""
    return {"command": name, "id": "c45e846ca23ab42c9ae469d988ae32a96", "param": param}


async def test_malformed_calls_get_the_failure_envelope(
    client: AkubelaClient, raw: httpx.AsyncClient
) -> None:
    tokens = await client.password_login(
        "bob@demo.community", SecretStr("bob-demo-pass"), scope="user"
    )
    bearer = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
    ok = bearer | JSON_HEADERS
    start = "2030-01-01 01:00:00"
    booking = {"residence_id": BOB_HOME, "amenity_id": GYM, "start_time": start}
    cases: list[tuple[dict[str, str], Any, int, str]] = [
        (JSON_HEADERS, command("get_family_list"), 401, "invalid_token"),
        ({"Authorization": "Bearer nope"} | JSON_HEADERS, command("x"), 401, "invalid_token"),
        (ok, b"{not json", 400, "invalid_request"),
        (ok, [1, 2], 400, "invalid_request"),
        (ok, {"command": "get_family_list", "param": {}}, 400, "invalid_request"),
        (ok, {"command": "get_family_list", "id": "1", "param": []}, 400, "invalid_request"),
        (ok, command("fly_to_moon"), 400, "unknown_command"),
        (ok, command("get_booking_list"), 400, "missing_param"),
        # What the documents do not show is refused as the vendor would refuse it.
        (
            bearer | {"Accept": "application/json"},
            json.dumps(command("get_family_list")).encode(),
            415,
            "unsupported_media_type",
        ),
        (bearer | {"Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        (
            bearer | {"Content-Type": "application/json"},
            command("get_family_list"),
            406,
            "not_acceptable",
        ),
        (ok | {"Accept": "text/html"}, command("get_family_list"), 406, "not_acceptable"),
        (ok | {"Accept": "*/*"}, command("get_family_list"), 406, "not_acceptable"),
        (ok, {"command": "get_family_list", "id": "1"}, 400, "missing_param"),
        (ok, command("get_booking_list", residence_id=3), 400, "invalid_param"),
        (ok, {"command": "get_family_list", "id": 1, "param": {}}, 400, "invalid_request"),
        (
            ok,
            command(
                "get_booking_time_list", residence_id=BOB_HOME, amenity_id=GYM, date="tomorrow"
            ),
            400,
            "invalid_param",
        ),
        (
            ok,
            command(
                "get_booking_time_list", residence_id=BOB_HOME, amenity_id=GYM, date="20300102"
            ),
            400,
            "invalid_param",
        ),
        (ok, command("create_booking_info", **booking, duration="60"), 400, "invalid_param"),
        *(
            (
                ok,
                command("create_booking_info", **(booking | {"start_time": when}), duration=60),
                400,
                "invalid_param",
            )
            for when in ("2030-01-01T01:00:00", "2030-01-01 09:00:00+08:00", "2030-01-01 01:00")
        ),
        (
            ok,
            command("batch_delete_booking_info", residence_id=BOB_HOME, bookings=[{"nope": 1}]),
            400,
            "missing_param",
        ),
    ]
    for headers, body, status, code in cases:
        if isinstance(body, bytes):
            answer = await raw.post(f"{METHOD}/user-commands", headers=headers, content=body)
        else:
            answer = await raw.post(f"{METHOD}/user-commands", headers=headers, json=body)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (headers, body)
        assert answer.json()["success"] is False
        assert answer.json()["message"]
    token = await raw.post(f"{METHOD}/oauth2/token", content=b"\x00\xff garbage")
    assert token.status_code == 400
    assert token.json()["success"] is False
    as_json = await raw.post(
        f"{METHOD}/oauth2/token",
        json={"grant_type": "password", "username": "bob@demo.community"},
    )
    assert (as_json.status_code, as_json.json()["code"]) == (400, "invalid_request")


# ---- residences -----------------------------------------------------------------------------


async def test_a_resident_sees_only_their_own_residences(client: AkubelaClient) -> None:
    alice = await login(client)
    bob = await login(client, "bob@demo.community")
    assert len(await client.get_family_list(alice)) == 2
    for call in (
        client.get_maintenance_list(bob, ALICE_HOME),
        client.get_booking_list(bob, ALICE_HOME),
        client.get_booking_amenity_list(bob, ALICE_HOME),
        client.get_maintenance_info(alice, ALICE_HOME, BOB_COMPLETED_REPAIR),
        client.delete_maintenance_info(bob, BOB_HOME, ALICE_WAITING_REPAIR),
        client.get_booking_info(bob, BOB_HOME, ALICE_GYM_BOOKING),
        client.delete_booking_info(bob, BOB_HOME, ALICE_GYM_BOOKING),
    ):
        with pytest.raises(NotFound):
            await call
    # Nothing of Alice's was touched.
    assert ALICE_WAITING_REPAIR in {
        m.maintenance_id for m in await client.get_maintenance_list(alice, ALICE_HOME)
    }
    assert (await client.get_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)).state == "success"


# ---- repairs --------------------------------------------------------------------------------


async def test_repair_lifecycle(
    client: AkubelaClient, sandbox: AkubelaSandbox, clock: Clock
) -> None:
    carol = await login(client, "carol@demo.community")
    start = clock.now().replace(microsecond=0) + timedelta(days=1)
    repair_id = await client.create_maintenance_info(
        carol,
        CAROL_HOME,
        start_time=start,
        finish_time=start + timedelta(hours=3),
        description="Heater is cold. 暖气不热。",
        contact="+86 138 0000 0003",
        filename=["heater.jpg"],
    )
    assert repair_id
    info = await client.get_maintenance_info(carol, CAROL_HOME, repair_id)
    assert info.maintenance_id == repair_id
    assert info.state == MaintenanceState.WAIT_FOR_CONFIRMATION
    assert info.start_time == start
    assert info.maintenance_picture_url == ["http://sandbox.test/akubela/media/files/heater.jpg"]
    assert sandbox.advance("repair", repair_id)["state"] == "in progress"
    done = sandbox.advance("repair", repair_id, "complete")
    assert done["state"] == "completed"
    assert done["residence_id"] == CAROL_HOME
    info = await client.get_maintenance_info(carol, CAROL_HOME, repair_id)
    assert info.state == MaintenanceState.COMPLETED
    assert info.feedback
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", repair_id)
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", repair_id, "close")
    await client.delete_maintenance_info(carol, CAROL_HOME, repair_id)
    with pytest.raises(NotFound):
        await client.get_maintenance_info(carol, CAROL_HOME, repair_id)
    with pytest.raises(KeyError):
        sandbox.advance("repair", repair_id)


async def test_repairs_close_from_either_open_state(sandbox: AkubelaSandbox) -> None:
    assert sandbox.advance("repair", ALICE_WAITING_REPAIR, "close")["state"] == "closed"
    in_progress = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c02"
    assert sandbox.advance("repair", in_progress, "close")["feedback"]
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", in_progress, "complete")
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c05", "complete")
    with pytest.raises(KeyError):
        sandbox.advance("task", ALICE_WAITING_REPAIR)


async def test_repair_refusals_and_batch_delete(client: AkubelaClient, clock: Clock) -> None:
    alice = await login(client)
    start = clock.now() + timedelta(days=1)
    with pytest.raises(InvalidRequest, match="finish_time must be after"):
        await client.create_maintenance_info(
            alice, ALICE_HOME, start_time=start, finish_time=start, description="x", contact="1"
        )
    repairs = await client.get_maintenance_list(alice, ALICE_HOME)
    assert {r.state for r in repairs} == {"wait for confirmation", "in progress"}
    with pytest.raises(NotFound):
        await client.batch_delete_maintenance_info(
            alice, ALICE_HOME, [repairs[0].maintenance_id, "m-unknown"]
        )
    # All or nothing: the known one is still there.
    assert len(await client.get_maintenance_list(alice, ALICE_HOME)) == len(repairs)
    await client.batch_delete_maintenance_info(
        alice, ALICE_HOME, [r.maintenance_id for r in repairs]
    )
    assert await client.get_maintenance_list(alice, ALICE_HOME) == []


async def test_manager_pages_through_the_whole_project(
    client: AkubelaClient, sandbox_settings: Settings
) -> None:
    boss = await manager(client, sandbox_settings)
    project = sandbox_settings.akubela_project_id
    everything = [m async for m in client.iter_project_maintenance(boss, project, page_size=3)]
    assert len(everything) == 8
    assert {m.state for m in everything} == {s.value for s in MaintenanceState}
    assert len({m.maintenance_id for m in everything}) == 8
    assert all(m.residence_id and m.building_name for m in everything)
    page = await client.get_project_maintenance_page(boss, project, page_index=3, page_size=3)
    assert (page.total, page.page_index, len(page.items)) == (8, 3, 2)
    with pytest.raises(NotFound):
        await client.get_project_maintenance_page(boss, "p-other")


# ---- bookings -------------------------------------------------------------------------------


async def test_amenities_and_time_list(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    alice = await login(client)
    amenities = await client.get_booking_amenity_list(alice, ALICE_HOME)
    assert {a.amenity_id for a in amenities} == {GYM, MEETING_ROOM, BBQ}
    picture = amenities[0].amenity_picture_url
    assert picture.startswith("http://sandbox.test/akubela/media/amenity/")
    tomorrow = local_day(sandbox_settings, clock, 1)
    times = await client.get_booking_time_list(alice, ALICE_HOME, GYM, tomorrow)
    # Asia/Shanghai 06:00-23:00 in UTC; lunch closure 12:00-13:00 and Alice's 07:00-08:00.
    assert times.allowed_booking_time is not None
    assert (times.allowed_booking_time.start_time, times.allowed_booking_time.finish_time) == (
        time(22, 0),
        time(15, 0),
    )
    assert [(t.start_time, t.finish_time) for t in times.disallowed_booking_time] == [
        (time(23, 0), time(0, 0)),
        (time(4, 0), time(5, 0)),
    ]
    sunday = local_day(sandbox_settings, clock, 7)
    while sunday.weekday() != 6:
        sunday += timedelta(days=1)
    closed = await client.get_booking_time_list(alice, ALICE_HOME, MEETING_ROOM, sunday)
    assert closed.allowed_booking_time is None
    with pytest.raises(NotFound):
        await client.get_booking_time_list(alice, ALICE_HOME, "a-unknown", tomorrow)


async def test_past_part_of_today_is_disallowed(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    bob = await login(client, "bob@demo.community")
    today = local_day(sandbox_settings, clock, 0)
    clock.advance((local(sandbox_settings, today, 19, 10) - clock.now()).total_seconds())
    times = await client.get_booking_time_list(bob, BOB_HOME, BBQ, today)
    assert next((t.start_time, t.finish_time) for t in times.disallowed_booking_time) == (
        time(9, 0),
        time(12, 0),  # 17:00 to the next free hour (20:00 local = closing)
    )


async def test_booking_lifecycle_pin_and_qr(
    client: AkubelaClient,
    raw: httpx.AsyncClient,
    sandbox_settings: Settings,
    clock: Clock,
) -> None:
    bob = await login(client, "bob@demo.community")
    day = local_day(sandbox_settings, clock, 1)
    start = local(sandbox_settings, day, 9)
    booking_id = await client.create_booking_info(
        bob, BOB_HOME, amenity_id=GYM, start_time=start, duration=90
    )
    assert booking_id
    booking = await client.get_booking_info(bob, BOB_HOME, booking_id)
    assert booking.booking_id == booking_id
    assert booking.state == BookingState.SUCCESS
    assert (booking.start_time, booking.finish_time) == (start, start + timedelta(minutes=90))
    assert len(booking.pin_code) == 6
    assert booking.pin_code.isdigit()
    assert not booking.is_expired
    assert booking.family_name.startswith("Wang")
    assert booking.qr_code_url.startswith("http://sandbox.test/akubela/media/qr/")
    png = await raw.get(booking.qr_code_url)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert (await raw.get("/akubela/media/qr/unknown.png")).status_code == 404
    times = await client.get_booking_time_list(bob, BOB_HOME, GYM, day)
    assert (time(1, 0), time(2, 30)) in [
        (t.start_time, t.finish_time) for t in times.disallowed_booking_time
    ]
    clock.advance((start + timedelta(minutes=91) - clock.now()).total_seconds())
    assert (await client.get_booking_info(bob, BOB_HOME, booking_id)).is_expired


@pytest.mark.parametrize(
    ("amenity", "day", "hour", "minute", "duration", "reason"),
    [
        (GYM, 1, 7, 30, 60, "already booked"),  # overlaps Alice's 07:00-08:00
        (GYM, 1, 11, 30, 60, "already booked"),  # runs into the lunch closure
        (GYM, 1, 22, 30, 60, "not open"),
        (GYM, 1, 5, 0, 60, "not open"),
        (GYM, -1, 9, 0, 60, "in the past"),
        (GYM, 1, 9, 0, 150, "at most 120 minutes"),
        (GYM, 1, 9, 0, 20, "at least 30 minutes"),
        (GYM, 31, 9, 0, 60, "at most 30 days ahead"),
        (BBQ, 15, 17, 0, 60, "at most 14 days ahead"),
        (BBQ, 1, 17, 30, 60, "grid"),
        (BBQ, 1, 17, 0, 90, "multiple of 60"),
        (MEETING_ROOM, 7, 10, 15, 60, "grid"),
        (BBQ, 1, 17, 0, 180, "at most 120"),
        (BBQ, 1, 19, 0, 120, "not open"),
    ],
)
async def test_create_booking_refusals_say_why(
    client: AkubelaClient,
    sandbox_settings: Settings,
    clock: Clock,
    amenity: str,
    day: int,
    hour: int,
    minute: int,
    duration: int,
    reason: str,
) -> None:
    bob = await login(client, "bob@demo.community")
    start = local(sandbox_settings, local_day(sandbox_settings, clock, day), hour, minute)
    with pytest.raises(InvalidRequest, match=reason):
        await client.create_booking_info(
            bob, BOB_HOME, amenity_id=amenity, start_time=start, duration=duration
        )


async def test_meeting_room_waits_for_a_decision(
    client: AkubelaClient, sandbox: AkubelaSandbox, sandbox_settings: Settings, clock: Clock
) -> None:
    carol = await login(client, "carol@demo.community")
    day = weekday_ahead(sandbox_settings, clock, 5)
    ids = []
    for hour in (9, 11):
        booking_id = await client.create_booking_info(
            carol,
            CAROL_HOME,
            amenity_id=MEETING_ROOM,
            start_time=local(sandbox_settings, day, hour),
            duration=60,
        )
        assert booking_id
        ids.append(booking_id)
        assert (await client.get_booking_info(carol, CAROL_HOME, booking_id)).state == "pending"
    assert sandbox.advance("booking", ids[0], "approve")["state"] == "success"
    assert sandbox.advance("booking", ids[1], "reject")["state"] == "rejected"
    states = {b.booking_id: b.state for b in await client.get_booking_list(carol, CAROL_HOME)}
    assert (states[ids[0]], states[ids[1]]) == ("success", "rejected")
    for record, decision in ((ids[0], "reject"), (ids[1], "approve"), (BOB_PENDING_ROOM, None)):
        with pytest.raises(ValueError, match="decision"):
            sandbox.advance("booking", record, decision)
    with pytest.raises(KeyError):
        sandbox.advance("booking", "b-unknown", "approve")
    # A rejected booking frees its slot.
    again = await client.create_booking_info(
        carol,
        CAROL_HOME,
        amenity_id=MEETING_ROOM,
        start_time=local(sandbox_settings, day, 11),
        duration=60,
    )
    assert again


async def test_cancel_frees_the_slot_and_deleting_again_removes(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    alice = await login(client)
    bob = await login(client, "bob@demo.community")
    start = local(sandbox_settings, local_day(sandbox_settings, clock, 1), 7)
    await client.delete_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)
    assert (await client.get_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)).state == (
        "canceled"
    )
    assert await client.create_booking_info(
        bob, BOB_HOME, amenity_id=GYM, start_time=start, duration=60
    )
    await client.delete_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)
    with pytest.raises(NotFound):
        await client.get_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)
    bbq_booking = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e06"
    await client.batch_delete_booking_info(alice, ALICE_HOME, [bbq_booking])
    assert (await client.get_booking_info(alice, ALICE_HOME, bbq_booking)).state == "canceled"
    with pytest.raises(NotFound):
        await client.batch_delete_booking_info(alice, ALICE_HOME, [bbq_booking, "b-unknown"])


async def test_booking_by_code_joins_the_same_slot(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    alice = await login(client)
    bob = await login(client, "bob@demo.community")
    original = await client.get_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)
    # The QR image carries the code; so does its address.
    code = original.qr_code_url.rsplit("/", 1)[1].removesuffix(".png")
    joined = await client.create_code_booking_info(bob, BOB_HOME, code)
    assert joined
    booking = await client.get_booking_info(bob, BOB_HOME, joined)
    assert (booking.start_time, booking.finish_time) == (original.start_time, original.finish_time)
    assert booking.amenity_id == GYM
    assert booking.state == "success"
    assert booking.pin_code
    for auth, home, text in (
        (bob, BOB_HOME, "already has"),
        (alice, ALICE_HOME, "already has"),
        (bob, BOB_HOME, "not recognised"),
    ):
        with pytest.raises(InvalidRequest, match=text):
            await client.create_code_booking_info(
                auth, home, "k-unknown" if text == "not recognised" else code
            )
    # Past codes stop working.
    clock.advance((original.finish_time - clock.now()).total_seconds() + 1)  # type: ignore[operator]
    carol = await login(client, "carol@demo.community")
    with pytest.raises(InvalidRequest, match="no longer valid"):
        await client.create_code_booking_info(carol, CAROL_HOME, code)


async def test_double_booking_under_concurrency(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    await double_booking(client, sandbox_settings, clock)


async def double_booking(client: AkubelaClient, settings: Settings, clock: Clock) -> None:
    """Two residents race for one slot: exactly one wins."""
    bob = await login(client, "bob@demo.community")
    carol = await login(client, "carol@demo.community")
    start = local(settings, local_day(settings, clock, 2), 10)
    results = await asyncio.gather(
        client.create_booking_info(bob, BOB_HOME, amenity_id=GYM, start_time=start, duration=60),
        client.create_booking_info(
            carol, CAROL_HOME, amenity_id=GYM, start_time=start, duration=60
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, InvalidRequest)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert "already booked" in losers[0].message


# ---- protocol: control, reset, demo --------------------------------------------------------


async def test_control_api_advances_akubela_records(raw: httpx.AsyncClient) -> None:
    answer = await raw.post(
        "/_sandbox/advance",
        json={
            "vendor": "akubela",
            "kind": "booking",
            "id": BOB_PENDING_ROOM,
            "decision": "approve",
        },
    )
    assert answer.status_code == 200
    assert answer.json()["state"] == "success"
    refused = await raw.post(
        "/_sandbox/advance",
        json={"vendor": "akubela", "kind": "repair", "id": BOB_COMPLETED_REPAIR},
    )
    assert refused.status_code == 409


def test_auto_advance_moves_records(sandbox: AkubelaSandbox) -> None:
    sandbox.auto_advance()
    # The oldest pending booking is approved, the oldest waiting repair starts and the
    # oldest repair in progress completes: none of them takes that move again.
    with pytest.raises(ValueError, match="takes no decision"):
        sandbox.advance("booking", BOB_PENDING_ROOM, "approve")
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c05", "confirm")
    with pytest.raises(ValueError, match="cannot move on"):
        sandbox.advance("repair", "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c06", "complete")
    # Younger records wait for later ticks.
    assert sandbox.advance("repair", ALICE_WAITING_REPAIR)["state"] == "in progress"


async def test_reset_restores_the_seed(client: AkubelaClient, sandbox: AkubelaSandbox) -> None:
    info = sandbox.demo_info()
    alice = await login(client)
    await client.delete_maintenance_info(alice, ALICE_HOME, ALICE_WAITING_REPAIR)
    sandbox.reset()
    assert sandbox.demo_info() == info
    with pytest.raises(AuthError):  # tokens are gone with the old state
        await client.get_maintenance_list(alice, ALICE_HOME)
    alice = await login(client)
    assert ALICE_WAITING_REPAIR in {
        m.maintenance_id for m in await client.get_maintenance_list(alice, ALICE_HOME)
    }


def test_demo_info(sandbox: AkubelaSandbox, sandbox_settings: Settings) -> None:
    info = sandbox.demo_info()
    assert info["project_id"] == sandbox_settings.akubela_project_id
    assert info["client_id"] == sandbox_settings.akubela_client_id
    assert info["manager"]["username"] == sandbox_settings.akubela_manager_username
    assert len(info["residents"]) >= 4
    assert any(len(r["residence_ids"]) == 2 for r in info["residents"])
    assert len(info["residences"]) >= 6
    first = [r for r in info["residences"] if r["project_id"] == info["project_id"]]
    assert len({r["building_name"] for r in first}) == 2
    # The second community: its own project, in its own zone.
    assert {p["zone"] for p in info["projects"]} == {"Asia/Shanghai", "Asia/Singapore"}
    assert set(info["amenities"]) == {"gym", "meeting_room", "bbq", "pool", "tennis"}
    assert info["booking_codes"]


# ---- over real HTTP ---------------------------------------------------------------------------


async def test_live_uvicorn_end_to_end(
    live_sandbox: str, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(sandbox_settings, clock, live_sandbox, None) as client:
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            # Redirect back to the sandbox itself so the browser can follow it for real.
            target = f"{live_sandbox}/akubela/media/files/callback.png"
            url = client.login_url(redirect_uri=target, state="live")
            assert (await browser.get(url)).status_code == 200
            fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            landed = await browser.post(
                url.split("?")[0],
                data={**fields, "email": "dave@demo.community", "password": "dave-demo-pass"},
            )
        assert landed.status_code == 200
        assert str(landed.url).startswith(target)
        code = landed.url.params["code"]
        assert landed.url.params["state"] == "live"
        dave = client.user_tokens(await client.exchange_code(code, redirect_uri=target))
        (home,) = await client.get_family_list(dave)
        repairs = await client.get_maintenance_list(dave, home.residence_id)
        assert repairs
        assert repairs[0].state == "wait for confirmation"
        bookings = await client.get_booking_list(dave, home.residence_id)
        assert {b.state for b in bookings} == {"canceled", "rejected"}
        assert bookings[0].qr_code_url.startswith(f"{live_sandbox}/akubela/media/qr/")
        await double_booking(client, sandbox_settings, clock)


async def run_every_command(client: AkubelaClient, settings: Settings, clock: Clock) -> None:
    """Each of the 16 commands once, successfully."""
    alice = await login(client)
    boss = await manager(client, settings)
    assert await client.get_account_info(alice)
    assert await client.get_family_list(alice)
    assert await client.get_maintenance_list(alice, ALICE_HOME)
    assert await client.get_maintenance_info(alice, ALICE_HOME, ALICE_WAITING_REPAIR)
    start = clock.now() + timedelta(days=1)
    created = await client.create_maintenance_info(
        alice,
        ALICE_STUDIO,
        start_time=start,
        finish_time=start + timedelta(hours=2),
        description="Door bell silent",
        contact="alice",
    )
    assert created
    await client.delete_maintenance_info(alice, ALICE_STUDIO, created)
    await client.batch_delete_maintenance_info(alice, ALICE_HOME, [ALICE_WAITING_REPAIR])
    assert await client.get_booking_list(alice, ALICE_HOME)
    assert await client.get_booking_info(alice, ALICE_HOME, ALICE_GYM_BOOKING)
    assert await client.get_booking_amenity_list(alice, ALICE_STUDIO)
    day = local_day(settings, clock, 3)
    assert await client.get_booking_time_list(alice, ALICE_STUDIO, BBQ, day)
    booking = await client.create_booking_info(
        alice, ALICE_STUDIO, amenity_id=BBQ, start_time=local(settings, day, 17), duration=60
    )
    assert booking
    bob = await login(client, "bob@demo.community")
    code = (await client.get_booking_info(alice, ALICE_STUDIO, booking)).qr_code_url
    joined = await client.create_code_booking_info(
        bob, BOB_HOME, code.rsplit("/", 1)[1].removesuffix(".png")
    )
    assert joined
    await client.delete_booking_info(bob, BOB_HOME, joined)
    await client.batch_delete_booking_info(alice, ALICE_STUDIO, [booking])
    page = await client.get_project_maintenance_page(boss, settings.akubela_project_id)
    assert page.total == 7  # eight seeded, one batch-deleted above


async def test_every_command_in_process(
    client: AkubelaClient, sandbox_settings: Settings, clock: Clock
) -> None:
    await run_every_command(client, sandbox_settings, clock)


async def test_every_command_over_live_http(
    live_sandbox: str, sandbox_settings: Settings, clock: Clock
) -> None:
    async with make_client(sandbox_settings, clock, live_sandbox, None) as client:
        await run_every_command(client, sandbox_settings, clock)


# ---- every failure style the vendor might use ----------------------------------------------


@pytest.mark.parametrize("style", list(ErrorStyle))
async def test_the_client_copes_with_every_error_style(style: ErrorStyle, clock: Clock) -> None:
    settings = Settings(_env_file=None, sandbox_akubela_error_style=style.value)
    app = create_app(settings, clock=clock, vendors=default_vendors(settings, clock))
    vendor = app.state.control.vendors["akubela"]
    transport = httpx.ASGITransport(app=app)
    async with make_client(settings, clock, "http://sandbox.test", transport) as client:
        bob = await login(client, "bob@demo.community")
        # An expired token is renewed once and the call repeated.
        vendor.expire_tokens()
        before = bob.tokens
        assert await client.get_booking_list(bob, BOB_HOME)
        assert bob.tokens is not before
        with pytest.raises(NotFound):
            await client.get_booking_info(bob, BOB_HOME, ALICE_GYM_BOOKING)
        start = local(settings, local_day(settings, clock, 1), 7, 30)
        with pytest.raises(InvalidRequest, match="already booked"):
            await client.create_booking_info(
                bob, BOB_HOME, amenity_id=GYM, start_time=start, duration=60
            )
        with pytest.raises(AuthError):
            await client.get_project_maintenance_page(bob, settings.akubela_project_id)
        with pytest.raises(AuthError):
            await client.password_login("bob@demo.community", SecretStr("wrong"), scope="user")
        assert before is not None
        assert before.refresh_token is not None
        with pytest.raises(AuthError):
            await client.refresh(before.refresh_token)
        with pytest.raises(InvalidRequest):
            await client._token({"grant_type": "magic"})
    wrong = settings.model_copy(update={"akubela_client_secret": SecretStr("wrong-one")})
    async with make_client(wrong, clock, "http://sandbox.test", transport) as client:
        with pytest.raises(AuthError):
            await client.password_login("bob@demo.community", SecretStr("bob-demo-pass"))
