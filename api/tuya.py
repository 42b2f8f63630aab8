"""Tuya osaas client: signed requests, tokens, and the maintenance-task operations.

Signing (Tuya cloud "new" algorithm, shared with the sandbox so both sides agree)::

    stringToSign = METHOD + "\\n" + sha256_hex(body bytes) + "\\n" + headers + "\\n" + url
    sign = HMAC-SHA256(secret, client_id [+ access_token] + t + nonce + stringToSign).upper()

`url` is the path plus the query sorted by key (`k=v` joined by `&`, values as sent before
percent-encoding); `headers` is empty because no `Signature-Headers` are used; token calls
sign without the access token. The body is serialised once and those exact bytes are hashed
and sent (httpx's `json=` would serialise again, differently).

Tokens: `GET /v1.0/token?grant_type=1` gives an access token (7200 s) and a single-use refresh
token; a minute before expiry the client calls `GET /v1.0/token/{refresh_token}`, and when a
call answers 1010/1011/1012 it renews the token and repeats that call once. Refresh tokens
travel in a URL, so every token is registered with `api.redaction.secrets_filter`.

Failures (Tuya answers HTTP 200 with `success: false` and a numeric `code`):

| code / status                              | exception                                 |
|--------------------------------------------|-------------------------------------------|
| 1010, 1011, 1012 (token expired/invalid)   | renew + retry once, then `AuthError`      |
| 1001-1005, 1007, 1008, 1013 (bad t), 1106, | `AuthError`                               |
| 1107 (credentials, signature, permission)  |                                           |
| 1000, 1108, 1109, msg "... not exist"      | `NotFound`                                |
| 1110, 40000309, HTTP 429                   | `RateLimited` (retried for reads)         |
| 500, 1111, HTTP 5xx, non-JSON answer       | `Unavailable`, outcome unknown (reads     |
|                                            | retried, writes never)                    |
| 1006, 1100-1105 and any business refusal   | `InvalidRequest` with Tuya's code and msg |

Endpoints beyond the maintenance-task doc follow Tuya's published osaas shapes where they
exist, and are otherwise designed in the same style (the sandbox serves exactly these):

- `GET /v1.0/osaas/construction/workers?page_no=&page_size=` -> `{total, page_no,
  page_size, workers: [{worker_id, username, nickname}]}` (workers belong to the client's
  account, so no project id is sent);
- `GET /v1.0/osaas/projects/{project_id}/rooms?page_no=&page_size=` -> `{total, page_no,
  page_size, rooms: [{room_id, room_name, room_no, description, gmt_create, gmt_modified}]}`;
- `GET /v1.0/osaas/rooms/{room_id}/devices` -> `[{device_id, name, category, product_id,
  online}]` (a bare list; a `{devices: [...]}` wrapper is accepted too).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from api.base import (
    RetryPolicy,
    Sleep,
    VendorClient,
    error_for_status,
    json_or_unavailable,
    parse_retry_after,
)
from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from api.redaction import secrets_filter
from api.tuya_models import (
    CreateTaskRequest,
    Device,
    Room,
    RoomDeviceRelation,
    RoomPage,
    TaskDetail,
    TaskPage,
    TaskSummary,
    TokenResult,
    TuyaEnvelope,
    Worker,
    WorkerPage,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P")
T = TypeVar("T")
QueryValue = str | int
Query = Mapping[str, QueryValue]

SIGN_METHOD = "HMAC-SHA256"
TOKEN_PATH = "/v1.0/token"  # noqa: S105 - a URL path, not a credential
MAX_PAGE_SIZE = 99
# Renew this long before Tuya says the token dies, so a call in flight does not race expiry.
REFRESH_MARGIN_SECONDS = 60.0

TOKEN_CODES = frozenset({1010, 1011, 1012})
AUTH_CODES = frozenset({1001, 1002, 1003, 1004, 1005, 1007, 1008, 1013, 1106, 1107})
NOT_FOUND_CODES = frozenset({1000, 1108, 1109})
RATE_LIMIT_CODES = frozenset({1110, 40000309})
UNAVAILABLE_CODES = frozenset({500, 1111})


# --- signing ---------------------------------------------------------------------------------


def content_sha256(body: bytes) -> str:
    """Lower-case hex SHA-256 of the exact body bytes (of b"" when there is no body)."""
    return hashlib.sha256(body).hexdigest()


def canonical_url(path: str, query: Query | None = None) -> str:
    """The `Url` part of stringToSign: the path, then the query sorted by key."""
    if not query:
        return path
    pairs = sorted((key, str(value)) for key, value in query.items())
    return path + "?" + "&".join(f"{key}={value}" for key, value in pairs)


def string_to_sign(method: str, body: bytes, url: str, signed_headers: str = "") -> str:
    """Tuya's stringToSign; `signed_headers` is the `k:v\\n` lines of `Signature-Headers`."""
    return f"{method.upper()}\n{content_sha256(body)}\n{signed_headers}\n{url}"


