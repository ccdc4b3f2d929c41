"""The figures of one run, read from what the fakes recorded, from the bot's database and from
/proc: nothing here relies on the bot reporting on itself."""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.burst import FUSE, Fired
from bench.store import BotDatabase
from bench.world import World

MIN_EDIT_GAP = 3.0  # seconds: Discord's webhook limit, and the target
_TASK_READ = re.compile(r"^/v1/tasks/(?P<task>[^/]+)$")
_CREATE = ("/v1/images/generations", "/v1/videos/generations")
_TOKEN_ROUTE = re.compile(r"^/webhooks/\d+/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)$")
_CHANNEL_ROUTE = re.compile(r"^/channels/\d+/messages/(?P<message>\d+)$")
_JOB_PROMPT = re.compile(r"^bench job (?P<number>-?\d+):")  # bench/burst.py's prompts
# The fake EvoLink's User-Agent when it fetches an input picture from the fake Discord's CDN
# (bot/evolink/fake/server.py): those requests are EvoLink's, not the bot's.
_EVOLINK_FETCH_AGENT = "EvoLink-Fetch"
# The edit jobs that fused two pictures, counted apart as well as among the edit jobs.
FUSION = "fusion"
# The states of a job that some process holds a lease on (bot/jobs/store.py).
LEASED_STATES = ("submitting", "running", "downloading", "delivering")


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
class ProcessFigures:
    """One bot process during the burst (until it was killed, for a killed one)."""

    name: str                # "bot" when it is the only one, else "shard <n>"
    peak_rss: int = 0        # bytes: the kernel's high-water mark, reset before the burst
    cpu_burst: float = 0.0   # user + system seconds during the burst
    cpu_total: float = 0.0   # user + system seconds since it started
    idle_cpu_rate: float = 0.0  # CPU seconds per second while connected and idle, before any job
    killed: bool = False


@dataclass
class KillFigures:
    """The kill run: one process SIGKILLed mid-burst, its jobs taken over by the others."""

    lease_seconds: float
    victim: str                            # the killed process's name
    orphans: list[int] = field(default_factory=list)   # ids of the jobs it held a lease on
    last_taken_over: float | None = None   # s from the kill until no orphan was still its (seen every 0.2 s)
    last_delivered: float | None = None    # s from the kill to the last orphan's files accepted
    last_completed: float | None = None    # s from the kill to the last orphan's task completing
    undelivered: int = 0                   # orphans never delivered


@dataclass
class RunFigures:
    label: str
    store: str = "sqlite"
    jobs: int = 0
    done: int = 0
    failed: int = 0
    creates: int = 0
    polls: Counter[str] = field(default_factory=Counter)        # by the job's kind: image, video, edit
    jobs_by_kind: Counter[str] = field(default_factory=Counter)  # and FUSION, the edits of two pictures
    done_by_kind: Counter[str] = field(default_factory=Counter)
    failed_by_kind: Counter[str] = field(default_factory=Counter)
    delays: list[float] = field(default_factory=list)           # completion -> files accepted, s
    discord_requests: int = 0     # the bot's requests to Discord (the fake EvoLink's fetches left out)
    pictures_fetched: int = 0     # input pictures the fake EvoLink fetched from the fake Discord's CDN
    rate_limited: int = 0
    rate_limited_by: Counter[str] = field(default_factory=Counter)   # "<bucket>: <route>" -> 429s
    shown_with_bot_token: int = 0  # jobs whose message was edited with the bot token (not the interaction's)
    edits: int = 0
    edits_too_close: int = 0       # consecutive edits of one message less than 3 s apart
    shortest_edit_gap: float | None = None
    callbacks_received: int = 0
    most_in_flight: int = 0        # the most tasks of the burst running at EvoLink at one moment
    delivered_once: int = 0        # done jobs whose message received their files exactly once
    charged_once: int = 0          # done jobs with exactly one reserve and one settle in the ledger
    created_twice: int = 0         # jobs for which EvoLink created more than one task
    processes: list[ProcessFigures] = field(default_factory=list)
    server_cpu_burst: float | None = None  # PostgreSQL's CPU seconds during the burst (None: SQLite)
    wall: float = 0.0
    big_video: BigVideo | None = None
    kill: KillFigures | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def peak_rss(self) -> int:
        """The largest peak of any one process (each is its own machine's worth of memory)."""
        return max((process.peak_rss for process in self.processes), default=0)

    @property
    def cpu_burst(self) -> float:
        """Every process's CPU during the burst, summed: what the jobs cost the bot in all."""
        return sum(process.cpu_burst for process in self.processes)

    @property
    def cpu_total(self) -> float:
        return sum(process.cpu_total for process in self.processes)

    @property
    def idle_cpu_ms_per_second(self) -> float:
        """What every process together spends per second with nothing to do (heartbeats, the
        shared line's polls, lease checks): part of each burst's CPU that is not per job."""
        return 1000 * sum(process.idle_cpu_rate for process in self.processes)

    @property
    def polls_per_job(self) -> float:
        return sum(self.polls.values()) / self.jobs if self.jobs else 0.0

    def polls_per_job_of(self, kind: str) -> float:
        return self.polls[kind] / self.jobs_by_kind[kind] if self.jobs_by_kind[kind] else 0.0

    def done_and_failed_of(self, kind: str) -> str | None:
        """The jobs of one kind as "done / failed", or None when the run had none of them."""
        if not self.jobs_by_kind[kind]:
            return None
        return f"{self.done_by_kind[kind]} / {self.failed_by_kind[kind]}"

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

    def process_cpu_ms_per_job(self, index: int) -> float:
        """One process's share of `cpu_ms_per_job` (the shares add up to it)."""
        return 1000 * self.processes[index].cpu_burst / self.jobs if self.jobs else 0.0

    @property
    def server_cpu_ms_per_job(self) -> float | None:
        if self.server_cpu_burst is None or not self.jobs:
            return None
        return 1000 * self.server_cpu_burst / self.jobs


