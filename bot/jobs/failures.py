"""Why a job failed, in plain words for the member who asked for it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.evolink.errors import (
    BadRequest,
    EvoLinkError,
    InsufficientQuota,
    PermissionDenied,
    Unauthorized,
)
from bot.evolink.models import TaskError


@dataclass(frozen=True)
class JobFailure:
    code: str     # a short machine code, stored on the job row
    message: str  # for the member; never contains a secret


class JobFailed(Exception):
    """Raised inside the runner to end a job; the failure is shown and the credits refunded."""

    def __init__(self, failure: JobFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


_TASK_ERRORS = {
    "content_policy_violation": "The prompt was refused by the safety filter. Try rewording it.",
    "invalid_parameters": "EvoLink refused the options of this request.",
    "image_processing_error": "EvoLink could not read the input image.",
    "image_dimension_mismatch": "The input image's dimensions are not accepted by the model.",
    "generation_timeout": "The generation took too long on EvoLink's side. Try again.",
    "generation_failed_no_content": "The model produced nothing for this prompt. Try again or reword it.",
    "resource_exhausted": "EvoLink is out of capacity right now. Try again in a few minutes.",
    "service_unavailable": "EvoLink is unavailable right now. Try again in a few minutes.",
    "service_error": "EvoLink had a temporary problem. Try again in a minute.",
    "quota_exceeded": "The bot's EvoLink account has reached its quota. The operator was told.",
}


def describe_task_error(error: TaskError | None) -> JobFailure:
    """A failed task's error -> words. Unknown codes still say what EvoLink said."""
    if error is None:
        return JobFailure("unknown_error", "EvoLink could not finish this job, and gave no reason.")
    known = _TASK_ERRORS.get(error.code)
    if known:
        return JobFailure(error.code, known)
    detail = f": {_shorten(error.message)}" if error.message else ""
    return JobFailure(error.code or "unknown_error", f"EvoLink could not finish this job ({error.code}{detail}).")


def describe_api_error(error: EvoLinkError) -> JobFailure:
    """An HTTP error from EvoLink that ends a job -> words. Account problems are the operator's,
    not the member's, and say so."""
    if isinstance(error, Unauthorized):
        return JobFailure("evolink_unauthorized",
                          "The bot's EvoLink API key was refused. The operator needs to fix it.")
    if isinstance(error, InsufficientQuota):
        return JobFailure("evolink_out_of_credits",
                          "The bot's EvoLink account is out of credits. The operator needs to top it up.")
    if isinstance(error, PermissionDenied):
        return JobFailure("evolink_permission_denied",
                          "The bot's EvoLink key may not use the Wan 2.5 model. The operator needs to fix it.")
    if isinstance(error, BadRequest):
        detail = f": {_shorten(error.message)}" if error.message else ""
        return JobFailure("evolink_bad_request", f"EvoLink refused the request{detail}.")
    return JobFailure("evolink_unavailable",
                      "EvoLink could not be reached reliably. Try again in a few minutes.")


UNKNOWN_CREATE_OUTCOME = JobFailure(
    "submit_outcome_unknown",
    "EvoLink did not confirm it received this job, so it was not sent again (that could charge "
    "twice). Try again.",
)
INTERRUPTED_SUBMIT = JobFailure(
    "submit_interrupted",
    "The bot restarted while sending this job to EvoLink, so it cannot know whether EvoLink got it; "
    "it was not sent again (that could charge twice). Your credits were given back; try again.",
)
NOTHING_TO_DELIVER = JobFailure("nothing_to_deliver", "This job has no finished results to post.")
LINKS_EXPIRED = JobFailure("links_expired", "EvoLink's result links expire after 24 hours, and this job's have.")
TIMED_OUT = JobFailure("timed_out", "The job did not finish in time, so the bot stopped waiting for it.")
DOWNLOAD_FAILED = JobFailure("download_failed", "The finished results could not be downloaded from EvoLink.")
NO_RESULTS = JobFailure("generation_failed_no_content", "The model produced no images for this prompt. Try again.")
DELIVERY_FAILED = JobFailure("delivery_failed", "The results could not be posted to this channel.")
INTERNAL_ERROR = JobFailure("internal_error", "Something went wrong inside the bot; the operator can see the details in its log.")
OPERATOR_REFUND = JobFailure(
    "refunded_by_operator", "The bot's operator stopped this job and gave your credits back.",
)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
