"""The vendor sandbox app: every vendor under its prefix, a control API, fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from bot.settings import Settings
from sandbox.core import Clock, VendorSandbox
from sandbox.faults import FaultKind, FaultMiddleware, FaultRule, Faults, FaultWhen

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox"

# module, class: the vendors a full sandbox serves.
VENDOR_CLASSES: tuple[tuple[str, str], ...] = (
    ("sandbox.akubela", "AkubelaSandbox"),
    ("sandbox.tuya", "TuyaSandbox"),
    ("sandbox.servitly", "ServitlySandbox"),
)


def second_community() -> dict[str, Any]:
    """What the sandbox serves for the second demo community (Marina Bay, Singapore) beside
    the settings' own: its Akubela project, zone and manager login (public demo values), its
    Tuya project and rooms, its Servitly tenant and places, and its amenities."""
    from sandbox.akubela_seed import MARINA, MARINA_HOME, POOL, TENNIS
    from sandbox.servitly import MARINA_TENANT
    from sandbox.tuya import MARINA_PROJECT, MARINA_ROOMS

    rooms = [room[0] for room in MARINA_ROOMS]
    return {
        "akubela_project_id": MARINA.project_id,
        "time_zone": MARINA.zone,
        "manager_username": MARINA.manager_username,
        "manager_password": MARINA.manager_password,
        "tuya_project_id": MARINA_PROJECT,
        "tuya_room_of_residence": {f"{MARINA_HOME}1": rooms[0], f"{MARINA_HOME}2": rooms[1]},
        "servitly_tenant": MARINA_TENANT,
        "servitly_location_map": {
            rooms[0]: {"locationId": "loc-marina-tower-1"},
            rooms[1]: {"locationId": "loc-marina-tower-2"},
            rooms[2]: {"thingId": "thing-marina-pool-pump"},
        },
        "amenities": {"pool": POOL, "tennis": TENNIS},
    }


def default_vendors(settings: Settings, clock: Clock) -> list[VendorSandbox]:
    """Builds every vendor sandbox on one clock."""
    vendors: list[VendorSandbox] = []
    for module_name, class_name in VENDOR_CLASSES:
        module = importlib.import_module(module_name)
        vendors.append(getattr(module, class_name)(settings, clock))
    return vendors


class SandboxControl:
    """The state behind the control API: vendors, clock, faults and the demo timer."""

    def __init__(
        self, vendors: Sequence[VendorSandbox], clock: Clock, faults: Faults, auto_every: float
    ) -> None:
        self.vendors = {vendor.name: vendor for vendor in vendors}
        self.clock = clock
        self.faults = faults
        self.auto_every = auto_every
        self._auto_task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Back to the seed: data, clock and faults."""
        self.clock.reset()
        self.faults.clear()
        for vendor in self.vendors.values():
            vendor.reset()

    def start_auto_advance(self) -> None:
        """Starts the demo timer when an interval is set."""
        if self.auto_every > 0 and self._auto_task is None:
            self._auto_task = asyncio.create_task(self._auto_loop())

    async def stop_auto_advance(self) -> None:
        """Stops the demo timer."""
        if self._auto_task is not None:
            self._auto_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._auto_task
            self._auto_task = None

    async def _auto_loop(self) -> None:
        while True:
            await asyncio.sleep(self.auto_every)
            for vendor in self.vendors.values():
                try:
                    vendor.auto_advance()
                except (KeyError, ValueError):
                    # A record that cannot move this tick simply waits for the next one.
                    logger.debug("auto-advance skipped a record in %s", vendor.name)


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _control_routes(control: SandboxControl) -> list[Route]:
    async def demo(request: Request) -> JSONResponse:
        info = {name: vendor.demo_info() for name, vendor in control.vendors.items()}
        base = str(request.base_url).rstrip("/")
        info["base_urls"] = {name: f"{base}/{name}" for name in control.vendors}
        return JSONResponse(info)

    async def reset(request: Request) -> JSONResponse:
        control.reset()
        return JSONResponse({"reset": True})

    async def advance(request: Request) -> JSONResponse:
        body = await _json_body(request)
        vendor = control.vendors.get(str(body.get("vendor", "")))
        kind, record_id = body.get("kind"), body.get("id")
        if vendor is None or not isinstance(kind, str) or not isinstance(record_id, str):
            return _bad("give vendor, kind and id")
        decision = body.get("decision")
        try:
            record = vendor.advance(
                kind, record_id, decision if isinstance(decision, str) else None
            )
        except KeyError:
            return _bad(f"no {kind} {record_id}", 404)
        except ValueError as exc:
            return _bad(str(exc), 409)
        return JSONResponse(record)

    async def list_faults(request: Request) -> JSONResponse:
        return JSONResponse([rule.public() for rule in control.faults.rules()])

    async def add_fault(request: Request) -> JSONResponse:
        body = await _json_body(request)
        try:
            rule = FaultRule(
                kind=FaultKind(str(body.get("kind"))),
                path=str(body.get("path", "")),
                probability=float(body.get("probability", 1.0)),
                times=None if body.get("times") is None else int(body["times"]),
                latency=float(body.get("latency", 0.0)),
                status=int(body.get("status", 500)),
                retry_after=float(body.get("retry_after", 1.0)),
                when=FaultWhen(str(body.get("when", FaultWhen.BEFORE.value))),
            )
            control.faults.add(rule)
        except (TypeError, ValueError) as exc:
            return _bad(f"bad fault: {exc}")
        return JSONResponse(rule.public(), status_code=201)

    async def clear_faults(request: Request) -> JSONResponse:
        control.faults.clear()
        return JSONResponse({"cleared": True})

    async def expire_tokens(request: Request) -> JSONResponse:
        body = await _json_body(request)
        names = [body["vendor"]] if isinstance(body.get("vendor"), str) else list(control.vendors)
        for name in names:
            if name not in control.vendors:
                return _bad(f"no vendor {name}", 404)
            control.vendors[name].expire_tokens()
        return JSONResponse({"expired": names})

    async def move_clock(request: Request) -> JSONResponse:
        body = await _json_body(request)
        try:
            control.clock.advance(float(body.get("advance", 0)))
        except (TypeError, ValueError):
            return _bad("advance is a number of seconds")
        return JSONResponse({"now": control.clock.now().isoformat()})

    async def tick(request: Request) -> JSONResponse:
        for vendor in control.vendors.values():
            vendor.auto_advance()
        return JSONResponse({"ticked": True})

    return [
        Route("/demo", demo, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/advance", advance, methods=["POST"]),
        Route("/faults", list_faults, methods=["GET"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", clear_faults, methods=["DELETE"]),
        Route("/expire-tokens", expire_tokens, methods=["POST"]),
        Route("/clock", move_clock, methods=["POST"]),
        Route("/tick", tick, methods=["POST"]),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    faults: Faults | None = None,
    vendors: Sequence[VendorSandbox] | None = None,
    auto_advance_every: float = 0.0,
) -> Starlette:
    """Builds the sandbox: each vendor under `/<name>`, control under `/_sandbox`."""
    clock = clock or Clock()
    faults = faults or Faults()
    vendor_list = list(vendors) if vendors is not None else default_vendors(settings, clock)
    control = SandboxControl(vendor_list, clock, faults, auto_advance_every)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        control.start_auto_advance()
        try:
            yield
        finally:
            await control.stop_auto_advance()

    routes = [Mount(CONTROL_PREFIX, routes=_control_routes(control))]
    routes += [Mount(f"/{vendor.name}", routes=list(vendor.routes())) for vendor in vendor_list]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.control = control
    app.add_middleware(FaultMiddleware, faults=faults, exempt_prefixes=(CONTROL_PREFIX,))
    return app
