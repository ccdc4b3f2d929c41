"""The fake Discord's interactions: sending one (INTERACTION_CREATE), its callback (the 3 s window,
one response), followups and the token's message routes (valid 15 minutes)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.ids import DISCORD_EPOCH_MS, _interaction_token, new_snowflake
from tests.fakes.discord.messages import Messages
from tests.fakes.discord.models import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FakeMessage,
    InteractionRecord,
    RecordedRequest,
)
from tests.fakes.discord.wire import (
    _ALREADY_ACKED,
    _INVALID_TOKEN,
    _REC,
    _UNKNOWN_INTERACTION,
    _UNKNOWN_MESSAGE,
    _UNKNOWN_WEBHOOK,
    _form_error,
    _json,
    _Reject,
)


class InteractionRoutes(Messages, Gateway):
    """POST /interactions/{id}/{token}/callback, POST /webhooks/{app_id}/{token} (followups) and
    GET|PATCH|DELETE /webhooks/{app_id}/{token}/messages/{id}."""

    # Set up by FakeDiscord.__init__ (server.py).
    interaction_ack_window: float
    token_lifetime: float

    async def send_interaction(self, payload: dict) -> int:
        """Dispatch INTERACTION_CREATE; from now the 3 s / 15 min clocks run."""
        await self.wait_until_identified()  # the clocks must not run while no bot listens
        payload.setdefault("id", str(new_snowflake()))
        payload.setdefault("token", _interaction_token(int(payload["id"])))
        interaction_id = int(payload["id"])
        channel = payload.get("channel") or {}
        message = payload.get("message") or {}
        record = InteractionRecord(
            id=interaction_id,
            token=payload["token"],
            type=payload["type"],
            payload=payload,
            sent_at=time.monotonic(),
            channel_id=int(channel["id"]) if "id" in channel else None,
            guild_id=int(payload["guild_id"]) if payload.get("guild_id") else None,
            message_id=int(message["id"]) if "id" in message else None,
            attachment_size_limit=int(payload.get("attachment_size_limit", self.attachment_size_limit)),
        )
        self.interaction_responses[interaction_id] = record
        self._by_token[record.token] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction_id

    def _interaction_for_token(self, request: web.Request) -> InteractionRecord:
        if request.match_info["app_id"] != str(self.application_id):
            raise _Reject(*_UNKNOWN_WEBHOOK)
        record = self._by_token.get(request.match_info["token"])
        if record is None or record.expired or time.time() > self.token_expires_at(record.id):
            raise _Reject(*_INVALID_TOKEN)
        return record

    def token_expires_at(self, interaction_id: int) -> float:
        """Like Discord: a token lives `token_lifetime` from the interaction's creation, which
        the id's snowflake timestamp records (so a test can send an already old interaction)."""
        created_ms = (interaction_id >> 22) + DISCORD_EPOCH_MS
        return created_ms / 1000 + self.token_lifetime

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        rec: RecordedRequest = request[_REC]
        record = self.interaction_responses.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"]:
            raise _Reject(*_UNKNOWN_INTERACTION)
        if record.expired:
            raise _Reject(*_INVALID_TOKEN)
        if record.acknowledged:
            raise _Reject(*_ALREADY_ACKED)
        if time.monotonic() - record.sent_at > self.interaction_ack_window:
            raise _Reject(*_UNKNOWN_INTERACTION)

        body = rec.json if isinstance(rec.json, dict) else {}
        callback_type = body.get("type")
        data = body.get("data") or {}
        if callback_type not in (1, 4, 5, 6, 7, 8, 9, 12):
            raise _form_error("type", f"Invalid interaction callback type {callback_type!r}")
        if callback_type in (6, 7) and record.message_id is None:
            # Updating "the message" only exists for component (or modal-from-component) interactions.
            raise _form_error("type", "Interaction callback type requires a message")
        if callback_type == 9 and record.type == 5:
            raise _form_error("type", "A modal submit cannot be answered with a modal")

        message: FakeMessage | None = None
        if callback_type == 4:
            self._check_files(rec.files, record.attachment_size_limit)
            message = self._create_message(record.channel_id or 0, data, rec.files, interaction=record)
            record.original_message_id = message.id
        elif callback_type == 5:
            # Discord posts a "thinking..." placeholder that @original edits replace.
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._new_message(record.channel_id or 0, flags=flags, interaction=record)
            record.original_message_id = message.id
        elif callback_type in (6, 7):
            record.original_message_id = record.message_id
            message = self.messages.get(record.message_id) if record.message_id else None
            if callback_type == 7 and message is not None:
                self._check_files(rec.files, record.attachment_size_limit)
                self._apply_edit(message, data, rec.files)

        record.callback_type = callback_type
        record.callback_data = data
        record.callback_time = rec.time

        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        # discord/interactions.py InteractionCallbackResponse._update reads this shape.
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "activity_instance_id": None,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": bool(message and message.loading),
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": {"type": callback_type},
        }
        if callback_type in (4, 7) and message is not None:
            answer["resource"]["message"] = self.message_payload(message)
        return _json(200, answer)

    async def _followup(self, request: web.Request) -> web.Response:
        rec: RecordedRequest = request[_REC]
        record = self._interaction_for_token(request)
        if not record.acknowledged:
            raise _Reject(*_UNKNOWN_WEBHOOK)
        data = rec.json if isinstance(rec.json, dict) else {}
        self._check_files(rec.files, record.attachment_size_limit)
        original = self.messages.get(record.original_message_id) if record.original_message_id else None
        if original is not None and original.loading and not original.deleted:
            # After a thinking defer, Discord turns the first followup into the placeholder.
            self._apply_edit(original, data, rec.files)
            message = original
        else:
            message = self._create_message(record.channel_id or 0, data, rec.files, interaction=record)
            record.followup_message_ids.append(message.id)
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(200, self.message_payload(message))
        return web.Response(status=204)

    async def _token_message(self, request: web.Request) -> web.Response:
        rec: RecordedRequest = request[_REC]
        record = self._interaction_for_token(request)
        raw_id = request.match_info["message_id"]
        if raw_id == "@original":
            message_id = record.original_message_id
        else:
            message_id = int(raw_id) if raw_id.isdigit() else None
            if message_id not in (record.original_message_id, *record.followup_message_ids):
                message_id = None
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise _Reject(*_UNKNOWN_MESSAGE)
        return self._message_operation(request.method, message, rec, record.attachment_size_limit)
