"""The job runner: the entry point that writes jobs, puts them in line, and resumes them on start.

A written, paid-for job goes through the line (bot/jobs/line.py) and then its own steps
(bot/jobs/lifecycle.py). It knows nothing of Discord: progress and results go to a JobReporter
(bot/jobs/progress.py), which the Discord side implements. The job row is the truth; what lives
in memory (the line, the tasks watching jobs) is rebuilt from the rows by `resume_unfinished`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.callbacks import CallbackHub
from bot.clock import Clock
from bot.credits import CreditLedger
from bot.db import Database
from bot.evolink.client import EvoLinkClient
from bot.jobs import failures
from bot.jobs.failures import JobFailure
from bot.jobs.kinds import JobKindRules
from bot.jobs.lifecycle import JobLifecycle, JobObserver, commit
from bot.jobs.line import JobLine, PauseListener
from bot.jobs.pause import PauseReason, SubmissionsPaused
from bot.jobs.progress import JobReporter, ReporterFactory, report
from bot.jobs.store import Job, JobKind, JobState, JobStore
from bot.media.limits import MediaLimits
from bot.requests import ImageRequest, VideoRequest

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


@dataclass(frozen=True)
class RunnerStatus:
    queued: int
    in_flight: int       # holding a slot at EvoLink (submitting or generating)
    finishing: int       # downloading or delivering
    paused: PauseReason | None


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
        observer: JobObserver | None = None,  # told of every job this process ends
    ) -> None:
        self._db = db
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._helpers: set[asyncio.Task[Any]] = set()  # probes, notices: cancelled on close
        # The line starts each job's steps; the steps give their slot back to the line.
        self._line = JobLine(
            store=store, ledger=ledger, evolink=evolink, clock=clock,
            max_in_flight=settings.max_in_flight,
            max_in_flight_per_user=settings.max_in_flight_per_user,
            start=lambda job, reporter: self._lifecycle.run(job, reporter), spawn=self._spawn,
        )
        self._lifecycle = JobLifecycle(
            db=db, store=store, ledger=ledger, evolink=evolink, session=session, clock=clock,
            kinds=settings.kinds, max_result_bytes=settings.max_result_bytes, line=self._line,
            spawn=self._spawn, work_dir=work_dir, callbacks=callbacks, media=media, observer=observer,
        )

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
        request: ImageRequest | VideoRequest,
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
        """Pick up every job a previous process left unfinished. Call once, before commands
        arrive. Only database writes are awaited here; Discord and EvoLink are reached by the
        jobs' own tasks, so start-up never waits on the network."""
        jobs = await self._store.unfinished()
        found = Counter(job.state for job in jobs)
        running_limits = {guild_id: await self._ledger.running_limit(guild_id)
                          for guild_id in {job.guild_id for job in jobs if job.state is JobState.QUEUED}}
        for job in jobs:
            if job.state is JobState.QUEUED and job.message_id is None and job.interaction_id is not None:
                # Written and its credits held, but its command was never acknowledged (the process
                # died first, or before it could write the refund): nobody saw it start, so it
                # must never run and be charged. Nothing to tell: there is no message to edit.
                await commit(self._lifecycle.mark_failed_and_refund(job.id, failures.NOT_ACKNOWLEDGED))
                continue
            reporter = reporter_for(job)
            if job.state is JobState.QUEUED:
                self._line.line_up(job, reporter, running_limits[job.guild_id])
            elif job.state is JobState.SUBMITTING:
                # The create may or may not have reached EvoLink: sending it again could pay twice.
                await self._lifecycle.end_and_tell(job, failures.INTERRUPTED_SUBMIT, reporter)
            else:
                if job.state is JobState.RUNNING:
                    self._line.hold_slot(job)
                self._line.launch(job, reporter)
        if jobs:
            log.info("Resumed %d unfinished job(s): %s", len(jobs),
                     ", ".join(f"{count} {state}" for state, count in sorted(found.items())))
        self._line.dispatch()
        return found

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

    # -- what operators see and do --------------------------------------------------------------

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            queued=self._line.queued, in_flight=self._line.in_flight,
            finishing=self._line.working - self._line.in_flight, paused=self._line.paused,
        )

    def is_busy(self, job_id: int) -> bool:
        return self._line.is_working_on(job_id)

    async def refund_stuck(self, job_id: int, failure: JobFailure, reporter_for: ReporterFactory) -> int | None:
        """End an unfinished job now (an operator's call): stop whatever works on it, mark it
        failed, refund it and say so in its message. Raises JobAlreadyFinished if it is done."""
        await self._line.stop(job_id)
        job = await self._store.get(job_id)
        refunded = await self._lifecycle.mark_failed_and_refund(job_id, failure)
        reporter = self._line.forget_reporter(job_id) or reporter_for(job)
        self._spawn(report(job_id, reporter.show_failure(job, failure, refunded)), f"job-{job_id}-refund")
        self._line.dispatch()
        return refunded

    async def retry_delivery(self, job_id: int, reporter: JobReporter) -> None:
        """Fetch a job's results again and post them (an operator's call, e.g. after the bot was
        given a missing permission). A job that was already refunded is delivered free; an
        unfinished one is settled as usual. Raises JobBusy if the runner is still on it, and
        JobFailed if the results cannot be fetched or posted."""
        if self._line.holds(job_id):
            raise JobBusy(f"job {job_id} is still being worked on")
        await self._lifecycle.redeliver(job_id, reporter)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
