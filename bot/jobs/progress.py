"""What a job's member is shown of it, through the JobReporter that the Discord side implements."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from bot.i18n import Message
from bot.jobs.failures import JobFailure
from bot.jobs.kinds import ResultFile
from bot.jobs.store import Job, LeaseLost

log = logging.getLogger(__name__)


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


async def report(job_id: int, call: Awaitable[None]) -> None:
    """Await a reporter call; a display problem never stops a paid job."""
    try:
        await call
    except LeaseLost:
        log.info("Job %d: not shown from here: another process works on it now", job_id)
    except Exception:
        log.exception("Job %d: showing the job failed", job_id)
