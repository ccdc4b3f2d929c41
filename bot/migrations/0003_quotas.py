"""Moderator-set quotas, per guild, and the audit trail of every change moderators make.
Amounts are milli-credits; NULL means "not set here: use the operator's default".
"""

from bot.db.ddl import ddl_step

__depends__ = {'0002_blocked_terms'}

steps = [ddl_step("""
CREATE TABLE guild_settings (
    guild_id            INTEGER PRIMARY KEY,
    period              TEXT    NOT NULL DEFAULT 'day' CHECK (period IN ('day', 'week', 'month')),
    default_allowance   INTEGER,          -- per member per period
    budget              INTEGER,          -- the whole guild per period; NULL: none
    max_concurrent_jobs INTEGER,          -- per member
    moderator_role_id   INTEGER,
    log_channel_id      INTEGER,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE role_allowances (
    guild_id  INTEGER NOT NULL,
    role_id   INTEGER NOT NULL,
    allowance INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

CREATE TABLE member_quotas (
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    allowance    INTEGER,                 -- a personal override; NULL: roles and default apply
    blocked      INTEGER NOT NULL DEFAULT 0,
    block_reason TEXT,
    PRIMARY KEY (guild_id, user_id)
);

-- Append-only, like the ledger: who changed what, when, in which guild.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    guild_id       INTEGER NOT NULL,
    actor_id       INTEGER NOT NULL,
    action         TEXT    NOT NULL,
    target_user_id INTEGER,
    target_role_id INTEGER,
    details        TEXT    NOT NULL,      -- JSON
    created_at     INTEGER NOT NULL
);
CREATE INDEX audit_log_by_guild ON audit_log (guild_id, created_at);

-- Guild-wide sums (budgets, /usage) and the bot-wide daily budget scan by guild and by time.
CREATE INDEX ledger_by_guild ON ledger (guild_id, created_at);
CREATE INDEX ledger_by_time ON ledger (created_at);
""")]
