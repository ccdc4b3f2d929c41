"""Why new generations are paused: the bot's EvoLink account refused a create (401/402/403).

Such a refusal is the operator's problem, not the member's, and it would refuse every job in line
the same way. So instead of failing jobs one by one, the runner stops sending, keeps the line, and
checks the account now and then until it works again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError
from bot.evolink.errors import EvoLinkError, InsufficientQuota, PermissionDenied, Unauthorized
from bot.i18n import ENGLISH, Message

# How often a paused runner asks EvoLink whether the account works again.
PAUSE_PROBE_SECONDS = 60.0


@dataclass(frozen=True)
class PauseReason:
    code: str      # also names its words for members: `pause.problem.<code>` in the catalogue
    operator: str  # for the operator's log (English): what to do about it

    @property
    def problem_message(self) -> Message:
        """What is wrong, in plain words, for members."""
        return Message(f"pause.problem.{self.code}")

    @property
    def problem(self) -> str:
        return self.problem_message.render(ENGLISH)

    @property
    def waiting_note(self) -> Message:
        """Under a job waiting in line."""
        return Message("pause.waiting_job", problem=self.problem_message)

    @property
    def new_command_message(self) -> Message:
        """The refusal of a command that would start a job."""
        return Message("pause.new_command", problem=self.problem_message)

    @property
    def moderators_notice(self) -> Message:
        """Posted in moderators' log channels (render it in the guild's preferred locale)."""
        return Message("pause.moderators", problem=self.problem_message)

    # English forms, for logs and for callers that have no reader's locale.
    @property
    def for_waiting_job(self) -> str:
        return self.waiting_note.render(ENGLISH)

    @property
    def for_new_command(self) -> str:
        return self.new_command_message.render(ENGLISH)

    @property
    def for_moderators(self) -> str:
        return self.moderators_notice.render(ENGLISH)


# Posted in moderators' log channels when generations resume.
RESUMED_NOTICE = Message("pause.resumed")

OUT_OF_CREDITS = PauseReason(
    "evolink_out_of_credits",
    "EvoLink answered 402: the account is out of credits. Top it up; queued jobs start by themselves.",
)
KEY_REFUSED = PauseReason(
    "evolink_unauthorized",
    "EvoLink answered 401: EVOLINK_API_KEY is invalid or revoked. Fix it and restart the bot.",
)
KEY_FORBIDDEN = PauseReason(
    "evolink_permission_denied",
    "EvoLink answered 403: the API key may not use this model. Check the key's permissions.",
)


# By code, as the processes sharing a database record a pause for each other.
PAUSE_REASONS = {reason.code: reason for reason in (OUT_OF_CREDITS, KEY_REFUSED, KEY_FORBIDDEN)}


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
        super().__init__("pause.new_command", problem=reason.problem_message)
        self.reason = reason


class AccountRefused(Exception):
    """EvoLink refused a create for the account's sake (401/402/403): the job goes back in line."""

    def __init__(self, reason: PauseReason) -> None:
        super().__init__(reason.code)
        self.reason = reason
