"""Discord's size limits that shape what the bot posts, in one place."""

from __future__ import annotations

from datetime import timedelta

MiB = 1024 * 1024

# Files: the per-file limit in a server without boosts (and the safe guess when unknown; boosts
# and a member's Nitro raise it, see Guild.filesize_limit and Interaction.filesize_limit), and
# the most a whole request may carry (about 25 MiB), with a little room for the JSON beside them.
DEFAULT_UPLOAD_LIMIT = 10 * MiB
MAX_REQUEST_BYTES = 24 * MiB

# Text.
MESSAGE_CONTENT_CHARS = 2000
EMBED_DESCRIPTION_CHARS = 4096
EMBED_TOTAL_CHARS = 6000  # title, description, field names and values, footer and author together
EMBED_FIELD_VALUE_CHARS = 1024
MODAL_TITLE_CHARS = 45
NONCE_CHARS = 25

# Attachment links are signed and stop working after about a day (their `ex` parameter says when).
DISCORD_ATTACHMENT_LINK_LIFETIME = timedelta(hours=24)
