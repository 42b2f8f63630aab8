"""Servitly client: records finished maintenance as historical events on a thing or location.

Contract (Servitly's published API reference, plus `vendor-apis/servitly-maintenance-works`):

- Every request carries the tenant header. Its name is configurable: `X-Servitly-Tenant`
  today, `X-Semioty-Tenant` on older tenants.
- Login: `POST /identity/users/patLogin` with `{"apiKey", "pat"}` (cloud-to-cloud), or
  `POST /identity/users/login?apiKey=...` with `{"email", "password"}`. Both answer
  `{"token", "tokenExpirationTimestamp" (ms), "refreshToken", "userId", "tenantId"}`; the JWT
  goes out as `Authorization: Bearer`.
- Renewal: `POST /identity/users/me/renewToken` with `{"refreshToken", "userId", "tenantId"}`
  and the expired JWT as bearer. Servitly refuses it (400) while the JWT is still valid, so
  the client renews only once its clock has passed `tokenExpirationTimestamp`; a refused
  renewal falls back to a fresh login. A 401 on any other call means the vendor no longer
  takes the token (revoked, or expired earlier than our clock thinks): the client logs in
  again once and repeats the call, which is safe even for a create because a 401 proves
  nothing was stored.
- Failures are an HTTP status with `{"message"}`: 400 `InvalidRequest`, 401/403 `AuthError`,
  404 `NotFound`, 429 `RateLimited` (with Retry-After), 5xx `Unavailable`.
- Retries (see `api.base.RetryPolicy`): reads, token calls and the idempotent `PUT` update
  are repeated on 429/5xx/transport errors; the two creates never are, since Servitly offers
  no de-duplication key (after `Unavailable(outcome_unknown=True)` look for the event with
  `list_historical_events` before creating it again).
- Severity: an event's severity is its alert definition's `eventSeverity`; the report-event
  body has no severity field, so a MAINTENANCE record names the severity-5 definition
  (`find_maintenance_alert_definition`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

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
from api.errors import AuthError, InvalidRequest, NotFound, Unavailable
from api.redaction import secrets_filter
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

logger = logging.getLogger(__name__)

TENANT_HEADERS = ("X-Servitly-Tenant", "X-Semioty-Tenant")
DEFAULT_TENANT_HEADER = TENANT_HEADERS[0]
DEFAULT_PAGE_SIZE = 100

PAT_LOGIN_PATH = "/identity/users/patLogin"
LOGIN_PATH = "/identity/users/login"
RENEW_PATH = "/identity/users/me/renewToken"
EVENTS_PATH = "/inventory/historicalEvents"
MY_EVENTS_PATH = "/v2/identity/users/me/historicalEvents"
MAINTENANCE_WORKS_PATH = "/inventory/maintenanceWorks"
THING_DEFINITIONS_PATH = "/inventory/thingDefinitions"

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


class ServitlyClient(VendorClient):
    """Servitly's identity and inventory APIs, with login, renewal and re-login handled."""

    vendor = "servitly"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr,
        tenant: str,
        pat: str | SecretStr | None = None,
        tenant_header: str = DEFAULT_TENANT_HEADER,
        email: str | None = None,
        password: str | SecretStr | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = _utc_now,
    ) -> None:
        if pat is None and (email is None or password is None):
            raise ValueError("give a personal access token, or an email and a password")
        if not tenant:
            raise ValueError("a Servitly tenant name is required")
        super().__init__(
            base_url=base_url, transport=transport, timeout=timeout, retry=retry, sleep=sleep
        )
        self._api_key = _secret(api_key) or SecretStr("")
        self._pat = _secret(pat)
        self._email = email
        self._password = _secret(password)
        self._tenant = tenant
        self._tenant_header = tenant_header
        self._clock = clock
        self._token: AuthToken | None = None
        self._token_lock = asyncio.Lock()
        for secret in (self._api_key, self._pat, self._password):
            if secret is not None:
                secrets_filter.add(secret.get_secret_value())

    def __repr__(self) -> str:
        return f"ServitlyClient(base_url={str(self._http.base_url)!r}, tenant={self._tenant!r})"

    @property
    def token(self) -> AuthToken | None:
        """The current login (secrets masked in its repr), or None before the first call."""
        return self._token

    # --- authentication ---------------------------------------------------------------------

    async def pat_login(self) -> AuthToken:
        """Logs in with the API key and the personal access token."""
        if self._pat is None:
            raise ValueError("no personal access token configured")
        body = PatLoginRequest(api_key=self._api_key, pat=self._pat)
        return await self._token_call(PAT_LOGIN_PATH, body.model_dump(by_alias=True))

    async def password_login(self) -> AuthToken:
        """Logs in with the user's email and password (API key in the query)."""
        if self._email is None or self._password is None:
            raise ValueError("no email and password configured")
        body = PasswordLoginRequest(email=self._email, password=self._password)
        return await self._token_call(
            LOGIN_PATH,
            body.model_dump(by_alias=True),
            params={"apiKey": self._api_key.get_secret_value()},
        )

    async def login(self) -> AuthToken:
        """Logs in the configured way (PAT first) and keeps the token for later calls."""
        token = await (self.pat_login() if self._pat is not None else self.password_login())
        self._replace(token)
        return token

    async def renew_token(self) -> AuthToken:
        """Renews the expired JWT with its refresh token (Servitly refuses while it is valid)."""
        current = self._token
        if current is None or current.refresh_token is None:
            raise AuthError("no refresh token to renew with", vendor=self.vendor)
        body = RenewTokenRequest(
            refresh_token=current.refresh_token,
            user_id=current.user_id,
            tenant_id=current.tenant_id,
        )
        token = await self._token_call(
            RENEW_PATH, body.model_dump(by_alias=True, exclude_none=True), bearer=current.token
        )
        self._replace(token)
        return token

    def _replace(self, token: AuthToken) -> None:
        """Keeps `token`; the one it replaces is no credential of ours any more."""
        old, self._token = self._token, token
        if old is None:
            return
        # The JWT stays registered with the log filter while it is ours (an expired one is
        # still what renews it); spent or abandoned, it and its refresh token are forgotten.
        kept = {token.token.get_secret_value()}
        if token.refresh_token is not None:
            kept.add(token.refresh_token.get_secret_value())
        for secret in (old.token, old.refresh_token):
            if secret is not None and secret.get_secret_value() not in kept:
                secrets_filter.discard(secret.get_secret_value())

    def _expired(self, token: AuthToken) -> bool:
        expiry = token.token_expiration_timestamp
        return expiry is not None and self._clock() >= expiry

    async def _access_token(self) -> SecretStr:
        """A token to call with: logs in first, renews after expiry, logs in if renewal fails."""
        async with self._token_lock:
            if self._token is None:
                await self.login()
            elif self._expired(self._token):
                try:
                    await self.renew_token()
                except (AuthError, InvalidRequest, NotFound) as exc:
                    logger.info("servitly token renewal refused (%s), logging in again", exc)
                    await self.login()
            assert self._token is not None
            return self._token.token

    async def _login_again(self, refused: SecretStr) -> SecretStr:
        """Logs in after a 401, unless a concurrent call has already replaced the token."""
        async with self._token_lock:
            current = self._token
            if current is None or current.token.get_secret_value() == refused.get_secret_value():
                await self.login()
            assert self._token is not None
            return self._token.token

    async def _token_call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        params: dict[str, str] | None = None,
        bearer: SecretStr | None = None,
    ) -> AuthToken:
        """Posts a login or renewal body and reads the token answer (safe to repeat)."""

        async def attempt() -> AuthToken:
            request = self._build("POST", path, bearer=bearer, params=params, json=body)
            response = await self._send(request)
            self._raise_for_status(response)
            data = json_or_unavailable(response, vendor=self.vendor)
            try:
                token = AuthToken.model_validate(data)
            except ValidationError:
                raise Unavailable(
                    "login answer had no token", vendor=self.vendor, status=response.status_code
                ) from None
            secrets_filter.add(token.token.get_secret_value())
            if token.refresh_token is not None:
                secrets_filter.add(token.refresh_token.get_secret_value())
            return token

        return await self._retrying(attempt, retry=True)

    # --- plumbing -----------------------------------------------------------------------------

    def _build(
        self,
        method: str,
        path: str,
        *,
        bearer: SecretStr | None,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Request:
        headers = {self._tenant_header: self._tenant}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer.get_secret_value()}"
        return self._http.build_request(method, path, params=params, json=json, headers=headers)

    def _raise_for_status(self, response: httpx.Response) -> None:
        """Raises the exception for a non-2xx answer, with the vendor's message."""
        if response.is_success:
            return
        message = f"HTTP {response.status_code}"
        try:
            parsed = ErrorBody.model_validate(response.json())
        except (ValueError, ValidationError):
            parsed = None
        if parsed is not None and parsed.message:
            message = parsed.message
        raise error_for_status(
            response.status_code,
            message,
            vendor=self.vendor,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One authenticated call; after a 401 it logs in again once and repeats the call."""

        async def attempt() -> httpx.Response:
            token = await self._access_token()
            response = await self._send(
                self._build(method, path, bearer=token, params=params, json=json)
            )
            if response.status_code == 401:
                logger.info("servitly refused the token on %s %s, logging in again", method, path)
                token = await self._login_again(token)
                response = await self._send(
                    self._build(method, path, bearer=token, params=params, json=json)
                )
            self._raise_for_status(response)
            return response

        return await self._retrying(attempt, retry=retry)

    def _parse(self, response: httpx.Response, model: type[M]) -> M:
        data = json_or_unavailable(response, vendor=self.vendor)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Unavailable(
                f"unexpected answer shape ({exc.error_count()} errors)",
                vendor=self.vendor,
                status=response.status_code,
            ) from None

    # --- historical events --------------------------------------------------------------------

    async def create_historical_event(self, event: HistoricalEventWrite) -> HistoricalEvent:
        """Reports an event (e.g. finished maintenance); never resent blindly."""
        response = await self._call("POST", EVENTS_PATH, json=event.body(), retry=False)
        created = self._parse(response, HistoricalEvent)
        logger.info("servitly historical event %s created", created.id)
        return created

    async def update_historical_event(self, event_id: str, event: HistoricalEventWrite) -> None:
        """Replaces an event's fields (200, no body); a PUT, so safe to repeat."""
        path = f"{EVENTS_PATH}/{quote(event_id, safe='')}"
        await self._call("PUT", path, json=event.body(), retry=True)

    async def list_historical_events(
        self,
        filters: HistoricalEventFilter | None = None,
        *,
        page: int = 0,
        size: int = DEFAULT_PAGE_SIZE,
    ) -> HistoricalEventPage:
        """One page (zero-based) of the events the user may see, filtered."""
        if page < 0 or size < 1:
            raise ValueError("page starts at 0 and size at 1")
        params = filters.params() if filters is not None else {}
        params.update({"page": str(page), "size": str(size)})
        response = await self._call("GET", MY_EVENTS_PATH, params=params, retry=True)
        return self._parse(response, HistoricalEventPage)

    async def iter_historical_events(
        self, filters: HistoricalEventFilter | None = None, *, size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[HistoricalEvent]:
        """Every matching event, page after page."""
        page = 0
        while True:
            result = await self.list_historical_events(filters, page=page, size=size)
            for event in result.content:
                yield event
            if result.is_last or not result.content:
                return
            page += 1

    # --- alert definitions --------------------------------------------------------------------

    async def list_alert_definitions(self, thing_definition_id: str) -> list[AlertDefinition]:
        """The alert (event) definitions of one thing definition."""
        path = (
            f"/inventory/thingDefinitions/{quote(thing_definition_id, safe='')}/alertDefinitions"
        )
        response = await self._call("GET", path, retry=True)
        data = json_or_unavailable(response, vendor=self.vendor)
        if not isinstance(data, list):
            raise Unavailable("alert definitions were not a list", vendor=self.vendor, status=200)
        try:
            return [AlertDefinition.model_validate(item) for item in data]
        except ValidationError as exc:
            raise Unavailable(
                f"unexpected alert definition ({exc.error_count()} errors)", vendor=self.vendor
            ) from None

    async def find_maintenance_alert_definition(self, thing_definition_id: str) -> AlertDefinition:
        """The severity-5 MAINTENANCE definition of a thing definition (NotFound if none)."""
        for definition in await self.list_alert_definitions(thing_definition_id):
            if definition.is_maintenance:
                return definition
        raise NotFound(
            f"thing definition {thing_definition_id} has no MAINTENANCE event definition",
            vendor=self.vendor,
        )

    # --- deprecated maintenance works ---------------------------------------------------------

    async def create_maintenance_work(self, work: MaintenanceWorkWrite) -> MaintenanceWork:
        """Records a maintenance work on the deprecated endpoint; never resent blindly."""
        response = await self._call("POST", MAINTENANCE_WORKS_PATH, json=work.body(), retry=False)
        created = self._parse(response, MaintenanceWork)
        logger.info("servitly maintenance work %s created", created.id)
        return created
