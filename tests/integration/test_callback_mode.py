"""Callback mode (PUBLIC_BASE_URL set): a callback is only a hint, and polls are the safety net.

The fake EvoLink posts the finished task to the job's callback_url over loopback, as EvoLink does
over HTTPS; the bot's own web server receives it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.ports import free_port
from tests.integration.conftest import Harness, on_store, start_harness


def _task_reads(harness: Harness) -> list:
    return [r for r in harness.evolink.requests if r.method == "GET" and r.path.startswith("/v1/tasks/")]


@pytest.fixture
async def calling_back(tmp_path, database_target) -> AsyncIterator[Harness]:
    port = free_port()
    async for running in start_harness(tmp_path, http_port=port, public_base_url=f"http://127.0.0.1:{port}",
                                       **on_store(database_target)):
        yield running


@pytest.fixture
async def callbacks_lost(tmp_path) -> AsyncIterator[Harness]:
    # EvoLink is told to call a port where nothing listens: every callback attempt fails.
    async for running in start_harness(tmp_path, public_base_url=f"http://127.0.0.1:{free_port()}"):
        yield running


async def test_a_callback_costs_one_read_of_the_task(calling_back):
    harness = calling_back
    interaction = await harness.command("imagine", prompt="a lighthouse at dusk")
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    # No poll before the callback (the safety poll is due at 1.5 estimates); one read after it.
    assert len(_task_reads(harness)) == 1


async def test_a_forged_early_callback_is_checked_and_changes_nothing(calling_back):
    harness = calling_back
    interaction = await harness.command("imagine", prompt="a lighthouse at dusk")
    await harness.discord.wait_for(lambda _: bool(harness.evolink_creates()), timeout=10)
    [create] = harness.evolink_creates()
    async with aiohttp.ClientSession() as client, client.post(
            create.json["callback_url"], json={"status": "completed", "results": ["https://evil.example/x.png"]},
    ) as response:
        assert response.status == 204
    # The bot asked EvoLink, which says the task still runs: nothing is posted yet.
    await harness.discord.wait_for(lambda _: len(_task_reads(harness)) == 1, timeout=10)
    task_id = create_task_id(harness)
    assert harness.evolink.task_state(task_id)[0] in ("pending", "processing")
    assert not harness.original(interaction).attachments
    # The real callback then delivers EvoLink's own result, once.
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    assert "evil.example" not in final.text
    assert len(_task_reads(harness)) == 2


def create_task_id(harness: Harness) -> str:
    [task_id] = harness.evolink.tasks
    return task_id


async def test_without_callbacks_the_safety_poll_still_delivers(callbacks_lost):
    harness = callbacks_lost
    interaction = await harness.command("imagine", prompt="a lighthouse at dusk")
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=60)
    attempts = harness.evolink.callbacks
    assert attempts and all(attempt.answer is None for attempt in attempts)
    assert len(_task_reads(harness)) >= 1
