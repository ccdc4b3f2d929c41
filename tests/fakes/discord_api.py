"""A fake Discord (REST API + gateway websocket) for driving the real bot in tests.

This is a real aiohttp server on 127.0.0.1 that speaks Discord's wire format, so the
bot's own discord.py code runs unchanged: point it here with
``discord.http.Route.BASE = fake.api_base`` before ``login()``; ``GET /gateway/bot``
then hands out the fake's own websocket URL.

Everything the bot does is recorded (``requests``, ``messages``,
``interaction_responses``, ``commands``) so tests assert on what Discord would have
seen, and Discord's awkward rules that bite real bots are enforced: the 3 s window
for the first interaction response, 15 min interaction tokens, one response per
interaction, per-file upload limits, "Unknown Message" for deleted or ephemeral
messages edited with the bot token, nonce dedupe of channel sends, channel
permissions (``deny_permissions``) and users who refuse DMs (``refuse_dms``). Every request
body is checked against Discord's own OpenAPI description and the limits it leaves out
(``tests/fakes/discord_bodies.py``): a body that breaks them gets Discord's 400 / 50035
"Invalid Form Body" with its nested ``errors``, also kept in ``RecordedRequest.form_errors``.
Faults are injected with ``fail_next`` and ``hold`` (an answer withheld after its
effect was applied, as when the bot dies mid-request). ``FakeDiscord(rate_limits=True)``
also enforces Discord-like rate limits (``RATE_LIMIT_RULES``) with Discord's headers and
429 answers, counting every 429 it answers in ``rate_limited``.

Typical use::

    fake = FakeDiscord()
    await fake.start()
    discord.http.Route.BASE = fake.api_base
    task = asyncio.create_task(bot.start("fake-token"))
    await fake.wait_until_identified()
    iid = await fake.send_interaction(slash_command_payload(fake, name="ping"))
    await fake.wait_for(lambda f: f.interaction_responses[iid].acknowledged)
    ...
    await bot.close(); await fake.close()   # close the bot first, or it reconnects

Identifiers in requests/messages are ints; the wire format uses strings, as Discord does.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import json
import math
import mimetypes
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

# A response the fake withholds until the test calls release(): the same hold the fake EvoLink uses.
from bot.evolink.fake import FakeHold as Hold
from tests.fakes.discord_bodies import body_errors

__all__ = [
    "API_PREFIX",
    "CHANNEL_MESSAGES_BUCKET",
    "DEFAULT_APPLICATION_ID",
    "DEFAULT_CHANNEL_ID",
    "DEFAULT_GUILD_ID",
    "DEFAULT_OWNER_ID",
    "DEFAULT_USER_ID",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMessage",
    "FakeOverwrite",
    "FakeRole",
    "GLOBAL_BUCKET",
    "Hold",
    "InteractionRecord",
    "RATE_LIMIT_RULES",
    "RateLimitHit",
    "RateLimitRule",
    "RecordedFile",
    "RecordedRequest",
    "component_payload",
    "modal_submit_payload",
    "new_snowflake",
    "slash_command_payload",
    "user_payload",
    "WEBHOOK_BUCKET",
]

API_PREFIX = "/api/v10"
MiB = 1024 * 1024
DISCORD_EPOCH_MS = 1420070400000

# Fixed, realistic-looking snowflakes so tests can hard-code them.
DEFAULT_APPLICATION_ID = 1230000000000000001
DEFAULT_GUILD_ID = 1230000000000000100
DEFAULT_CHANNEL_ID = 1230000000000000200
DEFAULT_OWNER_ID = 1230000000000000300
DEFAULT_USER_ID = 1230000000000000400

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

# Per-file upload limits by guild boost tier (discord/guild.py _PREMIUM_GUILD_LIMITS).
_TIER_FILE_LIMITS = {0: 10 * MiB, 1: 10 * MiB, 2: 50 * MiB, 3: 100 * MiB}

_MAX_FILES = 10

# Channel permissions deny_permissions() can take away from the bot.
_CHANNEL_PERMISSIONS = ("VIEW_CHANNEL", "SEND_MESSAGES", "ATTACH_FILES")


# --------------------------------------------------------------------------- ids


_last_snowflake = 0


def new_snowflake() -> int:
    """A unique snowflake whose timestamp is now.

    discord.py derives ``Interaction.created_at``/``expires_at`` and message timestamps
    from the id, so ids must carry the real time. Strictly increasing within a process.
    """
    global _last_snowflake
    candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
    _last_snowflake = max(_last_snowflake + 1, candidate)
    return _last_snowflake


def _snowflake_iso(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat()


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _interaction_token(interaction_id: int) -> str:
    # Shaped like Discord's ("aW50ZXJhY3Rpb246..." = base64 "interaction:...") so log
    # redaction can be tested against something realistic; random so tokens never repeat.
    raw = f"interaction:{interaction_id}:{secrets.token_hex(48)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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


# --------------------------------------------------------------------------- model


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


@dataclass
class _FailRule:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict | None
    headers: dict[str, str | None]
    times: int
    only_uploads: bool = False


@dataclass
class _HoldRule:
    method: str
    pattern: re.Pattern[str]
    only_uploads: bool
    hold: Hold


@dataclass
class _DropRule:
    """Close the connection instead of answering, before or after applying the request."""

    method: str
    pattern: re.Pattern[str]
    after_applying: bool


@dataclass
class _GatewaySession:
    ws: web.WebSocketResponse
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_id: str | None = None
    shard_id: int = 0
    shard_count: int = 1
    seq: int = 0
    identified: bool = False


# Where the middleware leaves the parsed, recorded request for the handlers.
_REC = web.RequestKey("rec", RecordedRequest)


class _Reject(Exception):
    """Raised inside handlers to answer with a Discord error."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _json(status, {"code": code, "message": message, **extra})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py decodes JSON only when Content-Type is exactly "application/json"
    # (http.py json_or_text); web.json_response would add "; charset=utf-8".
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _invalid_form_body(errors: dict) -> _Reject:
    """Discord's answer to a body that breaks its rules; ``errors`` is its nested tree, e.g.
    ``{"embeds": {"0": {"description": {"_errors": [{"code": ..., "message": ...}]}}}}``."""
    return _Reject(400, 50035, "Invalid Form Body", errors=errors)


