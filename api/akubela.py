"""Akubela client: OAuth2, resident "user commands" and project-wide "manager commands".

Every call is `POST {base}/api/v1.0/invoke/open-ability/method/<channel>` with
`{"command", "id", "param"}` and answers `{"success", "timestamp", "result"}`. A call fails
when `success` is not true (even on HTTP 200), on a non-2xx status or on a body that is not
JSON. The shapes the docs leave out (family list, account info, manager pages, the failure
envelope) are described in `api.akubela_models`.

The failure page the docs point to is missing, so a failure is read by what it plausibly
means, whatever its shape (`{code, message}` on 4xx, `success: false` with a number on HTTP
200, OAuth's `{error, error_description}`, a bare 401), in this order: the HTTP status
(401/403 `AuthError`, 429, 5xx); words in the code or message ("token expired", "invalid_grant",
"令牌过期", ...); a numeric code shaped like an HTTP status (40100 or 401 `AuthError`, 40400
`NotFound`, 42900 `RateLimited`, 50000 `Unavailable`), so a token refused on HTTP 200 with a
code nobody documented still renews the token and repeats the call once; 404 or "not found"
words `NotFound`; anything else `InvalidRequest`.

One `AkubelaClient` serves every resident; each call takes the `AkubelaTokens` of the person
it is made for: the call's `httpx.Auth`, which keeps that person's access token fresh and
shares its renewal with every other holder of the account (see `TokenStore`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlencode
from uuid import uuid4

import httpx
from pydantic import SecretStr, ValidationError

from api.akubela_models import (
    Account,
    Amenity,
    BatchDeleteBooking,
    BatchDeleteMaintenance,
    Booking,
    BookingKey,
    BookingParam,
    BookingTimeList,
    BookingTimeQuery,
    CodeBooking,
    CommandParam,
    CreatedBooking,
    CreatedMaintenance,
    Family,
    Maintenance,
    MaintenanceKey,
    MaintenanceParam,
    ManagerMaintenance,
    ManagerMaintenancePage,
    ManagerMaintenanceQuery,
    NewBooking,
    NewMaintenance,
    NoParam,
    ResidenceParam,
    Scope,
    TokenSet,
)
from api.base import (
    RetryPolicy,
    Sleep,
    VendorClient,
    VendorModel,
    error_for_status,
    json_or_unavailable,
    parse_retry_after,
)
from api.errors import (
    ApiError,
    AuthError,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unavailable,
)
from api.redaction import secrets_filter

logger = logging.getLogger(__name__)

METHOD_PATH = "/api/v1.0/invoke/open-ability/method"
USER_CHANNEL = "user-commands"
MANAGER_CHANNEL = "manager-commands"
TOKEN_PATH = f"{METHOD_PATH}/oauth2/token"
AUTH_PATH = f"{METHOD_PATH}/oauth2/auth"
# An authorization code is single-use and short-lived; it is masked in logs for this long.
AUTH_CODE_TTL_SECONDS = 600.0

M = TypeVar("M", bound=VendorModel)
Clock = Callable[[], datetime]
OnRefresh = Callable[[TokenSet], Awaitable[None]]
Login = Callable[[], Awaitable[TokenSet]]

_MESSAGE_KEYS = ("message", "msg", "error_description", "error")
_AUTH_WORDS = re.compile(
    r"(?i)(invalid|expired|bad|unknown|revoked|missing)[\s_-]*(access[\s_-]*)?token"
    r"|token[\s_-]*(is[\s_-]*)?(has[\s_-]*)?(invalid|expired|revoked)"
    r"|unauthori[sz]ed|invalid[_\s]grant|invalid[_\s]client|令牌.*(过期|失效|无效)"
)
_NOT_FOUND_WORDS = re.compile(r"(?i)not[\s_-]*found|not[\s_-]*exist|no[\s_-]*such|不存在|未找到")


def utc_now() -> datetime:
    """The real time as an aware UTC datetime."""
    return datetime.now(UTC)


def failure_message(data: Any) -> str | None:
    """The vendor's words for a failure, from the first key that carries them."""
    if not isinstance(data, dict):
        return None
    for key in _MESSAGE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    result = data.get("result")
    if isinstance(result, dict):
        for key in ("message", "msg"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _status_shaped(code: str | int | None) -> int | None:
    """The HTTP status a numeric vendor code stands for (40100 -> 401, 404 -> 404), if any."""
    text = str(code) if isinstance(code, int) else (code or "").strip()
    if not text.isdigit() or len(text) < 3:
        return None
    status = int(text[:3])
    return status if 400 <= status <= 599 else None


def _failure_code(data: Any) -> str | int | None:
    if not isinstance(data, dict):
        return None
    for key in ("code", "error"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return value
    return None


class TokenSlot(Protocol):
    """An account's stored tokens, read while its renewal lock is held."""

    @property
    def tokens(self) -> TokenSet | None:
        """The tokens as stored when the lock was taken."""
        ...

    async def save(self, tokens: TokenSet) -> None:
        """Stores renewed tokens; they are kept by the time the lock is released."""
        ...

    async def lose(self, error: AuthError) -> None:
        """The login cannot be renewed any more: its owner has to sign in again."""
        ...


class TokenStore(Protocol):
    """Where an account's tokens are kept, shared by every holder of that account."""

    def renewing(self) -> AbstractAsyncContextManager[TokenSlot]:
        """Takes the account's renewal lock and reads its tokens (`AuthError`: none left)."""
        ...


class _MemorySlot:
    def __init__(self, store: MemoryTokenStore) -> None:
        self._store = store
        self.tokens = store.tokens

    async def save(self, tokens: TokenSet) -> None:
        self._store.tokens = tokens
        if self._store.on_save is not None:
            await self._store.on_save(tokens)

    async def lose(self, error: AuthError) -> None:
        self._store.lost = error


class MemoryTokenStore:
    """Tokens kept in this process only (a login of its own; tests): holders sharing one store
    renew once between them."""

    def __init__(
        self, tokens: TokenSet | None = None, *, on_save: OnRefresh | None = None
    ) -> None:
        self.tokens = tokens
        self.on_save = on_save
        self.lost: AuthError | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def renewing(self) -> AsyncIterator[TokenSlot]:
        """The store's lock, and its tokens."""
        async with self._lock:
            if self.lost is not None:
                raise AuthError("the account must be linked again", vendor="akubela")
            yield _MemorySlot(self)


def _token_refused(response: httpx.Response) -> bool:
    """Whether Akubela refused the access token itself (and so did nothing with the request)."""
    status = response.status_code
    if status == 401:
        return True
    # 403 is a token that may not do this (wrong scope): a new one would not help.
    if status in (403, 408, 429) or status >= 500:
        return False
    try:
        data = response.json()
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get("success") is True:
        return False
    code = _failure_code(data)
    # A failure envelope on HTTP 200 may say only "authentication failed" with a 401-shaped
    # code (40100): the code is all there is to go on.
    if _status_shaped(code) == 401:
        return True
    meaning = f"{code or ''} {failure_message(data) or ''}"
    return bool(_AUTH_WORDS.search(meaning))


def _spent(error: AuthError) -> bool:
    """Whether a refused refresh says the refresh token itself is dead (RFC 6749 invalid_grant),
    rather than, say, the bot's client credentials being wrong."""
    return str(error.code or "").lower() == "invalid_grant"


def _newer(first: TokenSet | None, second: TokenSet | None) -> TokenSet | None:
    if first is None or second is None:
        return first or second
    return second if second.expires_at > first.expires_at else first


class AkubelaTokens(httpx.Auth):
    """One account's tokens, as the `httpx.Auth` of every call made for that account.

    Renewed shortly before expiry and once when the vendor refuses the access token (the
    refused request then goes again, even a write: the vendor did nothing with it). Calls of
    this holder share one renewal (an asyncio lock); holders of the same account in other
    processes share it through the `TokenStore`, whose lock is held from reading the stored
    tokens to writing the renewed ones back. Under that lock the holder first looks at what is
    stored: tokens newer than those that failed (renewed by another process, or a new link) are
    used as they are, and only otherwise is the single-use refresh token spent.

    A refresh whose answer is lost is sent again with the same refresh token (`refresh` retries
    token calls): if Akubela had not acted, that works; if it had, the token it rotated is
    gone, Akubela documents no way to get it back, and the refusal (`invalid_grant`) means the
    account must be linked again, which the store is told once (`TokenSlot.lose`). With `login`
    (the manager's password grant), fresh tokens are obtained instead.
    """

    requires_response_body = True  # an "expired token" may come as a failure envelope on 200

    def __init__(
        self,
        client: AkubelaClient,
        tokens: TokenSet | None = None,
        *,
        store: TokenStore | None = None,
        on_refresh: OnRefresh | None = None,
        login: Login | None = None,
        margin: timedelta = timedelta(seconds=60),
        clock: Clock = utc_now,
    ) -> None:
        if tokens is None and login is None:
            raise ValueError("AkubelaTokens needs tokens or a way to log in")
        if store is not None and on_refresh is not None:
            raise ValueError("on_refresh is for the in-memory store; a store keeps tokens itself")
        self._client = client
        self._tokens: TokenSet | None = None
        self._store: TokenStore = store or MemoryTokenStore(tokens, on_save=on_refresh)
        self._login = login
        self._margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        if tokens is not None:
            self._adopt(tokens)

    def __repr__(self) -> str:
        expires = self._tokens.expires_at.isoformat() if self._tokens else None
        return f"AkubelaTokens(expires_at={expires})"

    @property
    def tokens(self) -> TokenSet | None:
        """The tokens in use now."""
        return self._tokens

    def _fresh(self, tokens: TokenSet | None) -> bool:
        return tokens is not None and tokens.expires_at - self._margin > self._clock()

    # ---- httpx.Auth ----------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Not supported: renewing takes async I/O (the vendor, the token store)."""
        raise RuntimeError("AkubelaTokens works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this the generator httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Sends the request with a usable token; renews it once if the vendor refuses it."""
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        await response.aread()
        if not _token_refused(response):
            return
        # Refused before acting, so even a write may go again (same command id).
        await self.rejected(token)
        request.headers["Authorization"] = f"Bearer {await self.access_token()}"
        yield request

    # ---- renewal -------------------------------------------------------------------------

    async def access_token(self) -> str:
        """A usable access token, renewing it first when it is about to expire."""
        tokens = self._tokens
        if not self._fresh(tokens):
            async with self._lock:
                if not self._fresh(self._tokens):
                    await self._renew(self._tokens)
            tokens = self._tokens
        assert tokens is not None  # _renew either sets tokens or raises
        return tokens.access_token.get_secret_value()

    async def rejected(self, stale: str) -> None:
        """The vendor refused `stale`: renew, unless a concurrent call already did."""
        async with self._lock:
            current = self._tokens
            if current is not None and current.access_token.get_secret_value() != stale:
                return
            await self._renew(current)

    async def _renew(self, failed: TokenSet | None) -> None:
        """New tokens in place of `failed`, under the store's lock (the caller holds ours)."""
        failed_access = failed.access_token.get_secret_value() if failed else None
        try:
            async with self._store.renewing() as slot:
                newest = _newer(slot.tokens, self._tokens)
                if (
                    newest is not None
                    and newest.access_token.get_secret_value() != failed_access
                    and self._fresh(newest)
                ):
                    # Renewed meanwhile by another holder or process, or linked anew: use it.
                    renewed = newest
                    if newest is not slot.tokens:
                        await slot.save(newest)  # ours, and its write-back had failed
                else:
                    renewed = await self._obtain(newest, slot)
                    await slot.save(renewed)
        except Unavailable as exc:
            # The call this renewal was for never left: say so, whatever became of the
            # token request itself.
            raise Unavailable(
                f"could not renew the access token ({exc.message})",
                vendor=exc.vendor,
                code=exc.code,
                status=exc.status,
                outcome_unknown=False,
            ) from None
        self._adopt(renewed)

    async def _obtain(self, current: TokenSet | None, slot: TokenSlot) -> TokenSet:
        refresh = current.refresh_token if current is not None else None
        if refresh is not None:
            try:
                renewed = await self._client.refresh(refresh)
            except AuthError as exc:
                if self._login is None:
                    if _spent(exc):
                        await slot.lose(exc)
                    raise
                logger.info("akubela refresh token refused, logging in again")
            else:
                if renewed.refresh_token is None:
                    # A refresh answer without a new refresh token leaves the old one valid.
                    renewed = renewed.model_copy(update={"refresh_token": refresh})
                return renewed
        if self._login is None:
            error = AuthError(
                "no refresh token; the account must be linked again", vendor="akubela"
            )
            await slot.lose(error)
            raise error
        return await self._login()

    def _adopt(self, tokens: TokenSet) -> None:
        old = self._tokens
        self._tokens = tokens
        _register_secrets(tokens, self._clock())
        if old is not None and old.refresh_token is not None:
            spent = old.refresh_token.get_secret_value()
            if tokens.refresh_token is None or tokens.refresh_token.get_secret_value() != spent:
                secrets_filter.discard(spent)


def _register_secrets(tokens: TokenSet, now: datetime) -> None:
    # The access token is forgotten once it has expired; the refresh token stays until the
    # holder replaces it.
    ttl = max(0.0, (tokens.expires_at - now).total_seconds())
    secrets_filter.add(tokens.access_token.get_secret_value(), ttl=ttl)
    if tokens.refresh_token is not None:
        secrets_filter.add(tokens.refresh_token.get_secret_value())


class AkubelaClient(VendorClient):
    """Akubela's open-ability API: OAuth2, user commands and manager commands."""

    vendor: ClassVar[str] = "akubela"

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            base_url=base_url, transport=transport, timeout=timeout, retry=retry, sleep=sleep
        )
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        secrets_filter.add(client_secret.get_secret_value())

    def __repr__(self) -> str:
        return f"AkubelaClient(base_url={self._base_url!r}, client_id={self._client_id!r})"

    def _operation(self, request: httpx.Request) -> str:
        """For metrics: "token", or the command a command request sends ("get_booking_list")."""
        path = request.url.path
        if path.endswith(TOKEN_PATH):
            return "token"
        if path.endswith((USER_CHANNEL, MANAGER_CHANNEL)):
            try:
                command = json.loads(request.content).get("command")
            except (ValueError, AttributeError):
                command = None
            if isinstance(command, str) and command.isidentifier():
                return command
        return super()._operation(request)

    # ---- failures ----------------------------------------------------------------------

    def _failure(self, response: httpx.Response, data: Any) -> ApiError:
        """Turns a refused or failed answer into the exception a caller catches by meaning."""
        status = response.status_code
        code = _failure_code(data)
        message = failure_message(data)
        text = secrets_filter.redact(message or f"HTTP {status}, success flag not true")
        # Words like "token expired" may arrive as the code alone (OAuth's `error`).
        meaning = f"{code or ''} {message or ''}"
        if status in (401, 403, 408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return error_for_status(
                status, text, vendor=self.vendor, code=code, retry_after=retry_after
            )
        if _AUTH_WORDS.search(meaning):
            return AuthError(text, vendor=self.vendor, code=code, status=status)
        shaped = _status_shaped(code)
        if shaped in (401, 403):
            return AuthError(text, vendor=self.vendor, code=code, status=status)
        if shaped == 429:
            return RateLimited(text, vendor=self.vendor, code=code, status=status)
        if shaped is not None and (shaped == 408 or shaped >= 500):
            return Unavailable(
                text, vendor=self.vendor, code=code, status=status, outcome_unknown=True
            )
        if status == 404 or shaped == 404 or _NOT_FOUND_WORDS.search(meaning):
            return NotFound(text, vendor=self.vendor, code=code, status=status)
        return InvalidRequest(text, vendor=self.vendor, code=code, status=status)

    def _unwrap(self, response: httpx.Response) -> Any:
        """Returns `result` of a successful envelope or raises the matching `ApiError`."""
        if response.is_success:
            data = json_or_unavailable(response, vendor=self.vendor)
            if isinstance(data, dict) and data.get("success") is True:
                return data.get("result")
            raise self._failure(response, data)
        try:
            data = response.json()
        except ValueError:
            data = None
        raise self._failure(response, data)

    def _parse(self, model: type[M], value: Any) -> M:
        """Validates a result; a shape nobody documented is a vendor failure, not a crash."""
        try:
            return model.model_validate({} if value is None else value)
        except ValidationError as exc:
            raise Unavailable(
                f"unexpected result shape for {model.__name__} ({exc.error_count()} errors)",
                vendor=self.vendor,
            ) from None

    def _parse_list(self, model: type[M], value: Any) -> list[M]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise Unavailable(
                f"expected a list of {model.__name__}, got {type(value).__name__}",
                vendor=self.vendor,
            )
        return [self._parse(model, item) for item in value]

    # ---- OAuth2 ------------------------------------------------------------------------

    def login_url(self, *, redirect_uri: str, state: str, scope: str = Scope.USER.value) -> str:
        """The address a resident opens to sign in; Akubela then redirects with a code."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
            }
        )
        return f"{self._base_url}{AUTH_PATH}?{query}"

    async def _token(self, form: dict[str, str]) -> TokenSet:
        body = {
            **form,
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }

        async def once() -> TokenSet:
            request = self._http.build_request(
                "POST",
                TOKEN_PATH,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = await self._send(request)
            received_at = self._clock()
            logger.debug("akubela token (%s) -> HTTP %d", form["grant_type"], response.status_code)
            if response.is_success:
                data = json_or_unavailable(response, vendor=self.vendor)
                # Plain RFC 6749 answers put the tokens at the top level; accept those too.
                if isinstance(data, dict) and "success" not in data and "access_token" in data:
                    result: Any = data
                elif isinstance(data, dict) and data.get("success") is True:
                    result = data.get("result")
                else:
                    raise self._failure(response, data)
            else:
                result = self._unwrap(response)
            if not isinstance(result, dict):
                raise Unavailable("token answer carried no tokens", vendor=self.vendor)
            try:
                tokens = TokenSet.from_result(result, received_at=received_at)
            except ValidationError:
                raise Unavailable("token answer carried no tokens", vendor=self.vendor) from None
            _register_secrets(tokens, received_at)
            return tokens

        return await self._retrying(once, retry=True)

    async def exchange_code(self, code: str, *, redirect_uri: str) -> TokenSet:
        """Exchanges the code from the login redirect for a resident's tokens."""
        secrets_filter.add(code, ttl=AUTH_CODE_TTL_SECONDS)
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        )

    async def password_login(
        self, username: str, password: SecretStr, *, scope: str = Scope.MANAGER.value
    ) -> TokenSet:
        """Signs in with a password (the property manager's account uses scope `manager`)."""
        secrets_filter.add(password.get_secret_value())
        return await self._token(
            {
                "grant_type": "password",
                "username": username,
                "password": password.get_secret_value(),
                "scope": scope,
            }
        )

    async def refresh(self, refresh_token: SecretStr) -> TokenSet:
        """Trades a (single-use) refresh token for new tokens."""
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()}
        )

    def manager_tokens(
        self,
        username: str,
        password: SecretStr,
        *,
        tokens: TokenSet | None = None,
        on_refresh: OnRefresh | None = None,
    ) -> AkubelaTokens:
        """Tokens for the manager account, logging in again whenever refreshing fails."""

        async def login() -> TokenSet:
            return await self.password_login(username, password, scope=Scope.MANAGER.value)

        return AkubelaTokens(self, tokens, on_refresh=on_refresh, login=login, clock=self._clock)

    def user_tokens(
        self,
        tokens: TokenSet,
        *,
        on_refresh: OnRefresh | None = None,
        store: TokenStore | None = None,
    ) -> AkubelaTokens:
        """Tokens of a resident who linked their account with the login page."""
        return AkubelaTokens(self, tokens, store=store, on_refresh=on_refresh, clock=self._clock)

    # ---- commands ----------------------------------------------------------------------

    async def _post_command(self, channel: str, body: dict[str, Any], auth: AkubelaTokens) -> Any:
        request = self._http.build_request("POST", f"{METHOD_PATH}/{channel}", json=body)
        response = await self._send(request, auth=auth)
        logger.debug("akubela %s %s -> HTTP %d", channel, body["command"], response.status_code)
        return self._unwrap(response)

    async def _command(
        self,
        auth: AkubelaTokens,
        command: str,
        param: CommandParam,
        *,
        channel: str = USER_CHANNEL,
        write: bool = False,
        command_id: str | None = None,
    ) -> Any:
        """Sends one command; reads may be retried, writes go out once (per auth attempt)."""
        body = {"command": command, "id": command_id or uuid4().hex, "param": param.to_param()}

        async def once() -> Any:
            # The holder renews a refused token and sends the command again (see AkubelaTokens).
            return await self._post_command(channel, body, auth)

        return await self._retrying(once, retry=not write)

    # -- repairs

    async def get_maintenance_list(
        self, auth: AkubelaTokens, residence_id: str
    ) -> list[Maintenance]:
        """The residence's repair requests."""
        result = await self._command(
            auth, "get_maintenance_list", ResidenceParam(residence_id=residence_id)
        )
        return self._parse_list(Maintenance, result)

    async def get_maintenance_info(
        self, auth: AkubelaTokens, residence_id: str, maintenance_id: str
    ) -> Maintenance:
        """One repair request (the answer has no id; it is taken from the request)."""
        param = MaintenanceParam(residence_id=residence_id, maintenance_id=maintenance_id)
        result = await self._command(auth, "get_maintenance_info", param)
        repair = self._parse(Maintenance, result)
        return repair.model_copy(
            update={"maintenance_id": repair.maintenance_id or param.maintenance_id}
        )

    async def create_maintenance_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        *,
        start_time: datetime,
        finish_time: datetime,
        description: str,
        contact: str,
        filename: Sequence[str] | None = None,
        command_id: str | None = None,
    ) -> str | None:
        """Reports a repair; returns its id, or None when the vendor answers without one."""
        param = NewMaintenance(
            residence_id=residence_id,
            start_time=start_time,
            finish_time=finish_time,
            description=description,
            contact=contact,
            filename=list(filename) if filename is not None else None,
        )
        result = await self._command(
            auth, "create_maintenance_info", param, write=True, command_id=command_id
        )
        created = self._parse(CreatedMaintenance, _dict_or_empty(result))
        return created.maintenance_id or None

    async def delete_maintenance_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        maintenance_id: str,
        *,
        command_id: str | None = None,
    ) -> None:
        """Deletes (withdraws) one repair request."""
        param = MaintenanceParam(residence_id=residence_id, maintenance_id=maintenance_id)
        await self._command(
            auth, "delete_maintenance_info", param, write=True, command_id=command_id
        )

    async def batch_delete_maintenance_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        maintenance_ids: Sequence[str],
        *,
        command_id: str | None = None,
    ) -> None:
        """Deletes several repair requests of one residence."""
        param = BatchDeleteMaintenance(
            residence_id=residence_id,
            maintenances=[MaintenanceKey(maintenance_id=i) for i in maintenance_ids],
        )
        await self._command(
            auth, "batch_delete_maintenance_info", param, write=True, command_id=command_id
        )

    # -- bookings

    async def get_booking_list(self, auth: AkubelaTokens, residence_id: str) -> list[Booking]:
        """The residence's bookings."""
        result = await self._command(
            auth, "get_booking_list", ResidenceParam(residence_id=residence_id)
        )
        return self._parse_list(Booking, result)

    async def get_booking_info(
        self, auth: AkubelaTokens, residence_id: str, booking_id: str
    ) -> Booking:
        """One booking (the answer has no id; it is taken from the request)."""
        param = BookingParam(residence_id=residence_id, booking_id=booking_id)
        result = await self._command(auth, "get_booking_info", param)
        booking = self._parse(Booking, result)
        if not booking.booking_id:
            booking = booking.model_copy(update={"booking_id": param.booking_id})
        return booking

    async def get_booking_amenity_list(
        self, auth: AkubelaTokens, residence_id: str
    ) -> list[Amenity]:
        """The amenities this residence may book."""
        result = await self._command(
            auth, "get_booking_amenity_list", ResidenceParam(residence_id=residence_id)
        )
        return self._parse_list(Amenity, result)

    async def get_booking_time_list(
        self, auth: AkubelaTokens, residence_id: str, amenity_id: str, day: date
    ) -> BookingTimeList:
        """The amenity's opening window on `day` and what is taken (UTC times of day)."""
        param = BookingTimeQuery(residence_id=residence_id, amenity_id=amenity_id, date=day)
        result = await self._command(auth, "get_booking_time_list", param)
        return self._parse(BookingTimeList, result)

    async def create_booking_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        *,
        amenity_id: str,
        start_time: datetime,
        duration: int,
        command_id: str | None = None,
    ) -> str | None:
        """Books an amenity for `duration` minutes; returns the booking id when given one."""
        param = NewBooking(
            residence_id=residence_id,
            amenity_id=amenity_id,
            start_time=start_time,
            duration=duration,
        )
        result = await self._command(
            auth, "create_booking_info", param, write=True, command_id=command_id
        )
        created = self._parse(CreatedBooking, _dict_or_empty(result))
        return created.booking_id or None

    async def create_code_booking_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        booking_code: str,
        *,
        command_id: str | None = None,
    ) -> str | None:
        """Books with a booking code; returns the booking id when given one."""
        param = CodeBooking(residence_id=residence_id, booking_code=booking_code)
        result = await self._command(
            auth, "create_code_booking_info", param, write=True, command_id=command_id
        )
        created = self._parse(CreatedBooking, _dict_or_empty(result))
        return created.booking_id or None

    async def delete_booking_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        booking_id: str,
        *,
        command_id: str | None = None,
    ) -> None:
        """Cancels one booking."""
        param = BookingParam(residence_id=residence_id, booking_id=booking_id)
        await self._command(auth, "delete_booking_info", param, write=True, command_id=command_id)

    async def batch_delete_booking_info(
        self,
        auth: AkubelaTokens,
        residence_id: str,
        booking_ids: Sequence[str],
        *,
        command_id: str | None = None,
    ) -> None:
        """Cancels several bookings of one residence."""
        param = BatchDeleteBooking(
            residence_id=residence_id, bookings=[BookingKey(booking_id=i) for i in booking_ids]
        )
        await self._command(
            auth, "batch_delete_booking_info", param, write=True, command_id=command_id
        )

    # -- account

    async def get_family_list(self, auth: AkubelaTokens) -> list[Family]:
        """The residences of the signed-in resident."""
        result = await self._command(auth, "get_family_list", NoParam())
        return self._parse_list(Family, result)

    async def get_account_info(self, auth: AkubelaTokens) -> Account:
        """The signed-in resident's account."""
        result = await self._command(auth, "get_account_info", NoParam())
        return self._parse(Account, result)

    # -- manager

    async def get_project_maintenance_page(
        self, auth: AkubelaTokens, project_id: str, *, page_index: int = 1, page_size: int = 50
    ) -> ManagerMaintenancePage:
        """One page (counted from 1) of every repair in a project; needs a manager token."""
        param = ManagerMaintenanceQuery(
            project_id=project_id, page_size=page_size, page_index=page_index
        )
        result = await self._command(auth, "get_maintenance_list", param, channel=MANAGER_CHANNEL)
        return self._parse(ManagerMaintenancePage, result)

    async def iter_project_maintenance(
        self, auth: AkubelaTokens, project_id: str, *, page_size: int = 50
    ) -> AsyncIterator[ManagerMaintenance]:
        """Every repair of a project, page after page (each once)."""
        page_index = 1
        seen: set[str] = set()
        count = 0
        while True:
            page = await self.get_project_maintenance_page(
                auth, project_id, page_index=page_index, page_size=page_size
            )
            fresh = 0
            for item in page.items:
                # A bare array may be the whole list again rather than the page asked for.
                if item.maintenance_id and item.maintenance_id in seen:
                    continue
                seen.add(item.maintenance_id)
                fresh += 1
                yield item
            count += fresh
            # Stop on an empty or short page, on the total when there is one, and on a page
            # with nothing new, so a vendor that misreports `total` or ignores the page asked
            # for cannot keep us looping.
            if not fresh or len(page.items) < page_size:
                return
            if page.total is not None and count >= page.total:
                return
            page_index += 1


def _dict_or_empty(result: Any) -> Any:
    # The zh docs document create results as empty: `{}`, null or a bare value all mean
    # "created, id not given".
    return result if isinstance(result, dict) else {}
