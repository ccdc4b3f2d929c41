"""The job store: one row per generation, the only source of truth for where a job stands.

Every state change is one committed write, made before the step it announces, so a process that
dies at any point leaves a row that says what was already done (and paid for).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.clock import Clock
from bot.db import Database, Row, Transaction
from bot.units import to_millis


class JobState(StrEnum):
    QUEUED = "queued"            # written, credits reserved, waiting for a slot
    SUBMITTING = "submitting"    # the paid create call is (or may be) under way
    RUNNING = "running"          # EvoLink accepted it: task_id is known
    DOWNLOADING = "downloading"  # the results are being fetched
    DELIVERING = "delivering"    # the files are being posted to Discord
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)


class JobKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    guild_id: int
    channel_id: int
    user_id: int
    interaction_id: int | None
    message_id: int | None
    request: dict[str, Any]
    state: JobState
    task_id: str | None
    estimated_seconds: float | None
    result_urls: list[str]
    error_code: str | None
    error_message: str | None
    created_at: int
    submitted_at: int | None
    finished_at: int | None
    locale: str = "en-US"  # the requester's, for the job's public message
    parent_job_id: int | None = None  # the job a button click started this one from
    delivered: list[dict[str, Any]] = field(default_factory=list)  # Discord attachments shown
    removed_by: int | None = None  # who deleted the result message with its Delete button
    callback_token: str | None = None  # the secret in the callback URL given to EvoLink, if any

    @classmethod
    def from_row(cls, row: Row) -> Job:
        return cls(
            id=row["id"],
            kind=JobKind(row["kind"]),
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            interaction_id=row["interaction_id"],
            message_id=row["message_id"],
            request=json.loads(row["request"]),
            state=JobState(row["state"]),
            task_id=row["task_id"],
            estimated_seconds=row["estimated_seconds"],
            result_urls=json.loads(row["result_urls"] or "[]"),
            error_code=row["error_code"],
            error_message=row["error_message"],
            created_at=row["created_at"],
            submitted_at=row["submitted_at"],
            finished_at=row["finished_at"],
            locale=row["locale"],
            parent_job_id=row["parent_job_id"],
            delivered=json.loads(row["delivered"] or "[]"),
            removed_by=row["removed_by"],
            callback_token=row["callback_token"],
        )


class JobStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def _now(self) -> int:
        return to_millis(self._clock.now())

    async def create(
        self,
        tx: Transaction,
        *,
        kind: JobKind,
        guild_id: int,
        channel_id: int,
        user_id: int,
        interaction_id: int | None,
        request: dict[str, Any],
        locale: str = "en-US",
        parent_job_id: int | None = None,
    ) -> int:
        now = self._now()
        return await tx.insert(
            "INSERT INTO jobs (kind, guild_id, channel_id, user_id, interaction_id, request, state, "
            "created_at, updated_at, locale, parent_job_id) "
            "VALUES (:kind, :guild, :channel, :user, :interaction, :request, 'queued', :now, :now, :locale, "
            ":parent) RETURNING id",
            {"kind": kind.value, "guild": guild_id, "channel": channel_id, "user": user_id,
             "interaction": interaction_id, "request": json.dumps(request), "now": now, "locale": locale,
             "parent": parent_job_id},
        )

    async def get(self, job_id: int) -> Job:
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = :id", {"id": job_id})
        if row is None:
            raise KeyError(f"job {job_id} does not exist")
        return Job.from_row(row)

    async def recent_for_member(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        rows = await self._db.fetchall(
            "SELECT * FROM jobs WHERE guild_id = :guild AND user_id = :user ORDER BY id DESC LIMIT :limit",
            {"guild": guild_id, "user": user_id, "limit": limit},
        )
        return [Job.from_row(row) for row in rows]

    async def unfinished(self) -> list[Job]:
        """Every job a process left unfinished, oldest first (the order they resume in)."""
        rows = await self._db.fetchall(
            "SELECT * FROM jobs WHERE state NOT IN ('done', 'failed') ORDER BY id"
        )
        return [Job.from_row(row) for row in rows]

    async def oldest_unfinished(self) -> Job | None:
        row = await self._db.fetchone(
            "SELECT * FROM jobs WHERE state NOT IN ('done', 'failed') ORDER BY id LIMIT 1"
        )
        return Job.from_row(row) if row else None

    async def count_unfinished(self) -> dict[tuple[JobKind, JobState], int]:
        """How many unfinished jobs of every process there are, by kind and state (0 for none)."""
        rows = await self._db.fetchall(
            "SELECT kind, state, COUNT(*) AS jobs FROM jobs WHERE state NOT IN ('done', 'failed') "
            "GROUP BY kind, state"
        )
        counts = {(kind, state): 0 for kind in JobKind for state in JobState if not state.is_final}
        counts.update({(JobKind(row["kind"]), JobState(row["state"])): row["jobs"] for row in rows})
        return counts

    async def set_message(self, job_id: int, message_id: int) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET message_id = :message, updated_at = :now WHERE id = :id",
                {"message": message_id, "now": self._now(), "id": job_id},
            )

    async def set_delivered(self, job_id: int, attachments: list[dict[str, Any]]) -> None:
        """Remember the Discord attachments of the result message (their links are signed and
        expire, so /show re-reads the message when it can; these are the fallback)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET delivered = :delivered, updated_at = :now WHERE id = :id",
                {"delivered": json.dumps(attachments), "now": self._now(), "id": job_id},
            )

    async def mark_removed(self, job_id: int, removed_by: int) -> None:
        """The result message was deleted on purpose (Delete button): never post it again."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET removed_by = :by, updated_at = :now WHERE id = :id",
                {"by": removed_by, "now": self._now(), "id": job_id},
            )

    async def mark_submitting(self, job_id: int, *, callback_token: str | None = None) -> None:
        await self._transition(job_id, JobState.SUBMITTING, submitted_at=self._now(),
                               callback_token=callback_token)

    async def mark_requeued(self, job_id: int) -> None:
        """Back in line after EvoLink refused the create for the account's sake (nothing was
        created, so sending it again later cannot pay twice)."""
        await self._transition(job_id, JobState.QUEUED, submitted_at=None)

    async def mark_running(self, job_id: int, *, task_id: str, estimated_seconds: float | None) -> None:
        await self._transition(
            job_id, JobState.RUNNING, task_id=task_id, estimated_seconds=estimated_seconds
        )

    async def mark_downloading(self, job_id: int, *, result_urls: list[str]) -> None:
        await self._transition(job_id, JobState.DOWNLOADING, result_urls=json.dumps(result_urls))

    async def mark_delivering(self, job_id: int) -> None:
        await self._transition(job_id, JobState.DELIVERING)

    async def mark_done(self, tx: Transaction, job_id: int) -> None:
        await self._transition_in(tx, job_id, JobState.DONE, finished_at=self._now())

    async def mark_failed(self, tx: Transaction, job_id: int, *, code: str, message: str) -> JobKind:
        """Mark the job failed; returns its kind (for the metrics, without another query)."""
        return await self._transition_in(
            tx, job_id, JobState.FAILED, error_code=code, error_message=message,
            finished_at=self._now(),
        )

    async def _transition(self, job_id: int, state: JobState, **fields: Any) -> None:
        async with self._db.transaction() as tx:
            await self._transition_in(tx, job_id, state, **fields)

    async def _transition_in(
        self, tx: Transaction, job_id: int, state: JobState, **fields: Any
    ) -> JobKind:
        """Move an unfinished job to `state`; returns its kind (read by the same statement)."""
        # Column names come from this module's keyword arguments, never from input.
        assignments = "".join(f", {column} = :{column}" for column in fields)
        changed = await tx.fetchone(
            f"UPDATE jobs SET state = :state, updated_at = :now{assignments} "
            "WHERE id = :id AND state NOT IN ('done', 'failed') RETURNING kind",
            {"state": state, "now": self._now(), "id": job_id, **fields},
        )
        if changed is None:
            raise JobAlreadyFinished(job_id)
        return JobKind(changed["kind"])


class JobAlreadyFinished(Exception):
    """A transition was asked of a job that is already done or failed (or does not exist)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is already finished")
        self.job_id = job_id
