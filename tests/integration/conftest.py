"""The real bot, wired to a fake Discord and a fake EvoLink over loopback HTTP.

Nothing of the bot is mocked: the interaction payloads go through discord.py's gateway code, every
REST call is HTTP to the fake Discord, every EvoLink call is HTTP to the fake EvoLink. Both the bot
and the fake EvoLink share one ScaledClock, so a 30 s generation takes about 1.5 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import discord
import pytest

from bot.app import WanBot, use_discord_api
from bot.clock import ScaledClock
from bot.config import Settings, load_settings
from bot.evolink.fake import FakeEvoLink
from tests.fakes.discord import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeRole,
    modal_submit_payload,
    slash_command_payload,
    user_payload,
)
from tests.media_samples import make_video

GUILD_ID = 7000
CHANNEL_ID = 7001
LOG_CHANNEL_ID = 7002
ARTISTS_ROLE = 7101
MODS_ROLE = 7102
OTHER_GUILD_ID = 7200
OTHER_CHANNEL_ID = 7201
USER_ID = 5005
MANAGE_SERVER = 1 << 5
BOT_TOKEN = "bot-token-for-tests.abc123"
EVOLINK_KEY = "evo-key-for-tests-xyz789"
CLOCK_SPEED = 20


@dataclass
class Option:
    """One option of a slash command, with what Discord resolves for it."""

    payload: dict
    resolved: dict[str, dict]


def text(name: str, value: str) -> Option:
    return Option({"name": name, "type": 3, "value": value}, {})


def number(name: str, value: float) -> Option:
    return Option({"name": name, "type": 10, "value": value}, {})


def integer(name: str, value: int) -> Option:
    return Option({"name": name, "type": 4, "value": value}, {})


def boolean(name: str, value: bool) -> Option:
    return Option({"name": name, "type": 5, "value": value}, {})


def member(name: str, user_id: int, roles: tuple[int, ...] = ()) -> Option:
    return Option({"name": name, "type": 6, "value": str(user_id)}, {
        "users": {str(user_id): user_payload(user_id)},
        "members": {str(user_id): {"roles": [str(r) for r in roles], "joined_at": "2026-01-01T00:00:00+00:00",
                                   "permissions": "0", "flags": 0, "pending": False, "nick": None,
                                   "avatar": None, "premium_since": None}},
    })


def role(name: str, role_id: int, role_name: str = "role") -> Option:
    return Option({"name": name, "type": 8, "value": str(role_id)}, {"roles": {str(role_id): {
        "id": str(role_id), "name": role_name, "color": 0, "hoist": False, "position": 1,
        "permissions": "0", "managed": False, "mentionable": True, "flags": 0}}})


def channel(name: str, channel_id: int, guild_id: int = GUILD_ID) -> Option:
    return Option({"name": name, "type": 7, "value": str(channel_id)}, {"channels": {str(channel_id): {
        "id": str(channel_id), "type": 0, "name": "mod-log", "guild_id": str(guild_id),
        "permissions": "0"}}})


def fields(embed: dict) -> dict[str, str]:
    """An embed's fields as {name: value}."""
    return {field["name"]: field["value"] for field in embed.get("fields", [])}


