"""The job runner: takes a written, paid-for job through the line, submit, polling, download and
delivery, and picks every unfinished job up again after a restart.

It knows nothing of Discord: progress and results go to a JobReporter, which the Discord side
implements. The job row is the truth; what lives here in memory (the line, the tasks watching
jobs) is rebuilt from the rows by `resume_unfinished`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from bot.callbacks import CallbackHub, new_callback_token
from bot.clock import Clock
from bot.credits import CreditLedger
from bot.db import Database
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkConnectionError, EvoLinkError, EvoLinkTimeout, ServerError
from bot.evolink.limits import RESULT_DOWNLOAD_TIMEOUT, RESULT_LINK_LIFETIME
from bot.evolink.models import Task, TaskStatus
from bot.i18n import Message
from bot.jobs import failures
from bot.jobs.failures import JobFailed, JobFailure
from bot.jobs.kinds import JobKindRules, ResultFile
from bot.jobs.pause import OUT_OF_CREDITS, PauseReason, SubmissionsPaused, pause_reason_for
from bot.jobs.queue import FairQueue, QueuedJob
from bot.jobs.retrying import create_retrying, download_retrying, poll_retrying
from bot.jobs.store import Job, JobAlreadyFinished, JobKind, JobState, JobStore
from bot.media.downloads import DownloadError, download_to_file
from bot.media.limits import MediaLimits
from bot.requests import ImageRequest, VideoRequest
from bot.units import from_millis

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a paused runner asks EvoLink whether the account works again.
PAUSE_PROBE_SECONDS = 60.0


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
    note: Message | None = None  # e.g. why it is slower than expected; render(locale) shows it
    position: int | None = None  # place in line while queued (1 = next)


class JobReporter(Protocol):
    """Shows a job to the member who asked for it. Implementations must not raise for display
    problems they can recover from; the runner logs and ignores what they do raise, except in
    `deliver`, whose failure fails the job."""

    async def show_progress(self, progress: JobProgress) -> None: ...

    async def deliver(self, job: Job, results: list[ResultFile], charged: int,
                      links_expire_at: datetime) -> None: ...

    async def show_failure(self, job: Job, failure: JobFailure, refunded: int | None) -> None: ...

    def stop(self) -> None:
        """Drop any background work (the bot is shutting down)."""


ReporterFactory = Callable[[Job], JobReporter]


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


SLOW_API_NOTE = Message("runner.slow_api")
OVERDUE_NOTE = Message("runner.overdue")


def waiting_for_own_jobs(running: int) -> Message:
    """Why a job with a place in line does not start: its member's other jobs fill their share."""
    return Message("runner.waiting_for_own_jobs", running=running)


