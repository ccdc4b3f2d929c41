"""The fake Discord, exercised by a real discord.py AutoShardedBot over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime
import io

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    component_payload,
    modal_submit_payload,
    slash_command_payload,
)

GUILD_ID = 1240000000000000001
CHANNEL_ID = 1240000000000000002
USER_ID = 1240000000000000003
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def fake():
    fake = FakeDiscord(guilds=[FakeGuild(id=GUILD_ID, premium_tier=2, channels=[FakeChannel(CHANNEL_ID)])])
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def bot(fake):
    """A started, ready bot; closed before the fake (else it would try to reconnect)."""
    old_base = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    # Short guild_ready_timeout: on_ready otherwise waits 2 s after the last GUILD_CREATE.
    bot = commands.AutoShardedBot(command_prefix="!", intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start("fake-token"))
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # start() failed: raise its error
        assert ready in done, "bot did not become ready\n" + fake.summary()
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        try:
            await asyncio.wait_for(task, 5)
        except Exception:
            pass
        discord.http.Route.BASE = old_base


async def test_login_gateway_and_guild(fake, bot):
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.get_channel(CHANNEL_ID) is not None
    assert guild.filesize_limit == 50 * 1024 * 1024  # boost tier 2
    assert guild.me is not None
    assert bot.user.id == fake.bot_user_id and bot.application_id == fake.application_id
    paths = [r.path for r in fake.requests]
    assert {"/users/@me", "/oauth2/applications/@me", "/gateway/bot"} <= set(paths)
    identify = next(p for p in fake.gateway_received if p["op"] == 2)
    assert identify["d"]["intents"] == discord.Intents(guilds=True).value
    assert identify["d"]["shard"] == [0, 1]


async def test_slash_defer_edit_with_file_then_token_expiry_and_bot_token_edit(fake, bot):
    seen: dict = {}
    edited = asyncio.Event()

    @bot.tree.command(name="draw", description="Draw", guild=discord.Object(GUILD_ID))
    async def draw(interaction: discord.Interaction, prompt: str) -> None:
        seen["interaction"] = interaction
        await interaction.response.defer(thinking=True)
        file = discord.File(io.BytesIO(PNG), filename="out.png")
        await interaction.edit_original_response(content=f"done: {prompt}", attachments=[file])
        edited.set()

    payload = slash_command_payload(
        fake,
        name="draw",
        options=[{"name": "prompt", "type": 3, "value": "a cat"}],
        guild_id=GUILD_ID,
        channel_id=CHANNEL_ID,
        user_id=USER_ID,
        command_guild_id=GUILD_ID,  # an unsynced guild command
    )
    iid = await fake.send_interaction(payload)
    await asyncio.wait_for(edited.wait(), 5)

    interaction: discord.Interaction = seen["interaction"]
    assert interaction.filesize_limit == 50 * 1024 * 1024
    # The id is a "now" snowflake, so discord.py sees a fresh 15-minute token.
    expected_expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=15)
    assert abs((interaction.expires_at - expected_expiry).total_seconds()) < 5

    record = fake.interaction_responses[iid]
    assert record.callback_type == 5
    message = fake.messages[record.original_message_id]
    assert message.content == "done: a cat" and not message.loading and message.channel_id == CHANNEL_ID
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [("out.png", "image/png", PNG)]
    patch = fake.requests_to("PATCH", r"/messages/@original$")[0]
    assert patch.files[0].data == PNG and patch.json["attachments"] == [{"id": 0, "filename": "out.png"}]

    # A second acknowledgement is refused by Discord itself (discord.py would refuse earlier).
    async with aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/interactions/{iid}/{record.token}/callback?with_response=1"
        async with http.post(url, json={"type": 5}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060

    fake.expire_token(record.token)
    with pytest.raises(discord.HTTPException) as excinfo:
        await interaction.edit_original_response(content="too late")
    assert excinfo.value.status == 401 and excinfo.value.code == 50027

    partial = bot.get_partial_messageable(CHANNEL_ID).get_partial_message(message.id)
    new_file = discord.File(io.BytesIO(b"second"), filename="next.png")
    result = await partial.edit(content="final", attachments=[new_file])
    assert result.content == "final" and [a.filename for a in result.attachments] == ["next.png"]
    assert message.content == "final" and [a.data for a in message.attachments] == [b"second"]
    bot_edit = fake.requests_to("PATCH", rf"^/channels/{CHANNEL_ID}/messages/{message.id}$")[0]
    assert bot_edit.headers["Authorization"] == "Bot fake-token"
    assert len(message.edits) == 2

    # The attachment URL is served, like the CDN.
    assert await result.attachments[0].read() == b"second"


async def test_first_response_after_window_is_unknown_interaction(fake, bot):
    fake.interaction_ack_window = 0.2  # Discord's 3 s, shortened so the test stays fast
    errors: list[discord.HTTPException] = []
    finished = asyncio.Event()

    @bot.tree.command(name="slow", description="Too slow")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            errors.append(exc)
        finished.set()

    iid = await fake.send_interaction(slash_command_payload(fake, name="slow", guild_id=GUILD_ID))
    await asyncio.wait_for(finished.wait(), 5)
    assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062
    assert not fake.interaction_responses[iid].acknowledged


async def test_tree_sync_stores_payloads_and_synced_guild_command_dispatches(fake, bot):
    @bot.tree.command(name="ping", description="Ping", guild=discord.Object(GUILD_ID))
    @app_commands.describe(loud="Shout")
    async def ping(interaction: discord.Interaction, loud: bool = False) -> None:
        await interaction.response.send_message("PONG" if loud else "pong")

    synced = await bot.tree.sync(guild=discord.Object(GUILD_ID))
    assert [c.name for c in synced] == ["ping"]
    stored = fake.commands[GUILD_ID]
    assert stored[0]["name"] == "ping" and stored[0]["options"][0]["name"] == "loud"
    assert synced[0].id == fake.command_id("ping")

    # Synced to the guild, so the payload carries data.guild_id without being told.
    payload = slash_command_payload(fake, name="ping", options=[{"name": "loud", "type": 5, "value": True}])
    assert payload["data"]["guild_id"] == str(GUILD_ID)
    iid = await fake.send_interaction(payload)
    await fake.wait_for(lambda f: f.interaction_responses[iid].acknowledged, timeout=5)
    record = fake.interaction_responses[iid]
    assert record.callback_type == 4 and fake.messages[record.original_message_id].content == "PONG"


async def test_component_click_reaches_dynamic_item(fake, bot):
    clicks: list[tuple[int, int]] = []

    class Reroll(discord.ui.DynamicItem[discord.ui.Button], template=r"job:(?P<id>\d+):reroll"):
        def __init__(self, job_id: int) -> None:
            super().__init__(discord.ui.Button(label="Reroll", custom_id=f"job:{job_id}:reroll"))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction, item, match):
            return cls(int(match["id"]))

        async def callback(self, interaction: discord.Interaction) -> None:
            clicks.append((self.job_id, interaction.user.id))
            await interaction.response.edit_message(content="rerolling", view=None)

    bot.add_dynamic_items(Reroll)
    view = discord.ui.View(timeout=None)
    view.add_item(Reroll(42))
    sent = await bot.get_partial_messageable(CHANNEL_ID).send("result", view=view)
    assert fake.messages[sent.id].custom_ids() == ["job:42:reroll"]

    with pytest.raises(ValueError):  # Discord cannot send a click for a button that is not there
        component_payload(fake, custom_id="job:7:reroll", message_id=sent.id)

    iid = await fake.send_interaction(
        component_payload(fake, custom_id="job:42:reroll", message_id=sent.id, user_id=USER_ID)
    )
    await fake.wait_for(lambda f: f.interaction_responses[iid].acknowledged, timeout=5)
    assert clicks == [(42, USER_ID)]
    assert fake.interaction_responses[iid].callback_type == 7
    assert fake.messages[sent.id].content == "rerolling" and fake.messages[sent.id].components == []


async def test_modal_submit_and_ephemeral_reply(fake, bot):
    submitted: list[str] = []

    class PromptModal(discord.ui.Modal, title="Prompt"):
        prompt = discord.ui.TextInput(label="Prompt", custom_id="prompt")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            submitted.append(self.prompt.value)
            await interaction.response.send_message("queued", ephemeral=True)

    @bot.tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(PromptModal(custom_id="prompt-modal"))

    ask_id = await fake.send_interaction(slash_command_payload(fake, name="ask"))
    await fake.wait_for(lambda f: f.interaction_responses[ask_id].callback_type == 9, timeout=5)
    assert fake.interaction_responses[ask_id].callback_data["custom_id"] == "prompt-modal"

    submit = modal_submit_payload(
        fake,
        custom_id="prompt-modal",
        components=[{"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a dog"}]}],
    )
    submit_id = await fake.send_interaction(submit)
    await fake.wait_for(lambda f: f.interaction_responses[submit_id].acknowledged, timeout=5)
    assert submitted == ["a dog"]
    reply = fake.messages[fake.interaction_responses[submit_id].original_message_id]
    assert reply.ephemeral and reply.content == "queued"

    # Ephemeral messages cannot be reached with the bot token.
    with pytest.raises(discord.NotFound) as excinfo:
        await bot.get_partial_messageable(reply.channel_id).fetch_message(reply.id)
    assert excinfo.value.code == 10008


async def test_dm_command_rate_limit_and_upload_limit(fake, bot):
    @bot.tree.command(name="hello", description="Hello")
    async def hello(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=False)
        await interaction.followup.send(f"hi {interaction.user.id}")

    iid = await fake.send_interaction(slash_command_payload(fake, name="hello", guild_id=None, user_id=USER_ID))
    await fake.wait_for(lambda f: f.messages[f.interaction_responses[iid].original_message_id].content, timeout=5)
    record = fake.interaction_responses[iid]
    # The first followup after a thinking defer replaces the placeholder.
    assert fake.messages[record.original_message_id].content == f"hi {USER_ID}"
    assert record.followup_message_ids == [] and record.channel_id == fake.dm_channel_id(USER_ID)
    assert record.payload["context"] == 1 and "user" in record.payload

    # 429 with Via + retry_after: discord.py waits and retries by itself.
    fake.fail_next("POST", r"^/channels/\d+/messages$", 429, None)
    dm = await bot.create_dm(discord.Object(USER_ID))
    sent = await dm.send("after a rate limit")
    attempts = fake.requests_to("POST", r"^/channels/\d+/messages$")
    assert [(r.status, r.injected) for r in attempts] == [(429, True), (200, False)]
    assert fake.messages[sent.id].content == "after a rate limit"

    # Per-file limit (DMs use the base limit, lowered here to keep the test small).
    fake.attachment_size_limit = 1000
    with pytest.raises(discord.HTTPException) as excinfo:
        await dm.send(file=discord.File(io.BytesIO(b"x" * 1001), filename="big.bin"))
    assert excinfo.value.status == 413 and excinfo.value.code == 40005


async def test_unknown_route_is_recorded_and_non_loopback_refused(fake):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/no/such/route") as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"code": 0, "message": "404: Not Found"}
    assert fake.requests[-1].path == "/no/such/route" and fake.requests[-1].status == 404
    with pytest.raises(ValueError):
        await FakeDiscord().start(host="0.0.0.0")
