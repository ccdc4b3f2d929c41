"""The job store: one row per generation, the only source of truth for where a job stands.

Every state change is one committed write, made before the step it announces, so a process that
dies at any point leaves a row that says what was already done (and paid for).

A job that has left the line is claimed with a lease: this process's name, a token new with every
claim, and an expiry the lease keeper (bot/jobs/leases.py) pushes forward while the job is worked
on. Every write of a claimed job is fenced by its token: a process that lost the lease (stalled,
cut off) and wakes up later finds its writes refused (LeaseLost) instead of overwriting the
process that took the job over.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
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

    @property
    def is_leased(self) -> bool:
        """Whether a process works on a job in this state under a lease (it left the line)."""
        return self in LEASED_STATES


LEASED_STATES = (JobState.SUBMITTING, JobState.RUNNING, JobState.DOWNLOADING, JobState.DELIVERING)
_LEASED_SQL = "('submitting', 'running', 'downloading', 'delivering')"


class JobKind(StrEnum):
    IMAGE = "image"  # text to image (/imagine)
    VIDEO = "video"  # image to video (/animate)
    EDIT = "edit"    # image to image: one picture edited, or two fused (/edit)

    @property
    def makes_images(self) -> bool:
        """Whether the job's results are pictures (shown, edited and animated alike)."""
        return self is not JobKind.VIDEO


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
    acknowledged_at: int | None = None  # when Discord accepted the command's answer (may leave the line)
    lease_owner: str | None = None  # the process working on it, once it left the line
    lease_token: str | None = None
    lease_expires_at: int | None = None

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
            acknowledged_at=row["acknowledged_at"],
            lease_owner=row["lease_owner"],
            lease_token=row["lease_token"],
            lease_expires_at=row["lease_expires_at"],
        )


