"""Typed errors raised by the EvoLink client.

The class is chosen by HTTP status (see `error_for_status`). Callers decide what to retry from
`transient`; the client itself never retries. No error ever carries the API key: the client
redacts it from server-provided text before building an error, and `str()` only shows status,
code, message and request id.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar

# Server messages can be whole HTML pages (a proxy's 502): keep str(error) to one short line.
_MAX_MESSAGE_CHARS = 300


def _one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EvoLinkError(Exception):
    """Base class of every error the EvoLink client raises."""

    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = _one_line(message) if message else ""
        self.status = status
        self.code = code
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        parts: list[str] = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head and self.message else (head or self.message)
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text or type(self).__name__

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class BadRequest(EvoLinkError):
    """400: our bug or bad input (invalid_request, invalid_task_id, ...). Do not retry."""


class Unauthorized(EvoLinkError):
    """401: the API key is wrong or expired. The operator's problem, not the user's."""


class InsufficientQuota(EvoLinkError):
    """402: the operator's EvoLink account is out of credits."""


class PermissionDenied(EvoLinkError):
    """403: the key may not use this model."""


class TaskNotFound(EvoLinkError):
    """404: unknown or expired task id (ids stay queryable for 24 hours)."""


class RateLimited(EvoLinkError):
    """429: slow down. `retry_after` is the server's hint in seconds, None when not given."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = super().__str__()
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        return text


class ServerError(EvoLinkError):
    """5xx: EvoLink or its upstream failed. Transient."""

    transient = True


class UnexpectedResponse(EvoLinkError):
    """A status we do not know what to do with, or a body that is not what the API documents."""


class EvoLinkTimeout(EvoLinkError):
    """The call timed out. The request may or may not have reached EvoLink: a create that timed
    out has an unknown outcome and must never be re-sent blindly (it is a paid call)."""

    transient = True


class EvoLinkConnectionError(EvoLinkError):
    """A network failure. `request_sent` is False only when the connection could not even be
    established (the request provably never reached EvoLink, so a create may be re-sent)."""

    transient = True

    def __init__(
        self, message: str, *, request_sent: bool = True, request_id: str | None = None
    ) -> None:
        # Defaults to True, the safe assumption: the outcome of a create is then unknown.
        super().__init__(message, request_id=request_id)
        self.request_sent = request_sent

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, "
            f"request_sent={self.request_sent!r})"
        )


_BY_STATUS: dict[int, type[EvoLinkError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: InsufficientQuota,
    403: PermissionDenied,
    404: TaskNotFound,
    429: RateLimited,
}


def error_class_for_status(status: int) -> type[EvoLinkError]:
    """The error class for an HTTP status (or a files-API `code` read as one)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return UnexpectedResponse


def error_for_status(
    status: int,
    *,
    code: str | None,
    message: str,
    request_id: str | None,
    retry_after: float | None = None,
    class_status: int | None = None,
) -> EvoLinkError:
    """Build the error for a failed answer. `class_status` picks the class when it differs from
    the HTTP status (the files API reports errors in the body, sometimes with HTTP 200)."""
    cls = error_class_for_status(status if class_status is None else class_status)
    if cls is RateLimited:
        return RateLimited(
            message, status=status, code=code, request_id=request_id, retry_after=retry_after
        )
    return cls(message, status=status, code=code, request_id=request_id)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date.

    `now` is the reference for dates; pass the response's own `Date` header when available so a
    skewed local clock does not matter. Returns None when absent or unparseable, never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP dates are GMT by definition
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())
