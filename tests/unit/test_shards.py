"""Shards per process: SHARD_COUNT and SHARD_IDS as the operator writes them, the IDENTIFY spacing
per bucket as the pacer decides it, and the shards in the healthcheck's one line."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.__main__ import _health_summary
from bot.clock import Clock
from bot.config import ConfigError, load_settings
from bot.identify_pacing import IDENTIFY_SPACING_SECONDS, IdentifyPacer


def _settings(**values: str):
    return load_settings(None, discord_token="t", evolink_api_key="k", **values)


# -- settings -----------------------------------------------------------------------------------


def test_without_shard_settings_one_process_runs_every_shard():
    settings = _settings()
    assert (settings.shard_count, settings.shard_ids) == (None, ())


def test_shard_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", " 2, 3 ")
    settings = _settings()
    assert (settings.shard_count, settings.shard_ids) == (4, (2, 3))
    # An empty SHARD_IDS (as in a copied .env) means unset: all of SHARD_COUNT's shards here.
    monkeypatch.setenv("SHARD_IDS", "")
    assert (_settings().shard_count, _settings().shard_ids) == (4, ())


@pytest.mark.parametrize(("values", "error"), [
    ({"shard_ids": "0,1"},
     "SHARD_IDS (0,1) is set without SHARD_COUNT: set SHARD_COUNT to the bot's number of shards in all "
     "processes together."),
    ({"shard_count": "2", "shard_ids": "0,2"},
     "SHARD_IDS (0,2) names shard 2, but SHARD_COUNT is 2: shards are numbered 0 to 1."),
    ({"shard_count": "4", "shard_ids": "1,3,1"},
     "SHARD_IDS (1,3,1) names shard 1 twice: each shard once."),
    ({"shard_count": "2", "shard_ids": "0;1"},
     "SHARD_IDS '0;1' is malformed: expected the shard numbers this process runs, separated by commas "
     "(e.g. 0,1)."),
    ({"shard_count": "2", "shard_ids": "-1"},
     "SHARD_IDS '-1' is malformed: expected the shard numbers this process runs, separated by commas "
     "(e.g. 0,1)."),
    ({"shard_count": "0"},
     "SHARD_COUNT '0' is malformed: expected the bot's number of gateway shards in all, 1 or more."),
    ({"shard_count": "two"},
     "SHARD_COUNT 'two' is malformed: expected the bot's number of gateway shards in all, 1 or more."),
])
def test_bad_shard_settings_are_refused_in_one_line_naming_the_rule(values, error):
    with pytest.raises(ConfigError) as bad:
        _settings(**values)
    assert str(bad.value) == error


# -- the pacer's decisions -------------------------------------------------------------------------


class VirtualClock(Clock):
    """Time that moves only when a waiter sleeps: the pacer's decisions, without waiting for them."""

    def __init__(self) -> None:
        self.now_seconds = 0.0

    def monotonic(self) -> float:
        return self.now_seconds

    async def sleep(self, seconds: float) -> None:
        self.now_seconds += max(0.0, seconds)
        await asyncio.sleep(0)


async def _turns(pacer: IdentifyPacer, clock: VirtualClock, shard_ids: list[int]) -> dict[int, float]:
    """Every shard asks at once, as after a reconnect of all; when each was let go."""
    let_go: dict[int, float] = {}

    async def identify(shard_id: int) -> None:
        await pacer.wait_turn(shard_id)
        let_go[shard_id] = clock.monotonic()

    await asyncio.gather(*(identify(shard_id) for shard_id in shard_ids))
    return let_go


async def test_shards_of_one_bucket_identify_at_least_the_spacing_apart_and_other_buckets_do_not_wait():
    clock = VirtualClock()
    pacer = IdentifyPacer(max_concurrency=2, clock=clock)
    let_go = await _turns(pacer, clock, [0, 1, 2, 3, 4])
    # Buckets: 0, 2, 4 share bucket 0; 1, 3 share bucket 1. Each bucket's first goes at once.
    assert let_go[0] == let_go[1] == 0
    for bucket in ([0, 2, 4], [1, 3]):
        times = sorted(let_go[shard] for shard in bucket)
        assert all(later - earlier >= IDENTIFY_SPACING_SECONDS for earlier, later in zip(times, times[1:], strict=False))
    assert IDENTIFY_SPACING_SECONDS >= 5  # Discord's rule, whatever margin is added


async def test_with_max_concurrency_1_every_identify_waits_for_the_one_before():
    clock = VirtualClock()
    pacer = IdentifyPacer(clock=clock)
    let_go = await _turns(pacer, clock, [0, 1, 2])
    assert sorted(let_go.values()) == [0, IDENTIFY_SPACING_SECONDS, 2 * IDENTIFY_SPACING_SECONDS]
    # A shard identifying again much later (a reconnect) does not wait at all.
    clock.now_seconds += 60
    before = clock.monotonic()
    await pacer.wait_turn(1)
    assert clock.monotonic() == before


async def test_the_cross_process_gate_is_awaited_per_identify_after_the_process_own_spacing():
    clock = VirtualClock()
    asked: list[tuple[int, int, float]] = []

    async def gate(bucket: int, max_concurrency: int) -> None:
        asked.append((bucket, max_concurrency, clock.monotonic()))
        await clock.sleep(1.0)  # another process identified in this bucket a moment ago

    pacer = IdentifyPacer(max_concurrency=4, clock=clock, gate=gate)
    let_go = await _turns(pacer, clock, [1, 5])
    # Both in bucket 1: the gate is asked for each, the second time only after this process's spacing.
    assert [(bucket, concurrency) for bucket, concurrency, _ in asked] == [(1, 4), (1, 4)]
    assert asked[1][2] - min(let_go.values()) >= IDENTIFY_SPACING_SECONDS
    assert sorted(let_go.values()) == [1.0, 1.0 + IDENTIFY_SPACING_SECONDS + 1.0]


# -- the healthcheck's line --------------------------------------------------------------------------


def _health(**fields: object) -> bytes:
    return json.dumps({"status": "ok", "discord": "connected", "database": "ok",
                       "jobs": {"queued": 1, "in_flight": 2, "finishing": 0}, "paused": None, **fields}).encode()


def test_the_healthcheck_line_names_this_process_shards_and_any_that_is_down():
    shards = [{"id": shard, "state": "connected", "latency_ms": 40.0} for shard in (0, 1, 2, 3, 8)]
    assert _health_summary(_health(shard_count=16, shards=shards)) == (
        "discord connected (shards 0-3,8 of 16), database ok, 1 queued, 2 in flight, 0 finishing")
    shards[2]["state"] = "disconnected"
    assert _health_summary(_health(discord="disconnected", shard_count=16, shards=shards)) == (
        "discord disconnected (shards 0-3,8 of 16; shard 2 not connected), database ok, 1 queued, "
        "2 in flight, 0 finishing")
    one = [{"id": 1, "state": "connected", "latency_ms": None}]
    assert _health_summary(_health(shard_count=2, shards=one)).startswith("discord connected (shard 1 of 2), ")
    # Before the shard count is known (nothing connected yet), and from a bot without shards.
    assert _health_summary(_health(shard_count=None, shards=[])).startswith("discord connected, database ok")
    assert _health_summary(_health()).startswith("discord connected, database ok")
