"""Why new generations are paused: the bot's EvoLink account refused a create (401/402/403).

Such a refusal is the operator's problem, not the member's, and it would refuse every job in line
the same way. So instead of failing jobs one by one, the runner stops sending, keeps the line, and
checks the account now and then until it works again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError
from bot.evolink.errors import EvoLinkError, InsufficientQuota, PermissionDenied, Unauthorized


@dataclass(frozen=True)
class PauseReason:
    code: str
    problem: str   # for members: what is wrong, in plain words
    operator: str  # for the operator's log: what to do about it

    @property
    def for_waiting_job(self) -> str:
        return f"Paused: {self.problem}; moderators were told. Your job keeps its place in line."

    @property
    def for_new_command(self) -> str:
        return (f"New generations are paused: {self.problem}; moderators were told. "
                "Nothing was charged; try again later.")

    @property
    def for_moderators(self) -> str:
        return (f"⏸️ New generations are paused: {self.problem}. Jobs already in line wait and "
                "start by themselves once the bot's operator has fixed it.")


OUT_OF_CREDITS = PauseReason(
    "evolink_out_of_credits", "the bot's EvoLink account is out of credits",
    "EvoLink answered 402: the account is out of credits. Top it up; queued jobs start by themselves.",
)
KEY_REFUSED = PauseReason(
    "evolink_unauthorized", "the bot's EvoLink API key was refused",
    "EvoLink answered 401: EVOLINK_API_KEY is invalid or revoked. Fix it and restart the bot.",
)
KEY_FORBIDDEN = PauseReason(
    "evolink_permission_denied", "the bot's EvoLink key may not use Wan 2.5",
    "EvoLink answered 403: the API key may not use this model. Check the key's permissions.",
)


def pause_reason_for(error: EvoLinkError) -> PauseReason | None:
    """The pause an account-level refusal calls for; None for errors about one job."""
    if isinstance(error, InsufficientQuota):
        return OUT_OF_CREDITS
    if isinstance(error, Unauthorized):
        return KEY_REFUSED
    if isinstance(error, PermissionDenied):
        return KEY_FORBIDDEN
    return None


class SubmissionsPaused(UserFacingError):
    """A command arrived while generations are paused; it is refused before anything is charged."""

    def __init__(self, reason: PauseReason) -> None:
        super().__init__(reason.for_new_command)
        self.reason = reason