class JobStore:
    """The job rows. `owner` names this process in the leases it takes; `lease_seconds` is how
    long a claim lasts unless renewed."""

    def __init__(self, db: Database, clock: Clock, *, owner: str | None = None,
                 lease_seconds: float = 45.0) -> None:
        self._db = db
        self._clock = clock
        self.owner = owner or new_lease_owner()
        self._lease_ms = int(lease_seconds * 1000)
        self._leases: dict[int, str] = {}  # the token of each job this process holds
        # The tokens of leases this process lost (taken over, given up): its writes of those jobs
        # stay fenced by them, so they are refused rather than landing unfenced.
        self._lost: dict[int, str] = {}
        self._lease_until: dict[int, int] = {}  # when each held lease lapses, as last written (Unix ms)

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
        # A job without an interaction has no answer to wait for: it may leave the line at once.
        acknowledged = now if interaction_id is None else None
        return await tx.insert(
            "INSERT INTO jobs (kind, guild_id, channel_id, user_id, interaction_id, request, state, "
            "created_at, updated_at, locale, parent_job_id, acknowledged_at, lease_owner, lease_expires_at) "
            "VALUES (:kind, :guild, :channel, :user, :interaction, :request, 'queued', :now, :now, :locale, "
            ":parent, :acknowledged, :lease_owner, :lease_expires_at) RETURNING id",
            {"kind": kind.value, "guild": guild_id, "channel": channel_id, "user": user_id,
             "interaction": interaction_id, "request": json.dumps(request), "now": now, "locale": locale,
             "parent": parent_job_id, "acknowledged": acknowledged, **self._origin(now)},
        )

    def _origin(self, now: int | None = None) -> dict[str, Any]:
        """A waiting job's claim by the process that holds its command (no token: it is not being
        worked on yet). That process starts it when its turn comes, and edits its reply with the
        interaction's token; another process starts it only once this claim lapses (the process
        stopped renewing it), and then edits with the bot token, under a tighter rate limit."""
        now = self._now() if now is None else now
        return {"lease_owner": self.owner, "lease_token": None, "lease_expires_at": now + self._lease_ms}

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

    async def acknowledge(self, job_id: int, message_id: int | None) -> bool:
        """Discord accepted the command's answer (`message_id`, when known, is the message the job
        edits): from now on the job may leave the line. False if the job is no longer waiting
        (given up on as never acknowledged)."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE jobs SET acknowledged_at = :now, message_id = COALESCE(:message, message_id), "
                "updated_at = :now WHERE id = :id AND state = 'queued'",
                {"message": message_id, "now": self._now(), "id": job_id},
            )
        return changed == 1

    async def unacknowledged_before(self, created_before: int) -> list[int]:
        """Queued jobs written before `created_before` (Unix ms) whose command was never
        acknowledged: their process died between writing and answering."""
        rows = await self._db.fetchall(
            "SELECT id FROM jobs WHERE state = 'queued' AND acknowledged_at IS NULL "
            "AND created_at < :before ORDER BY id", {"before": created_before})
        return [row["id"] for row in rows]

    async def set_message(self, job_id: int, message_id: int) -> None:
        async with self._db.transaction() as tx:
            await self._fenced(tx, job_id, {"message_id": message_id}, any_state=True)

    async def set_delivered(self, job_id: int, attachments: list[dict[str, Any]]) -> None:
        """Remember the Discord attachments of the result message (their links are signed and
        expire, so /show re-reads the message when it can; these are the fallback)."""
        async with self._db.transaction() as tx:
            await self._fenced(tx, job_id, {"delivered": json.dumps(attachments)}, any_state=True)

    async def mark_removed(self, job_id: int, removed_by: int) -> None:
        """The result message was deleted on purpose (Delete button): never post it again."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET removed_by = :by, updated_at = :now WHERE id = :id",
                {"by": removed_by, "now": self._now(), "id": job_id},
            )

    # -- leases ---------------------------------------------------------------------------------

    @property
    def leases_held(self) -> tuple[int, ...]:
        """The jobs this process holds a lease on."""
        return tuple(sorted(self._leases))

    async def callback_awaited(self, token: str) -> bool:
        """Whether a job waits on an EvoLink callback with this token (in whichever process)."""
        row = await self._db.fetchone(
            "SELECT 1 AS one FROM jobs WHERE callback_token = :token AND state IN ('submitting', 'running')",
            {"token": token})
        return row is not None

    def _lease_fields(self, job_id: int) -> dict[str, Any]:
        token = secrets.token_hex(16)
        self._leases[job_id] = token
        self._lease_until[job_id] = until = self._now() + self._lease_ms
        return {"lease_owner": self.owner, "lease_token": token, "lease_expires_at": until}

    def lease_lapsed(self, job_id: int) -> bool:
        """Whether this process's lease on the job has lapsed by its own clock, or was lost:
        another process may be working on the job, so nothing more may be shown or sent for it
        from here (the database refuses the writes; Discord and EvoLink cannot). Only processes
        sharing a database renew leases; one on its own file holds its jobs for good."""
        if not self._db.shared:
            return False
        return job_id in self._lost or (job_id in self._leases and self._now() >= self._lease_until[job_id])

    async def claim_queued(self, tx: Transaction, job_id: int, *, callback_token: str | None) -> Job | None:
        """Take a waiting job out of the line for this process: it is about to be sent to
        EvoLink (the create is written as under way first). None if it no longer waits."""
        lease = self._lease_fields(job_id)
        row = await tx.fetchone(
            "UPDATE jobs SET state = 'submitting', submitted_at = :now, callback_token = :callback, "
            "lease_owner = :lease_owner, lease_token = :lease_token, lease_expires_at = :lease_expires_at, "
            "updated_at = :now WHERE id = :id AND state = 'queued' RETURNING *",
            {"now": self._now(), "callback": callback_token, "id": job_id, **lease},
        )
        if row is None:
            self._leases.pop(job_id, None)
            return None
        self._lost.pop(job_id, None)
        return Job.from_row(row)

    async def take_over(self, job_id: int, *, even_if_live: bool = False) -> Job | None:
        """Claim a job another process left (its lease expired, or was given up at shutdown),
        to continue it from its last committed step. `even_if_live` claims it whatever its
        lease says (a single process starting on its own file). None if it is not to be had."""
        lease = self._lease_fields(job_id)
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE jobs SET lease_owner = :lease_owner, lease_token = :lease_token, "
                "lease_expires_at = :lease_expires_at, updated_at = :now "
                f"WHERE id = :id AND state IN {_LEASED_SQL} "
                "AND (:any = 1 OR lease_expires_at IS NULL OR lease_expires_at < :now) RETURNING *",
                {"now": self._now(), "id": job_id, "any": int(even_if_live), **lease},
            )
        if row is None:
            self._leases.pop(job_id, None)
            return None
        self._lost.pop(job_id, None)
        return Job.from_row(row)

    async def expired_leases(self) -> list[int]:
        """Jobs out of the line whose lease has lapsed: their process stopped renewing it."""
        rows = await self._db.fetchall(
            f"SELECT id FROM jobs WHERE state IN {_LEASED_SQL} "
            "AND (lease_expires_at IS NULL OR lease_expires_at < :now) ORDER BY id", {"now": self._now()})
        return [row["id"] for row in rows]

    async def renew_leases(self) -> set[int]:
        """Push this process's leases forward; returns the jobs whose lease it no longer holds
        (another process took them over, or an operator ended them)."""
        until = self._now() + self._lease_ms
        async with self._db.transaction() as tx:
            # The waiting jobs this process lined up stay its own to start.
            await tx.execute("UPDATE jobs SET lease_expires_at = :until WHERE lease_owner = :owner "
                             "AND state = 'queued'", {"until": until, "owner": self.owner})
            if not self._leases:
                return set()
            rows = await tx.fetchall(
                "UPDATE jobs SET lease_expires_at = :until "
                f"WHERE lease_owner = :owner AND state IN {_LEASED_SQL} RETURNING id, lease_token",
                {"until": until, "owner": self.owner},
            )
        renewed = {row["id"]: row["lease_token"] for row in rows}
        lost = {job_id for job_id, token in self._leases.items() if renewed.get(job_id) != token}
        for job_id in self._leases.keys() - lost:
            self._lease_until[job_id] = until
        for job_id in lost:
            self._lose(job_id)
        return lost

    async def give_up_leases(self) -> int:
        """Let this process's leases lapse at once (it is stopping): another process may take
        the jobs over, and start the ones waiting, without waiting for them to expire. Returns
        how many jobs under way were given up."""
        for job_id in list(self._leases):
            self._lose(job_id)
        async with self._db.transaction() as tx:
            await tx.execute("UPDATE jobs SET lease_expires_at = 0 WHERE lease_owner = :owner AND state = 'queued'",
                             {"owner": self.owner})
            return await tx.execute(
                f"UPDATE jobs SET lease_expires_at = 0 WHERE lease_owner = :owner AND state IN {_LEASED_SQL}",
                {"owner": self.owner},
            )

    def _lose(self, job_id: int) -> None:
        token = self._leases.pop(job_id, None)
        self._lease_until.pop(job_id, None)
        if token is not None:
            self._lost[job_id] = token

    def _forget(self, job_id: int) -> None:
        """The job ended or went back in line: no lease of it to hold or to fence by."""
        self._leases.pop(job_id, None)
        self._lease_until.pop(job_id, None)
        self._lost.pop(job_id, None)

    # -- the steps ------------------------------------------------------------------------------

    async def mark_requeued(self, job_id: int) -> None:
        """Back in line after EvoLink refused the create for the account's sake (nothing was
        created, so sending it again later cannot pay twice)."""
        await self._transition(job_id, JobState.QUEUED, submitted_at=None, **self._origin())

    async def mark_running(self, job_id: int, *, task_id: str, estimated_seconds: float | None) -> None:
        await self._transition(
            job_id, JobState.RUNNING, task_id=task_id, estimated_seconds=estimated_seconds
        )

    async def mark_downloading(self, job_id: int, *, result_urls: list[str]) -> None:
        await self._transition(job_id, JobState.DOWNLOADING, result_urls=json.dumps(result_urls))

    async def mark_delivering(self, job_id: int) -> None:
        await self._transition(job_id, JobState.DELIVERING)

    async def mark_done(self, tx: Transaction, job_id: int) -> None:
        await self._transition_in(tx, job_id, JobState.DONE, finished_at=self._now(), **_NO_LEASE)

    async def mark_failed(self, tx: Transaction, job_id: int, *, code: str, message: str,
                          overrule_lease: bool = False, only_unacknowledged: bool = False) -> JobKind:
        """Mark the job failed; returns its kind (for the metrics, without another query).
        `overrule_lease`: an operator's call, which ends the job whoever works on it (that
        process finds its next write refused). `only_unacknowledged`: only a job still waiting
        for its command's answer (raises JobAlreadyFinished otherwise)."""
        return await self._transition_in(
            tx, job_id, JobState.FAILED, error_code=code, error_message=message,
            finished_at=self._now(), fence=not overrule_lease,
            condition="state = 'queued' AND acknowledged_at IS NULL" if only_unacknowledged else None,
            **_NO_LEASE,
        )

    async def _transition(self, job_id: int, state: JobState, **fields: Any) -> None:
        async with self._db.transaction() as tx:
            await self._transition_in(tx, job_id, state, **fields)

    async def _transition_in(self, tx: Transaction, job_id: int, state: JobState, *, fence: bool = True,
                             condition: str | None = None, **fields: Any) -> JobKind:
        """Move an unfinished job to `state`; returns its kind (read by the same statement)."""
        kind = await self._fenced(tx, job_id, {"state": state, **fields}, fence=fence, condition=condition)
        assert kind is not None  # an unfinished job's update changed it, or raised
        if state.is_final or state is JobState.QUEUED:
            self._forget(job_id)
        return kind

    async def _fenced(self, tx: Transaction, job_id: int, columns: dict[str, Any], *,
                      fence: bool = True, condition: str | None = None,
                      any_state: bool = False) -> JobKind | None:
        """Update an unfinished job's `columns` (`any_state`: any job's, e.g. an operator's
        redelivery of a failed one), only under this process's lease when it holds one."""
        # Column names come from this module, never from input.
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        where = "id = :id" if any_state else "id = :id AND state NOT IN ('done', 'failed')"
        token = (self._leases.get(job_id) or self._lost.get(job_id)) if fence else None
        if token is not None:
            where += " AND lease_token = :fence_token"
        if condition is not None:
            where += f" AND {condition}"
        changed = await tx.fetchone(
            f"UPDATE jobs SET {assignments}, updated_at = :now WHERE {where} RETURNING kind",
            {**columns, "now": self._now(), "id": job_id, "fence_token": token},
        )
        if changed is not None:
            return JobKind(changed["kind"])
        if any_state and token is None:
            return None
        if token is not None:
            row = await tx.fetchone("SELECT state FROM jobs WHERE id = :id", {"id": job_id})
            if row is not None and not JobState(row["state"]).is_final:
                self._lose(job_id)
                raise LeaseLost(job_id)
        self._forget(job_id)
        raise JobAlreadyFinished(job_id)


_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def new_lease_owner() -> str:
    """A name for this process in the leases it takes: readable in the table, unique per start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseLost(Exception):
    """A write of a job this process no longer holds: another process took it over (this one
    stalled past its lease) or an operator ended it. The work stops; the new owner finishes it."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is now worked on elsewhere")
        self.job_id = job_id


class JobAlreadyFinished(Exception):
    """A transition was asked of a job that is already done or failed (or does not exist)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is already finished")
        self.job_id = job_id