def _form_error(field_name: str, message: str) -> _Reject:
    return _invalid_form_body({field_name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}})


_UNKNOWN_MESSAGE = (404, 10008, "Unknown Message")
_UNKNOWN_CHANNEL = (404, 10003, "Unknown Channel")
_UNKNOWN_WEBHOOK = (404, 10015, "Unknown Webhook")
_UNKNOWN_INTERACTION = (404, 10062, "Unknown interaction")
_INVALID_TOKEN = (401, 50027, "Invalid Webhook Token")
_ALREADY_ACKED = (400, 40060, "Interaction has already been acknowledged.")
_TOO_LARGE = (413, 40005, "Request entity too large")
_UNAUTHORIZED = (401, 0, "401: Unauthorized")
_MISSING_ACCESS = (403, 50001, "Missing Access")
_MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
_CANNOT_DM = (403, 50007, "Cannot send messages to this user")


# --------------------------------------------------------------------------- rate limits

WEBHOOK_BUCKET = "webhook"
CHANNEL_MESSAGES_BUCKET = "channel_messages"
GLOBAL_BUCKET = "global"


@dataclass(frozen=True)
class RateLimitRule:
    """At most ``limit`` requests per fixed window of ``period`` seconds, per bucket key."""

    limit: int
    period: float


# What FakeDiscord(rate_limits=True) enforces; each instance copies it to ``rate_limit_rules``,
# where a test can shrink a window. Fixed windows starting at a bucket's first request, as Discord's.
#
#   bucket            limit        key                 routes
#   webhook           5 per 2 s    interaction token   POST /webhooks/{app_id}/{token},
#                                                      GET|PATCH|DELETE /webhooks/{app_id}/{token}/messages/{id}
#                                                      (docs/discord-facts.md: "about 5 requests per 2 s per token")
#   channel_messages  5 per 5 s    channel id          POST /channels/{id}/messages,
#                                                      PATCH|DELETE /channels/{id}/messages/{mid}
#   global            50 per 1 s   bot token           every request with "Authorization: Bot ...", the
#                                                      channel message routes included (they count twice)
#
# Webhook-token routes do not count against the global limit, and the interaction callback
# (POST /interactions/{id}/{token}/callback) is not limited at all, as on Discord.
RATE_LIMIT_RULES: dict[str, RateLimitRule] = {
    WEBHOOK_BUCKET: RateLimitRule(limit=5, period=2.0),
    CHANNEL_MESSAGES_BUCKET: RateLimitRule(limit=5, period=5.0),
    GLOBAL_BUCKET: RateLimitRule(limit=50, period=1.0),
}

