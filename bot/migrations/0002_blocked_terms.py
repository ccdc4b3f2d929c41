"""Per-guild blocked terms: a prompt containing one is refused before anything is charged.
`term` is kept as the moderator typed it (trimmed); plain terms are matched on their normalised
form, computed in code, so the rules for normalising can change without a migration.
Times are Unix milliseconds (UTC).
"""

from bot.db.ddl import ddl_step

__depends__ = {'0001_init'}

steps = [ddl_step("""
CREATE TABLE blocked_terms (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    term       TEXT    NOT NULL,
    is_regex   INTEGER NOT NULL DEFAULT 0 CHECK (is_regex IN (0, 1)),
    added_by   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (guild_id, term, is_regex)
);
CREATE INDEX blocked_terms_by_guild ON blocked_terms (guild_id);
""")]
