"""`python -m bot check`: verify what the bot needs before an operator relies on it.

One line per check with a clear verdict; secrets never appear (errors are described, not echoed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp

from bot import USER_AGENT
from bot.config import Settings
from bot.db import Database
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkError
from bot.media.video import find_ffmpeg
from bot.units import format_credits, to_milli

CHECK_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=10)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'FAIL':>4}] {self.name}: {self.detail}"


async def run_checks(settings: Settings) -> list[CheckResult]:
    results = [CheckResult("settings", True, "all settings read and valid")]
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        results.append(await _guarded("Discord token", _discord_token(settings, session)))
        results.append(await _guarded("EvoLink key", _evolink_key(settings, session)))
    results.append(await _guarded("database", _database(settings)))
    results.append(_ffmpeg(settings))
    results.append(_exposure(settings))
    return results


def _exposure(settings: Settings) -> CheckResult:
    """What the operator's EvoLink account can be spent on by default, so nobody is surprised."""
    return CheckResult(
        "spending limits", True,
        f"by default each member may spend {settings.default_daily_credits} credits a day in each server "
        f"(moderators may raise it to at most {settings.max_member_credits_per_day}); each server at most "
        f"{settings.max_server_credits_per_day} a day; the whole bot at most {settings.bot_daily_budget} a day "
        "(MAX_MEMBER_CREDITS_PER_DAY, MAX_SERVER_CREDITS_PER_DAY, BOT_DAILY_BUDGET)")


async def _guarded(name: str, check: Awaitable[CheckResult]) -> CheckResult:
    try:
        return await check
    except Exception as exc:  # a check must report, never crash the report
        return CheckResult(name, False, f"could not run ({type(exc).__name__})")


async def _discord_token(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    url = f"{settings.discord_api_base_url}/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    try:
        async with session.get(url, headers=headers, timeout=CHECK_TIMEOUT) as response:
            if response.status == 200:
                me = await response.json(content_type=None)
                return CheckResult("Discord token", True,
                                   f"accepted: logged in as {me.get('username')} (id {me.get('id')})")
            reason = "refused: the token is wrong or was reset" if response.status == 401 else (
                f"Discord answered HTTP {response.status}")
            return CheckResult("Discord token", False, reason)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult("Discord token", False, f"Discord could not be reached ({type(exc).__name__})")


async def _evolink_key(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    client = EvoLinkClient(session, api_key=settings.evolink_api_key.get_secret_value(),
                           base_url=settings.evolink_base_url,
                           files_base_url=settings.evolink_files_base_url)
    try:
        balance = await client.get_balance()
    except EvoLinkError as exc:
        # str(exc) holds status, code and EvoLink's message, never the key.
        return CheckResult("EvoLink key", False, f"refused or unreachable ({exc})")
    left = format_credits(to_milli(balance.remaining_credits))
    return CheckResult("EvoLink key", True, f"accepted: {left} credits left on the account")


async def _database(settings: Settings) -> CheckResult:
    started = time.monotonic()
    db = await Database.open(settings.database)  # creates and migrates as at start
    try:
        async with db.transaction() as tx:  # proves the file is writable (and locks work)
            await tx.execute("CREATE TEMP TABLE IF NOT EXISTS health_probe (x INTEGER)")
            await tx.execute("INSERT INTO health_probe (x) VALUES (1)")
        applied = await db.fetchone("SELECT COUNT(*) AS n FROM _yoyo_migration")
    finally:
        await db.close()
    return CheckResult("database", True,
                       f"{settings.database_shown} is writable and migrated "
                       f"({applied['n'] if applied else 0} migrations, {time.monotonic() - started:.2f} s)")


def _ffmpeg(settings: Settings) -> CheckResult:
    found = find_ffmpeg(settings.ffmpeg_path)
    if found:
        return CheckResult("ffmpeg", True, f"found at {found}")
    return CheckResult("ffmpeg", False, f"not found (FFMPEG_PATH={settings.ffmpeg_path}): videos over "
                       "a server's upload limit would be posted as links")