def _read(database: BotDatabase) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs = database.rows("SELECT id, kind, state, interaction_id, message_id, task_id, lease_owner FROM jobs")
    ledger = database.rows("SELECT job_id, kind FROM ledger WHERE job_id IS NOT NULL ORDER BY id")
    return jobs, ledger


async def collect(label: str, world: World, database: BotDatabase, fired: Fired, *,
                  kill: KillFigures | None = None, killed_at: float | None = None) -> RunFigures:
    # In a thread: the fakes share this loop, and the bot processes may still be talking to them.
    job_rows, ledger = await asyncio.to_thread(_read, database)
    return figures_of(label, world, job_rows, ledger, fired, kill=kill, killed_at=killed_at)


def figures_of(label: str, world: World, job_rows: list[dict[str, Any]], ledger: list[dict[str, Any]],
               fired: Fired, *, kill: KillFigures | None = None, killed_at: float | None = None) -> RunFigures:
    figures = RunFigures(label)
    jobs = [row for row in job_rows if row["interaction_id"] in fired.interactions]
    figures.jobs = len(jobs)
    for row in jobs:
        kinds = [row["kind"]]
        if fired.commands.get(fired.interactions[row["interaction_id"]]) == FUSE:
            kinds.append(FUSION)
        figures.jobs_by_kind.update(kinds)
        if row["state"] == "done":
            figures.done_by_kind.update(kinds)
        elif row["state"] == "failed":
            figures.failed_by_kind.update(kinds)
    figures.done = sum(1 for row in jobs if row["state"] == "done")
    figures.failed = sum(1 for row in jobs if row["state"] == "failed")
    # The job's kind, not the task's: an edit's task is an image task at EvoLink.
    kind_of_task = {row["task_id"]: row["kind"] for row in jobs if row["task_id"]}
    task_ids = set(kind_of_task)

    for request in world.evolink.requests:
        if request.method == "POST" and request.path in _CREATE and request.time >= fired.started:
            figures.creates += 1
        elif request.method == "GET" and (match := _TASK_READ.match(request.path)):
            if match["task"] in task_ids:
                figures.polls[kind_of_task[match["task"]]] += 1
    figures.most_in_flight = _most_at_once(
        [(task.started_at, task.ends_at) for task_id in task_ids if (task := world.evolink.tasks.get(task_id))])
    figures.callbacks_received = sum(1 for attempt in world.evolink.callbacks
                                     if attempt.task_id in task_ids and attempt.answer == 204)

    discord = world.discord
    fetched = [request for request in discord.requests if _from_evolink(request.headers)]
    figures.discord_requests = len(discord.requests) - len(fetched)
    figures.pictures_fetched = sum(1 for request in fetched if request.time >= fired.started)
    figures.rate_limited = len(discord.rate_limited)
    figures.rate_limited_by = Counter(f"{hit.bucket}: {hit.route}" for hit in discord.rate_limited)
    uploads, strays = _uploads(world, since=fired.started)
    message_of: dict[int, int | None] = {}
    for row in jobs:
        record = discord.interaction_responses.get(row["interaction_id"])
        message_of[row["id"]] = record.original_message_id if record else row["message_id"]
    for row in jobs:
        if row["state"] != "done" or not row["task_id"]:
            continue
        task = world.evolink.tasks.get(row["task_id"])
        message_id = message_of[row["id"]]
        accepted = uploads.get(message_id, []) if message_id is not None else []
        if len(accepted) == 1:
            figures.delivered_once += 1
        elif accepted:
            figures.problems.append(f"job {row['id']}: its files were uploaded {len(accepted)} times")
        if task is not None and accepted:
            figures.delays.append(accepted[0] - task.ends_at)
        else:
            figures.problems.append(f"job {row['id']}: no upload of its files was seen")
    if strays:
        figures.problems.append(f"{strays} upload(s) of files to a message of no job")

    figures.charged_once, charge_problems = _charged_once(jobs, ledger)
    figures.problems += charge_problems
    numbers = set(fired.interactions.values())
    tasks_per_job = Counter(int(match["number"]) for task in world.evolink.tasks.values()
                            if (match := _JOB_PROMPT.match(task.prompt)) and int(match["number"]) in numbers)
    figures.created_twice = sum(1 for count in tasks_per_job.values() if count > 1)
    job_messages = {message_id for message_id in message_of.values() if message_id is not None}
    figures.shown_with_bot_token = len({
        int(match["message"]) for request in discord.requests
        if request.method == "PATCH" and request.time >= fired.started and (match := _CHANNEL_ROUTE.match(request.path))
    } & job_messages)
    figures.kill = kill
    if kill is not None and killed_at is not None:
        _orphans_delivered(kill, killed_at, jobs, message_of, uploads, world)

    gaps: list[float] = []
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


