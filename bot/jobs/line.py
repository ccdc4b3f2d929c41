"""The line and dispatch: who waits, who holds a slot at EvoLink, and pausing on account refusals.

Also the tasks working on the jobs, and the places shown to waiting members. All of it is memory
only: the jobs in line are rows in state `queued`, which the runner puts back in line on start.
What one job goes through once it starts is bot/jobs/lifecycle.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from bot.clock import Clock
from bot.credits import CreditLedger
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkError
from bot.i18n import Message
from bot.jobs.pause import OUT_OF_CREDITS, PAUSE_PROBE_SECONDS, PauseReason
from bot.jobs.progress import JobProgress, JobReporter, Phase, report
from bot.jobs.queue import FairQueue, QueuedJob
from bot.jobs.store import Job, JobStore
from bot.units import from_millis

log = logging.getLogger(__name__)

# One job's steps, from the state its row is in (JobLifecycle.run).
JobStarter = Callable[[Job, JobReporter], Coroutine[Any, Any, None]]
# Runs a side task (a probe, a notice) that closing the runner cancels.
Spawner = Callable[[Coroutine[Any, Any, Any], str], None]
# Told when submissions pause (with the reason) and resume (with None).
PauseListener = Callable[[PauseReason | None], Coroutine[Any, Any, None]]


def waiting_for_own_jobs(running: int) -> Message:
    """Why a job with a place in line does not start: its member's other jobs fill their share."""
    return Message("runner.waiting_for_own_jobs", running=running)


