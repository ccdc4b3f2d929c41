"""The Discord objects the fake hands out, in Discord's wire format: users, guilds (GUILD_CREATE),
channels, threads, roles, messages and their attachments."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord.base import FakeDiscordBase
from tests.fakes.discord.ids import DEFAULT_OWNER_ID, _now_iso, _snowflake_iso
from tests.fakes.discord.models import FakeChannel, FakeGuild, FakeMessage, FakeRole, RecordedFile


def user_payload(user_id: int, *, username: str | None = None, bot: bool = False) -> dict:
    """A Discord user object (discord/user.py BaseUser._update reads these keys)."""
    return {
        "id": str(user_id),
        "username": username or f"user{user_id % 100000}",
        "global_name": None,
        "discriminator": "0",
        "avatar": None,
        "public_flags": 0,
        "bot": bot,
    }


def _guild_channel_payload(guild_id: int, channel: FakeChannel) -> dict:
    parent_id = str(channel.parent_id) if channel.parent_id is not None else None
    if channel.is_thread:
        # discord/threads.py Thread._from_data reads these keys; threads have no overwrites of their own.
        return {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(guild_id),
            "parent_id": parent_id,
            "owner_id": str(DEFAULT_OWNER_ID),
            "name": channel.name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                "archive_timestamp": _snowflake_iso(channel.id)},
        }
    return {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(guild_id),
        "name": channel.name,
        "position": channel.position,
        "topic": channel.topic,
        "nsfw": channel.nsfw,
        "flags": 0,
        "rate_limit_per_user": 0,
        "parent_id": parent_id,
        "last_message_id": None,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in channel.permission_overwrites
        ],
    }


def _role_payload(role: FakeRole) -> dict:
    return {"id": str(role.id), "name": role.name, "permissions": str(role.permissions), "position": role.position,
            "color": 0, "colors": {"primary_color": 0}, "hoist": False, "managed": False, "mentionable": False,
            "flags": 0}


def _interaction_user(payload: dict) -> dict:
    return payload["member"]["user"] if "member" in payload else payload["user"]


class Payloads(FakeDiscordBase):
    """The objects that depend on the fake's state: the bot user, messages, channels and guilds."""

    def bot_user_payload(self) -> dict:
        return user_payload(self.bot_user_id, username=self.bot_username, bot=True)

    def message_payload(self, message: FakeMessage) -> dict:
        """The full message object Discord would return."""
        payload: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": user_payload(message.author_id) if message.author_id else self.bot_user_payload(),
            "content": message.content,
            "timestamp": _snowflake_iso(message.id),
            "edited_timestamp": message.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "mention_channels": [],
            "attachments": [self._attachment_payload(message.channel_id, a) for a in message.attachments],
            "embeds": message.embeds,
            "reactions": [],
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
            "components": message.components,
        }
        if message.nonce is not None:
            payload["nonce"] = message.nonce
        interaction = self.interaction_responses.get(message.interaction_id) if message.interaction_id else None
        if interaction is not None:
            # Interaction messages are sent by the application's webhook.
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            payload["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": _interaction_user(interaction.payload),
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
        return payload

    def _attachment_payload(self, channel_id: int, attachment: RecordedFile) -> dict:
        url = f"{self.base_url}/attachments/{channel_id}/{attachment.id}/{attachment.filename}"
        payload = {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": attachment.size,
            "url": url,
            "proxy_url": url,
            "content_type": attachment.content_type,
        }
        if attachment.description is not None:
            payload["description"] = attachment.description
        return payload

    def _channel_payload(self, channel_id: int) -> dict:
        guild_id = self._channel_guild.get(channel_id)
        if guild_id is None:
            user_id = next(u for u, c in self._dm_channels.items() if c == channel_id)
            return {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user_payload(user_id)],
            }
        channel = next(c for c in self.guilds[guild_id].channels if c.id == channel_id)
        return _guild_channel_payload(guild_id, channel)

    def guild_create_payload(self, guild: FakeGuild) -> dict:
        """GUILD_CREATE data; discord/guild.py Guild._from_data reads these keys."""
        everyone = FakeRole(guild.id, "@everyone", permissions=guild.everyone_permissions, position=0)
        roles = [_role_payload(role) for role in [everyone, *guild.roles]]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": [0, 2, 7, 14][guild.premium_tier],
            "premium_progress_bar_enabled": False,
            "preferred_locale": guild.preferred_locale,
            "features": [],
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "channels": [_guild_channel_payload(guild.id, c) for c in guild.channels if not c.is_thread],
            "threads": [_guild_channel_payload(guild.id, c) for c in guild.channels if c.is_thread],
            "members": [
                # The bot's own member, so guild.me and its permissions work.
                {
                    "user": self.bot_user_payload(),
                    "roles": [],
                    "joined_at": _now_iso(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "member_count": guild.member_count,
            "large": False,
            "unavailable": False,
            "joined_at": _now_iso(),
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "application_id": None,
        }
