"""The fake Discord's gateway: the websocket (hello, heartbeats, identify with READY and
GUILD_CREATEs, Discord's IDENTIFY limit per bucket, resume), dispatching events to the right shard,
and changes to the world (channels, roles) that a connected bot is told about."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord.models import FakeChannel, FakeRole, IdentifyRecord
from tests.fakes.discord.payloads import Payloads, _guild_channel_payload, _role_payload
from tests.fakes.discord.wire import _json


@dataclass
class _GatewaySession:
    ws: web.WebSocketResponse
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_id: str | None = None
    shard_id: int = 0
    shard_count: int = 1
    seq: int = 0
    identified: bool = False
    resumable: bool = True  # once closed, may its session be resumed


class Gateway(Payloads):
    """GET /gateway/bot, GET /gateway and the websocket at /gateway."""

    # Set up by FakeDiscord.__init__ (server.py).
    shard_count: int
    max_concurrency: int
    identify_rate_limit: bool
    identify_interval: float
    heartbeat_interval_ms: int
    gateway_received: list[dict]
    identifies: list[IdentifyRecord]
    _sessions: list[_GatewaySession]
    _resumable: dict[str, int]
    _identified: asyncio.Event

    # ------------------------------------------------------------ driving the gateway

    async def wait_until_identified(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._identified.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no shard sent IDENTIFY within {timeout}s\n{self.summary()}") from None

    def identified_shards(self) -> set[int]:
        """The shards with a live session now (identified or resumed, still connected)."""
        return {session.shard_id for session in self._sessions if session.identified}

    async def wait_until_shards_identified(self, shard_ids: set[int], timeout: float = 10.0) -> None:
        await self.wait_for(lambda fake: shard_ids <= fake.identified_shards(), timeout)

    async def wait_until_disconnected(self, timeout: float = 10.0) -> None:
        """Until no shard is connected (a bot that closed has really gone)."""
        await self.wait_for(lambda fake: not fake._sessions, timeout)

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a DISPATCH to the shard(s) that would get it.

        With one shard that is every connection; with several, guild events go to the
        guild's shard ((guild_id >> 22) % shard_count) and the rest to shard 0, as Discord does.
        """
        await self.wait_until_identified()
        guild_id = data.get("guild_id") or (data.get("id") if event.startswith("GUILD_") else None)
        for session in [s for s in self._sessions if s.identified]:
            if session.shard_count > 1:
                owner = (int(guild_id) >> 22) % session.shard_count if guild_id else 0
                if owner != session.shard_id:
                    continue
            async with session.lock:
                await self._send_dispatch(session, event, data)

    async def drop_connections(self, code: int = 4000, *, resumable: bool = True) -> None:
        """Close every gateway connection, as Discord does now and then; the bot resumes. Not
        resumable: its RESUMEs get INVALID_SESSION, and it must IDENTIFY again."""
        self._identified.clear()
        for session in list(self._sessions):
            session.resumable = resumable
            await session.ws.close(code=code)

    # ------------------------------------------------------------ changes a connected bot is told about

    async def add_channel(self, guild_id: int, channel: FakeChannel) -> None:
        """A channel (or thread) created in a guild: a connected bot is told, as by Discord
        (CHANNEL_CREATE or THREAD_CREATE), and later GUILD_CREATEs carry it."""
        self.guilds[guild_id].channels.append(channel)
        self._channel_guild[channel.id] = guild_id
        if any(session.identified for session in self._sessions):
            payload = _guild_channel_payload(guild_id, channel)
            if channel.is_thread:
                await self.dispatch("THREAD_CREATE", {**payload, "newly_created": True})
            else:
                await self.dispatch("CHANNEL_CREATE", payload)

    async def remove_channel(self, channel_id: int) -> None:
        """A channel deleted: a connected bot is told (CHANNEL_DELETE); its messages stay recorded."""
        guild_id = self._channel_guild.pop(channel_id)
        assert guild_id is not None, "DM channels are not deleted"
        guild = self.guilds[guild_id]
        channel = next(c for c in guild.channels if c.id == channel_id)
        guild.channels.remove(channel)
        if any(session.identified for session in self._sessions):
            await self.dispatch("CHANNEL_DELETE", _guild_channel_payload(guild_id, channel))

    async def add_role(self, guild_id: int, role: FakeRole) -> None:
        """A role created in a guild: a connected bot is told (GUILD_ROLE_CREATE)."""
        self.guilds[guild_id].roles.append(role)
        if any(session.identified for session in self._sessions):
            await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": _role_payload(role)})

    # ------------------------------------------------------------ routes and the websocket

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return _json(
            200,
            {
                "url": self.ws_url,
                "shards": self.shard_count,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                        "max_concurrency": self.max_concurrency},
            },
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json(200, {"url": self.ws_url})

    async def _gateway_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        session = _GatewaySession(ws=ws)
        self._sessions.append(session)
        try:
            # discord.py accepts plain JSON text frames despite asking for zlib-stream.
            await self._send(session, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                self.gateway_received.append(payload)
                await self._handle_gateway_op(session, payload.get("op"), payload.get("d"))
        finally:
            self._sessions.remove(session)
            if session.session_id is not None and session.resumable:
                self._resumable[session.session_id] = session.seq
            if not any(s.identified for s in self._sessions):
                self._identified.clear()
        return ws

    async def _handle_gateway_op(self, session: _GatewaySession, op: int | None, d: Any) -> None:
        if op == 1:  # HEARTBEAT
            await self._send(session, {"op": 11})
        elif op == 2:  # IDENTIFY
            shard_id, shard_count = (d or {}).get("shard") or [0, 1]
            if not self._identify_allowed(shard_id, shard_count):
                await self._send(session, {"op": 9, "d": False})  # INVALID_SESSION: identify again later
                return
            session.shard_id, session.shard_count = shard_id, shard_count
            session.session_id = secrets.token_hex(16)
            async with session.lock:  # READY and GUILD_CREATEs go out before any dispatch()
                await self._send_dispatch(session, "READY", self._ready_payload(session))
                for guild in self.guilds.values():
                    if (guild.id >> 22) % shard_count == shard_id:
                        await self._send_dispatch(session, "GUILD_CREATE", self.guild_create_payload(guild))
                session.identified = True
            self._identified.set()
        elif op == 6:  # RESUME
            session_id = (d or {}).get("session_id")
            if session_id in self._resumable:
                session.session_id = session_id
                session.seq = self._resumable.pop(session_id)
                async with session.lock:
                    await self._send_dispatch(session, "RESUMED", {})
                    session.identified = True
                self._identified.set()
            else:
                await self._send(session, {"op": 9, "d": False})  # INVALID_SESSION: identify again
        # Presence updates (3), member requests (8) and the rest need no answer here.

    def _identify_allowed(self, shard_id: int, shard_count: int) -> bool:
        """Record the IDENTIFY; with identify_rate_limit, refuse one that arrives too soon after
        the last accepted IDENTIFY of its bucket, as Discord does."""
        now = time.monotonic()
        bucket = shard_id % max(1, self.max_concurrency)
        last = max((i.time for i in self.identifies if i.accepted and i.bucket == bucket), default=None)
        accepted = not (self.identify_rate_limit and last is not None and now - last < self.identify_interval)
        self.identifies.append(IdentifyRecord(shard_id, shard_count, bucket, now, accepted))
        return accepted

    def _ready_payload(self, session: _GatewaySession) -> dict:
        return {
            "v": 10,
            "user": {**self.bot_user_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.guilds.values()
                if (g.id >> 22) % session.shard_count == session.shard_id
            ],
            "session_id": session.session_id,
            "resume_gateway_url": self.ws_url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "_trace": ["fake-discord"],
        }

    async def _send_dispatch(self, session: _GatewaySession, event: str, data: dict) -> None:
        session.seq += 1
        await self._send(session, {"op": 0, "t": event, "s": session.seq, "d": data})

    @staticmethod
    async def _send(session: _GatewaySession, message: dict) -> None:
        message.setdefault("s", None)
        message.setdefault("t", None)
        message.setdefault("d", None)
        if not session.ws.closed:
            await session.ws.send_str(json.dumps(message))
