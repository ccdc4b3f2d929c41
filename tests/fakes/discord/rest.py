"""The fake Discord's bot-token REST routes: the bot's user and application, channel messages
(sends with nonce dedupe, edits, deletes; channel permissions), channels, DMs and commands."""

from __future__ import annotations

import time

from aiohttp import web

from tests.fakes.discord.ids import DEFAULT_OWNER_ID, new_snowflake
from tests.fakes.discord.messages import Messages
from tests.fakes.discord.models import FakeMessage, RecordedRequest
from tests.fakes.discord.payloads import user_payload
from tests.fakes.discord.wire import (
    _CANNOT_DM,
    _MISSING_ACCESS,
    _MISSING_PERMISSIONS,
    _REC,
    _UNKNOWN_CHANNEL,
    _UNKNOWN_MESSAGE,
    _form_error,
    _json,
    _Reject,
)


class RestRoutes(Messages):
    """GET /users/@me, GET /oauth2/applications/@me, /channels/{id}[/messages[/{id}]],
    POST /users/@me/channels and GET|PUT /applications/{id}[/guilds/{id}]/commands."""

    # Set up by FakeDiscord.__init__ (server.py).
    nonce_window: float
    _denied: dict[int, set[str]]
    _refused_dms: set[int]
    _command_ids: dict[tuple[str, int], int]

    # ------------------------------------------------------------ the bot's user and application

    async def _get_me(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return _json(200, {**self.bot_user_payload(), "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        # discord/appinfo.py AppInfo.__init__ reads these keys without defaults.
        return _json(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_username,
                "icon": None,
                "description": "A fake application",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": user_payload(DEFAULT_OWNER_ID, username="owner"),
                "team": None,
                "bot": self.bot_user_payload(),
                "rpc_origins": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}},
            },
        )

    # ------------------------------------------------------------ channel messages

    async def _channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        rec: RecordedRequest = request[_REC]
        channel_id = int(request.match_info["channel_id"])
        self._check_permissions(channel_id, rec, sending=False)
        message = self.messages.get(int(request.match_info["message_id"]))
        # Ephemeral messages only exist for the interaction token.
        if message is None or message.deleted or message.channel_id != channel_id or message.ephemeral:
            raise _Reject(*_UNKNOWN_MESSAGE)
        return self._message_operation(request.method, message, rec, self._channel_limit(channel_id))

    async def _channel_send(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        rec: RecordedRequest = request[_REC]
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self._channel_guild:
            raise _Reject(*_UNKNOWN_CHANNEL)
        self._check_permissions(channel_id, rec, sending=True)
        if self._channel_guild[channel_id] is None and self._dm_user(channel_id) in self._refused_dms:
            raise _Reject(*_CANNOT_DM)
        self._check_files(rec.files, self._channel_limit(channel_id))
        data = rec.json if isinstance(rec.json, dict) else {}
        nonce = str(data["nonce"]) if data.get("nonce") is not None else None
        if nonce is not None and data.get("enforce_nonce"):
            # Discord answers a retried send with the message the first attempt created.
            earlier = self._message_with_nonce(channel_id, nonce)
            if earlier is not None:
                return _json(200, self.message_payload(earlier))
        message = self._create_message(channel_id, data, rec.files)
        message.nonce = nonce
        return _json(200, self.message_payload(message))

    def _message_with_nonce(self, channel_id: int, nonce: str) -> FakeMessage | None:
        """The bot's message sent to the channel with this nonce within ``nonce_window``."""
        oldest = time.monotonic() - self.nonce_window
        for message in reversed(self.messages.values()):
            if (
                message.nonce == nonce
                and message.channel_id == channel_id
                and message.author_id is None
                and message.created >= oldest
                and not message.deleted
            ):
                return message
        return None

    def _check_permissions(self, channel_id: int, rec: RecordedRequest, *, sending: bool) -> None:
        denied = self._denied.get(channel_id)
        if not denied:
            return
        if "VIEW_CHANNEL" in denied:
            raise _Reject(*_MISSING_ACCESS)
        if sending and "SEND_MESSAGES" in denied:
            raise _Reject(*_MISSING_PERMISSIONS)
        if rec.files and "ATTACH_FILES" in denied:
            raise _Reject(*_MISSING_PERMISSIONS)

    def _dm_user(self, channel_id: int) -> int | None:
        return next((u for u, c in self._dm_channels.items() if c == channel_id), None)

    # ------------------------------------------------------------ channels and DMs

    async def _get_channel(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self._channel_guild:
            raise _Reject(*_UNKNOWN_CHANNEL)
        self._check_permissions(channel_id, request[_REC], sending=False)
        return _json(200, self._channel_payload(channel_id))

    async def _create_dm(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        body = request[_REC].json or {}
        if "recipient_id" not in body:
            raise _form_error("recipient_id", "This field is required")
        return _json(200, self._channel_payload(self.dm_channel_id(int(body["recipient_id"]))))

    def dm_messages(self, user_id: int) -> list[FakeMessage]:
        """Messages in the bot's DM channel with the user (none if it was never opened)."""
        channel_id = self._dm_channels.get(user_id)
        return self.messages_in(channel_id) if channel_id is not None else []

    def dm_channel_id(self, user_id: int) -> int:
        if user_id not in self._dm_channels:
            channel_id = new_snowflake()
            self._dm_channels[user_id] = channel_id
            self._channel_guild[channel_id] = None
        return self._dm_channels[user_id]

    # ------------------------------------------------------------ commands

    def command_id(self, name: str, type: int = 1) -> int:
        """The id Discord gave (or would give) this command; stable per name."""
        return self._command_ids.setdefault((name, type), new_snowflake())

    async def _commands(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        if request.match_info["app_id"] != str(self.application_id):
            raise _Reject(403, 50001, "Missing Access")
        guild_id = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
        if request.method == "GET":
            return _json(200, self.commands.get(guild_id, []))
        body = request[_REC].json
        if not isinstance(body, list):
            raise _form_error("commands", "Must be a list")
        stored = []
        for command in body:
            command_type = command.get("type", 1)
            stored.append(
                {
                    "default_member_permissions": None,
                    "nsfw": False,
                    "options": [],
                    # Discord answers "" for context menus, which are sent without one.
                    "description": "",
                    **command,
                    "id": str(self.command_id(command["name"], command_type)),
                    "type": command_type,
                    "application_id": str(self.application_id),
                    "version": str(new_snowflake()),
                    **({"guild_id": str(guild_id)} if guild_id is not None else {}),
                }
            )
        self.commands[guild_id] = stored
        return _json(200, stored)
