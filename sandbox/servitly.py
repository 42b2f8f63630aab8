"""Servitly served locally: logins, JWT renewal, historical events, alert definitions.

Behaves as Servitly's API reference says, for the calls Concierge makes:

- Every call needs the tenant header the tenant uses (`settings.servitly_tenant_header`:
  `X-Servitly-Tenant`, or the legacy `X-Semioty-Tenant` on older tenants); the other name
  does not count. Missing: 401; naming another tenant: 403. Errors are always
  `{"message": ...}`.
- Timestamps are milliseconds, as the documents' 13-digit examples are: a number below
  10^12 (a time in seconds, or before September 2001) is refused with 400.
- `POST /identity/users/patLogin` (`apiKey` + `pat` from settings) and
  `POST /identity/users/login?apiKey=...` (the demo user's email and password) answer
  `token`, `tokenExpirationTimestamp` (ms, by the sandbox clock), `refreshToken`, `userId`,
  `tenantId`. Tokens live `token_lifetime` seconds.
- `POST /identity/users/me/renewToken` takes the expired JWT as bearer and
  `{"refreshToken", "userId", "tenantId"}`. While the JWT is still valid it answers 400
  ("cannot be renewed because not yet expired"), as documented; after expiry it issues a new
  JWT and refresh token, and the old refresh token is spent.
- Historical events: create (201 with the stored event; severity, name and title come from
  the alert definition), update by `PUT` (200, no body), and the user's list with the
  documented filters (`customerId`, `locationId`, `thingId`, `eventSeverity`,
  `minStartTimestamp`, `maxStartTimestamp`; `topics` is accepted and, with no topic model
  here, only `MAINTENANCE` narrows the list, to severity 5) as a Spring page (`page` zero-based,
  `size` 1..1000, `sort` "field,ASC|DESC", newest first by default).
- `GET /inventory/thingDefinitions/{id}/alertDefinitions`: a failure, an anomaly, an operation
  and the severity-5 MAINTENANCE definition.
- The deprecated `POST /inventory/maintenanceWorks`: 201 with the stored work, field for field;
  the document marks no body field required, so even `{}` is stored. Servitly points its users
  to events instead, so each work on a thing or location is also logged as a MAINTENANCE
  event there.

Control: `advance("event", id[, "close"])` ends an open event now; `auto_advance` closes the
oldest open event; `expire_tokens` ends every issued JWT (renewal is then allowed).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.times import from_epoch_millis, to_epoch_millis
from bot.settings import Settings
from sandbox.core import Clock

# Milliseconds since the epoch start with 13 digits from September 2001 on; anything shorter is
# a time in seconds (or a mistake), which Servitly would store as a date in January 1970.
MIN_MILLIS = 10**12
MAX_MILLIS = 10**14
TOKEN_LIFETIME_SECONDS = 3600.0
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20
SEVERITY_MAINTENANCE = 5

DEMO_USER_ID = "6616689a0de6d87b47cd6308"
DEMO_TENANT_ID = "661533a57bba156cf6e8d04b"
DEMO_USER_EMAIL = "maintenance@demo.community"
DEMO_USER_PASSWORD = "servitly-demo-password"  # noqa: S105 - a published demo credential
CUSTOMER_ID = "cust-garden-court"
THING_DEFINITION_ID = "td-community-equipment"
MAINTENANCE_DEFINITION_ID = "ad-maintenance"

LOCATIONS: tuple[dict[str, str], ...] = (
    {"id": "loc-block-a", "name": "Block A"},
    {"id": "loc-block-b", "name": "Block B"},
    {"id": "loc-main-entrance", "name": "Main entrance"},
)
THINGS: tuple[dict[str, str], ...] = (
    {"id": "thing-elevator-a", "name": "Elevator, Block A", "locationId": "loc-block-a"},
    {"id": "thing-hvac-b", "name": "HVAC unit, Block B", "locationId": "loc-block-b"},
    {"id": "thing-gate-main", "name": "Main gate", "locationId": "loc-main-entrance"},
)

# The second demo community's tenant (Marina Bay, Singapore), with its own places.
MARINA_TENANT = "marina"
MARINA_LOCATIONS: tuple[dict[str, str], ...] = (
    {"id": "loc-marina-tower-1", "name": "Tower 1"},
    {"id": "loc-marina-tower-2", "name": "Tower 2"},
)
MARINA_THINGS: tuple[dict[str, str], ...] = (
    {"id": "thing-marina-pool-pump", "name": "Pool pump", "locationId": "loc-marina-tower-1"},
)

BAD_REQUEST = "Bad request"
NOT_AUTHENTICATED = "User not authenticated"
NOT_AUTHORIZED = "User not authorized"
NOT_FOUND = "Resource not found"
INVALID_CREDENTIALS = "Invalid credentials"
NOT_YET_EXPIRED = "Token cannot be renewed because not yet expired"


class _Refused(Exception):
    """A request the sandbox answers with an error status and `{"message"}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse({"message": self.message}, status_code=self.status)


@dataclass
class _Session:
    """One issued JWT and the refresh token that may renew it once it has expired."""

    token: str
    refresh_token: str
    user_id: str
    expires_at: datetime
    tenant: str = ""


@dataclass
class _Store:
    """Everything a reset throws away."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    works: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)  # by token
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> token
    next_event: int = 1
    next_work: int = 1
    issued: int = 0


def _alert_definitions(maintenance_id: str) -> list[dict[str, Any]]:
    """The community equipment's event definitions, the MAINTENANCE one among others."""
    return [
        {
            "id": "ad-overheating",
            "name": "E503",
            "title": "Overheating",
            "description": "High temperature detected",
            "technicalDescription": "Motor temperature above 90 °C for 5 minutes.",
            "severity": "CRITICAL",
            "category": "FAILURE",
            "eventSeverity": 1,
            "activeConditionPredicate": "GREATER",
            "activeConditionValue": "90",
            "minimumActiveTime": 5,
            "minimumActiveTimeUnit": "MINUTES",
            "clearConditionPredicate": "LESS_EQUAL",
            "clearConditionValue": "80",
        },
        {
            "id": "ad-door-fault",
            "name": "E210",
            "title": "Door fault",
            "description": "Door did not close within the expected time",
            "technicalDescription": "Check the door sensor and the closing motor.",
            "severity": "WARNING",
            "category": "ANOMALY",
            "eventSeverity": 2,
            "activeConditionPredicate": "EQUAL",
            "activeConditionValue": "true",
        },
        {
            "id": "ad-filter-due",
            "name": "W120",
            "title": "Filter change due",
            "description": "Operating hours reached the filter change interval",
            "severity": "INFORMATIONAL",
            "category": "INFORMATION",
            "eventSeverity": 4,
            "activeConditionPredicate": "GREATER_EQUAL",
            "activeConditionValue": "2000",
        },
        {
            "id": maintenance_id,
            "name": "MAINTENANCE",
            "title": "Maintenance",
            "description": "Maintenance performed on the equipment",
            "technicalDescription": "Logged by the maintenance team when work is accepted.",
            "severity": "INFORMATIONAL",
            "category": "INFORMATION",
            "eventSeverity": SEVERITY_MAINTENANCE,
        },
    ]


def _jwt_like(user_id: str, number: int, expires_at: datetime) -> str:
    """An opaque token shaped like a JWT (header.payload.signature), as Servitly's are."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part({"alg": "HS512"})
    payload = part({"sub": user_id, "jti": number, "exp": to_epoch_millis(expires_at) // 1000})
    return f"{header}.{payload}.{secrets.token_urlsafe(24)}"


def _opt_str(body: dict[str, Any], key: str, *, max_length: int = 4000) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise _Refused(400, f"{BAD_REQUEST}: {key} must be a string")
    return value


def _opt_millis(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python; a JSON true is not a timestamp.
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_MILLIS <= value < MAX_MILLIS
    ):
        raise _Refused(400, f"{BAD_REQUEST}: {key} must be a timestamp in milliseconds")
    return value


def _opt_properties(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("properties")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _Refused(400, f"{BAD_REQUEST}: properties must map names to strings")
    return dict(value)


def _query_millis(request: Request, key: str) -> int | None:
    text = request.query_params.get(key)
    if text is None or text == "":
        return None
    if not text.isdigit() or not MIN_MILLIS <= int(text) < MAX_MILLIS:
        raise _Refused(400, f"{BAD_REQUEST}: {key} must be a timestamp in milliseconds")
    return int(text)


def _query_int(request: Request, key: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _Refused(400, f"{BAD_REQUEST}: {key} must be a number") from None
    if value < low:
        raise _Refused(400, f"{BAD_REQUEST}: {key} must be at least {low}")
    return min(value, high)


def _sort_key(event: dict[str, Any], field_name: str) -> tuple[bool, int, str, str]:
    """Orders by one field (numbers as numbers), missing values first, then by id.

    The id breaks ties so consecutive pages never overlap or skip an event.
    """
    value = event.get(field_name)
    number = value if isinstance(value, int) and not isinstance(value, bool) else 0
    text = "" if value is None or isinstance(value, int) else str(value)
    return (value is not None, number, text, str(event["id"]))


async def _not_found(request: Request) -> Response:
    """Unknown paths answer in Servitly's error shape rather than Starlette's plain text."""
    return JSONResponse({"message": NOT_FOUND}, status_code=404)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Refused(400, f"{BAD_REQUEST}: body is not JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, f"{BAD_REQUEST}: body is not a JSON object")
    return body


class ServitlySandbox:
    """The Servitly vendor of the sandbox, mounted under `/servitly`."""

    name = "servitly"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        token_lifetime: float = TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._lifetime = timedelta(seconds=token_lifetime)
        self._api_key = settings.servitly_api_key.get_secret_value()
        self._pat = settings.servitly_pat.get_secret_value()
        self._tenant = settings.servitly_tenant
        self._tenant_header = settings.servitly_tenant_header
        self._maintenance_id = (
            settings.servitly_maintenance_alert_definition_id or MAINTENANCE_DEFINITION_ID
        )
        self._definitions = {
            THING_DEFINITION_ID: _alert_definitions(self._maintenance_id),
        }
        self._definition_by_id = {d["id"]: d for defs in self._definitions.values() for d in defs}
        self._things = {thing["id"]: thing for thing in THINGS}
        self._locations = {location["id"]: location for location in LOCATIONS}
        # Each tenant's places; a tenant sees and records on its own only.
        self._places: dict[str, tuple[dict[str, dict[str, str]], set[str]]] = {
            self._tenant: (dict(self._things), set(self._locations)),
            MARINA_TENANT: (
                {thing["id"]: thing for thing in MARINA_THINGS},
                {location["id"] for location in MARINA_LOCATIONS},
            ),
        }
        self._things |= self._places[MARINA_TENANT][0]
        self._store = _Store()
        self.reset()

    # --- protocol ---------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """Servitly's paths, relative to `/servitly`."""
        return [
            Route("/identity/users/patLogin", self._pat_login, methods=["POST"]),
            Route("/identity/users/login", self._password_login, methods=["POST"]),
            Route("/identity/users/me/renewToken", self._renew, methods=["POST"]),
            Route("/inventory/historicalEvents", self._create_event, methods=["POST"]),
            Route("/inventory/historicalEvents/{event_id}", self._update_event, methods=["PUT"]),
            Route("/v2/identity/users/me/historicalEvents", self._list_events, methods=["GET"]),
            Route(
                "/inventory/thingDefinitions/{definition_id}/alertDefinitions",
                self._alert_definitions,
                methods=["GET"],
            ),
            Route("/inventory/maintenanceWorks", self._create_work, methods=["POST"]),
            Route(
                "/{path:path}",
                _not_found,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    def reset(self) -> None:
        """Back to the seed: the demo events, no works, no sessions."""
        self._store = _Store()
        now = self._clock.now().replace(microsecond=0)
        seed: list[tuple[str, str, timedelta, timedelta | None, str | None]] = [
            ("ad-overheating", "thing-hvac-b", timedelta(days=9), timedelta(hours=3), None),
            (
                self._maintenance_id,
                "thing-hvac-b",
                timedelta(days=8),
                timedelta(hours=2),
                "Replaced the compressor fan; temperature back to normal.",
            ),
            ("ad-door-fault", "thing-elevator-a", timedelta(days=5), timedelta(minutes=40), None),
            (
                self._maintenance_id,
                "thing-elevator-a",
                timedelta(days=4),
                timedelta(hours=1),
                "Adjusted the door sensor and lubricated the rails.",
            ),
            ("ad-filter-due", "thing-hvac-b", timedelta(days=2), None, None),
            ("ad-door-fault", "thing-gate-main", timedelta(hours=6), None, None),
        ]
        for definition_id, thing_id, ago, duration, notes in seed:
            start = now - ago
            end = None if duration is None else start + duration
            self._store_event(
                definition_id,
                thing_id=thing_id,
                location_id=None,
                start=to_epoch_millis(start),
                end=None if end is None else to_epoch_millis(end),
                notes=notes,
                properties=None,
            )

    def expire_tokens(self) -> None:
        """Every JWT issued so far expires now (and so may be renewed)."""
        now = self._clock.now()
        for session in self._store.sessions.values():
            session.expires_at = min(session.expires_at, now)

    def advance(self, kind: str, record_id: str, decision: str | None = None) -> dict[str, Any]:
        """Ends an open event now (`kind` "event", decision None or "close")."""
        if kind != "event":
            raise KeyError(kind)
        event = self._store.events[record_id]
        if decision not in (None, "close"):
            raise ValueError(f"an event can only be closed, not {decision!r}")
        if event.get("endTimestamp") is not None:
            raise ValueError(f"event {record_id} has already ended")
        event["endTimestamp"] = max(to_epoch_millis(self._clock.now()), event["startTimestamp"])
        return dict(event)

    def auto_advance(self) -> None:
        """Closes the oldest open event that has started, if any."""
        now = to_epoch_millis(self._clock.now())
        open_events = [
            e
            for e in self._store.events.values()
            if e.get("endTimestamp") is None and e["startTimestamp"] <= now
        ]
        if open_events:
            oldest = min(open_events, key=lambda e: e["startTimestamp"])
            self.advance("event", oldest["id"])

    def demo_info(self) -> dict[str, Any]:
        """Credentials and ids a demo or a test needs."""
        return {
            "api_key": self._api_key,
            "pat": self._pat,
            "tenant": self._tenant,
            "tenant_header": self._tenant_header,
            "user": {"email": DEMO_USER_EMAIL, "password": DEMO_USER_PASSWORD},
            "user_id": DEMO_USER_ID,
            "customer_id": CUSTOMER_ID,
            "thing_definition_id": THING_DEFINITION_ID,
            "maintenance_alert_definition_id": self._maintenance_id,
            "alert_definition_ids": [d["id"] for d in self._definitions[THING_DEFINITION_ID]],
            "things": [dict(thing) for thing in THINGS],
            "locations": [dict(location) for location in LOCATIONS],
            "token_lifetime_seconds": self._lifetime.total_seconds(),
        }

    # --- auth -------------------------------------------------------------------------------

    def _check_tenant(self, request: Request) -> str:
        value = request.headers.get(self._tenant_header)
        if value is None:
            raise _Refused(401, f"{NOT_AUTHENTICATED}: missing {self._tenant_header} header")
        if value not in self._places:
            raise _Refused(403, f"{NOT_AUTHORIZED}: unknown tenant")
        return value

    def _bearer(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def _authenticate(self, request: Request) -> _Session:
        """The caller's live session, or a 401/403."""
        tenant = self._check_tenant(request)
        token = self._bearer(request)
        session = self._store.sessions.get(token) if token else None
        if session is None or self._clock.now() >= session.expires_at:
            raise _Refused(401, NOT_AUTHENTICATED)
        if session.tenant != tenant:  # a token is good for the tenant it was issued in
            raise _Refused(401, NOT_AUTHENTICATED)
        return session

    def _issue(self, user_id: str, tenant: str) -> dict[str, Any]:
        self._store.issued += 1
        # Whole milliseconds, exactly what `tokenExpirationTimestamp` tells the client, so the
        # client's idea of expiry never runs ahead of the sandbox's.
        expires_at = from_epoch_millis(to_epoch_millis(self._clock.now() + self._lifetime))
        session = _Session(
            token=_jwt_like(user_id, self._store.issued, expires_at),
            refresh_token=secrets.token_hex(16),
            user_id=user_id,
            expires_at=expires_at,
            tenant=tenant,
        )
        self._store.sessions[session.token] = session
        self._store.refresh[session.refresh_token] = session.token
        return {
            "token": session.token,
            "tokenExpirationTimestamp": to_epoch_millis(expires_at),
            "refreshToken": session.refresh_token,
            "userId": user_id,
            "tenantId": DEMO_TENANT_ID,
        }

    async def _pat_login(self, request: Request) -> Response:
        try:
            tenant = self._check_tenant(request)
            body = await _json_object(request)
            api_key, pat = body.get("apiKey"), body.get("pat")
            if not isinstance(api_key, str) or not isinstance(pat, str):
                raise _Refused(400, f"{BAD_REQUEST}: give apiKey and pat")
            if not (
                secrets.compare_digest(api_key, self._api_key)
                and secrets.compare_digest(pat, self._pat)
            ):
                raise _Refused(401, INVALID_CREDENTIALS)
            return JSONResponse(self._issue(DEMO_USER_ID, tenant))
        except _Refused as refused:
            return refused.response()

    async def _password_login(self, request: Request) -> Response:
        try:
            tenant = self._check_tenant(request)
            api_key = request.query_params.get("apiKey") or request.query_params.get("apikey")
            body = await _json_object(request)
            email, password = body.get("email"), body.get("password")
            if not isinstance(email, str) or not isinstance(password, str):
                raise _Refused(400, f"{BAD_REQUEST}: give email and password")
            if not (
                api_key is not None
                and secrets.compare_digest(api_key, self._api_key)
                and email.strip().lower() == DEMO_USER_EMAIL
                and secrets.compare_digest(password, DEMO_USER_PASSWORD)
            ):
                raise _Refused(401, INVALID_CREDENTIALS)
            return JSONResponse(self._issue(DEMO_USER_ID, tenant))
        except _Refused as refused:
            return refused.response()

    async def _renew(self, request: Request) -> Response:
        try:
            tenant = self._check_tenant(request)
            body = await _json_object(request)
            refresh_token = body.get("refreshToken")
            if not isinstance(refresh_token, str):
                raise _Refused(400, f"{BAD_REQUEST}: give refreshToken")
            token = self._store.refresh.get(refresh_token)
            session = self._store.sessions.get(token) if token else None
            bearer = self._bearer(request)
            if session is None or bearer != session.token or session.tenant != tenant:
                raise _Refused(401, NOT_AUTHENTICATED)
            user_id = body.get("userId")
            if user_id is not None and user_id != session.user_id:
                raise _Refused(403, NOT_AUTHORIZED)
            if self._clock.now() < session.expires_at:
                raise _Refused(400, NOT_YET_EXPIRED)
            # The old JWT and its refresh token are spent; no await since the checks above.
            del self._store.sessions[session.token]
            del self._store.refresh[session.refresh_token]
            return JSONResponse(self._issue(session.user_id, session.tenant))
        except _Refused as refused:
            return refused.response()

    # --- events -----------------------------------------------------------------------------

    def _target(
        self, thing_id: str | None, location_id: str | None, tenant: str
    ) -> tuple[str | None, str | None]:
        """Checks the thing or location an event is about (the tenant's own); a thing implies
        its location."""
        things, locations = self._places[tenant]
        if thing_id is None and location_id is None:
            raise _Refused(400, f"{BAD_REQUEST}: give a thingId or a locationId")
        if thing_id is not None:
            thing = things.get(thing_id)
            if thing is None:
                raise _Refused(400, f"{BAD_REQUEST}: unknown thingId")
            if location_id is not None and location_id != thing["locationId"]:
                raise _Refused(400, f"{BAD_REQUEST}: the thing is not at that location")
            location_id = thing["locationId"]
        if location_id is not None and location_id not in locations:
            raise _Refused(400, f"{BAD_REQUEST}: unknown locationId")
        return thing_id, location_id

    def _of_tenant(self, event: dict[str, Any], tenant: str) -> bool:
        return event.get("locationId") in self._places[tenant][1]

    def _event_fields(self, body: dict[str, Any], tenant: str) -> dict[str, Any]:
        """Validates a create or update body into stored fields."""
        definition_id = _opt_str(body, "alertDefinitionId", max_length=200)
        if definition_id is None or definition_id not in self._definition_by_id:
            raise _Refused(400, f"{BAD_REQUEST}: unknown alertDefinitionId")
        start = _opt_millis(body, "startTimestamp")
        if start is None:
            raise _Refused(400, f"{BAD_REQUEST}: startTimestamp is required")
        end = _opt_millis(body, "endTimestamp")
        if end is not None and end < start:
            raise _Refused(400, f"{BAD_REQUEST}: endTimestamp is before startTimestamp")
        thing_id, location_id = self._target(
            _opt_str(body, "thingId", max_length=200),
            _opt_str(body, "locationId", max_length=200),
            tenant,
        )
        return {
            "definition_id": definition_id,
            "thing_id": thing_id,
            "location_id": location_id,
            "start": start,
            "end": end,
            "notes": _opt_str(body, "notes"),
            "properties": _opt_properties(body),
        }

    def _event_record(
        self,
        event_id: str,
        definition_id: str,
        *,
        thing_id: str | None,
        location_id: str | None,
        start: int,
        end: int | None,
        notes: str | None,
        properties: dict[str, str] | None,
    ) -> dict[str, Any]:
        if thing_id is not None:
            location_id = self._things[thing_id]["locationId"]
        definition = self._definition_by_id[definition_id]
        record: dict[str, Any] = {
            "id": event_id,
            "alertDefinitionId": definition_id,
            "name": definition["name"],
            "title": definition["title"],
            "description": definition["description"],
            "technicalDescription": definition.get("technicalDescription", ""),
            "startTimestamp": start,
            "endTimestamp": end,
            "eventSeverity": definition["eventSeverity"],
            "customerId": CUSTOMER_ID,
            "locationId": location_id,
            "thingId": thing_id,
            "notes": notes,
        }
        if properties is not None:
            record["properties"] = properties
        return record

    def _store_event(
        self,
        definition_id: str,
        *,
        thing_id: str | None,
        location_id: str | None,
        start: int,
        end: int | None,
        notes: str | None,
        properties: dict[str, str] | None,
    ) -> dict[str, Any]:
        event_id = f"ev-{self._store.next_event:04d}"
        self._store.next_event += 1
        record = self._event_record(
            event_id,
            definition_id,
            thing_id=thing_id,
            location_id=location_id,
            start=start,
            end=end,
            notes=notes,
            properties=properties,
        )
        self._store.events[event_id] = record
        return record

    async def _create_event(self, request: Request) -> Response:
        try:
            session = self._authenticate(request)
            fields = self._event_fields(await _json_object(request), session.tenant)
            # Re-checked after the body arrived: the token may have expired while it did.
            self._authenticate(request)
            definition_id = fields.pop("definition_id")
            record = self._store_event(definition_id, **fields)
            return JSONResponse(record, status_code=201)
        except _Refused as refused:
            return refused.response()

    async def _update_event(self, request: Request) -> Response:
        try:
            session = self._authenticate(request)
            event_id = request.path_params["event_id"]
            event = self._store.events.get(event_id)
            if event is None or not self._of_tenant(event, session.tenant):
                raise _Refused(404, NOT_FOUND)
            fields = self._event_fields(await _json_object(request), session.tenant)
            self._authenticate(request)
            if event_id not in self._store.events:
                raise _Refused(404, NOT_FOUND)
            definition_id = fields.pop("definition_id")
            self._store.events[event_id] = self._event_record(event_id, definition_id, **fields)
            return Response(status_code=200)
        except _Refused as refused:
            return refused.response()

    def _matches(self, event: dict[str, Any], request: Request) -> bool:
        query = request.query_params
        for key in ("customerId", "locationId", "thingId"):
            wanted = query.get(key)
            if wanted and event.get(key) != wanted:
                return False
        severities = query.get("eventSeverity")
        if severities:
            allowed = severities.removeprefix("in;").split(",")
            if str(event["eventSeverity"]) not in {s.strip() for s in allowed}:
                return False
        topics = query.get("topics")
        if topics:
            names = {t.strip().upper() for t in topics.removeprefix("in;").split(",")}
            if names == {"MAINTENANCE"} and event["eventSeverity"] != SEVERITY_MAINTENANCE:
                return False
        low = _query_millis(request, "minStartTimestamp")
        high = _query_millis(request, "maxStartTimestamp")
        start: int = event["startTimestamp"]
        return (low is None or start >= low) and (high is None or start <= high)

    async def _list_events(self, request: Request) -> Response:
        try:
            session = self._authenticate(request)
            page = _query_int(request, "page", 0, 0, 10**9)
            size = _query_int(request, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
            severities = request.query_params.get("eventSeverity", "")
            if severities and not all(
                s.strip().isdigit() for s in severities.removeprefix("in;").split(",")
            ):
                raise _Refused(400, f"{BAD_REQUEST}: eventSeverity must be 1 to 5")
            sort = request.query_params.get("sort") or "startTimestamp,DESC"
            field_name, _, direction = sort.partition(",")
            if direction.upper() not in ("", "ASC", "DESC"):
                raise _Refused(400, f"{BAD_REQUEST}: sort direction is ASC or DESC")
            matching = [
                e
                for e in self._store.events.values()
                if self._of_tenant(e, session.tenant) and self._matches(e, request)
            ]
            matching.sort(
                key=lambda e: _sort_key(e, field_name), reverse=direction.upper() == "DESC"
            )
            total = len(matching)
            total_pages = -(-total // size)
            content = matching[page * size : (page + 1) * size]
            return JSONResponse(
                {
                    "content": [dict(e) for e in content],
                    "first": page == 0,
                    "last": page + 1 >= total_pages,
                    "totalPages": total_pages,
                    "totalElements": total,
                    "sort": sort,
                    "numberOfElements": len(content),
                    "size": size,
                    "number": page,
                }
            )
        except _Refused as refused:
            return refused.response()

    async def _alert_definitions(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            definitions = self._definitions.get(request.path_params["definition_id"])
            if definitions is None:
                raise _Refused(404, NOT_FOUND)
            return JSONResponse([dict(d) for d in definitions])
        except _Refused as refused:
            return refused.response()

    # --- deprecated maintenance works -------------------------------------------------------

    async def _create_work(self, request: Request) -> Response:
        try:
            session = self._authenticate(request)
            body = await _json_object(request)
            start = _opt_millis(body, "startTimestamp")
            end = _opt_millis(body, "endTimestamp")
            if start is not None and end is not None and end < start:
                raise _Refused(400, f"{BAD_REQUEST}: endTimestamp is before startTimestamp")
            thing_id = _opt_str(body, "thingId", max_length=200)
            location_id = _opt_str(body, "locationId", max_length=200)
            if thing_id is not None or location_id is not None:
                thing_id, location_id = self._target(thing_id, location_id, session.tenant)
            work: dict[str, Any] = {
                "startTimestamp": start,
                "endTimestamp": end,
                "type": _opt_str(body, "type", max_length=100),
                "description": _opt_str(body, "description"),
                "outcome": _opt_str(body, "outcome"),
                "userEmail": _opt_str(body, "userEmail", max_length=320),
                "thingId": body.get("thingId"),
                "locationId": body.get("locationId"),
                "properties": _opt_properties(body),
            }
            self._authenticate(request)
            work_id = f"mw-{self._store.next_work:04d}"
            self._store.next_work += 1
            stored = {"id": work_id, **{k: v for k, v in work.items() if v is not None}}
            self._store.works[work_id] = stored
            if thing_id is None and location_id is None:
                # Nothing to hang an event on: the work alone is what the tenant gets.
                return JSONResponse(stored, status_code=201)
            notes = " — ".join(t for t in (work["description"], work["outcome"]) if t)
            now = to_epoch_millis(self._clock.now())
            self._store_event(
                self._maintenance_id,
                thing_id=thing_id,
                location_id=location_id,
                start=start if start is not None else (end if end is not None else now),
                end=end,
                notes=notes or None,
                properties={"maintenanceWorkId": work_id, **(work["properties"] or {})},
            )
            return JSONResponse(stored, status_code=201)
        except _Refused as refused:
            return refused.response()

    # --- for tests and the demo -------------------------------------------------------------

    def event(self, event_id: str) -> dict[str, Any]:
        """One stored event (KeyError if unknown)."""
        return dict(self._store.events[event_id])

    def maintenance_work(self, work_id: str) -> dict[str, Any]:
        """One stored maintenance work (KeyError if unknown)."""
        return dict(self._store.works[work_id])

    def token_expires_at(self, token: str) -> datetime | None:
        """When a JWT expires by the sandbox clock, or None if it was never issued or is spent."""
        session = self._store.sessions.get(token)
        return None if session is None else session.expires_at
