"""The figures of one run, read from what the fakes recorded and from the bot's database: nothing
here relies on the bot reporting on itself."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.burst import Fired
from bench.world import World

MIN_EDIT_GAP = 3.0  # seconds: Discord's webhook limit, and the target
_TASK_READ = re.compile(r"^/v1/tasks/(?P<task>[^/]+)$")
_CREATE = ("/v1/images/generations", "/v1/videos/generations")
_TOKEN_ROUTE = re.compile(r"^/webhooks/\d+/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)$")
_CHANNEL_ROUTE = re.compile(r"^/channels/\d+/messages/(?P<message>\d+)$")


@dataclass
class BigVideo:
    size: int            # bytes of the result EvoLink served
    uploaded: int        # bytes of the file(s) the bot posted (re-encoded to fit Discord)
    rss_before: int      # bytes resident just before the job
    peak_during: int     # the kernel's high-water mark of resident memory during the job
    seconds: float       # from the command to the result being accepted

    @property
    def growth(self) -> int:
        return self.peak_during - self.rss_before


@dataclass
class RunFigures:
    label: str
    jobs: int = 0
    done: int = 0
    failed: int = 0
    creates: int = 0
    polls: Counter[str] = field(default_factory=Counter)        # by kind
    jobs_by_kind: Counter[str] = field(default_factory=Counter)
    delays: list[float] = field(default_factory=list)           # completion -> files accepted, s
    discord_requests: int = 0
    rate_limited: int = 0
    edits: int = 0
    edits_too_close: int = 0       # consecutive edits of one message less than 3 s apart
    shortest_edit_gap: float | None = None
    callbacks_received: int = 0
    most_in_flight: int = 0        # the most tasks of the burst running at EvoLink at one moment
    peak_rss: int = 0
    cpu_total: float = 0.0
    cpu_burst: float = 0.0
    wall: float = 0.0
    big_video: BigVideo | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def polls_per_job(self) -> float:
        return sum(self.polls.values()) / self.jobs if self.jobs else 0.0

    def polls_per_job_of(self, kind: str) -> float:
        return self.polls[kind] / self.jobs_by_kind[kind] if self.jobs_by_kind[kind] else 0.0

    def delay(self, quantile: float) -> float | None:
        if not self.delays:
            return None
        ordered = sorted(self.delays)
        if quantile == 0.5:
            return statistics.median(ordered)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu_burst / self.jobs if self.jobs else 0.0


def _jobs(database: Path) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT id, kind, state, interaction_id, message_id, task_id FROM jobs").fetchall()


def collect(label: str, world: World, database: Path, fired: Fired) -> RunFigures:
    figures = RunFigures(label)
    jobs = [row for row in _jobs(database) if row["interaction_id"] in fired.interactions]
    figures.jobs = len(jobs)
    figures.jobs_by_kind = Counter(row["kind"] for row in jobs)
    figures.done = sum(1 for row in jobs if row["state"] == "done")
    figures.failed = sum(1 for row in jobs if row["state"] == "failed")
    task_ids = {row["task_id"] for row in jobs if row["task_id"]}

    for request in world.evolink.requests:
        if request.method == "POST" and request.path in _CREATE and request.time >= fired.started:
            figures.creates += 1
        elif request.method == "GET" and (match := _TASK_READ.match(request.path)):
            task = world.evolink.tasks.get(match["task"])
            if task is not None and task.id in task_ids:
                figures.polls[task.kind] += 1
    figures.most_in_flight = _most_at_once(
        [(task.started_at, task.ends_at) for task_id in task_ids if (task := world.evolink.tasks.get(task_id))])
    figures.callbacks_received = sum(1 for attempt in world.evolink.callbacks
                                     if attempt.task_id in task_ids and attempt.answer == 204)

    discord = world.discord
    figures.discord_requests = len(discord.requests)
    figures.rate_limited = len(discord.rate_limited)
    delivered_at = _files_accepted_at(world)
    for row in jobs:
        if row["state"] != "done" or not row["task_id"]:
            continue
        task = world.evolink.tasks.get(row["task_id"])
        record = discord.interaction_responses.get(row["interaction_id"])
        message_id = record.original_message_id if record else row["message_id"]
        accepted = delivered_at.get(message_id)
        if task is not None and accepted is not None:
            figures.delays.append(accepted - task.ends_at)
        else:
            figures.problems.append(f"job {row['id']}: no upload of its files was seen")

    gaps = []
    for interaction_id in fired.interactions:
        record = discord.interaction_responses.get(interaction_id)
        message = discord.messages.get(record.original_message_id) if record and record.original_message_id else None
        if message is None:
            continue
        times = sorted(moment for moment, _ in message.edits)
        figures.edits += len(times)
        gaps.extend(later - earlier for earlier, later in zip(times, times[1:], strict=False))
    figures.edits_too_close = sum(1 for gap in gaps if gap < MIN_EDIT_GAP)
    figures.shortest_edit_gap = min(gaps) if gaps else None
    return figures


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def _files_accepted_at(world: World) -> dict[int, float]:
    """Message id -> when Discord first accepted a request that put files on it."""
    discord = world.discord
    original_by_token = {record.token: record.original_message_id
                         for record in discord.interaction_responses.values()}
    accepted: dict[int, float] = {}
    for request in discord.requests:
        if not request.files or not 200 <= request.status < 300:
            continue
        message_id: int | None = None
        if match := _TOKEN_ROUTE.match(request.path):
            message_id = (original_by_token.get(match["token"]) if match["message"] == "@original"
                          else int(match["message"]))
        elif match := _CHANNEL_ROUTE.match(request.path):
            message_id = int(match["message"])
        if message_id is not None and message_id not in accepted:
            accepted[message_id] = request.time
    return accepted
