"""CallStats: what /admin status reports about EvoLink's answers over the last hour."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.clock import ScaledClock
from bot.evolink import EvoLinkClient, EvoLinkConnectionError, RateLimited, ServerError
from bot.evolink.fake import FakeEvoLink
from bot.evolink.stats import CallStats, CallSummary

API_KEY = "sk-test-stats-0123456789"


@pytest.fixture
def still_clock() -> ScaledClock:
    """Time that only moves when the test says so (advance); a millionth of real speed otherwise."""
    return ScaledClock(speed=1e-6)


def test_no_calls_means_no_errors(still_clock):
    stats = CallStats(still_clock)
    assert stats.summary() == CallSummary(calls=0, errors=0, rate_limited=0)
    assert stats.error_rate == 0.0


def test_error_rate_and_rate_limits_are_counted(still_clock):
    stats = CallStats(still_clock)
    for _ in range(3):
        stats.record(ok=True)
    stats.record(ok=False)
    stats.record(ok=False, rate_limited=True)
    assert stats.summary() == CallSummary(calls=5, errors=2, rate_limited=1)
    assert stats.error_rate == pytest.approx(0.4)
    assert stats.summary().error_rate == pytest.approx(0.4)


def test_calls_older_than_the_window_are_forgotten(still_clock):
    stats = CallStats(still_clock, window_seconds=3600)
    stats.record(ok=False, rate_limited=True)
    still_clock.advance(3000)
    stats.record(ok=True)
    stats.record(ok=False)
    assert stats.summary() == CallSummary(calls=3, errors=2, rate_limited=1)

    still_clock.advance(700)  # the first call is now 3700 s old, the others 700 s
    assert stats.summary() == CallSummary(calls=2, errors=1, rate_limited=0)
    assert stats.error_rate == pytest.approx(0.5)

    still_clock.advance(3600)
    assert stats.summary() == CallSummary(calls=0, errors=0, rate_limited=0)
    assert stats.error_rate == 0.0


def test_memory_stays_bounded_however_many_calls(still_clock):
    stats = CallStats(still_clock, window_seconds=60)
    for _ in range(600):
        for _ in range(50):
            stats.record(ok=True)
        still_clock.advance(1)
    # The last minute's calls, to the second (calls are counted in one-second buckets).
    assert 59 * 50 <= stats.summary().calls <= 60 * 50
    assert len(stats._buckets) <= 61  # one per second of the window, not one per call


# -- the client records every call -----------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeEvoLink]:
    server = FakeEvoLink(clock=ScaledClock(300.0), api_key=API_KEY)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(session: aiohttp.ClientSession, base_url: str, stats: CallStats) -> EvoLinkClient:
    return EvoLinkClient(session, api_key=API_KEY, base_url=base_url, files_base_url=base_url,
                         timeout=aiohttp.ClientTimeout(total=5, connect=2), stats=stats)


async def test_the_client_records_ok_and_failed_calls(fake, session, still_clock):
    stats = CallStats(still_clock)
    client = make_client(session, fake.base_url, stats)

    await client.get_balance()
    assert stats.summary() == CallSummary(calls=1, errors=0, rate_limited=0)

    fake.fail_next("/v1/credits", 500, "internal_error")
    with pytest.raises(ServerError):
        await client.get_balance()
    assert stats.summary() == CallSummary(calls=2, errors=1, rate_limited=0)

    fake.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", retry_after="3")
    with pytest.raises(RateLimited):
        await client.get_task("task-unknown")
    assert stats.summary() == CallSummary(calls=3, errors=2, rate_limited=1)
    assert stats.error_rate == pytest.approx(2 / 3)


async def test_a_connection_error_is_a_failed_call(session, still_clock):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stats = CallStats(still_clock)
    client = make_client(session, f"http://127.0.0.1:{port}", stats)
    with pytest.raises(EvoLinkConnectionError):
        await client.get_balance()
    assert stats.summary() == CallSummary(calls=1, errors=1, rate_limited=0)
