"""The Tuya sandbox driven by the real TuyaClient (in-process and over uvicorn) and raw calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from api.errors import AuthError, InvalidRequest, NotFound
from api.tuya import TuyaClient, string_to_sign, tuya_sign
from api.tuya_models import RoomDeviceRelation, TaskStatus
from bot.settings import Settings
from sandbox.core import Clock
from sandbox.tuya import (
    DEVICES,
    LI_WEI,
    RELATION_REFUSED,
    ROOM_A_1201,
    ROOM_A_LOBBY,
    ROOM_B_PLANT,
    SEED_TASKS,
    TASK_STATUS_REFUSED,
    TOM,
    TuyaSandbox,
    expected_sign,
)

PENDING_MAINTENANCE_TOM = "1112382396505300007"
IN_MAINTENANCE_TOM = "1112382396505300005"
PENDING_ACCEPTANCE_TOM = "1112382396505300003"
ACCEPTANCE_COMPLETE_TOM = "1112382396505300001"


def tuya_of(app: Starlette) -> TuyaSandbox:
    sandbox = app.state.control.vendors["tuya"]
    assert isinstance(sandbox, TuyaSandbox)
    return sandbox


def make_client(
    settings: Settings,
    sandbox_clock: Clock,
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
    **overrides: Any,
) -> TuyaClient:
    async def no_sleep(seconds: float) -> None:
        return None

    options: dict[str, Any] = {
        "base_url": base_url,
        "client_id": settings.tuya_client_id,
        "client_secret": settings.tuya_client_secret,
        "project_id": settings.tuya_project_id,
        "transport": transport,
        "sleep": no_sleep,
        # The client's `t` follows the sandbox clock, as a real client's follows real time.
        "clock": lambda: sandbox_clock.now().timestamp(),
    }
    options.update(overrides)
    return TuyaClient(**options)


@pytest.fixture(params=["asgi", "live"])
async def tuya(
    request: pytest.FixtureRequest,
    sandbox_settings: Settings,
    clock: Clock,
    asgi_transport: httpx.ASGITransport,
) -> AsyncIterator[TuyaClient]:
    """The real client against the sandbox, in-process and over a real socket."""
    if request.param == "live":
        base = request.getfixturevalue("live_sandbox")
        client = make_client(sandbox_settings, clock, f"{base}/tuya", None)
    else:
        client = make_client(sandbox_settings, clock, "http://sandbox/tuya", asgi_transport)
    async with client:
        yield client


@pytest.fixture
async def local(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> AsyncIterator[TuyaClient]:
    """The real client in-process only, for the many small behaviour checks."""
    async with make_client(
        sandbox_settings, clock, "http://sandbox/tuya", asgi_transport
    ) as client:
        yield client


class Raw:
    """Hand-signed requests (hmac/hashlib only), to reach what the client refuses to send."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, clock: Clock) -> None:
        self.http = http
        self.client_id = settings.tuya_client_id
        self.secret = settings.tuya_client_secret.get_secret_value()
        self.clock = clock

    def headers(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        *,
        token: str = "",
        nonce: str | None = "raw-nonce",
        t: int | None = None,
        signed_headers: str = "",
    ) -> dict[str, str]:
        stamp = str(t if t is not None else int(self.clock.now().timestamp() * 1000))
        to_sign = (
            method + "\n" + hashlib.sha256(body).hexdigest() + "\n" + signed_headers + "\n" + url
        )
        message = self.client_id + token + stamp + (nonce or "") + to_sign
        sign = hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        headers = {
            "client_id": self.client_id,
            "sign": sign.upper(),
            "t": stamp,
            "sign_method": "HMAC-SHA256",
        }
        if nonce is not None:
            headers["nonce"] = nonce
        if token:
            headers["access_token"] = token
        return headers

    async def call(
        self, method: str, url: str, body: bytes = b"", *, token: str = "", **options: Any
    ) -> dict[str, Any]:
        headers = self.headers(method, url, body, token=token, **options)
        response = await self.http.request(method, "/tuya" + url, content=body, headers=headers)
        assert response.status_code == 200
        data: dict[str, Any] = response.json()
        return data

    async def token(self) -> dict[str, Any]:
        answer = await self.call("GET", "/v1.0/token?grant_type=1")
        assert answer["success"] is True
        result: dict[str, Any] = answer["result"]
        return result


