"""Tuya osaas served locally: signed token calls, maintenance tasks, workers, rooms, devices.

Behaves as Tuya's cloud does for the calls Concierge makes (mounted under `/tuya`):

- Every request is checked as Tuya checks it, in this order: the `client_id`, `sign`,
  `sign_method` and `t` headers are present (1105), `client_id` is `settings.tuya_client_id`
  (1005), `sign_method` is exactly `HMAC-SHA256` (1004), `t` is within
  `TIME_TOLERANCE_SECONDS` of the sandbox clock (1013), `sign` is exactly (upper-case) Tuya's
  HMAC-SHA256 over client_id [+ access_token] + t + nonce + stringToSign with
  `settings.tuya_client_secret` (1004; computed by `expected_sign`, the sandbox's own reading
  of Tuya's rule, never the client's code; `nonce` optional, `Signature-Headers` honoured, so
  Tuya's own SDKs are accepted), and, off the token paths, `access_token` is a live token
  (1010 when expired or unknown).
- `GET /v1.0/token?grant_type=1` issues `{access_token, refresh_token, expire_time: 7200,
  uid}`; `GET /v1.0/token/{refresh_token}` trades a refresh token once for a new pair and
  retires the access token it came with.
- The maintenance-task paths of the doc; the list answers with the `maintenance_status` key
  and the detail with `construction_status`, exactly as the doc's two examples do.
  `page_no` >= 1 and 0 < `page_size` < 100, otherwise 1101 "params range invalid"; a
  non-integer is 1104 "type is incorrect". Unknown tasks, workers and rooms are 1000 "...
  not exist"; another project id is 1106 "permission deny"; an unknown path is 1108.
- Task states: PENDING_MAINTENANCE -> IN_MAINTENANCE -> PENDING_ACCEPTANCE (the worker's
  side, moved here by `advance` and the demo timer); `acceptance` only from
  PENDING_ACCEPTANCE (-> ACCEPTANCE_COMPLETE); `reopen` only from PENDING_ACCEPTANCE or
  ACCEPTANCE_COMPLETE (-> PENDING_MAINTENANCE). A refused move is code
  `TASK_STATUS_REFUSED` with a message naming the state. Create checks that the worker,
  rooms and devices exist and that each device is in the room it is listed under
  (`RELATION_REFUSED` otherwise).
- Workers, rooms and devices follow the shapes documented in `api.tuya`.

Failures are HTTP 200 with `{"code", "msg", "success": false, "t"}`; an unexpected error in
the sandbox itself is Tuya's own 500 "system error", never a traceback.

Control: `advance("task", id)` moves a task one step along the worker's side;
`advance("task", id, "accept" | "reopen")` takes the manager's decision; `auto_advance` moves
the oldest waiting task of each worker step; `expire_tokens` ends every access token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from api.times import to_epoch_millis
from api.tuya_models import TaskStatus
from bot.settings import Settings
from sandbox.core import Clock

logger = logging.getLogger(__name__)

SIGN_METHOD = "HMAC-SHA256"
TOKEN_LIFETIME_SECONDS = 7200
TIME_TOLERANCE_SECONDS = 300.0
MAX_PAGE_SIZE = 99
DEFAULT_PAGE_SIZE = 20

# Business codes of this sandbox (Tuya documents none for these refusals).
TASK_STATUS_REFUSED = 40001902
RELATION_REFUSED = 40001901

SYSTEM_ERROR = "system error,please contact the admin"

Handler = Callable[[Request, bytes], Any]


class TuyaFailure(Exception):
    """A refusal answered with Tuya's failure envelope."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


# --- demo data -------------------------------------------------------------------------------

WORKERS: tuple[dict[str, str], ...] = (
    {"worker_id": "1306411812723001", "username": "tom@demo.community", "nickname": "Tom"},
    {"worker_id": "1306411812723002", "username": "liwei@demo.community", "nickname": "Li Wei"},
)
TOM, LI_WEI = (worker["worker_id"] for worker in WORKERS)

