"""The buttons under every finished job: Reroll, Remix, Edit, Animate, Details, Delete.

Each is a `DynamicItem` whose custom_id carries the job id and the action
(`wan:job:42:reroll`): discord.py routes a click by matching the id against the template, so a
button keeps working after any restart, on any shard, with nothing held in memory per message.
A click is dispatched as the `result_button` event; the results cog (cogs/results.py) listens to
it and runs the action (bot/ui/result_actions.py).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import discord

from bot.i18n import Translate
from bot.jobs.store import Job


class Action(StrEnum):
    REROLL = "reroll"
    REMIX = "remix"
    EDIT = "edit"
    ANIMATE = "animate"
    DETAILS = "details"
    DELETE = "delete"


# In the order they appear under a result (/help lists them the same way).
BUTTON_EMOJI: dict[Action, str] = {
    Action.REROLL: "🔁", Action.REMIX: "✏️", Action.EDIT: "🖌️", Action.ANIMATE: "🎬", Action.DETAILS: "ℹ️", Action.DELETE: "🗑️",
}
_BUTTON_STYLES = {Action.REROLL: discord.ButtonStyle.primary, Action.DELETE: discord.ButtonStyle.danger}


# A click becomes this event: `on_result_button(interaction, job_id, action)` in a listener.
RESULT_BUTTON_EVENT = "result_button"


def custom_id(job_id: int, action: Action) -> str:
    return f"wan:job:{job_id}:{action.value}"


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"wan:job:(?P<job_id>[0-9]{1,20}):(?P<action>reroll|remix|edit|animate|details|delete)",
):
    def __init__(self, job_id: int, action: Action, label: str = "") -> None:
        super().__init__(discord.ui.Button(
            custom_id=custom_id(job_id, action), label=label or None, emoji=BUTTON_EMOJI[action],
            style=_BUTTON_STYLES.get(action, discord.ButtonStyle.secondary),
            # What makes something new on the first row, what is about this job on the second.
            row=1 if action in (Action.DETAILS, Action.DELETE) else 0))
        self.job_id = job_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ResultButton:
        return cls(int(match["job_id"]), Action(match["action"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # Handed over as an event, which the results cog listens to (`on_result_button`), the way
        # RoboDanny's timers dispatch theirs: the button knows nothing of what its action needs.
        interaction.client.dispatch(RESULT_BUTTON_EVENT, interaction, self.job_id, self.action)


def result_view(job: Job, locale: str | None = None) -> discord.ui.View:
    """The buttons of a finished job, labelled in the requester's language (the message is
    public, and the requester is the one most likely to click)."""
    _ = Translate(locale or job.locale)
    view = discord.ui.View(timeout=None)
    actions = [Action.REROLL, Action.REMIX]
    if job.kind.makes_images:
        actions += [Action.EDIT, Action.ANIMATE]
    actions += [Action.DETAILS, Action.DELETE]
    for action in actions:
        view.add_item(ResultButton(job.id, action, label=_(f"buttons.{action.value}")))
    return view
