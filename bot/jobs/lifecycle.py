"""One job's steps from its row: submit, watch, download, deliver and settle, or fail and refund.

Watching is by polls, or by EvoLink's callbacks with polls as a safety net; an operator's
redelivery repeats the last steps. The job row is the truth: each step is written before the next
begins, so a job resumed after a restart picks up where its row says it stands. Which job starts
when is bot/jobs/line.py.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp

from bot.callbacks import CallbackHub, new_callback_token
from bot.clock import Clock
from bot.credits import CreditLedger
from bot.db import Database, Transaction
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkConnectionError, EvoLinkError, EvoLinkTimeout, ServerError
from bot.evolink.limits import RESULT_DOWNLOAD_TIMEOUT, RESULT_LINK_LIFETIME
from bot.evolink.models import Task, TaskStatus
from bot.i18n import Message
from bot.jobs import failures
from bot.jobs.failures import JobFailed, JobFailure
from bot.jobs.kinds import JobKindRules, ResultFile
from bot.jobs.line import JobLine, Spawner
from bot.jobs.pause import PAUSE_PROBE_SECONDS, AccountRefused, pause_reason_for
from bot.jobs.progress import JobProgress, JobReporter, Phase, report
from bot.jobs.retrying import create_retrying, download_retrying, poll_retrying
from bot.jobs.store import Job, JobAlreadyFinished, JobKind, JobState, JobStore, LeaseLost
from bot.media.downloads import DownloadError, download_to_file
from bot.media.limits import MediaLimits
from bot.units import from_millis

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOW_API_NOTE = Message("runner.slow_api")
OVERDUE_NOTE = Message("runner.overdue")


class JobObserver(Protocol):
    """Told when this process ends a job, once that is committed: its kind and `done` or `failed`
    (bot.metrics.Metrics is one)."""

    def job_finished(self, kind: str, outcome: str) -> None: ...


async def commit(write: Awaitable[T]) -> T:
    """Finish a write even if the job is cancelled meanwhile (shutdown): a settle or a refund
    cut in half would leave the next start to guess."""
    return await asyncio.shield(write)


class JobLifecycle:
    """Takes each job the line starts through its steps, and ends it: settled or refunded."""

    def __init__(
        self,
        *,
        db: Database,
        store: JobStore,
        ledger: CreditLedger,
        evolink: EvoLinkClient,
        session: aiohttp.ClientSession,
        clock: Clock,
        kinds: dict[JobKind, JobKindRules],
        max_result_bytes: int,
        line: JobLine,
        spawn: Spawner,
        work_dir: Path | None = None,
        callbacks: CallbackHub | None = None,
        media: MediaLimits | None = None,
        observer: JobObserver | None = None,
    ) -> None:
        self._db = db
        self._observer = observer
        # Result downloads take a download slot, shared fairly by the guilds with other media work.
        self._media = media or MediaLimits.unbounded()
        # Off (no PUBLIC_BASE_URL): jobs are polled. On: EvoLink calls back, and polls are a safety net.
        self._callbacks = callbacks if callbacks is not None and callbacks.enabled else None
        self._store = store
        self._ledger = ledger
        self._evolink = evolink
        self._session = session
        self._clock = clock
        self._kinds = kinds
        self._max_result_bytes = max_result_bytes
        # A job gives its slot back once EvoLink is done with it, and pauses the line when
        # EvoLink refuses the account.
        self._line = line
        self._spawn = spawn
        self._work_dir = work_dir or Path(tempfile.gettempdir()) / "wan-bot"

    async def run(self, job: Job, reporter: JobReporter) -> None:
        """Take a job from the state its row is in to its end (the task the line starts)."""
        folder = self._folder(job.id)
        finished = True
        try:
            await self._execute(job, reporter, folder)
        except AccountRefused as refused:
            # EvoLink created nothing: the job goes back in line, unpaid at EvoLink.
            finished = False
            await commit(self._store.mark_requeued(job.id))
            await self._line.put_back(job, reporter, refused.reason)
        except JobFailed as failed:
            await self.end_and_tell(job, failed.failure, reporter)
        except LeaseLost:
            # Another process took the job over (this one stalled past its lease): it finishes the
            # job and edits its message; this one stops without a word, and leaves the files
            # (the other process may be on this machine, using them).
            log.warning("Job %d: taken over by another process; stopped working on it", job.id)
            finished = False
            self._line.abandon(job.id)
        except asyncio.CancelledError:
            finished = False  # shutdown or an operator's refund: the row says where it stands
            log.info("Job %d: stopped watching", job.id)
            raise
        except Exception:
            log.exception("Job %d: unexpected error", job.id)
            await self.end_and_tell(job, failures.INTERNAL_ERROR, reporter)
        finally:
            self._line.let_go(job.id, finished=finished)
            if finished:
                shutil.rmtree(folder, ignore_errors=True)

    async def redeliver(self, job_id: int, reporter: JobReporter) -> None:
        """Fetch a job's results again and post them. A job that was already refunded is
        delivered free; an unfinished one is settled as usual. Raises JobFailed if the results
        cannot be fetched or posted."""
        job = await self._store.get(job_id)
        if not job.result_urls:
            raise JobFailed(failures.NOTHING_TO_DELIVER)
        if self._clock.now() >= self._links_expire_at(job, None):
            raise JobFailed(failures.LINKS_EXPIRED)
        folder = self._folder(job.id)
        try:
            await self._download_and_deliver(job, reporter, folder, task=None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _folder(self, job_id: int) -> Path:
        return self._work_dir / f"job-{job_id}"

    # -- the steps ------------------------------------------------------------------------------

    async def _execute(self, job: Job, reporter: JobReporter, folder: Path) -> None:
        rules = self._kinds[job.kind]
        task: Task | None = None
        if job.state is JobState.QUEUED:  # started by the line in memory: claimed here
            async with self._db.transaction() as tx:
                claimed = await self.claim(tx, job.id)
            if claimed is None:
                raise LeaseLost(job.id)  # no longer waiting: ended meanwhile
            job = claimed
        if job.state is JobState.SUBMITTING:  # just claimed (a resumed one is never started)
            task = await self._submit(job, rules, reporter)
            job = await self._store.get(job.id)
        if job.state is JobState.RUNNING:
            resumed = task is None
            task = await self._watch(job, task or self._stored_task(job), rules, reporter, resumed=resumed)
            if not task.results:
                raise JobFailed(failures.NO_RESULTS)
            await self._store.mark_downloading(job.id, result_urls=list(task.results))
            self._line.release_slot(job.id)  # EvoLink is done with it: the next in line may start
            job = await self._store.get(job.id)
        # From here on (and when resumed in downloading or delivering) the results are known.
        await self._download_and_deliver(job, reporter, folder, task)

    async def claim(self, tx: Transaction, job_id: int) -> Job | None:
        """Take a waiting job out of the line for this process, its create written as under
        way, with the callback address it will give EvoLink (written before the create, so a job
        taken over after a crash knows it). None if the job no longer waits."""
        token = new_callback_token() if self._callbacks is not None else None
        return await self._store.claim_queued(tx, job_id, callback_token=token)

    async def _submit(self, job: Job, rules: JobKindRules, reporter: JobReporter) -> Task:
        token = job.callback_token
        await report(job.id, reporter.show_progress(
            JobProgress(job, Phase.SUBMITTING, from_millis(job.created_at))))
        if self._callbacks is not None and token is not None:
            # Listening before the create is sent: EvoLink may call back before it answers.
            self._callbacks.event_for(token)
        try:
            task = await self._create(job, rules, token)
        except BaseException:
            if self._callbacks is not None and token is not None:
                self._callbacks.forget(token)
            raise
        await self._store.mark_running(job.id, task_id=task.id, estimated_seconds=task.estimated_time)
        log.info("Job %d: accepted as %s (estimate %ss)", job.id, task.id, task.estimated_time)
        return task

    async def _create(self, job: Job, rules: JobKindRules, callback_token: str | None) -> Task:
        callback_url = None
        if self._callbacks is not None and callback_token is not None:
            callback_url = self._callbacks.url_for(callback_token)
        try:
            return await create_retrying(self._clock)(rules.create, self._evolink, job.request,
                                                      callback_url)
        except (EvoLinkTimeout, EvoLinkConnectionError, ServerError) as exc:
            # The request may have reached EvoLink and been accepted: retrying could pay twice.
            log.warning("Job %d: create outcome unknown: %s", job.id, exc)
            raise JobFailed(failures.UNKNOWN_CREATE_OUTCOME) from exc
        except EvoLinkError as exc:
            reason = pause_reason_for(exc)
            if reason is not None:
                log.warning("Job %d: create refused for the account (%s); back in line", job.id, exc)
                raise AccountRefused(reason) from exc
            log.warning("Job %d: create refused: %s", job.id, exc)
            raise JobFailed(failures.describe_api_error(exc)) from exc

    def _stored_task(self, job: Job) -> Task:
        """What the row knows of a task accepted before a restart; the first poll fills in the rest."""
        assert job.task_id is not None, "a running job has a task id"
        return Task(
            id=job.task_id, status=TaskStatus.PROCESSING, progress=0, results=(),
            estimated_time=job.estimated_seconds, credits_reserved=None, error=None, model=None,
            created=(job.submitted_at or job.created_at) // 1000,
        )

    async def _watch(self, job: Job, task: Task, rules: JobKindRules, reporter: JobReporter,
                     *, resumed: bool) -> Task:
        """Poll until the task is final, as `rules.polling` plans it (or, in callback mode, when
        EvoLink calls back); report progress as it rises. The deadline counts from the
        submission, so a restart does not give a job more time."""
        callback = self._callback_event(job)
        plan = rules.polling.plan(task.estimated_time, callbacks=callback is not None)
        submitted_wall = from_millis(job.submitted_at or job.created_at)
        already = max(0.0, (self._clock.now() - submitted_wall).total_seconds())
        accepted = self._clock.monotonic() - already
        deadline = accepted + rules.deadline
        started_at = from_millis(job.created_at)

        def progress(note: Message | None = None) -> JobProgress:
            elapsed = self._clock.monotonic() - accepted
            eta: datetime | None = submitted_wall + timedelta(seconds=plan.predicted_finish())
            if eta is not None and eta <= self._clock.now():
                eta = None  # the guess has passed
            if note is None and eta is None and elapsed > (task.estimated_time or rules.polling.default_estimate):
                note = OVERDUE_NOTE
            return JobProgress(job, Phase.GENERATING, started_at, task.progress, eta, note)

        async def tell_slow(_: object) -> None:
            # Called before each retry of a failed poll: the member sees why nothing moves.
            await report(job.id, reporter.show_progress(progress(SLOW_API_NOTE)))

        retrying = poll_retrying(self._clock, deadline, before_sleep=tell_slow)
        # A resumed job is asked at once: it may have finished while the bot was down.
        delay = 0.0 if resumed else plan.first_delay()
        try:
            while True:
                self._still_ours(job.id)
                if not plan.finish_expected:
                    await report(job.id, reporter.show_progress(progress()))
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    raise JobFailed(failures.TIMED_OUT)
                await self._wait_for_poll(min(delay, remaining), callback)
                try:
                    task = await retrying(self._evolink.get_task, task.id)
                except EvoLinkError as exc:
                    log.warning("Job %d: polling %s failed: %s", job.id, task.id, exc)
                    reason = pause_reason_for(exc)
                    if reason is not None:
                        # The key was refused mid-job: the task still runs at EvoLink, so keep the
                        # job and ask again later, as the paused line does, until its deadline.
                        self._line.pause(reason)
                        delay = PAUSE_PROBE_SECONDS
                        continue
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
                plan.observe(elapsed, task.progress)
                delay = plan.next_delay(elapsed)
        finally:
            if callback is not None:
                self._forget_callback(job)

    def _still_ours(self, job_id: int) -> None:
        """Stop (LeaseLost) before showing or sending anything for a job whose lease this process
        may no longer hold: it stalled past it (a pause, a partition) and another process may be
        showing the same job now. Database writes are fenced anyway; Discord edits are not."""
        if self._store.lease_lapsed(job_id):
            raise LeaseLost(job_id)

    def _callback_event(self, job: Job) -> asyncio.Event | None:
        """The event EvoLink's callback for this job sets, when the job was created with one and
        callbacks are still on (a job created before PUBLIC_BASE_URL was set is polled)."""
        if self._callbacks is None or job.callback_token is None:
            return None
        return self._callbacks.event_for(job.callback_token)

    def _forget_callback(self, job: Job) -> None:
        if self._callbacks is not None and job.callback_token is not None:
            self._callbacks.forget(job.callback_token)

    async def _wait_for_poll(self, delay: float, callback: asyncio.Event | None) -> None:
        """Sleep until the next planned poll, or until EvoLink calls back for the task. The
        callback is only a hint (anyone could post one): the poll that follows is the truth."""
        if callback is None:
            await self._clock.sleep(delay)
            return
        if not callback.is_set():
            sleeper = asyncio.ensure_future(self._clock.sleep(delay))
            waiter = asyncio.ensure_future(callback.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waiter.cancel()
        callback.clear()

    async def _download_and_deliver(self, job: Job, reporter: JobReporter, folder: Path,
                                    task: Task | None) -> None:
        rules = self._kinds[job.kind]
        started_at = from_millis(job.created_at)
        await report(job.id, reporter.show_progress(
            JobProgress(job, Phase.DOWNLOADING, started_at, 100)))
        results = await self._download(job, rules, tuple(job.result_urls), folder)

        if not job.state.is_final:
            await self._store.mark_delivering(job.id)
        await report(job.id, reporter.show_progress(
            JobProgress(job, Phase.UPLOADING, started_at, 100)))
        # A job refunded earlier (an operator's redelivery) is not charged again, and no job is
        # charged more than it holds (prices may have risen since it was reserved).
        charged = 0 if job.state is JobState.FAILED else rules.charge(job.request, results)
        held = await self._ledger.held_for(job.id)
        if held is not None:
            charged = min(charged, held)
        self._still_ours(job.id)
        try:
            # Idempotent: it edits the job's message (or re-sends under the same nonce), so a
            # delivery repeated after a crash still shows the results once.
            await reporter.deliver(job, results, charged, self._links_expire_at(job, task))
        except (JobFailed, LeaseLost):
            raise  # the reporter already knows why, in the member's words; or the job is elsewhere
        except Exception as exc:
            log.warning("Job %d: delivery failed: %s", job.id, exc)
            raise JobFailed(failures.DELIVERY_FAILED) from exc
        if job.state.is_final:
            log.info("Job %d: delivered again by an operator", job.id)
            return

        async def finish() -> None:
            async with self._db.transaction() as tx:
                await self._store.mark_done(tx, job.id)
                await self._ledger.settle(tx, job_id=job.id, amount=charged)

        await commit(finish())
        if self._observer is not None:
            self._observer.job_finished(job.kind, JobState.DONE)
        log.info("Job %d: done, %d file(s) delivered", job.id, len(results))

    def _links_expire_at(self, job: Job, task: Task | None) -> datetime:
        # EvoLink's result links live for a fixed time after the task was created.
        if task is not None and task.created:
            created = datetime.fromtimestamp(task.created, UTC)
        else:
            created = from_millis(job.submitted_at or job.created_at)
        return created + RESULT_LINK_LIFETIME

    async def _download(self, job: Job, rules: JobKindRules, urls: tuple[str, ...],
                        folder: Path) -> list[ResultFile]:
        """Fetch every result at once, streamed to files, then check each is what it claims. A
        whole file left by an earlier attempt (before a restart) is used as it is."""
        folder.mkdir(parents=True, exist_ok=True)

        async def fetch(index: int, url: str) -> ResultFile:
            path = folder / f"result-{index + 1}"
            if not path.exists():
                async with self._media.downloads.slot(job.guild_id):
                    await download_retrying(self._clock)(
                        download_to_file, self._session, url, path,
                        max_bytes=self._max_result_bytes, timeout=RESULT_DOWNLOAD_TIMEOUT,
                    )
            return await rules.check_result(path, url)

        try:
            return list(await asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls))))
        except DownloadError as exc:
            log.warning("Job %d: %s", job.id, exc)
            raise JobFailed(failures.DOWNLOAD_FAILED) from exc

    # -- ending a job ---------------------------------------------------------------------------

    async def end_and_tell(self, job: Job, failure: JobFailure, reporter: JobReporter) -> None:
        """Fail and refund the job, then tell its member (in the background)."""
        try:
            refunded = await commit(self.mark_failed_and_refund(job.id, failure))
        except (JobAlreadyFinished, LeaseLost):
            return  # ended already, or another process works on it now
        self._spawn(report(job.id, reporter.show_failure(job, failure, refunded)),
                    f"job-{job.id}-failure")

    async def mark_failed_and_refund(self, job_id: int, failure: JobFailure, *, overrule_lease: bool = False,
                                     only_unacknowledged: bool = False) -> int | None:
        """See JobStore.mark_failed for the two conditions."""
        async with self._db.transaction() as tx:
            kind = await self._store.mark_failed(tx, job_id, code=failure.code, message=failure.message,
                                                 overrule_lease=overrule_lease,
                                                 only_unacknowledged=only_unacknowledged)
            refunded = await self._ledger.refund(tx, job_id=job_id, reason=failure.code)
        if self._observer is not None:
            self._observer.job_finished(kind, JobState.FAILED)
        log.info("Job %d: failed (%s), refunded %s milli-credits", job_id, failure.code, refunded)
        return refunded
