"""Discord-like rate limits, enforced when ``FakeDiscord(rate_limits=True)``: the buckets and their
rules, the fixed-window limiter, Discord's X-RateLimit-* headers and its 429 answers."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.discord.base import FakeDiscordBase
from tests.fakes.discord.models import RecordedRequest
from tests.fakes.discord.wire import API_PREFIX, _json

WEBHOOK_BUCKET = "webhook"
CHANNEL_MESSAGES_BUCKET = "channel_messages"
GLOBAL_BUCKET = "global"


@dataclass(frozen=True)
class RateLimitRule:
    """At most ``limit`` requests per fixed window of ``period`` seconds, per bucket key."""

    limit: int
    period: float


# What FakeDiscord(rate_limits=True) enforces; each instance copies it to ``rate_limit_rules``,
# where a test can shrink a window. Fixed windows starting at a bucket's first request, as Discord's.
#
#   bucket            limit        key                 routes
#   webhook           5 per 2 s    interaction token   POST /webhooks/{app_id}/{token},
#                                                      GET|PATCH|DELETE /webhooks/{app_id}/{token}/messages/{id}
#                                                      (docs/discord-facts.md: "about 5 requests per 2 s per token")
#   channel_messages  5 per 5 s    channel id          POST /channels/{id}/messages,
#                                                      PATCH|DELETE /channels/{id}/messages/{mid}
#   global            50 per 1 s   bot token           every request with "Authorization: Bot ...", the
#                                                      channel message routes included (they count twice)
#
# Webhook-token routes do not count against the global limit, and the interaction callback
# (POST /interactions/{id}/{token}/callback) is not limited at all, as on Discord.
RATE_LIMIT_RULES: dict[str, RateLimitRule] = {
    WEBHOOK_BUCKET: RateLimitRule(limit=5, period=2.0),
    CHANNEL_MESSAGES_BUCKET: RateLimitRule(limit=5, period=5.0),
    GLOBAL_BUCKET: RateLimitRule(limit=50, period=1.0),
}

# Route (as RecordedRequest.route) -> its own bucket kind; None: never limited. Routes not listed
# only count against the global bucket, and only when sent with a bot token.
_ROUTE_BUCKETS: dict[str, str | None] = {
    "POST /interactions/{interaction_id}/{token}/callback": None,
    "POST /webhooks/{app_id}/{token}": WEBHOOK_BUCKET,
    "GET /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "PATCH /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "DELETE /webhooks/{app_id}/{token}/messages/{message_id}": WEBHOOK_BUCKET,
    "POST /channels/{channel_id}/messages": CHANNEL_MESSAGES_BUCKET,
    "PATCH /channels/{channel_id}/messages/{message_id}": CHANNEL_MESSAGES_BUCKET,
    "DELETE /channels/{channel_id}/messages/{message_id}": CHANNEL_MESSAGES_BUCKET,
}

# X-RateLimit-Bucket: one stable hash per bucket kind, whatever the key (Discord does the same with
# major parameters); discord.py keys its own buckets by this hash plus the route's major parameters.
_BUCKET_HASHES = {
    kind: hashlib.sha256(f"fake-discord:{kind}".encode()).hexdigest()[:32] for kind in RATE_LIMIT_RULES
}


@dataclass(frozen=True)
class RateLimitHit:
    """A request the fake's rate limiter answered with 429 (``fail_next`` 429s are not these)."""

    route: str  # e.g. "PATCH /webhooks/{app_id}/{token}/messages/{message_id}"
    bucket: str  # the exhausted bucket kind: "webhook", "channel_messages" or "global"
    time: float  # time.monotonic()


@dataclass
class _Window:
    resets_at: float  # time.monotonic() when the window ends
    used: int = 0


@dataclass(frozen=True)
class _Verdict:
    """The limiter's answer: the bucket the headers describe (or that refused the request)."""

    kind: str
    window: _Window
    limit: int
    refused: bool


