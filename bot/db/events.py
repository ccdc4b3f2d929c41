"""Wake-ups between the processes that share a database: "the line moved", "the pause changed",
"EvoLink called back for this token".

On PostgreSQL they travel by LISTEN/NOTIFY on one channel, to every process listening (the sender
included); a notification is sent when its transaction commits, so a listener that reads the
database after it sees what was written. They are hints only: every process also re-reads the
database on a timer, so one lost while a connection was down delays things a little and breaks
nothing. With SQLite there is one process, and an event goes straight to its listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from bot.db.engine import Database, PostgresDatabase

log = logging.getLogger(__name__)

Listener = Callable[[str], object]  # called with the event's payload ("" for a resync)

CHANNEL = "wan_bot_events"
RECONNECT_SECONDS = 2.0


class EventBus:
    """Events for this process only (one process on SQLite): published straight to the listeners."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)

    def subscribe(self, topic: str, listener: Listener) -> None:
        self._listeners[topic].append(listener)

    async def publish(self, topic: str, payload: str = "") -> None:
        self._deliver(topic, payload)

    async def start(self) -> None:
        """Begin receiving other processes' events (nothing to do for one process)."""

    async def close(self) -> None:
        """Stop receiving."""

    def _deliver(self, topic: str, payload: str) -> None:
        for listener in self._listeners.get(topic, ()):
            try:
                listener(payload)
            except Exception:
                log.exception("Event %s: a listener failed", topic)

    def _resync(self) -> None:
        """Tell every listener that events may have been missed (the connection was down)."""
        for topic in list(self._listeners):
            self._deliver(topic, "")


class PostgresEventBus(EventBus):
    """Events between processes: NOTIFY to publish, one connection of its own to LISTEN."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__()
        self._db = db
        self._listening: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, topic: str, payload: str = "") -> None:
        await self._db.fetchone("SELECT pg_notify(:channel, :message) AS sent",
                                {"channel": CHANNEL, "message": f"{topic} {payload}"})

    async def start(self) -> None:
        """Listen from now on (returns once the first LISTEN is in place)."""
        self._listening = asyncio.create_task(self._listen(), name="database-events")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._listening}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening

    async def _listen(self) -> None:
        import psycopg

        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._db.url, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    if not first:
                        self._resync()
                    first = False
                    async for notice in connection.notifies():
                        topic, _, payload = notice.payload.partition(" ")
                        self._deliver(topic, payload)
            except psycopg.Error as exc:
                # Never the exception's text: it can quote the connection string.
                log.warning("Database events: the listening connection failed (%s); reconnecting in %g s",
                            type(exc).__name__, RECONNECT_SECONDS)
                self._ready.set()  # start() must not wait forever on a database that is down
                await asyncio.sleep(RECONNECT_SECONDS)


def event_bus_for(db: Database) -> EventBus:
    return PostgresEventBus(db) if isinstance(db, PostgresDatabase) else EventBus()