# room id, name, number, description
ROOMS: tuple[tuple[str, str, str, str], ...] = (
    ("145267896505310001", "Block A lobby", "A-LOBBY", "Ground floor entrance hall, Block A"),
    ("145267896505310002", "Block A 1201", "A-1201", "Flat 1201, 12th floor, Block A"),
    ("145267896505310003", "Block A 1202", "A-1202", "Flat 1202, 12th floor, Block A"),
    ("145267896505310004", "Block B lobby", "B-LOBBY", "Ground floor entrance hall, Block B"),
    ("145267896505310005", "Block B 0803", "B-0803", "Flat 0803, 8th floor, Block B"),
    ("145267896505310006", "Block B plant room", "B-PLANT", "Basement plant room, Block B"),
)
ROOM_A_LOBBY, ROOM_A_1201, ROOM_A_1202, ROOM_B_LOBBY, ROOM_B_0803, ROOM_B_PLANT = (
    room[0] for room in ROOMS
)

# device id, room id, name, Tuya category code
DEVICES: tuple[tuple[str, str, str, str], ...] = (
    ("0012243300a1", ROOM_A_LOBBY, "Lobby lights", "dj"),
    ("0012243300a2", ROOM_A_LOBBY, "Entrance door lock", "ms"),
    ("0012243300a3", ROOM_A_LOBBY, "Elevator call panel", "kg"),
    ("0012243300b1", ROOM_A_1201, "Smart door lock", "ms"),
    ("0012243300b2", ROOM_A_1201, "Air conditioner", "kt"),
    ("0012243300b3", ROOM_A_1201, "Water leak sensor", "sj"),
    ("0012243300c1", ROOM_A_1202, "Smart door lock", "ms"),
    ("0012243300c2", ROOM_A_1202, "Smoke alarm", "ywbj"),
    ("0012243300d1", ROOM_B_LOBBY, "Lobby lights", "dj"),
    ("0012243300d2", ROOM_B_LOBBY, "Entrance camera", "sp"),
    ("0012243300e1", ROOM_B_0803, "Smart door lock", "ms"),
    ("0012243300e2", ROOM_B_0803, "Thermostat", "wk"),
    ("0012243300f1", ROOM_B_PLANT, "HVAC unit", "kt"),
    ("0012243300f2", ROOM_B_PLANT, "Water pump socket", "cz"),
    ("0012243300f3", ROOM_B_PLANT, "Door sensor", "mcs"),
)

# The second demo community's project (Marina Bay, Singapore): its rooms and their devices.
MARINA_PROJECT = "1233823965050002"
MARINA_ROOMS: tuple[tuple[str, str, str, str], ...] = (
    ("145267896505320001", "Tower 1 #12-01", "T1-1201", "Flat #12-01, Tower 1"),
    ("145267896505320002", "Tower 2 #08-04", "T2-0804", "Flat #08-04, Tower 2"),
    ("145267896505320003", "Pool deck", "POOL", "Fifth-floor pool deck"),
)
MARINA_DEVICES: tuple[tuple[str, str, str, str], ...] = (
    ("0012243301a1", "145267896505320001", "Smart door lock", "ms"),
    ("0012243301b1", "145267896505320002", "Air conditioner", "kt"),
    ("0012243301c1", "145267896505320003", "Pool pump", "cz"),
)
EVERY_ROOM = ROOMS + MARINA_ROOMS
EVERY_DEVICE = DEVICES + MARINA_DEVICES