class JobLine:
    """Jobs waiting for a slot at EvoLink, fairest first, and the tasks working on those that
    got one."""

    def __init__(
        self,
        *,
        store: JobStore,
        ledger: CreditLedger,
        evolink: EvoLinkClient,
        clock: Clock,
        max_in_flight: int,
        max_in_flight_per_user: int,
        start: JobStarter,
        spawn: Spawner,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._evolink = evolink
        self._clock = clock
        self._max_in_flight = max_in_flight  # jobs submitted to EvoLink and not yet final
        self._max_in_flight_per_user = max_in_flight_per_user  # per member and guild
        self._start = start
        self._spawn = spawn
        self._queue = FairQueue()
        self._waiting: dict[int, Job] = {}          # the queued jobs, as last read
        self._reporters: dict[int, JobReporter] = {}
        self._in_flight: dict[int, QueuedJob] = {}  # jobs holding a slot at EvoLink
        self._live: dict[int, asyncio.Task[None]] = {}  # the task working on each job
        self._shown_positions: dict[int, tuple[int, str | None]] = {}  # place and note shown
        self._positions_task: asyncio.Task[None] | None = None
        self._positions_stale = False
        self._paused: PauseReason | None = None
        self._closing = False
        self.on_pause_change: PauseListener | None = None

    # -- what the runner reads ------------------------------------------------------------------

    @property
    def paused(self) -> PauseReason | None:
        return self._paused

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Jobs holding a slot at EvoLink (submitting or generating)."""
        return len(self._in_flight)

    @property
    def working(self) -> int:
        """Jobs a task works on: those in flight, and those downloading or delivering."""
        return len(self._live)

    def is_working_on(self, job_id: int) -> bool:
        return job_id in self._live

    def holds(self, job_id: int) -> bool:
        """Whether the job waits in line or a task works on it."""
        return job_id in self._live or job_id in self._queue

    # -- the line -------------------------------------------------------------------------------

    def line_up(self, job: Job, reporter: JobReporter, running_limit: int) -> None:
        self._waiting[job.id] = job
        self._reporters[job.id] = reporter
        self._queue.add(QueuedJob(job.id, job.guild_id, job.user_id, running_limit))
        self.dispatch()

    def _take_out_of_line(self, job_id: int) -> None:
        self._queue.remove(job_id)
        self._waiting.pop(job_id, None)
        self._shown_positions.pop(job_id, None)

    def dispatch(self) -> None:
        """Start queued jobs while slots are free, fairest first; then refresh the places shown."""
        if self._closing:
            return
        per_member = self._running_per_member()

        def may_start(job: QueuedJob) -> bool:
            return per_member[(job.guild_id, job.user_id)] < self._member_share(job)

        while self._paused is None and len(self._in_flight) < self._max_in_flight:
            entry = self._queue.take_next(may_start)
            if entry is None:
                break
            per_member[(entry.guild_id, entry.user_id)] += 1
            self._in_flight[entry.job_id] = entry
            self._shown_positions.pop(entry.job_id, None)
            self.launch(self._waiting.pop(entry.job_id), self._reporters[entry.job_id])
        if not self._queue:
            return  # nobody waits: no place to show
        self._positions_stale = True
        if self._positions_task is None or self._positions_task.done():
            self._positions_task = asyncio.create_task(self._show_positions(), name="queue-positions")

    def _running_per_member(self) -> Counter[tuple[int, int]]:
        return Counter((job.guild_id, job.user_id) for job in self._in_flight.values())

    def _member_share(self, job: QueuedJob) -> int:
        """How many jobs this member may have running: their guild's limit, within the operator's."""
        return min(self._max_in_flight_per_user, job.running_limit)

    async def _show_positions(self) -> None:
        """Tell each waiting member their place in line when it changed, and when their own
        running jobs are what holds this one back. Reporters only queue the text (edits are
        throttled per message), so this never waits on Discord."""
        while self._positions_stale:
            self._positions_stale = False
            await self._show_places_in(self._queue, self._running_per_member())

    async def _show_places_in(self, queue: FairQueue, running: Counter[tuple[int, int]]) -> None:
        """Show this process's waiting jobs their places in `queue` (the line, as this process
        sees it), given the jobs each member has running."""
        entries = {entry.job_id: entry for entry in queue.order()}
        for job_id, position in queue.positions().items():
            job = self._waiting.get(job_id)
            entry = entries.get(job_id)
            if job is None or entry is None:
                continue  # started meanwhile, or another process's
            own = running[(entry.guild_id, entry.user_id)]
            note: Message | None = None
            if self._paused:
                note = self._paused.waiting_note
            elif own >= self._member_share(entry):
                note = waiting_for_own_jobs(own)
            shown = (position, note.key if note else None)
            if self._shown_positions.get(job_id) == shown:
                continue  # no change to show
            self._shown_positions[job_id] = shown
            await report(job_id, self._reporters[job_id].show_progress(JobProgress(
                job, Phase.QUEUED, from_millis(job.created_at), note=note, position=position)))

    def hold_slot(self, job: Job) -> None:
        """Count a job EvoLink already works on (resumed after a restart) as holding a slot."""
        self._in_flight[job.id] = QueuedJob(job.id, job.guild_id, job.user_id)

    def release_slot(self, job_id: int) -> None:
        if self._in_flight.pop(job_id, None) is not None:
            self.dispatch()

    # -- the jobs at work -------------------------------------------------------------------------

    def launch(self, job: Job, reporter: JobReporter) -> None:
        self._reporters[job.id] = reporter
        self._live[job.id] = asyncio.create_task(self._start(job, reporter), name=f"job-{job.id}")

    async def put_back(self, job: Job, reporter: JobReporter, reason: PauseReason) -> None:
        """Line a job up again whose create EvoLink refused for the account's sake (its row is
        back in `queued`), behind a pause, so nothing more is sent until the account works."""
        self.pause(reason)
        self._live.pop(job.id, None)
        slot = self._in_flight.get(job.id)
        running_limit = slot.running_limit if slot else await self._ledger.running_limit(job.guild_id)
        self.release_slot(job.id)
        self.line_up(await self._store.get(job.id), reporter, running_limit)

    def let_go(self, job_id: int, *, finished: bool) -> None:
        """The job's task is ending: free what it held. A job that is not finished (shutdown, an
        operator's refund, back in line) keeps its reporter."""
        if self._live.get(job_id) is asyncio.current_task():
            del self._live[job_id]
        self.release_slot(job_id)
        if finished:
            self._reporters.pop(job_id, None)

    async def stop(self, job_id: int) -> None:
        """Stop whatever works on a job and take it out of line (an operator ends it)."""
        task = self._live.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._take_out_of_line(job_id)

    def abandon(self, job_id: int) -> None:
        """Another process works on the job now (this one lost its lease): stop whatever works
        on it here, without a write or a word to its member."""
        task = self._live.get(job_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._take_out_of_line(job_id)
        reporter = self._reporters.pop(job_id, None)
        if reporter is not None:
            reporter.stop()

    def forget_reporter(self, job_id: int) -> JobReporter | None:
        return self._reporters.pop(job_id, None)

    def close(self) -> list[asyncio.Task[Any]]:
        """Start nothing more, cancel the jobs' tasks and stop their reporters; returns the
        cancelled tasks, for the runner to wait on."""
        self._closing = True
        tasks: list[asyncio.Task[Any]] = [*self._live.values()]
        if self._positions_task is not None:
            tasks.append(self._positions_task)
        for task in tasks:
            task.cancel()
        for reporter in self._reporters.values():
            reporter.stop()
        return tasks

    # -- pausing on account refusals -----------------------------------------------------------

    def pause(self, reason: PauseReason) -> None:
        if self._paused is not None:
            return
        self._paused = reason
        log.error("New generations are paused. %s", reason.operator)
        self._shown_positions.clear()  # every waiting member gets the reason with their place
        self._notify_pause_change(reason)
        self._spawn(self._probe_account(), "evolink-account-probe")

    def _resume_submissions(self) -> None:
        log.warning("EvoLink accepts the account again: generations resume (%d waiting)", len(self._queue))
        self._paused = None
        self._shown_positions.clear()
        self._notify_pause_change(None)
        self.dispatch()

    def _notify_pause_change(self, reason: PauseReason | None) -> None:
        if self.on_pause_change is not None:
            self._spawn(self.on_pause_change(reason), "pause-notice")

    async def _probe_account(self) -> None:
        while self._paused is not None:
            await self._clock.sleep(PAUSE_PROBE_SECONDS)
            try:
                balance = await self._evolink.get_balance()
            except EvoLinkError as exc:
                log.info("EvoLink account still refused (%s); generations stay paused", exc)
                continue
            if self._paused is OUT_OF_CREDITS and balance.remaining_credits <= 0:
                continue
            self._resume_submissions()
