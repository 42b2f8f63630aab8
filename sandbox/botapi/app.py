"""The Starlette app: the Bot API under /bot<token>/, files, the web chat and its JSON API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox.botapi import methods
from sandbox.botapi.rules import Rules
from sandbox.botapi.state import BotApiError, BotApiState, Clock, Persona, Sleep, bad_request
from sandbox.botapi.webchat import webchat_routes
from sandbox.botapi.webhook import deliver_webhooks

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_FIELDS = 64
UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


def get_state(request: Request) -> BotApiState:
    """The server's state, kept on the app so tests can reach it too."""
    state: BotApiState = request.app.state.botapi
    return state


async def read_params(request: Request) -> methods.Params:
    """Collects parameters from the query string and a form, multipart or JSON body."""
    params = methods.Params(values=dict(request.query_params))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST":
        return params
    if content_type == "application/json":
        body = await request.body()
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                raise bad_request("can't parse JSON body") from None
            if not isinstance(data, dict):
                raise bad_request("JSON body must be an object")
            params.values.update(data)
        return params
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=MAX_UPLOAD_FIELDS, max_fields=1000) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    params.files[key] = methods.Upload(
                        filename=value.filename or key,
                        content_type=value.content_type or "application/octet-stream",
                        data=await value.read(),
                    )
                else:
                    params.values[key] = value
    return params


async def bot_api(request: Request) -> Response:
    """`/bot<token>/<method>`: one Bot API call."""
    state = get_state(request)
    if not state.token_matches(request.path_params["token"]):
        return JSONResponse(UNAUTHORIZED, status_code=401)
    name = request.path_params["method"]
    try:
        params = await read_params(request)
        result = await methods.call(state, name, params)
    except BotApiError as exc:
        return JSONResponse(exc.payload(), status_code=exc.status)
    return JSONResponse({"ok": True, "result": result})


async def download(request: Request) -> Response:
    """`/file/bot<token>/<file_path>`: a file's bytes, as getFile's path points."""
    state = get_state(request)
    if not state.token_matches(request.path_params["token"]):
        return JSONResponse(UNAUTHORIZED, status_code=401)
    stored = state.files_by_path.get(request.path_params["path"])
    if stored is None:
        return JSONResponse(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404
        )
    return Response(stored.data, media_type=stored.mime_type)


async def faults(request: Request) -> Response:
    """`/_botapi/faults`: GET lists, POST `{"method", "count", "retry_after"}`, DELETE clears."""
    state = get_state(request)
    if request.method == "POST":
        try:
            body = await request.json()
            state.faults.inject(
                str(body["method"]),
                count=int(body.get("count", 1)),
                retry_after=float(body.get("retry_after", 1)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad fault: {exc}"}, status_code=400)
    elif request.method == "DELETE":
        state.faults.clear()
    return JSONResponse(state.faults.snapshot())


async def health(request: Request) -> Response:
    """`/_botapi/health`: answers once the server is up (for `concierge demo` to wait on)."""
    return JSONResponse({"ok": True})


async def index(request: Request) -> Response:
    """The web chat page."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_botapi_app(
    *,
    token: str,
    personas: Sequence[Persona],
    bot_username: str = "concierge_demo_bot",
    bot_name: str = "Concierge",
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    rules: Rules | None = None,
) -> Starlette:
    """Builds the local Bot API + web chat app; its state is `app.state.botapi`."""
    extra: dict[str, Any] = {"rules": rules}
    if clock is not None:
        extra["clock"] = clock
    if sleep is not None:
        extra["sleep"] = sleep
    state = BotApiState(
        token=token, personas=personas, bot_username=bot_username, bot_name=bot_name, **extra
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.closed = False
        worker = asyncio.create_task(deliver_webhooks(state), name="botapi-webhooks")
        try:
            yield
        finally:
            state.close()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await state.aclose()

    routes = [
        Route("/", index),
        Route("/bot{token}/{method}", bot_api, methods=["GET", "POST"]),
        Route("/file/bot{token}/{path:path}", download),
        Route("/_botapi/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_botapi/health", health),
        *webchat_routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.botapi = state
    return app
