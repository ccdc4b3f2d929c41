"""The bot's web server, over real HTTP: /healthz as Docker sees it, and EvoLink callbacks waking jobs.

The harness bot serves on a free loopback port (HTTP_PORT=0); everything here talks to that port
(or to a second server built from the same services) with a real HTTP client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from bot.app import WanBot
from bot.callbacks import CALLBACK_PATH, CallbackHub, new_callback_token
from bot.db import Database
from bot.web import LINGER_SECONDS, MAX_CALLBACK_BYTES, WebServer
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild
from tests.fakes.ports import free_port
from tests.integration.conftest import BOT_TOKEN, EVOLINK_KEY, Harness, start_harness

REPO = Path(__file__).resolve().parents[2]


def base_url(server: WebServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def get_health(server: WebServer) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as client, client.get(f"{base_url(server)}/healthz") as response:
        text = await response.text()
        return response.status, await response.json(), text


async def post_callback(server: WebServer, token: str, **kwargs: object) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.post(
            f"{base_url(server)}{CALLBACK_PATH}/{token}", **kwargs) as response:
        return response.status, await response.text()


async def ready(harness: Harness) -> Harness:
    """The gateway session is up and every guild arrived: what 'connected' means for /healthz."""
    await asyncio.wait_for(harness.bot.wait_until_ready(), 30)
    return harness


@pytest.fixture
async def callback_harness(tmp_path) -> AsyncIterator[Harness]:
    # Any loopback URL turns callbacks on; the route does not care where EvoLink would be told to post.
    async for running in start_harness(tmp_path, public_base_url="http://127.0.0.1:9"):
        yield running


# -- /healthz ----------------------------------------------------------------------------------


async def test_healthz_reports_a_connected_bot_with_its_job_counts_and_no_secret(harness):
    await ready(harness)
    web = harness.bot.services.web
    status, health, text = await get_health(web)
    assert status == 200
    # One process runs every shard (one here); its latency is the last heartbeat's round trip.
    latency = health["shards"][0]["latency_ms"]
    # On a database shared by processes (PostgreSQL), it also names the jobs it holds a lease on.
    shared = {"leases": {"jobs": [], "taken_over": 0}} if harness.bot.services.db.shared else {}
    assert health == {"status": "ok", "discord": "connected", "database": "ok",
                      "shard_count": 1, "shards": [{"id": 0, "state": "connected", "latency_ms": latency}],
                      "jobs": {"queued": 0, "in_flight": 0, "finishing": 0}, "paused": None, **shared}
    assert isinstance(latency, float) and latency >= 0
    assert BOT_TOKEN not in text and EVOLINK_KEY not in text

    # A job whose result download hangs is counted as finishing while it does.
    hold = harness.evolink.hold_results()
    interaction = await harness.command("imagine", prompt="a lighthouse at dusk")
    await asyncio.wait_for(hold.arrived.wait(), 30)
    status, health, _ = await get_health(web)
    assert (status, health["jobs"]) == (200, {"queued": 0, "in_flight": 0, "finishing": 1})
    if shared:  # the job downloading is this process's, under its lease
        assert health["leases"] == {"jobs": [1], "taken_over": 0}
    hold.release()
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)


async def test_healthz_names_the_pause_but_stays_healthy(harness):
    """An out-of-credits account pauses generations; restarting the container would not help."""
    await ready(harness)
    harness.evolink.starting_credits = Decimal(0)
    await harness.command("imagine", prompt="a heron at dawn")
    await harness.discord.wait_for(lambda fake: harness.bot.services.runner.status().paused is not None)
    status, health, _ = await get_health(harness.bot.services.web)
    assert (status, health["status"], health["paused"]) == (200, "ok", "evolink_out_of_credits")
    assert health["jobs"]["queued"] == 1


async def test_healthz_answers_503_for_a_bot_that_is_not_connected(harness):
    services = harness.bot.services
    never_started = WanBot(harness.settings)
    server = WebServer(bot=never_started, db=services.db, runner=services.runner,
                       callbacks=CallbackHub(None), host="127.0.0.1", port=0)
    await server.start()
    try:
        status, health, _ = await get_health(server)
    finally:
        await server.stop()
    assert status == 503
    assert (health["status"], health["discord"], health["database"]) == ("unhealthy", "disconnected", "ok")


async def test_healthz_answers_503_when_the_database_does_not(harness, tmp_path):
    await ready(harness)
    services = harness.bot.services
    closed = await Database.open(tmp_path / "closed.db")
    await closed.close()
    busy = await Database.open(tmp_path / "busy.db")
    try:
        for db in (closed, busy):
            server = WebServer(bot=harness.bot, db=db, runner=services.runner, callbacks=services.callbacks,
                               host="127.0.0.1", port=0, database_timeout=0.2)
            await server.start()
            try:
                if db is busy:
                    # A transaction that never ends holds the connection: the query cannot run.
                    async with busy.transaction():
                        status, health, _ = await get_health(server)
                else:
                    status, health, _ = await get_health(server)
            finally:
                await server.stop()
            assert status == 503
            assert (health["discord"], health["database"]) == ("connected", "error")
    finally:
        await busy.close()


async def test_the_server_stops_with_the_bot_and_comes_back_with_the_next_one(harness):
    old_port = harness.bot.services.web.port
    await harness.stop_bot()
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(f"http://127.0.0.1:{old_port}/healthz")
    await harness.start_bot()
    await ready(harness)
    status, health, _ = await get_health(harness.bot.services.web)
    assert (status, health["status"]) == (200, "ok")


async def test_other_paths_are_not_found(harness):
    web = harness.bot.services.web
    async with aiohttp.ClientSession() as client:
        for path in ("/", "/health", "/evolink/callbacks/", "/healthz/../etc/passwd"):
            async with client.get(f"{base_url(web)}{path}") as response:
                assert response.status == 404, path


# -- EvoLink callbacks ---------------------------------------------------------------------------


async def test_a_callback_wakes_its_job_and_logs_no_token(callback_harness, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: aiohttp's access log would print the path
    hub = callback_harness.bot.services.callbacks
    web = callback_harness.bot.services.web
    token = new_callback_token()
    woken = hub.event_for(token)

    status, _ = await post_callback(web, token, json={"id": "task-unified-42", "status": "completed"})
    assert status == 204
    assert woken.is_set()
    assert "EvoLink callback: task task-unified-42 says completed" in caplog.text
    assert token not in caplog.text and token[:7] not in caplog.text


async def test_a_malformed_callback_still_wakes_its_job(callback_harness):
    hub = callback_harness.bot.services.callbacks
    token = new_callback_token()
    woken = hub.event_for(token)
    status, _ = await post_callback(callback_harness.bot.services.web, token, data=b"\xff not json {")
    assert status == 204
    assert woken.is_set()


async def test_an_unknown_callback_is_refused_and_wakes_nothing(callback_harness, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: aiohttp's access log would print the path
    hub = callback_harness.bot.services.callbacks
    watched = hub.event_for(new_callback_token())
    made_up = new_callback_token()
    status, text = await post_callback(callback_harness.bot.services.web, made_up,
                                       json={"id": "task-unified-1", "status": "completed"})
    assert (status, text) == (404, '{"error": "unknown callback"}')
    assert not watched.is_set()
    assert made_up not in caplog.text


async def test_an_oversized_callback_is_refused_unread(callback_harness):
    hub = callback_harness.bot.services.callbacks
    token = new_callback_token()
    woken = hub.event_for(token)
    status, _ = await post_callback(callback_harness.bot.services.web, token,
                                    data=b"x" * (MAX_CALLBACK_BYTES + 1))
    assert status == 413
    assert not woken.is_set()


async def test_without_public_base_url_there_is_no_callback_route(harness):
    hub = harness.bot.services.callbacks
    assert not hub.enabled
    token = new_callback_token()
    woken = hub.event_for(token)
    status, _ = await post_callback(harness.bot.services.web, token, json={"status": "completed"})
    assert status == 404
    assert not woken.is_set()


# -- read timeouts --------------------------------------------------------------------------------

# Shortened limits for these tests (the bot's are 10 s each).
HEADER_LIMIT = 2.0
BODY_LIMIT = 1.0
# How late a close may come on a busy 2-core machine, beyond what the limits allow.
SLACK = 4.0


@pytest.fixture
async def strict_server(callback_harness) -> AsyncIterator[WebServer]:
    """A second server on the harness bot's own services (so /healthz is healthy and callbacks wake
    its jobs), with the short limits."""
    await ready(callback_harness)
    services = callback_harness.bot.services
    server = WebServer(bot=callback_harness.bot, db=services.db, runner=services.runner,
                       callbacks=services.callbacks, host="127.0.0.1", port=0,
                       header_timeout=HEADER_LIMIT, body_timeout=BODY_LIMIT)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def until_closed_by_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               trickle: bytes, *, every: float, within: float) -> tuple[bytes, float]:
    """Send `trickle` one byte at a time, `every` seconds apart (starting over when it runs out),
    until the server closes the connection. Returns everything the server sent and the loop time
    of the close; fails if the close has not come `within` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    received = b""
    position = 0
    while loop.time() - started < within:
        try:
            writer.write(trickle[position % len(trickle):][:1])
            position += 1
            chunk = await asyncio.wait_for(reader.read(4096), every)
        except TimeoutError:
            continue
        except ConnectionError:  # reset: the server closed while our bytes were in flight
            break
        if not chunk:
            break
        received += chunk
    else:
        pytest.fail(f"the server kept the connection open for {within} s")
    closed = loop.time()
    writer.close()
    return received, closed


