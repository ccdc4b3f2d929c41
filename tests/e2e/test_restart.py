"""The bot killed with SIGKILL in the middle of a paid video job, then started again.

The fakes run in this test's process and outlive the bot: the bot is `python -m bot run` in a
subprocess, pointed at them by its settings, exactly as an operator would start it. Whatever
moment the kill hits (generation under way, download under way, upload already applied by Discord
but not yet acknowledged), the restarted bot must deliver the video once and charge once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.evolink.fake import FakeEvoLink
from tests.e2e.processes import REPO, BotProcess
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild, slash_command_payload

BOT_TOKEN = "MTIz.restart-test-bot-token.xyz"
EVOLINK_KEY = "sk-restart-test-evolink-key"
GUILD_ID, CHANNEL_ID, USER_ID = 8300, 8301, 5005
FIVE_SECOND_720P = 25_500  # milli-credits: 5 s x 5.1 credits


def _identifies(fake: FakeDiscord) -> int:
    return sum(1 for message in fake.gateway_received if message.get("op") == 2)


def _query(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    # Another process's WAL database, read without taking part in its writes.
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as connection:
        return connection.execute(sql, params).fetchall()


async def _wait_for_state(db_path: Path, job_id: int, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        if db_path.exists():
            # In a thread: a read that waits on the bot's lock must not stall the fakes' loop.
            rows = await asyncio.to_thread(_query, db_path, "SELECT state FROM jobs WHERE id = ?", (job_id,))
            seen = rows[0][0] if rows else None
            if seen == state:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state!r} (last seen {seen!r})")


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


class Rig:
    """The fakes (in this process, outliving every bot run) and the settings that point the bot
    at them; each `start_bot` is a new process on the same database."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db_path = tmp_path / "bot.db"
        self.evolink = FakeEvoLink(api_key=EVOLINK_KEY, video_seconds=4, video_estimate=4)
        self.discord = FakeDiscord(guilds=[FakeGuild(id=GUILD_ID, channels=[FakeChannel(CHANNEL_ID)])])
        self.runs: list[BotProcess] = []
        self.interaction: int | None = None

    async def __aenter__(self) -> Rig:
        evolink_url = await self.evolink.start()
        await self.discord.start()
        # Like EvoLink, the fake fetches the first frame from the fake's CDN and checks it.
        self.evolink.input_origins = (self.discord.base_url,)
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY")}
        self.env.update(
            DISCORD_TOKEN=BOT_TOKEN, DISCORD_API_BASE_URL=self.discord.api_base,
            EVOLINK_API_KEY=EVOLINK_KEY, EVOLINK_BASE_URL=evolink_url, EVOLINK_FILES_BASE_URL=evolink_url,
            DATABASE_PATH=str(self.db_path), LOG_LEVEL="DEBUG", PYTHONPATH=str(REPO),
            HTTP_PORT="0",  # any free port: never fight over 8080 with another bot
            DEFAULT_DAILY_CREDITS="100",  # a 5 s 720p video costs 25.5
            DISCORD_MEDIA_BASE_URLS=self.discord.base_url,  # the fake's CDN serves the pictures
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for run in self.runs:
            if run.process.returncode is None:
                await run.kill()
        await self.discord.close()
        await self.evolink.close()

    async def start_bot(self) -> BotProcess:
        run = await BotProcess.start(self.env, self.tmp_path, f"run-{len(self.runs) + 1}")
        self.runs.append(run)
        count = len(self.runs)
        await self.discord.wait_for(lambda fake: _identifies(fake) == count, timeout=30)
        return run

    async def animate(self) -> int:
        picture = self.discord.make_attachment("harbour.png", _png(800, 600))
        payload = slash_command_payload(
            self.discord, name="animate", guild_id=GUILD_ID, channel_id=CHANNEL_ID, user_id=USER_ID,
            options=[{"name": "image", "type": 11, "value": picture["id"]},
                     {"name": "prompt", "type": 3, "value": "boats rocking at dusk"}],
            resolved={"attachments": {picture["id"]: picture}},
        )
        self.interaction = await self.discord.send_interaction(payload)
        return self.interaction

    def creates(self) -> int:
        return sum(1 for r in self.evolink.requests if r.method == "POST" and "/generations" in r.path)

    def ledger(self) -> list[tuple]:
        return _query(self.db_path, "SELECT kind, amount FROM ledger WHERE job_id = 1 ORDER BY id")

    def assert_no_secret_in_logs(self) -> None:
        token = self.discord.interaction_responses[self.interaction].token if self.interaction else None
        for run in self.runs:
            log = run.log()
            for secret in (BOT_TOKEN, EVOLINK_KEY, token):
                assert secret is None or secret not in log, f"a secret reached the {run.log_path.name} log"


@pytest.mark.parametrize("moment", ["running", "downloading", "delivering"])
async def test_a_video_job_killed_mid_way_is_delivered_once_and_charged_once(tmp_path, moment):
    async with Rig(tmp_path) as rig:
        first = await rig.start_bot()
        hold = None
        if moment == "downloading":
            hold = rig.evolink.hold_results()
        elif moment == "delivering":
            # Discord applies the upload, but the bot dies before it hears back.
            hold = rig.discord.hold("PATCH", r"/messages/@original$", only_uploads=True)
        interaction = await rig.animate()
        if hold is not None:
            await asyncio.wait_for(hold.arrived.wait(), timeout=60)
        await _wait_for_state(rig.db_path, 1, moment)

        await first.kill()
        if hold is not None:
            hold.release()  # the dead process's request may now be answered: nobody listens
        requests_before = len(rig.discord.requests)

        second = await rig.start_bot()
        await _wait_for_state(rig.db_path, 1, "done", timeout=90)

        # One message in the whole fake Discord carries a video: the reply, with one MP4.
        fake = rig.discord
        with_videos = [m for m in fake.messages.values()
                       if not m.deleted and any(a.filename.endswith(".mp4") for a in m.attachments)]
        reply_id = fake.interaction_responses[interaction].original_message_id
        assert [m.id for m in with_videos] == [reply_id], fake.summary()
        assert [a.filename for a in with_videos[0].attachments] == ["wan-1-1.mp4"]
        assert "Done" in with_videos[0].text
        # The restarted bot finished the job itself, on the bot token (it never knew the token).
        resumed_edits = [r for r in fake.requests[requests_before:]
                         if r.method == "PATCH" and r.path == f"/channels/{CHANNEL_ID}/messages/{reply_id}"]
        assert resumed_edits and resumed_edits[-1].files

        # EvoLink was asked once; the member reserved once and was charged once.
        assert rig.creates() == 1 and len(rig.evolink.tasks) == 1
        assert rig.ledger() == [("reserve", FIVE_SECOND_720P), ("settle", FIVE_SECOND_720P)]
        assert _query(rig.db_path, "SELECT COUNT(*) FROM credit_holds") == [(0,)]

        assert await second.stop() == 0
        assert f"Resumed 1 unfinished job(s): 1 {moment}" in second.log()
    rig.assert_no_secret_in_logs()


async def test_a_job_killed_while_being_submitted_is_refunded_and_never_sent_twice(tmp_path):
    async with Rig(tmp_path) as rig:
        first = await rig.start_bot()
        # EvoLink takes the task but answers late: the bot dies not knowing it was accepted.
        rig.evolink.stall_next_create(5.0)
        interaction = await rig.animate()
        await _wait_for_state(rig.db_path, 1, "submitting")
        # The create has reached EvoLink (which sits on its answer): the state is written just
        # before the create is sent, so waiting for the state alone could kill before it leaves.
        deadline = time.monotonic() + 30
        while rig.creates() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert rig.creates() == 1
        await first.kill()

        second = await rig.start_bot()
        await _wait_for_state(rig.db_path, 1, "failed")
        reply_id = rig.discord.interaction_responses[interaction].original_message_id
        await rig.discord.wait_for(lambda fake: "Failed" in fake.messages[reply_id].text, timeout=30)
        assert "restarted while sending this job" in rig.discord.messages[reply_id].text
        await asyncio.sleep(1)  # time enough for a (wrong) second create to show up
        assert rig.creates() == 1
        assert rig.ledger() == [("reserve", FIVE_SECOND_720P), ("refund", FIVE_SECOND_720P)]
        assert await second.stop() == 0
    rig.assert_no_secret_in_logs()
