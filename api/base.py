"""What every vendor client shares: one pooled httpx client, error mapping and safe retries."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
RequestObserver = Callable[[str, str, str, float], None]
"""Told of every request: (vendor, operation, outcome, seconds); outcome is "ok", "timeout",
"network" or the kind of error the answer meant ("auth_error", "rate_limited", ...)."""

# Requests of the attempt in progress that got a 2xx answer: whether it meant success is known
# only once the attempt has read the vendor's envelope (Akubela and Tuya fail inside a 200).
_answered: ContextVar[list[tuple[str, float]] | None] = ContextVar("_answered", default=None)
_VERSION = re.compile(r"v\d+(\.\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{0,39}|oauth2")


def outcome_of(error: ApiError) -> str:
    """An error's kind as a metric label: `RateLimited` -> "rate_limited"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def path_template(path: str) -> str:
    """A request path with its ids (and anything else that is not a plain word) as `{id}`,
    so an operation names no record and no credential."""
    parts: list[str] = []
    for segment in path.strip("/").split("/"):
        keep = _VERSION.fullmatch(segment) or _WORD.fullmatch(segment)
        # A segment after "token" is a refresh token, whatever it looks like.
        parts.append(segment if keep and parts[-1:] != ["token"] else "{id}")
    return "/" + "/".join(parts)


class VendorModel(BaseModel):
    """Base of every vendor model: unknown fields are ignored, names or aliases both accepted."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries for calls that are safe to repeat: reads and token requests, never creates."""

    retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None to give up."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            # A vendor asking for a longer pause than we are willing to hold a user for wins:
            # give up now and let the caller queue the work instead.
            return retry_after if retry_after <= self.max_delay else None
        backoff: float = min(self.max_delay, self.base_delay * 2.0**attempt)
        jitter: float = random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not crypto
        return backoff / 2 + jitter


NO_RETRY = RetryPolicy(retries=0)


def default_timeout(connect: float = 5.0, read: float = 15.0) -> httpx.Timeout:
    """Explicit timeouts: a vendor that hangs must not hold a conversation forever."""
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def parse_retry_after(value: str | None) -> float | None:
    """Reads a Retry-After header given in seconds or as an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    status: int,
    message: str,
    *,
    vendor: str,
    code: str | int | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Maps an HTTP status to the exception a caller catches by meaning."""
    if status in (401, 403):
        return AuthError(message, vendor=vendor, code=code, status=status)
    if status == 404:
        return NotFound(message, vendor=vendor, code=code, status=status)
    if status == 429:
        return RateLimited(
            message, vendor=vendor, code=code, status=status, retry_after=retry_after
        )
    if status == 408 or status >= 500:
        # The request may have been acted on before the vendor failed to answer.
        return Unavailable(message, vendor=vendor, code=code, status=status, outcome_unknown=True)
    return InvalidRequest(message, vendor=vendor, code=code, status=status)


def unavailable_from_transport(exc: httpx.TransportError, *, vendor: str) -> Unavailable:
    """Maps an httpx transport failure; only a refused connection proves nothing was sent."""
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return Unavailable(f"{reason} ({type(exc).__name__})", vendor=vendor, outcome_unknown=sent)


def json_or_unavailable(response: httpx.Response, *, vendor: str) -> Any:
    """Decodes a JSON body; a garbled one is a vendor failure whose outcome is unknown."""
    try:
        return response.json()
    except ValueError:
        raise Unavailable(
            f"answer was not JSON (HTTP {response.status_code})",
            vendor=vendor,
            status=response.status_code,
            outcome_unknown=True,
        ) from None


class VendorClient:
    """Owns one pooled `httpx.AsyncClient`; subclasses add the vendor's envelope and auth."""

    vendor: ClassVar[str] = "vendor"

    def __init__(
        self,
        *,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout or default_timeout(),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            headers={"Accept": "application/json"},
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._observer: RequestObserver | None = None

    def observe_requests(self, observer: RequestObserver) -> None:
        """Tells `observer` about every request from now on (the bot's metrics)."""
        self._observer = observer

    def _operation(self, request: httpx.Request) -> str:
        """What a request does, for metrics: its method and path template."""
        path = request.url.path.removeprefix(self._http.base_url.path.rstrip("/"))
        return f"{request.method} {path_template(path)}"

    def _observe(self, operation: str, outcome: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer(self.vendor, operation, outcome, seconds)

    def _settle(self, answered: list[tuple[str, float]], outcome: str) -> None:
        for operation, seconds in answered:
            self._observe(operation, outcome, seconds)
        answered.clear()

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(
        self, request: httpx.Request, *, auth: httpx.Auth | None = None
    ) -> httpx.Response:
        """Sends one request, turning transport failures into `Unavailable`."""
        operation = self._operation(request) if self._observer is not None else ""
        started = time.perf_counter()
        try:
            response = await self._http.send(request, auth=auth)
        except httpx.TransportError as exc:
            outcome = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
            self._observe(operation, outcome, time.perf_counter() - started)
            raise unavailable_from_transport(exc, vendor=self.vendor) from None
        seconds = time.perf_counter() - started
        answered = _answered.get()
        if not response.is_success:
            error = error_for_status(response.status_code, "", vendor=self.vendor)
            self._observe(operation, outcome_of(error), seconds)
        elif answered is None:
            self._observe(operation, "ok", seconds)
        else:
            answered.append((operation, seconds))
        return response

    async def _retrying(self, operation: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        """Runs `operation`, repeating it on transient failures only when `retry` is true."""
        attempt = 0
        while True:
            answered: list[tuple[str, float]] = []
            token = _answered.set(answered)
            try:
                result = await operation()
            except ApiError as exc:
                self._settle(answered, outcome_of(exc))
                if not isinstance(exc, Unavailable | RateLimited):
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                delay = self._retry.delay(attempt, retry_after) if retry else None
                if delay is None:
                    raise
                logger.info(
                    "%s call failed (%s), retry %d in %.2fs",
                    self.vendor,
                    type(exc).__name__,
                    attempt + 1,
                    delay,
                )
            else:
                self._settle(answered, "ok")
                return result
            finally:
                # Anything else (a bug, a cancellation) still counts the requests it made.
                self._settle(answered, "error")
                _answered.reset(token)
            attempt += 1
            await self._sleep(delay)