def _from_evolink(headers: dict[str, str]) -> bool:
    """Whether a request to the fake Discord is the fake EvoLink fetching an input picture."""
    return any(name.lower() == "user-agent" and value == _EVOLINK_FETCH_AGENT for name, value in headers.items())


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def _uploads(world: World, since: float) -> tuple[dict[int, list[float]], int]:
    """Message id -> when Discord accepted each request that put files on it (in order), counting
    requests from `since` on; and how many accepted uploads went to a new message instead."""
    discord = world.discord
    original_by_token = {record.token: record.original_message_id
                         for record in discord.interaction_responses.values()}
    accepted: dict[int, list[float]] = defaultdict(list)
    strays = 0
    for request in discord.requests:
        if not request.files or not 200 <= request.status < 300 or request.time < since:
            continue
        message_id: int | None = None
        if match := _TOKEN_ROUTE.match(request.path):
            message_id = (original_by_token.get(match["token"]) if match["message"] == "@original"
                          else int(match["message"]))
        elif match := _CHANNEL_ROUTE.match(request.path):
            message_id = int(match["message"])
        if message_id is None:
            strays += 1
        else:
            accepted[message_id].append(request.time)
    return accepted, strays


def _charged_once(jobs: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """How many done jobs were reserved once and settled once, and what was wrong with the rest
    (a failed job must be reserved once and refunded once, never settled)."""
    entries: dict[int, list[str]] = defaultdict(list)
    for entry in ledger:
        entries[entry["job_id"]].append(entry["kind"])
    charged_once, problems = 0, []
    for row in jobs:
        kinds = sorted(entries.get(row["id"], []))
        if row["state"] == "done":
            if kinds == ["reserve", "settle"]:
                charged_once += 1
            else:
                problems.append(f"job {row['id']} (done): ledger {kinds}")
        elif row["state"] == "failed" and kinds != ["refund", "reserve"]:
            problems.append(f"job {row['id']} (failed): ledger {kinds}")
    return charged_once, problems


def _orphans_delivered(kill: KillFigures, killed_at: float, jobs: list[dict[str, Any]],
                       message_of: dict[int, int | None], uploads: dict[int, list[float]], world: World) -> None:
    """When the last of the killed process's jobs had its files accepted, and when the last of
    their tasks had completed at EvoLink, both from the kill."""
    by_id = {row["id"]: row for row in jobs}
    delivered, completed = [], []
    for job_id in kill.orphans:
        row = by_id.get(job_id)
        message_id = message_of.get(job_id)
        accepted = uploads.get(message_id, []) if message_id is not None else []
        if accepted:
            delivered.append(accepted[0] - killed_at)
        else:
            kill.undelivered += 1
        task = world.evolink.tasks.get(row["task_id"]) if row is not None and row["task_id"] else None
        if task is not None:
            completed.append(task.ends_at - killed_at)
    kill.last_delivered = max(delivered) if delivered and not kill.undelivered else None
    kill.last_completed = max(completed) if completed else None


def lease_pid(lease_owner: str | None) -> int | None:
    """The process id in a lease's owner, "host:pid:random" (bot/jobs/store.py)."""
    parts = (lease_owner or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
