"""The Akubela sandbox: OAuth2 login page and tokens, user and manager commands, demo data.

Serves exactly the shapes `api.akubela` reads (see `api.akubela_models` for the ones the
vendor docs leave out). Choices the docs do not make:

* Everything the documents do not show is refused: a Content-Type other than
  `application/json` (415), an Accept other than `application/json` (406), a body without
  `param`, a number where the documents type a String, a time other than exactly
  `YYYY-MM-DD HH:MM:SS`, a date other than `YYYY-MM-DD`, a token request that is not a form.
* Failures take the shape `SANDBOX_AKUBELA_ERROR_STYLE` chooses (`sandbox.akubela_errors`):
  the documents' failure page is missing, so the client must cope with each plausible one.
* Booking times of day are UTC `HH:MM`. With `AKUBELA_TIME_LIST_DATE=local` the window of
  `get_booking_time_list` belongs to the community's local date; each bare time is the first
  UTC moment with that time of day at or after that local date's midnight (so with UTC+8 a
  06:00-23:00 gym reads `22:00`-`15:00`). With `utc` it covers the UTC date: opening hours
  of the local days that fall on it, the closed hours between them disallowed. A closed day
  (or one past the amenity's horizon) has `allowed_booking_time: null`. The already-past
  part of today is listed as disallowed together with bookings and daily closures.
* Each amenity books by its own rules from the seed (`BookingRules`: grid, shortest and
  longest booking, horizon); a booking outside them is refused with the reason.
* `delete_booking_info` cancels an upcoming booking (it stays listed as `canceled` and frees
  its slot); deleting one that is already over, canceled or rejected removes it.
* Booking codes: every booking has one, and its `qr_code_url` is a PNG of that code (served
  here, at `/media/qr/<code>.png`). `create_code_booking_info` with a neighbour's code books
  the same slot again for the caller's residence (the "scan to join" invitation): allowed while
  the original holds its slot and has not ended, once per residence, not for the residence
  that owns it. Unknown codes are refused.
* Repairs move `wait for confirmation` -> `in progress` -> `completed`, or to `closed` from
  either open state (decision "close"), with feedback.
"""

from __future__ import annotations

import html
import io
import itertools
import logging
import random
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import qrcode
from PIL import Image
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from api.akubela_models import BookingState, MaintenanceState, Scope
from api.times import VENDOR_DATETIME_FORMAT, format_vendor_datetime
from bot.settings import Settings
from sandbox.akubela_errors import ErrorStyle, Failure, render
from sandbox.akubela_seed import (
    BBQ,
    GYM,
    MARINA,
    MEETING_ROOM,
    Amenity,
    BookingRecord,
    Repair,
    Residence,
    Resident,
    Seed,
    build_seed,
)
from sandbox.core import Clock

logger = logging.getLogger(__name__)

METHOD = "/api/v1.0/invoke/open-ability/method"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
DATETIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")
ACCESS_TTL = timedelta(hours=2)
REFRESH_TTL = timedelta(days=30)
CODE_TTL = timedelta(minutes=5)
MANAGER_ACCOUNT = "manager"
MARINA_MANAGER = "manager-marina"
Param = dict[str, Any]
CommandHandler = Callable[["AkubelaSandbox", "Caller", Param], Any]


@dataclass(slots=True)
class Grant:
    """What a token or an authorization code stands for."""

    account_id: str
    scope: str
    expires_at: datetime
    client_id: str = ""
    redirect_uri: str = ""


