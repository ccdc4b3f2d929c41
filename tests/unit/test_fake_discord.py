"""The fake Discord, exercised by a real discord.py AutoShardedBot over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import (
    API_PREFIX,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeOverwrite,
    FakeRole,
    bodies,
    component_payload,
    modal_submit_payload,
    slash_command_payload,
)
from tests.fakes.discord.bodies import OPERATIONS, load_spec

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


# --------------------------------------------------------------------------- Discord's body rules


async def _send(fake, method: str, path: str, body, *, multipart: bool = False) -> tuple[int, dict | None]:
    """One raw request with the bot token, as JSON or as multipart (payload_json plus a file)."""
    async with aiohttp.ClientSession(headers={"Authorization": "Bot fake-token"}) as http:
        if multipart:
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(body), content_type="application/json")
            form.add_field("files[0]", PNG, filename="a.png", content_type="image/png")
            request = http.request(method, fake.api_base + path, data=form)
        else:
            request = http.request(method, fake.api_base + path, json=body)
        async with request as resp:
            return resp.status, (await resp.json() if resp.status != 204 else None)


def _codes_at(answer: dict, *path: str | int) -> list[str]:
    """The error codes of an Invalid Form Body answer at one place of its errors tree."""
    assert answer["code"] == 50035 and answer["message"] == "Invalid Form Body", answer
    node = answer["errors"]
    for key in path:
        node = node[str(key)]
    return [error["code"] for error in node["_errors"]]


def _button(n: int = 0, **fields) -> dict:
    return {"type": 2, "style": 1, "label": "Reroll", "custom_id": f"job:{n}:reroll", **fields}


def _row(*components: dict) -> dict:
    return {"type": 1, "components": list(components)}


def _select(**fields) -> dict:
    option = {"label": "one", "value": "1"}
    return {"type": 3, "custom_id": "pick", "options": [option], **fields}


def _option(**fields) -> dict:
    return {"label": "one", "value": "1", **fields}


# (name, a body at Discord's limit, the same just over it, where the error is, Discord's code).
# Each is sent to POST /channels/{id}/messages: the first must be accepted, the second refused.
MESSAGE_LIMITS = [
    ("content 2,000", {"content": "x" * 2000}, {"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH"),
    ("embed title 256", {"embeds": [{"title": "x" * 256}]}, {"embeds": [{"title": "x" * 257}]},
     ("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH"),
    ("embed description 4,096", {"embeds": [{"description": "x" * 4096}]},
     {"embeds": [{"description": "x" * 4097}]}, ("embeds", 0, "description"), "BASE_TYPE_MAX_LENGTH"),
    ("field name 256", {"embeds": [{"fields": [{"name": "x" * 256, "value": "v"}]}]},
     {"embeds": [{"fields": [{"name": "x" * 257, "value": "v"}]}]}, ("embeds", 0, "fields", 0, "name"),
     "BASE_TYPE_MAX_LENGTH"),
    ("field value 1,024", {"embeds": [{"fields": [{"name": "n", "value": "x" * 1024}]}]},
     {"embeds": [{"fields": [{"name": "n", "value": "x" * 1025}]}]}, ("embeds", 0, "fields", 0, "value"),
     "BASE_TYPE_MAX_LENGTH"),
    ("footer 2,048", {"embeds": [{"footer": {"text": "x" * 2048}}]}, {"embeds": [{"footer": {"text": "x" * 2049}}]},
     ("embeds", 0, "footer", "text"), "BASE_TYPE_MAX_LENGTH"),
    ("author name 256", {"embeds": [{"author": {"name": "x" * 256}}]}, {"embeds": [{"author": {"name": "x" * 257}}]},
     ("embeds", 0, "author", "name"), "BASE_TYPE_MAX_LENGTH"),
    ("25 fields", {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 25}]},
     {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, ("embeds", 0, "fields"), "BASE_TYPE_MAX_LENGTH"),
    ("10 embeds", {"embeds": [{"title": "t"}] * 10}, {"embeds": [{"title": "t"}] * 11}, ("embeds",),
     "BASE_TYPE_MAX_LENGTH"),
    ("6,000 characters across the embeds", {"embeds": [{"description": "x" * 3000}, {"description": "x" * 3000}]},
     {"embeds": [{"description": "x" * 3000}, {"description": "x" * 2990, "footer": {"text": "x" * 11}}]},
     ("embeds",), "BASE_TYPE_MAX_LENGTH"),
    ("custom_id 100", {"components": [_row(_button(custom_id="x" * 100))]},
     {"components": [_row(_button(custom_id="x" * 101))]}, ("components", 0, "components", 0, "custom_id"),
     "BASE_TYPE_BAD_LENGTH"),
    ("button label 80", {"components": [_row(_button(label="x" * 80))]},
     {"components": [_row(_button(label="x" * 81))]}, ("components", 0, "components", 0, "label"),
     "BASE_TYPE_MAX_LENGTH"),
    ("5 action rows", {"components": [_row(_button(n)) for n in range(5)]},
     {"components": [_row(_button(n)) for n in range(6)]}, ("components",), "BASE_TYPE_MAX_LENGTH"),
    ("5 buttons per row", {"components": [_row(*[_button(n) for n in range(5)])]},
     {"components": [_row(*[_button(n) for n in range(6)])]}, ("components", 0, "components"),
     "BASE_TYPE_BAD_LENGTH"),
    ("25 select options", {"components": [_row(_select(options=[_option(value=str(n)) for n in range(25)]))]},
     {"components": [_row(_select(options=[_option(value=str(n)) for n in range(26)]))]},
     ("components", 0, "components", 0, "options"), "BASE_TYPE_BAD_LENGTH"),
    ("select option label 100", {"components": [_row(_select(options=[_option(label="x" * 100)]))]},
     {"components": [_row(_select(options=[_option(label="x" * 101)]))]},
     ("components", 0, "components", 0, "options", 0, "label"), "BASE_TYPE_BAD_LENGTH"),
    ("select option value 100", {"components": [_row(_select(options=[_option(value="x" * 100)]))]},
     {"components": [_row(_select(options=[_option(value="x" * 101)]))]},
     ("components", 0, "components", 0, "options", 0, "value"), "BASE_TYPE_BAD_LENGTH"),
    ("select option description 100", {"components": [_row(_select(options=[_option(description="x" * 100)]))]},
     {"components": [_row(_select(options=[_option(description="x" * 101)]))]},
     ("components", 0, "components", 0, "options", 0, "description"), "BASE_TYPE_MAX_LENGTH"),
    ("select placeholder 150", {"components": [_row(_select(placeholder="x" * 150))]},
     {"components": [_row(_select(placeholder="x" * 151))]}, ("components", 0, "components", 0, "placeholder"),
     "BASE_TYPE_MAX_LENGTH"),
    ("nonce 25", {"content": "x", "nonce": "n" * 25}, {"content": "x", "nonce": "n" * 26}, ("nonce",),
     "BASE_TYPE_MAX_LENGTH"),
]


@pytest.mark.parametrize(("at_limit", "over", "where", "code"), [case[1:] for case in MESSAGE_LIMITS],
                         ids=[case[0] for case in MESSAGE_LIMITS])
async def test_a_message_over_a_discord_limit_is_refused_as_invalid_form_body(fake, at_limit, over, where, code):
    route = f"/channels/{CHANNEL_ID}/messages"
    status, answer = await _send(fake, "POST", route, at_limit)
    assert status == 200, answer
    status, answer = await _send(fake, "POST", route, over)
    assert status == 400 and code in _codes_at(answer, *where)
    assert fake.requests[-1].form_errors == answer["errors"]
    assert len(fake.messages_in(CHANNEL_ID)) == 1  # the refused one changed nothing


async def test_invalid_form_body_answers_in_discords_nested_format(fake, bot):
    sent = await bot.get_partial_messageable(CHANNEL_ID).send("hello")
    route = f"/channels/{CHANNEL_ID}/messages/{sent.id}"
    # An edit, sent as multipart like discord.py's uploads: payload_json is what is checked.
    status, answer = await _send(fake, "PATCH", route, {"embeds": [{"description": "x" * 4097}]}, multipart=True)
    assert status == 400
    assert answer == {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"description": {
        "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}}
    assert fake.messages[sent.id].content == "hello" and fake.messages[sent.id].attachments == []
    # discord.py raises it as an HTTPException carrying the same code.
    with pytest.raises(discord.HTTPException) as excinfo:
        await bot.get_partial_messageable(CHANNEL_ID).send("x" * 2001)
    assert excinfo.value.status == 400 and excinfo.value.code == 50035
    assert "Must be 2000 or fewer in length" in excinfo.value.text


async def test_interaction_callbacks_are_checked_modals_and_autocomplete_included(fake, bot):
    @bot.tree.command(name="wait", description="Answers nothing: the test answers for it")
    async def wait(interaction: discord.Interaction) -> None:
        pass

    iid = await fake.send_interaction(slash_command_payload(fake, name="wait", channel_id=CHANNEL_ID))
    token = fake.interaction_responses[iid].token
    route = f"/interactions/{iid}/{token}/callback"

    def modal(title: str = "Remix", *, components: list[dict] | None = None) -> dict:
        text_input = {"type": 4, "custom_id": "prompt", "style": 1, "label": "Prompt"}
        return {"type": 9, "data": {"custom_id": "remix:1", "title": title,
                                    "components": components or [_row(text_input)]}}

    text_input = {"type": 4, "custom_id": "prompt", "style": 1}
    refused = [
        (modal("x" * 46), ("data", "title"), "BASE_TYPE_BAD_LENGTH"),
        (modal(components=[_row({**text_input, "label": "x" * 46})]),
         ("data", "components", 0, "components", 0, "label"), "BASE_TYPE_BAD_LENGTH"),
        (modal(components=[{"type": 18, "label": "x" * 46, "component": text_input}]),
         ("data", "components", 0, "label"), "BASE_TYPE_BAD_LENGTH"),
        (modal(components=[_row({**text_input, "custom_id": "x" * 101, "label": "L"})]),
         ("data", "components", 0, "components", 0, "custom_id"), "BASE_TYPE_BAD_LENGTH"),
        (modal(components=[_row({**text_input, "custom_id": f"i{n}", "label": "L"}) for n in range(6)]),
         ("data", "components"), "BASE_TYPE_MAX_LENGTH"),
        ({"type": 8, "data": {"choices": [{"name": "n", "value": "v"}] * 26}}, ("data", "choices"),
         "BASE_TYPE_MAX_LENGTH"),
        ({"type": 8, "data": {"choices": [{"name": "x" * 101, "value": "v"}]}}, ("data", "choices", 0, "name"),
         "BASE_TYPE_BAD_LENGTH"),
        ({"type": 8, "data": {"choices": [{"name": "n", "value": "x" * 101}]}}, ("data", "choices", 0, "value"),
         "BASE_TYPE_MAX_LENGTH"),
        ({"type": 4, "data": {"content": "x" * 2001}}, ("data", "content"), "BASE_TYPE_MAX_LENGTH"),
        ({"type": 4, "data": {"embeds": [{"description": "x" * 3001}, {"description": "x" * 3000}]}},
         ("data", "embeds"), "BASE_TYPE_MAX_LENGTH"),
        ({"type": 4, "data": {"components": [_row(_button(custom_id="x" * 101))]}},
         ("data", "components", 0, "components", 0, "custom_id"), "BASE_TYPE_BAD_LENGTH"),
        ({"type": 99}, ("type",), "BASE_TYPE_CHOICES"),
    ]
    for body, where, code in refused:
        status, answer = await _send(fake, "POST", route, body)
        assert status == 400 and code in _codes_at(answer, *where), (body, answer)
    assert not fake.interaction_responses[iid].acknowledged  # a refused body has no effect

    full = [{"type": 18, "label": "x" * 45, "component": {**text_input, "custom_id": f"i{n}"}} for n in range(5)]
    status, answer = await _send(fake, "POST", route, modal("x" * 45, components=full))
    assert status == 204, answer
    assert fake.interaction_responses[iid].callback_type == 9


async def test_application_commands_are_checked_against_discords_limits(fake):
    route = f"/applications/{fake.application_id}/commands"

    def command(**fields) -> dict:
        return {"name": "show", "description": "Show a job", "type": 1, **fields}

    def option(**fields) -> dict:
        return {"type": 3, "name": "size", "description": "The size", **fields}

    refused = [
        (command(name="x" * 33), (0, "name"), "BASE_TYPE_BAD_LENGTH"),
        (command(name=""), (0, "name"), "BASE_TYPE_BAD_LENGTH"),
        (command(name="Show"), (0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(name="show me"), (0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(description=""), (0, "description"), "BASE_TYPE_BAD_LENGTH"),
        (command(description="x" * 101), (0, "description"), "BASE_TYPE_MAX_LENGTH"),
        (command(options=[option(name=f"o{n}") for n in range(26)]), (0, "options"), "BASE_TYPE_MAX_LENGTH"),
        (command(options=[option(name="Size")]), (0, "options", 0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(options=[option(description="x" * 101)]), (0, "options", 0, "description"),
         "BASE_TYPE_BAD_LENGTH"),
        (command(options=[option(choices=[{"name": f"c{n}", "value": str(n)} for n in range(26)])]),
         (0, "options", 0, "choices"), "BASE_TYPE_MAX_LENGTH"),
        (command(options=[option(choices=[{"name": "x" * 101, "value": "v"}])]),
         (0, "options", 0, "choices", 0, "name"), "BASE_TYPE_BAD_LENGTH"),
        (command(options=[option(choices=[{"name": "n", "value": "x" * 101}])]),
         (0, "options", 0, "choices", 0, "value"), "BASE_TYPE_MAX_LENGTH"),
        (command(options=[option(type=4, name="job", max_value=2**53)]), (0, "options", 0, "max_value"),
         "NUMBER_TYPE_MAX"),
        (command(options=[option(type=4, name="job", min_value=-(2**53))]), (0, "options", 0, "min_value"),
         "NUMBER_TYPE_MIN"),
        (command(options=[option(type=10, name="amount", max_value=2.0**53)]), (0, "options", 0, "max_value"),
         "NUMBER_TYPE_MAX"),
        (command(options=[option(type=4, name="n", choices=[{"name": "big", "value": 2**53}])]),
         (0, "options", 0, "choices", 0, "value"), "NUMBER_TYPE_MAX"),
        (command(options=[{"type": 1, "name": "sub", "description": "A sub-command",
                           "options": [option(name="Bad")]}]),
         (0, "options", 0, "options", 0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(options=[option(name=f"o{n}", description="x" * 100,
                                 choices=[{"name": "x" * 100, "value": "x" * 100}] * 25) for n in range(2)]),
         (0,), "APPLICATION_COMMAND_TOO_LARGE"),
    ]
    for body, where, code in refused:
        status, answer = await _send(fake, "PUT", route, [body])
        assert status == 400 and code in _codes_at(answer, *where), (body, answer)
    assert fake.commands == {}

    at_limits = [
        command(name="x" * 32, description="x" * 100, options=[
            option(type=4, name="job", min_value=-(2**53 - 1), max_value=2**53 - 1),
            option(type=10, name="amount", min_value=-(2.0**53 - 1), max_value=2.0**53 - 1),
            option(choices=[{"name": "x" * 100, "value": "x" * 100}]),
        ]),
        # Context menus may use capitals and spaces, and have no description.
        {"name": "Animate image", "type": 3},
    ]
    status, answer = await _send(fake, "PUT", route, at_limits)
    assert status == 200, answer
    assert [c["name"] for c in fake.commands[None]] == ["x" * 32, "Animate image"]


async def test_discords_known_leniencies_are_accepted_only_where_they_occur(fake, bot):
    # discord.py sends these ids as integers; Discord accepts them (tests/fakes/discord/spec/README.md).
    dm = await bot.create_dm(discord.Object(USER_ID))  # {"recipient_id": <int>}
    assert fake.requests_to("POST", "^/users/@me/channels$")[0].json == {"recipient_id": USER_ID}
    sent = await dm.send(file=discord.File(io.BytesIO(PNG), filename="a.png"),  # {"attachments": [{"id": 0}]}
                         allowed_mentions=discord.AllowedMentions(users=[discord.Object(USER_ID)]))
    assert fake.messages[sent.id].attachments[0].data == PNG

    # Elsewhere a snowflake is a string, as the spec says.
    route = f"/channels/{CHANNEL_ID}/messages"
    status, answer = await _send(fake, "POST", route, {"content": "x", "sticker_ids": [123]})
    assert status == 400 and _codes_at(answer, "sticker_ids", 0) == ["NUMBER_TYPE_COERCE"]
    status, answer = await _send(fake, "POST", route, {"content": "x", "attachments": [{"id": -1}]})
    assert status == 400 and "attachments" in answer["errors"]
    status, answer = await _send(fake, "POST", "/users/@me/channels", {"recipient_id": "not-a-snowflake"})
    assert status == 400 and _codes_at(answer, "recipient_id") == ["NUMBER_TYPE_COERCE"]


def test_every_route_with_a_body_has_its_openapi_operation():
    app = aiohttp.web.Application()
    FakeDiscord()._add_routes(app)
    served = {f"{route.method} {route.resource.canonical.removeprefix(API_PREFIX)}"
              for route in app.router.routes() if route.method in ("POST", "PUT", "PATCH")}
    assert served and served <= set(OPERATIONS), served - set(OPERATIONS)
    spec = load_spec()
    for path, method in OPERATIONS.values():
        assert "requestBody" in spec["paths"][path][method], (path, method)


# Discord's limits that its OpenAPI description states, so that the fake's schema check enforces
# them: if a new copy of the spec stopped saying so, the constant would have to be checked by hand.
SPEC_STATED = [
    (bodies.EMBEDS_PER_MESSAGE, "IncomingWebhookRequestPartial", "properties/embeds/maxItems"),
    (bodies.EMBED_TITLE_CHARS, "RichEmbed", "properties/title/maxLength"),
    (bodies.EMBED_DESCRIPTION_CHARS, "RichEmbed", "properties/description/maxLength"),
    (bodies.EMBED_FIELDS, "RichEmbed", "properties/fields/maxItems"),
    (bodies.EMBED_FIELD_NAME_CHARS, "RichEmbedField", "properties/name/maxLength"),
    (bodies.EMBED_FIELD_VALUE_CHARS, "RichEmbedField", "properties/value/maxLength"),
    (bodies.EMBED_FOOTER_CHARS, "RichEmbedFooter", "properties/text/maxLength"),
    (bodies.EMBED_AUTHOR_NAME_CHARS, "RichEmbedAuthor", "properties/name/maxLength"),
    (bodies.CUSTOM_ID_CHARS, "ButtonComponentForMessageRequest", "properties/custom_id/maxLength"),
    (bodies.CUSTOM_ID_CHARS, "StringSelectComponentForMessageRequest", "properties/custom_id/maxLength"),
    (bodies.CUSTOM_ID_CHARS, "ModalInteractionCallbackRequestData", "properties/custom_id/maxLength"),
    (bodies.CUSTOM_ID_CHARS, "TextInputComponentForModalRequest", "properties/custom_id/maxLength"),
    (bodies.BUTTON_LABEL_CHARS, "ButtonComponentForMessageRequest", "properties/label/maxLength"),
    (bodies.COMPONENTS_PER_ROW, "ActionRowComponentForMessageRequest", "properties/components/maxItems"),
    (bodies.SELECT_OPTIONS, "StringSelectComponentForMessageRequest", "properties/options/maxItems"),
    (bodies.SELECT_OPTION_CHARS, "StringSelectOptionForRequest", "properties/label/maxLength"),
    (bodies.SELECT_OPTION_CHARS, "StringSelectOptionForRequest", "properties/value/maxLength"),
    (bodies.SELECT_OPTION_CHARS, "StringSelectOptionForRequest", "properties/description/maxLength"),
    (bodies.SELECT_PLACEHOLDER_CHARS, "StringSelectComponentForMessageRequest", "properties/placeholder/maxLength"),
    (bodies.MODAL_TITLE_CHARS, "ModalInteractionCallbackRequestData", "properties/title/maxLength"),
    (bodies.MODAL_LABEL_CHARS, "TextInputComponentForModalRequest", "properties/label/maxLength"),
    (bodies.MODAL_LABEL_CHARS, "LabelComponentForModalRequest", "properties/label/maxLength"),
    (bodies.NONCE_CHARS, "MessageCreateRequest", "properties/nonce/oneOf/1/maxLength"),
    (bodies.COMMAND_NAME_CHARS, "ApplicationCommandUpdateRequest", "properties/name/maxLength"),
    (bodies.COMMAND_DESCRIPTION_CHARS, "ApplicationCommandUpdateRequest", "properties/description/maxLength"),
    (bodies.COMMAND_OPTIONS, "ApplicationCommandUpdateRequest", "properties/options/maxItems"),
    (bodies.COMMAND_CHOICES, "ApplicationCommandStringOption", "properties/choices/maxItems"),
    (bodies.CHOICE_NAME_CHARS, "ApplicationCommandOptionStringChoice", "properties/name/maxLength"),
    (bodies.MAX_SAFE_INTEGER, "Int53Type", "maximum"),
    (-bodies.MAX_SAFE_INTEGER, "Int53Type", "minimum"),
]


@pytest.mark.parametrize(("limit", "schema", "pointer"), SPEC_STATED,
                         ids=[f"{schema}/{pointer}" for _, schema, pointer in SPEC_STATED])
def test_the_spec_states_the_limits_the_fake_leaves_to_it(limit, schema, pointer):
    node = load_spec()["components"]["schemas"][schema]
    for key in pointer.split("/"):
        node = node[int(key)] if isinstance(node, list) else node[key]
    assert node == limit


def test_the_spec_is_looser_than_discord_where_the_fake_checks_by_itself():
    schemas = load_spec()["components"]["schemas"]
    assert schemas["MessageCreateRequest"]["properties"]["content"]["maxLength"] > bodies.MESSAGE_CONTENT_CHARS
    assert schemas["ApplicationCommandOptionStringChoice"]["properties"]["value"]["maxLength"] > \
        bodies.CHOICE_VALUE_CHARS
    assert schemas["ModalInteractionCallbackRequestData"]["properties"]["components"]["maxItems"] > \
        bodies.MODAL_COMPONENTS
    assert "minLength" not in schemas["ApplicationCommandUpdateRequest"]["properties"]["description"]
    assert "maximum" not in schemas["ApplicationCommandNumberOption"]["properties"]["max_value"]


async def test_roles_overwrites_threads_and_age_restriction_reach_the_bots_cache(fake, bot):
    view = discord.Permissions(view_channel=True).value
    staff_role, staff_channel, thread, lounge = 1240000000000000010, 1240000000000000011, 1240000000000000012, \
        1240000000000000013
    await fake.add_role(GUILD_ID, FakeRole(staff_role, "Staff", permissions=0, position=2))
    await fake.add_channel(GUILD_ID, FakeChannel(staff_channel, name="staff", permission_overwrites=[
        FakeOverwrite(GUILD_ID, type=0, deny=view), FakeOverwrite(staff_role, type=0, allow=view)]))
    await fake.add_channel(GUILD_ID, FakeChannel(thread, name="plans", type=11, parent_id=staff_channel))
    await fake.add_channel(GUILD_ID, FakeChannel(lounge, name="lounge", nsfw=True))
    guild = bot.get_guild(GUILD_ID)
    await fake.wait_for(lambda _: guild.get_channel(lounge) is not None)
    seen: dict[int, tuple] = {}

    @bot.tree.command(name="look", description="What the caller may view")
    async def look(interaction: discord.Interaction) -> None:
        staff = interaction.guild.get_channel(staff_channel)
        plans = interaction.guild.get_thread(thread)
        seen[interaction.user.id] = (staff.permissions_for(interaction.user).view_channel, plans.parent == staff,
                                     interaction.guild.get_channel(lounge).is_nsfw(), staff.is_nsfw())
        await interaction.response.send_message("ok", ephemeral=True)

    for user_id, roles in ((USER_ID, []), (USER_ID + 1, [staff_role])):
        iid = await fake.send_interaction(slash_command_payload(fake, name="look", user_id=user_id, roles=roles))
        await fake.wait_for(lambda f, iid=iid: f.interaction_responses[iid].acknowledged, timeout=5)
    assert seen == {USER_ID: (False, True, True, False), USER_ID + 1: (True, True, True, False)}

    # A deleted channel leaves the cache; later GUILD_CREATEs carry what is left.
    await fake.remove_channel(lounge)
    await fake.wait_for(lambda _: guild.get_channel(lounge) is None)
    payload = fake.guild_create_payload(fake.guilds[GUILD_ID])
    assert [t["id"] for t in payload["threads"]] == [str(thread)]
    assert str(lounge) not in {c["id"] for c in payload["channels"]}


async def _identify(session: aiohttp.ClientSession, fake: FakeDiscord, shard: list[int]) -> dict:
    """Open a gateway connection, IDENTIFY as `shard`, and return the first answer after HELLO."""
    async with session.ws_connect(fake.ws_url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "fake-token", "intents": 1, "shard": shard,
                                           "properties": {}}})
        return await ws.receive_json(timeout=5)


async def test_gateway_bot_reports_the_shards_and_max_concurrency_it_was_given():
    async with FakeDiscord(shard_count=4, max_concurrency=2) as fake, aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/gateway/bot", headers={"Authorization": "Bot x"}) as answer:
            body = await answer.json()
    assert (body["url"], body["shards"], body["session_start_limit"]["max_concurrency"]) == (fake.ws_url, 4, 2)


async def test_an_identify_too_early_in_its_bucket_gets_its_session_invalidated():
    async with FakeDiscord(shard_count=4, max_concurrency=2, identify_rate_limit=True) as fake, \
            aiohttp.ClientSession() as session:
        first = await _identify(session, fake, [0, 4])
        too_early = await _identify(session, fake, [2, 4])  # bucket 0 again, well within 5 s
        other_bucket = await _identify(session, fake, [1, 4])
        assert (first["t"], first["d"]["shard"]) == ("READY", [0, 4])
        assert (too_early["op"], too_early["d"]) == (9, False)  # INVALID_SESSION, not resumable
        assert other_bucket["t"] == "READY"
        assert [(i.shard_id, i.bucket, i.accepted) for i in fake.identifies] == [
            (0, 0, True), (2, 0, False), (1, 1, True)]
        # Once the bucket's 5 s have passed (shortened here), the same shard is let in.
        fake.identify_interval = 0.2
        await asyncio.sleep(0.25)
        again = await _identify(session, fake, [2, 4])
        assert again["t"] == "READY" and fake.identifies[-1].accepted


async def test_without_the_identify_limit_every_identify_is_accepted_and_recorded():
    async with FakeDiscord(shard_count=2) as fake, aiohttp.ClientSession() as session:
        for shard in ([0, 2], [0, 2], [1, 2]):
            assert (await _identify(session, fake, shard))["t"] == "READY"
    assert [(i.shard_id, i.shard_count, i.accepted) for i in fake.identifies] == [
        (0, 2, True), (0, 2, True), (1, 2, True)]
    assert fake.identifies[0].time <= fake.identifies[1].time <= fake.identifies[2].time
