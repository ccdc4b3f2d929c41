"""The fake Discord, exercised by a real discord.py AutoShardedBot over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime
import io
import logging

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


async def test_nonce_dedupes_a_retried_send(fake, bot):
    channel = bot.get_partial_messageable(CHANNEL_ID)
    first = await channel.send("hello", nonce=12345)
    retry = await channel.send("hello again", nonce=12345)  # e.g. resent after a lost answer
    assert retry.id == first.id and retry.content == "hello" and retry.nonce == "12345"
    assert [m.content for m in fake.messages_in(CHANNEL_ID)] == ["hello"]
    assert fake.messages[first.id].nonce == "12345"
    sends = fake.requests_to("POST", rf"^/channels/{CHANNEL_ID}/messages$")
    assert [r.json["enforce_nonce"] for r in sends] == [True, True]  # discord.py sends both fields

    other = await channel.send("other", nonce=999)
    dm = await bot.create_dm(discord.Object(USER_ID))
    in_dm = await dm.send("same nonce, other channel", nonce=12345)
    assert len({first.id, other.id, in_dm.id}) == 3

    # After the window (5 minutes) the nonce no longer dedupes.
    fake.messages[first.id].created -= 5 * 60 + 1
    late = await channel.send("hello later", nonce=12345)
    assert late.id != first.id

    # Without enforce_nonce Discord does not dedupe.
    async with aiohttp.ClientSession(headers={"Authorization": "Bot fake-token"}) as http:
        for _ in range(2):
            url = f"{fake.api_base}/channels/{CHANNEL_ID}/messages"
            async with http.post(url, json={"content": "plain", "nonce": "n-1"}) as resp:
                assert resp.status == 200 and (await resp.json())["nonce"] == "n-1"
    assert [m.content for m in fake.messages_in(CHANNEL_ID)].count("plain") == 2


async def test_messages_in_skips_deleted_messages(fake, bot):
    channel = bot.get_partial_messageable(CHANNEL_ID)
    first = await channel.send("one")
    await channel.send("two")
    await channel.send("three")
    await first.delete()
    assert [m.content for m in fake.messages_in(CHANNEL_ID)] == ["two", "three"]
    assert fake.dm_messages(USER_ID) == []  # no DM channel opened


async def test_hold_applies_the_edit_then_withholds_the_answer(fake, bot):
    channel = bot.get_partial_messageable(CHANNEL_ID)
    sent = await channel.send("v1")
    hold = fake.hold("PATCH", rf"^/channels/{CHANNEL_ID}/messages/{sent.id}$", only_uploads=True)
    partial = channel.get_partial_message(sent.id)
    await asyncio.wait_for(partial.edit(content="text only"), 5)  # no files: not held
    assert not hold.arrived.is_set()

    edit = asyncio.create_task(
        partial.edit(content="v2", attachments=[discord.File(io.BytesIO(PNG), filename="v2.png")])
    )
    await asyncio.wait_for(hold.arrived.wait(), 5)
    message = fake.messages[sent.id]
    assert message.content == "v2" and [(a.filename, a.data) for a in message.attachments] == [("v2.png", PNG)]
    assert hold.waiting == 1 and fake.requests[-1].status == 200
    await asyncio.sleep(0.1)
    assert not edit.done()

    hold.release()
    result = await asyncio.wait_for(edit, 5)
    assert result.content == "v2" and [a.filename for a in result.attachments] == ["v2.png"]
    assert hold.waiting == 0 and hold.released
    # One-shot: the next matching upload is answered at once.
    await asyncio.wait_for(partial.edit(attachments=[discord.File(io.BytesIO(b"v3"), filename="v3.png")]), 5)
    assert [a.data for a in message.attachments] == [b"v3"]


async def test_hold_survives_a_client_that_gives_up(fake, bot, caplog):
    caplog.set_level(logging.DEBUG)
    channel = bot.get_partial_messageable(CHANNEL_ID)
    hold = fake.hold("POST", rf"^/channels/{CHANNEL_ID}/messages$")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel.send("sent, answer lost"), 0.3)  # the bot "dies" waiting
    assert hold.arrived.is_set()
    assert [m.content for m in fake.messages_in(CHANNEL_ID)] == ["sent, answer lost"]
    hold.release()
    await asyncio.sleep(0.1)
    after = await asyncio.wait_for(channel.send("next"), 5)
    assert fake.messages[after.id].content == "next" and hold.waiting == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("aiohttp")]
    assert noisy == []


async def test_deny_permissions_on_bot_token_routes(fake, bot):
    channel = bot.get_partial_messageable(CHANNEL_ID)
    sent = await channel.send("text", file=discord.File(io.BytesIO(PNG), filename="a.png"))
    partial = channel.get_partial_message(sent.id)
    message = fake.messages[sent.id]

    fake.deny_permissions(CHANNEL_ID, "ATTACH_FILES")
    with pytest.raises(discord.Forbidden) as excinfo:
        await partial.edit(content="new", attachments=[discord.File(io.BytesIO(b"b"), filename="b.png")])
    assert excinfo.value.status == 403 and excinfo.value.code == 50013
    assert message.content == "text" and [a.filename for a in message.attachments] == ["a.png"]
    edited = await partial.edit(content="text edit")  # keeps the existing attachment: allowed
    assert edited.content == "text edit" and message.content == "text edit"
    with pytest.raises(discord.Forbidden) as excinfo:
        await channel.send(file=discord.File(io.BytesIO(b"c"), filename="c.png"))
    assert excinfo.value.code == 50013
    await channel.send("plain send still works")

    fake.deny_permissions(CHANNEL_ID, "SEND_MESSAGES")
    with pytest.raises(discord.Forbidden) as excinfo:
        await channel.send("no")
    assert excinfo.value.code == 50013
    assert (await partial.edit(content="edits need no Send Messages")).content == "edits need no Send Messages"

    fake.deny_permissions(CHANNEL_ID, "VIEW_CHANNEL")
    for attempt in (partial.fetch(), partial.edit(content="x"), channel.send("x")):
        with pytest.raises(discord.Forbidden) as excinfo:
            await attempt
        assert excinfo.value.code == 50001 and excinfo.value.text == "Missing Access"

    fake.allow_permissions(CHANNEL_ID, "VIEW_CHANNEL", "SEND_MESSAGES", "ATTACH_FILES")
    final = await partial.edit(content="all back", attachments=[discord.File(io.BytesIO(b"d"), filename="d.png")])
    assert [a.filename for a in final.attachments] == ["d.png"]
    with pytest.raises(ValueError):
        fake.deny_permissions(CHANNEL_ID, "MANAGE_MESSAGES")


async def test_denied_permissions_do_not_affect_interaction_tokens(fake, bot):
    done = asyncio.Event()

    @bot.tree.command(name="pic", description="Picture")
    async def pic(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(
            content="here", attachments=[discord.File(io.BytesIO(PNG), filename="p.png")]
        )
        done.set()

    fake.deny_permissions(CHANNEL_ID, "VIEW_CHANNEL", "SEND_MESSAGES", "ATTACH_FILES")
    iid = await fake.send_interaction(slash_command_payload(fake, name="pic", channel_id=CHANNEL_ID))
    await asyncio.wait_for(done.wait(), 5)
    message = fake.messages[fake.interaction_responses[iid].original_message_id]
    assert message.content == "here" and [a.filename for a in message.attachments] == ["p.png"]


async def test_dm_with_files_and_a_user_who_refuses_dms(fake, bot):
    dm = await bot.create_dm(discord.Object(USER_ID))
    sent = await dm.send(
        "your pictures",
        files=[discord.File(io.BytesIO(PNG), filename="a.png"), discord.File(io.BytesIO(b"2"), filename="b.png")],
    )
    [message] = fake.dm_messages(USER_ID)
    assert message.id == sent.id and message.channel_id == fake.dm_channel_id(USER_ID)
    assert [(a.filename, a.data) for a in message.attachments] == [("a.png", PNG), ("b.png", b"2")]
    assert fake.messages_in(dm.id) == [message]
    assert [a.filename for a in sent.attachments] == ["a.png", "b.png"]

    fake.refuse_dms(USER_ID)
    with pytest.raises(discord.Forbidden) as excinfo:
        await dm.send("again", file=discord.File(io.BytesIO(PNG), filename="c.png"))
    assert excinfo.value.status == 403 and excinfo.value.code == 50007
    assert len(fake.dm_messages(USER_ID)) == 1
    # Other users and guild channels are unaffected.
    other = await bot.create_dm(discord.Object(USER_ID + 1))
    await other.send("hi")
    assert [m.content for m in fake.dm_messages(USER_ID + 1)] == ["hi"]
    await bot.get_partial_messageable(CHANNEL_ID).send("guild")