async def test_300_slow_header_connections_are_closed_and_healthz_answers_meanwhile(strict_server):
    """Slowloris: each connection sends its request line and headers one byte at a time and never
    finishes them. The server closes every one after the header limit without answering, while
    /healthz keeps answering everyone else."""
    loop = asyncio.get_running_loop()
    endless_headers = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64
    opened_at, attackers = [], []
    for _ in range(300):
        opened_at.append(loop.time())  # the server's clock for it cannot start before this
        reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
        attackers.append(asyncio.create_task(until_closed_by_peer(
            reader, writer, endless_headers, every=0.25, within=HEADER_LIMIT + SLACK + 5)))
    all_open = loop.time()

    # While all 300 are open and trickling, a health probe is answered at once.
    status, health, _ = await asyncio.wait_for(get_health(strict_server), 2)
    assert (status, health["status"]) == (200, "ok")
    assert not any(task.done() for task in attackers), "a connection was closed before its limit"

    outcomes = await asyncio.gather(*attackers)
    # Nothing was answered (the headers never ended), none was dropped before its limit, and
    # every one was dropped soon after it.
    assert all(received == b"" for received, _ in outcomes)
    held = [closed - opened for (_, closed), opened in zip(outcomes, opened_at, strict=True)]
    assert min(held) >= HEADER_LIMIT - 0.1
    assert max(closed for _, closed in outcomes) - all_open < HEADER_LIMIT + SLACK
    # And the server is still fine afterwards.
    status, _, _ = await get_health(strict_server)
    assert status == 200


