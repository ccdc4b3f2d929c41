"""Per-guild blocked terms: a prompt that contains one is refused before anything is charged.

Matching runs on a normalised prompt (case-folded, accents, invisible characters and compatibility
forms folded away, whitespace collapsed), so "B\u200bÀD" is caught by "bad". A term is either
plain (normalised the same way, then found as a substring) or a regular expression (the
third-party `regex` module, because it can stop a match after a timeout: a moderator's pattern
must never hang the bot). Each guild's list is cached until it changes.

One server's patterns must never slow the bot for the others, so:
- all regex work (compiling, the add-time test texts, checking a prompt) runs in worker
  processes, in the guild's turn (bot/pattern_pool.py, bot/pattern_matching.py), never in the
  bot's process; plain terms are a substring search, linear in the prompt, and stay on the loop;
- a prompt is checked against all of a guild's patterns within one time budget
  (CHECK_BUDGET_SECONDS, 100 ms), however many patterns there are;
- a guild may hold at most MAX_PATTERNS_PER_GUILD patterns (and MAX_TERMS_PER_GUILD terms in all);
- a pattern is only added after it ran fast on test texts built from its own characters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bot import audit, pattern_matching
from bot.audit import AuditAction
from bot.clock import Clock
from bot.db import Database, Params, Row
from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message
from bot.pattern_matching import CHECK_BUDGET_SECONDS, Refusal, normalise
from bot.pattern_pool import GuildBusy, PatternPool

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["CHECK_BUDGET_SECONDS", "MAX_PATTERNS_PER_GUILD", "MAX_TERMS_PER_GUILD", "BlockedTerm",
           "BlockedTerms", "InvalidTerm", "PatternsBusy", "PromptBlocked", "normalise"]

MAX_TERM_CHARS = 200
MAX_TERMS_PER_GUILD = 200
# Patterns cost time on every prompt; plain terms almost none. Within the budget, 20 patterns
# still get 5 ms each at the least, far more than an ordinary pattern needs on a 2,000-character
# prompt.
MAX_PATTERNS_PER_GUILD = 20


def _millis(moment: datetime) -> int:
    # Unix milliseconds, as bot/credits.py stores times; kept here so this module stands alone.
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class BlockedTerm:
    id: int
    guild_id: int
    term: str
    is_regex: bool
    added_by: int
    created_at: int

    @classmethod
    def from_row(cls, row: Row) -> BlockedTerm:
        return cls(id=row["id"], guild_id=row["guild_id"], term=row["term"],
                   is_regex=bool(row["is_regex"]), added_by=row["added_by"],
                   created_at=row["created_at"])


class InvalidTerm(UserFacingError):
    """A term a moderator tried to add breaks a rule. The message names the term and the rule;
    the attributes keep them in English, for logs."""

    def __init__(self, subject: Message, rule: Message) -> None:
        self.subject, self.rule = subject.render(ENGLISH), rule.render(ENGLISH)
        super().__init__("blocked_terms.invalid", subject=subject, rule=rule)


class PatternsBusy(UserFacingError):
    """The guild's earlier prompts kept its patterns busy for longer than a prompt may wait (its
    own members sent many at once, or its patterns are slow): refused now rather than answered
    after Discord's deadline. Other guilds are not affected."""


class PromptBlocked(UserFacingError):
    """A prompt contains a blocked term. Raised before any charge, and the message says so."""

    def __init__(self, term: BlockedTerm) -> None:
        self.term = term
        if term.is_regex:
            # The pattern itself is not shown: it may be unreadable, or reveal what else it catches.
            super().__init__("blocked_terms.prompt_matches_pattern")
        else:
            super().__init__("blocked_terms.prompt_contains_term", term=term.term)


def _subject(text: str, is_regex: bool) -> Message:
    # Quoted by hand (in the catalogue), not with repr(): repr would double every backslash.
    return Message("blocked_terms.subject_pattern" if is_regex else "blocked_terms.subject_term", text=text)


def _invalid_pattern(pattern: str, refusal: Refusal) -> InvalidTerm:
    return InvalidTerm(_subject(pattern, True), Message(f"blocked_terms.{refusal.rule}", **refusal.fields))


@dataclass(frozen=True)
class _Matcher:
    term: BlockedTerm
    needle: str = ""  # plain terms: the normalised term (patterns are matched by the workers)


_COLUMNS = "id, guild_id, term, is_regex, added_by, created_at"