def tuya_sign(
    secret: str,
    *,
    client_id: str,
    t: str,
    nonce: str,
    to_sign: str,
    access_token: str = "",
) -> str:
    """HMAC-SHA256 over client_id + access_token + t + nonce + stringToSign, upper-case hex."""
    message = client_id + access_token + t + nonce + to_sign
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest().upper()


def encode_body(payload: Any) -> bytes:
    """Serialises a JSON body once, compactly; the same bytes are hashed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- errors ----------------------------------------------------------------------------------


def _as_int(code: int | str | None) -> int | None:
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code)
    return None


def error_for_code(
    code: int | str | None,
    msg: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Maps a Tuya failure code (see the module table) to the exception callers catch."""
    vendor = TuyaClient.vendor
    # Tuya echoes request details in some messages; never let one carry a token onwards.
    message = secrets_filter.redact(msg or "request failed")
    number = _as_int(code)
    lowered = message.lower()
    if number in TOKEN_CODES or number in AUTH_CODES:
        return AuthError(message, vendor=vendor, code=code, status=status)
    if number in NOT_FOUND_CODES or "not exist" in lowered:
        return NotFound(message, vendor=vendor, code=code, status=status)
    if number in RATE_LIMIT_CODES or "frequen" in lowered or "over limit" in lowered:
        return RateLimited(
            message, vendor=vendor, code=code, status=status, retry_after=retry_after
        )
    if number in UNAVAILABLE_CODES:
        return Unavailable(message, vendor=vendor, code=code, status=status, outcome_unknown=True)
    return InvalidRequest(message, vendor=vendor, code=code, status=status)


