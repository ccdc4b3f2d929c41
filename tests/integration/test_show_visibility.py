"""/show re-posts a job only where its channel's content may go: in that channel, or for a member
who can view that channel, and never out of an age-restricted channel into one that is not.
Permissions come from the fake's guild (roles, @everyone, each channel's overwrites) through the
bot's gateway cache, as on Discord."""

from __future__ import annotations

import discord
import pytest

from tests.fakes.discord import FakeChannel, FakeOverwrite, FakeRole, slash_command_payload
from tests.integration.conftest import CHANNEL_ID, GUILD_ID
from tests.integration.test_history import settled

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

STAFF_ROLE = 7310
STAFF_CHANNEL = 7311
STAFF_THREAD = 7312
AFTER_DARK = 7313  # age-restricted
LATE_NIGHT = 7314  # age-restricted too
LATE_NIGHT_THREAD = 7315
UNCACHED_CHANNEL = 7316  # a channel the bot was never told about

STAFFER = 5101  # has the Staff role
OUTSIDER = 5102  # has not
VIEW_CHANNEL = discord.Permissions(view_channel=True).value

SECRET_PROMPT = "the staff-only roadmap, as a poster"


async def build_server(harness) -> None:
    """A staff channel that @everyone may not view and the Staff role may (the bot too, by a member
    overwrite), a thread in it, and two age-restricted channels that everyone may view."""
    fake = harness.discord
    await fake.add_role(GUILD_ID, FakeRole(STAFF_ROLE, "Staff"))
    await fake.add_channel(GUILD_ID, FakeChannel(STAFF_CHANNEL, name="staff", permission_overwrites=[
        FakeOverwrite(GUILD_ID, type=0, deny=VIEW_CHANNEL),
        FakeOverwrite(STAFF_ROLE, type=0, allow=VIEW_CHANNEL),
        FakeOverwrite(fake.bot_user_id, type=1, allow=VIEW_CHANNEL),
    ]))
    await fake.add_channel(GUILD_ID, FakeChannel(STAFF_THREAD, name="roadmap", type=11, parent_id=STAFF_CHANNEL))
    await fake.add_channel(GUILD_ID, FakeChannel(AFTER_DARK, name="after-dark", nsfw=True))
    await fake.add_channel(GUILD_ID, FakeChannel(LATE_NIGHT, name="late-night", nsfw=True))
    await fake.add_channel(GUILD_ID, FakeChannel(LATE_NIGHT_THREAD, name="chat", type=11, parent_id=LATE_NIGHT))
    guild = harness.bot.get_guild(GUILD_ID)
    await fake.wait_for(lambda _: guild.get_role(STAFF_ROLE) and guild.get_thread(LATE_NIGHT_THREAD))


async def job_in(harness, channel_id: int, prompt: str, user_id: int, roles: tuple[int, ...] = ()) -> None:
    payload = slash_command_payload(harness.discord, name="imagine", channel_id=channel_id, user_id=user_id,
                                    roles=list(roles), options=[{"name": "prompt", "type": 3, "value": prompt}])
    interaction = await harness.discord.send_interaction(payload)
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)
    await settled(harness)


async def show(harness, job_id: int, *, channel_id: int, user_id: int, roles: tuple[int, ...] = (),
               locale: str = "en-US") -> int:
    payload = slash_command_payload(harness.discord, name="show", channel_id=channel_id, user_id=user_id,
                                    roles=list(roles), locale=locale,
                                    options=[{"name": "job", "type": 4, "value": job_id}])
    return await harness.discord.send_interaction(payload)


async def posted(harness, interaction: int):
    """The public re-post of a job, with its file."""
    message = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)
    assert harness.record(interaction).callback_type == 5 and not message.ephemeral
    return message


async def refused(harness, interaction: int) -> str:
    """A private refusal, answered before any public deferral, and nothing posted or fetched."""
    fetches = len(harness.discord.requests_to("GET", r"^/(attachments/|channels/\d+/messages/)"))
    text = await harness.private_refusal(interaction)
    channel_id = harness.record(interaction).channel_id
    assert [m for m in harness.discord.messages_in(channel_id) if not m.ephemeral and m.attachments
            and m.interaction_id == interaction] == []
    assert len(harness.discord.requests_to("GET", r"^/(attachments/|channels/\d+/messages/)")) == fetches
    return text


