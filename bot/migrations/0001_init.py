"""The first schema: jobs (the only source of truth for a generation) and the credit ledger.
Times are Unix milliseconds (UTC); credits are integer milli-credits (1 credit = 1000).
"""

from bot.db.ddl import ddl_step

steps = [ddl_step("""
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    kind              TEXT    NOT NULL CHECK (kind IN ('image', 'video')),
    guild_id          INTEGER NOT NULL,
    channel_id        INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    interaction_id    INTEGER,
    message_id        INTEGER,            -- the reply that shows progress and results
    request           TEXT    NOT NULL,   -- the validated options, as JSON
    state             TEXT    NOT NULL CHECK (state IN
                          ('queued', 'submitting', 'running', 'downloading', 'delivering', 'done', 'failed')),
    task_id           TEXT    UNIQUE,     -- EvoLink's id, known once the create call answered
    estimated_seconds REAL,
    result_urls       TEXT,               -- JSON list, kept while the links live (24 h)
    error_code        TEXT,
    error_message     TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    submitted_at      INTEGER,
    finished_at       INTEGER
);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state NOT IN ('done', 'failed');
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id, created_at);

-- Append-only: every credit movement is one row. amount > 0 consumes allowance for 'reserve' and
-- 'settle', and adds to it for 'grant'; 'refund' records the release of a reservation.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    job_id     INTEGER REFERENCES jobs (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('reserve', 'settle', 'refund', 'grant', 'adjust')),
    amount     INTEGER NOT NULL,
    reason     TEXT,
    actor_id   INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_by_member ON ledger (guild_id, user_id, created_at);
-- A job reserves once and is closed (settled or refunded) once: charging twice is impossible.
CREATE UNIQUE INDEX ledger_one_reserve_per_job ON ledger (job_id) WHERE kind = 'reserve';
CREATE UNIQUE INDEX ledger_one_close_per_job ON ledger (job_id) WHERE kind IN ('settle', 'refund');

-- Reservations still open, kept in step with the ledger in the same transaction, so a balance
-- never has to scan a member's whole history to find what is still held.
CREATE TABLE credit_holds (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs (id),
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    amount     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX credit_holds_by_member ON credit_holds (guild_id, user_id);
""")]