class BlockedTerms:
    def __init__(self, db: Database, clock: Clock, *, pool: PatternPool | None = None) -> None:
        self._db = db
        self._clock = clock
        self._pool = pool or PatternPool()
        self._cache: dict[int, tuple[_Matcher, ...]] = {}
        # Bumped on every change, so a load that read the table before a change committed does
        # not put its stale result in the cache after the change invalidated it.
        self._generation = 0

    def close(self) -> None:
        """Stop the pattern workers (idempotent; a later check starts them again)."""
        self._pool.close()

    async def add(self, guild_id: int, term: str, *, is_regex: bool, added_by: int) -> BlockedTerm:
        """A moderator (`added_by`) blocks a word or pattern: checked against the rules, then
        written with its audit row in one transaction. Raises InvalidTerm naming the rule."""
        text = term.strip()
        if len(text) > MAX_TERM_CHARS:
            kind = "blocked_terms.subject_pattern_length" if is_regex else "blocked_terms.subject_term_length"
            raise InvalidTerm(Message(kind, count=f"{len(text):,}"),
                              Message("blocked_terms.rule_too_long", max=MAX_TERM_CHARS))
        if is_regex:
            if not text:
                raise InvalidTerm(_subject(text, True), Message("blocked_terms.rule_empty"))
            refusal = await self._in_turn(guild_id, "blocked_terms.busy_add", pattern_matching.validate, text)
            if refusal is not None:
                raise _invalid_pattern(text, refusal)
        else:
            key = normalise(text)
            if not key:
                raise InvalidTerm(_subject(text, False), Message("blocked_terms.rule_empty_normalised"))

        async with self._db.transaction() as tx:
            # Inside the write transaction, so two concurrent adds cannot both pass these checks.
            row = await tx.fetchone(
                "SELECT COUNT(*) AS n, COALESCE(SUM(is_regex), 0) AS patterns FROM blocked_terms "
                "WHERE guild_id = :guild", {"guild": guild_id})
            assert row is not None  # an aggregate always answers one row
            if row["n"] >= MAX_TERMS_PER_GUILD:
                raise InvalidTerm(Message("blocked_terms.subject_full", count=row["n"]),
                                  Message("blocked_terms.rule_remove_some"))
            if is_regex and row["patterns"] >= MAX_PATTERNS_PER_GUILD:
                raise InvalidTerm(Message("blocked_terms.subject_patterns_full", count=row["patterns"]),
                                  Message("blocked_terms.rule_patterns_cap", max=MAX_PATTERNS_PER_GUILD))
            if is_regex:
                duplicate = await tx.fetchone(
                    "SELECT 1 FROM blocked_terms WHERE guild_id = :guild AND is_regex = 1 AND term = :term",
                    {"guild": guild_id, "term": text}) is not None
            else:
                # "Bad" and "bad" are the same term once normalised; the UNIQUE constraint only
                # sees the text as typed.
                plain = await tx.fetchall(
                    "SELECT term FROM blocked_terms WHERE guild_id = :guild AND is_regex = 0", {"guild": guild_id})
                duplicate = any(normalise(r["term"]) == key for r in plain)
            if duplicate:
                raise InvalidTerm(_subject(text, is_regex), Message("blocked_terms.rule_duplicate"))
            now = self._clock.now()
            created_at = _millis(now)
            term_id = await tx.insert(
                "INSERT INTO blocked_terms (guild_id, term, is_regex, added_by, created_at) "
                "VALUES (:guild, :term, :regex, :by, :at) RETURNING id",
                {"guild": guild_id, "term": text, "regex": int(is_regex), "by": added_by, "at": created_at})
            await audit.record(tx, at=now, guild_id=guild_id, actor_id=added_by,
                               action=AuditAction.BLOCKED_TERM_ADD, details={"term": text, "regex": is_regex})
        self._invalidate(guild_id)
        return BlockedTerm(term_id, guild_id, text, is_regex, added_by, created_at)

    async def remove(self, guild_id: int, term: str, *, actor_id: int) -> BlockedTerm | None:
        """A moderator allows a term again, by its exact text (as listed); if a plain term and a
        pattern share it, the plain one. Returns the term removed (its audit row written in the
        same transaction), or None when nothing matched (nothing written)."""
        return await self._remove(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = :guild AND term = :term "
            "ORDER BY is_regex, id LIMIT 1",
            {"guild": guild_id, "term": term.strip()}, actor_id)

    async def remove_by_id(self, guild_id: int, term_id: int, *, actor_id: int) -> BlockedTerm | None:
        return await self._remove(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = :guild AND id = :id",
            {"guild": guild_id, "id": term_id}, actor_id)

    async def _remove(self, select: str, params: Params, actor_id: int) -> BlockedTerm | None:
        # Every select is scoped by guild_id, and the delete by the row found, so one guild can
        # never remove another's term.
        async with self._db.transaction() as tx:
            row = await tx.fetchone(select, params)
            if row is None:
                return None
            await tx.execute("DELETE FROM blocked_terms WHERE id = :id AND guild_id = :guild",
                             {"id": row["id"], "guild": row["guild_id"]})
            removed = BlockedTerm.from_row(row)
            await audit.record(tx, at=self._clock.now(), guild_id=removed.guild_id, actor_id=actor_id,
                               action=AuditAction.BLOCKED_TERM_REMOVE,
                               details={"term": removed.term, "regex": removed.is_regex})
        self._invalidate(removed.guild_id)
        return removed

    async def list(self, guild_id: int) -> list[BlockedTerm]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = :guild ORDER BY created_at, id",
            {"guild": guild_id})
        return [BlockedTerm.from_row(row) for row in rows]

    async def check(self, guild_id: int, prompt: str) -> None:
        """Raise PromptBlocked for the first (oldest) term the prompt contains, or PatternsBusy if
        the guild's patterns are too busy to check it in time."""
        matchers = self._cache.get(guild_id)
        if matchers is None:
            matchers = await self._load(guild_id)
        if not matchers:
            return
        text = normalise(prompt)
        # Plain terms here (a substring search is linear); only the patterns older than the
        # first plain hit can change which term is reported.
        first_plain = next((i for i, m in enumerate(matchers) if not m.term.is_regex and m.needle in text),
                           len(matchers))
        older = [m.term for m in matchers[:first_plain] if m.term.is_regex]
        if older:
            try:
                verdict = await self._in_turn(guild_id, "blocked_terms.busy_prompt", pattern_matching.search,
                                              tuple(term.term for term in older), text)
            except BrokenProcessPool:
                # A worker died under this guild's patterns, or another's: treated like patterns
                # that did not finish (the pool logged it and starts anew).
                verdict = pattern_matching.Verdict(None, tuple(range(len(older))))
            if verdict.unchecked:
                # The prompt is not logged: it is the member's.
                log.warning("Blocked patterns %s of guild %d did not finish within the %g ms budget "
                            "for a prompt; skipped", ", ".join(str(older[i].id) for i in verdict.unchecked),
                            guild_id, CHECK_BUDGET_SECONDS * 1000)
            if verdict.matched is not None:
                raise PromptBlocked(older[verdict.matched])
        if first_plain < len(matchers):
            raise PromptBlocked(matchers[first_plain].term)

    async def _in_turn(self, guild_id: int, busy_key: str, work: Callable[..., T], *args: object) -> T:
        """Run regex work in a pattern worker, in the guild's turn."""
        try:
            return await self._pool.run(guild_id, work, *args)
        except GuildBusy:
            log.warning("Blocked patterns of guild %d are busy: work waited over %g s for its turn; "
                        "refused", guild_id, self._pool.max_wait_seconds)
            raise PatternsBusy(busy_key) from None

    def _invalidate(self, guild_id: int) -> None:
        self._generation += 1
        self._cache.pop(guild_id, None)

    async def _load(self, guild_id: int) -> tuple[_Matcher, ...]:
        generation = self._generation
        matchers: list[_Matcher] = []
        patterns: list[BlockedTerm] = []
        for term in await self.list(guild_id):
            if term.is_regex:
                patterns.append(term)
                matchers.append(_Matcher(term))
            elif needle := normalise(term.term):
                matchers.append(_Matcher(term, needle=needle))
            # An empty needle would be "in" every prompt; add() refuses those, so skip any other.
        if patterns:
            # Compiled by a worker, which reports the rows that cannot be: only a row that
            # bypassed add() (or a change in the `regex` module) gets there; skipping it keeps the
            # rest of the list working.
            try:
                unusable = await self._in_turn(guild_id, "blocked_terms.busy_prompt", pattern_matching.prepare,
                                               tuple(term.term for term in patterns))
            except BrokenProcessPool:
                return tuple(matchers)  # not cached: the next prompt prepares them on new workers
            for index, refusal in unusable:
                term = patterns[index]
                log.error("Blocked pattern %d of guild %d is unusable (%s); skipped", term.id, term.guild_id,
                          Message(f"blocked_terms.{refusal.rule}", **refusal.fields).render(ENGLISH))
            dropped = {patterns[index].id for index, _ in unusable}
            matchers = [m for m in matchers if m.term.id not in dropped]
        if generation == self._generation:
            self._cache[guild_id] = tuple(matchers)
        return tuple(matchers)