@pytest.fixture
async def raw(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> AsyncIterator[Raw]:
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox") as http:
        yield Raw(http, sandbox_settings, clock)


def tasks_path(settings: Settings) -> str:
    return f"/v1.0/osaas/projects/{settings.tuya_project_id}/maintenance/tasks"


# --- reads and paging ------------------------------------------------------------------------


async def test_seed_has_tasks_in_every_state_for_both_workers(tuya: TuyaClient) -> None:
    tasks = [task async for task in tuya.iter_tasks(page_size=3)]
    assert len(tasks) == len(SEED_TASKS)
    seen = {(t.worker_nickname, t.status) for t in tasks}
    assert seen == {(name, s.value) for name in ("Tom", "Li Wei") for s in TaskStatus}
    created = [t.gmt_create.timestamp() if t.gmt_create else 0.0 for t in tasks]
    assert all(created)
    assert created == sorted(created, reverse=True)  # newest first


async def test_paging_across_several_pages(local: TuyaClient) -> None:
    pages = [await local.list_tasks(page_no=n, page_size=3) for n in (1, 2, 3, 4)]
    assert [len(p.tasks) for p in pages] == [3, 3, 2, 0]
    assert {p.total for p in pages} == {8}
    ids = [t.task_id for p in pages for t in p.tasks]
    assert len(set(ids)) == 8
    assert pages[1].page_no == 2
    assert pages[1].page_size == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("page_size=0", 1101),
        ("page_size=100", 1101),
        ("page_size=-5", 1101),
        ("page_no=0&page_size=20", 1101),
        ("page_size=ten", 1104),
    ],
)
async def test_page_size_outside_1_to_99_is_refused_as_tuya_does(
    raw: Raw, sandbox_settings: Settings, query: str, code: int
) -> None:
    token = (await raw.token())["access_token"]
    answer = await raw.call("GET", f"{tasks_path(sandbox_settings)}?{query}", token=token)
    assert answer["success"] is False
    assert answer["code"] == code
    assert answer["msg"]


@pytest.mark.parametrize("size", [1, 99])
async def test_page_size_bounds_are_accepted(local: TuyaClient, size: int) -> None:
    page = await local.list_tasks(page_size=size)
    assert len(page.tasks) == min(size, 8)


async def test_list_and_detail_use_the_docs_two_status_keys(
    raw: Raw, sandbox_settings: Settings
) -> None:
    token = (await raw.token())["access_token"]
    listing = await raw.call("GET", f"{tasks_path(sandbox_settings)}?page_no=1", token=token)
    first = listing["result"]["tasks"][0]
    assert "maintenance_status" in first
    assert "construction_status" not in first
    assert "code" not in listing
    assert "msg" not in listing
    detail = await raw.call(
        "GET", f"{tasks_path(sandbox_settings)}/{first['task_id']}", token=token
    )
    assert "construction_status" in detail["result"]
    assert "maintenance_status" not in detail["result"]
    assert len(str(detail["t"])) == 13


async def test_workers_rooms_and_devices(tuya: TuyaClient) -> None:
    workers = [w async for w in tuya.iter_workers(page_size=1)]
    assert [(w.worker_id, w.nickname) for w in workers] == [(TOM, "Tom"), (LI_WEI, "Li Wei")]
    rooms = [r async for r in tuya.iter_rooms(page_size=4)]
    names = [r.room_name for r in rooms]
    assert "Block A lobby" in names
    assert "Block B plant room" in names
    assert len(rooms) == 6
    devices = await tuya.list_devices(ROOM_B_PLANT)
    assert {d.name for d in devices} >= {"HVAC unit"}
    assert all(d.category for d in devices)


