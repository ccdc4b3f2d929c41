"""The figures /metrics shows, as a Prometheus scrape reads them (prometheus_client's parser): each
bot's own, with bounded labels, and credits counted only once their transaction has committed."""

from __future__ import annotations

import logging

import pytest

from bot.credits import CreditLedger, to_milli
from bot.jobs.store import JobAlreadyFinished, JobKind, JobStore
from bot.metrics import Metrics
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from tests.prometheus_text import Scrape

GUILD, USER = 1001, 42


def scrape(metrics: Metrics, accept: str | None = None) -> Scrape:
    body, _ = metrics.render(accept)
    return Scrape.parse(body.decode())


def test_a_scrape_shows_every_figure_by_its_labels():
    metrics = Metrics()
    metrics.evolink_call("create_image", "ok", 0.3)
    metrics.evolink_call("get_task", "ok", 0.04)
    metrics.evolink_call("get_task", "rate_limited", 0.02)
    metrics.evolink_call("get_task", "error", 7.0)
    metrics.discord_request("POST", 204)
    metrics.discord_request("patch", 200)
    metrics.discord_request("PATCH", 429, "user")
    metrics.credits_reserved(4)
    metrics.credits_settled(3)
    metrics.credits_refunded(0.5)
    metrics.job_finished(JobKind.IMAGE, "done")
    metrics.job_finished(JobKind.VIDEO, "failed")
    metrics.lease_taken_over()
    metrics.set_shards_connected(2)
    metrics.set_unfinished_jobs({("image", "running"): 3, ("video", "queued"): 1})

    figures = scrape(metrics)
    assert figures.series("wanbot_evolink_calls_total") == {
        frozenset({("endpoint", "create_image"), ("outcome", "ok")}): 1,
        frozenset({("endpoint", "get_task"), ("outcome", "ok")}): 1,
        frozenset({("endpoint", "get_task"), ("outcome", "rate_limited")}): 1,
        frozenset({("endpoint", "get_task"), ("outcome", "error")}): 1,
    }
    # Latency: a histogram per route (0.04 and 0.02 under 0.05 s, 7 s in the 10 s bucket).
    assert figures.value("wanbot_evolink_call_duration_seconds_count", endpoint="get_task") == 3
    assert figures.value("wanbot_evolink_call_duration_seconds_bucket", endpoint="get_task", le="0.05") == 2
    assert figures.value("wanbot_evolink_call_duration_seconds_bucket", endpoint="get_task", le="5.0") == 2
    assert figures.value("wanbot_evolink_call_duration_seconds_bucket", endpoint="get_task", le="10.0") == 3
    assert figures.value("wanbot_evolink_call_duration_seconds_sum", endpoint="get_task") == pytest.approx(7.06)
    assert figures.series("wanbot_discord_requests_total") == {
        frozenset({("method", "POST"), ("status", "204")}): 1,
        frozenset({("method", "PATCH"), ("status", "200")}): 1,
        frozenset({("method", "PATCH"), ("status", "429")}): 1,
    }
    assert figures.series("wanbot_discord_rate_limited_total") == {frozenset({("scope", "user")}): 1}
    assert figures.value("wanbot_credits_reserved_total") == 4
    assert figures.value("wanbot_credits_settled_total") == 3
    assert figures.value("wanbot_credits_refunded_total") == 0.5
    assert figures.series("wanbot_jobs_finished_total") == {
        frozenset({("kind", "image"), ("outcome", "done")}): 1,
        frozenset({("kind", "video"), ("outcome", "failed")}): 1,
    }
    assert figures.value("wanbot_lease_takeovers_total") == 1
    assert figures.value("wanbot_shards_connected") == 2
    assert figures.value("wanbot_jobs", kind="image", state="running") == 3
    assert figures.value("wanbot_jobs", kind="video", state="queued") == 1


def test_the_format_follows_what_the_scraper_accepts():
    metrics = Metrics()
    metrics.lease_taken_over()
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b"wanbot_lease_takeovers_total 1.0" in body
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_a_fresh_bot_shows_zero_for_its_plain_counters_and_lease_takeovers():
    figures = scrape(Metrics())
    for name in ("wanbot_credits_reserved_total", "wanbot_credits_settled_total",
                 "wanbot_credits_refunded_total", "wanbot_lease_takeovers_total", "wanbot_shards_connected"):
        assert figures.value(name) == 0, name


def test_each_bot_counts_only_its_own():
    first, second = Metrics(), Metrics()
    first.discord_request("GET", 200)
    first.credits_reserved(2)
    second.lease_taken_over()
    assert scrape(first).value("wanbot_discord_requests_total", method="GET", status="200") == 1
    assert scrape(second).series("wanbot_discord_requests_total") == {}
    assert (scrape(first).value("wanbot_lease_takeovers_total"),
            scrape(second).value("wanbot_lease_takeovers_total")) == (0, 1)
    assert scrape(second).value("wanbot_credits_reserved_total") == 0


