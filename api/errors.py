"""One exception hierarchy for every vendor, caught by meaning rather than by vendor."""

from __future__ import annotations


class ApiError(Exception):
    """A vendor call failed; carries the vendor's code and message, never a credential."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        code: str | int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        parts = [f"{self.vendor}: {self.message}"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class AuthError(ApiError):
    """Credentials were refused or a token expired and could not be renewed."""


class NotFound(ApiError):
    """The record does not exist, or is not visible to this caller."""


class InvalidRequest(ApiError):
    """The vendor refused the request as it stands (bad parameter, refused transition)."""


class RateLimited(ApiError):
    """Too many requests; `retry_after` seconds is the vendor's hint when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        code: str | int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, code=code, status=status)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """The vendor could not be reached or failed on its side.

    `outcome_unknown` is true when the request may have reached the vendor (a read timeout,
    a dropped connection, a garbled answer): a write must then be looked for before it is
    sent again.
    """

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        code: str | int | None = None,
        status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, vendor=vendor, code=code, status=status)
        self.outcome_unknown = outcome_unknown
