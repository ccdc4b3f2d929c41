"""`python -m bot check`, run as an operator would, against the fakes: one line per check, a
clear verdict, a non-zero exit on any failure, and no secret in the output."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.evolink.fake import FakeEvoLink
from tests.fakes.discord import FakeDiscord

REPO = Path(__file__).resolve().parents[2]
EVOLINK_KEY = "evo-check-key-123"


async def run_check(tmp_path: Path, **env_overrides: str) -> tuple[int, str, str]:
    """Exit status, the verdict lines (stdout) and the log (stderr)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY")}
    env.update(PYTHONPATH=str(REPO), **env_overrides)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "check", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    output, log = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode(), log.decode()


async def test_check_passes_when_everything_is_in_place_and_fails_clearly_otherwise(tmp_path):
    fake_discord, fake_evolink = FakeDiscord(), FakeEvoLink(api_key=EVOLINK_KEY)
    await fake_discord.start()
    evolink_url = await fake_evolink.start()
    base = dict(DISCORD_TOKEN="check-bot-token", EVOLINK_API_KEY=EVOLINK_KEY,
                DISCORD_API_BASE_URL=fake_discord.api_base, EVOLINK_BASE_URL=evolink_url,
                EVOLINK_FILES_BASE_URL=evolink_url, DATABASE_PATH=str(tmp_path / "data" / "bot.db"),
                FFMPEG_PATH=sys.executable)  # any executable stands in: only presence is checked
    try:
        code, output, _ = await run_check(tmp_path, **base)
        lines = output.strip().splitlines()
        assert code == 0, output
        assert [line.split(":")[0] for line in lines] == [
            "[  ok] settings", "[  ok] Discord token", "[  ok] EvoLink key", "[  ok] database", "[  ok] ffmpeg",
            "[  ok] spending limits"]
        # What the operator's account is exposed to with no configuration, and the settings to change it.
        assert lines[5] == (
            "[  ok] spending limits: by default each member may spend 40 credits a day in each server "
            "(moderators may raise it to at most 200); each server at most 1000 a day; the whole bot at most "
            "2000 a day (MAX_MEMBER_CREDITS_PER_DAY, MAX_SERVER_CREDITS_PER_DAY, BOT_DAILY_BUDGET)")
        assert "logged in as" in lines[1] and "10000 credits left" in lines[2]
        migrations = len(list((Path(__file__).parents[2] / "bot" / "migrations").glob("0*.py")))
        assert f"is writable and migrated ({migrations} migrations" in lines[3]

        wrong = {**base, "DISCORD_TOKEN": "wrong-bot-token", "EVOLINK_API_KEY": "also-wrong",
                 "FFMPEG_PATH": "/nonexistent/ffmpeg"}
        fake_discord.valid_token = "check-bot-token"
        code, output, log = await run_check(tmp_path, **wrong)
        assert code == 1, output
        assert "[FAIL] Discord token: refused: the token is wrong or was reset" in output
        assert "[  ok] database" in output  # each check reports on its own
        assert "[FAIL] EvoLink key: refused or unreachable (HTTP 401 unauthorized" in output
        assert "[FAIL] ffmpeg: not found (FFMPEG_PATH=/nonexistent/ffmpeg)" in output
        for secret in ("also-wrong", "wrong-bot-token"):
            assert secret not in output and secret not in log
    finally:
        await fake_discord.close()
        await fake_evolink.close()
