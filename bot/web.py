"""The bot's small web server: `/healthz` for Docker's HEALTHCHECK, `/metrics` for Prometheus, and
the EvoLink callback endpoint.

Everything it serves is cheap and local: health is read from the gateway state, one trivial
database query and the runner's counters (no Discord or EvoLink request), metrics from the
process's counters and one grouped count of the unfinished jobs, and a callback only sets an event
in the CallbackHub. Callback paths are secret capabilities, so aiohttp's access log is off
(it would print them) and our own log lines show only the first characters of a token.

Strangers can reach it (callbacks come through a published port), so every connection is bounded
in time: its request headers must be complete within a limit (aiohttp's keep-alive timer, which
since 3.14.4 also runs from the moment a connection opens, closes a connection still waiting for
them), a callback's body must arrive within a limit, and a body nobody reads is drained only
briefly before the connection is closed. Open connections are not counted: aiohttp has no cap on
them (TCPSite's backlog only bounds the queue of connections not yet accepted), and these limits
already bound how long each one can be held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from aiohttp import web

from bot.callbacks import CALLBACK_PATH, CallbackHub
from bot.db import Database
from bot.db.events import EventBus
from bot.metrics import Metrics

if TYPE_CHECKING:
    from bot.jobs.runner import JobRunner
    from bot.jobs.store import JobStore

log = logging.getLogger(__name__)

# An EvoLink callback is a task object of a few hundred bytes; anything far larger is not one.
MAX_CALLBACK_BYTES = 64 * 1024
# The event that carries a callback's token to the process watching its job.
CALLBACK_EVENT = "callback"
# Docker's HEALTHCHECK gives the probe 5 s; a database that cannot answer `SELECT 1` in 2 s is unwell.
DATABASE_TIMEOUT_SECONDS = 2.0
# How much of a callback token a log line may show: enough to tell two apart, useless to an attacker.
TOKEN_SHOWN = 6
# A connection whose request line and headers are not complete this long after it opened (or after
# its previous answer, for a kept-alive one) is closed: a slow-header (slowloris) client holds a
# socket for this long at most. A health probe or EvoLink sends its few hundred bytes at once.
HEADER_TIMEOUT_SECONDS = 10.0
# A callback body (at most MAX_CALLBACK_BYTES) not received this long after its headers is answered
# 408 and the connection closed.
BODY_TIMEOUT_SECONDS = 10.0
# After an answer sent before the whole body arrived (413, 408, 404 to a post), the rest is read and
# dropped for at most this long, so an honest client sees the answer rather than a reset.
LINGER_SECONDS = 1.0


class WebServerUnavailable(Exception):
    """The server could not listen where it was told to (the port is taken, the host is not ours)."""

    def __init__(self, host: str, port: int, reason: OSError) -> None:
        # asyncio's bind error repeats the address; the errno's own words are enough.
        self.why = os.strerror(reason.errno).lower() if reason.errno else str(reason)
        super().__init__(f"cannot listen on {host}:{port}: {self.why}")
        self.host = host
        self.port = port


@dataclass(frozen=True)
class ShardHealth:
    id: int
    connected: bool  # its websocket is open
    latency_ms: float | None  # between its last heartbeat and Discord's answer; None before the first


def shard_health(bot: discord.Client) -> tuple[int | None, list[ShardHealth]]:
    """The shard count and this process's shards: the ones it runs (SHARD_IDS, else every shard
    of the count, once the count is known), each connected or not. A shard not launched yet (they
    connect one after another) is not connected."""
    running = getattr(bot, "shards", None)
    if not isinstance(running, dict):
        return None, []  # not a sharded client
    count = getattr(bot, "shard_count", None)
    ids = set(getattr(bot, "shard_ids", None) or (range(count) if count else ())) | set(running)
    shards = []
    for shard_id in sorted(ids):
        info = running.get(shard_id)
        latency = info.latency if info is not None else math.inf
        shards.append(ShardHealth(
            id=shard_id,
            connected=info is not None and not info.is_closed(),
            latency_ms=round(latency * 1000, 1) if math.isfinite(latency) else None,
        ))
    return count, shards


def gateway_connected(bot: discord.Client) -> bool:
    """Whether the bot can receive commands now: ready, not closed, and every shard of this
    process connected (a shard that lost its connection keeps `is_ready()` true while it
    reconnects)."""
    if not bot.is_ready() or bot.is_closed():
        return False
    if isinstance(getattr(bot, "shards", None), dict):
        _, shards = shard_health(bot)
        return bool(shards) and all(shard.connected for shard in shards)
    return True


def redact_token(token: str) -> str:
    return f"{token[:TOKEN_SHOWN]}…"


class WebServer:
    """An aiohttp AppRunner and TCPSite: `await start()`, `await stop()`, and `port` once started."""

    def __init__(
        self,
        *,
        bot: discord.Client,
        db: Database,
        runner: JobRunner,
        callbacks: CallbackHub,
        host: str,
        port: int,
        # Where /metrics counts the unfinished jobs, and (with events) where a callback for a job
        # of another process is looked up.
        store: JobStore | None = None,
        events: EventBus | None = None,
        database_timeout: float = DATABASE_TIMEOUT_SECONDS,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        metrics: Metrics | None = None,  # None: no /metrics
    ) -> None:
        self._bot = bot
        self._metrics = metrics
        self._db = db
        self._runner = runner
        self._callbacks = callbacks
        self._store = store
        self._events = events
        self.host = host
        self._requested_port = port
        self._database_timeout = database_timeout
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._app_runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port really bound (the one asked for, or the one the OS chose for port 0)."""
        if self._app_runner is None or not self._app_runner.addresses:
            raise RuntimeError("the web server is not listening")
        return int(self._app_runner.addresses[0][1])

    @property
    def running(self) -> bool:
        return self._app_runner is not None

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        app.router.add_get("/healthz", self._healthz)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._serve_metrics)
        if self._callbacks.enabled:
            app.router.add_post(f"{CALLBACK_PATH}/{{token}}", self._callback)
        return app

    async def start(self) -> None:
        # access_log=None: the default access log would print every callback path, token and all.
        # keepalive_timeout is the header limit: aiohttp arms it when a connection opens and again
        # after each answer, and closes the connection if a request's headers are still incomplete
        # when it fires. Keep-alive is thereby bounded by the same limit.
        app_runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=2.0,
                                   keepalive_timeout=self._header_timeout, lingering_time=LINGER_SECONDS)
        await app_runner.setup()
        try:
            await web.TCPSite(app_runner, self.host, self._requested_port).start()
        except OSError as exc:
            await app_runner.cleanup()
            raise WebServerUnavailable(self.host, self._requested_port, exc) from None
        self._app_runner = app_runner

    async def stop(self) -> None:
        app_runner, self._app_runner = self._app_runner, None
        if app_runner is not None:
            await app_runner.cleanup()

    # ------------------------------------------------------------------ routes

    async def _healthz(self, request: web.Request) -> web.Response:
        discord_ok = gateway_connected(self._bot)
        database_ok = await self._database_answers()
        status = self._runner.status()
        healthy = discord_ok and database_ok
        shard_count, shards = shard_health(self._bot)
        body: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "discord": "connected" if discord_ok else "disconnected",
            # This process's shards, of shard_count in all (null until the count is known).
            "shard_count": shard_count,
            "shards": [{"id": shard.id, "state": "connected" if shard.connected else "disconnected",
                        "latency_ms": shard.latency_ms} for shard in shards],
            "database": "ok" if database_ok else "error",
            "jobs": {"queued": status.queued, "in_flight": status.in_flight, "finishing": status.finishing},
            "paused": status.paused.code if status.paused is not None else None,
        }
        if self._db.shared:
            # The jobs this process holds a lease on (others take them over if it stops renewing).
            body["leases"] = {"jobs": list(status.leases), "taken_over": status.taken_over}
        return web.json_response(body, status=200 if healthy else 503)

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        assert self._metrics is not None
        metrics = self._metrics
        _, shards = shard_health(self._bot)
        metrics.set_shards_connected(sum(shard.connected for shard in shards))
        if self._store is not None:
            try:
                counts = await asyncio.wait_for(self._store.count_unfinished(), self._database_timeout)
            except Exception as exc:  # the rest is still worth scraping; the gauge keeps its last counts
                log.warning("Metrics: the jobs could not be counted (%s)", type(exc).__name__)
            else:
                metrics.set_unfinished_jobs({(kind.value, state.value): count
                                             for (kind, state), count in counts.items()})
        body, content_type = metrics.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _database_answers(self) -> bool:
        try:
            row = await asyncio.wait_for(self._db.fetchone("SELECT 1 AS one"), self._database_timeout)
        except Exception as exc:  # closed, locked past the timeout, disk gone: all mean "not ok"
            log.warning("Health check: the database did not answer (%s)", type(exc).__name__)
            return False
        return row is not None and row["one"] == 1

    async def _callback(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        # Raises 413 past client_max_size; read before waking the job, so an oversized post wakes nothing.
        # aiohttp bounds the wait for headers but not for a body: a trickling one gets a deadline here.
        try:
            async with asyncio.timeout(self._body_timeout):
                body = await request.read()
        except TimeoutError:
            log.info("EvoLink callback for token %s: the body did not arrive within %g s; closed",
                     redact_token(token), self._body_timeout)
            answer = web.json_response({"error": "request body too slow"}, status=408)
            answer.force_close()
            return answer
        task_id, status = _task_fields(body)
        if not self._callbacks.deliver(token) and not await self._wake_elsewhere(token):
            log.info("EvoLink callback for an unknown token %s (task %s): ignored",
                     redact_token(token), task_id)
            return web.json_response({"error": "unknown callback"}, status=404)
        # Only a hint: the job reads the task from EvoLink before it believes anything.
        log.info("EvoLink callback: task %s says %s (token %s)", task_id, status, redact_token(token))
        return web.Response(status=204)

    async def _wake_elsewhere(self, token: str) -> bool:
        """Behind a load balancer, the callback may reach a process other than the one watching
        its job: pass it on to every process sharing the database."""
        if self._store is None or self._events is None or not self._db.shared:
            return False
        if not await self._store.callback_awaited(token):
            return False
        await self._events.publish(CALLBACK_EVENT, token)
        return True


def _task_fields(body: bytes) -> tuple[str, str]:
    """The task id and status a callback claims, for the log only. Strangers can post anything,
    so the values are cut short and stripped of anything that could forge a log line."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return "(unreadable body)", "nothing"
    if not isinstance(payload, dict):
        return "(unreadable body)", "nothing"
    return _printable(payload.get("id")), _printable(payload.get("status"))


def _printable(value: object) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else repr(value)
    return "".join(c if c.isprintable() else "?" for c in text[:80])
