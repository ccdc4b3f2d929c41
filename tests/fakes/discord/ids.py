"""Discord's identifiers: snowflakes (which carry their creation time, so timestamps come from
them), the fixed ids tests hard-code, and interaction tokens."""

from __future__ import annotations

import base64
import datetime
import secrets
import time

DISCORD_EPOCH_MS = 1420070400000

# Fixed, realistic-looking snowflakes so tests can hard-code them.
DEFAULT_APPLICATION_ID = 1230000000000000001
DEFAULT_GUILD_ID = 1230000000000000100
DEFAULT_CHANNEL_ID = 1230000000000000200
DEFAULT_OWNER_ID = 1230000000000000300
DEFAULT_USER_ID = 1230000000000000400

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
