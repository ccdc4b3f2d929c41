"""What every route group of the fake Discord shares: the state they read (set up by
``FakeDiscord.__init__`` in server.py), its URLs, the bot token check, and the helpers tests use to
wait on and read what it recorded."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Self

from aiohttp import web

from tests.fakes.discord.models import (
    FakeGuild,
    FakeMessage,
    InteractionRecord,
    RecordedFile,
    RecordedRequest,
)
from tests.fakes.discord.wire import _UNAUTHORIZED, API_PREFIX, _Reject


class FakeDiscordBase:
    """The base of FakeDiscord's route groups, as Red-DiscordBot's MixinMeta: it declares the state
    they share; each group declares what else it reads."""

    # Set up by FakeDiscord.__init__ (server.py).
    application_id: int
    bot_user_id: int
    bot_username: str
    guilds: dict[int, FakeGuild]
    requests: list[RecordedRequest]
    messages: dict[int, FakeMessage]
    interaction_responses: dict[int, InteractionRecord]
    commands: dict[int | None, list[dict]]
    attachment_size_limit: int
    valid_token: str | None
    port: int | None
    _by_token: dict[str, InteractionRecord]
    _blobs: dict[int, RecordedFile]
    _dm_channels: dict[int, int]
    _channel_guild: dict[int, int | None]

    # ------------------------------------------------------------ URLs

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeDiscord.start() has not been awaited")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------ assertions

    async def wait_for(self, predicate: Callable[[Self], bool], timeout: float = 10.0) -> None:
        """Poll the recorded state until ``predicate(self)`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate(self):
                    return
            except (KeyError, IndexError, AttributeError):
                pass  # state not there yet, e.g. interaction_responses[iid] before the callback
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self, last: int = 25) -> str:
        """Human-readable recent state, for failure messages."""
        lines = [f"last {min(last, len(self.requests))} of {len(self.requests)} requests:"]
        for r in self.requests[-last:]:
            note = " (injected)" if r.injected else " (rate limited)" if r.rate_limited else ""
            if r.form_errors:
                note = f" (invalid form body: {json.dumps(r.form_errors)[:300]})"
            lines.append(f"  {r.method} {r.path} -> {r.status}{note}")
        lines.append(f"messages ({len(self.messages)}):")
        for m in list(self.messages.values())[-last:]:
            names = [a.filename for a in m.attachments]
            lines.append(
                f"  {m.id} ch={m.channel_id} flags={m.flags} deleted={m.deleted} edits={len(m.edits)}"
                f" files={names} content={m.content[:80]!r}"
            )
        lines.append(f"interactions ({len(self.interaction_responses)}):")
        for i in list(self.interaction_responses.values())[-last:]:
            lines.append(
                f"  {i.id} type={i.type} callback={i.callback_type} original={i.original_message_id}"
                f" followups={i.followup_message_ids} expired={i.expired}"
            )
        return "\n".join(lines)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]

    # ------------------------------------------------------------ shared by the bot-token routes

    def _require_bot_auth(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bot ") or not auth[4:].strip():
            raise _Reject(*_UNAUTHORIZED)
        if self.valid_token is not None and auth[4:].strip() != self.valid_token:
            raise _Reject(*_UNAUTHORIZED)