def _error_for_http(response: httpx.Response) -> ApiError:
    """A non-2xx answer: Tuya's own envelope when it sent one, else the HTTP status."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    msg = body.get("msg") if isinstance(body, dict) else None
    if status == 429 or status >= 500:
        # The status is the more reliable signal for throttling and outages.
        text = secrets_filter.redact(str(msg)) if msg else f"HTTP {status}"
        return error_for_status(
            status, text, vendor=TuyaClient.vendor, code=code, retry_after=retry_after
        )
    if code is not None:
        return error_for_code(code, str(msg or ""), status=status, retry_after=retry_after)
    return error_for_status(status, f"HTTP {status}", vendor=TuyaClient.vendor)


# --- client ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    uid: str = ""


def _validate_page(page_no: int, page_size: int) -> None:
    if page_no < 1:
        raise ValueError("page_no starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


async def _walk(
    fetch: Callable[[int, int], Awaitable[P]],
    unpack: Callable[[P], tuple[list[T], int]],
    page_size: int,
) -> AsyncIterator[T]:
    """Yields the items of page 1, 2, ... until `total` is reached or a page comes back empty."""
    _validate_page(1, page_size)
    page_no = 1
    while True:
        items, total = unpack(await fetch(page_no, page_size))
        for item in items:
            yield item
        if not items or page_no * page_size >= total:
            return
        page_no += 1


def _new_nonce() -> str:
    return uuid.uuid4().hex


class TuyaClient(VendorClient):
    """Tuya osaas maintenance tasks for one project, with signing and token upkeep."""

    vendor: ClassVar[str] = "tuya"

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        project_id: str,
        lang: str = "en",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        super().__init__(
            base_url=base_url, transport=transport, timeout=timeout, retry=retry, sleep=sleep
        )
        self._client_id = client_id
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        secrets_filter.add(self._secret.get_secret_value())
        self.project_id = project_id
        self._lang = lang
        self._clock = clock
        self._nonce = nonce
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TuyaClient(client_id={self._client_id!r}, project_id={self.project_id!r})"

    # --- transport and signing -------------------------------------------------------------

    def _signed_request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        payload: Any = None,
        access_token: str = "",
    ) -> httpx.Request:
        """Builds one request whose `sign` covers exactly the bytes and URL that are sent."""
        body = b"" if payload is None else encode_body(payload)
        t = str(int(self._clock() * 1000))
        nonce = self._nonce()
        sign = tuya_sign(
            self._secret.get_secret_value(),
            client_id=self._client_id,
            access_token=access_token,
            t=t,
            nonce=nonce,
            to_sign=string_to_sign(method, body, canonical_url(path, query)),
        )
        headers = {
            "client_id": self._client_id,
            "sign": sign,
            "sign_method": SIGN_METHOD,
            "t": t,
            "nonce": nonce,
            "lang": self._lang,
        }
        if access_token:
            headers["access_token"] = access_token
        if payload is not None:
            headers["Content-Type"] = "application/json"
        url = quote(path, safe="/")
        if query:
            # Send the query in the order it was signed, so the two never drift apart.
            url += "?" + urlencode(sorted((key, str(value)) for key, value in query.items()))
        return self._http.build_request(method, url, content=body or None, headers=headers)

    async def _exchange(self, request: httpx.Request) -> Any:
        """Sends a signed request and unwraps Tuya's envelope into its `result`."""
        response = await self._send(request)
        if not response.is_success:
            raise _error_for_http(response)
        data = json_or_unavailable(response, vendor=self.vendor)
        try:
            envelope = TuyaEnvelope.model_validate(data)
        except ValidationError:
            raise Unavailable(
                "answer was not a Tuya envelope", vendor=self.vendor, outcome_unknown=True
            ) from None
        if not envelope.success:
            raise error_for_code(
                envelope.code,
                envelope.msg or "",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return envelope.result

    # --- tokens ----------------------------------------------------------------------------

    def _store_token(self, result: Any) -> _Token:
        try:
            parsed = TokenResult.model_validate(result)
        except ValidationError:
            raise Unavailable(
                "token answer had an unexpected shape", vendor=self.vendor, outcome_unknown=True
            ) from None
        access = parsed.access_token.get_secret_value()
        refresh = parsed.refresh_token.get_secret_value()
        # The access token is forgotten by the log filter once it has expired; the refresh
        # token once it is replaced (spent, or given up for a fresh grant).
        secrets_filter.add(access, ttl=parsed.expire_time)
        secrets_filter.add(refresh)
        token = _Token(access, refresh, self._clock() + parsed.expire_time, parsed.uid)
        old, self._token = self._token, token
        if old is not None and old.refresh_token != refresh:
            secrets_filter.discard(old.refresh_token)
        return token

    async def _grant(self) -> _Token:
        """A fresh token from the client credentials (safe to repeat, so retried)."""

        async def attempt() -> Any:
            request = self._signed_request("GET", TOKEN_PATH, query={"grant_type": 1})
            return await self._exchange(request)

        return self._store_token(await self._retrying(attempt, retry=True))

    async def _refresh(self, token: _Token) -> _Token:
        """Trades the single-use refresh token; any failure falls back to a fresh grant."""
        request = self._signed_request("GET", f"{TOKEN_PATH}/{token.refresh_token}")
        try:
            # Never retried: a refresh that reached Tuya has spent its token already.
            return self._store_token(await self._exchange(request))
        except ApiError as exc:
            logger.info("tuya token refresh failed (%s), asking for a new token", exc)
            return await self._grant()

    async def _access_token(self) -> _Token:
        """The current token, renewed first when it is missing or about to expire."""
        async with self._token_lock:
            token = self._token
            if token is None:
                return await self._grant()
            if self._clock() >= token.expires_at - REFRESH_MARGIN_SECONDS:
                return await self._refresh(token)
            return token

    async def _renew_after_rejection(self, rejected: _Token) -> _Token:
        """Renews a token Tuya refused, unless a concurrent call already did."""
        async with self._token_lock:
            current = self._token
            if current is not None and current is not rejected:
                return current
            return await self._refresh(rejected)

    # --- calls -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        payload: Any = None,
        retry: bool,
    ) -> Any:
        """One business call: token, signature, one renewal on 1010-1012, retries if safe."""

        async def attempt() -> Any:
            token = await self._access_token()
            try:
                return await self._exchange(
                    self._signed_request(
                        method, path, query=query, payload=payload, access_token=token.access_token
                    )
                )
            except AuthError as exc:
                if _as_int(exc.code) not in TOKEN_CODES:
                    raise
                # Tuya refused the token before acting, so even a write is safe to repeat once.
                logger.info("tuya token refused (code %s), renewing once", exc.code)
                token = await self._renew_after_rejection(token)
                return await self._exchange(
                    self._signed_request(
                        method, path, query=query, payload=payload, access_token=token.access_token
                    )
                )

        return await self._retrying(attempt, retry=retry)

    def _parse(self, model: type[M], result: Any) -> M:
        try:
            return model.model_validate(result)
        except ValidationError:
            raise Unavailable(
                f"unexpected {model.__name__} shape", vendor=self.vendor, outcome_unknown=True
            ) from None

    def _flag(self, result: Any) -> bool:
        if not isinstance(result, bool):
            raise Unavailable(
                "expected a true/false result", vendor=self.vendor, outcome_unknown=True
            )
        return result

    def _task_path(self, task_id: str = "") -> str:
        base = f"/v1.0/osaas/projects/{self.project_id}/maintenance/tasks"
        return f"{base}/{task_id}" if task_id else base

    # --- maintenance tasks -----------------------------------------------------------------

    async def create_task(
        self, worker_id: str, room_device_relations: list[RoomDeviceRelation]
    ) -> str:
        """Creates a task for a worker; never resent blindly (Tuya has no de-duplication)."""
        body = CreateTaskRequest(worker_id=worker_id, room_device_relations=room_device_relations)
        result = await self._call(
            "POST",
            f"/v1.0/osaas/projects/{self.project_id}/maintenance/task",
            payload=body.model_dump(mode="json"),
            retry=False,
        )
        if isinstance(result, bool) or not isinstance(result, str | int) or result == "":
            raise Unavailable(
                "create answered without a task id", vendor=self.vendor, outcome_unknown=True
            )
        return str(result)

    async def list_tasks(self, page_no: int = 1, page_size: int = 20) -> TaskPage:
        """One page of the project's tasks (1 <= page_size <= 99)."""
        _validate_page(page_no, page_size)
        result = await self._call(
            "GET",
            self._task_path(),
            query={"page_no": page_no, "page_size": page_size},
            retry=True,
        )
        return self._parse(TaskPage, result)

    async def iter_tasks(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[TaskSummary]:
        """Every task of the project, page after page."""
        async for task in _walk(self.list_tasks, lambda page: (page.tasks, page.total), page_size):
            yield task

    async def get_task(self, task_id: str) -> TaskDetail:
        """One task with its rooms and devices."""
        result = await self._call("GET", self._task_path(task_id), retry=True)
        return self._parse(TaskDetail, result)

    async def reopen_task(self, task_id: str) -> bool:
        """Sends a finished or accepted task back to the worker."""
        result = await self._call("POST", f"{self._task_path(task_id)}/reopen", retry=False)
        return self._flag(result)

    async def accept_task(self, task_id: str) -> bool:
        """Accepts a task the worker has finished."""
        result = await self._call("POST", f"{self._task_path(task_id)}/acceptance", retry=False)
        return self._flag(result)

    async def delete_task(self, task_id: str) -> bool:
        """Deletes a task."""
        result = await self._call("DELETE", self._task_path(task_id), retry=False)
        return self._flag(result)

    # --- what a task is built from ----------------------------------------------------------

    async def list_workers(self, page_no: int = 1, page_size: int = 20) -> WorkerPage:
        """One page of the construction workers."""
        _validate_page(page_no, page_size)
        result = await self._call(
            "GET",
            "/v1.0/osaas/construction/workers",
            query={"page_no": page_no, "page_size": page_size},
            retry=True,
        )
        return self._parse(WorkerPage, result)

    async def iter_workers(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[Worker]:
        """Every construction worker, page after page."""
        pages = _walk(self.list_workers, lambda page: (page.workers, page.total), page_size)
        async for worker in pages:
            yield worker

    async def list_rooms(self, page_no: int = 1, page_size: int = 20) -> RoomPage:
        """One page of the project's rooms."""
        _validate_page(page_no, page_size)
        result = await self._call(
            "GET",
            f"/v1.0/osaas/projects/{self.project_id}/rooms",
            query={"page_no": page_no, "page_size": page_size},
            retry=True,
        )
        return self._parse(RoomPage, result)

    async def iter_rooms(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[Room]:
        """Every room of the project, page after page."""
        async for room in _walk(self.list_rooms, lambda page: (page.rooms, page.total), page_size):
            yield room

    async def list_devices(self, room_id: str) -> list[Device]:
        """The devices in one room."""
        result = await self._call("GET", f"/v1.0/osaas/rooms/{room_id}/devices", retry=True)
        if isinstance(result, dict):
            result = result.get("devices", result.get("list"))
        if not isinstance(result, list):
            raise Unavailable(
                "expected a list of devices", vendor=self.vendor, outcome_unknown=True
            )
        return [self._parse(Device, item) for item in result]