class _AccountRefused(Exception):
    """EvoLink refused a create for the account's sake (401/402/403): the job goes back in line."""

    def __init__(self, reason: PauseReason) -> None:
        super().__init__(reason.code)
        self.reason = reason


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
    ) -> None:
        self._db = db
        # Result downloads take a download slot, shared fairly by the guilds with other media work.
        self._media = media or MediaLimits.unbounded()
        # Off (no PUBLIC_BASE_URL): jobs are polled. On: EvoLink calls back, and polls are a safety net.
        self._callbacks = callbacks if callbacks is not None and callbacks.enabled else None
        self._store = store
        self._ledger = ledger
        self._evolink = evolink
        self._session = session
        self._clock = clock
        self._settings = settings
        self._work_dir = work_dir or Path(tempfile.gettempdir()) / "wan-bot"
        self._queue = FairQueue()
        self._waiting: dict[int, Job] = {}          # the queued jobs, as last read
        self._reporters: dict[int, JobReporter] = {}
        self._in_flight: dict[int, QueuedJob] = {}  # jobs holding a slot at EvoLink
        self._live: dict[int, asyncio.Task[None]] = {}  # the task working on each job
        self._shown_positions: dict[int, tuple[int, str | None]] = {}  # place and note shown
        self._positions_task: asyncio.Task[None] | None = None
        self._positions_stale = False
        self._helpers: set[asyncio.Task[Any]] = set()  # probes, notices: cancelled on close
        self._paused: PauseReason | None = None
        self._closing = False
        # Told when submissions pause (with the reason) and resume (with None).
        self.on_pause_change: Callable[[PauseReason | None], Awaitable[None]] | None = None

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
        if self._paused is not None:
            raise SubmissionsPaused(self._paused)

    def enqueue(self, job: Job, reporter: JobReporter, *, running_limit: int) -> None:
        """Put a submitted job in line; it starts when a slot is free, its member has fewer than
        `running_limit` jobs running, and its turn comes."""
        self._line_up(job, reporter, running_limit)

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
                await self._commit(self._mark_failed_and_refund(job.id, failures.NOT_ACKNOWLEDGED))
                continue
            reporter = reporter_for(job)
            if job.state is JobState.QUEUED:
                self._line_up(job, reporter, running_limits[job.guild_id])
            elif job.state is JobState.SUBMITTING:
                # The create may or may not have reached EvoLink: sending it again could pay twice.
                await self._end_and_tell(job, failures.INTERRUPTED_SUBMIT, reporter)
            else:
                if job.state is JobState.RUNNING:
                    self._in_flight[job.id] = QueuedJob(job.id, job.guild_id, job.user_id)
                self._launch(job, reporter)
        if jobs:
            log.info("Resumed %d unfinished job(s): %s", len(jobs),
                     ", ".join(f"{count} {state}" for state, count in sorted(found.items())))
        self._dispatch()
        return found

    async def cancel_unstarted(self, job_id: int, failure: JobFailure) -> None:
        """End a job that was written but never put in line (e.g. Discord refused the answer)."""
        await self._mark_failed_and_refund(job_id, failure)

    async def close(self) -> None:
        """Stop watching jobs. Their rows keep their state for the next start; nothing is
        refunded here. A write already under way finishes (see `_commit`)."""
        self._closing = True
        tasks = [*self._live.values(), *self._helpers]
        if self._positions_task is not None:
            tasks.append(self._positions_task)
        for task in tasks:
            task.cancel()
        for reporter in self._reporters.values():
            reporter.stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- what operators see and do --------------------------------------------------------------

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            queued=len(self._queue), in_flight=len(self._in_flight),
            finishing=len(self._live) - len(self._in_flight), paused=self._paused,
        )

    def is_busy(self, job_id: int) -> bool:
        return job_id in self._live

    async def refund_stuck(self, job_id: int, failure: JobFailure, reporter_for: ReporterFactory) -> int | None:
        """End an unfinished job now (an operator's call): stop whatever works on it, mark it
        failed, refund it and say so in its message. Raises JobAlreadyFinished if it is done."""
        task = self._live.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._take_out_of_line(job_id)
        job = await self._store.get(job_id)
        refunded = await self._mark_failed_and_refund(job_id, failure)
        reporter = self._reporters.pop(job_id, None) or reporter_for(job)
        self._spawn(self._report(job_id, reporter.show_failure(job, failure, refunded)), f"job-{job_id}-refund")
        self._dispatch()
        return refunded

    async def retry_delivery(self, job_id: int, reporter: JobReporter) -> None:
        """Fetch a job's results again and post them (an operator's call, e.g. after the bot was
        given a missing permission). A job that was already refunded is delivered free; an
        unfinished one is settled as usual. Raises JobBusy if the runner is still on it, and
        JobFailed if the results cannot be fetched or posted."""
        if job_id in self._live or job_id in self._queue:
            raise JobBusy(f"job {job_id} is still being worked on")
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

    # -- the line -------------------------------------------------------------------------------

    def _line_up(self, job: Job, reporter: JobReporter, running_limit: int) -> None:
        self._waiting[job.id] = job
        self._reporters[job.id] = reporter
        self._queue.add(QueuedJob(job.id, job.guild_id, job.user_id, running_limit))
        self._dispatch()

    def _take_out_of_line(self, job_id: int) -> None:
        self._queue.remove(job_id)
        self._waiting.pop(job_id, None)
        self._shown_positions.pop(job_id, None)

    def _dispatch(self) -> None:
        """Start queued jobs while slots are free, fairest first; then refresh the places shown."""
        if self._closing:
            return
        per_member = self._running_per_member()

        def may_start(job: QueuedJob) -> bool:
            return per_member[(job.guild_id, job.user_id)] < self._member_share(job)

        while self._paused is None and len(self._in_flight) < self._settings.max_in_flight:
            entry = self._queue.take_next(may_start)
            if entry is None:
                break
            per_member[(entry.guild_id, entry.user_id)] += 1
            self._in_flight[entry.job_id] = entry
            self._shown_positions.pop(entry.job_id, None)
            self._launch(self._waiting.pop(entry.job_id), self._reporters[entry.job_id])
        if not self._queue:
            return  # nobody waits: no place to show
        self._positions_stale = True
        if self._positions_task is None or self._positions_task.done():
            self._positions_task = asyncio.create_task(self._show_positions(), name="queue-positions")

    def _running_per_member(self) -> Counter[tuple[int, int]]:
        return Counter((job.guild_id, job.user_id) for job in self._in_flight.values())

    def _member_share(self, job: QueuedJob) -> int:
        """How many jobs this member may have running: their guild's limit, within the operator's."""
        return min(self._settings.max_in_flight_per_user, job.running_limit)

    async def _show_positions(self) -> None:
        """Tell each waiting member their place in line when it changed, and when their own
        running jobs are what holds this one back. Reporters only queue the text (edits are
        throttled per message), so this never waits on Discord."""
        while self._positions_stale:
            self._positions_stale = False
            running = self._running_per_member()
            entries = {entry.job_id: entry for entry in self._queue.order()}
            for job_id, position in self._queue.positions().items():
                job = self._waiting.get(job_id)
                entry = entries.get(job_id)
                if job is None or entry is None:
                    continue  # started meanwhile
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
                await self._report(job_id, self._reporters[job_id].show_progress(JobProgress(
                    job, Phase.QUEUED, from_millis(job.created_at), note=note, position=position)))

    def _release_slot(self, job_id: int) -> None:
        if self._in_flight.pop(job_id, None) is not None:
            self._dispatch()

    # -- pausing on account refusals -----------------------------------------------------------

    def _pause(self, reason: PauseReason) -> None:
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
        self._dispatch()

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

    # -- one job ------------------------------------------------------------------------------

    def _launch(self, job: Job, reporter: JobReporter) -> None:
        self._reporters[job.id] = reporter
        self._live[job.id] = asyncio.create_task(self._run(job, reporter), name=f"job-{job.id}")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _folder(self, job_id: int) -> Path:
        return self._work_dir / f"job-{job_id}"

    async def _run(self, job: Job, reporter: JobReporter) -> None:
        folder = self._folder(job.id)
        finished = True
        try:
            await self._execute(job, reporter, folder)
        except _AccountRefused as refused:
            # EvoLink created nothing: the job goes back in line, unpaid at EvoLink.
            finished = False
            await self._commit(self._store.mark_requeued(job.id))
            self._pause(refused.reason)
            self._live.pop(job.id, None)
            slot = self._in_flight.get(job.id)
            running_limit = slot.running_limit if slot else await self._ledger.running_limit(job.guild_id)
            self._release_slot(job.id)
            self._line_up(await self._store.get(job.id), reporter, running_limit)
        except JobFailed as failed:
            await self._end_and_tell(job, failed.failure, reporter)
        except asyncio.CancelledError:
            finished = False  # shutdown or an operator's refund: the row says where it stands
            log.info("Job %d: stopped watching", job.id)
            raise
        except Exception:
            log.exception("Job %d: unexpected error", job.id)
            await self._end_and_tell(job, failures.INTERNAL_ERROR, reporter)
        finally:
            if self._live.get(job.id) is asyncio.current_task():
                del self._live[job.id]
            self._release_slot(job.id)
            if finished:
                self._reporters.pop(job.id, None)
                shutil.rmtree(folder, ignore_errors=True)

    async def _execute(self, job: Job, reporter: JobReporter, folder: Path) -> None:
        rules = self._settings.kinds[job.kind]
        task: Task | None = None
        if job.state is JobState.QUEUED:
            task = await self._submit(job, rules, reporter)
            job = await self._store.get(job.id)
        if job.state is JobState.RUNNING:
            resumed = task is None
            task = await self._watch(job, task or self._stored_task(job), rules, reporter, resumed=resumed)
            self._release_slot(job.id)  # EvoLink is done with it: the next in line may start
            if not task.results:
                raise JobFailed(failures.NO_RESULTS)
            await self._store.mark_downloading(job.id, result_urls=list(task.results))
            job = await self._store.get(job.id)
        # From here on (and when resumed in downloading or delivering) the results are known.
        await self._download_and_deliver(job, reporter, folder, task)

    async def _submit(self, job: Job, rules: JobKindRules, reporter: JobReporter) -> Task:
        # Written before the create, so a job resumed after a crash knows its callback's address.
        token = new_callback_token() if self._callbacks is not None else None
        await self._store.mark_submitting(job.id, callback_token=token)
        await self._report(job.id, reporter.show_progress(
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
                raise _AccountRefused(reason) from exc
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
            await self._report(job.id, reporter.show_progress(progress(SLOW_API_NOTE)))

        retrying = poll_retrying(self._clock, deadline, before_sleep=tell_slow)
        # A resumed job is asked at once: it may have finished while the bot was down.
        delay = 0.0 if resumed else plan.first_delay()
        try:
            while True:
                if not plan.finish_expected:
                    await self._report(job.id, reporter.show_progress(progress()))
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
                        self._pause(reason)
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
        rules = self._settings.kinds[job.kind]
        started_at = from_millis(job.created_at)
        await self._report(job.id, reporter.show_progress(
            JobProgress(job, Phase.DOWNLOADING, started_at, 100)))
        results = await self._download(job, rules, tuple(job.result_urls), folder)

        if not job.state.is_final:
            await self._store.mark_delivering(job.id)
        await self._report(job.id, reporter.show_progress(
            JobProgress(job, Phase.UPLOADING, started_at, 100)))
        # A job refunded earlier (an operator's redelivery) is not charged again, and no job is
        # charged more than it holds (prices may have risen since it was reserved).
        charged = 0 if job.state is JobState.FAILED else rules.charge(job.request, results)
        held = await self._ledger.held_for(job.id)
        if held is not None:
            charged = min(charged, held)
        try:
            # Idempotent: it edits the job's message (or re-sends under the same nonce), so a
            # delivery repeated after a crash still shows the results once.
            await reporter.deliver(job, results, charged, self._links_expire_at(job, task))
        except JobFailed:
            raise  # the reporter already knows why, in the member's words
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

        await self._commit(finish())
        log.info("Job %d: done, %d file(s) delivered", job.id, len(results))

    def _links_expire_at(self, job: Job, task: Task | None) -> datetime:
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
                        max_bytes=self._settings.max_result_bytes, timeout=RESULT_DOWNLOAD_TIMEOUT,
                    )
            return await rules.check_result(path, url)

        try:
            return list(await asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls))))
        except DownloadError as exc:
            log.warning("Job %d: %s", job.id, exc)
            raise JobFailed(failures.DOWNLOAD_FAILED) from exc

    # -- ending a job ---------------------------------------------------------------------------

    async def _end_and_tell(self, job: Job, failure: JobFailure, reporter: JobReporter) -> None:
        try:
            refunded = await self._commit(self._mark_failed_and_refund(job.id, failure))
        except JobAlreadyFinished:
            return
        self._spawn(self._report(job.id, reporter.show_failure(job, failure, refunded)),
                    f"job-{job.id}-failure")

    async def _mark_failed_and_refund(self, job_id: int, failure: JobFailure) -> int | None:
        async with self._db.transaction() as tx:
            await self._store.mark_failed(tx, job_id, code=failure.code, message=failure.message)
            refunded = await self._ledger.refund(tx, job_id=job_id, reason=failure.code)
        log.info("Job %d: failed (%s), refunded %s milli-credits", job_id, failure.code, refunded)
        return refunded

    @staticmethod
    async def _commit(write: Awaitable[T]) -> T:
        """Finish a write even if the job is cancelled meanwhile (shutdown): a settle or a refund
        cut in half would leave the next start to guess."""
        return await asyncio.shield(write)

    async def _report(self, job_id: int, call: Awaitable[None]) -> None:
        """Await a reporter call; a display problem never stops a paid job."""
        try:
            await call
        except Exception:
            log.exception("Job %d: showing the job failed", job_id)
