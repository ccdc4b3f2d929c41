"""/metrics as Prometheus scrapes it: the real bot serves its figures over HTTP on its web server,
after real jobs against the fake Discord and the fake EvoLink."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import aiohttp

from tests.integration.conftest import (
    BOT_TOKEN,
    CHANNEL_ID,
    EVOLINK_KEY,
    GUILD_ID,
    USER_ID,
    Harness,
)
from tests.prometheus_text import Scrape

UNFINISHED_STATES = ("queued", "submitting", "running", "downloading", "delivering")


async def get_metrics(harness: Harness) -> tuple[str, Scrape]:
    """GET /metrics from the bot's web server, as Prometheus would; returns the Content-Type and
    the parsed samples."""
    url = f"http://127.0.0.1:{harness.bot.services.web.port}/metrics"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200
        return response.headers["Content-Type"], Scrape.parse(await response.text())


async def scrape_until(harness: Harness, ready: Callable[[Scrape], bool], timeout: float = 15.0) -> Scrape:
    """Scrape until the figures show what `ready` waits for (a job is counted just after its
    final write commits, which is a moment after its member sees it end)."""
    async with asyncio.timeout(timeout):
        while True:
            _, figures = await get_metrics(harness)
            if ready(figures):
                return figures
            await asyncio.sleep(0.05)


def finished(kind: str, outcome: str) -> Callable[[Scrape], bool]:
    return lambda figures: figures.value("wanbot_jobs_finished_total", kind=kind, outcome=outcome) == 1


def discord_requests_seen_by_the_fake(harness: Harness) -> dict[frozenset[tuple[str, str]], float]:
    """Every REST request the fake Discord answered, by method and status (its CDN is not REST)."""
    counts = Counter((r.method, str(r.status)) for r in harness.discord.requests
                     if not r.path.startswith("/attachments/"))
    return {frozenset({("method", method), ("status", status)}): count
            for (method, status), count in counts.items()}


async def test_an_imagine_shows_as_a_finished_job_its_calls_and_its_credits(harness):
    await asyncio.wait_for(harness.bot.wait_until_ready(), 30)
    # One 429 from Discord on the first progress edit (discord.py waits and sends it again), and
    # one from EvoLink on a poll.
    harness.discord.fail_next("PATCH", r"/messages/@original$", 429, None, headers={"X-RateLimit-Scope": "user"})
    harness.evolink.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", retry_after="1")
    hold = harness.evolink.hold_results()
    interaction = await harness.command("imagine", prompt="a fox counted by Prometheus", n=2)

    # While its results download, the job shows as one image job downloading.
    await asyncio.wait_for(hold.arrived.wait(), 30)
    content_type, during = await get_metrics(harness)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert during.series("wanbot_jobs") == {
        frozenset({("kind", kind), ("state", state)}): 1 if (kind, state) == ("image", "downloading") else 0
        for kind in ("image", "edit", "video") for state in UNFINISHED_STATES
    }
    assert during.value("wanbot_shards_connected") == 1
    hold.release()

    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 2, timeout=30)
    assert "**✅ Done**" in final.text
    await harness.settled_balance()
    figures = await scrape_until(harness, finished("image", "done"))

    assert figures.series("wanbot_jobs_finished_total") == {frozenset({("kind", "image"), ("outcome", "done")}): 1}
    assert all(count == 0 for count in figures.series("wanbot_jobs").values())
    # EvoLink: the one create, the polls (one refused with 429), each with its latency.
    polls = [r for r in harness.evolink.requests if r.method == "GET" and r.path.startswith("/v1/tasks/")]
    assert figures.value("wanbot_evolink_calls_total", endpoint="create_image", outcome="ok") == 1
    assert figures.value("wanbot_evolink_calls_total", endpoint="get_task", outcome="rate_limited") == 1
    assert figures.value("wanbot_evolink_calls_total", endpoint="get_task", outcome="ok") == len(polls) - 1 >= 1
    assert figures.value("wanbot_evolink_call_duration_seconds_count", endpoint="create_image") == 1
    assert figures.value("wanbot_evolink_call_duration_seconds_count", endpoint="get_task") == len(polls)
    # Discord: every REST request the fake answered, by method and status, the 429 among them.
    assert figures.series("wanbot_discord_requests_total") == discord_requests_seen_by_the_fake(harness)
    assert figures.value("wanbot_discord_requests_total", method="PATCH", status="429") == 1
    assert figures.value("wanbot_discord_requests_total", method="POST", status="200") == 1  # the deferral
    assert figures.series("wanbot_discord_rate_limited_total") == {frozenset({("scope", "user")}): 1}
    # Credits: 2 per image, reserved and then charged in full.
    assert figures.value("wanbot_credits_reserved_total") == 4
    assert figures.value("wanbot_credits_settled_total") == 4
    assert figures.value("wanbot_credits_refunded_total") == 0
    assert figures.value("wanbot_lease_takeovers_total") == 0

    # Nothing secret or personal: no token or key anywhere, no id or address in a label.
    token = harness.record(interaction).token
    for secret in (token, EVOLINK_KEY, BOT_TOKEN):
        assert secret not in figures.text
    for label in figures.label_values():
        assert not any(str(private) in label for private in (GUILD_ID, CHANNEL_ID, USER_ID, interaction))
        assert "/" not in label and token not in label


async def test_a_failed_job_shows_as_failed_with_its_refund(harness):
    await asyncio.wait_for(harness.bot.wait_until_ready(), 30)
    harness.evolink.fail_next("/v1/images/generations", 502, "internal_error", "bad gateway")
    interaction = await harness.command("imagine", prompt="a lost fox", n=2)
    final = await harness.wait_for_original(interaction, lambda m: "Failed" in m.text)
    assert "4 credits given back" in final.text

    figures = await scrape_until(harness, finished("image", "failed"))
    assert figures.series("wanbot_jobs_finished_total") == {
        frozenset({("kind", "image"), ("outcome", "failed")}): 1}
    assert figures.series("wanbot_evolink_calls_total") == {
        frozenset({("endpoint", "create_image"), ("outcome", "error")}): 1}
    assert figures.value("wanbot_credits_reserved_total") == 4
    assert figures.value("wanbot_credits_refunded_total") == 4
    assert figures.value("wanbot_credits_settled_total") == 0
    assert all(count == 0 for count in figures.series("wanbot_jobs").values())
