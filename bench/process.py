"""The bot under test as a separate process, as in production, with its memory and CPU read from
/proc (Linux): resident memory sampled as it runs, the kernel's own peak, and CPU seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Collection
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.1


class BotProcess:
    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.peak_rss = 0  # bytes, the largest VmRSS sampled
        self._sampler = asyncio.create_task(self._sample_memory(), name="bot-memory-sampler")

    @classmethod
    async def start(cls, module: str, env: dict[str, str], workdir: Path, name: str) -> BotProcess:
        """`python -m <module> run` (the bot, or the benchmark's baseline variant of it)."""
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, "run", cwd=workdir, env=env,
                stdout=log_file, stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _status(self) -> dict[str, int]:
        """VmRSS and VmHWM (the kernel's peak of VmRSS), in bytes."""
        fields = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024
        return fields

    def rss(self) -> int:
        return self._status()["VmRSS"]

    def peak(self) -> int:
        """The kernel's high-water mark of resident memory since start (or `reset_peak`)."""
        return self._status()["VmHWM"]

    def reset_peak(self) -> None:
        """Start the kernel's high-water mark again from the current resident memory."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far (children such as ffmpeg not included)."""
        fields = _stat_fields(self.pid)
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    async def _sample_memory(self) -> None:
        while self.process.returncode is None:
            with contextlib.suppress(OSError, KeyError):
                self.peak_rss = max(self.peak_rss, self.rss())
            await asyncio.sleep(SAMPLE_SECONDS)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is given up or written on the way out."""
        self._sampler.cancel()
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        self._sampler.cancel()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), timeout=30)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from its third field (the state) on."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        return stat.read().rpartition(")")[2].split()


def process_tree_cpu_seconds(pid: int, leave_out: Collection[int] = ()) -> float:
    """CPU time of a server and its children (PostgreSQL's backends): the parent's own user and
    system time, what its ended children used (cutime, cstime: counted once they are reaped), and
    what its live children have used so far, but for the live children in `leave_out`."""
    fields = _stat_fields(pid)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):  # ended while being read
            child = _stat_fields(int(entry.name))
            if int(child[1]) == pid and int(entry.name) not in leave_out:  # ppid
                ticks += int(child[11]) + int(child[12])
    return ticks / CLOCK_TICKS