# Route (as RecordedRequest.route) -> its own bucket kind; None: never limited. Routes not listed
# only count against the global bucket, and only when sent with a bot token.
_ROUTE_BUCKETS: dict[str, str | None] = {
    "POST /interactions/{interaction_id}/{token}/callback": None,
    "POST /webhooks/{app_id}/{token}": WEBHOOK_BUCKET,
    "GET /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "PATCH /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "DELETE /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "POST /channels/{channel_id}/messages": CHANNEL_MESSAGES_BUCKET,
    "PATCH /channels/{channel_id}/messages/{message_id}": CHANNEL_MESSAGES_BUCKET,
    "DELETE /channels/{channel_id}/messages/{message_id}": CHANNEL_MESSAGES_BUCKET,
}

# X-RateLimit-Bucket: one stable hash per bucket kind, whatever the key (Discord does the same with
# major parameters); discord.py keys its own buckets by this hash plus the route's major parameters.
_BUCKET_HASHES = {
    kind: hashlib.sha256(f"fake-discord:{kind}".encode()).hexdigest()[:32] for kind in RATE_LIMIT_RULES
}


@dataclass(frozen=True)
class RateLimitHit:
    """A request the fake's rate limiter answered with 429 (``fail_next`` 429s are not these)."""

    route: str  # e.g. "PATCH /webhooks/{app_id}/{token}/messages/{message_id}"
    bucket: str  # the exhausted bucket kind: "webhook", "channel_messages" or "global"
    time: float  # time.monotonic()


@dataclass
class _Window:
    resets_at: float  # time.monotonic() when the window ends
    used: int = 0


@dataclass(frozen=True)
class _Verdict:
    """The limiter's answer: the bucket the headers describe (or that refused the request)."""

    kind: str
    window: _Window
    limit: int
    refused: bool


class _RateLimiter:
    """Fixed-window request counters per (bucket kind, key); O(1) per request (amortised)."""

    _FIRST_SWEEP = 4096  # windows kept before the expired ones are forgotten

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}
        self._sweep_at = self._FIRST_SWEEP

    def admit(self, buckets: list[tuple[str, str]], rules: dict[str, RateLimitRule], now: float) -> _Verdict:
        """Count the request in every bucket, or in none if one of them is exhausted.

        ``buckets`` lists the request's own bucket first: its state goes into the headers.
        """
        windows = [(kind, self._current(kind, key, rules[kind].period, now)) for kind, key in buckets]
        exhausted = [(kind, window) for kind, window in windows if window.used >= rules[kind].limit]
        if exhausted:
            # Discord reports the global limit first: the whole bot waits, not one route.
            kind, window = max(exhausted, key=lambda pair: pair[0] == GLOBAL_BUCKET)
            return _Verdict(kind, window, rules[kind].limit, refused=True)
        for _, window in windows:
            window.used += 1
        kind, window = windows[0]
        return _Verdict(kind, window, rules[kind].limit, refused=False)

    def _current(self, kind: str, key: str, period: float, now: float) -> _Window:
        window = self._windows.get((kind, key))
        if window is None or now >= window.resets_at:
            if len(self._windows) >= self._sweep_at:
                self._forget_expired(now)
            window = _Window(resets_at=now + period)
            self._windows[(kind, key)] = window
        return window

    def _forget_expired(self, now: float) -> None:
        # One scan per doubling of the live windows keeps this O(1) per request on average.
        self._windows = {bucket: w for bucket, w in self._windows.items() if now < w.resets_at}
        self._sweep_at = max(self._FIRST_SWEEP, 2 * len(self._windows))


def _ceil_ms(seconds: float) -> float:
    # Rounded up, like Discord's, so a client that sleeps exactly this long never arrives early.
    return max(math.ceil(seconds * 1000) / 1000, 0.001)


def _rate_limit_headers(verdict: _Verdict, now: float) -> dict[str, str]:
    """Discord's X-RateLimit-* headers; discord.py paces itself from these (http.py Ratelimit.update,
    webhook/async_.py AsyncWebhookAdapter.request)."""
    reset_after = _ceil_ms(verdict.window.resets_at - now)
    remaining = 0 if verdict.refused else max(verdict.limit - verdict.window.used, 0)
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{math.ceil((time.time() + reset_after) * 1000) / 1000:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": _BUCKET_HASHES[verdict.kind],
    }


