"""Per-channel defaults that moderators set with /defaults: what /imagine, /edit and /animate use
for an option a member leaves out. A member's own option always wins; an option the channel does not
set falls back to the bot's built-in default (BUILT_IN).

Values are checked with the same parsers as the commands' options (bot/requests.py) before they
are stored, so a default is always one the API accepts. Every change writes its audit row
(bot/audit.py) in the same transaction, as for every moderator change.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot import audit
from bot.audit import AuditAction
from bot.clock import Clock
from bot.db import Database, Row, Transaction
from bot.requests import (
    DEFAULT_SIZE,
    EditOptions,
    ImageRequest,
    InvalidRequest,
    VideoOptions,
    parse_duration,
    parse_edit_options,
    parse_image_count,
    parse_image_request,
    parse_quality,
    parse_size,
    parse_video_options,
)
from bot.units import from_millis, to_millis

log = logging.getLogger(__name__)

# The options a channel can set, in the order /defaults shows them. prompt_extend is one setting
# for every command: it means the same thing to each. An edit's size follows its picture.
IMAGE_OPTIONS = ("size", "n", "prompt_extend")
EDIT_OPTIONS = ("n", "prompt_extend")
VIDEO_OPTIONS = ("duration", "quality", "prompt_extend")
OPTIONS = ("size", "n", "prompt_extend", "duration", "quality")


@dataclass(frozen=True)
class ChannelDefaults:
    """A channel's defaults; None: not set here. `updated_by`/`updated_at` say who last changed
    them (None when nothing is set)."""

    size: str | None = None           # 'WIDTHxHEIGHT'
    n: int | None = None
    prompt_extend: bool | None = None
    duration: int | None = None       # seconds
    quality: str | None = None        # '480p', '720p' or '1080p'
    updated_by: int | None = None
    updated_at: datetime | None = None

    def is_set(self, option: str) -> bool:
        return getattr(self, option) is not None

    @property
    def options_set(self) -> tuple[str, ...]:
        return tuple(option for option in OPTIONS if self.is_set(option))

    def image_request(self, prompt: str | None, size: str | None = None, n: int | None = None,
                      prompt_extend: bool | None = None) -> ImageRequest:
        """/imagine's options: the member's own where given, else this channel's, else the
        built-in ones; checked (InvalidRequest names the option, the value and the rule)."""
        return parse_image_request(
            prompt,
            size if size and size.strip() else self.size,
            self.n if n is None else n,
            self.prompt_extend if prompt_extend is None else prompt_extend,
        )

    def edit_options(self, prompt: str | None, n: int | str | None = None,
                     prompt_extend: bool | None = None) -> EditOptions:
        """/edit's options (and its forms'), the same way: an edit has no size of its own."""
        return parse_edit_options(prompt, self.n if n is None or n == "" else n,
                                  self.prompt_extend if prompt_extend is None else prompt_extend)

    def video_options(self, prompt: str | None, duration: int | str | None = None, quality: str | None = None,
                      prompt_extend: bool | None = None) -> VideoOptions:
        """/animate's options (and its form's), the same way."""
        return parse_video_options(
            prompt,
            self.duration if duration is None else duration,
            quality if quality and quality.strip() else self.quality,
            self.prompt_extend if prompt_extend is None else prompt_extend,
        )

    def or_built_in(self) -> ChannelDefaults:
        """Every option filled: this channel's value where set, else the built-in one."""
        return replace(BUILT_IN, **{option: getattr(self, option) for option in self.options_set},
                       updated_by=self.updated_by, updated_at=self.updated_at)


# What the commands use when neither the member nor the channel chose: taken from the parsers
# themselves (what they answer for a missing option), so the two never drift apart.
BUILT_IN = ChannelDefaults(
    size="x".join(map(str, parse_size(DEFAULT_SIZE))),
    n=parse_image_count(None),
    prompt_extend=True,
    duration=parse_duration(None),
    quality=parse_quality(None),
)


def checked_value(option: str, value: object) -> str | int | bool:
    """A value a moderator chose -> the form stored and used, or InvalidRequest naming the option,
    the value and the rule (the same words a member gets for the command's own option)."""
    if option == "size":
        width, height = parse_size(str(value))
        return f"{width}x{height}"
    if option == "n":
        return parse_image_count(_integer(option, value))
    if option == "prompt_extend":
        if not isinstance(value, bool):
            raise TypeError(f"prompt_extend must be a bool, not {value!r}")
        return value
    if option == "duration":
        return parse_duration(value)  # type: ignore[arg-type]
    if option == "quality":
        return parse_quality(str(value))
    raise TypeError(f"{option!r} is not a channel default (expected one of {', '.join(OPTIONS)})")


def _integer(option: str, value: object) -> int:
    # bool is an int in Python, but True images is not a count anyone meant.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int, not {value!r}")
    return value


