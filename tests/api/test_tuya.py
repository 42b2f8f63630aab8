"""Tuya osaas client over httpx.MockTransport: signing, tokens, every operation and failure."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from api.redaction import secrets_filter
from api.tuya import TuyaClient, error_for_code
from api.tuya_models import (
    CreateTaskRequest,
    RoomDeviceRelation,
    TaskDetail,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TuyaEnvelope,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tuya"
BASE = "https://openapi.example.test"
CLIENT_ID = "tuyatestclientid"
SECRET = "tuya-test-secret-do-not-log"
PROJECT = "1233823965050001"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
T0 = 1_700_000_000.0  # seconds; the injected clock starts here


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def ok(result: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "result": result, "t": 1566053034624})


def fail(code: int, msg: str) -> httpx.Response:
    body = {"code": code, "msg": msg, "success": False, "t": 1561378856383}
    return httpx.Response(200, json=body)


def independent_sign(request: httpx.Request, access_token: str) -> str:
    """Tuya's signature recomputed from the raw request, sharing no code with api.tuya."""
    query = sorted(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    url = request.url.path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    body_hash = hashlib.sha256(request.content).hexdigest()
    to_sign = request.method + "\n" + body_hash + "\n" + "\n" + url
    message = CLIENT_ID + access_token + request.headers["t"] + request.headers["nonce"] + to_sign
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest().upper()


Handler = Callable[[httpx.Request], httpx.Response]


class FakeTuya:
    """A scripted Tuya: checks every signature, issues tokens, answers business calls."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], list[Handler | httpx.Response]] = {}
        self.defaults: dict[tuple[str, str], Handler | httpx.Response] = {}
        self.issued = 0
        self.valid_access: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.grant_failures: list[httpx.Response] = []
        self.refresh_failures: list[httpx.Response] = []

    def on(self, method: str, path: str, *answers: Handler | httpx.Response) -> None:
        """Queues answers for one route; the last one repeats."""
        self.routes[(method, path)] = list(answers)

    def expire(self) -> None:
        self.valid_access.clear()

    def business(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.startswith("/v1.0/token")]

    def token_calls(self) -> list[str]:
        return [r.url.path for r in self.requests if r.url.path.startswith("/v1.0/token")]

    def _issue(self) -> httpx.Response:
        self.issued += 1
        access, refresh = f"access-token-{self.issued:04d}", f"refresh-token-{self.issued:04d}"
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        result = {
            "access_token": access,
            "refresh_token": refresh,
            "expire_time": 7200,
            "uid": "bay1590000000000",
        }
        return ok(result)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        token_call = path.startswith("/v1.0/token")
        access = "" if token_call else request.headers.get("access_token", "")
        assert request.headers["client_id"] == CLIENT_ID
        assert request.headers["sign_method"] == "HMAC-SHA256"
        assert request.headers["lang"] == "en"
        if request.headers["sign"] != independent_sign(request, access):
            return fail(1004, "sign invalid")
        if path == "/v1.0/token":
            assert request.url.params["grant_type"] == "1"
            assert "access_token" not in request.headers
            if self.grant_failures:
                return self.grant_failures.pop(0)
            return self._issue()
        if token_call:
            assert "access_token" not in request.headers
            if self.refresh_failures:
                return self.refresh_failures.pop(0)
            refresh = path.rsplit("/", 1)[1]
            if refresh not in self.valid_refresh:
                return fail(1011, "token invalid")
            self.valid_refresh.discard(refresh)  # single use
            return self._issue()
        if access not in self.valid_access:
            return fail(1010, "token is expired")
        key = (request.method, path)
        queue = self.routes.get(key)
        if not queue:
            raise AssertionError(f"unexpected {request.method} {path}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer


class Clock:
    """A settable wall clock in seconds."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeTuya:
    return FakeTuya()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def make_client(
    fake: FakeTuya, clock: Clock, sleeps: list[float]
) -> AsyncIterator[Callable[..., TuyaClient]]:
    clients: list[TuyaClient] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def build(handler: Handler | None = None, **overrides: Any) -> TuyaClient:
        nonces = iter(range(1, 10_000))
        options: dict[str, Any] = {
            "base_url": BASE,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "project_id": PROJECT,
            "transport": httpx.MockTransport(handler or fake),
            "sleep": sleep,
            "clock": clock,
            "nonce": lambda: f"nonce-{next(nonces):04d}",
        }
        options.update(overrides)
        client = TuyaClient(**options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


TASKS = f"/v1.0/osaas/projects/{PROJECT}/maintenance/tasks"
TASK = f"{TASKS}/1306411812723"


# --- fixtures from the vendor doc ------------------------------------------------------------


def test_every_response_fixture_parses() -> None:
    page = TaskPage.model_validate(fixture("list_tasks.response.json")["result"])
    assert page.total == 1
    assert page.tasks[0].status == TaskStatus.PENDING_ACCEPTANCE
    assert page.tasks[0].gmt_create == datetime(2020, 9, 22, 9, 22, 26, 913000, tzinfo=UTC)
    detail = TaskDetail.model_validate(fixture("get_task.response.json")["result"])
    assert detail.status == "PENDING_ACCEPTANCE"
    assert detail.task_id == "1306411812723******"
    assert detail.room_device_relations[0].device_ids == ["00122433******"]
    for name in (
        "create_task.response.json",
        "reopen_task.response.json",
        "accept_task.response.json",
        "delete_task.response.json",
        "list_tasks.response.json",
        "get_task.response.json",
    ):
        envelope = TuyaEnvelope.model_validate(fixture(name))
        assert envelope.success is True
        assert envelope.code is None
        assert envelope.msg is None
    assert TuyaEnvelope.model_validate(fixture("create_task.response.json")).result == (
        "11123823965053******"
    )
    error = TuyaEnvelope.model_validate(fixture("error.response.json"))
    assert error.success is False
    assert error.code == 500


def test_every_fixture_file_is_covered() -> None:
    names = {path.name for path in FIXTURES.glob("*.json")}
    assert names == {
        "create_task.request.json",
        "create_task.response.json",
        "list_tasks.response.json",
        "get_task.response.json",
        "reopen_task.response.json",
        "accept_task.response.json",
        "delete_task.response.json",
        "error.response.json",
    }


def test_create_request_serialises_to_the_doc_example() -> None:
    example = fixture("create_task.request.json")
    request = CreateTaskRequest.model_validate(example)
    assert request.model_dump(mode="json") == example


def test_doc_error_example_is_unavailable_with_unknown_outcome() -> None:
    body = fixture("error.response.json")
    error = error_for_code(body["code"], body["msg"])
    assert isinstance(error, Unavailable)
    assert error.outcome_unknown is True
    assert error.code == 500
    assert "system error" in str(error)


@pytest.mark.parametrize(
    "key", ["maintenance_status", "construction_status", "construction_ status", "status"]
)
def test_every_status_key_spelling_lands_in_status(key: str) -> None:
    task = TaskSummary.model_validate({"task_id": 1, key: "IN_MAINTENANCE"})
    assert task.status == TaskStatus.IN_MAINTENANCE
    assert task.known_status is TaskStatus.IN_MAINTENANCE
    assert task.task_id == "1"  # numeric ids are kept as opaque strings


def test_unknown_status_is_kept() -> None:
    task = TaskSummary.model_validate({"task_id": "x", "maintenance_status": "ON_HOLD"})
    assert task.status == "ON_HOLD"
    assert task.known_status is None


# --- signing ---------------------------------------------------------------------------------


async def test_signature_matches_an_independently_computed_vector(
    make_client: Callable[..., TuyaClient],
) -> None:
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        if request.url.path == "/v1.0/token":
            return ok(
                {"access_token": "at-123456", "refresh_token": "rt-123456", "expire_time": 7200}
            )
        return ok({"total": 0, "page_no": 2, "page_size": 5, "tasks": []})

    client = make_client(handler, nonce=lambda: "5138cc3a9033d69856923fd07b491173")
    await client.list_tasks(page_no=2, page_size=5)

    token_request, list_request = captured
    # Token call: client_id + t + nonce + stringToSign, no access token.
    token_string = (
        "tuyatestclientid"
        "1700000000000"
        "5138cc3a9033d69856923fd07b491173"
        "GET\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "\n"
        "/v1.0/token?grant_type=1"
    )
    expected_token_sign = (
        hmac.new(b"tuya-test-secret-do-not-log", token_string.encode(), hashlib.sha256)
        .hexdigest()
        .upper()
    )
    assert token_request.headers["sign"] == expected_token_sign
    assert token_request.headers["t"] == "1700000000000"
    assert token_request.headers["nonce"] == "5138cc3a9033d69856923fd07b491173"
    assert "access_token" not in token_request.headers

    # Business call: the access token joins, and the query is sorted by key.
    business_string = (
        "tuyatestclientid"
        "at-123456"
        "1700000000000"
        "5138cc3a9033d69856923fd07b491173"
        "GET\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "\n"
        "/v1.0/osaas/projects/1233823965050001/maintenance/tasks?page_no=2&page_size=5"
    )
    expected = (
        hmac.new(b"tuya-test-secret-do-not-log", business_string.encode(), hashlib.sha256)
        .hexdigest()
        .upper()
    )
    assert list_request.headers["sign"] == expected
    assert list_request.headers["access_token"] == "at-123456"
    assert list_request.headers["sign_method"] == "HMAC-SHA256"
    assert list_request.headers["client_id"] == "tuyatestclientid"
    assert list_request.headers["lang"] == "en"
    assert "content-type" not in list_request.headers


async def test_body_bytes_hashed_are_the_bytes_sent(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("POST", f"/v1.0/osaas/projects/{PROJECT}/maintenance/task", ok("111238239650"))
    client = make_client()
    relations = [RoomDeviceRelation(room_id="房间-1201", device_ids=["d1", "d2"])]
    await client.create_task("工人-7", relations)

    (request,) = fake.business()
    expected_bytes = (
        '{"worker_id":"工人-7","room_device_relations":'
        '[{"room_id":"房间-1201","device_ids":["d1","d2"]}]}'
    ).encode()
    assert request.content == expected_bytes
    assert request.headers["content-type"] == "application/json"
    # FakeTuya already refused any request whose sign did not cover these exact bytes.
    to_sign_hash = hashlib.sha256(request.content).hexdigest()
    assert to_sign_hash != EMPTY_SHA256
    assert request.headers["sign"] == independent_sign(request, "access-token-0001")


async def test_wrong_secret_is_refused_as_auth_error(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    client = make_client(client_secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        await client.list_tasks()
    assert caught.value.code == 1004
    assert fake.token_calls() == ["/v1.0/token"]  # a refused grant is not retried


# --- operations ------------------------------------------------------------------------------


async def test_create_task_returns_the_id(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on(
        "POST",
        f"/v1.0/osaas/projects/{PROJECT}/maintenance/task",
        httpx.Response(200, json=fixture("create_task.response.json")),
    )
    client = make_client()
    example = CreateTaskRequest.model_validate(fixture("create_task.request.json"))
    task_id = await client.create_task(example.worker_id, example.room_device_relations)
    assert task_id == "11123823965053******"
    assert json.loads(fake.business()[0].content) == fixture("create_task.request.json")


async def test_list_tasks_parses_the_doc_example(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASKS, httpx.Response(200, json=fixture("list_tasks.response.json")))
    page = await make_client().list_tasks()
    assert page.page_size == 20
    assert page.tasks[0].worker_nickname == "Tom"
    assert page.tasks[0].status == "PENDING_ACCEPTANCE"
    assert fake.business()[0].url.params["page_no"] == "1"
    assert fake.business()[0].url.params["page_size"] == "20"


@pytest.mark.parametrize("page_size", [0, 100, -1])
async def test_page_size_outside_1_to_99_is_refused_before_sending(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], page_size: int
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="page_size"):
        await client.list_tasks(page_size=page_size)
    with pytest.raises(ValueError, match="page_size"):
        async for _ in client.iter_tasks(page_size=page_size):
            pass
    assert fake.requests == []


async def test_iter_tasks_walks_every_page(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    tasks = [
        {
            "task_id": f"t{i}",
            "maintenance_status": "PENDING_MAINTENANCE",
            "gmt_create": 1600766546913,
        }
        for i in range(7)
    ]

    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page_no"])
        size = int(request.url.params["page_size"])
        chunk = tasks[(number - 1) * size : number * size]
        return ok({"total": len(tasks), "page_no": number, "page_size": size, "tasks": chunk})

    fake.on("GET", TASKS, page)
    seen = [task.task_id async for task in make_client().iter_tasks(page_size=3)]
    assert seen == [f"t{i}" for i in range(7)]
    assert [r.url.params["page_no"] for r in fake.business()] == ["1", "2", "3"]


async def test_iter_tasks_stops_on_an_empty_page_even_if_total_lies(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on(
        "GET",
        TASKS,
        ok({"total": 50, "page_no": 1, "page_size": 2, "tasks": [{"task_id": "a"}]}),
        ok({"total": 50, "page_no": 2, "page_size": 2, "tasks": []}),
    )
    seen = [task.task_id async for task in make_client().iter_tasks(page_size=2)]
    assert seen == ["a"]
    assert len(fake.business()) == 2


async def test_get_task_parses_the_doc_example(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASK, httpx.Response(200, json=fixture("get_task.response.json")))
    detail = await make_client().get_task("1306411812723")
    assert detail.status == TaskStatus.PENDING_ACCEPTANCE
    assert detail.room_device_relations[0].room_id == "145267896505******"


@pytest.mark.parametrize(
    ("method", "suffix", "fixture_name", "operation"),
    [
        ("POST", "/reopen", "reopen_task.response.json", "reopen_task"),
        ("POST", "/acceptance", "accept_task.response.json", "accept_task"),
        ("DELETE", "", "delete_task.response.json", "delete_task"),
    ],
)
async def test_task_actions_return_true(
    fake: FakeTuya,
    make_client: Callable[..., TuyaClient],
    method: str,
    suffix: str,
    fixture_name: str,
    operation: str,
) -> None:
    fake.on(method, TASK + suffix, httpx.Response(200, json=fixture(fixture_name)))
    client = make_client()
    assert await getattr(client, operation)("1306411812723") is True
    (request,) = fake.business()
    assert request.method == method
    assert request.content == b""


async def test_list_workers_and_iterate(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on(
        "GET",
        "/v1.0/osaas/construction/workers",
        ok(
            {
                "total": 3,
                "page_no": 1,
                "page_size": 2,
                "workers": [
                    {"worker_id": "w1", "username": "tom@demo", "nickname": "Tom"},
                    {"worker_id": 2, "username": "li@demo", "nickname": "Li Wei"},
                ],
            }
        ),
        # Tuya's table names the list `tasks`; accept that too.
        ok({"total": 3, "page_no": 2, "page_size": 2, "tasks": [{"worker_id": "w3"}]}),
    )
    client = make_client()
    page = await client.list_workers(page_size=2)
    assert [w.nickname for w in page.workers] == ["Tom", "Li Wei"]
    assert page.workers[1].worker_id == "2"
    fake.on(
        "GET",
        "/v1.0/osaas/construction/workers",
        ok(
            {
                "total": 3,
                "page_no": 1,
                "page_size": 2,
                "workers": [{"worker_id": "w1"}, {"worker_id": "w2"}],
            }
        ),
        ok({"total": 3, "page_no": 2, "page_size": 2, "tasks": [{"worker_id": "w3"}]}),
    )
    assert [w.worker_id async for w in client.iter_workers(page_size=2)] == ["w1", "w2", "w3"]


async def test_list_rooms_and_iterate(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    room = {
        "room_id": "r1",
        "room_name": "Block A 1201",
        "room_no": "A-1201",
        "gmt_create": 1650272458625,
        "gmt_modified": 1650272458625,
    }
    fake.on(
        "GET",
        f"/v1.0/osaas/projects/{PROJECT}/rooms",
        ok({"total": 1, "page_no": 1, "page_size": 20, "rooms": [room]}),
    )
    client = make_client()
    page = await client.list_rooms()
    assert page.rooms[0].room_name == "Block A 1201"
    assert page.rooms[0].gmt_create is not None
    assert [r.room_id async for r in client.iter_rooms()] == ["r1"]


async def test_list_devices_accepts_a_bare_list_or_a_wrapper(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    device = {"device_id": "d1", "name": "Lobby light", "category": "dj", "online": True}
    fake.on(
        "GET",
        "/v1.0/osaas/rooms/r1/devices",
        ok([device]),
        ok({"devices": [{"id": "d2", "device_name": "Door lock", "category": "ms"}]}),
    )
    client = make_client()
    first = await client.list_devices("r1")
    assert first[0].name == "Lobby light"
    assert first[0].online is True
    second = await client.list_devices("r1")
    assert (second[0].device_id, second[0].name) == ("d2", "Door lock")


# --- failures, per operation -----------------------------------------------------------------

Operation = Callable[[TuyaClient], Awaitable[Any]]
RELATIONS = [RoomDeviceRelation(room_id="r1", device_ids=["d1"])]

OPERATIONS: list[tuple[str, str, str, Operation, bool]] = [
    # name, method, path, call, is a read (retried)
    (
        "create_task",
        "POST",
        f"/v1.0/osaas/projects/{PROJECT}/maintenance/task",
        lambda c: c.create_task("w1", RELATIONS),
        False,
    ),
    ("list_tasks", "GET", TASKS, lambda c: c.list_tasks(), True),
    ("get_task", "GET", TASK, lambda c: c.get_task("1306411812723"), True),
    ("reopen_task", "POST", TASK + "/reopen", lambda c: c.reopen_task("1306411812723"), False),
    (
        "accept_task",
        "POST",
        TASK + "/acceptance",
        lambda c: c.accept_task("1306411812723"),
        False,
    ),
    ("delete_task", "DELETE", TASK, lambda c: c.delete_task("1306411812723"), False),
    ("list_workers", "GET", "/v1.0/osaas/construction/workers", lambda c: c.list_workers(), True),
    ("list_rooms", "GET", f"/v1.0/osaas/projects/{PROJECT}/rooms", lambda c: c.list_rooms(), True),
    ("list_devices", "GET", "/v1.0/osaas/rooms/r1/devices", lambda c: c.list_devices("r1"), True),
]


def _drop(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset", request=request)


FAILURES: list[tuple[str, Handler | httpx.Response, type[ApiError], bool]] = [
    # label, answer, exception, transient (a read retries it)
    ("system error 500", fail(500, "system error,please contact the admin"), Unavailable, True),
    ("system busy 1111", fail(1111, "system is busy"), Unavailable, True),
    ("http 503", httpx.Response(503, text="upstream down"), Unavailable, True),
    ("not json", httpx.Response(200, text="<html>oops</html>"), Unavailable, True),
    ("dropped connection", _drop, Unavailable, True),
    ("rate limit code", fail(40000309, "request too frequent"), RateLimited, True),
    ("http 429", httpx.Response(429, headers={"Retry-After": "1"}, text=""), RateLimited, True),
    ("permission deny", fail(1106, "permission deny"), AuthError, False),
    ("request time invalid", fail(1013, "request time is invalid"), AuthError, False),
    ("data not exist", fail(1000, "data not exist"), NotFound, False),
    ("uri path invalid", fail(1108, "uri path invalid"), NotFound, False),
    ("param illegal", fail(1109, "param is illegal, please check it"), NotFound, False),
    ("param empty", fail(1100, "param is empty"), InvalidRequest, False),
    (
        "refused transition",
        fail(3001, "task status does not allow acceptance"),
        InvalidRequest,
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "call", "is_read"), OPERATIONS, ids=[op[0] for op in OPERATIONS]
)
@pytest.mark.parametrize(
    ("label", "answer", "expected", "transient"), FAILURES, ids=[f[0] for f in FAILURES]
)
async def test_each_operation_maps_each_failure(
    fake: FakeTuya,
    make_client: Callable[..., TuyaClient],
    sleeps: list[float],
    name: str,
    method: str,
    path: str,
    call: Operation,
    is_read: bool,
    label: str,
    answer: Handler | httpx.Response,
    expected: type[ApiError],
    transient: bool,
) -> None:
    fake.on(method, path, answer)
    client = make_client()
    with pytest.raises(expected) as caught:
        await call(client)
    assert type(caught.value) is expected
    assert caught.value.vendor == "tuya"
    # Reads repeat transient failures twice; writes and permanent refusals go out once.
    attempts = 3 if (is_read and transient) else 1
    assert len(fake.business()) == attempts
    assert len(sleeps) == attempts - 1
    if expected is Unavailable:
        assert isinstance(caught.value, Unavailable)
        assert caught.value.outcome_unknown is True


async def test_a_read_recovers_after_a_transient_failure(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], sleeps: list[float]
) -> None:
    fake.on(
        "GET",
        TASK,
        fail(500, "system error"),
        httpx.Response(200, json=fixture("get_task.response.json")),
    )
    detail = await make_client().get_task("1306411812723")
    assert detail.worker_nickname == "Tom"
    assert len(sleeps) == 1


async def test_rate_limit_carries_retry_after(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("POST", TASK + "/reopen", httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as caught:
        await make_client().reopen_task("1306411812723")
    assert caught.value.retry_after == 7.0


async def test_refused_transition_keeps_tuyas_code_and_message(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("POST", TASK + "/acceptance", fail(3001, "task is not pending acceptance"))
    with pytest.raises(InvalidRequest) as caught:
        await make_client().accept_task("1306411812723")
    assert caught.value.code == 3001
    assert caught.value.message == "task is not pending acceptance"


@pytest.mark.parametrize(
    "answer",
    [ok({"task_id": None}), ok(None), httpx.Response(200, json={"result": 1})],
    ids=["bad detail", "null result", "no success key"],
)
async def test_malformed_answers_are_unavailable(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], answer: httpx.Response
) -> None:
    fake.on("GET", TASK, answer)
    with pytest.raises(Unavailable):
        await make_client(retry=None).get_task("1306411812723")


@pytest.mark.parametrize("result", [None, "", True, {"id": "x"}])
async def test_create_without_an_id_is_unavailable(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], result: Any
) -> None:
    fake.on("POST", f"/v1.0/osaas/projects/{PROJECT}/maintenance/task", ok(result))
    with pytest.raises(Unavailable) as caught:
        await make_client().create_task("w1", RELATIONS)
    assert caught.value.outcome_unknown is True
    assert len(fake.business()) == 1


async def test_action_with_a_non_boolean_result_is_unavailable(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("DELETE", TASK, ok("yes"))
    with pytest.raises(Unavailable):
        await make_client().delete_task("1306411812723")


# --- tokens ----------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASK, httpx.Response(200, json=fixture("get_task.response.json")))
    client = make_client()
    await client.get_task("1306411812723")
    await client.get_task("1306411812723")
    assert fake.token_calls() == ["/v1.0/token"]
    assert {r.headers["access_token"] for r in fake.business()} == {"access-token-0001"}


async def test_token_is_refreshed_a_minute_before_expiry(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], clock: Clock
) -> None:
    fake.on("GET", TASK, httpx.Response(200, json=fixture("get_task.response.json")))
    client = make_client()
    await client.get_task("1306411812723")
    clock.now += 7200 - 61  # still more than a minute left: no refresh
    await client.get_task("1306411812723")
    clock.now += 2  # now within the last minute
    await client.get_task("1306411812723")
    assert fake.token_calls() == ["/v1.0/token", "/v1.0/token/refresh-token-0001"]
    assert fake.business()[-1].headers["access_token"] == "access-token-0002"
    assert "refresh-token-0001" not in fake.valid_refresh  # spent


async def test_failed_refresh_falls_back_to_a_new_grant(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], clock: Clock
) -> None:
    fake.on("GET", TASK, httpx.Response(200, json=fixture("get_task.response.json")))
    client = make_client()
    await client.get_task("1306411812723")
    fake.valid_refresh.clear()  # the refresh token died on Tuya's side
    clock.now += 7200
    await client.get_task("1306411812723")
    assert fake.token_calls() == [
        "/v1.0/token",
        "/v1.0/token/refresh-token-0001",
        "/v1.0/token",
    ]
    assert fake.business()[-1].headers["access_token"] == "access-token-0002"


@pytest.mark.parametrize("code", [1010, 1011, 1012])
async def test_token_rejection_renews_and_retries_once(
    fake: FakeTuya, make_client: Callable[..., TuyaClient], code: int
) -> None:
    fake.on("POST", TASK + "/acceptance", fail(code, "token is expired"), ok(True))
    client = make_client()
    assert await client.accept_task("1306411812723") is True
    assert fake.token_calls() == ["/v1.0/token", "/v1.0/token/refresh-token-0001"]
    assert [r.headers["access_token"] for r in fake.business()] == [
        "access-token-0001",
        "access-token-0002",
    ]


async def test_expired_token_on_the_server_is_renewed(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASKS, httpx.Response(200, json=fixture("list_tasks.response.json")))
    client = make_client()
    await client.list_tasks()
    fake.expire()
    page = await client.list_tasks()
    assert page.total == 1
    assert fake.token_calls() == ["/v1.0/token", "/v1.0/token/refresh-token-0001"]


async def test_second_token_rejection_is_an_auth_error(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASK, fail(1010, "token is expired"))
    with pytest.raises(AuthError) as caught:
        await make_client().get_task("1306411812723")
    assert caught.value.code == 1010
    assert len(fake.business()) == 2  # the original call and exactly one retry
    assert len(fake.token_calls()) == 2


async def test_concurrent_rejections_spend_the_refresh_token_once(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.on("GET", TASK, httpx.Response(200, json=fixture("get_task.response.json")))
    client = make_client()
    await client.get_task("1306411812723")
    fake.expire()
    results = await asyncio.gather(*(client.get_task("1306411812723") for _ in range(5)))
    assert all(r.worker_nickname == "Tom" for r in results)
    assert fake.token_calls() == ["/v1.0/token", "/v1.0/token/refresh-token-0001"]


async def test_token_grant_outage_is_retried_then_unavailable(
    fake: FakeTuya, make_client: Callable[..., TuyaClient]
) -> None:
    fake.grant_failures = [fail(500, "system error")] * 3
    with pytest.raises(Unavailable):
        await make_client(retry=None).delete_task("1306411812723")
    assert fake.business() == []  # no write went out without a token


# --- secrets stay secret ---------------------------------------------------------------------


async def test_no_secret_token_or_signature_reaches_logs_or_errors(
    fake: FakeTuya,
    make_client: Callable[..., TuyaClient],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As in production (api.redaction.install), the process-wide filter sits on the handler.
    caplog.handler.addFilter(secrets_filter)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "api.tuya", "api.base"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake.on(
        "GET",
        TASK,
        fail(1010, "token is expired"),
        fail(500, "system error"),
        httpx.Response(200, json=fixture("get_task.response.json")),
    )
    fake.on("POST", TASK + "/reopen", fail(1004, "sign invalid access-token-0002"))
    client = make_client()
    errors: list[ApiError] = []
    await client.get_task("1306411812723")  # grant, 1010 -> refresh, 500 -> retry
    clock.now += 7200  # next call refreshes through the URL that carries the refresh token
    await client.get_task("1306411812723")
    try:
        await client.reopen_task("1306411812723")
    except ApiError as exc:
        errors.append(exc)

    secrets = {SECRET, *[r.headers["sign"] for r in fake.requests]}
    for number in range(1, fake.issued + 1):
        secrets |= {f"access-token-{number:04d}", f"refresh-token-{number:04d}"}
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1.0/token/" in logged  # the refresh URL was logged, masked
    assert errors
    shown = logged + "".join(f"{e!s}{e!r}{e.message}" for e in errors) + repr(client)
    for secret in secrets:
        assert secret not in shown, "a credential leaked"
