"""What every vendor sandbox shares: a movable clock and the protocol the app mounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from starlette.routing import BaseRoute


class Clock:
    """The sandbox's idea of now: real time plus an offset that tests and demos can move."""

    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Moves time forward (token expiry, booking expiry, "past" checks follow)."""
        self._offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        """Back to real time."""
        self._offset = timedelta()


class VendorSandbox(Protocol):
    """One vendor served locally, mounted by the app under `/<name>`."""

    name: str

    def routes(self) -> Sequence[BaseRoute]:
        """The vendor's routes, relative to its prefix."""
        ...

    def reset(self) -> None:
        """Back to the deterministic seed."""
        ...

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now."""
        ...

    def advance(self, kind: str, record_id: str, decision: str | None = None) -> dict[str, Any]:
        """Moves one record to its next state (KeyError: unknown; ValueError: refused)."""
        ...

    def auto_advance(self) -> None:
        """One tick of the demo timer."""
        ...

    def demo_info(self) -> dict[str, Any]:
        """Credentials and ids a demo or a test needs."""
        ...
