"""The job runner: takes a written, paid-for job through submit, polling, download and delivery.

It knows nothing of Discord: progress and results go to a JobReporter, which the Discord side
implements. Jobs run as asyncio tasks behind a global limit of jobs in flight at EvoLink.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiohttp

from bot.clock import Clock
from bot.credits import CreditLedger
from bot.db import Database
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkConnectionError, EvoLinkError, EvoLinkTimeout, ServerError
from bot.evolink.models import Task
from bot.jobs import failures
from bot.jobs.failures import JobFailed, JobFailure
from bot.jobs.kinds import JobKindRules, ResultFile
from bot.jobs.polling import PollPolicy
from bot.jobs.retrying import create_retrying, download_retrying, poll_retrying
from bot.jobs.store import Job, JobAlreadyFinished, JobKind, JobStore
from bot.media.downloads import DownloadError, download_to_file
from bot.requests import ImageRequest, VideoRequest

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=15, sock_read=60)


class Phase(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"


@dataclass(frozen=True)
class JobProgress:
    job: Job
    phase: Phase
    started_at: datetime
    percent: int | None = None
    eta: datetime | None = None  # None: no estimate yet, or the estimate has passed
    note: str | None = None      # e.g. why it is slower than expected


class JobReporter(Protocol):
    """Shows a job to the member who asked for it. Implementations must not raise for display
    problems they can recover from; the runner logs and ignores what they do raise, except in
    `deliver`, whose failure fails the job."""

    async def show_progress(self, progress: JobProgress) -> None: ...

    async def deliver(self, job: Job, results: list[ResultFile], charged: int,
                      links_expire_at: datetime) -> None: ...

    async def show_failure(self, job: Job, failure: JobFailure, refunded: int | None) -> None: ...


@dataclass(frozen=True)
class Submission:
    job_id: int
    reserved: int  # milli-credits held for the job


@dataclass(frozen=True)
class RunnerSettings:
    max_in_flight: int        # jobs submitted to EvoLink and not yet final
    max_result_bytes: int
    kinds: dict[JobKind, JobKindRules]


# EvoLink keeps result links for 24 hours after the task is created.
RESULT_LINK_LIFETIME = timedelta(hours=24)
SLOW_API_NOTE = "EvoLink is slow to answer; still waiting for it."
OVERDUE_NOTE = "Taking longer than EvoLink estimated; still waiting."


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
    ) -> None:
        self._db = db
        self._store = store
        self._ledger = ledger
        self._evolink = evolink
        self._session = session
        self._clock = clock
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._work_dir = work_dir or Path(tempfile.gettempdir()) / "wan-bot"
        self._tasks: set[asyncio.Task[None]] = set()

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
    ) -> Submission:
        """Write the job and reserve its estimate in one transaction (InsufficientCredits rolls
        both back). Nothing is sent to EvoLink until `start` runs it."""
        options = request.to_dict()
        estimate = self._settings.kinds[kind].estimate(options)
        async with self._db.transaction() as tx:
            job_id = await self._store.create(
                tx, kind=kind, guild_id=guild_id, channel_id=channel_id,
                user_id=user_id, interaction_id=interaction_id, request=options,
            )
            await self._ledger.reserve(
                tx, guild_id=guild_id, user_id=user_id, job_id=job_id, amount=estimate,
                role_ids=role_ids,
            )
        log.info("Job %d: %s job queued for user %d in guild %d", job_id, kind, user_id, guild_id)
        return Submission(job_id=job_id, reserved=estimate)

    def start(self, job_id: int, reporter: JobReporter) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(job_id, reporter), name=f"job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop watching jobs. Their rows keep their state; nothing is refunded here."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one job ------------------------------------------------------------------------------

    async def _run(self, job_id: int, reporter: JobReporter) -> None:
        job = await self._store.get(job_id)
        folder = self._work_dir / f"job-{job_id}"
        try:
            await self._execute(job, reporter, folder)
        except JobFailed as failed:
            await self._fail(job, failed.failure, reporter)
        except asyncio.CancelledError:
            log.info("Job %d: stopped watching (shutdown)", job_id)
            raise
        except Exception:
            log.exception("Job %d: unexpected error", job_id)
            await self._fail(job, failures.INTERNAL_ERROR, reporter)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _execute(self, job: Job, reporter: JobReporter, folder: Path) -> None:
        rules = self._settings.kinds[job.kind]
        started_at = self._clock.now()
        if self._slots.locked():
            await self._report(job.id, reporter.show_progress(JobProgress(job, Phase.QUEUED, started_at)))
        async with self._slots:
            await self._store.mark_submitting(job.id)
            await self._report(job.id, reporter.show_progress(JobProgress(job, Phase.SUBMITTING, started_at)))
            task = await self._create(job, rules)
            await self._store.mark_running(job.id, task_id=task.id,
                                           estimated_seconds=task.estimated_time)
            log.info("Job %d: accepted as %s (estimate %ss)", job.id, task.id, task.estimated_time)
            accepted_at = self._clock.now()
            task = await self._watch(job, task, rules, reporter, started_at)

        if not task.results:
            raise JobFailed(failures.NO_RESULTS)
        await self._store.mark_downloading(job.id, result_urls=list(task.results))
        await self._report(job.id, reporter.show_progress(
            JobProgress(job, Phase.DOWNLOADING, started_at, 100)))
        results = await self._download(job, rules, task.results, folder)

        await self._store.mark_delivering(job.id)
        await self._report(job.id, reporter.show_progress(
            JobProgress(job, Phase.UPLOADING, started_at, 100)))
        charged = rules.charge(job.request, results)
        links_expire_at = (
            datetime.fromtimestamp(task.created, UTC) if task.created else accepted_at
        ) + RESULT_LINK_LIFETIME
        try:
            await reporter.deliver(job, results, charged, links_expire_at)
        except Exception as exc:
            log.warning("Job %d: delivery failed: %s", job.id, exc)
            raise JobFailed(failures.DELIVERY_FAILED) from exc
        async with self._db.transaction() as tx:
            await self._store.mark_done(tx, job.id)
            await self._ledger.settle(tx, job_id=job.id, amount=charged)
        log.info("Job %d: done, %d file(s) delivered", job.id, len(results))

    async def _create(self, job: Job, rules: JobKindRules) -> Task:
        try:
            return await create_retrying(self._clock)(rules.create, self._evolink, job.request)
        except (EvoLinkTimeout, EvoLinkConnectionError, ServerError) as exc:
            # The request may have reached EvoLink and been accepted: retrying could pay twice.
            log.warning("Job %d: create outcome unknown: %s", job.id, exc)
            raise JobFailed(failures.UNKNOWN_CREATE_OUTCOME) from exc
        except EvoLinkError as exc:
            log.warning("Job %d: create refused: %s", job.id, exc)
            raise JobFailed(failures.describe_api_error(exc)) from exc

    async def _watch(self, job: Job, task: Task, rules: JobKindRules, reporter: JobReporter,
                     started_at: datetime) -> Task:
        """Poll until the task is final; report progress as it rises."""
        policy = rules.polling
        accepted = self._clock.monotonic()
        accepted_wall = self._clock.now()
        deadline = accepted + rules.deadline

        def progress(note: str | None = None) -> JobProgress:
            elapsed = self._clock.monotonic() - accepted
            eta = self._eta(accepted_wall, elapsed, task, policy)
            if note is None and eta is None and elapsed > (task.estimated_time or policy.default_estimate):
                note = OVERDUE_NOTE
            return JobProgress(job, Phase.GENERATING, started_at, task.progress, eta, note)

        async def tell_slow(_: object) -> None:
            # Called before each retry of a failed poll: the member sees why nothing moves.
            await self._report(job.id, reporter.show_progress(progress(SLOW_API_NOTE)))

        retrying = poll_retrying(self._clock, deadline, before_sleep=tell_slow)
        delay = policy.first_delay(task.estimated_time)
        while True:
            await self._report(job.id, reporter.show_progress(progress()))
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise JobFailed(failures.TIMED_OUT)
            await self._clock.sleep(min(delay, remaining))
            try:
                task = await retrying(self._evolink.get_task, task.id)
            except EvoLinkError as exc:
                log.warning("Job %d: polling %s failed: %s", job.id, task.id, exc)
                if exc.transient:  # retried until the deadline and still failing
                    raise JobFailed(failures.TIMED_OUT) from exc
                raise JobFailed(failures.describe_api_error(exc)) from exc
            if task.is_final:
                if not task.succeeded:
                    log.info("Job %d: task %s ended %s (%s)", job.id, task.id, task.status,
                             task.error.code if task.error else "no error")
                    raise JobFailed(failures.describe_task_error(task.error))
                return task
            elapsed = self._clock.monotonic() - accepted
            delay = policy.next_delay(elapsed=elapsed, estimated=task.estimated_time,
                                      progress=task.progress)

    def _eta(self, accepted_wall: datetime, elapsed: float, task: Task,
             policy: PollPolicy) -> datetime | None:
        estimate = task.estimated_time or policy.default_estimate
        if 0 < task.progress < 100 and elapsed > 0:
            estimate = elapsed * 100 / task.progress
        eta = accepted_wall + timedelta(seconds=estimate)
        return eta if eta > self._clock.now() else None

    async def _download(self, job: Job, rules: JobKindRules, urls: tuple[str, ...],
                        folder: Path) -> list[ResultFile]:
        """Fetch every result at once, streamed to files, then check each is what it claims."""
        folder.mkdir(parents=True, exist_ok=True)

        async def fetch(index: int, url: str) -> ResultFile:
            path = folder / f"result-{index + 1}"
            await download_retrying(self._clock)(
                download_to_file, self._session, url, path,
                max_bytes=self._settings.max_result_bytes, timeout=DOWNLOAD_TIMEOUT,
            )
            return await rules.check_result(path, url)

        try:
            return list(await asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls))))
        except DownloadError as exc:
            log.warning("Job %d: %s", job.id, exc)
            raise JobFailed(failures.DOWNLOAD_FAILED) from exc

    async def cancel_unstarted(self, job_id: int, failure: JobFailure) -> None:
        """End a job that was written but never started (e.g. Discord refused the answer)."""
        await self._mark_failed_and_refund(job_id, failure)

    async def _fail(self, job: Job, failure: JobFailure, reporter: JobReporter) -> None:
        try:
            refunded = await self._mark_failed_and_refund(job.id, failure)
        except JobAlreadyFinished:
            return
        await self._report(job.id, reporter.show_failure(job, failure, refunded))

    async def _mark_failed_and_refund(self, job_id: int, failure: JobFailure) -> int | None:
        async with self._db.transaction() as tx:
            await self._store.mark_failed(tx, job_id, code=failure.code, message=failure.message)
            refunded = await self._ledger.refund(tx, job_id=job_id, reason=failure.code)
        log.info("Job %d: failed (%s), refunded %s milli-credits", job_id, failure.code, refunded)
        return refunded

    async def _report(self, job_id: int, call: Awaitable[None]) -> None:
        """Await a reporter call; a display problem never stops a paid job."""
        try:
            await call
        except Exception:
            log.exception("Job %d: showing the job failed", job_id)