@dataclass(slots=True)
class Caller:
    """The account a command runs for, and where its URLs point."""

    account_id: str
    scope: str
    base_url: str

    @property
    def is_manager(self) -> bool:
        return self.scope == Scope.MANAGER


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def _swatch(seed_text: str) -> bytes:
    # A flat colour derived from the name: a real image the bot can show, no files to ship.
    rng = random.Random(seed_text)  # noqa: S311 - a colour, not a secret
    colour = (rng.randrange(60, 200), rng.randrange(60, 200), rng.randrange(60, 200))
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class AkubelaSandbox:
    """Akubela's open-ability API on loopback, with the demo community in memory."""

    name = "akubela"

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._zone = settings.zone
        # Each project's zone and manager: the settings' project first, then Marina Bay.
        self._zones = {
            settings.akubela_project_id: settings.zone,
            MARINA.project_id: ZoneInfo(MARINA.zone),
        }
        self._managers = {
            settings.akubela_manager_username: (
                settings.akubela_manager_password.get_secret_value(),
                MANAGER_ACCOUNT,
                settings.akubela_project_id,
            ),
            MARINA.manager_username: (MARINA.manager_password, MARINA_MANAGER, MARINA.project_id),
        }
        self._error_style = ErrorStyle(settings.sandbox_akubela_error_style)
        # Requests and the demo timer share the state; uvicorn runs in another thread in
        # tests. Nothing awaits while holding the lock, so a check and its write are atomic.
        self._lock = threading.RLock()
        # The manager list as Akubela's public V4 pages show it: the page's repairs as a bare
        # array, without the page object around them (tests switch this on).
        self.manager_list_bare = False
        self.reset()

    # ---- protocol ------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the deterministic seed (times laid out around the clock's now)."""
        with self._lock:
            seed: Seed = build_seed(
                self._settings.akubela_project_id, self._clock.now(), self._zone
            )
            self._residences: dict[str, Residence] = seed.residences
            self._residents: dict[str, Resident] = seed.residents
            self._amenities: dict[str, Amenity] = seed.amenities
            self._repairs: dict[str, Repair] = seed.repairs
            self._bookings: dict[str, BookingRecord] = seed.bookings
            self._codes: dict[str, Grant] = {}
            self._access: dict[str, Grant] = {}
            self._refresh: dict[str, Grant] = {}
            # Token requests that reached Akubela, by grant type, refused ones included.
            self.token_requests: Counter[str] = Counter()
            self._random = random.Random(20240501)  # noqa: S311 - stable demo ids, not secrets

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now."""
        with self._lock:
            past = self._clock.now() - timedelta(seconds=1)
            for grant in self._access.values():
                grant.expires_at = min(grant.expires_at, past)

    def advance(self, kind: str, record_id: str, decision: str | None = None) -> dict[str, Any]:
        """Moves a repair or a booking on (KeyError: unknown record; ValueError: refused)."""
        with self._lock:
            if kind in ("repair", "maintenance"):
                repair = self._repairs[record_id]
                self._advance_repair(repair, decision)
                return self._repair_json(repair, self._settings.akubela_base_url, manager=True)
            if kind == "booking":
                booking = self._bookings[record_id]
                self._decide_booking(booking, decision)
                return self._booking_json(booking, self._settings.akubela_base_url)
            raise KeyError(kind)

    def auto_advance(self) -> None:
        """One demo tick: the oldest waiting and in-progress repairs move, a pending booking is
        approved."""
        with self._lock:
            for state in (MaintenanceState.IN_PROGRESS, MaintenanceState.WAIT_FOR_CONFIRMATION):
                waiting = sorted(
                    (r for r in self._repairs.values() if r.state == state),
                    key=lambda r: r.created_time,
                )
                if waiting:
                    self._advance_repair(waiting[0], None)
            pending = sorted(
                (b for b in self._bookings.values() if b.state == BookingState.PENDING),
                key=lambda b: b.created_time,
            )
            if pending:
                self._decide_booking(pending[0], "approve")

    def demo_info(self) -> dict[str, Any]:
        """Demo credentials and ids (the demo's secrets are public by design)."""
        with self._lock:
            return {
                "client_id": self._settings.akubela_client_id,
                "client_secret": self._settings.akubela_client_secret.get_secret_value(),
                "manager": {
                    "username": self._settings.akubela_manager_username,
                    "password": self._settings.akubela_manager_password.get_secret_value(),
                },
                "project_id": self._settings.akubela_project_id,
                "projects": [
                    {"project_id": project, "zone": zone.key}
                    for project, zone in self._zones.items()
                ],
                "residents": [
                    {
                        "account_id": person.account_id,
                        "email": person.email,
                        "password": person.password,
                        "name": person.name,
                        "residence_ids": list(person.residence_ids),
                    }
                    for person in self._residents.values()
                ],
                "residences": [
                    {
                        "residence_id": home.residence_id,
                        "family_name": home.family_name,
                        "building_name": home.building_name,
                        "room_name": home.room_name,
                        "project_id": home.project_id,
                    }
                    for home in self._residences.values()
                ],
                "amenities": {a.key: a.amenity_id for a in self._amenities.values()},
                "booking_codes": [
                    {
                        "booking_id": b.booking_id,
                        "booking_code": b.booking_code,
                        "residence_id": b.residence_id,
                    }
                    for b in self._bookings.values()
                    if b.holds_slot and b.finish_time > self._clock.now()
                ],
            }

    def routes(self) -> Sequence[BaseRoute]:
        """Akubela's paths, relative to the `/akubela` prefix."""
        return [
            Route(f"{METHOD}/oauth2/auth", self._login_page, methods=["GET"]),
            Route(f"{METHOD}/oauth2/auth", self._login_submit, methods=["POST"]),
            Route(f"{METHOD}/oauth2/token", self._token, methods=["POST"]),
            Route(f"{METHOD}/user-commands", self._user_commands, methods=["POST"]),
            Route(f"{METHOD}/manager-commands", self._manager_commands, methods=["POST"]),
            Route("/media/qr/{code}.png", self._qr_png, methods=["GET"]),
            Route("/media/amenity/{amenity_id}.png", self._amenity_png, methods=["GET"]),
            Route("/media/files/{name}", self._file_png, methods=["GET"]),
        ]

    # ---- helpers for tests -------------------------------------------------------------------

    def booking_code(self, booking_id: str) -> str:
        """The code a booking's QR image carries."""
        with self._lock:
            return self._bookings[booking_id].booking_code

    # ---- envelopes ---------------------------------------------------------------------------

    def _stamp(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _ok(self, result: Any) -> JSONResponse:
        return JSONResponse({"success": True, "timestamp": self._stamp(), "result": result})

    def _fail(self, failure: Failure) -> Response:
        return render(failure, self._error_style, self._stamp())

    @staticmethod
    def _base_url(request: Request) -> str:
        # The vendor's own URL (with the mount prefix), so media links work wherever it runs.
        return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"

    def _new_id(self, prefix: str) -> str:
        return prefix + "".join(self._random.choice("0123456789abcdef") for _ in range(32))

    # ---- OAuth2 ------------------------------------------------------------------------------

    def _check_auth_request(self, values: dict[str, str]) -> str | None:
        """Why a login request is unacceptable, or None."""
        if values.get("response_type", "code") != "code":
            return "response_type must be code / response_type 必须为 code"
        if values.get("client_id") != self._settings.akubela_client_id:
            return "unknown client_id / 未知的 client_id"
        redirect = urlsplit(values.get("redirect_uri", ""))
        if redirect.scheme not in ("http", "https") or not redirect.netloc:
            return "redirect_uri must be an absolute http(s) URL / redirect_uri 无效"
        if values.get("scope", Scope.USER) != Scope.USER:
            return "only scope user signs in here / 此处仅支持 user 授权"
        return None

    def _login_html(self, values: dict[str, str], error: str = "", status: int = 200) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{key}" value="{html.escape(values.get(key, ""))}">'
            for key in ("response_type", "client_id", "redirect_uri", "scope", "state")
        )
        notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        email = html.escape(values.get("email", ""))
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Akubela sign in / 登录</title>
<style>body{{font-family:sans-serif;max-width:22rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input[type=email],input[type=password]{{width:100%}}
.error{{color:#b00020}}button{{margin-top:1rem}}</style></head>
<body><h1>Akubela</h1>
<p>Sign in to link your home to Concierge.<br>登录以将您的住宅关联到 Concierge。</p>
{notice}<form method="post">{hidden}
<label for="email">E-mail / 电子邮箱</label>
<input id="email" name="email" type="email" value="{email}" required autocomplete="username">
<label for="password">Password / 密码</label>
<input id="password" name="password" type="password" required autocomplete="current-password">
<button type="submit">Sign in / 登录</button></form>
<p><small>Demo sandbox / 演示环境</small></p></body></html>"""
        return HTMLResponse(page, status_code=status)

    async def _login_page(self, request: Request) -> Response:
        values = {key: str(value) for key, value in request.query_params.items()}
        problem = self._check_auth_request(values)
        if problem:
            return HTMLResponse(f"<!doctype html><p>{html.escape(problem)}</p>", status_code=400)
        return self._login_html(values)

    async def _read_form(self, request: Request) -> dict[str, str]:
        try:
            form: FormData = await request.form()
        except (ValueError, MultiPartException):
            # A body that is not a form is answered like a form with nothing in it.
            return {}
        return {key: value for key, value in form.items() if isinstance(value, str)}

    async def _login_submit(self, request: Request) -> Response:
        values = await self._read_form(request)
        for key, value in request.query_params.items():
            values.setdefault(key, value)
        problem = self._check_auth_request(values)
        if problem:
            return HTMLResponse(f"<!doctype html><p>{html.escape(problem)}</p>", status_code=400)
        with self._lock:
            person = self._resident_by_login(values.get("email", ""), values.get("password", ""))
            if person is None:
                return self._login_html(
                    values,
                    "Wrong e-mail or password. / 电子邮箱或密码错误。",
                    status=401,
                )
            code = secrets.token_hex(16)
            self._codes[code] = Grant(
                account_id=person.account_id,
                scope=Scope.USER,
                expires_at=self._clock.now() + CODE_TTL,
                client_id=values["client_id"],
                redirect_uri=values["redirect_uri"],
            )
        parts = urlsplit(values["redirect_uri"])
        extra = {"code": code}
        if values.get("state"):
            extra["state"] = values["state"]
        query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)

    def _resident_by_login(self, email: str, password: str) -> Resident | None:
        wanted = email.strip().lower()
        for person in self._residents.values():
            if person.email == wanted and secrets.compare_digest(person.password, password):
                return person
        return None

    async def _token(self, request: Request) -> Response:
        form = await self._read_form(request)
        try:
            # RFC 6749 token requests are forms; a JSON or bare body is not read as one.
            if _media_type(request.headers.get("Content-Type")) != FORM:
                raise Failure(
                    "invalid_request",
                    f"Content-Type must be {FORM}",
                    malformed=True,
                )
            with self._lock:
                self.token_requests[form.get("grant_type", "")] += 1
                result = self._grant(form)
        except Failure as failure:
            return self._fail(failure)
        return self._ok(result)

    def _grant(self, form: dict[str, str]) -> dict[str, Any]:
        client_ok = form.get("client_id") == self._settings.akubela_client_id and (
            secrets.compare_digest(
                form.get("client_secret", ""),
                self._settings.akubela_client_secret.get_secret_value(),
            )
        )
        if not client_ok:
            raise Failure("invalid_client", "client authentication failed")
        now = self._clock.now()
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
            if code is None or code.expires_at <= now:
                raise Failure("invalid_grant", "authorization code is invalid or expired")
            if code.client_id != form["client_id"] or code.redirect_uri != form.get(
                "redirect_uri"
            ):
                raise Failure("invalid_grant", "code was issued for another client")
            return self._issue(code.account_id, code.scope, now)
        if grant_type == "password":
            return self._password_grant(form, now)
        if grant_type == "refresh_token":
            old = self._refresh.pop(form.get("refresh_token", ""), None)  # single use
            if old is None or old.expires_at <= now or old.client_id != form["client_id"]:
                raise Failure("invalid_grant", "refresh token is invalid or expired")
            return self._issue(old.account_id, old.scope, now)
        raise Failure("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _password_grant(self, form: dict[str, str], now: datetime) -> dict[str, Any]:
        username, password = form.get("username", ""), form.get("password", "")
        scope = form.get("scope") or Scope.USER
        manager = self._managers.get(username)
        if manager is not None and secrets.compare_digest(password, manager[0]):
            if scope != Scope.MANAGER:
                raise Failure("invalid_scope", "the manager account signs in with scope manager")
            return self._issue(manager[1], Scope.MANAGER, now)
        person = self._resident_by_login(username, password)
        if person is None:
            raise Failure("invalid_grant", "wrong username or password")
        if scope != Scope.USER:
            raise Failure("invalid_scope", f"scope {scope!r} is not granted to residents")
        return self._issue(person.account_id, Scope.USER, now)

    def _issue(self, account_id: str, scope: str, now: datetime) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        client_id = self._settings.akubela_client_id
        self._access[access] = Grant(account_id, scope, now + ACCESS_TTL, client_id)
        self._refresh[refresh] = Grant(account_id, scope, now + REFRESH_TTL, client_id)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "token_type": "Bearer",
            "scope": scope,
        }

    # ---- commands ----------------------------------------------------------------------------

    async def _user_commands(self, request: Request) -> Response:
        return await self._run(request, Scope.USER, self._USER_COMMANDS)

    async def _manager_commands(self, request: Request) -> Response:
        return await self._run(request, Scope.MANAGER, self._MANAGER_COMMANDS)

    async def _run(
        self,
        request: Request,
        scope: str,
        table: dict[str, CommandHandler],
    ) -> Response:
        try:
            body = await request.json()
        except ValueError:
            # Not JSON (or not UTF-8): the command check below answers with a failure envelope.
            body = None
        try:
            with self._lock:
                caller = self._caller(request, scope)
                _check_json_headers(request)
                if not isinstance(body, dict) or not isinstance(body.get("command"), str):
                    raise Failure(
                        "invalid_request", "body must be {command, id, param}", malformed=True
                    )
                if not isinstance(body.get("id"), str) or not body["id"]:
                    raise Failure("invalid_request", "command id is required", malformed=True)
                # Required by every command's table, even when it carries nothing: `{}`.
                if "param" not in body:
                    raise Failure("missing_param", "param is required", malformed=True)
                param = body["param"]
                if not isinstance(param, dict):
                    raise Failure("invalid_request", "param must be an object", malformed=True)
                handler = table.get(body["command"])
                if handler is None:
                    raise Failure(
                        "unknown_command", f"unknown command {body['command']!r}", malformed=True
                    )
                result = handler(self, caller, param)
        except Failure as failure:
            return self._fail(failure)
        return self._ok(result)

    def _caller(self, request: Request, scope: str) -> Caller:
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise Failure("invalid_token", "missing bearer access token")
        grant = self._access.get(token.strip())
        if grant is None:
            raise Failure("invalid_token", "invalid access token")
        if grant.expires_at <= self._clock.now():
            raise Failure("token_expired", "access token expired")
        if grant.scope != scope:
            raise Failure("insufficient_scope", f"these commands need scope {scope}")
        return Caller(grant.account_id, grant.scope, self._base_url(request))

    # -- param readers

    @staticmethod
    def _text(param: Param, key: str) -> str:
        value = param.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise Failure("missing_param", f"param {key} is required", malformed=True)
        # The documents type every id and text as String: a number is not accepted for one.
        if not isinstance(value, str):
            raise Failure("invalid_param", f"{key} must be a string", malformed=True)
        return value.strip()

    @staticmethod
    def _time(param: Param, key: str) -> datetime:
        text = AkubelaSandbox._text(param, key)
        # Exactly the documents' `YYYY-MM-DD HH:MM:SS` (UTC, no zone, no `T`, no offset).
        if not DATETIME_SHAPE.fullmatch(text):
            raise Failure(
                "invalid_param", f"{key} must be 'YYYY-MM-DD HH:MM:SS' in UTC", malformed=True
            )
        try:
            return datetime.strptime(text, VENDOR_DATETIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise Failure(
                "invalid_param", f"{key} must be 'YYYY-MM-DD HH:MM:SS' in UTC", malformed=True
            ) from None

    @staticmethod
    def _date(param: Param, key: str) -> date:
        text = AkubelaSandbox._text(param, key)
        # The documents' example is `2024-01-02`; `20240102` and the like are not taken.
        if not DATE_SHAPE.fullmatch(text):
            raise Failure("invalid_param", f"{key} must be YYYY-MM-DD", malformed=True)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise Failure("invalid_param", f"{key} must be YYYY-MM-DD", malformed=True) from None

    @staticmethod
    def _int(param: Param, key: str, *, low: int, high: int) -> int:
        value = param.get(key)
        if value is None:
            raise Failure("missing_param", f"param {key} is required", malformed=True)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Failure("invalid_param", f"{key} must be an integer", malformed=True)
        if not low <= value <= high:
            raise Failure(
                "invalid_param", f"{key} must be between {low} and {high}", malformed=True
            )
        return value

    def _residence(self, caller: Caller, param: Param) -> Residence:
        residence_id = self._text(param, "residence_id")
        residence = self._residences.get(residence_id)
        person = self._residents.get(caller.account_id)
        if residence is None or person is None or residence_id not in person.residence_ids:
            raise Failure("residence_not_found", f"residence {residence_id} not found")
        return residence

    # -- repairs

    def _repair_json(self, repair: Repair, base: str, *, manager: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "maintenance_id": repair.maintenance_id,
            "start_time": format_vendor_datetime(repair.start_time),
            "finish_time": format_vendor_datetime(repair.finish_time),
            "description": repair.description,
            "contact": repair.contact,
            "maintenance_picture_url": [f"{base}/media/files/{n}" for n in repair.filenames],
            "feedback": repair.feedback,
            "state": repair.state,
            "created_time": format_vendor_datetime(repair.created_time),
        }
        if manager:
            home = self._residences[repair.residence_id]
            data |= {
                "residence_id": home.residence_id,
                "family_name": home.family_name,
                "building_name": home.building_name,
            }
        return data

    def _own_repair(self, residence: Residence, maintenance_id: str) -> Repair:
        repair = self._repairs.get(maintenance_id)
        if repair is None or repair.residence_id != residence.residence_id:
            raise Failure("maintenance_not_found", f"maintenance {maintenance_id} not found")
        return repair

    def cmd_get_maintenance_list(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        repairs = [r for r in self._repairs.values() if r.residence_id == home.residence_id]
        repairs.sort(key=lambda r: r.created_time, reverse=True)
        return [self._repair_json(r, caller.base_url) for r in repairs]

    def cmd_get_maintenance_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        repair = self._own_repair(home, self._text(param, "maintenance_id"))
        data = self._repair_json(repair, caller.base_url)
        del data["maintenance_id"]  # as documented: the info result carries no id
        return data

    def cmd_create_maintenance_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        start, finish = self._time(param, "start_time"), self._time(param, "finish_time")
        description = self._text(param, "description")
        contact = self._text(param, "contact")
        filenames = param.get("filename") or []
        if not isinstance(filenames, list) or not all(isinstance(f, str) for f in filenames):
            raise Failure("invalid_param", "filename must be a list of strings", malformed=True)
        if finish <= start:
            raise Failure("invalid_time", "finish_time must be after start_time")
        if len(description) > 1000:
            raise Failure("invalid_param", "description is longer than 1000 characters")
        maintenance_id = self._new_id("m")
        self._repairs[maintenance_id] = Repair(
            maintenance_id=maintenance_id,
            residence_id=home.residence_id,
            start_time=start,
            finish_time=finish,
            description=description,
            contact=contact,
            filenames=list(filenames),
            state=MaintenanceState.WAIT_FOR_CONFIRMATION.value,
            created_time=self._clock.now().replace(microsecond=0),
        )
        return {"maintenance_id": maintenance_id}

    def cmd_delete_maintenance_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        repair = self._own_repair(home, self._text(param, "maintenance_id"))
        del self._repairs[repair.maintenance_id]
        return {}

    def cmd_batch_delete_maintenance_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        entries = param.get("maintenances")
        if not isinstance(entries, list) or not entries:
            raise Failure("missing_param", "param maintenances is required", malformed=True)
        # Check every id first: a batch is all or nothing.
        repairs = [
            self._own_repair(home, self._text(e if isinstance(e, dict) else {}, "maintenance_id"))
            for e in entries
        ]
        for repair in repairs:
            self._repairs.pop(repair.maintenance_id, None)
        return {}

    def _advance_repair(self, repair: Repair, decision: str | None) -> None:
        state = repair.state
        if decision == "close" and state in (
            MaintenanceState.WAIT_FOR_CONFIRMATION,
            MaintenanceState.IN_PROGRESS,
        ):
            repair.state = MaintenanceState.CLOSED.value
            repair.feedback = (
                repair.feedback or "Closed by the property office. / 物业已关闭此报修。"
            )
        elif decision in (None, "confirm", "start") and state == (
            MaintenanceState.WAIT_FOR_CONFIRMATION
        ):
            repair.state = MaintenanceState.IN_PROGRESS.value
        elif decision in (None, "complete") and state == MaintenanceState.IN_PROGRESS:
            repair.state = MaintenanceState.COMPLETED.value
            repair.feedback = repair.feedback or "Repaired by the technician. / 师傅已完成维修。"
        else:
            raise ValueError(f"repair in state {state!r} cannot move on with {decision!r}")

    # -- bookings

    def _amenity(self, param: Param, home: Residence) -> Amenity:
        amenity_id = self._text(param, "amenity_id")
        amenity = self._amenities.get(amenity_id)
        # Another community's amenity is as unknown to a residence as one that never was.
        if amenity is None or amenity.project_id != home.project_id:
            raise Failure("amenity_not_found", f"amenity {amenity_id} not found")
        return amenity

    def _zone_of(self, amenity: Amenity) -> ZoneInfo:
        return self._zones.get(amenity.project_id, self._zone)

    def _booking_json(self, booking: BookingRecord, base: str) -> dict[str, Any]:
        amenity = self._amenities[booking.amenity_id]
        home = self._residences[booking.residence_id]
        return {
            "booking_id": booking.booking_id,
            "amenity_id": amenity.amenity_id,
            "amenity_name": amenity.name,
            "amenity_picture_url": f"{base}/media/amenity/{amenity.amenity_id}.png",
            "amenity_description": amenity.description,
            "building_name": home.building_name,
            "family_name": home.family_name,
            "start_time": format_vendor_datetime(booking.start_time),
            "finish_time": format_vendor_datetime(booking.finish_time),
            "state": booking.state,
            "is_expired": booking.finish_time <= self._clock.now(),
            "pin_code": booking.pin_code,
            "qr_code_url": f"{base}/media/qr/{booking.booking_code}.png",
            "created_time": format_vendor_datetime(booking.created_time),
        }

    def _own_booking(self, residence: Residence, booking_id: str) -> BookingRecord:
        booking = self._bookings.get(booking_id)
        if booking is None or booking.residence_id != residence.residence_id:
            raise Failure("booking_not_found", f"booking {booking_id} not found")
        return booking

    def cmd_get_booking_list(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        bookings = [b for b in self._bookings.values() if b.residence_id == home.residence_id]
        bookings.sort(key=lambda b: b.start_time, reverse=True)
        return [self._booking_json(b, caller.base_url) for b in bookings]

    def cmd_get_booking_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        data = self._booking_json(
            self._own_booking(home, self._text(param, "booking_id")), caller.base_url
        )
        del data["booking_id"]  # as documented: the info result carries no id
        return data

    def cmd_get_booking_amenity_list(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        return [
            {
                "amenity_id": a.amenity_id,
                "amenity_name": a.name,
                "amenity_picture_url": f"{caller.base_url}/media/amenity/{a.amenity_id}.png",
                "amenity_description": a.description,
            }
            for a in self._amenities.values()
            if a.project_id == home.project_id
        ]

    def _window(self, amenity: Amenity, day: date) -> tuple[datetime, datetime] | None:
        """The opening hours of a local date, in UTC, or None when closed."""
        hours = amenity.hours.get(day.weekday())
        if hours is None:
            return None
        opens, closes = hours
        zone = self._zone_of(amenity)
        return self._local(day, opens, zone), self._local(day, closes, zone)

    def _local(self, day: date, moment: time, zone: ZoneInfo) -> datetime:
        return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)

    def _taken(
        self, amenity: Amenity, days: Sequence[date], *, ignore_group: str = ""
    ) -> list[tuple[datetime, datetime]]:
        """Booked and blocked intervals of some local dates."""
        zone = self._zone_of(amenity)
        intervals = [
            (self._local(day, a, zone), self._local(day, b, zone))
            for day in days
            for a, b in amenity.blocks
        ]
        intervals += [
            (b.start_time, b.finish_time)
            for b in self._bookings.values()
            if b.amenity_id == amenity.amenity_id and b.holds_slot and b.group != ignore_group
        ]
        return intervals

    def _bookable(self, amenity: Amenity, day: date) -> bool:
        """Whether a local date lies within the amenity's booking horizon."""
        today = self._clock.now().astimezone(self._zone_of(amenity)).date()
        return day <= today + timedelta(days=amenity.rules.horizon_days)

    def _span(self, day: date, local: ZoneInfo) -> tuple[datetime, datetime]:
        """The instants a `get_booking_time_list` date covers, by AKUBELA_TIME_LIST_DATE."""
        zone = local if self._settings.akubela_time_list_date == "local" else UTC
        midnight = datetime.combine(day, time(0, 0), tzinfo=zone)
        following = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
        return midnight.astimezone(UTC), following.astimezone(UTC)

    def cmd_get_booking_time_list(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        amenity = self._amenity(param, home)
        local = self._zone_of(amenity)
        span_start, span_end = self._span(self._date(param, "date"), local)
        # A UTC date may hold parts of two local opening days: look at every local date near.
        first = span_start.astimezone(local).date() - timedelta(days=1)
        days = [first + timedelta(days=n) for n in range(3)]
        windows: list[tuple[datetime, datetime]] = []
        for day in days:
            window = self._window(amenity, day) if self._bookable(amenity, day) else None
            if window is not None and max(window[0], span_start) < min(window[1], span_end):
                windows.append((max(window[0], span_start), min(window[1], span_end)))
        if not windows:
            return {"allowed_booking_time": None, "disallowed_booking_time": []}
        windows.sort()
        opens, closes = windows[0][0], max(end for _start, end in windows)
        busy = list(self._taken(amenity, days))
        # Closed hours between two opening windows of one UTC date.
        busy += [(a_end, b_start) for (_a, a_end), (b_start, _b) in itertools.pairwise(windows)]
        now = self._clock.now()
        if now > opens:
            busy.append((opens, self._round_up(amenity, windows, now)))
        clipped = sorted((max(a, opens), min(b, closes)) for a, b in busy)
        merged: list[tuple[datetime, datetime]] = []
        for start, finish in (i for i in clipped if i[0] < i[1]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
            else:
                merged.append((start, finish))
        return {
            "allowed_booking_time": {"start_time": _hhmm(opens), "finish_time": _hhmm(closes)},
            "disallowed_booking_time": [
                {"start_time": _hhmm(a), "finish_time": _hhmm(b)} for a, b in merged
            ],
        }

    @staticmethod
    def _round_up(
        amenity: Amenity, windows: Sequence[tuple[datetime, datetime]], now: datetime
    ) -> datetime:
        """The first moment after `now` a booking could start (on the grid, if it has one)."""
        grid = amenity.rules.grid_minutes
        if grid is None:
            return now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        step = timedelta(minutes=grid)
        # The grid runs from the opening of the window `now` falls in (or the last one).
        opens = max((start for start, _end in windows if start <= now), default=now)
        return opens + -(-(now - opens) // step) * step  # ceiling division of timedeltas

    def _check_slot(
        self, amenity: Amenity, start: datetime, minutes: int, *, group: str = ""
    ) -> datetime:
        """Refuses a booking the amenity's rules do not allow, with the reason; returns its
        finish."""
        rules = amenity.rules
        if minutes <= 0:
            raise Failure("invalid_duration", "duration must be a positive number of minutes")
        if minutes < rules.min_minutes:
            raise Failure(
                "duration_too_short",
                f"{amenity.name} is booked for at least {rules.min_minutes} minutes",
            )
        if minutes > rules.max_minutes:
            raise Failure(
                "duration_too_long",
                f"{amenity.name} can be booked for at most {rules.max_minutes} minutes",
            )
        if rules.grid_minutes is not None and minutes % rules.grid_minutes:
            raise Failure(
                "invalid_duration",
                f"duration must be a multiple of {rules.grid_minutes} minutes",
            )
        if start < self._clock.now():
            raise Failure("time_in_past", "start_time is in the past")
        finish = start + timedelta(minutes=minutes)
        day = start.astimezone(self._zone_of(amenity)).date()
        if not self._bookable(amenity, day):
            raise Failure(
                "too_far_ahead",
                f"{amenity.name} is booked at most {rules.horizon_days} days ahead",
            )
        window = self._window(amenity, day)
        if window is None or not (window[0] <= start and finish <= window[1]):
            raise Failure(
                "outside_opening_hours", f"{amenity.name} is not open for the whole booking"
            )
        if rules.grid_minutes is not None and (start - window[0]) % timedelta(
            minutes=rules.grid_minutes
        ):
            raise Failure(
                "invalid_start_time",
                f"bookings start on the {rules.grid_minutes}-minute grid from opening time",
            )
        for taken_start, taken_finish in self._taken(amenity, [day], ignore_group=group):
            if taken_start < finish and start < taken_finish:
                raise Failure("slot_taken", "that time is already booked or closed")
        return finish

    def _create_booking(
        self,
        amenity: Amenity,
        home: Residence,
        start: datetime,
        finish: datetime,
        *,
        state: str,
        group: str = "",
    ) -> str:
        booking_id = self._new_id("b")
        self._bookings[booking_id] = BookingRecord(
            booking_id=booking_id,
            amenity_id=amenity.amenity_id,
            residence_id=home.residence_id,
            start_time=start,
            finish_time=finish,
            state=state,
            pin_code=f"{self._random.randrange(100000, 1000000)}",
            booking_code=self._new_id("k"),
            created_time=self._clock.now().replace(microsecond=0),
            group=group,
        )
        return booking_id

    def cmd_create_booking_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        amenity = self._amenity(param, home)
        start = self._time(param, "start_time")
        minutes = self._int(param, "duration", low=-(10**6), high=10**6)
        finish = self._check_slot(amenity, start, minutes)
        state = BookingState.SUCCESS if amenity.auto_approve else BookingState.PENDING
        return {"booking_id": self._create_booking(amenity, home, start, finish, state=state)}

    def cmd_create_code_booking_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        code = self._text(param, "booking_code")
        origin = next((b for b in self._bookings.values() if b.booking_code == code), None)
        if origin is None:
            raise Failure("invalid_booking_code", "booking code not recognised")
        if not origin.holds_slot or origin.finish_time <= self._clock.now():
            raise Failure("invalid_booking_code", "booking code is no longer valid")
        members = [b for b in self._bookings.values() if b.group == origin.group and b.holds_slot]
        if any(b.residence_id == home.residence_id for b in members):
            raise Failure("already_booked", "this residence already has this booking")
        amenity = self._amenities[origin.amenity_id]
        minutes = int((origin.finish_time - origin.start_time).total_seconds() // 60)
        finish = self._check_slot(amenity, origin.start_time, minutes, group=origin.group)
        # Joining follows the original's approval: pending until the office decides.
        state = BookingState.SUCCESS if amenity.auto_approve else BookingState(origin.state)
        booking_id = self._create_booking(
            amenity, home, origin.start_time, finish, state=state, group=origin.group
        )
        return {"booking_id": booking_id}

    def _cancel(self, booking: BookingRecord) -> None:
        upcoming = booking.finish_time > self._clock.now()
        if booking.holds_slot and upcoming:
            booking.state = BookingState.CANCELED.value
        else:
            del self._bookings[booking.booking_id]

    def cmd_delete_booking_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        self._cancel(self._own_booking(home, self._text(param, "booking_id")))
        return {}

    def cmd_batch_delete_booking_info(self, caller: Caller, param: Param) -> Any:
        home = self._residence(caller, param)
        entries = param.get("bookings")
        if not isinstance(entries, list) or not entries:
            raise Failure("missing_param", "param bookings is required", malformed=True)
        bookings = [
            self._own_booking(home, self._text(e if isinstance(e, dict) else {}, "booking_id"))
            for e in entries
        ]
        for booking in {b.booking_id: b for b in bookings}.values():
            self._cancel(booking)
        return {}

    def _decide_booking(self, booking: BookingRecord, decision: str | None) -> None:
        if booking.state != BookingState.PENDING:
            raise ValueError(f"booking in state {booking.state!r} takes no decision")
        if decision == "approve":
            booking.state = BookingState.SUCCESS.value
        elif decision == "reject":
            booking.state = BookingState.REJECTED.value
        else:
            raise ValueError("a booking decision is 'approve' or 'reject'")

    # -- account

    def cmd_get_family_list(self, caller: Caller, param: Param) -> Any:
        person = self._residents[caller.account_id]
        return [
            {
                "residence_id": home.residence_id,
                "family_name": home.family_name,
                "building_name": home.building_name,
                "room_name": home.room_name,
                "project_id": home.project_id,
            }
            for home in (self._residences[rid] for rid in person.residence_ids)
        ]

    def cmd_get_account_info(self, caller: Caller, param: Param) -> Any:
        person = self._residents[caller.account_id]
        return {
            "account_id": person.account_id,
            "email": person.email,
            "name": person.name,
            "phone": person.phone,
        }

    # -- manager

    def cmd_manager_get_maintenance_list(self, caller: Caller, param: Param) -> Any:
        project_id = self._text(param, "project_id")
        # A manager sees the project they manage; any other is as unknown as a made-up one.
        managed = {account: project for _p, account, project in self._managers.values()}
        if managed.get(caller.account_id) != project_id:
            raise Failure("project_not_found", f"project {project_id} not found")
        page_size = self._int(param, "page_size", low=1, high=100)
        page_index = self._int(param, "page_index", low=1, high=10**6)
        repairs = sorted(
            (
                r
                for r in self._repairs.values()
                if self._residences[r.residence_id].project_id == project_id
            ),
            key=lambda r: (r.created_time, r.maintenance_id),
            reverse=True,
        )
        start = (page_index - 1) * page_size
        if self.manager_list_bare:
            return [
                self._repair_json(r, caller.base_url, manager=True)
                for r in repairs[start : start + page_size]
            ]
        return {
            "total": len(repairs),
            "page_index": page_index,
            "page_size": page_size,
            "list": [
                self._repair_json(r, caller.base_url, manager=True)
                for r in repairs[start : start + page_size]
            ],
        }

    _USER_COMMANDS: ClassVar[dict[str, CommandHandler]] = {
        "get_maintenance_list": cmd_get_maintenance_list,
        "get_maintenance_info": cmd_get_maintenance_info,
        "create_maintenance_info": cmd_create_maintenance_info,
        "delete_maintenance_info": cmd_delete_maintenance_info,
        "batch_delete_maintenance_info": cmd_batch_delete_maintenance_info,
        "get_booking_list": cmd_get_booking_list,
        "get_booking_info": cmd_get_booking_info,
        "get_booking_amenity_list": cmd_get_booking_amenity_list,
        "get_booking_time_list": cmd_get_booking_time_list,
        "create_booking_info": cmd_create_booking_info,
        "create_code_booking_info": cmd_create_code_booking_info,
        "delete_booking_info": cmd_delete_booking_info,
        "batch_delete_booking_info": cmd_batch_delete_booking_info,
        "get_family_list": cmd_get_family_list,
        "get_account_info": cmd_get_account_info,
    }
    _MANAGER_COMMANDS: ClassVar[dict[str, CommandHandler]] = {
        "get_maintenance_list": cmd_manager_get_maintenance_list,
    }

    # ---- media -------------------------------------------------------------------------------

    async def _qr_png(self, request: Request) -> Response:
        code = request.path_params["code"]
        with self._lock:
            known = any(b.booking_code == code for b in self._bookings.values())
        if not known:
            return Response(status_code=404)
        return Response(_png(qrcode.make(code)), media_type="image/png")

    async def _amenity_png(self, request: Request) -> Response:
        amenity_id = request.path_params["amenity_id"]
        if amenity_id not in self._amenities:
            return Response(status_code=404)
        return Response(_swatch(amenity_id), media_type="image/png")

    async def _file_png(self, request: Request) -> Response:
        # Akubela documents no upload; every named repair photo shows as a placeholder.
        return Response(_swatch(request.path_params["name"]), media_type="image/png")


def _media_type(value: str | None) -> str:
    """The bare media type of a header value (no parameters), lower case."""
    return (value or "").split(";", 1)[0].strip().lower()


def _check_json_headers(request: Request) -> None:
    """Content-Type and Accept exactly as every command's table requires: application/json."""
    content_type = request.headers.get("Content-Type")
    parameters = [p.strip().lower() for p in (content_type or "").split(";")[1:] if p.strip()]
    if _media_type(content_type) != JSON or any(p != "charset=utf-8" for p in parameters):
        raise Failure("unsupported_media_type", f"Content-Type must be {JSON}")
    if _media_type(request.headers.get("Accept")) != JSON:
        raise Failure("not_acceptable", f"Accept must be {JSON}")


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


__all__ = ["BBQ", "GYM", "MEETING_ROOM", "AkubelaSandbox", "Failure"]