async def test_silent_and_idle_kept_alive_connections_are_closed_after_the_header_limit(strict_server):
    loop = asyncio.get_running_loop()
    # A connection that never sends a byte.
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    started = loop.time()
    assert await asyncio.wait_for(reader.read(1), HEADER_LIMIT + SLACK) == b""
    assert loop.time() - started >= HEADER_LIMIT - 0.1
    writer.close()

    # One that was answered and then kept alive without a next request.
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" not in head
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    answered = loop.time()
    assert await asyncio.wait_for(reader.read(1), HEADER_LIMIT + SLACK) == b""
    assert loop.time() - answered >= HEADER_LIMIT - 0.1
    writer.close()


async def test_a_callback_whose_body_trickles_is_answered_408_and_cut_off(strict_server, callback_harness):
    hub = callback_harness.bot.services.callbacks
    token = new_callback_token()
    woken = hub.event_for(token)
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    writer.write(f"POST {CALLBACK_PATH}/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode())
    sent_headers = asyncio.get_running_loop().time()
    received, closed = await until_closed_by_peer(reader, writer, b'{"status": "completed"', every=0.1,
                                                  within=BODY_LIMIT + LINGER_SECONDS + SLACK)
    elapsed = closed - sent_headers
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in received
    assert received.endswith(b'{"error": "request body too slow"}')
    assert BODY_LIMIT - 0.1 <= elapsed < BODY_LIMIT + LINGER_SECONDS + SLACK
    assert not woken.is_set()


async def test_normal_requests_still_work_under_the_short_limits(strict_server, callback_harness):
    status, health, _ = await get_health(strict_server)
    assert (status, health["status"]) == (200, "ok")
    token = new_callback_token()
    woken = callback_harness.bot.services.callbacks.event_for(token)
    status, _ = await post_callback(strict_server, token, json={"id": "task-unified-7", "status": "completed"})
    assert status == 204
    assert woken.is_set()
    # A body that takes a while, but less than the limit, is read in full.
    token = new_callback_token()
    woken = callback_harness.bot.services.callbacks.event_for(token)

    async def slow_but_in_time() -> AsyncIterator[bytes]:
        for part in (b'{"id": "task-unified-8", ', b'"status": "completed"}'):
            yield part
            await asyncio.sleep(BODY_LIMIT / 4)

    status, _ = await post_callback(strict_server, token, data=slow_but_in_time(),
                                    headers={"Content-Type": "application/json"})
    assert status == 204
    assert woken.is_set()


# -- python -m bot healthcheck / run --------------------------------------------------------------


async def run_bot_command(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`python -m bot ...` in its own process, without blocking this loop (which serves the bot)."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY", "HTTP_HOST", "HTTP_PORT")}
    environment.update(PYTHONPATH=str(REPO), **env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=tmp_path, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_healthcheck_command_exits_0_for_a_healthy_bot_without_any_secret(harness, tmp_path):
    await ready(harness)
    code, out, err = await run_bot_command(tmp_path, "healthcheck", HTTP_PORT=str(harness.bot.services.web.port))
    assert (code, err) == (0, "")
    assert out == "healthy: discord connected (shard 0 of 1), database ok, 0 queued, 0 in flight, 0 finishing\n"


async def test_healthcheck_command_exits_1_for_an_unhealthy_bot_or_a_closed_port(harness, tmp_path):
    services = harness.bot.services
    server = WebServer(bot=WanBot(harness.settings), db=services.db, runner=services.runner,
                       callbacks=services.callbacks, host="127.0.0.1", port=0)
    await server.start()
    try:
        code, out, _ = await run_bot_command(tmp_path, "healthcheck", HTTP_PORT=str(server.port))
    finally:
        await server.stop()
    assert code == 1
    assert out.startswith("unhealthy (HTTP 503): discord disconnected, database ok")

    port = free_port()
    code, out, _ = await run_bot_command(tmp_path, "healthcheck", HTTP_PORT=str(port))
    assert code == 1
    assert out.startswith(f"unhealthy: no answer from http://127.0.0.1:{port}/healthz")


async def test_a_taken_port_stops_the_bot_with_one_line_naming_http_port(tmp_path):
    fake = FakeDiscord(guilds=[FakeGuild(id=8200, channels=[FakeChannel(8201)])])
    await fake.start()
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run_bot_command(
            tmp_path, "run", DISCORD_TOKEN=BOT_TOKEN, EVOLINK_API_KEY=EVOLINK_KEY,
            DISCORD_API_BASE_URL=fake.api_base, DATABASE_PATH=str(tmp_path / "bot.db"),
            HTTP_HOST="127.0.0.1", HTTP_PORT=str(port),
        )
    finally:
        taken.close()
        await fake.close()
    assert code == 2
    assert f"Not started: HTTP_PORT {port} (HTTP_HOST 127.0.0.1) cannot be used" in err
    assert "Traceback" not in err
    assert BOT_TOKEN not in err and EVOLINK_KEY not in err


@pytest.fixture
async def self_calling_harness(tmp_path) -> AsyncIterator[Harness]:
    """Callbacks addressed to this bot's own server, as a reverse proxy would forward them."""
    port = free_port()
    async for running in start_harness(tmp_path, http_port=port, public_base_url=f"http://127.0.0.1:{port}"):
        yield running


async def test_evolink_calls_back_to_the_bot_and_the_job_is_delivered(self_calling_harness):
    """The whole path: the job's create carries its callback address on this bot's server, the
    (fake) EvoLink posts the finished task there, the server answers 204, the result is posted."""
    harness = self_calling_harness
    interaction = await harness.command("imagine", prompt="a lighthouse at dusk")
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    assert "Done" in final.text
    [create] = harness.evolink_creates()
    port = harness.bot.services.web.port
    assert create.json["callback_url"].startswith(f"http://127.0.0.1:{port}{CALLBACK_PATH}/")
    # The job's first safety poll is due well after the task ends: it was the callback that woke it.
    await harness.discord.wait_for(lambda _: bool(harness.evolink.callbacks))
    assert [(attempt.status, attempt.answer) for attempt in harness.evolink.callbacks] == [("completed", 204)]