async def test_devices_of_an_unknown_room_are_not_found(local: TuyaClient) -> None:
    with pytest.raises(NotFound):
        await local.list_devices("no-such-room")


# --- create, detail, delete ------------------------------------------------------------------


async def test_create_detail_delete_round_trip(tuya: TuyaClient) -> None:
    relations = [
        RoomDeviceRelation(room_id=ROOM_A_1201, device_ids=["0012243300b2"]),
        RoomDeviceRelation(room_id=ROOM_A_LOBBY, device_ids=["0012243300a1", "0012243300a2"]),
    ]
    task_id = await tuya.create_task(LI_WEI, relations)
    detail = await tuya.get_task(task_id)
    assert detail.task_id == task_id
    assert detail.status == TaskStatus.PENDING_MAINTENANCE
    assert detail.worker_nickname == "Li Wei"
    assert detail.room_device_relations == relations
    listed = await tuya.list_tasks(page_size=1)
    assert listed.tasks[0].task_id == task_id  # the newest comes first
    assert listed.total == 9
    assert await tuya.delete_task(task_id) is True
    with pytest.raises(NotFound):
        await tuya.get_task(task_id)
    with pytest.raises(NotFound):
        await tuya.delete_task(task_id)


@pytest.mark.parametrize(
    ("worker", "relations", "error", "code"),
    [
        ("no-such-worker", [(ROOM_A_1201, ["0012243300b1"])], NotFound, 1000),
        (TOM, [("no-such-room", ["0012243300b1"])], NotFound, 1000),
        (TOM, [(ROOM_A_1201, ["0012243300f1"])], InvalidRequest, RELATION_REFUSED),
        (TOM, [(ROOM_A_1201, ["no-such-device"])], InvalidRequest, RELATION_REFUSED),
        (TOM, [], InvalidRequest, 1100),
        (TOM, [(ROOM_A_1201, [])], InvalidRequest, 1100),
    ],
    ids=["worker", "room", "device in another room", "device", "no rooms", "no devices"],
)
async def test_create_checks_worker_rooms_and_devices(
    local: TuyaClient,
    worker: str,
    relations: list[tuple[str, list[str]]],
    error: type[Exception],
    code: int,
) -> None:
    items = [RoomDeviceRelation(room_id=r, device_ids=d) for r, d in relations]
    with pytest.raises(error) as caught:
        await local.create_task(worker, items)
    assert getattr(caught.value, "code", None) == code
    assert len([t async for t in local.iter_tasks()]) == len(SEED_TASKS)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"worker_id": 5, "room_device_relations": "x"}']
)
async def test_malformed_create_body_gets_a_tuya_error_not_a_crash(
    raw: Raw, sandbox_settings: Settings, body: bytes
) -> None:
    token = (await raw.token())["access_token"]
    path = f"/v1.0/osaas/projects/{sandbox_settings.tuya_project_id}/maintenance/task"
    answer = await raw.call("POST", path, body, token=token)
    assert answer["success"] is False
    assert answer["code"] == 1104


