"""Running the bot as an operator does: `python -m bot run` in a subprocess, its output captured
to a file that survives a SIGKILL."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class BotProcess:
    """One run of the bot, its output captured to a file that survives a SIGKILL."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(cls, env: dict[str, str], workdir: Path, name: str) -> BotProcess:
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=workdir, env=env,
                stdout=log_file, stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def web_port(self) -> int | None:
        """The port its web server took (HTTP_PORT=0 lets it pick one), once it says so."""
        found = re.search(r"Web server on http://[^:]+:(\d+)", self.log())
        return int(found.group(1)) if found else None

    async def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler, no cleanup, no last write
        await self.process.wait()

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=15)

    def pause(self) -> None:
        """SIGSTOP: the process stalls (as on a long GC pause or a partition) and knows nothing of it."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
