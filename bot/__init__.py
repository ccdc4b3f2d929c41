"""Wan 2.5 generation bot for Discord, backed by the EvoLink API."""

__version__ = "0.1.0"

# Sent on every EvoLink call and result download: EvoLink's CDN refuses default library agents,
# and an honest agent lets their operators see who is calling.
USER_AGENT = f"wan-discord-bot/{__version__} (+https://github.com/wan-discord-bot)"
