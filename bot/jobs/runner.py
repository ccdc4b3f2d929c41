"""The job runner: the entry point that writes jobs, puts them in line, and resumes them on start.

A written, paid-for job goes through the line (bot/jobs/line.py) and then its own steps
(bot/jobs/lifecycle.py). It knows nothing of Discord: progress and results go to a JobReporter
(bot/jobs/progress.py), which the Discord side implements. The job row is the truth; what lives
in memory (the line, the tasks watching jobs) is rebuilt from the rows by `resume_unfinished`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.callbacks import CallbackHub
from bot.clock import Clock
from bot.credits import CreditLedger
from bot.db import Database, Transaction
from bot.db.events import EventBus
from bot.db.shared_state import SharedState
from bot.evolink.client import EvoLinkClient
from bot.jobs.failures import JobFailure
from bot.jobs.kinds import JobKindRules
from bot.jobs.leases import LeaseKeeper
from bot.jobs.lifecycle import JobLifecycle, JobObserver
from bot.jobs.line import JobLine, PauseListener
from bot.jobs.pause import PauseReason, SubmissionsPaused
from bot.jobs.progress import JobReporter, ReporterFactory, report
from bot.jobs.shared_line import SharedJobLine
from bot.jobs.store import Job, JobKind, JobState, JobStore
from bot.media.limits import MediaLimits
from bot.requests import GenerationRequest
from bot.units import to_millis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    job_id: int
    reserved: int  # milli-credits held for the job
    running_limit: int  # how many of the member's jobs may run at once in the guild


@dataclass(frozen=True)
class RunnerSettings:
    max_in_flight: int        # jobs submitted to EvoLink and not yet final
    max_result_bytes: int
    kinds: dict[JobKind, JobKindRules]
    max_in_flight_per_user: int = 2  # per member and guild: the rest of their jobs wait in line
    lease_seconds: float = 45.0  # how long another process waits before taking over a silent one's job


@dataclass(frozen=True)
class RunnerStatus:
    queued: int
    in_flight: int       # holding a slot at EvoLink (submitting or generating)
    finishing: int       # downloading or delivering
    paused: PauseReason | None
    leases: tuple[int, ...] = ()  # the jobs this process holds a lease on
    taken_over: int = 0  # jobs this process took over from another one


class JobBusy(Exception):
    """An operator action on a job the runner is still working on."""


class JobRunner:
    def __init__(
        self,
        *,
        db: Database,
        store: JobStore,
        ledger: CreditLedger,
        evolink: EvoLinkClient,
        session: aiohttp.ClientSession,
        clock: Clock,
        settings: RunnerSettings,
        work_dir: Path | None = None,
        callbacks: CallbackHub | None = None,
        media: MediaLimits | None = None,
        events: EventBus | None = None,
        on_takeover: Callable[[], None] | None = None,  # told of every job taken over
        observer: JobObserver | None = None,  # told of every job this process ends
    ) -> None:
        self._db = db
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._helpers: set[asyncio.Task[Any]] = set()  # probes, notices: cancelled on close
        # The line starts each job's steps; the steps give their slot back to the line. One
        # process owns its line in memory; processes sharing a database decide it there.
        self._shared = db.shared
        make_line: Callable[..., JobLine] = functools.partial(
            SharedJobLine, db=db, events=events or EventBus(), state=SharedState(db, clock),
            claim=self._claim,
        ) if self._shared else JobLine
        self._line = make_line(
            store=store, ledger=ledger, evolink=evolink, clock=clock,
            max_in_flight=settings.max_in_flight,
            max_in_flight_per_user=settings.max_in_flight_per_user,
            start=self._start_job, spawn=self._spawn,
        )
        self._lifecycle = JobLifecycle(
            db=db, store=store, ledger=ledger, evolink=evolink, session=session, clock=clock,
            kinds=settings.kinds, max_result_bytes=settings.max_result_bytes, line=self._line,
            spawn=self._spawn, work_dir=work_dir, callbacks=callbacks, media=media, observer=observer,
        )
        self._leases = LeaseKeeper(store=store, line=self._line, lifecycle=self._lifecycle, clock=clock,
                                   lease_seconds=settings.lease_seconds, events=events,
                                   on_takeover=on_takeover)

    async def _start_job(self, job: Job, reporter: JobReporter) -> None:
        await self._lifecycle.run(job, reporter)

    async def _claim(self, tx: Transaction, job_id: int) -> Job | None:
        return await self._lifecycle.claim(tx, job_id)

    @property
    def on_pause_change(self) -> PauseListener | None:
        """Told when submissions pause (with the reason) and resume (with None)."""
        return self._line.on_pause_change

    @on_pause_change.setter
    def on_pause_change(self, listener: PauseListener | None) -> None:
        self._line.on_pause_change = listener

    # -- entry points -------------------------------------------------------------------------

    async def submit(
        self,
        *,
        kind: JobKind,
        guild_id: int,
        channel_id: int,
        user_id: int,
        interaction_id: int | None,
        request: GenerationRequest,
        role_ids: Iterable[int] = (),
        locale: str = "en-US",
        parent_job_id: int | None = None,
    ) -> Submission:
        """Write the job and reserve its estimate in one transaction (InsufficientCredits rolls
        both back). Nothing is sent to EvoLink until `enqueue` puts it in line."""
        self.check_accepting()
        options = request.to_dict()
        estimate = self._settings.kinds[kind].estimate(options)
        async with self._db.transaction() as tx:
            job_id = await self._store.create(
                tx, kind=kind, guild_id=guild_id, channel_id=channel_id,
                user_id=user_id, interaction_id=interaction_id, request=options,
                locale=locale, parent_job_id=parent_job_id,
            )
            balance = await self._ledger.reserve(
                tx, guild_id=guild_id, user_id=user_id, job_id=job_id, amount=estimate,
                role_ids=role_ids,
            )
        log.info("Job %d: %s job queued for user %d in guild %d", job_id, kind, user_id, guild_id)
        return Submission(job_id=job_id, reserved=estimate, running_limit=balance.max_running_jobs)

    def check_accepting(self) -> None:
        """Raise SubmissionsPaused while EvoLink refuses the bot's account, so a command can
        refuse privately before it answers publicly."""
        if self._line.paused is not None:
            raise SubmissionsPaused(self._line.paused)

    def enqueue(self, job: Job, reporter: JobReporter, *, running_limit: int) -> None:
        """Put a submitted job in line; it starts when a slot is free, its member has fewer than
        `running_limit` jobs running, and its turn comes."""
        self._line.line_up(job, reporter, running_limit)

    def estimate(self, job: Job) -> int:
        """What the job reserved (milli-credits), from its options."""
        return self._settings.kinds[job.kind].estimate(job.request)

    async def resume_unfinished(self, reporter_for: ReporterFactory) -> Counter[JobState]:
        """Pick up the jobs a previous process left unfinished, then start the line. Call once,
        before commands arrive. Only database writes are awaited here; Discord and EvoLink are
        reached by the jobs' own tasks, so start-up never waits on the network.

        One process on its own file takes every unfinished job. Processes sharing a database
        take only the jobs whose lease lapsed, and keep taking those while they run."""
        if self._shared:
            found = await self._leases.sweep(reporter_for)
            self._leases.start(reporter_for)
            assert isinstance(self._line, SharedJobLine)
            self._line.start(reporter_for)
            self._log_resumed(found)
            return found
        found = await self._leases.sweep(reporter_for, everything=True)
        queued = [job for job in await self._store.unfinished() if job.state is JobState.QUEUED]
        running_limits = {guild_id: await self._ledger.running_limit(guild_id)
                          for guild_id in {job.guild_id for job in queued}}
        for job in queued:
            self._line.line_up(job, reporter_for(job), running_limits[job.guild_id])
        found[JobState.QUEUED] += len(queued)
        self._log_resumed(+found)
        self._line.dispatch()
        return +found

    @staticmethod
    def _log_resumed(found: Counter[JobState]) -> None:
        if found:
            log.info("Resumed %d unfinished job(s): %s", sum(found.values()),
                     ", ".join(f"{count} {state}" for state, count in sorted(found.items())))

    async def cancel_unstarted(self, job_id: int, failure: JobFailure) -> None:
        """End a job that was written but never put in line (e.g. Discord refused the answer)."""
        await self._lifecycle.mark_failed_and_refund(job_id, failure)

    async def close(self) -> None:
        """Stop watching jobs. Their rows keep their state for the next start; nothing is
        refunded here. A write already under way finishes (see `commit` in lifecycle.py)."""
        tasks = [*self._line.close(), *self._helpers]
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._shared:  # another process takes this one's jobs over at once
            await self._leases.close()

    # -- what operators see and do --------------------------------------------------------------

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            queued=self._line.queued, in_flight=self._line.in_flight,
            finishing=self._line.working - self._line.in_flight, paused=self._line.paused,
            leases=self._store.leases_held, taken_over=self._leases.taken_over,
        )

    def is_busy(self, job_id: int) -> bool:
        return self._line.is_working_on(job_id)

    async def refund_stuck(self, job_id: int, failure: JobFailure, reporter_for: ReporterFactory) -> int | None:
        """End an unfinished job now (an operator's call): stop whatever works on it, mark it
        failed, refund it and say so in its message. Raises JobAlreadyFinished if it is done."""
        await self._line.stop(job_id)
        job = await self._store.get(job_id)
        # Whichever process works on it: that one finds its next write refused, and stops.
        refunded = await self._lifecycle.mark_failed_and_refund(job_id, failure, overrule_lease=True)
        reporter = self._line.forget_reporter(job_id) or reporter_for(job)
        self._spawn(report(job_id, reporter.show_failure(job, failure, refunded)), f"job-{job_id}-refund")
        self._line.dispatch()
        return refunded

    async def retry_delivery(self, job_id: int, reporter: JobReporter) -> None:
        """Fetch a job's results again and post them (an operator's call, e.g. after the bot was
        given a missing permission). A job that was already refunded is delivered free; an
        unfinished one is settled as usual. Raises JobBusy if the runner is still on it, and
        JobFailed if the results cannot be fetched or posted."""
        if self._line.holds(job_id) or (self._shared and await self._worked_on_elsewhere(job_id)):
            raise JobBusy(f"job {job_id} is still being worked on")
        await self._lifecycle.redeliver(job_id, reporter)

    async def _worked_on_elsewhere(self, job_id: int) -> bool:
        job = await self._store.get(job_id)
        return job.state.is_leased and job.lease_expires_at is not None and (
            job.lease_expires_at > to_millis(self._clock.now()))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
