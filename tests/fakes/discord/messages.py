"""The fake Discord's messages and files: creating and editing messages (Discord's attachment
semantics, upload limits by boost tier), members' messages, and the media URLs it serves."""

from __future__ import annotations

import dataclasses
import mimetypes
import time

from aiohttp import web

from tests.fakes.discord.ids import _now_iso, new_snowflake
from tests.fakes.discord.models import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FakeMessage,
    InteractionRecord,
    RecordedFile,
    RecordedRequest,
)
from tests.fakes.discord.payloads import Payloads
from tests.fakes.discord.wire import _TOO_LARGE, _form_error, _json, _Reject

MiB = 1024 * 1024

# Per-file upload limits by guild boost tier (discord/guild.py _PREMIUM_GUILD_LIMITS).
_TIER_FILE_LIMITS = {0: 10 * MiB, 1: 10 * MiB, 2: 50 * MiB, 3: 100 * MiB}

_MAX_FILES = 10


class Messages(Payloads):
    """The message store every message route writes through, and the media routes and helpers."""

    # Set up by FakeDiscord.__init__ (server.py).
    _redirects: dict[int, str]

    # ------------------------------------------------------------ helpers for tests

    def filesize_limit_for_guild(self, guild_id: int | None) -> int:
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        if guild is None:
            return self.attachment_size_limit
        return max(self.attachment_size_limit, _TIER_FILE_LIMITS.get(guild.premium_tier, 10 * MiB))

    def make_attachment(self, filename: str, data: bytes, content_type: str | None = None) -> dict:
        """An attachment payload (for ``resolved.attachments``) whose URL this fake serves."""
        attachment = RecordedFile(filename, content_type or _guess_type(filename), bytes(data), id=new_snowflake())
        self._blobs[attachment.id] = attachment
        return self._attachment_payload(0, attachment)

    def host_media(self, filename: str, data: bytes, content_type: str | None = None) -> str:
        """A file on this fake's media proxy (what Discord caches of a link preview's picture):
        the URL to put in an embed's ``proxy_url``."""
        return self.make_attachment(filename, data, content_type)["proxy_url"]

    def redirect_media(self, url: str, location: str) -> None:
        """The media URL (an attachment's or ``host_media``'s) answers 302 to ``location`` from now on."""
        attachment_id = int(url.split("/attachments/", 1)[1].split("/")[1])
        self._redirects[attachment_id] = location

    def post_member_message(
        self, channel_id: int, user_id: int, content: str = "", files: dict[str, bytes] | None = None,
        embeds: list[dict] | None = None,
    ) -> FakeMessage:
        """A message a member posted (no gateway event: the bot has no message intent), e.g. a
        picture that a message context menu is then used on. ``embeds`` are link previews as
        Discord builds them (``url`` the remote site's address, ``proxy_url`` its cached copy)."""
        message = self._new_message(channel_id)
        message.author_id = user_id
        message.content = content
        message.embeds = list(embeds or [])
        for filename, data in (files or {}).items():
            attachment = RecordedFile(filename, _guess_type(filename), bytes(data), id=new_snowflake())
            self._blobs[attachment.id] = attachment
            message.attachments.append(attachment)
        return message

    def messages_in(self, channel_id: int) -> list[FakeMessage]:
        """The channel's messages that are not deleted, oldest first."""
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    # ------------------------------------------------------------ media URLs (attachments, the media proxy)

    async def _get_attachment(self, request: web.Request) -> web.Response:
        attachment_id = int(request.match_info["attachment_id"])
        if attachment_id in self._redirects:
            return web.Response(status=302, headers={"Location": self._redirects[attachment_id]})
        blob = self._blobs.get(attachment_id)
        if blob is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=blob.data, content_type=blob.content_type or "application/octet-stream")

    # ------------------------------------------------------------ messages

    def _channel_limit(self, channel_id: int) -> int:
        return self.filesize_limit_for_guild(self._channel_guild.get(channel_id))

    def _message_operation(
        self, method: str, message: FakeMessage, rec: RecordedRequest, size_limit: int
    ) -> web.Response:
        if method == "GET":
            return _json(200, self.message_payload(message))
        if method == "DELETE":
            message.deleted = True
            return web.Response(status=204)
        self._check_files(rec.files, size_limit)
        data = rec.json if isinstance(rec.json, dict) else {}
        self._apply_edit(message, data, rec.files)
        return _json(200, self.message_payload(message))

    def _new_message(self, channel_id: int, *, flags: int = 0, interaction: InteractionRecord | None = None) -> FakeMessage:
        message = FakeMessage(id=new_snowflake(), channel_id=channel_id, flags=flags)
        if interaction is not None:
            message.interaction_id = interaction.id
            message.type = 20 if interaction.type == 2 else 0  # 20 = CHAT_INPUT_COMMAND reply
        self.messages[message.id] = message
        return message

    def _create_message(
        self, channel_id: int, data: dict, files: list[RecordedFile], *, interaction: InteractionRecord | None = None
    ) -> FakeMessage:
        _validate_content(data, files, creating=True)
        message = self._new_message(channel_id, flags=int(data.get("flags") or 0), interaction=interaction)
        message.content = data.get("content") or ""
        message.embeds = list(data.get("embeds") or [])
        message.components = list(data.get("components") or [])
        message.attachments = self._resolve_attachments([], data, files)
        return message

    def _apply_edit(self, message: FakeMessage, data: dict, files: list[RecordedFile]) -> None:
        _validate_content(data, files, creating=False)
        was_loading = message.loading
        if "content" in data:
            message.content = data["content"] or ""
        if "embeds" in data:
            message.embeds = list(data["embeds"] or [])
        if "components" in data:
            message.components = list(data["components"] or [])
        if data.get("flags") is not None:
            # Ephemerality is fixed at creation; other flags follow the edit.
            message.flags = (message.flags & FLAG_EPHEMERAL) | (int(data["flags"]) & ~(FLAG_EPHEMERAL | FLAG_LOADING))
        message.flags &= ~FLAG_LOADING  # any edit replaces the "thinking..." placeholder
        message.attachments = self._resolve_attachments(message.attachments, data, files)
        message.edits.append((time.monotonic(), data))
        if not was_loading:
            message.edited_timestamp = _now_iso()

    def _resolve_attachments(
        self, existing: list[RecordedFile], data: dict, files: list[RecordedFile]
    ) -> list[RecordedFile]:
        """Discord's attachment semantics.

        ``attachments`` in the JSON, when present, is the complete list to keep: existing
        attachments by their id, new uploads by their ``files[n]`` index. Without it a
        create attaches every upload and an edit keeps what was there plus the uploads.
        Uploads the list forgot are attached too (lenient; discord.py always lists them).
        """
        uploads = dict(enumerate(files))
        result: list[RecordedFile] = []
        if "attachments" in data:
            by_id = {a.id: a for a in existing}
            for entry in data.get("attachments") or []:
                ref = int(entry["id"])
                if ref in by_id:
                    result.append(by_id[ref])
                elif ref in uploads:
                    upload = uploads.pop(ref)
                    result.append(self._store_upload(upload, entry.get("filename"), entry.get("description")))
        else:
            result = list(existing)
        result.extend(self._store_upload(upload, None, None) for upload in uploads.values())
        return result

    def _store_upload(self, upload: RecordedFile, filename: str | None, description: str | None) -> RecordedFile:
        name = filename or upload.filename
        attachment = dataclasses.replace(
            upload, filename=name, content_type=_guess_type(name), id=new_snowflake(), description=description
        )
        self._blobs[attachment.id] = attachment
        return attachment

    @staticmethod
    def _check_files(files: list[RecordedFile], limit: int) -> None:
        if len(files) > _MAX_FILES:
            raise _form_error("files", f"Must be {_MAX_FILES} or fewer in length.")
        if any(f.size > limit for f in files):
            raise _Reject(*_TOO_LARGE)


def _validate_content(data: dict, files: list[RecordedFile], *, creating: bool) -> None:
    # Lengths and counts were checked with the body (_check_body); what is left is emptiness.
    if creating and not (data.get("content") or data.get("embeds") or data.get("components") or files or data.get("poll")):
        raise _Reject(400, 50006, "Cannot send an empty message")


def _guess_type(filename: str) -> str | None:
    return mimetypes.guess_type(filename)[0]
