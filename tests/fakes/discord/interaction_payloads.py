"""The INTERACTION_CREATE payloads tests send through ``FakeDiscord.send_interaction``: a slash
command, a component click and a modal submit, shaped as Discord sends them."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord.ids import (
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_USER_ID,
    _interaction_token,
    _now_iso,
    new_snowflake,
)
from tests.fakes.discord.models import DEFAULT_BOT_PERMISSIONS, FakeChannel
from tests.fakes.discord.payloads import _guild_channel_payload, user_payload
from tests.fakes.discord.server import FakeDiscord

_AUTO: Any = object()  # "work it out from the fake" sentinel


def _default_guild_id(fake: FakeDiscord, channel_id: int | None) -> int | None:
    """The channel's guild if the channel is known, else the fake's first guild."""
    if channel_id is not None and channel_id in fake._channel_guild:
        return fake._channel_guild[channel_id]
    return next(iter(fake.guilds), DEFAULT_GUILD_ID)


def _base_interaction(
    fake: FakeDiscord,
    *,
    type: int,
    data: dict,
    guild_id: int | None,
    channel_id: int | None,
    user_id: int,
    locale: str,
    permissions: int,
    roles: list[int] | None,
    attachment_size_limit: int | None,
    app_permissions: int,
    message_id: int | None = None,
) -> dict:
    """The parts every interaction shares (discord/interactions.py Interaction._from_data)."""
    if guild_id is _AUTO:
        guild_id = _default_guild_id(fake, channel_id)
    interaction_id = new_snowflake()
    user = user_payload(user_id)
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(fake.application_id),
        "type": type,
        "data": data,
        "token": _interaction_token(interaction_id),
        "version": 1,
        "locale": locale,
        "app_permissions": str(app_permissions),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": (
            attachment_size_limit if attachment_size_limit is not None else fake.filesize_limit_for_guild(guild_id)
        ),
    }
    if guild_id is not None:
        guild = fake.guilds.get(guild_id)
        if channel_id is None:
            channel_id = guild.channels[0].id if guild and guild.channels else DEFAULT_CHANNEL_ID
        known = guild and next((c for c in guild.channels if c.id == channel_id), None)
        channel = _guild_channel_payload(guild_id, known or FakeChannel(channel_id, name="unknown"))
        channel["permissions"] = str(permissions)
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": guild.preferred_locale if guild else "en-US", "features": []},
            guild_locale=guild.preferred_locale if guild else "en-US",
            channel=channel,
            channel_id=str(channel_id),
            member={
                "user": user,
                "roles": [str(r) for r in roles or []],
                "permissions": str(permissions),
                "joined_at": _now_iso(),
                "premium_since": None,
                "nick": None,
                "avatar": None,
                "deaf": False,
                "mute": False,
                "pending": False,
                "flags": 0,
                "communication_disabled_until": None,
            },
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,  # GUILD
        )
    else:
        if channel_id is None:
            channel_id = fake.dm_channel_id(user_id)
        payload.update(
            channel={"id": str(channel_id), "type": 1, "last_message_id": None, "flags": 0, "recipients": [user]},
            channel_id=str(channel_id),
            user=user,
            authorizing_integration_owners={"0": "0"},
            context=1,  # BOT_DM
        )
    if message_id is not None:
        message = fake.messages.get(message_id)
        if message is None:
            raise ValueError(f"message {message_id} does not exist in the fake; the bot must have sent it")
        payload["message"] = fake.message_payload(message)
    return payload


def slash_command_payload(
    fake: FakeDiscord,
    *,
    name: str,
    options: list[dict] | None = None,
    guild_id: int | None = _AUTO,
    channel_id: int | None = None,
    user_id: int = DEFAULT_USER_ID,
    locale: str = "en-US",
    permissions: int = 0,
    roles: list[int] | None = None,
    resolved: dict | None = None,
    subcommand: str | None = None,
    attachment_size_limit: int | None = None,
    app_permissions: int = DEFAULT_BOT_PERMISSIONS,
    command_guild_id: int | None = _AUTO,
) -> dict:
    """An INTERACTION_CREATE for a chat-input command.

    ``options`` are the leaf options, e.g. ``[{"name": "prompt", "type": 3, "value": "cat"}]``.
    ``subcommand`` nests them: "sub" or "group sub". ``guild_id=None`` makes it a DM; by
    default it is the guild of ``channel_id`` if the fake knows it, else the first guild.
    ``command_guild_id`` is ``data.guild_id``, which discord.py needs to find a *guild*
    command; by default it is ``guild_id`` if the command was synced to that guild in the
    fake, else None (a global command). Pass it explicitly for unsynced guild commands.
    ``attachment_size_limit`` defaults to the guild's limit (boost tier aware).
    """
    if guild_id is _AUTO:
        guild_id = _default_guild_id(fake, channel_id)
    leaf_options = list(options or [])
    if subcommand:
        for part in reversed(subcommand.split()):
            nested_type = 1 if not leaf_options or leaf_options[0].get("type") not in (1, 2) else 2
            leaf_options = [{"name": part, "type": nested_type, "options": leaf_options}]
    if command_guild_id is _AUTO:
        synced = {c["name"] for c in fake.commands.get(guild_id, [])} if guild_id is not None else set()
        command_guild_id = guild_id if name in synced else None
    data: dict[str, Any] = {"id": str(fake.command_id(name)), "name": name, "type": 1, "options": leaf_options}
    if resolved:
        data["resolved"] = resolved
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return _base_interaction(
        fake,
        type=2,
        data=data,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        locale=locale,
        permissions=permissions,
        roles=roles,
        attachment_size_limit=attachment_size_limit,
        app_permissions=app_permissions,
    )


def component_payload(
    fake: FakeDiscord,
    *,
    custom_id: str,
    message_id: int,
    guild_id: int | None = _AUTO,
    channel_id: int | None = None,
    user_id: int = DEFAULT_USER_ID,
    locale: str = "en-US",
    permissions: int = 0,
    roles: list[int] | None = None,
    attachment_size_limit: int | None = None,
    app_permissions: int = DEFAULT_BOT_PERMISSIONS,
    values: list[str] | None = None,
    component_type: int = 2,
    resolved: dict | None = None,
) -> dict:
    """A component click on a message the bot sent; carries that message as recorded.

    ``channel_id`` defaults to the message's channel. Raises ValueError if the message
    does not exist or does not carry ``custom_id`` (Discord could never send that click).
    """
    message = fake.messages.get(message_id)
    if message is None:
        raise ValueError(f"message {message_id} does not exist in the fake")
    if custom_id not in message.custom_ids():
        raise ValueError(f"message {message_id} has no component {custom_id!r}; it has {message.custom_ids()}")
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if component_type != 2:
        data["values"] = list(values or [])
    if resolved:
        data["resolved"] = resolved
    return _base_interaction(
        fake,
        type=3,
        data=data,
        guild_id=guild_id,
        channel_id=channel_id if channel_id is not None else message.channel_id,
        user_id=user_id,
        locale=locale,
        permissions=permissions,
        roles=roles,
        attachment_size_limit=attachment_size_limit,
        app_permissions=app_permissions,
        message_id=message_id,
    )


def modal_submit_payload(
    fake: FakeDiscord,
    *,
    custom_id: str,
    components: list[dict],
    guild_id: int | None = _AUTO,
    channel_id: int | None = None,
    user_id: int = DEFAULT_USER_ID,
    locale: str = "en-US",
    permissions: int = 0,
    roles: list[int] | None = None,
    attachment_size_limit: int | None = None,
    app_permissions: int = DEFAULT_BOT_PERMISSIONS,
    message_id: int | None = None,
) -> dict:
    """A modal submit. ``components`` as Discord sends them, e.g.
    ``[{"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "cat"}]}]``.
    Pass ``message_id`` when the modal was opened from a button on that message.
    """
    return _base_interaction(
        fake,
        type=5,
        data={"custom_id": custom_id, "components": components},
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        locale=locale,
        permissions=permissions,
        roles=roles,
        attachment_size_limit=attachment_size_limit,
        app_permissions=app_permissions,
        message_id=message_id,
    )