def _rate_limited_response(verdict: _Verdict, now: float) -> web.Response:
    retry_after = _ceil_ms(verdict.window.resets_at - now)
    is_global = verdict.kind == GLOBAL_BUCKET
    headers = {
        **_rate_limit_headers(verdict, now),
        "Retry-After": str(math.ceil(retry_after)),
        # Without Via discord.py takes a 429 for a Cloudflare ban and raises instead of waiting.
        "Via": "1.1 google",
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    return _json(429, body, headers)


# --------------------------------------------------------------------------- server


class FakeDiscord:
    """Fake Discord REST API and gateway on one loopback aiohttp server."""

    def __init__(
        self,
        *,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        guilds: list[FakeGuild] | None = None,
        shard_count: int = 1,
        rate_limits: bool = False,
    ) -> None:
        self.application_id = application_id
        # Modern applications have bot user id == application id.
        self.bot_user_id = bot_user_id if bot_user_id is not None else application_id
        self.bot_username = "FakeBot"
        self.guilds: dict[int, FakeGuild] = {g.id: g for g in (guilds if guilds is not None else [FakeGuild()])}
        self.shard_count = shard_count

        # Recorded state, for assertions.
        self.requests: list[RecordedRequest] = []
        self.messages: dict[int, FakeMessage] = {}
        self.interaction_responses: dict[int, InteractionRecord] = {}
        self.commands: dict[int | None, list[dict]] = {}
        self.gateway_received: list[dict] = []  # every op the bot sent (heartbeats included)

        # Rules, adjustable per test.
        self.attachment_size_limit = 10 * MiB
        self.interaction_ack_window = 3.0  # seconds for the first callback
        self.token_lifetime = 15 * 60.0  # seconds an interaction token stays valid
        self.valid_token: str | None = None  # when set, any other bot token gets 401
        self.heartbeat_interval_ms = 41250
        self.nonce_window = 5 * 60.0  # seconds a nonce dedupes a repeated channel send
        # Discord-like rate limits (off by default; settable any time). See RATE_LIMIT_RULES.
        self.rate_limits = rate_limits
        self.rate_limit_rules: dict[str, RateLimitRule] = dict(RATE_LIMIT_RULES)
        self.rate_limited: list[RateLimitHit] = []  # every 429 the limiter answered, for benchmarks

        self._by_token: dict[str, InteractionRecord] = {}
        self._fail_rules: list[_FailRule] = []
        self._hold_rules: list[_HoldRule] = []
        self._drop_rules: list[_DropRule] = []
        self._redirects: dict[int, str] = {}  # attachment id -> where its URL redirects to
        self._holds: list[Hold] = []  # every hold handed out, released on close()
        self._rate_limiter = _RateLimiter()
        self._denied: dict[int, set[str]] = {}  # channel id -> permissions the bot lacks there
        self._refused_dms: set[int] = set()  # users whose DMs refuse the bot
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._channel_guild: dict[int, int | None] = {}  # channel id -> guild id (None = DM)
        self._command_ids: dict[tuple[str, int], int] = {}  # (name, type) -> stable id
        self._blobs: dict[int, RecordedFile] = {}  # attachment id -> bytes served at its URL
        self._sessions: list[_GatewaySession] = []
        self._resumable: dict[str, int] = {}  # session id -> last seq
        self._identified = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        for guild in self.guilds.values():
            for channel in guild.channels:
                self._channel_guild[channel.id] = guild.id

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeDiscord.start() has not been awaited")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise ValueError(f"FakeDiscord only listens on loopback, not {host!r}")
        # Large body limit so oversized uploads reach our 413 logic instead of aiohttp's.
        app = web.Application(middlewares=[self._middleware], client_max_size=512 * MiB)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for hold in self._holds:  # a withheld answer would hold up the runner's shutdown
            hold.release()
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ assertions

    async def wait_for(self, predicate: Callable[[FakeDiscord], bool], timeout: float = 10.0) -> None:
        """Poll the recorded state until ``predicate(self)`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate(self):
                    return
            except (KeyError, IndexError, AttributeError):
                pass  # state not there yet, e.g. interaction_responses[iid] before the callback
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self, last: int = 25) -> str:
        """Human-readable recent state, for failure messages."""
        lines = [f"last {min(last, len(self.requests))} of {len(self.requests)} requests:"]
        for r in self.requests[-last:]:
            note = " (injected)" if r.injected else " (rate limited)" if r.rate_limited else ""
            if r.form_errors:
                note = f" (invalid form body: {json.dumps(r.form_errors)[:300]})"
            lines.append(f"  {r.method} {r.path} -> {r.status}{note}")
        lines.append(f"messages ({len(self.messages)}):")
        for m in list(self.messages.values())[-last:]:
            names = [a.filename for a in m.attachments]
            lines.append(
                f"  {m.id} ch={m.channel_id} flags={m.flags} deleted={m.deleted} edits={len(m.edits)}"
                f" files={names} content={m.content[:80]!r}"
            )
        lines.append(f"interactions ({len(self.interaction_responses)}):")
        for i in list(self.interaction_responses.values())[-last:]:
            lines.append(
                f"  {i.id} type={i.type} callback={i.callback_type} original={i.original_message_id}"
                f" followups={i.followup_message_ids} expired={i.expired}"
            )
        return "\n".join(lines)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]

    # ------------------------------------------------------------ fault injection

    def expire_token(self, token: str) -> None:
        """Make every later token route for this interaction answer 401 / 50027."""
        self._by_token[token].expired = True

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: dict | None,
        headers: dict[str, str | None] | None = None,
        times: int = 1,
        only_uploads: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``/``body``.

        ``only_uploads`` restricts the rule to requests that carry files (e.g. a 413 that only
        an upload can provoke, not the text edits before it).

        ``path_regex`` is searched (re.search) in the path without /api/v10. ``body=None``
        answers with a non-JSON text body (like a proxy would), except for 429 where it
        means a default ``{"retry_after": 0.05, ...}``. 429s get ``Via: 1.1 google`` added,
        without which discord.py treats a 429 as a Cloudflare ban; pass
        ``headers={"Via": None}`` to simulate exactly that.
        """
        merged: dict[str, str | None] = {}
        if status == 429:
            merged["Via"] = "1.1 google"
            if body is None:
                body = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
        merged.update(headers or {})
        self._fail_rules.append(
            _FailRule(method.upper(), re.compile(path_regex), status, body, merged, times, only_uploads)
        )

    def hold(self, method: str, path_regex: str, *, only_uploads: bool = False) -> Hold:
        """Apply the next matching request normally, then withhold its answer until ``release()``.

        Matches like ``fail_next`` (and a request ``fail_next`` answers is not held). The
        effect is in the fake's state (e.g. the edit and its attachments) before
        ``hold.arrived`` is set: like a bot killed after Discord applied a request but before
        the bot saw the answer. A client that gives up meanwhile is harmless.
        """
        hold = Hold()
        self._hold_rules.append(_HoldRule(method.upper(), re.compile(path_regex), only_uploads, hold))
        self._holds.append(hold)
        return hold

    def drop_next(self, method: str, path_regex: str, *, after_applying: bool = False) -> None:
        """Close the connection of the next matching request without any answer: a network
        error for the client. With ``after_applying`` the request takes effect first (Discord got
        it, the client never heard back); otherwise it has none. Matches like ``fail_next``."""
        self._drop_rules.append(_DropRule(method.upper(), re.compile(path_regex), after_applying))

    def deny_permissions(self, channel_id: int, *permissions: str) -> None:
        """Take permissions in a channel from the bot, for its bot-token channel routes.

        ``permissions`` among VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES. Answers as Discord:
        no VIEW_CHANNEL: 403 50001 on any route of the channel; no SEND_MESSAGES: 403 50013 on
        sends; no ATTACH_FILES: 403 50013 on sends and edits carrying new files. Interaction
        token routes are not affected, and the gateway's view (``permissions_for``) is not updated.
        """
        self._denied.setdefault(channel_id, set()).update(_permission_names(permissions))

    def allow_permissions(self, channel_id: int, *permissions: str) -> None:
        """Give back permissions taken by ``deny_permissions``."""
        self._denied.get(channel_id, set()).difference_update(_permission_names(permissions))

    async def add_channel(self, guild_id: int, channel: FakeChannel) -> None:
        """A channel (or thread) created in a guild: a connected bot is told, as by Discord
        (CHANNEL_CREATE or THREAD_CREATE), and later GUILD_CREATEs carry it."""
        self.guilds[guild_id].channels.append(channel)
        self._channel_guild[channel.id] = guild_id
        if any(session.identified for session in self._sessions):
            payload = _guild_channel_payload(guild_id, channel)
            if channel.is_thread:
                await self.dispatch("THREAD_CREATE", {**payload, "newly_created": True})
            else:
                await self.dispatch("CHANNEL_CREATE", payload)

    async def remove_channel(self, channel_id: int) -> None:
        """A channel deleted: a connected bot is told (CHANNEL_DELETE); its messages stay recorded."""
        guild_id = self._channel_guild.pop(channel_id)
        assert guild_id is not None, "DM channels are not deleted"
        guild = self.guilds[guild_id]
        channel = next(c for c in guild.channels if c.id == channel_id)
        guild.channels.remove(channel)
        if any(session.identified for session in self._sessions):
            await self.dispatch("CHANNEL_DELETE", _guild_channel_payload(guild_id, channel))

    async def add_role(self, guild_id: int, role: FakeRole) -> None:
        """A role created in a guild: a connected bot is told (GUILD_ROLE_CREATE)."""
        self.guilds[guild_id].roles.append(role)
        if any(session.identified for session in self._sessions):
            await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": _role_payload(role)})

    def refuse_dms(self, user_id: int) -> None:
        """The user blocks DMs from the bot: sends to their DM channel get 403 50007 (the
        channel itself can still be opened, as on Discord)."""
        self._refused_dms.add(user_id)

    def expire_attachment(self, attachment_id: int) -> None:
        """Its CDN URL answers 404 from now on (signed URLs expire after some hours)."""
        self._blobs.pop(attachment_id, None)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway connection, as Discord does now and then; the bot resumes."""
        self._identified.clear()
        for session in list(self._sessions):
            await session.ws.close(code=code)

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

    def command_id(self, name: str, type: int = 1) -> int:
        """The id Discord gave (or would give) this command; stable per name."""
        return self._command_ids.setdefault((name, type), new_snowflake())

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

    # ------------------------------------------------------------ gateway driving

    async def wait_until_identified(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._identified.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no shard sent IDENTIFY within {timeout}s\n{self.summary()}") from None

    async def wait_until_disconnected(self, timeout: float = 10.0) -> None:
        """Until no shard is connected (a bot that closed has really gone)."""
        await self.wait_for(lambda fake: not fake._sessions, timeout)

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a DISPATCH to the shard(s) that would get it.

        With one shard that is every connection; with several, guild events go to the
        guild's shard ((guild_id >> 22) % shard_count) and the rest to shard 0, as Discord does.
        """
        await self.wait_until_identified()
        guild_id = data.get("guild_id") or (data.get("id") if event.startswith("GUILD_") else None)
        for session in [s for s in self._sessions if s.identified]:
            if session.shard_count > 1:
                owner = (int(guild_id) >> 22) % session.shard_count if guild_id else 0
                if owner != session.shard_id:
                    continue
            async with session.lock:
                await self._send_dispatch(session, event, data)

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

    # ------------------------------------------------------------ routing

    def _add_routes(self, app: web.Application) -> None:
        api = API_PREFIX
        tok = "/webhooks/{app_id}/{token}"
        r = app.router
        r.add_get("/gateway", self._gateway_ws)
        r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._get_attachment)
        r.add_get(api + "/users/@me", self._get_me)
        r.add_get(api + "/oauth2/applications/@me", self._get_application)
        r.add_get(api + "/gateway/bot", self._get_gateway_bot)
        r.add_get(api + "/gateway", self._get_gateway)
        r.add_post(api + "/interactions/{interaction_id}/{token}/callback", self._interaction_callback)
        r.add_post(api + tok, self._followup)
        for method in ("GET", "PATCH", "DELETE"):
            r.add_route(method, api + tok + "/messages/{message_id}", self._token_message)
            r.add_route(method, api + "/channels/{channel_id}/messages/{message_id}", self._channel_message)
        r.add_post(api + "/channels/{channel_id}/messages", self._channel_send)
        r.add_get(api + "/channels/{channel_id}", self._get_channel)
        r.add_post(api + "/users/@me/channels", self._create_dm)
        for method in ("GET", "PUT"):
            r.add_route(method, api + "/applications/{app_id}/commands", self._commands)
            r.add_route(method, api + "/applications/{app_id}/guilds/{guild_id}/commands", self._commands)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path == "/gateway" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        rec = await self._record(request)
        limit = self._rate_limit(request, rec) if self.rate_limits else None
        if limit is not None and limit.refused:
            # Refused before fail rules and holds are taken: a rate-limited request has no effect.
            rec.status, rec.rate_limited = 429, True
            self.rate_limited.append(RateLimitHit(rec.route, limit.kind, rec.time))
            return _rate_limited_response(limit, time.monotonic())
        drop = self._take_drop_rule(rec)
        if drop is not None and not drop.after_applying:
            return self._drop_connection(request, rec)
        rule = self._take_fail_rule(rec)
        hold: Hold | None = None
        if rule is not None:
            rec.injected = True
            response = self._injected_response(rule)
        else:
            hold = self._take_hold(rec)
            try:
                self._check_body(request, rec)
                response = await handler(request)
            except _Reject as reject:
                response = reject.response
            except web.HTTPException as exc:
                # Unknown route or method: answer like Discord, and keep the record so tests notice.
                response = _json(exc.status, {"code": 0, "message": f"{exc.status}: {exc.reason}"})
        if drop is not None:
            return self._drop_connection(request, rec)
        rec.status = response.status
        if limit is not None:
            # A fail_next answer counted in the buckets too (Discord saw the request) and keeps any
            # X-RateLimit headers the test gave it.
            for name, value in _rate_limit_headers(limit, time.monotonic()).items():
                response.headers.setdefault(name, value)
        if hold is not None:
            # The effect is applied; the answer waits. If the client gave up meanwhile, aiohttp
            # drops the late answer quietly (handlers are not cancelled on disconnect).
            await hold._block()
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        body_json: Any = None
        files: list[RecordedFile] = []
        if request.content_type == "multipart/form-data":
            body_json, files = await _read_multipart(request)
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                try:
                    body_json = json.loads(raw)
                except ValueError:
                    body_json = None
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        rec = RecordedRequest(
            method=request.method,
            path=_strip_prefix(request.path),
            query=dict(request.query),
            json=body_json,
            files=files,
            time=time.monotonic(),
            route=f"{request.method} {_strip_prefix(canonical)}",
            headers=dict(request.headers),
        )
        self.requests.append(rec)
        request[_REC] = rec
        return rec

    def _rate_limit(self, request: web.Request, rec: RecordedRequest) -> _Verdict | None:
        """Count the request in its buckets (see RATE_LIMIT_RULES); None if it is not limited."""
        if not request.path.startswith(API_PREFIX):
            return None
        route_kind = _ROUTE_BUCKETS.get(rec.route, GLOBAL_BUCKET)
        if route_kind is None:
            return None
        buckets: list[tuple[str, str]] = []
        if route_kind == WEBHOOK_BUCKET:
            buckets.append((WEBHOOK_BUCKET, request.match_info["token"]))
        else:
            if route_kind == CHANNEL_MESSAGES_BUCKET:
                buckets.append((CHANNEL_MESSAGES_BUCKET, request.match_info["channel_id"]))
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bot "):
                buckets.append((GLOBAL_BUCKET, auth[4:].strip()))
        if not buckets:
            return None
        return self._rate_limiter.admit(buckets, self.rate_limit_rules, rec.time)

    @staticmethod
    def _check_body(request: web.Request, rec: RecordedRequest) -> None:
        """Discord checks a body before anything else: against its OpenAPI schema and its limits
        (tests/fakes/discord_bodies.py). A multipart body without payload_json carries only files."""
        body = rec.json if rec.json is not None or request.content_type != "multipart/form-data" else {}
        errors = body_errors(rec.route, rec.path, body)
        if errors:
            rec.form_errors = errors
            raise _invalid_form_body(errors)

    def _take_fail_rule(self, rec: RecordedRequest) -> _FailRule | None:
        for rule in self._fail_rules:
            if _rule_matches(rule.method, rule.pattern, rule.only_uploads, rec):
                rule.times -= 1
                if rule.times <= 0:
                    self._fail_rules.remove(rule)
                return rule
        return None

    def _take_drop_rule(self, rec: RecordedRequest) -> _DropRule | None:
        for rule in self._drop_rules:
            if _rule_matches(rule.method, rule.pattern, False, rec):
                self._drop_rules.remove(rule)
                return rule
        return None

    @staticmethod
    def _drop_connection(request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        rec.injected = True
        rec.status = 0  # no answer at all
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("dropped by the fake")

    def _take_hold(self, rec: RecordedRequest) -> Hold | None:
        for rule in self._hold_rules:
            if _rule_matches(rule.method, rule.pattern, rule.only_uploads, rec):
                self._hold_rules.remove(rule)
                return rule.hold
        return None

    @staticmethod
    def _injected_response(rule: _FailRule) -> web.Response:
        headers = {k: v for k, v in rule.headers.items() if v is not None}
        if rule.body is None:
            return web.Response(status=rule.status, text=f"<html>{rule.status}</html>", headers=headers)
        return _json(rule.status, rule.body, headers)

    # ------------------------------------------------------------ basic routes

    def _require_bot_auth(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bot ") or not auth[4:].strip():
            raise _Reject(*_UNAUTHORIZED)
        if self.valid_token is not None and auth[4:].strip() != self.valid_token:
            raise _Reject(*_UNAUTHORIZED)

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

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return _json(
            200,
            {
                "url": self.ws_url,
                "shards": self.shard_count,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
            },
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json(200, {"url": self.ws_url})

    async def _get_attachment(self, request: web.Request) -> web.Response:
        attachment_id = int(request.match_info["attachment_id"])
        if attachment_id in self._redirects:
            return web.Response(status=302, headers={"Location": self._redirects[attachment_id]})
        blob = self._blobs.get(attachment_id)
        if blob is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=blob.data, content_type=blob.content_type or "application/octet-stream")

    # ------------------------------------------------------------ interactions

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

    # ------------------------------------------------------------ bot-token message routes

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

    # ------------------------------------------------------------ commands

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

    # ------------------------------------------------------------ messages

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

    # ------------------------------------------------------------ payloads

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

    # ------------------------------------------------------------ gateway

    async def _gateway_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        session = _GatewaySession(ws=ws)
        self._sessions.append(session)
        try:
            # discord.py accepts plain JSON text frames despite asking for zlib-stream.
            await self._send(session, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                self.gateway_received.append(payload)
                await self._handle_gateway_op(session, payload.get("op"), payload.get("d"))
        finally:
            self._sessions.remove(session)
            if session.session_id is not None:
                self._resumable[session.session_id] = session.seq
            if not any(s.identified for s in self._sessions):
                self._identified.clear()
        return ws

    async def _handle_gateway_op(self, session: _GatewaySession, op: int | None, d: Any) -> None:
        if op == 1:  # HEARTBEAT
            await self._send(session, {"op": 11})
        elif op == 2:  # IDENTIFY
            shard_id, shard_count = (d or {}).get("shard") or [0, 1]
            session.shard_id, session.shard_count = shard_id, shard_count
            session.session_id = secrets.token_hex(16)
            async with session.lock:  # READY and GUILD_CREATEs go out before any dispatch()
                await self._send_dispatch(session, "READY", self._ready_payload(session))
                for guild in self.guilds.values():
                    if (guild.id >> 22) % shard_count == shard_id:
                        await self._send_dispatch(session, "GUILD_CREATE", self.guild_create_payload(guild))
                session.identified = True
            self._identified.set()
        elif op == 6:  # RESUME
            session_id = (d or {}).get("session_id")
            if session_id in self._resumable:
                session.session_id = session_id
                session.seq = self._resumable.pop(session_id)
                async with session.lock:
                    await self._send_dispatch(session, "RESUMED", {})
                    session.identified = True
                self._identified.set()
            else:
                await self._send(session, {"op": 9, "d": False})  # INVALID_SESSION: identify again
        # Presence updates (3), member requests (8) and the rest need no answer here.

    def _ready_payload(self, session: _GatewaySession) -> dict:
        return {
            "v": 10,
            "user": {**self.bot_user_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.guilds.values()
                if (g.id >> 22) % session.shard_count == session.shard_id
            ],
            "session_id": session.session_id,
            "resume_gateway_url": self.ws_url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "_trace": ["fake-discord"],
        }

    async def _send_dispatch(self, session: _GatewaySession, event: str, data: dict) -> None:
        session.seq += 1
        await self._send(session, {"op": 0, "t": event, "s": session.seq, "d": data})

    @staticmethod
    async def _send(session: _GatewaySession, message: dict) -> None:
        message.setdefault("s", None)
        message.setdefault("t", None)
        message.setdefault("d", None)
        if not session.ws.closed:
            await session.ws.send_str(json.dumps(message))


# --------------------------------------------------------------------------- request parsing


async def _read_multipart(request: web.Request) -> tuple[Any, list[RecordedFile]]:
    """payload_json plus files[n] parts, as discord.py sends them (http.py handle_message_parameters)."""
    payload: Any = None
    indexed: list[tuple[int, RecordedFile]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        name = part.name or ""
        if name == "payload_json":
            payload = json.loads(await part.text())
            continue
        data = bytes(await part.read(decode=False))
        match = re.fullmatch(r"files\[(\d+)\]", name)
        index = int(match.group(1)) if match else len(indexed)
        indexed.append((index, RecordedFile(part.filename or name, part.headers.get("Content-Type"), data)))
    # Keep list position == files[n] index, so attachments {"id": n} map to files[n].
    return payload, [f for _, f in sorted(indexed, key=lambda pair: pair[0])]


def _validate_content(data: dict, files: list[RecordedFile], *, creating: bool) -> None:
    # Lengths and counts were checked with the body (_check_body); what is left is emptiness.
    if creating and not (data.get("content") or data.get("embeds") or data.get("components") or files or data.get("poll")):
        raise _Reject(400, 50006, "Cannot send an empty message")


def _rule_matches(method: str, pattern: re.Pattern[str], only_uploads: bool, rec: RecordedRequest) -> bool:
    """How fail_next and hold pick requests: method, re.search in the path, files if asked."""
    if only_uploads and not rec.files:
        return False
    return method == rec.method and pattern.search(rec.path) is not None


def _permission_names(permissions: tuple[str, ...]) -> set[str]:
    unknown = set(permissions) - set(_CHANNEL_PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions {sorted(unknown)}; use {', '.join(_CHANNEL_PERMISSIONS)}")
    return set(permissions)


def _strip_prefix(path: str) -> str:
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path


def _guess_type(filename: str) -> str | None:
    return mimetypes.guess_type(filename)[0]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


# --------------------------------------------------------------------------- interaction payloads

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
