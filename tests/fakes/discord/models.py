"""What the fake Discord holds and records: guilds, channels, roles, messages, the requests it
received and the interactions it sent, with the Discord numbers they use (permissions, flags)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.discord.ids import DEFAULT_CHANNEL_ID, DEFAULT_GUILD_ID, DEFAULT_OWNER_ID

# Permission bits used for sensible defaults (see discord/permissions.py).
_P_ADD_REACTIONS = 1 << 6
_P_VIEW_CHANNEL = 1 << 10
_P_SEND_MESSAGES = 1 << 11
_P_EMBED_LINKS = 1 << 14
_P_ATTACH_FILES = 1 << 15
_P_READ_MESSAGE_HISTORY = 1 << 16
_P_USE_EXTERNAL_EMOJIS = 1 << 18
_P_USE_APPLICATION_COMMANDS = 1 << 31
_P_SEND_MESSAGES_IN_THREADS = 1 << 38
DEFAULT_BOT_PERMISSIONS = (
    _P_ADD_REACTIONS
    | _P_VIEW_CHANNEL
    | _P_SEND_MESSAGES
    | _P_EMBED_LINKS
    | _P_ATTACH_FILES
    | _P_READ_MESSAGE_HISTORY
    | _P_USE_EXTERNAL_EMOJIS
    | _P_USE_APPLICATION_COMMANDS
    | _P_SEND_MESSAGES_IN_THREADS
)

# Message flags (discord/flags.py MessageFlags).
FLAG_EPHEMERAL = 64
FLAG_LOADING = 128


@dataclass
class FakeOverwrite:
    """A channel's permission overwrite (discord/abc.py _Overwrites): for a role (type 0; the
    @everyone role's id is the guild's) or a member (type 1)."""

    id: int
    type: int = 0
    allow: int = 0
    deny: int = 0


# Thread channel types (announcement, public and private threads): sent as threads, with a parent.
_THREAD_TYPES = (10, 11, 12)


@dataclass
class FakeChannel:
    id: int
    name: str = "general"
    type: int = 0  # 0 = guild text; 11 = a public thread (give it a parent_id)
    position: int = 0
    topic: str | None = None
    nsfw: bool = False  # age-restricted (a thread follows its parent's)
    permission_overwrites: list[FakeOverwrite] = field(default_factory=list)
    parent_id: int | None = None  # a thread's channel, or a channel's category

    @property
    def is_thread(self) -> bool:
        return self.type in _THREAD_TYPES


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int = 0
    position: int = 1


@dataclass
class FakeGuild:
    id: int = DEFAULT_GUILD_ID
    name: str = "Fake Guild"
    owner_id: int = DEFAULT_OWNER_ID
    premium_tier: int = 0  # 0..3; decides Guild.filesize_limit and the upload limit
    channels: list[FakeChannel] = field(default_factory=lambda: [FakeChannel(DEFAULT_CHANNEL_ID)])
    # Extra roles; the @everyone role (id == guild id) is always added.
    roles: list[FakeRole] = field(default_factory=list)
    everyone_permissions: int = DEFAULT_BOT_PERMISSIONS
    member_count: int = 2
    preferred_locale: str = "en-US"


@dataclass
class RecordedFile:
    """An uploaded file (in a request) or a message attachment.

    For attachments ``id`` is set and ``content_type`` is what Discord would report
    (guessed from the file name, like Discord does), not the uploaded part's header.
    """

    filename: str
    content_type: str | None
    data: bytes
    id: int | None = None
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class IdentifyRecord:
    """One IDENTIFY the gateway received, with its shard and whether it started a session."""

    shard_id: int
    shard_count: int
    bucket: int  # shard_id % max_concurrency, as Discord counts IDENTIFYs
    time: float  # time.monotonic() on arrival
    accepted: bool  # False: too early in its bucket, answered with INVALID_SESSION (identify_rate_limit)


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any  # parsed JSON body, or the payload_json of a multipart body, else None
    files: list[RecordedFile]
    time: float  # time.monotonic() on arrival
    route: str  # e.g. "PATCH /webhooks/{app_id}/{token}/messages/@original"
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0  # the status the fake answered with
    injected: bool = False  # answered by fail_next()
    rate_limited: bool = False  # answered 429 by the fake's own rate limiter (rate_limits=True)
    # Discord's "errors" tree when the body broke its OpenAPI schema or a limit (answered 400 / 50035).
    form_errors: dict | None = None


def payload_text(data: dict) -> str:
    """The text a message payload (or an edit's JSON) shows: the content, then each embed's
    author, title, description, fields (name and value) and footer, one per line."""
    parts = [data["content"]] if data.get("content") else []
    for embed in data.get("embeds") or []:
        parts.extend(filter(None, [
            (embed.get("author") or {}).get("name"), embed.get("title"), embed.get("description"),
        ]))
        for embed_field in embed.get("fields") or []:
            parts.extend([embed_field.get("name", ""), embed_field.get("value", "")])
        parts.extend(filter(None, [(embed.get("footer") or {}).get("text")]))
    return "\n".join(parts)


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    attachments: list[RecordedFile] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    flags: int = 0
    edits: list[tuple[float, Any]] = field(default_factory=list)  # (monotonic time, request json)
    deleted: bool = False
    type: int = 0
    interaction_id: int | None = None  # set for interaction responses and followups
    author_id: int | None = None  # a member who posted it; None: the bot
    created: float = field(default_factory=time.monotonic)
    edited_timestamp: str | None = None
    nonce: str | None = None  # as sent with a channel send; dedupes retries with enforce_nonce

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Still the "Bot is thinking..." placeholder of a deferral."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def text(self) -> str:
        """Everything a reader sees as text (see payload_text)."""
        return payload_text({"content": self.content, "embeds": self.embeds})

    def custom_ids(self) -> list[str]:
        """Every custom_id in the message's components, nested ones included."""
        found: list[str] = []

        def walk(items: list[dict]) -> None:
            for item in items:
                if "custom_id" in item:
                    found.append(item["custom_id"])
                walk(item.get("components", []))
                if isinstance(item.get("accessory"), dict):
                    walk([item["accessory"]])

        walk(self.components)
        return found


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int  # interaction type: 2 command, 3 component, 5 modal submit
    payload: dict
    sent_at: float  # monotonic time of the INTERACTION_CREATE dispatch
    channel_id: int | None
    guild_id: int | None
    message_id: int | None  # the clicked message, for components
    attachment_size_limit: int
    callback_type: int | None = None
    callback_data: Any = None
    callback_time: float | None = None
    original_message_id: int | None = None
    # Messages created by POST /webhooks/{app}/{token}. A followup that replaced the
    # loading placeholder of a deferral is an edit of @original, not listed here.
    followup_message_ids: list[int] = field(default_factory=list)
    expired: bool = False

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None