@dataclass
class Harness:
    bot: WanBot
    discord: FakeDiscord
    evolink: FakeEvoLink
    clock: ScaledClock
    settings: Settings
    running: asyncio.Task | None = None  # the bot's start() task

    async def start_bot(self) -> None:
        self.bot = WanBot(self.settings, clock=self.clock)
        self.running = asyncio.create_task(self.bot.start(BOT_TOKEN))
        await self.discord.wait_until_identified()

    async def stop_bot(self) -> None:
        await self.bot.close()
        if self.running is not None:
            await asyncio.wait_for(asyncio.gather(self.running, return_exceptions=True), 10)
        await self.discord.wait_until_disconnected()

    async def restart(self) -> None:
        """A new bot object on the same database and the same fakes: all that survives a
        restart is what the database and Discord hold."""
        await self.stop_bot()
        await self.start_bot()

    async def command(self, name: str, user_id: int = USER_ID, guild_id: int | None = GUILD_ID,
                      interaction_id: int | None = None, locale: str = "en-US", **options: object) -> int:
        """Send a slash command as a member would; returns the interaction id. An option whose
        value is an attachment payload (FakeDiscord.make_attachment) is sent as an upload."""
        types = {str: 3, int: 4, bool: 5}
        attachments = {key: value for key, value in options.items() if isinstance(value, dict)}
        payload = slash_command_payload(
            self.discord, name=name, guild_id=guild_id,
            channel_id={GUILD_ID: CHANNEL_ID, OTHER_GUILD_ID: OTHER_CHANNEL_ID}.get(guild_id), user_id=user_id,
            options=[{"name": key, "type": 11, "value": value["id"]} if key in attachments else
                     {"name": key, "type": types[type(value)], "value": value}
                     for key, value in options.items()],
            resolved={"attachments": {a["id"]: a for a in attachments.values()}} if attachments else None,
            locale=locale,
        )
        if interaction_id is not None:
            payload["id"] = str(interaction_id)
        return await self.discord.send_interaction(payload)

    async def slash(self, name: str, *options: Option, sub: str | None = None, user_id: int = USER_ID,
                    guild_id: int = GUILD_ID, permissions: int = 0, roles: tuple[int, ...] = ()) -> int:
        """A slash command (or subcommand) with typed options, from a member with the given
        permissions and roles; returns the interaction id."""
        resolved: dict[str, dict] = {}
        for option in options:
            for kind, entries in option.resolved.items():
                resolved.setdefault(kind, {}).update(entries)
        payload = slash_command_payload(
            self.discord, name=name, subcommand=sub, guild_id=guild_id,
            channel_id=CHANNEL_ID if guild_id == GUILD_ID else OTHER_CHANNEL_ID, user_id=user_id,
            permissions=permissions, roles=list(roles), options=[o.payload for o in options],
            resolved=resolved or None,
        )
        return await self.discord.send_interaction(payload)

    async def reply_to(self, interaction_id: int, timeout: float = 15.0) -> str:
        """The text the member sees in answer to an interaction (content and embeds)."""
        message = await self.wait_for_original(interaction_id, lambda m: bool(m.text) and not m.loading,
                                               timeout)
        return message.text

    async def command_payload(self, payload: dict) -> int:
        """Send a hand-built interaction payload (e.g. a message context menu)."""
        return await self.discord.send_interaction(payload)

    async def post_as_member(self, content: str = "", files: dict[str, bytes] | None = None,
                             user_id: int = USER_ID) -> int:
        return self.discord.post_member_message(CHANNEL_ID, user_id, content, files).id

    def menu_payload(self, name: str, message, user_id: int = USER_ID) -> dict:
        """A message menu (e.g. "Animate image") used on `message`: Discord resolves the target
        message into the payload, so the bot sees its attachments without any message intent."""
        menu = slash_command_payload(self.discord, name=name, guild_id=GUILD_ID, channel_id=CHANNEL_ID,
                                     user_id=user_id)
        menu["data"].pop("options", None)
        menu["data"].update(type=3, target_id=str(message.id),
                            resolved={"messages": {str(message.id): self.discord.message_payload(message)}})
        return menu

    async def animate_with_menu(self, message, prompt: str, user_id: int = USER_ID) -> int:
        """Use "Animate image" on `message`, then send its form with `prompt` and the form's
        preselected duration and quality; returns the form submission's interaction id."""
        opened = await self.command_payload(self.menu_payload("Animate image", message, user_id))
        await self.discord.wait_for(lambda fake: self.record(opened).callback_type == 9)
        modal = self.record(opened).callback_data
        [prompt_id, *_] = [label["component"]["custom_id"] for label in modal["components"]]
        submit = modal_submit_payload(
            self.discord, custom_id=modal["custom_id"], guild_id=GUILD_ID, channel_id=CHANNEL_ID,
            user_id=user_id, components=[
                {"type": 18, "component": {"type": 4, "custom_id": prompt_id, "value": prompt}},
            ])
        return await self.discord.send_interaction(submit)

    def record(self, interaction_id: int):
        return self.discord.interaction_responses[interaction_id]

    def original(self, interaction_id: int):
        message_id = self.record(interaction_id).original_message_id
        return self.discord.messages.get(message_id) if message_id else None

    async def acknowledged(self, interaction_id: int) -> None:
        """Wait until the bot answered the interaction (any first answer). Commands are handled
        concurrently: a test about their order sends the next one only after this."""
        await self.discord.wait_for(lambda fake: fake.interaction_responses[interaction_id].acknowledged)

    async def wait_for_original(self, interaction_id: int, predicate, timeout: float = 15.0):
        await self.discord.wait_for(
            lambda fake: (m := self.original(interaction_id)) is not None and predicate(m), timeout
        )
        return self.original(interaction_id)

    async def private_refusal(self, interaction_id: int) -> str:
        """The text of a command refused before anything started: a private first answer."""
        reply = await self.wait_for_original(interaction_id, lambda m: bool(m.text))
        assert self.record(interaction_id).callback_type == 4 and reply.ephemeral, "a refusal is private"
        return reply.text

    async def private_refusal_after_deferral(self, interaction_id: int) -> str:
        """The text of a command refused after its public "thinking…" deferral (e.g. a picture
        that cannot be used): the placeholder is removed, and the refusal is a private followup."""
        record = self.record(interaction_id)

        def refused(fake) -> bool:
            return bool(record.followup_message_ids) and bool(fake.messages[record.followup_message_ids[0]].text)

        await self.discord.wait_for(refused)
        placeholder = self.discord.messages[record.original_message_id]
        assert record.callback_type == 5 and placeholder.deleted, "the public placeholder is removed"
        [followup_id] = record.followup_message_ids
        reply = self.discord.messages[followup_id]
        assert reply.ephemeral and not reply.deleted, "the refusal is private"
        return reply.text

    async def wait_until_generating(self, interaction_id: int):
        return await self.wait_for_original(interaction_id, lambda m: "Generating" in m.text)

    async def balance(self, user_id: int = USER_ID, guild_id: int = GUILD_ID):
        return await self.bot.services.ledger.balance(guild_id, user_id)

    async def settled_balance(self, user_id: int = USER_ID, guild_id: int = GUILD_ID):
        """The member's balance once no job holds credits: a job settles just after its delivery."""
        for _ in range(300):
            balance = await self.balance(user_id, guild_id)
            if balance.held == 0:
                return balance
            await asyncio.sleep(0.05)
        raise AssertionError(f"credits still held: {balance}")

    def evolink_creates(self) -> list:
        return [r for r in self.evolink.requests if r.method == "POST" and "/generations" in r.path]


