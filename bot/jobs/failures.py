"""Why a job failed, in plain words for the member who asked for it, in their language."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.evolink.errors import (
    BadRequest,
    EvoLinkError,
    InsufficientQuota,
    PermissionDenied,
    Unauthorized,
)
from bot.evolink.models import TaskError
from bot.i18n import ENGLISH, Message

if TYPE_CHECKING:
    import discord


@dataclass(frozen=True)
class JobFailure:
    """A job's end, for the member. Build one with `JobFailure.of(code, key, **fields)` so it can
    be shown in any language; `JobFailure(code, message)` (plain English) is shown as it is."""

    code: str     # a short machine code, stored on the job row
    message: str  # in English, never a secret: stored on the job row for operators
    text: Message | None = field(default=None, compare=False)  # the same, in the reader's language

    @classmethod
    def of(cls, code: str, key: str, /, **fields: Any) -> JobFailure:
        """A failure whose words are the catalogue's `key` (see bot/i18n.py)."""
        text = Message(key, **fields)
        return cls(code, text.render(ENGLISH), text)

    def localized(self, locale: discord.Locale | str | None) -> str:
        """The words for a member reading `locale` (English for a failure built from plain text)."""
        return self.text.render(locale) if self.text is not None else self.message


class JobFailed(Exception):
    """Raised inside the runner to end a job; the failure is shown and the credits refunded."""

    def __init__(self, failure: JobFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


# An unknown EvoLink error code is shown (and stored on the job) at most this long: real ones are
# short words like "content_policy_violation".
ERROR_CODE_CHARS = 64

# EvoLink's task error codes whose meaning we can put in plain words.
_TASK_ERRORS = frozenset({
    "content_policy_violation", "invalid_parameters", "image_processing_error", "image_dimension_mismatch",
    "generation_timeout", "generation_failed_no_content", "resource_exhausted", "service_unavailable",
    "service_error", "quota_exceeded",
})


def describe_task_error(error: TaskError | None) -> JobFailure:
    """A failed task's error -> words. Unknown codes still say what EvoLink said, shortened: its
    code and message have no length limit, and a Discord embed has one."""
    if error is None:
        return JobFailure.of("unknown_error", "failures.no_reason")
    if error.code in _TASK_ERRORS:
        return JobFailure.of(error.code, f"failures.task.{error.code}")
    code = _shorten(error.code or "", ERROR_CODE_CHARS)
    if error.message:
        return JobFailure.of(code or "unknown_error", "failures.task_unknown_detail", code=code,
                             detail=_shorten(error.message))
    return JobFailure.of(code or "unknown_error", "failures.task_unknown", code=code)


def describe_api_error(error: EvoLinkError) -> JobFailure:
    """An HTTP error from EvoLink that ends a job -> words. Account problems are the operator's,
    not the member's, and say so."""
    if isinstance(error, Unauthorized):
        return EVOLINK_UNAUTHORIZED
    if isinstance(error, InsufficientQuota):
        return EVOLINK_OUT_OF_CREDITS
    if isinstance(error, PermissionDenied):
        return EVOLINK_PERMISSION_DENIED
    if isinstance(error, BadRequest):
        if error.message:
            return JobFailure.of("evolink_bad_request", "failures.evolink_bad_request_detail",
                                 detail=_shorten(error.message))
        return JobFailure.of("evolink_bad_request", "failures.evolink_bad_request")
    return EVOLINK_UNAVAILABLE


EVOLINK_UNAUTHORIZED = JobFailure.of("evolink_unauthorized", "failures.evolink_unauthorized")
EVOLINK_OUT_OF_CREDITS = JobFailure.of("evolink_out_of_credits", "failures.evolink_out_of_credits")
EVOLINK_PERMISSION_DENIED = JobFailure.of("evolink_permission_denied", "failures.evolink_permission_denied")
EVOLINK_UNAVAILABLE = JobFailure.of("evolink_unavailable", "failures.evolink_unavailable")
UNKNOWN_CREATE_OUTCOME = JobFailure.of("submit_outcome_unknown", "failures.submit_outcome_unknown")
INTERRUPTED_SUBMIT = JobFailure.of("submit_interrupted", "failures.submit_interrupted")
NOTHING_TO_DELIVER = JobFailure.of("nothing_to_deliver", "failures.nothing_to_deliver")
LINKS_EXPIRED = JobFailure.of("links_expired", "failures.links_expired")
TIMED_OUT = JobFailure.of("timed_out", "failures.timed_out")
DOWNLOAD_FAILED = JobFailure.of("download_failed", "failures.download_failed")
NO_RESULTS = JobFailure.of("generation_failed_no_content", "failures.no_results")
DELIVERY_FAILED = JobFailure.of("delivery_failed", "failures.delivery_failed")
INTERNAL_ERROR = JobFailure.of("internal_error", "failures.internal_error")
OPERATOR_REFUND = JobFailure.of("refunded_by_operator", "failures.refunded_by_operator")
# Written but never started: Discord refused (or timed out on) the command's first answer.
NOT_ACKNOWLEDGED = JobFailure.of("not_acknowledged", "failures.not_acknowledged")
UNKNOWN = JobFailure.of("unknown_error", "failures.unknown")

_FIXED = (
    EVOLINK_UNAUTHORIZED, EVOLINK_OUT_OF_CREDITS, EVOLINK_PERMISSION_DENIED, EVOLINK_UNAVAILABLE,
    UNKNOWN_CREATE_OUTCOME, INTERRUPTED_SUBMIT, NOTHING_TO_DELIVER, LINKS_EXPIRED, TIMED_OUT,
    DOWNLOAD_FAILED, NO_RESULTS, DELIVERY_FAILED, INTERNAL_ERROR, OPERATOR_REFUND, NOT_ACKNOWLEDGED,
    describe_task_error(None), *(describe_task_error(TaskError(code, "")) for code in sorted(_TASK_ERRORS)),
)


def stored_failure(code: str | None, message: str | None) -> JobFailure:
    """A failure read back from a job row (error_code, error_message), in words any member can
    read again: a failure the bot wrote itself is recognised by its code and English text and
    translated; anything else is shown as stored."""
    if not message:
        return UNKNOWN if not code else JobFailure(code, UNKNOWN.message, UNKNOWN.text)
    for known in _FIXED:
        if known.code == code and known.message == message:
            return known
    return JobFailure(code or "unknown_error", message)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
