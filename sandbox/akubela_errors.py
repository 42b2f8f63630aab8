"""How the Akubela sandbox fails, in each shape the vendor plausibly uses.

Akubela's documents end every command with "Failure Return Example: see Failure Return
Example", a page that is not included. Until the vendor confirms the shape, the sandbox can fail
in any of these (`SANDBOX_AKUBELA_ERROR_STYLE`), and the client must cope with all of them:

* `status`: HTTP 4xx by meaning (400, 401, 403, 404, 406, 415) with
  `{"success": false, "timestamp", "code": "<snake_case>", "message"}`.
* `envelope`: always HTTP 200 with `{"success": false, "timestamp", "code": <number>,
  "message"}`. The number is HTTP-shaped (40100 a refused token, 40400 not found) and a
  credential failure says only "authentication failed": the client has the code to go on.
* `oauth`: HTTP 4xx with RFC 6749/6750 `{"error", "error_description"}`; a refused bearer
  token also gets `WWW-Authenticate: Bearer error="invalid_token"`.
* `empty401`: a refused token, client or grant is HTTP 401 (a wrong scope 403) with no body
  at all; everything else as `status`.

A failure is raised as `Failure(code, message)` and rendered here, so every command and the
token endpoint fail in the one configured style.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.responses import JSONResponse, Response


class ErrorStyle(StrEnum):
    """The failure shapes `SANDBOX_AKUBELA_ERROR_STYLE` chooses from."""

    STATUS = "status"
    ENVELOPE = "envelope"
    OAUTH = "oauth"
    EMPTY_401 = "empty401"


@dataclass(frozen=True, slots=True)
class Kind:
    """What a failure means, and how each style spells that."""

    status: int
    number: int  # the `envelope` style's code: HTTP status * 100 + a detail
    oauth: str  # the RFC 6749/6750 error name
    credential: bool = False  # a refused token, client or grant: no body in `empty401`


MALFORMED = Kind(400, 40000, "invalid_request")
UNSUPPORTED_MEDIA = Kind(415, 41500, "invalid_request")
NOT_ACCEPTABLE = Kind(406, 40600, "invalid_request")
UNSUPPORTED_GRANT = Kind(400, 40001, "unsupported_grant_type")
INVALID_SCOPE = Kind(400, 40002, "invalid_scope")
REFUSED = Kind(400, 40010, "invalid_request")
TOKEN = Kind(401, 40100, "invalid_token", credential=True)
CLIENT = Kind(401, 40101, "invalid_client", credential=True)
# RFC 6749 answers a bad grant with 400; as a code it is a refused credential.
GRANT = Kind(400, 40102, "invalid_grant", credential=True)
SCOPE = Kind(403, 40300, "insufficient_scope", credential=True)
NOT_FOUND = Kind(404, 40400, "invalid_request")

_BY_CODE = {
    "invalid_client": CLIENT,
    "invalid_grant": GRANT,
    "unsupported_grant_type": UNSUPPORTED_GRANT,
    "invalid_scope": INVALID_SCOPE,
    "invalid_token": TOKEN,
    "token_expired": TOKEN,
    "insufficient_scope": SCOPE,
    "unsupported_media_type": UNSUPPORTED_MEDIA,
    "not_acceptable": NOT_ACCEPTABLE,
}
# The envelope style names no credential problem: the client has only the code to go on.
OPAQUE_CREDENTIAL_MESSAGE = "认证失败 / authentication failed"


class Failure(Exception):
    """A refused call: `code` says why (snake case), `malformed` marks a call that is not
    well-formed (as opposed to a well-formed one the vendor refuses)."""

    def __init__(self, code: str, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.malformed = malformed

    @property
    def kind(self) -> Kind:
        """What the failure means."""
        known = _BY_CODE.get(self.code)
        if known is not None:
            return known
        if self.code.endswith("_not_found"):
            return NOT_FOUND
        return MALFORMED if self.malformed else REFUSED


def render(failure: Failure, style: ErrorStyle, timestamp: int) -> Response:
    """The answer to a refused call, in the configured style."""
    kind = failure.kind
    if style is ErrorStyle.ENVELOPE:
        message = OPAQUE_CREDENTIAL_MESSAGE if kind.credential else failure.message
        return JSONResponse(
            {"success": False, "timestamp": timestamp, "code": kind.number, "message": message}
        )
    if style is ErrorStyle.OAUTH:
        headers: dict[str, str] = {}
        if kind in (TOKEN, SCOPE):
            headers["WWW-Authenticate"] = f'Bearer error="{kind.oauth}"'
        error = kind.oauth if kind.credential or kind.oauth != "invalid_request" else failure.code
        body: dict[str, Any] = {"error": error, "error_description": failure.message}
        return JSONResponse(body, status_code=kind.status, headers=headers)
    if style is ErrorStyle.EMPTY_401 and kind.credential:
        return Response(status_code=403 if kind is SCOPE else 401)
    return JSONResponse(
        {
            "success": False,
            "timestamp": timestamp,
            "code": failure.code,
            "message": failure.message,
        },
        status_code=kind.status,
    )
