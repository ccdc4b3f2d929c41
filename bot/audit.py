"""The moderators' audit trail: one row per change a moderator makes, written by the store that
makes the change, inside the same transaction (so a change is never kept without its row, nor a
row without its change).

Every store that changes what moderators control calls `record`, as every Red-DiscordBot cog
calls `modlog.create_case`: quota settings (bot/quotas.py), grants (bot/credits.py), blocked terms
(bot/blocked_terms.py) and channel defaults (bot/channel_defaults.py). Cogs never write here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.db import Transaction
from bot.units import to_millis


class AuditAction(StrEnum):
    """What a row records; the value is what the audit_log table stores."""

    SET_DEFAULT = "set-default"
    SET_ROLE = "set-role"
    SET_USER = "set-user"
    GRANT = "grant"
    BLOCK = "block"
    UNBLOCK = "unblock"
    BUDGET = "budget"
    MODERATOR_ROLE = "moderator-role"
    LOG_CHANNEL = "log-channel"
    BLOCKED_TERM_ADD = "blocked-term-add"
    BLOCKED_TERM_REMOVE = "blocked-term-remove"
    DEFAULTS_SET = "defaults-set"
    DEFAULTS_CLEAR = "defaults-clear"


async def record(
    tx: Transaction,
    *,
    at: datetime,
    guild_id: int,
    actor_id: int,
    action: AuditAction,
    target_user_id: int | None = None,
    target_role_id: int | None = None,
    details: Mapping[str, Any],
) -> None:
    """Write the audit row of a change in `tx`, the transaction that makes the change.

    `details` says what changed, as JSON in the order given (values that JSON cannot hold, such
    as a datetime, are written as their text)."""
    await tx.execute(
        "INSERT INTO audit_log (guild_id, actor_id, action, target_user_id, target_role_id, "
        "details, created_at) VALUES (:guild, :actor, :action, :user, :role, :details, :at)",
        {"guild": guild_id, "actor": actor_id, "action": action.value, "user": target_user_id,
         "role": target_role_id, "details": json.dumps(dict(details), default=str), "at": to_millis(at)},
    )
