"""EvoLink callbacks as wake-up calls for the jobs that wait on them.

When the operator gives the bot a public HTTPS address (`PUBLIC_BASE_URL`), each job passes
EvoLink a `callback_url` with an unguessable token in its path, and EvoLink POSTs there when the
task ends. Callbacks are unsigned, so anyone who learnt a URL could post anything to it: a callback
only wakes the job up early, and the job reads the task from EvoLink before it believes anything.
The hub is the meeting point between the web server (which receives callbacks) and the runner
(which waits for them); it holds nothing but one event per job being watched.
"""

from __future__ import annotations

import asyncio
import secrets

CALLBACK_PATH = "/evolink/callbacks"


def new_callback_token() -> str:
    """32 random bytes: the only thing standing between a stranger and waking a job early."""
    return secrets.token_urlsafe(32)


class CallbackHub:
    def __init__(self, public_base_url: str | None) -> None:
        self._base = public_base_url.rstrip("/") if public_base_url else None
        self._events: dict[str, asyncio.Event] = {}

    @property
    def enabled(self) -> bool:
        return self._base is not None

    def url_for(self, token: str) -> str:
        assert self._base is not None, "callbacks are off: no PUBLIC_BASE_URL"
        return f"{self._base}{CALLBACK_PATH}/{token}"

    def event_for(self, token: str) -> asyncio.Event:
        """The event a job waits on; set when a callback with its token arrives. A callback that
        arrives before the job waits (or between two waits) stays set until the job clears it."""
        return self._events.setdefault(token, asyncio.Event())

    def forget(self, token: str) -> None:
        self._events.pop(token, None)

    def deliver(self, token: str) -> bool:
        """A callback arrived for `token`: wake its job. False when no job waits on it (finished
        already, another process's job, or a made-up token)."""
        event = self._events.get(token)
        if event is None:
            return False
        event.set()
        return True

    @property
    def watched(self) -> int:
        return len(self._events)
