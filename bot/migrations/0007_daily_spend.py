"""What each guild spent (settled) per UTC day, kept in step with the ledger by the transaction
that settles. Budgets and ceilings (a guild's per period, one guild's per day, the whole bot's
per day) are checked on every reservation: summing the day's ledger rows each time would grow
with the day, and across every guild for the bot-wide budget.
day: Unix milliseconds of the UTC day's start (every period starts at a UTC midnight).
"""

from bot.db.ddl import ddl_step

__depends__ = {'0006_job_callback_token'}

steps = [ddl_step("""
CREATE TABLE daily_spend (
    day      INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (day, guild_id)
);

INSERT INTO daily_spend (day, guild_id, amount)
SELECT (created_at / 86400000) * 86400000, guild_id, SUM(amount)
FROM ledger WHERE kind = 'settle'
GROUP BY (created_at / 86400000) * 86400000, guild_id;
""")]
