"""The process's Prometheus metrics (served at /metrics): EvoLink calls, Discord REST requests,
credits, jobs, shards and lease takeovers, in a registry of their own.

Each Metrics owns its CollectorRegistry, never prometheus_client's global one: several bots run in
one Python process in the tests, and each must count only its own. The core modules never import
this one (its layer in pyproject.toml's contract is the Discord side's): they take small observers
(a ledger's, a job runner's, an EvoLink client's), which a Metrics happens to satisfy, so nothing
below the Discord side depends on Prometheus.

Labels are few and bounded: route names, HTTP methods and statuses, job kinds and states. Never a
URL, a path (interaction tokens live in Discord's), a guild or a member: servers must not see each
other's figures here, and every label value becomes a series Prometheus keeps.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

# EvoLink answers a JSON call in well under a second; an upload of ~10 MB may take a minute or two.
EVOLINK_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# What Discord's X-RateLimit-Scope says a 429 is about; anything else (a Cloudflare block has no
# such header) is "unknown".
RATE_LIMIT_SCOPES = frozenset({"user", "global", "shared"})


class Metrics:
    """The counters and gauges of one bot process, and their text for a scrape (`render`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.evolink_calls = Counter(
            "wanbot_evolink_calls", "EvoLink API calls (each attempt of a retried one), by route and outcome.",
            ["endpoint", "outcome"], registry=registry)
        self.evolink_call_seconds = Histogram(
            "wanbot_evolink_call_duration_seconds", "How long EvoLink API calls took, by route.",
            ["endpoint"], buckets=EVOLINK_SECONDS_BUCKETS, registry=registry)
        self.discord_requests = Counter(
            "wanbot_discord_requests", "Discord REST requests (interaction answers included), by method and "
            "status; status \"error\" when no answer came.", ["method", "status"], registry=registry)
        self.discord_rate_limited = Counter(
            "wanbot_discord_rate_limited", "Discord REST requests answered 429, by the scope Discord gave.",
            ["scope"], registry=registry)
        self.reserved_credits = Counter(
            "wanbot_credits_reserved", "Credits reserved for jobs when they were accepted.", registry=registry)
        self.settled_credits = Counter(
            "wanbot_credits_settled", "Credits charged for finished jobs.", registry=registry)
        self.refunded_credits = Counter(
            "wanbot_credits_refunded", "Credits given back for failed jobs.", registry=registry)
        self.jobs = Gauge(
            "wanbot_jobs", "Unfinished jobs of the whole bot (every process), by kind and state, read from "
            "the database at each scrape.", ["kind", "state"], registry=registry)
        self.jobs_finished = Counter(
            "wanbot_jobs_finished", "Jobs this process finished, by kind and outcome (done or failed).",
            ["kind", "outcome"], registry=registry)
        # Counted by the lease code through lease_taken_over().
        self.lease_takeovers = Counter(
            "wanbot_lease_takeovers", "Jobs this process took over from another whose lease had expired.",
            registry=registry)
        self.shards_connected = Gauge(
            "wanbot_shards_connected", "Gateway shards of this process connected now.", registry=registry)
        self._job_series: set[tuple[str, str]] = set()

    # -- what the rest of the bot tells ------------------------------------------------------------

    def evolink_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One EvoLink call: its route's short name (`create_image`, `get_task`...), `ok`, `error` or
        `rate_limited`, and how long it took."""
        self.evolink_calls.labels(endpoint=endpoint, outcome=outcome).inc()
        self.evolink_call_seconds.labels(endpoint=endpoint).observe(seconds)

    def discord_request(self, method: str, status: int | None, rate_limit_scope: str | None = None) -> None:
        """One Discord REST request and its answer's status (None: no answer came)."""
        method = method.upper() if method.upper() in HTTP_METHODS else "OTHER"
        self.discord_requests.labels(method=method, status="error" if status is None else str(status)).inc()
        if status == 429:
            scope = (rate_limit_scope or "").lower()
            self.discord_rate_limited.labels(scope=scope if scope in RATE_LIMIT_SCOPES else "unknown").inc()

    # Credits (not milli-credits), told once the transaction that moved them has committed.
    def credits_reserved(self, credits: float) -> None:
        self.reserved_credits.inc(credits)

    def credits_settled(self, credits: float) -> None:
        self.settled_credits.inc(credits)

    def credits_refunded(self, credits: float) -> None:
        self.refunded_credits.inc(credits)

    def job_finished(self, kind: str, outcome: str) -> None:
        self.jobs_finished.labels(kind=kind, outcome=outcome).inc()

    def lease_taken_over(self) -> None:
        """This process took over a job whose lease another process let expire."""
        self.lease_takeovers.inc()

    # -- what a scrape reads first ---------------------------------------------------------------------

    def set_unfinished_jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """The unfinished jobs by (kind, state), as just counted; a series seen before and absent
        now drops to 0 rather than keeping its last count."""
        for kind, state in self._job_series - set(counts):
            self.jobs.labels(kind=kind, state=state).set(0)
        for (kind, state), count in counts.items():
            self.jobs.labels(kind=kind, state=state).set(count)
        self._job_series |= set(counts)

    def set_shards_connected(self, count: int) -> None:
        self.shards_connected.set(count)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric, and the Content-Type to serve it with, in the format the scraper's Accept
        header asks for (prometheus_client chooses: Prometheus' text format unless OpenMetrics
        is asked for)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


__all__ = ["Metrics"]
