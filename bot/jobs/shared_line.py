"""The line when several processes share the database (PostgreSQL): decided in the database.

Each dispatch is one short write transaction (write transactions of all processes are serialised,
see bot/db/engine.py): it reads the jobs in flight everywhere, the acknowledged jobs waiting, each
guild's running limit and the turns already given (`line_turns`), replays the fair order
(bot/jobs/queue.py) from them, claims the jobs that may start (bot/jobs/store.py: state
`submitting`, under this process's lease) and records their turns. So MAX_JOBS_IN_FLIGHT and the
per-member limits hold across every process, and servers take turns whichever process answers.

A process dispatches when something here changes (a job lined up, a slot freed), when another
process says so (bot/db/events.py), and every LINE_POLL_SECONDS in case a wake-up was lost. The
process that claims a job works on it: with the reporter of the command when it holds one, else
one made from the job's row (the message is edited with the bot token). The pause (EvoLink
refused the account) is shared the same way, in `bot_state`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bot.db import Database, Row, Transaction
from bot.db.events import EventBus
from bot.db.shared_state import PAUSE_KEY, SharedState
from bot.jobs.line import JobLine
from bot.jobs.pause import PAUSE_REASONS, PauseReason
from bot.jobs.progress import JobReporter, ReporterFactory
from bot.jobs.queue import FairQueue, QueuedJob
from bot.jobs.store import Job
from bot.units import to_millis

log = logging.getLogger(__name__)

# How often a process looks at the shared line without being woken (a lost notification).
LINE_POLL_SECONDS = 2.0
LINE_EVENT = "line"
# A command is put in line right after Discord accepts its answer; a job of this process still not
# in line after this long never will be (the task that answered it failed): start it anyway.
LINE_UP_GRACE_MS = 5_000

# Claims a waiting job for this process in the dispatch's transaction (JobLifecycle.claim).
Claim = Callable[[Transaction, int], Awaitable[Job | None]]


class SharedJobLine(JobLine):
    def __init__(self, *, db: Database, events: EventBus, state: SharedState, claim: Claim,
                 **line: Any) -> None:
        super().__init__(**line)
        self._db = db
        self._events = events
        self._state = state
        self._claim = claim
        self._reporter_for: ReporterFactory | None = None
        self._wanted = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        # This process changed the pause (or lifted it) and has not written it yet.
        self._pause_to_write = False
        # Whether jobs (of any process) were left waiting at the last dispatch.
        self._jobs_waited = True
        events.subscribe(LINE_EVENT, lambda _payload: self.dispatch())

    def start(self, reporter_for: ReporterFactory) -> None:
        """Begin dispatching (after the unfinished jobs were looked at): `reporter_for` shows the
        jobs this process claims that another one lined up."""
        self._reporter_for = reporter_for
        self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="shared-line")

    # -- what the runner reads ------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """This process's commands waiting in the shared line."""
        return len(self._waiting)

    def holds(self, job_id: int) -> bool:
        return job_id in self._live or job_id in self._waiting

    # -- the line -------------------------------------------------------------------------------

    def line_up(self, job: Job, reporter: JobReporter, running_limit: int) -> None:
        # The row (queued, acknowledged) is the place in line; the running limit is read from
        # the guild's settings at each dispatch, by whichever process dispatches.
        self._waiting[job.id] = job
        self._reporters[job.id] = reporter
        self.dispatch()

    def _take_out_of_line(self, job_id: int) -> None:
        self._waiting.pop(job_id, None)
        self._shown_positions.pop(job_id, None)

    def dispatch(self) -> None:
        if not self._closing:
            self._wanted.set()

    def release_slot(self, job_id: int) -> None:
        # The row already left `submitting`/`running` (committed): every process may now start one,
        # if any job waits. When none did at the last look, a freed slot changes nothing: a job
        # lined up since then was dispatched by its own process (and the timer looks anyway).
        self._in_flight.pop(job_id, None)
        if self._jobs_waited:
            self.dispatch()
            self._spawn(self._events.publish(LINE_EVENT), "line-moved")

    def close(self) -> list[asyncio.Task[Any]]:
        tasks = super().close()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            tasks.append(self._dispatcher)
        return tasks

    async def _dispatch_forever(self) -> None:
        while not self._closing:
            try:
                async with asyncio.timeout(LINE_POLL_SECONDS):
                    await self._wanted.wait()
            except TimeoutError:
                pass
            self._wanted.clear()
            try:
                await self._dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is unreachable for a moment: the jobs wait in their rows.
                log.exception("Shared line: dispatch failed; trying again in %g s", LINE_POLL_SECONDS)

    async def _dispatch_once(self) -> None:
        pause_changed = self._pause_to_write
        async with self._db.transaction() as tx:
            paused = await self._shared_pause(tx)
            running = Counter({(row["guild_id"], row["user_id"]): row["n"] for row in await tx.fetchall(
                "SELECT guild_id, user_id, COUNT(*) AS n FROM jobs "
                "WHERE state IN ('submitting', 'running') GROUP BY guild_id, user_id")})
            waiting = await tx.fetchall(
                "SELECT id, guild_id, user_id, acknowledged_at, lease_owner, lease_expires_at FROM jobs "
                "WHERE state = 'queued' AND acknowledged_at IS NOT NULL ORDER BY id")
            now = to_millis(self._clock.now())
            waiting_rows = {row["id"]: row for row in waiting}
            turns = await tx.fetchall(
                "SELECT guild_id, user_id, served FROM line_turns "
                "WHERE guild_id IN (SELECT guild_id FROM jobs WHERE state = 'queued')")
            limits = {guild_id: await self._ledger.running_limit_in(tx, guild_id)
                      for guild_id in {row["guild_id"] for row in waiting}}
            queue = FairQueue({(row["guild_id"], row["user_id"]): row["served"] for row in turns})
            for row in waiting:
                queue.add(QueuedJob(row["id"], row["guild_id"], row["user_id"], limits[row["guild_id"]]))

            def may_start(entry: QueuedJob) -> bool:
                return running[(entry.guild_id, entry.user_id)] < self._member_share(entry)

            claimed: list[tuple[QueuedJob, Job]] = []
            in_flight = sum(running.values())
            while paused is None and in_flight < self._max_in_flight:
                entry = queue.take_next(may_start)
                if entry is None:
                    break
                # Its slot is taken whoever starts it, so the caps and the fair order hold.
                running[(entry.guild_id, entry.user_id)] += 1
                in_flight += 1
                if not self._may_claim(waiting_rows[entry.job_id], now):
                    # Its own process starts it (woken by the same event): it records the turn.
                    del queue.turns_taken[-2:]
                    continue
                job = await self._claim(tx, entry.job_id)
                if job is not None:
                    claimed.append((entry, job))
            for guild_id, user_id, turn in queue.turns_taken:
                await tx.execute(
                    "INSERT INTO line_turns (guild_id, user_id, served) VALUES (:guild, :user, :turn) "
                    "ON CONFLICT (guild_id, user_id) DO UPDATE SET served = excluded.served",
                    {"guild": guild_id, "user": user_id, "turn": turn})
        if pause_changed:  # committed: the others read it when woken
            self._spawn(self._events.publish(LINE_EVENT), "pause-changed")
        self._adopt_pause(paused)
        for entry, job in claimed:
            self._start_claimed(entry, job)
        still_waiting = {row["id"] for row in waiting} - {job.id for _, job in claimed}
        if still_waiting and not self._jobs_waited:
            # The line just started to wait: the others look, so that a slot they free is passed on.
            self._spawn(self._events.publish(LINE_EVENT), "line-waits")
        self._jobs_waited = bool(still_waiting)
        self._drop_taken_elsewhere(still_waiting)
        if self._waiting:  # each of this process's waiting commands, its place in the whole line
            await self._show_places_in(queue, running)

    def _may_claim(self, row: Row, now: int) -> bool:
        """Whether this process starts a waiting job: one it lined up itself (it holds the
        command's reporter and token), or one whose process stopped renewing its claim (died,
        stopped, or lost the database). A job this process wrote but has not lined up yet (its
        command was acknowledged a moment ago) waits for its reporter, a few seconds at most."""
        if row["id"] in self._waiting:
            return True
        if row["lease_owner"] == self._store.owner:
            return row["acknowledged_at"] < now - LINE_UP_GRACE_MS
        expires = row["lease_expires_at"]
        return row["lease_owner"] is None or expires is None or expires < now

    async def _shared_pause(self, tx: Transaction) -> PauseReason | None:
        """Write this process's pause change, or read the one every process shares."""
        if self._pause_to_write:
            self._pause_to_write = False
            await self._state.write(tx, PAUSE_KEY, self._paused.code if self._paused else None)
            return self._paused
        code = await self._state.read(tx, PAUSE_KEY)
        return PAUSE_REASONS.get(code) if code else None

    def _adopt_pause(self, shared: PauseReason | None) -> None:
        """Follow a pause another process started or lifted (this process tells its own guilds'
        moderators, and probes the account too while it lasts)."""
        if self._pause_to_write or shared is self._paused:
            return
        if shared is None:
            super()._resume_submissions()
        elif self._paused is None:
            super().pause(shared)

    def pause(self, reason: PauseReason) -> None:
        if self._paused is None:
            super().pause(reason)
            self._pause_to_write = True
            self.dispatch()

    def _resume_submissions(self) -> None:
        super()._resume_submissions()
        self._pause_to_write = True
        self.dispatch()

    def _start_claimed(self, entry: QueuedJob, job: Job) -> None:
        reporter = self._reporters.get(job.id)
        if reporter is None:  # lined up by another process: its message is edited with the bot token
            assert self._reporter_for is not None, "start() comes before any dispatch"
            reporter = self._reporter_for(job)
        self._take_out_of_line(job.id)
        self._in_flight[job.id] = entry
        self.launch(job, reporter)

    def _drop_taken_elsewhere(self, still_waiting: set[int]) -> None:
        """Jobs this process lined up that another process claimed (or that ended): that process
        shows them from now on."""
        for job_id in [job_id for job_id in self._waiting if job_id not in still_waiting]:
            self._take_out_of_line(job_id)
            if job_id not in self._live:
                reporter = self._reporters.pop(job_id, None)
                if reporter is not None:
                    reporter.stop()