async def test_a_staff_channels_job_is_shown_only_to_those_who_can_view_that_channel(harness):
    await build_server(harness)
    await job_in(harness, STAFF_CHANNEL, SECRET_PROMPT, STAFFER, roles=(STAFF_ROLE,))  # job 1

    # A member without the role, from the public channel: refused privately, nothing leaks.
    text = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER))
    assert text == ("Job 1 was made in a channel you cannot view, so it can only be shown there, "
                    "or by someone who can view that channel.")
    assert SECRET_PROMPT not in "\n".join(m.text for m in harness.discord.messages_in(CHANNEL_ID))
    chinese = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER,
                                                locale="zh-CN"))
    assert chinese == "任务 1 来自一个你无法查看的频道，因此只能在那个频道中展示，或由能查看那个频道的成员展示。"

    # A member with the Staff role may bring it into the public channel.
    shown = await posted(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER,
                                             roles=(STAFF_ROLE,)))
    assert shown.channel_id == CHANNEL_ID and SECRET_PROMPT in shown.text

    # Its requester, in the staff channel itself.
    again = await posted(harness, await show(harness, 1, channel_id=STAFF_CHANNEL, user_id=STAFFER,
                                             roles=(STAFF_ROLE,)))
    assert again.channel_id == STAFF_CHANNEL


async def test_a_thread_counts_as_its_parent_channel(harness):
    await build_server(harness)
    await job_in(harness, STAFF_THREAD, "a thread's secret", STAFFER, roles=(STAFF_ROLE,))  # job 1

    text = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER))
    assert text.startswith("Job 1 was made in a channel you cannot view")
    await posted(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=STAFFER, roles=(STAFF_ROLE,)))
    await posted(harness, await show(harness, 1, channel_id=STAFF_THREAD, user_id=STAFFER, roles=(STAFF_ROLE,)))


async def test_an_age_restricted_channels_job_stays_in_age_restricted_channels(harness):
    await build_server(harness)
    await job_in(harness, AFTER_DARK, "something for adults only", STAFFER)  # job 1

    # Everyone may view #after-dark, yet its job does not go into a channel that is not age-restricted.
    text = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER))
    assert text == ("Job 1 was made in an age-restricted channel, so it can only be shown in an "
                    "age-restricted channel.")
    chinese = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER,
                                                locale="zh-CN"))
    assert chinese == "任务 1 来自一个年龄限制频道，因此只能在年龄限制频道中展示。"

    # Another age-restricted channel, and a thread in one, may have it.
    in_late_night = await posted(harness, await show(harness, 1, channel_id=LATE_NIGHT, user_id=OUTSIDER))
    assert in_late_night.channel_id == LATE_NIGHT
    await posted(harness, await show(harness, 1, channel_id=LATE_NIGHT_THREAD, user_id=OUTSIDER))


async def test_a_job_from_a_channel_the_bot_does_not_know_stays_there(harness):
    await job_in(harness, UNCACHED_CHANNEL, "from a channel I was never told about", OUTSIDER)  # job 1

    text = await refused(harness, await show(harness, 1, channel_id=CHANNEL_ID, user_id=OUTSIDER))
    assert text == "Job 1 was made in a channel I can no longer see, so it can only be shown in that channel."
    await posted(harness, await show(harness, 1, channel_id=UNCACHED_CHANNEL, user_id=OUTSIDER))


async def test_a_deleted_channels_job_is_not_shown_elsewhere(harness):
    await build_server(harness)
    await job_in(harness, AFTER_DARK, "a job whose channel goes away", STAFFER)  # job 1
    await harness.discord.remove_channel(AFTER_DARK)
    guild = harness.bot.get_guild(GUILD_ID)
    await harness.discord.wait_for(lambda _: guild.get_channel(AFTER_DARK) is None)

    text = await refused(harness, await show(harness, 1, channel_id=LATE_NIGHT, user_id=STAFFER))
    assert text.startswith("Job 1 was made in a channel I can no longer see")
