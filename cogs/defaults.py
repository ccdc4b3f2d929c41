"""Placeholder: being written (issue 6)."""

from bot.app import WanBot


async def setup(bot: WanBot) -> None:
    pass
