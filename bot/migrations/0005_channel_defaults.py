"""Per-channel defaults that moderators set with /defaults: what /imagine and /animate use when a
member leaves an option out. NULL means "not set here: use the bot's built-in default".
Values are checked by bot/requests.py's parsers before they are stored (sizes as WIDTHxHEIGHT);
each change also writes a row in audit_log (0003_quotas.sql).
"""

from bot.db.ddl import ddl_step

__depends__ = {'0004_job_locale_and_results'}

steps = [ddl_step("""
CREATE TABLE channel_defaults (
    guild_id      INTEGER NOT NULL,
    channel_id    INTEGER NOT NULL,
    size          TEXT,                   -- /imagine, e.g. '1024x1024'
    n             INTEGER,                -- /imagine, images per job
    prompt_extend INTEGER CHECK (prompt_extend IN (0, 1)),  -- /imagine and /animate
    duration      INTEGER,                -- /animate, seconds
    quality       TEXT,                   -- /animate, e.g. '720p'
    updated_by    INTEGER NOT NULL,       -- the moderator's user id
    updated_at    INTEGER NOT NULL,       -- Unix ms
    PRIMARY KEY (guild_id, channel_id)
);
""")]
