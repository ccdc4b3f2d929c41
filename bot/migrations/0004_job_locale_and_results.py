"""Issue 6: what a finished job needs for its buttons and for /show.
locale: the requester's Discord locale, so the job's public message speaks their language
even after a restart (no interaction is left by then).
parent_job_id: the job a reroll, remix or animate click started from.
delivered: JSON list of the Discord attachments the result message carries
({"url", "filename", "content_type", "size"}), so /show can post them again.
"""

from bot.db.ddl import ddl_step

steps = [ddl_step("""
ALTER TABLE jobs ADD COLUMN locale TEXT NOT NULL DEFAULT 'en-US';
ALTER TABLE jobs ADD COLUMN parent_job_id INTEGER REFERENCES jobs (id);
ALTER TABLE jobs ADD COLUMN delivered TEXT;
-- removed_by: who deleted the result with its Delete button; /show will not post it again.
ALTER TABLE jobs ADD COLUMN removed_by INTEGER;
""")]