class ChannelDefaultsStore:
    """The channel_defaults table: one row per channel that has at least one default set."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, guild_id: int, channel_id: int, tx: Transaction | None = None) -> ChannelDefaults:
        """The channel's defaults (all None if it has none). Pass `tx` inside a transaction: the
        database's lock is held by it, so a read outside it would wait forever."""
        sql = "SELECT * FROM channel_defaults WHERE guild_id = :guild AND channel_id = :channel"
        params = {"guild": guild_id, "channel": channel_id}
        row = await (tx.fetchone(sql, params) if tx is not None else self._db.fetchone(sql, params))
        return self._from_row(row) if row is not None else ChannelDefaults()

    async def set(self, tx: Transaction | None, guild_id: int, channel_id: int, actor_id: int,
                  **changes: Any) -> ChannelDefaults:
        """A moderator (`actor_id`) sets some of the channel's defaults (`size="1024x1024", n=4`...);
        the others keep their value. Every value is checked first: one bad value changes nothing.
        The audit row is written in the same transaction. Returns the channel's defaults
        afterwards. `tx=None` runs in a transaction of its own."""
        if not changes:
            raise ValueError("set() needs at least one option to change")
        values = {option: checked_value(option, value) for option, value in changes.items()}
        now = self._now()
        async with self._within(tx) as write:
            await write.execute(
                "INSERT INTO channel_defaults (guild_id, channel_id, updated_by, updated_at) "
                "VALUES (:guild, :channel, :actor, :now) ON CONFLICT (guild_id, channel_id) DO NOTHING",
                {"guild": guild_id, "channel": channel_id, "actor": actor_id, "now": now},
            )
            # Column names come from OPTIONS (checked_value refused anything else), never from input.
            assignments = ", ".join(f"{option} = :{option}" for option in values)
            await write.execute(
                f"UPDATE channel_defaults SET {assignments}, updated_by = :actor, updated_at = :now "
                "WHERE guild_id = :guild AND channel_id = :channel",
                {**{option: _stored(value) for option, value in values.items()},
                 "actor": actor_id, "now": now, "guild": guild_id, "channel": channel_id},
            )
            after = await self.get(guild_id, channel_id, write)
            await audit.record(write, at=self._clock.now(), guild_id=guild_id, actor_id=actor_id,
                               action=AuditAction.DEFAULTS_SET,
                               details={"channel_id": channel_id, **{option: getattr(after, option) for option in values}})
            return after

    async def clear(self, tx: Transaction | None, guild_id: int, channel_id: int, actor_id: int,
                    fields: Iterable[str] | None = None) -> tuple[str, ...]:
        """A moderator (`actor_id`) clears some defaults (all when `fields` is None), so the
        built-in ones apply again; the audit row is written in the same transaction. Returns the
        options that were set and now are not (empty: nothing changed, nothing audited)."""
        wanted = OPTIONS if fields is None else tuple(fields)
        unknown = set(wanted) - set(OPTIONS)
        if unknown:
            raise TypeError(f"not channel defaults: {', '.join(sorted(unknown))}")
        async with self._within(tx) as write:
            current = await self.get(guild_id, channel_id, write)
            cleared = tuple(option for option in OPTIONS if option in wanted and current.is_set(option))
            if not cleared:
                return ()
            if set(current.options_set) <= set(cleared):
                # Nothing left: no row, rather than a row of NULLs.
                await write.execute("DELETE FROM channel_defaults WHERE guild_id = :guild AND channel_id = :channel",
                                    {"guild": guild_id, "channel": channel_id})
            else:
                assignments = ", ".join(f"{option} = NULL" for option in cleared)
                await write.execute(
                    f"UPDATE channel_defaults SET {assignments}, updated_by = :actor, updated_at = :now "
                    "WHERE guild_id = :guild AND channel_id = :channel",
                    {"actor": actor_id, "now": self._now(), "guild": guild_id, "channel": channel_id},
                )
            await audit.record(write, at=self._clock.now(), guild_id=guild_id, actor_id=actor_id,
                               action=AuditAction.DEFAULTS_CLEAR,
                               details={"channel_id": channel_id, "cleared": list(cleared)})
            return cleared

    @asynccontextmanager
    async def _within(self, tx: Transaction | None) -> AsyncIterator[Transaction]:
        if tx is not None:
            yield tx
            return
        async with self._db.transaction() as own:
            yield own

    def _from_row(self, row: Row) -> ChannelDefaults:
        values: dict[str, Any] = {}
        for option in OPTIONS:
            stored = row[option]
            if stored is None:
                continue
            value = bool(stored) if option == "prompt_extend" else stored
            try:
                values[option] = checked_value(option, value)
            except (InvalidRequest, TypeError):
                # A value the rules no longer accept (they changed since it was set) must not
                # block every member of the channel: the built-in default applies until a
                # moderator sets it again.
                log.warning("Ignoring the %s default %r of channel %d in guild %d: no longer valid",
                            option, stored, row["channel_id"], row["guild_id"])
        return ChannelDefaults(**values, updated_by=row["updated_by"],
                               updated_at=from_millis(row["updated_at"]))

    def _now(self) -> int:
        return to_millis(self._clock.now())


def _stored(value: str | int | bool) -> str | int:
    return int(value) if isinstance(value, bool) else value

