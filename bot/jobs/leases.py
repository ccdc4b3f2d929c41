"""Leases on the jobs a process works on, so that any process can finish any job.

A job out of the line is held by one process under a lease that lapses unless renewed (see
bot/jobs/store.py). The keeper renews this process's leases every third of their length; a job
whose lease it no longer holds (another process took it over while this one stalled) is dropped
here at once. It also takes over the jobs whose lease lapsed (their process died, or gave them up
when it stopped): each continues from its last committed step, as after a restart. Polling the
same EvoLink task and editing the same message, a job taken over never creates a second paid task
and never posts its results twice; one caught in the middle of its create (the outcome unknown)
is failed and refunded instead, as after a restart.

A process that stops cleanly gives its leases up and says so (LEASES_EVENT): the others take
its jobs over at once rather than when the leases would have lapsed.

Commands written but never acknowledged (their process died in between) are failed and refunded
once ACKNOWLEDGE_GRACE_SECONDS have passed: nobody saw them start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from bot.clock import Clock
from bot.db.events import EventBus
from bot.jobs import failures
from bot.jobs.lifecycle import JobLifecycle, commit
from bot.jobs.line import JobLine
from bot.jobs.progress import ReporterFactory
from bot.jobs.store import JobAlreadyFinished, JobState, JobStore
from bot.units import to_millis

log = logging.getLogger(__name__)

# A command answers Discord within 3 s of its job being written; a minute means its process died.
ACKNOWLEDGE_GRACE_SECONDS = 60.0
# Published when a process gave its leases up: look for jobs to take over now.
LEASES_EVENT = "leases"


class LeaseKeeper:
    def __init__(self, *, store: JobStore, line: JobLine, lifecycle: JobLifecycle, clock: Clock,
                 lease_seconds: float, events: EventBus | None = None,
                 on_takeover: Callable[[], None] | None = None) -> None:
        self._store = store
        self._events = events or EventBus()
        self._look_now = asyncio.Event()
        self._events.subscribe(LEASES_EVENT, lambda _payload: self._look_now.set())
        self._line = line
        self._lifecycle = lifecycle
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._on_takeover = on_takeover
        self._keeping: asyncio.Task[None] | None = None
        self.taken_over = 0  # jobs this process took over from another one

    def start(self, reporter_for: ReporterFactory) -> None:
        """Renew this process's leases and take over lapsed ones, until close()."""
        self._keeping = asyncio.create_task(self._keep(reporter_for), name="lease-keeper")

    async def close(self) -> None:
        """Stop, and let this process's leases lapse now: another process takes the jobs over
        at once instead of after the lease's length (call after the jobs' tasks stopped)."""
        if self._keeping is not None:
            self._keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeping
        given_up = await self._store.give_up_leases()
        if given_up:
            log.info("Gave up the leases of %d job(s) for another process to continue", given_up)
            await self._events.publish(LEASES_EVENT)

    async def _keep(self, reporter_for: ReporterFactory) -> None:
        while True:
            await self._wait_for_turn()
            try:
                for job_id in await self._store.renew_leases():
                    log.warning("Job %d: another process holds it now; stopped working on it", job_id)
                    self._line.abandon(job_id)
                await self.sweep(reporter_for)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Leases: renewing or taking over failed; trying again")

    async def _wait_for_turn(self) -> None:
        """A third of a lease (renewing that often keeps a lease through two missed turns), or
        less when another process gave its leases up."""
        sleeper = asyncio.ensure_future(self._clock.sleep(self._lease_seconds / 3))
        waiter = asyncio.ensure_future(self._look_now.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        self._look_now.clear()

    async def sweep(self, reporter_for: ReporterFactory, *, everything: bool = False) -> Counter[JobState]:
        """Take over every job out of the line whose lease lapsed (`everything`: every one, for a
        single process starting on its own file), and give up on stale unacknowledged commands.
        Returns the states of the jobs taken over."""
        found: Counter[JobState] = Counter()
        job_ids = ([job.id for job in await self._store.unfinished() if job.state.is_leased]
                   if everything else await self._store.expired_leases())
        for job_id in job_ids:
            if self._line.is_working_on(job_id):
                continue
            job = await self._store.take_over(job_id, even_if_live=everything)
            if job is None:
                continue  # another process was quicker
            found[job.state] += 1
            if not everything:
                self.taken_over += 1
                if self._on_takeover is not None:
                    self._on_takeover()
                log.warning("Job %d: taken over in state %s (its process stopped renewing its lease)",
                            job.id, job.state)
            reporter = reporter_for(job)
            if job.state is JobState.SUBMITTING:
                # The create may or may not have reached EvoLink: sending it again could pay twice.
                await self._lifecycle.end_and_tell(job, failures.INTERRUPTED_SUBMIT, reporter)
                continue
            if job.state is JobState.RUNNING:
                self._line.hold_slot(job)
            self._line.launch(job, reporter)
        await self.give_up_unacknowledged(grace_seconds=0.0 if everything else ACKNOWLEDGE_GRACE_SECONDS)
        return found

    async def give_up_unacknowledged(self, *, grace_seconds: float) -> None:
        created_before = to_millis(self._clock.now()) - int(grace_seconds * 1000)
        for job_id in await self._store.unacknowledged_before(created_before + 1):
            # Written and its credits held, but its command was never acknowledged (the process
            # died first, or before it could write the refund): nobody saw it start, so it must
            # never run and be charged. Nothing to tell: there is no message to edit.
            with contextlib.suppress(JobAlreadyFinished):
                await commit(self._lifecycle.mark_failed_and_refund(
                    job_id, failures.NOT_ACKNOWLEDGED, only_unacknowledged=True))