def test_labels_stay_few_whatever_the_request():
    metrics = Metrics()
    metrics.discord_request("PROPFIND", 200)
    metrics.discord_request("GET", None)  # no answer: the connection failed
    metrics.discord_request("POST", 429, "Something-New")
    metrics.discord_request("POST", 429, None)  # a 429 without Discord's scope header (a proxy's)
    metrics.discord_request("POST", 429, "GLOBAL")
    figures = scrape(metrics)
    assert figures.value("wanbot_discord_requests_total", method="OTHER", status="200") == 1
    assert figures.value("wanbot_discord_requests_total", method="GET", status="error") == 1
    assert figures.series("wanbot_discord_rate_limited_total") == {
        frozenset({("scope", "unknown")}): 2, frozenset({("scope", "global")}): 1,
    }


def test_a_kind_and_state_with_no_job_left_drops_to_zero():
    metrics = Metrics()
    metrics.set_unfinished_jobs({("image", "running"): 2, ("video", "queued"): 1})
    metrics.set_unfinished_jobs({("video", "queued"): 4})
    figures = scrape(metrics)
    assert figures.series("wanbot_jobs") == {
        frozenset({("kind", "image"), ("state", "running")}): 0,
        frozenset({("kind", "video"), ("state", "queued")}): 4,
    }


# -- credits, on both stores: told once committed, never for a write that was rolled back --------


@pytest.fixture
def store(db, clock):
    return JobStore(db, clock)


@pytest.fixture
def metrics():
    return Metrics()


@pytest.fixture
def ledger(db, clock, metrics):
    quotas = QuotaStore(db, clock, QuotaDefaults(to_milli(20), Period.DAY, 1000))
    return CreditLedger(db, clock, quotas, observer=metrics)


async def new_job(db, store, kind=JobKind.IMAGE) -> int:
    async with db.transaction() as tx:
        return await store.create(tx, kind=kind, guild_id=GUILD, channel_id=5, user_id=USER,
                                  interaction_id=None, request={})


async def test_credits_reserved_settled_and_refunded_are_counted_once_committed(db, store, ledger, metrics):
    settled_job, refunded_job = await new_job(db, store), await new_job(db, store, JobKind.VIDEO)
    async with db.transaction() as tx:
        await ledger.reserve(tx, guild_id=GUILD, user_id=USER, job_id=settled_job, amount=to_milli(8))
        await ledger.reserve(tx, guild_id=GUILD, user_id=USER, job_id=refunded_job, amount=to_milli(2.5))
        assert scrape(metrics).value("wanbot_credits_reserved_total") == 0, "not committed yet"
    assert scrape(metrics).value("wanbot_credits_reserved_total") == 10.5

    async with db.transaction() as tx:
        await ledger.settle(tx, job_id=settled_job, amount=to_milli(6))  # 3 of the 4 images
        kind = await store.mark_failed(tx, refunded_job, code="content_policy_violation", message="no")
        await ledger.refund(tx, job_id=refunded_job, reason="content_policy_violation")
    assert kind is JobKind.VIDEO
    figures = scrape(metrics)
    assert (figures.value("wanbot_credits_settled_total"), figures.value("wanbot_credits_refunded_total")) == (6, 2.5)

    # Closing a job twice moves nothing, so it counts nothing.
    async with db.transaction() as tx:
        assert await ledger.settle(tx, job_id=settled_job, amount=to_milli(6)) is None
        assert await ledger.refund(tx, job_id=refunded_job, reason="again") is None
    with pytest.raises(JobAlreadyFinished):
        async with db.transaction() as tx:
            await store.mark_failed(tx, refunded_job, code="again", message="again")
    figures = scrape(metrics)
    assert (figures.value("wanbot_credits_reserved_total"), figures.value("wanbot_credits_settled_total"),
            figures.value("wanbot_credits_refunded_total")) == (10.5, 6, 2.5)


async def test_a_rolled_back_reservation_is_never_counted(db, store, ledger, metrics):
    job = await new_job(db, store)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await ledger.reserve(tx, guild_id=GUILD, user_id=USER, job_id=job, amount=to_milli(4))
            raise RuntimeError("the command failed before its answer")
    assert (await ledger.balance(GUILD, USER)).held == 0
    assert scrape(metrics).value("wanbot_credits_reserved_total") == 0

    # The next transaction starts with nothing left over from the rolled-back one.
    async with db.transaction() as tx:
        await ledger.reserve(tx, guild_id=GUILD, user_id=USER, job_id=job, amount=to_milli(4))
    assert scrape(metrics).value("wanbot_credits_reserved_total") == 4


async def test_an_action_after_a_commit_that_fails_is_logged_and_the_commit_stands(db, store, caplog):
    job = await new_job(db, store)
    told: list[str] = []

    def broken() -> None:
        raise ValueError("observer bug")

    with caplog.at_level(logging.ERROR, logger="bot.db.engine"):
        async with db.transaction() as tx:
            await tx.execute("UPDATE jobs SET channel_id = 6 WHERE id = :id", {"id": job})
            tx.after_commit(broken)
            tx.after_commit(lambda: told.append("second"))
    assert told == ["second"]  # the later action still ran
    assert (await store.get(job)).channel_id == 6
    assert any("after a commit failed" in r.getMessage() for r in caplog.records)