async def start_harness(tmp_path, speed: float = CLOCK_SPEED, **setting_overrides: object
                        ) -> AsyncIterator[Harness]:
    clock = ScaledClock(speed=speed, start=datetime.now(UTC))
    fake_discord = FakeDiscord(guilds=[
        FakeGuild(id=GUILD_ID, name="Test server",
                  channels=[FakeChannel(CHANNEL_ID), FakeChannel(LOG_CHANNEL_ID, name="mod-log")],
                  roles=[FakeRole(ARTISTS_ROLE, "Artists"), FakeRole(MODS_ROLE, "Mods")]),
        FakeGuild(id=OTHER_GUILD_ID, name="Other server", channels=[FakeChannel(OTHER_CHANNEL_ID)]),
    ])
    await fake_discord.start()
    # Like EvoLink, the fake fetches the members' pictures the bot passes on from Discord's CDN,
    # and checks them: a picture the bot let through that EvoLink would refuse fails the task.
    evolink = FakeEvoLink(clock=clock, api_key=EVOLINK_KEY, image_seconds=30, image_estimate=30,
                          input_origins=(fake_discord.base_url,))
    evolink_url = await evolink.start()
    settings = load_settings(
        None,
        discord_token=BOT_TOKEN,
        evolink_api_key=EVOLINK_KEY,
        evolink_base_url=evolink_url,
        evolink_files_base_url=evolink_url,
        discord_api_base_url=fake_discord.api_base,
        # Members' pictures come from the fake Discord's CDN, as from Discord's in production.
        discord_media_base_urls=(fake_discord.base_url,),
        # Any free loopback port: hundreds of harness bots (some at once) must never fight over 8080.
        **{"http_host": "127.0.0.1", "http_port": 0, "database_path": tmp_path / "bot.db", **setting_overrides},
    )
    previous_base = discord.http.Route.BASE
    use_discord_api(settings.discord_api_base_url)
    harness = Harness(WanBot(settings, clock=clock), fake_discord, evolink, clock, settings)
    try:
        await harness.start_bot()
        yield harness
    finally:
        await harness.stop_bot()
        await fake_discord.close()
        await evolink.close()
        discord.http.Route.BASE = previous_base


@pytest.fixture(scope="session")
def small_video(tmp_path_factory):
    """A real 5 s MP4 for the fake EvoLink to return as a video result."""
    return make_video(tmp_path_factory.mktemp("video") / "small.mp4", seconds=5, width=640, height=360)


def on_store(database_target: Path | str) -> dict[str, object]:
    """The setting that puts a harness bot on `database_target` (the `database_target` fixture:
    a SQLite file, or a fresh PostgreSQL database's URL, where the bot shares its line and leases
    through the database as several processes would)."""
    if isinstance(database_target, Path):
        return {"database_path": database_target}
    return {"database_url": database_target}


@pytest.fixture
async def harness(tmp_path, database_target) -> AsyncIterator[Harness]:
    """A started bot against the fakes; every test using it runs on SQLite and on PostgreSQL."""
    async for running in start_harness(tmp_path, **on_store(database_target)):
        yield running