# task id, worker, status, hours before the seed time it was created, [(room, [devices])]
SEED_TASKS: tuple[tuple[str, str, TaskStatus, int, list[tuple[str, list[str]]]], ...] = (
    ("1112382396505300001", TOM, TaskStatus.ACCEPTANCE_COMPLETE, 240,
     [(ROOM_A_LOBBY, ["0012243300a1"])]),
    ("1112382396505300002", LI_WEI, TaskStatus.ACCEPTANCE_COMPLETE, 216,
     [(ROOM_B_PLANT, ["0012243300f2"])]),
    ("1112382396505300003", TOM, TaskStatus.PENDING_ACCEPTANCE, 120,
     [(ROOM_A_1201, ["0012243300b1", "0012243300b3"])]),
    ("1112382396505300004", LI_WEI, TaskStatus.PENDING_ACCEPTANCE, 96,
     [(ROOM_B_0803, ["0012243300e2"])]),
    ("1112382396505300005", TOM, TaskStatus.IN_MAINTENANCE, 48,
     [(ROOM_A_1202, ["0012243300c2"]), (ROOM_A_LOBBY, ["0012243300a2"])]),
    ("1112382396505300006", LI_WEI, TaskStatus.IN_MAINTENANCE, 30,
     [(ROOM_B_PLANT, ["0012243300f1"])]),
    ("1112382396505300007", TOM, TaskStatus.PENDING_MAINTENANCE, 6,
     [(ROOM_A_LOBBY, ["0012243300a3"])]),
    ("1112382396505300008", LI_WEI, TaskStatus.PENDING_MAINTENANCE, 2,
     [(ROOM_B_LOBBY, ["0012243300d1", "0012243300d2"])]),
)  # fmt: skip

# The worker's side of the state machine, and the manager's decisions.
WORKER_STEPS = {
    TaskStatus.PENDING_MAINTENANCE: TaskStatus.IN_MAINTENANCE,
    TaskStatus.IN_MAINTENANCE: TaskStatus.PENDING_ACCEPTANCE,
}
ACCEPT_FROM = frozenset({TaskStatus.PENDING_ACCEPTANCE})
REOPEN_FROM = frozenset({TaskStatus.PENDING_ACCEPTANCE, TaskStatus.ACCEPTANCE_COMPLETE})


@dataclass(slots=True)
class _Task:
    task_id: str
    worker_id: str
    status: TaskStatus
    created: datetime
    relations: list[tuple[str, list[str]]] = field(default_factory=list)
    project_id: str = ""


@dataclass(slots=True)
class _Grant:
    access_token: str
    refresh_token: str
    expires_at: datetime


# --- protocol helpers ------------------------------------------------------------------------


def expected_sign(
    secret: str,
    *,
    client_id: str,
    t: str,
    nonce: str,
    method: str,
    body: bytes,
    url: str,
    signed_headers: str = "",
    access_token: str = "",
) -> str:
    """The `sign` Tuya expects, written from Tuya's published rule ("Sign requests").

    Deliberately independent of `api.tuya`: if the client's signing drifts from the rule, the
    sandbox refuses it instead of mirroring the mistake.

        stringToSign = HTTPMethod + "\\n" + Content-SHA256 + "\\n" + Headers + "\\n" + Url
        sign = upper(HMAC-SHA256(secret, client_id + access_token + t + nonce + stringToSign))
    """
    string_to_sign = "\n".join(
        (method.upper(), hashlib.sha256(body).hexdigest(), signed_headers, url)
    )
    message = client_id + access_token + t + nonce + string_to_sign
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest().upper()


