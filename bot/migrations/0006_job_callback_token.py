"""The secret in the callback URL a job gave EvoLink (callback mode, PUBLIC_BASE_URL set): kept so
a job resumed after a restart still recognises the callback EvoLink will send for its task.
NULL when the job was created without callbacks.
"""

from bot.db.ddl import ddl_step

__depends__ = {'0005_channel_defaults'}

steps = [ddl_step("""
ALTER TABLE jobs ADD COLUMN callback_token TEXT;
""")]
