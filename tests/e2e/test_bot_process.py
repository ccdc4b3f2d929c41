"""The bot as an operator runs it: `python -m bot demo` in its own process, against a fake Discord.

This proves the entry point, the settings, the logging and the shutdown path, not just the
library: a member's /imagine comes back as images, their /edit as their own picture changed (the
demo's fake EvoLink fetches it from Discord's media hosts, here the fake Discord), no secret
reaches the (DEBUG) log, and SIGTERM stops the process cleanly.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from pathlib import Path

from PIL import Image, ImageStat

from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild, slash_command_payload

REPO = Path(__file__).resolve().parents[2]
BOT_TOKEN = "MTIz.process-test-bot-token.xyz"
GUILD_ID, CHANNEL_ID = 8100, 8101


async def test_demo_process_generates_logs_no_secret_and_stops_on_sigterm(tmp_path):
    fake = FakeDiscord(guilds=[FakeGuild(id=GUILD_ID, channels=[FakeChannel(CHANNEL_ID)])])
    await fake.start()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY")}
    env.update(
        DISCORD_TOKEN=BOT_TOKEN,
        DISCORD_API_BASE_URL=fake.api_base,
        DATABASE_PATH=str(tmp_path / "bot.db"),
        LOG_LEVEL="DEBUG",
        PYTHONPATH=str(REPO),
        HTTP_PORT="0",  # any free port: never fight over 8080 with another bot
        DISCORD_MEDIA_BASE_URLS=fake.base_url,  # where the fake Discord serves attachments
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake.wait_until_identified(timeout=30)
        payload = slash_command_payload(
            fake, name="imagine", guild_id=GUILD_ID, channel_id=CHANNEL_ID,
            options=[{"name": "prompt", "type": 3, "value": "a lighthouse at dusk"}],
        )
        interaction = await fake.send_interaction(payload)
        token = fake.interaction_responses[interaction].token

        def delivered(state: FakeDiscord) -> bool:
            message_id = state.interaction_responses[interaction].original_message_id
            return message_id is not None and len(state.messages[message_id].attachments) == 1

        await fake.wait_for(delivered, timeout=60)

        # A member tries /edit on a picture of their own: white on the left, black on the right.
        picture = Image.new("RGB", (800, 600), (0, 0, 0))
        picture.paste((255, 255, 255), (0, 0, 400, 600))
        upload = io.BytesIO()
        picture.save(upload, "PNG")
        attachment = fake.make_attachment("mine.png", upload.getvalue())
        edit = await fake.send_interaction(slash_command_payload(
            fake, name="edit", guild_id=GUILD_ID, channel_id=CHANNEL_ID,
            options=[{"name": "image", "type": 11, "value": attachment["id"]},
                     {"name": "prompt", "type": 3, "value": "the same, at night"}],
            resolved={"attachments": {attachment["id"]: attachment}}))

        def edited(state: FakeDiscord) -> bool:
            message_id = state.interaction_responses[edit].original_message_id
            return message_id is not None and len(state.messages[message_id].attachments) == 1

        await fake.wait_for(edited, timeout=60)
        [result] = fake.messages[fake.interaction_responses[edit].original_message_id].attachments
        with Image.open(io.BytesIO(result.data)) as came_back:
            assert came_back.size == (800, 600)  # the member's picture's shape...
            left = ImageStat.Stat(came_back.convert("L").crop((0, 0, 400, 600))).mean[0]
            right = ImageStat.Stat(came_back.convert("L").crop((400, 0, 800, 600))).mean[0]
        assert left > right + 100  # ...and its own light and dark halves, changed

        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.close()

    log = output.decode()
    assert process.returncode == 0, log[-3000:]
    assert "Demo mode: EvoLink is a local fake" in log
    assert "INTERACTION_CREATE" in log  # discord.py's DEBUG payload log was really on...
    assert "[redacted]" in log          # ...and the token it carried was removed
    for secret in (BOT_TOKEN, token, "demo-key-not-secret"):
        assert secret not in log