def _route_path(request: Request) -> str:
    """The path as the client signed it: without the `/tuya` mount prefix."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _signed_url(request: Request) -> str:
    """The `Url` part of stringToSign: the path, then every query pair sorted by key."""
    pairs = sorted(request.query_params.multi_items())
    return _route_path(request) + ("?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else "")


def _signed_headers(request: Request) -> str:
    """The `Headers` part of stringToSign: `name:value\\n` for each `Signature-Headers` name."""
    names = request.headers.get("Signature-Headers", "")
    return "".join(
        f"{name}:{request.headers.get(name, '')}\n" for name in names.split(":") if name
    )


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise TuyaFailure(1104, f"type is incorrect: {name} must be an integer") from None


def _page_params(request: Request) -> tuple[int, int]:
    page_no = _int_param(request, "page_no", 1)
    page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE)
    if page_no < 1:
        raise TuyaFailure(1101, "params range invalid: page_no must be greater than 0")
    if not 0 < page_size <= MAX_PAGE_SIZE:
        raise TuyaFailure(
            1101, "params range invalid: page_size must be greater than 0 and less than 100"
        )
    return page_no, page_size


def _page(items: list[dict[str, Any]], page_no: int, page_size: int) -> list[dict[str, Any]]:
    start = (page_no - 1) * page_size
    return items[start : start + page_size]


class TuyaSandbox:
    """Tuya's osaas maintenance-task API with Tuya's signing and tokens, on a movable clock."""

    name = "tuya"

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._client_id = settings.tuya_client_id
        self._secret = settings.tuya_client_secret
        self.project_id = settings.tuya_project_id
        # Each project the sandbox serves, with its rooms: the settings' first.
        self._rooms_of = {self.project_id: ROOMS, MARINA_PROJECT: MARINA_ROOMS}
        self._clock = clock
        self._grants: dict[str, _Grant] = {}  # by access token
        self._refresh: dict[str, _Grant] = {}  # by refresh token, until spent
        self._tasks: dict[str, _Task] = {}
        self._next_task = 1
        self.reset()

    # --- the protocol ----------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """Tuya's paths, relative to the `/tuya` prefix."""
        project = "/v1.0/osaas/projects/{project_id}"
        task = project + "/maintenance/tasks/{task_id}"
        return [
            Route("/v1.0/token", self._endpoint(self._grant, token_call=True), methods=["GET"]),
            Route(
                "/v1.0/token/{refresh_token}",
                self._endpoint(self._refresh_grant, token_call=True),
                methods=["GET"],
            ),
            Route(project + "/maintenance/task", self._endpoint(self._create), methods=["POST"]),
            Route(project + "/maintenance/tasks", self._endpoint(self._list), methods=["GET"]),
            Route(task, self._endpoint(self._detail), methods=["GET"]),
            Route(task, self._endpoint(self._delete), methods=["DELETE"]),
            Route(task + "/reopen", self._endpoint(self._reopen), methods=["POST"]),
            Route(task + "/acceptance", self._endpoint(self._accept), methods=["POST"]),
            Route(
                "/v1.0/osaas/construction/workers",
                self._endpoint(self._workers),
                methods=["GET"],
            ),
            Route(project + "/rooms", self._endpoint(self._rooms), methods=["GET"]),
            Route(
                "/v1.0/osaas/rooms/{room_id}/devices",
                self._endpoint(self._devices),
                methods=["GET"],
            ),
            # Anything else (an unknown path or a wrong method) gets Tuya's answer, not a 404.
            Route(
                "/{path:path}",
                self._endpoint(self._unknown_path),
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            ),
        ]

    def reset(self) -> None:
        """Back to the seed: the eight demo tasks, no tokens."""
        self._grants.clear()
        self._refresh.clear()
        now = self._clock.now()
        self._tasks = {
            task_id: _Task(
                task_id,
                worker,
                status,
                now - timedelta(hours=hours_ago),
                [(room, list(devices)) for room, devices in relations],
                self.project_id,
            )
            for task_id, worker, status, hours_ago, relations in SEED_TASKS
        }
        self._next_task = len(SEED_TASKS) + 1

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay usable)."""
        past = self._clock.now() - timedelta(seconds=1)
        for grant in self._grants.values():
            grant.expires_at = past

    def advance(self, kind: str, record_id: str, decision: str | None = None) -> dict[str, Any]:
        """Moves a task: a worker step with no decision, or "accept" / "reopen"."""
        if kind != "task":
            raise ValueError(f"tuya has tasks, not {kind!r}")
        task = self._tasks[record_id]
        if decision is None:
            self._step(task)
        elif decision in {"accept", "acceptance", "approve"}:
            self._transition(task, ACCEPT_FROM, TaskStatus.ACCEPTANCE_COMPLETE, "accepted")
        elif decision == "reopen":
            self._transition(task, REOPEN_FROM, TaskStatus.PENDING_MAINTENANCE, "reopened")
        else:
            raise ValueError(f"unknown decision {decision!r}: use accept or reopen")
        return self._detail_json(task)

    def auto_advance(self) -> None:
        """One demo tick: each worker starts their oldest waiting task or finishes one."""
        for worker in WORKERS:
            mine = sorted(
                (t for t in self._tasks.values() if t.worker_id == worker["worker_id"]),
                key=lambda t: t.created,
            )
            for status in (TaskStatus.IN_MAINTENANCE, TaskStatus.PENDING_MAINTENANCE):
                waiting = [t for t in mine if t.status is status]
                if waiting:
                    self._step(waiting[0])
                    break

    def demo_info(self) -> dict[str, Any]:
        """Credentials, the project, workers and rooms with their devices."""
        return {
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "project_id": self.project_id,
            "workers": [dict(worker) for worker in WORKERS],
            "rooms": [
                {
                    "room_id": room_id,
                    "room_name": name,
                    "device_ids": [d[0] for d in DEVICES if d[1] == room_id],
                }
                for room_id, name, _, _ in ROOMS
            ],
            "task_ids": list(self._tasks),
        }

    # --- state machine ---------------------------------------------------------------------

    def _step(self, task: _Task) -> None:
        following = WORKER_STEPS.get(task.status)
        if following is None:
            raise ValueError(
                f"task {task.task_id} is {task.status.value}; only accept or reopen move it"
            )
        task.status = following

    def _transition(
        self, task: _Task, allowed: frozenset[TaskStatus], target: TaskStatus, verb: str
    ) -> None:
        if task.status not in allowed:
            states = " or ".join(sorted(s.value for s in allowed))
            raise ValueError(
                f"task {task.task_id} is {task.status.value} and cannot be {verb}; "
                f"it must be {states}"
            )
        task.status = target

    # --- request handling ------------------------------------------------------------------

    def _endpoint(
        self, handler: Handler, *, token_call: bool = False
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            body = await request.body()
            # From here on nothing awaits, so two requests cannot both win one state change.
            try:
                self._authenticate(request, body, token_call=token_call)
                result = handler(request, body)
            except TuyaFailure as failure:
                return self._failure(failure.code, failure.msg)
            except Exception:
                logger.exception("tuya sandbox failed on %s", _route_path(request))
                return self._failure(500, SYSTEM_ERROR)
            return JSONResponse(
                {"result": result, "success": True, "t": self._now_ms(), "tid": self._tid()}
            )

        return endpoint

    def _failure(self, code: int, msg: str) -> JSONResponse:
        return JSONResponse(
            {"code": code, "msg": msg, "success": False, "t": self._now_ms(), "tid": self._tid()}
        )

    def _now_ms(self) -> int:
        return to_epoch_millis(self._clock.now())

    def _tid(self) -> str:
        return secrets.token_hex(16)

    def _authenticate(self, request: Request, body: bytes, *, token_call: bool) -> None:
        headers = request.headers
        required = ("client_id", "sign", "sign_method", "t")
        missing = [name for name in required if not headers.get(name)]
        if missing:
            raise TuyaFailure(1105, f"missing the header: {', '.join(missing)}")
        client_id, sign, t = headers["client_id"], headers["sign"], headers["t"]
        if client_id != self._client_id:
            raise TuyaFailure(1005, "clientId invalid")
        # Tuya's only value, exactly as documented: no lower-case or other digests.
        if headers["sign_method"] != SIGN_METHOD:
            raise TuyaFailure(1004, "sign invalid")
        try:
            sent_ms = int(t)
        except ValueError:
            raise TuyaFailure(1013, "request time is invalid") from None
        if abs(sent_ms - self._now_ms()) > TIME_TOLERANCE_SECONDS * 1000:
            raise TuyaFailure(1013, "request time is invalid")
        access_token = "" if token_call else headers.get("access_token", "")
        expected = expected_sign(
            self._secret.get_secret_value(),
            client_id=client_id,
            access_token=access_token,
            t=t,
            nonce=headers.get("nonce", ""),
            method=request.method,
            body=body,
            url=_signed_url(request),
            signed_headers=_signed_headers(request),
        )
        # The rule upper-cases the digest; a lower-case sign is refused as Tuya refuses it.
        if not secrets.compare_digest(sign, expected):
            raise TuyaFailure(1004, "sign invalid")
        if token_call:
            return
        if not access_token:
            raise TuyaFailure(1010, "token invalid: access_token is null")
        grant = self._grants.get(access_token)
        if grant is None:
            raise TuyaFailure(1010, "token invalid")
        if grant.expires_at <= self._clock.now():
            raise TuyaFailure(1010, "token is expired")

    # --- tokens ----------------------------------------------------------------------------

    def _issue(self) -> dict[str, Any]:
        grant = _Grant(
            access_token=secrets.token_hex(16),
            refresh_token=secrets.token_hex(16),
            expires_at=self._clock.now() + timedelta(seconds=TOKEN_LIFETIME_SECONDS),
        )
        self._grants[grant.access_token] = grant
        self._refresh[grant.refresh_token] = grant
        return {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "expire_time": TOKEN_LIFETIME_SECONDS,
            "uid": f"bay{self._client_id}",
        }

    def _grant(self, request: Request, body: bytes) -> Any:
        if request.query_params.get("grant_type") != "1":
            raise TuyaFailure(1003, "grant type invalid")
        return self._issue()

    def _refresh_grant(self, request: Request, body: bytes) -> Any:
        old = self._refresh.pop(request.path_params["refresh_token"], None)
        if old is None:
            raise TuyaFailure(1011, "token invalid")
        self._grants.pop(old.access_token, None)
        return self._issue()

    # --- tasks -----------------------------------------------------------------------------

    def _check_project(self, request: Request) -> str:
        project_id: str = request.path_params["project_id"]
        if project_id not in self._rooms_of:
            raise TuyaFailure(1106, "permission deny")
        return project_id

    def _task(self, request: Request) -> _Task:
        project_id = self._check_project(request)
        task = self._tasks.get(request.path_params["task_id"])
        # Another project's task does not exist for this one.
        if task is None or task.project_id != project_id:
            raise TuyaFailure(1000, "data not exist: task not exist")
        return task

    def _summary_json(self, task: _Task) -> dict[str, Any]:
        worker = next(w for w in WORKERS if w["worker_id"] == task.worker_id)
        return {
            "task_id": task.task_id,
            "worker_username": worker["username"],
            "worker_nickname": worker["nickname"],
            "maintenance_status": task.status.value,
            "gmt_create": to_epoch_millis(task.created),
        }

    def _detail_json(self, task: _Task) -> dict[str, Any]:
        data = self._summary_json(task)
        # The doc's detail example names the key differently from its list example.
        data["construction_status"] = data.pop("maintenance_status")
        data["room_device_relations"] = [
            {"room_id": room, "device_ids": list(devices)} for room, devices in task.relations
        ]
        return data

    def _create(self, request: Request, body: bytes) -> Any:
        project_id = self._check_project(request)
        try:
            payload = json.loads(body)
        except ValueError:
            raise TuyaFailure(1104, "type is incorrect: the body is not JSON") from None
        if not isinstance(payload, dict):
            raise TuyaFailure(1104, "type is incorrect: the body is not a JSON object")
        worker_id = payload.get("worker_id")
        relations = payload.get("room_device_relations")
        if not worker_id or not relations:
            raise TuyaFailure(1100, "param is empty: worker_id and room_device_relations")
        if not isinstance(worker_id, str) or not isinstance(relations, list):
            raise TuyaFailure(1104, "type is incorrect: worker_id or room_device_relations")
        if all(w["worker_id"] != worker_id for w in WORKERS):
            raise TuyaFailure(1000, "data not exist: worker not exist")
        parsed = [self._relation(item, self._rooms_of[project_id]) for item in relations]
        task_id = f"11123823965053{self._next_task:05d}"
        self._next_task += 1
        self._tasks[task_id] = _Task(
            task_id,
            worker_id,
            TaskStatus.PENDING_MAINTENANCE,
            self._clock.now(),
            parsed,
            project_id,
        )
        return task_id

    def _relation(
        self, item: Any, rooms: Sequence[tuple[str, str, str, str]]
    ) -> tuple[str, list[str]]:
        if not isinstance(item, dict):
            raise TuyaFailure(1104, "type is incorrect: room_device_relations item")
        room_id, device_ids = item.get("room_id"), item.get("device_ids")
        if not room_id or not device_ids:
            raise TuyaFailure(1100, "param is empty: room_id and device_ids")
        if not isinstance(room_id, str) or not isinstance(device_ids, list):
            raise TuyaFailure(1104, "type is incorrect: room_id or device_ids")
        if all(room[0] != room_id for room in rooms):
            raise TuyaFailure(1000, f"data not exist: room {room_id} not exist")
        in_room = {d[0] for d in EVERY_DEVICE if d[1] == room_id}
        for device_id in device_ids:
            if not isinstance(device_id, str) or device_id not in in_room:
                raise TuyaFailure(
                    RELATION_REFUSED, f"device {device_id} does not belong to room {room_id}"
                )
        return room_id, list(dict.fromkeys(device_ids))

    def _list(self, request: Request, body: bytes) -> Any:
        project_id = self._check_project(request)
        page_no, page_size = _page_params(request)
        ordered = sorted(
            (t for t in self._tasks.values() if t.project_id == project_id),
            key=lambda t: (t.created, t.task_id),
            reverse=True,
        )
        items = [self._summary_json(task) for task in ordered]
        return {
            "total": len(items),
            "page_no": page_no,
            "page_size": page_size,
            "tasks": _page(items, page_no, page_size),
        }

    def _detail(self, request: Request, body: bytes) -> Any:
        return self._detail_json(self._task(request))

    def _delete(self, request: Request, body: bytes) -> Any:
        task = self._task(request)
        del self._tasks[task.task_id]
        return True

    def _reopen(self, request: Request, body: bytes) -> Any:
        return self._decide(request, REOPEN_FROM, TaskStatus.PENDING_MAINTENANCE, "reopened")

    def _accept(self, request: Request, body: bytes) -> Any:
        return self._decide(request, ACCEPT_FROM, TaskStatus.ACCEPTANCE_COMPLETE, "accepted")

    def _decide(
        self, request: Request, allowed: frozenset[TaskStatus], target: TaskStatus, verb: str
    ) -> Any:
        task = self._task(request)
        try:
            self._transition(task, allowed, target, verb)
        except ValueError as exc:
            raise TuyaFailure(TASK_STATUS_REFUSED, str(exc)) from None
        return True

    # --- workers, rooms, devices -----------------------------------------------------------

    def _workers(self, request: Request, body: bytes) -> Any:
        page_no, page_size = _page_params(request)
        items = [dict(worker) for worker in WORKERS]
        return {
            "total": len(items),
            "page_no": page_no,
            "page_size": page_size,
            "workers": _page(items, page_no, page_size),
        }

    def _rooms(self, request: Request, body: bytes) -> Any:
        project_id = self._check_project(request)
        page_no, page_size = _page_params(request)
        # A fixed install time keeps the room list identical across resets and runs.
        installed = 1_700_000_000_000
        items = [
            {
                "room_id": room_id,
                "room_name": name,
                "room_no": number,
                "description": description,
                "gmt_create": installed,
                "gmt_modified": installed,
            }
            for room_id, name, number, description in self._rooms_of[project_id]
        ]
        return {
            "total": len(items),
            "page_no": page_no,
            "page_size": page_size,
            "rooms": _page(items, page_no, page_size),
        }

    def _devices(self, request: Request, body: bytes) -> Any:
        room_id = request.path_params["room_id"]
        if all(room[0] != room_id for room in EVERY_ROOM):
            raise TuyaFailure(1000, f"data not exist: room {room_id} not exist")
        return [
            {
                "device_id": device_id,
                "name": name,
                "category": category,
                "product_id": f"demo-{category}",
                "online": True,
            }
            for device_id, room, name, category in EVERY_DEVICE
            if room == room_id
        ]

    def _unknown_path(self, request: Request, body: bytes) -> Any:
        raise TuyaFailure(1108, "uri path invalid")
