"""The waiting line: which queued job goes to EvoLink next.

Round-robin across guilds, then across the members of each guild: whoever was served least
recently goes first, so one member with ten jobs cannot starve a channel, and one busy server
cannot starve the others. In one process the line lives in memory (the jobs in it are rows in
state `queued`, which the runner loads back on start); processes sharing a database rebuild it
for each dispatch from the rows and the turns recorded in `line_turns` (bot/jobs/shared_line.py).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# For a job whose member's running limit does not matter (one already running, or a unit test).
NO_RUNNING_LIMIT = 1_000_000
# The "member" whose turns are the guild's own, in the served times a line starts from (no
# Discord user has id 0).
GUILD_TURN = 0


@dataclass(frozen=True)
class QueuedJob:
    job_id: int
    guild_id: int
    user_id: int
    # How many of this member's jobs may run at once in this guild (its moderators' setting); the
    # line skips past a member who has that many running, and comes back when one ends.
    running_limit: int = NO_RUNNING_LIMIT


class FairQueue:
    def __init__(self, served: Mapping[tuple[int, int], int] | None = None) -> None:
        """`served`: when each (guild, member) and each (guild, GUILD_TURN) was last served, for
        a line that continues one dispatched before (by turns counted up from 1)."""
        self._jobs: dict[int, QueuedJob] = {}  # in arrival order (dicts keep insertion order)
        served = served or {}
        self._turns = itertools.count(max(served.values(), default=0) + 1)
        # When each guild and each member was last served; never served counts as 0 (first).
        self._guild_served: dict[int, int] = {}
        self._member_served: dict[tuple[int, int], int] = {}
        for (guild_id, user_id), turn in served.items():
            if user_id == GUILD_TURN:
                self._guild_served[guild_id] = turn
            else:
                self._member_served[(guild_id, user_id)] = turn
        # The turns given out by take_next, as (guild, member or GUILD_TURN, turn), to record.
        self.turns_taken: list[tuple[int, int, int]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._jobs

    def add(self, job: QueuedJob) -> None:
        self._jobs[job.job_id] = job

    def remove(self, job_id: int) -> bool:
        return self._jobs.pop(job_id, None) is not None

    def take_next(self, may_start: Callable[[QueuedJob], bool]) -> QueuedJob | None:
        """Remove and return the first job in line whose member may start one now (e.g. is under
        the per-member limit of jobs in flight); None if there is none."""
        for job in self.order():
            if may_start(job):
                self._jobs.pop(job.job_id)
                turn = next(self._turns)
                self._guild_served[job.guild_id] = turn
                self._member_served[(job.guild_id, job.user_id)] = turn
                self.turns_taken += [(job.guild_id, GUILD_TURN, turn), (job.guild_id, job.user_id, turn)]
                return job
        return None

    def positions(self) -> dict[int, int]:
        """Each queued job's place in line (1 = next), if nobody else arrives."""
        return {job.job_id: place for place, job in enumerate(self.order(), start=1)}

    def order(self) -> list[QueuedJob]:
        """The whole line, by replaying the round-robin on copies of the served times."""
        members: dict[int, dict[int, deque[QueuedJob]]] = {}
        for job in self._jobs.values():
            members.setdefault(job.guild_id, {}).setdefault(job.user_id, deque()).append(job)

        # Heaps of (last served, oldest waiting job id, key): ties go to the longest waiting.
        member_heaps: dict[int, list[tuple[int, int, int]]] = {}
        guild_heap: list[tuple[int, int, int]] = []
        for guild_id, by_member in members.items():
            heap = [(self._member_served.get((guild_id, user_id), 0), line[0].job_id, user_id)
                    for user_id, line in by_member.items()]
            heapq.heapify(heap)
            member_heaps[guild_id] = heap
            guild_heap.append((self._guild_served.get(guild_id, 0), heap[0][1], guild_id))
        heapq.heapify(guild_heap)

        order: list[QueuedJob] = []
        turn = 10**18  # simulated turns come after every real one
        while guild_heap:
            _, _, guild_id = heapq.heappop(guild_heap)
            heap = member_heaps[guild_id]
            _, _, user_id = heapq.heappop(heap)
            line = members[guild_id][user_id]
            order.append(line.popleft())
            turn += 1
            if line:
                heapq.heappush(heap, (turn, line[0].job_id, user_id))
            if heap:
                heapq.heappush(guild_heap, (turn, heap[0][1], guild_id))
        return order