async def test_another_project_is_refused(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> None:
    async with make_client(
        sandbox_settings, clock, "http://sandbox/tuya", asgi_transport, project_id="999"
    ) as client:
        with pytest.raises(AuthError) as caught:
            await client.list_tasks()
    assert caught.value.code == 1106


async def test_unknown_path_and_wrong_method_are_uri_path_invalid(raw: Raw) -> None:
    token = (await raw.token())["access_token"]
    for method, url in (("GET", "/v1.0/osaas/nothing/here"), ("PUT", "/v1.0/token")):
        answer = await raw.call(method, url, token=token)
        assert (answer["success"], answer["code"]) == (False, 1108)


# --- the task state machine ------------------------------------------------------------------


async def test_every_transition_and_every_refusal(
    tuya: TuyaClient, sandbox_app: Starlette
) -> None:
    sandbox = tuya_of(sandbox_app)
    task = PENDING_MAINTENANCE_TOM

    async def refused(action: str) -> None:
        with pytest.raises(InvalidRequest) as caught:
            await getattr(tuya, action)(task)
        assert caught.value.code == TASK_STATUS_REFUSED
        assert "cannot be" in caught.value.message

    async def status() -> str:
        return (await tuya.get_task(task)).status

    # PENDING_MAINTENANCE: neither accept nor reopen.
    await refused("accept_task")
    await refused("reopen_task")
    sandbox.advance("task", task)
    assert await status() == TaskStatus.IN_MAINTENANCE
    await refused("accept_task")
    await refused("reopen_task")
    sandbox.advance("task", task)
    assert await status() == TaskStatus.PENDING_ACCEPTANCE
    with pytest.raises(ValueError, match="accept or reopen"):
        sandbox.advance("task", task)  # the worker has nothing left to do
    # PENDING_ACCEPTANCE -> reopen -> PENDING_MAINTENANCE
    assert await tuya.reopen_task(task) is True
    assert await status() == TaskStatus.PENDING_MAINTENANCE
    sandbox.advance("task", task)
    sandbox.advance("task", task)
    # PENDING_ACCEPTANCE -> accept -> ACCEPTANCE_COMPLETE
    assert await tuya.accept_task(task) is True
    assert await status() == TaskStatus.ACCEPTANCE_COMPLETE
    await refused("accept_task")
    # ACCEPTANCE_COMPLETE -> reopen -> PENDING_MAINTENANCE
    assert await tuya.reopen_task(task) is True
    assert await status() == TaskStatus.PENDING_MAINTENANCE


async def test_advance_control_for_decisions_and_unknowns(sandbox_app: Starlette) -> None:
    sandbox = tuya_of(sandbox_app)
    moved = sandbox.advance("task", PENDING_ACCEPTANCE_TOM, "accept")
    assert moved["construction_status"] == "ACCEPTANCE_COMPLETE"
    with pytest.raises(ValueError, match="cannot be accepted"):
        sandbox.advance("task", PENDING_ACCEPTANCE_TOM, "accept")
    assert sandbox.advance("task", PENDING_ACCEPTANCE_TOM, "reopen")["construction_status"] == (
        "PENDING_MAINTENANCE"
    )
    with pytest.raises(ValueError, match="unknown decision"):
        sandbox.advance("task", IN_MAINTENANCE_TOM, "close")
    with pytest.raises(KeyError):
        sandbox.advance("task", "no-such-task")
    with pytest.raises(ValueError, match="tasks"):
        sandbox.advance("repair", IN_MAINTENANCE_TOM)


async def test_control_api_advances_a_task(asgi_transport: httpx.ASGITransport) -> None:
    task = {"vendor": "tuya", "kind": "task", "id": IN_MAINTENANCE_TOM}
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox") as http:
        finished = await http.post("/_sandbox/advance", json=task)
        stuck = await http.post("/_sandbox/advance", json=task)
        accepted = await http.post("/_sandbox/advance", json=task | {"decision": "accept"})
        missing = await http.post("/_sandbox/advance", json=task | {"id": "nope"})
        demo = await http.get("/_sandbox/demo")
    assert finished.status_code == 200
    assert finished.json()["construction_status"] == "PENDING_ACCEPTANCE"
    assert stuck.status_code == 409  # awaiting the manager: no worker step left
    assert accepted.json()["construction_status"] == "ACCEPTANCE_COMPLETE"
    assert missing.status_code == 404
    info = demo.json()["tuya"]
    assert info["project_id"] == "1233823965050001"
    assert [w["nickname"] for w in info["workers"]] == ["Tom", "Li Wei"]
    assert info["client_id"] == "tuyademoclientid"


async def test_concurrent_acceptances_only_one_wins(local: TuyaClient) -> None:
    results = await asyncio.gather(
        *(local.accept_task(PENDING_ACCEPTANCE_TOM) for _ in range(4)), return_exceptions=True
    )
    assert results.count(True) == 1
    assert all(isinstance(r, InvalidRequest) for r in results if r is not True)


async def test_auto_advance_moves_each_workers_oldest_waiting_task(sandbox_app: Starlette) -> None:
    sandbox = tuya_of(sandbox_app)
    sandbox.auto_advance()
    # Each worker finishes their task in maintenance before starting a new one.
    assert sandbox.advance("task", IN_MAINTENANCE_TOM, "accept")["construction_status"] == (
        "ACCEPTANCE_COMPLETE"
    )
    sandbox.auto_advance()
    moved = sandbox.advance("task", PENDING_MAINTENANCE_TOM, None)
    assert moved["construction_status"] == "PENDING_ACCEPTANCE"


async def test_reset_restores_the_seed(local: TuyaClient, sandbox_app: Starlette) -> None:
    await local.delete_task(ACCEPTANCE_COMPLETE_TOM)
    await local.accept_task(PENDING_ACCEPTANCE_TOM)
    tuya_of(sandbox_app).reset()
    # reset() also forgets tokens: the client renews on 1010 and carries on.
    detail = await local.get_task(PENDING_ACCEPTANCE_TOM)
    assert detail.status == TaskStatus.PENDING_ACCEPTANCE
    assert (await local.get_task(ACCEPTANCE_COMPLETE_TOM)).task_id == ACCEPTANCE_COMPLETE_TOM


# --- signatures, time and tokens -------------------------------------------------------------


async def test_tampered_body_is_refused(raw: Raw, sandbox_settings: Settings) -> None:
    token = (await raw.token())["access_token"]
    path = f"/v1.0/osaas/projects/{sandbox_settings.tuya_project_id}/maintenance/task"
    signed = json.dumps({"worker_id": TOM, "room_device_relations": []}).encode()
    sent = json.dumps({"worker_id": LI_WEI, "room_device_relations": []}).encode()
    headers = raw.headers("POST", path, signed, token=token)
    response = await raw.http.post("/tuya" + path, content=sent, headers=headers)
    assert response.json()["code"] == 1004


@pytest.mark.parametrize("header", ["t", "nonce", "access_token", "client_id"])
async def test_tampered_header_is_refused(
    raw: Raw, sandbox_settings: Settings, header: str
) -> None:
    token = (await raw.token())["access_token"]
    url = f"{tasks_path(sandbox_settings)}?page_size=5"
    headers = raw.headers("GET", url, token=token)
    tampered = {
        "t": str(int(headers["t"]) + 1),
        "nonce": "another-nonce",
        "access_token": token[::-1],
        "client_id": "someone-else",
    }[header]
    headers[header] = tampered
    answer = (await raw.http.get("/tuya" + url, headers=headers)).json()
    assert answer["success"] is False
    assert answer["code"] == {"client_id": 1005}.get(header, 1004)


async def test_tampered_query_is_refused(raw: Raw, sandbox_settings: Settings) -> None:
    token = (await raw.token())["access_token"]
    headers = raw.headers("GET", f"{tasks_path(sandbox_settings)}?page_size=5", token=token)
    answer = (
        await raw.http.get(f"/tuya{tasks_path(sandbox_settings)}?page_size=6", headers=headers)
    ).json()
    assert answer["code"] == 1004


async def test_missing_headers_are_refused(raw: Raw) -> None:
    answer = (await raw.http.get("/tuya/v1.0/token?grant_type=1")).json()
    assert (answer["success"], answer["code"]) == (False, 1105)


async def test_wrong_secret_is_sign_invalid(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> None:
    async with make_client(
        sandbox_settings, clock, "http://sandbox/tuya", asgi_transport, client_secret="wrong"
    ) as client:
        with pytest.raises(AuthError) as caught:
            await client.list_tasks()
    assert caught.value.code == 1004


async def test_a_request_signed_like_tuyas_python_sdk_is_accepted(
    raw: Raw, sandbox_settings: Settings
) -> None:
    # tuya-connector-python sends no nonce and hashes json.dumps() with default separators;
    # the official samples may also sign extra headers named in Signature-Headers.
    token = (await raw.token())["access_token"]
    path = f"/v1.0/osaas/projects/{sandbox_settings.tuya_project_id}/maintenance/task"
    relation = {"room_id": ROOM_A_1201, "device_ids": ["0012243300b1"]}
    body = json.dumps({"worker_id": TOM, "room_device_relations": [relation]}).encode()
    headers = raw.headers(
        "POST", path, body, token=token, nonce=None, signed_headers="area_id:cn-1\n"
    )
    headers |= {"Signature-Headers": "area_id", "area_id": "cn-1"}
    answer = (await raw.http.post("/tuya" + path, content=body, headers=headers)).json()
    assert answer["success"] is True
    assert isinstance(answer["result"], str)


# Tuya's worked example in "Sign requests" (developer.tuya.com): inputs and the two published
# signatures, a third opinion shared by neither the client nor the sandbox.
OFFICIAL = {
    "secret": "4OHBOnWOqaEC1mWXOpVL3yV50s0qGSRC",
    "client_id": "1KAD46OrT9HafiKdsXeg",
    "t": "1588925778000",
    "nonce": "5138cc3a9033d69856923fd07b491173",
    "signed_headers": "area_id:29a33e8796834b1efa6\ncall_id:8afdb70ab2ed11eb85290242ac130003\n",
}
OFFICIAL_CASES = [
    (
        "/v1.0/token?grant_type=1",
        "",
        "9E48A3E93B302EEECC803C7241985D0A34EB944F40FB573C7B5C2A82158AF13E",
    ),
    (
        "/v2.0/apps/schema/users?page_no=1&page_size=50",
        "3f4eda2bdec17232f67c0b188af3eec1",
        "AE4481C692AA80B25F3A7E12C3A5FD9BBF6251539DD78E565A1A72A508A88784",
    ),
]


@pytest.mark.parametrize(("url", "token", "published"), OFFICIAL_CASES)
def test_client_and_sandbox_both_sign_tuyas_official_example(
    url: str, token: str, published: str
) -> None:
    sandbox_says = expected_sign(
        OFFICIAL["secret"],
        client_id=OFFICIAL["client_id"],
        access_token=token,
        t=OFFICIAL["t"],
        nonce=OFFICIAL["nonce"],
        method="GET",
        body=b"",
        url=url,
        signed_headers=OFFICIAL["signed_headers"],
    )
    client_says = tuya_sign(
        OFFICIAL["secret"],
        client_id=OFFICIAL["client_id"],
        access_token=token,
        t=OFFICIAL["t"],
        nonce=OFFICIAL["nonce"],
        to_sign=string_to_sign("GET", b"", url, OFFICIAL["signed_headers"]),
    )
    assert sandbox_says == client_says == published


async def test_lower_case_sign_is_refused(raw: Raw) -> None:
    headers = raw.headers("GET", "/v1.0/token?grant_type=1")
    headers["sign"] = headers["sign"].lower()
    answer = (await raw.http.get("/tuya/v1.0/token?grant_type=1", headers=headers)).json()
    assert (answer["success"], answer["code"]) == (False, 1004)


@pytest.mark.parametrize("value", [None, "hmac-sha256", "HMAC-SHA1"])
async def test_sign_method_is_required_exactly(raw: Raw, value: str | None) -> None:
    headers = raw.headers("GET", "/v1.0/token?grant_type=1")
    if value is None:
        del headers["sign_method"]
    else:
        headers["sign_method"] = value
    answer = (await raw.http.get("/tuya/v1.0/token?grant_type=1", headers=headers)).json()
    assert (answer["success"], answer["code"]) == (False, 1105 if value is None else 1004)


@pytest.mark.parametrize("skew_seconds", [-600, 600])
async def test_stale_or_future_t_is_request_time_invalid(
    raw: Raw, clock: Clock, skew_seconds: int
) -> None:
    t = int((clock.now().timestamp() + skew_seconds) * 1000)
    answer = await raw.call("GET", "/v1.0/token?grant_type=1", t=t)
    assert (answer["success"], answer["code"]) == (False, 1013)


async def test_client_with_a_wrong_clock_gets_auth_error(
    sandbox_settings: Settings, clock: Clock, asgi_transport: httpx.ASGITransport
) -> None:
    async with make_client(
        sandbox_settings,
        clock,
        "http://sandbox/tuya",
        asgi_transport,
        clock=lambda: clock.now().timestamp() - 900,
    ) as client:
        with pytest.raises(AuthError) as caught:
            await client.list_tasks()
    assert caught.value.code == 1013


async def test_expired_tokens_are_renewed_by_the_client(
    tuya: TuyaClient, sandbox_app: Starlette
) -> None:
    await tuya.list_tasks()
    tuya_of(sandbox_app).expire_tokens()
    page = await tuya.list_tasks()  # 1010, refresh, retried once
    assert page.total == 8


async def test_clock_passing_expiry_makes_the_client_refresh(
    tuya: TuyaClient, raw: Raw, clock: Clock, sandbox_settings: Settings
) -> None:
    await tuya.list_tasks()
    old = await raw.token()  # a second grant, to watch expiry from outside
    clock.advance(7200)
    answer = await raw.call("GET", tasks_path(sandbox_settings), token=old["access_token"])
    assert (answer["code"], answer["msg"]) == (1010, "token is expired")
    assert (await tuya.list_tasks()).total == 8  # the client refreshed before calling


async def test_refresh_tokens_are_single_use(raw: Raw, sandbox_settings: Settings) -> None:
    first = await raw.token()
    url = f"/v1.0/token/{first['refresh_token']}"
    renewed = await raw.call("GET", url)
    assert renewed["success"] is True
    assert renewed["result"]["expire_time"] == 7200
    assert renewed["result"]["access_token"] != first["access_token"]
    again = await raw.call("GET", url)
    assert (again["success"], again["code"]) == (False, 1011)
    # The refreshed-away access token is retired; the new one works.
    old = await raw.call("GET", tasks_path(sandbox_settings), token=first["access_token"])
    assert old["code"] == 1010
    new = await raw.call(
        "GET", tasks_path(sandbox_settings), token=renewed["result"]["access_token"]
    )
    assert new["success"] is True


async def test_unknown_token_and_wrong_grant_type(raw: Raw, sandbox_settings: Settings) -> None:
    unknown = await raw.call("GET", tasks_path(sandbox_settings), token="f" * 32)
    assert unknown["code"] == 1010
    no_token = await raw.call("GET", tasks_path(sandbox_settings))
    assert no_token["code"] == 1010
    grant = await raw.call("GET", "/v1.0/token?grant_type=2")
    assert grant["code"] == 1003


async def test_forced_expiry_from_the_control_api(
    tuya: TuyaClient, sandbox_app: Starlette, asgi_transport: httpx.ASGITransport
) -> None:
    await tuya.get_task(IN_MAINTENANCE_TOM)
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox") as http:
        answer = await http.post("/_sandbox/expire-tokens", json={"vendor": "tuya"})
    assert answer.json() == {"expired": ["tuya"]}
    assert (await tuya.get_task(IN_MAINTENANCE_TOM)).status == TaskStatus.IN_MAINTENANCE


async def test_an_injected_rate_limit_is_retried_by_a_read(
    local: TuyaClient, asgi_transport: httpx.ASGITransport
) -> None:
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox") as http:
        added = await http.post(
            "/_sandbox/faults",
            json={"kind": "rate_limit", "path": "/tuya/v1.0/osaas", "times": 1, "retry_after": 0},
        )
    assert added.status_code == 201
    assert (await local.list_tasks()).total == 8


def test_demo_info_lists_credentials_workers_and_rooms(
    sandbox_settings: Settings, clock: Clock
) -> None:
    info = TuyaSandbox(sandbox_settings, clock).demo_info()
    assert info["client_secret"] == sandbox_settings.tuya_client_secret.get_secret_value()
    assert {w["worker_id"] for w in info["workers"]} == {TOM, LI_WEI}
    room_devices = {r["room_id"]: r["device_ids"] for r in info["rooms"]}
    assert sum(len(ids) for ids in room_devices.values()) == len(DEVICES)
    assert len(info["task_ids"]) == len(SEED_TASKS)