class _RateLimiter:
    """Fixed-window request counters per (bucket kind, key); O(1) per request (amortised)."""

    _FIRST_SWEEP = 4096  # windows kept before the expired ones are forgotten

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}
        self._sweep_at = self._FIRST_SWEEP

    def admit(self, buckets: list[tuple[str, str]], rules: dict[str, RateLimitRule], now: float) -> _Verdict:
        """Count the request in every bucket, or in none if one of them is exhausted.

        ``buckets`` lists the request's own bucket first: its state goes into the headers.
        """
        windows = [(kind, self._current(kind, key, rules[kind].period, now)) for kind, key in buckets]
        exhausted = [(kind, window) for kind, window in windows if window.used >= rules[kind].limit]
        if exhausted:
            # Discord reports the global limit first: the whole bot waits, not one route.
            kind, window = max(exhausted, key=lambda pair: pair[0] == GLOBAL_BUCKET)
            return _Verdict(kind, window, rules[kind].limit, refused=True)
        for _, window in windows:
            window.used += 1
        kind, window = windows[0]
        return _Verdict(kind, window, rules[kind].limit, refused=False)

    def _current(self, kind: str, key: str, period: float, now: float) -> _Window:
        window = self._windows.get((kind, key))
        if window is None or now >= window.resets_at:
            if len(self._windows) >= self._sweep_at:
                self._forget_expired(now)
            window = _Window(resets_at=now + period)
            self._windows[(kind, key)] = window
        return window

    def _forget_expired(self, now: float) -> None:
        # One scan per doubling of the live windows keeps this O(1) per request on average.
        self._windows = {bucket: w for bucket, w in self._windows.items() if now < w.resets_at}
        self._sweep_at = max(self._FIRST_SWEEP, 2 * len(self._windows))


def _ceil_ms(seconds: float) -> float:
    # Rounded up, like Discord's, so a client that sleeps exactly this long never arrives early.
    return max(math.ceil(seconds * 1000) / 1000, 0.001)


def _rate_limit_headers(verdict: _Verdict, now: float) -> dict[str, str]:
    """Discord's X-RateLimit-* headers; discord.py paces itself from these (http.py Ratelimit.update,
    webhook/async_.py AsyncWebhookAdapter.request)."""
    reset_after = _ceil_ms(verdict.window.resets_at - now)
    remaining = 0 if verdict.refused else max(verdict.limit - verdict.window.used, 0)
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{math.ceil((time.time() + reset_after) * 1000) / 1000:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": _BUCKET_HASHES[verdict.kind],
    }


def _rate_limited_response(verdict: _Verdict, now: float) -> web.Response:
    retry_after = _ceil_ms(verdict.window.resets_at - now)
    is_global = verdict.kind == GLOBAL_BUCKET
    headers = {
        **_rate_limit_headers(verdict, now),
        "Retry-After": str(math.ceil(retry_after)),
        # Without Via discord.py takes a 429 for a Cloudflare ban and raises instead of waiting.
        "Via": "1.1 google",
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    return _json(429, body, headers)


class RateLimits(FakeDiscordBase):
    """Which buckets a request counts in; the middleware answers 429 when one of them is exhausted."""

    # Set up by FakeDiscord.__init__ (server.py).
    rate_limits: bool
    rate_limit_rules: dict[str, RateLimitRule]
    rate_limited: list[RateLimitHit]
    _rate_limiter: _RateLimiter

    def _rate_limit(self, request: web.Request, rec: RecordedRequest) -> _Verdict | None:
        """Count the request in its buckets (see RATE_LIMIT_RULES); None if it is not limited."""
        if not request.path.startswith(API_PREFIX):
            return None
        route_kind = _ROUTE_BUCKETS.get(rec.route, GLOBAL_BUCKET)
        if route_kind is None:
            return None
        buckets: list[tuple[str, str]] = []
        if route_kind == WEBHOOK_BUCKET:
            buckets.append((WEBHOOK_BUCKET, request.match_info["token"]))
        else:
            if route_kind == CHANNEL_MESSAGES_BUCKET:
                buckets.append((CHANNEL_MESSAGES_BUCKET, request.match_info["channel_id"]))
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bot "):
                buckets.append((GLOBAL_BUCKET, auth[4:].strip()))
        if not buckets:
            return None
        return self._rate_limiter.admit(buckets, self.rate_limit_rules, rec.time)
