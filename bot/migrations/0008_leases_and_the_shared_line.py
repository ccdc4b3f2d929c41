"""Several processes on one database (PostgreSQL): who works on which job, the line's memory, and
the state every process shares.

jobs.lease_owner / lease_token / lease_expires_at: the process working on a job that has left the
  line, the token of its claim (new with every claim: every write of the job is fenced by it, so
  a process that lost its lease cannot overwrite the new owner), and when the claim lapses unless
  renewed (Unix ms). NULL while queued and once finished.
jobs.acknowledged_at: when Discord accepted the command's first answer (Unix ms; a job without
  an interaction counts as acknowledged when written). Only an acknowledged job may leave the
  line; one never acknowledged is cancelled and refunded. jobs_callback finds the job an EvoLink
  callback is for, whichever process receives it.
line_turns: when each guild (user_id 0) and each member of a guild was last served by the fair
  line: turns counted up across every process, so servers take turns, then members, whichever
  process dispatches.
bot_state: small values every process reads: why new generations are paused (EvoLink refused the
  account), when each IDENTIFY bucket was last used.
"""

from bot.db.ddl import ddl_step

__depends__ = {'0007_daily_spend'}

steps = [ddl_step("""
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_token TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE jobs ADD COLUMN acknowledged_at INTEGER;
UPDATE jobs SET acknowledged_at = created_at WHERE message_id IS NOT NULL OR interaction_id IS NULL;
CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at)
    WHERE state IN ('submitting', 'running', 'downloading', 'delivering');
CREATE INDEX jobs_callback ON jobs (callback_token) WHERE callback_token IS NOT NULL;

CREATE TABLE line_turns (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    served   INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE bot_state (
    key        TEXT PRIMARY KEY,
    value      TEXT,
    updated_at INTEGER NOT NULL
);
""")]
