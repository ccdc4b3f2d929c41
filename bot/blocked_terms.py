"""Per-guild blocked terms: a prompt that contains one is refused before anything is charged.

Matching runs on a normalised prompt (case-folded, accents, invisible characters and compatibility
forms folded away, whitespace collapsed), so "B\u200bÀD" is caught by "bad". A term is either
plain (normalised the same way, then found as a substring) or a regular expression (the
third-party `regex` module, because it can stop a match after a timeout: a moderator's pattern
must never hang the bot). Compiled terms are cached per guild until the guild's list changes.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import regex

from bot.clock import Clock
from bot.db import Database, Row
from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message

log = logging.getLogger(__name__)

MAX_TERM_CHARS = 200
MAX_TERMS_PER_GUILD = 200
MATCH_TIMEOUT_SECONDS = 0.05

# Fixed repeat counts are expanded when `regex` compiles a pattern, and nested ones multiply:
# "(?:a{1000}){1000}" takes ~270 MB, a few more levels exhaust memory before any timeout can
# help. So the product of all {n}/{n,m} lower bounds is capped (a conservative over-count: an
# escaped brace or \x{41} counts too).
MAX_REPEAT_PRODUCT = 1000
_REPEAT_LOWER_BOUND = regex.compile(r"\{\s*(\d+)\s*(?:,[^}]*)?\}")

# Texts on which catastrophic backtracking shows up; a pattern that times out on any of them is
# refused when it is added. They look like normalised prompts (lower case), long as a real one.
_PROBES = (
    "a" * 3000 + "!",
    "x" * 3000,
    "ab" * 1500,
    " " * 3000 + "!",
    "a " * 1500 + "!",
    "word " * 600 + "!",
    "1" * 3000 + "!",
)

# Removed before matching: combining marks (accents once NFKD has split them off, the combining
# grapheme joiner U+034F, variation selectors), format characters (category Cf: U+200B..U+200F,
# U+2060..U+2064, U+FEFF, the soft hyphen U+00AD, tag characters...) and the Hangul fillers,
# which render as blanks and are a common way to hide letters on Discord.
_INVISIBLE = regex.compile(r"[\p{Mn}\p{Me}\p{Cf}\u115F\u1160\u3164\uFFA0]+")

# Patterns run against case-folded text; IGNORECASE lets a moderator write capitals anyway and
# FULLCASE makes "ß" match the "ss" that case-folding produces.
_PATTERN_FLAGS = regex.IGNORECASE | regex.FULLCASE


def _fold(text: str) -> str:
    """Compatibility forms folded (full-width letters, ligatures), accents and invisibles gone."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKD", text))


def normalise(text: str) -> str:
    # Fold before casefold() so compatibility letters (U+210C, full-width) are lowered too, and
    # again after, since case-folding can produce letters that decompose further.
    return " ".join(_fold(_fold(text).casefold()).split())


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


def _compile(pattern: str) -> regex.Pattern:
    """Compile a pattern (as stored) the way it is matched; raises InvalidTerm if it cannot be."""
    factors = (max(1, int(n)) for n in _REPEAT_LOWER_BOUND.findall(pattern))
    if math.prod(factors) > MAX_REPEAT_PRODUCT:
        raise InvalidTerm(_subject(pattern, True),
                          Message("blocked_terms.rule_repeats", max=MAX_REPEAT_PRODUCT))
    try:
        # Folded like the prompt (it is ASCII-safe: syntax and escapes are unchanged), so a
        # pattern written with accents still matches the accent-free prompt.
        return regex.compile(_fold(pattern), _PATTERN_FLAGS)
    except (regex.error, ValueError, OverflowError) as error:
        raise InvalidTerm(_subject(pattern, True),
                          Message("blocked_terms.rule_compile", error=error)) from None


def _validate_pattern(pattern: str) -> None:
    compiled = _compile(pattern)
    subject = _subject(pattern, True)
    try:
        if compiled.search("", timeout=MATCH_TIMEOUT_SECONDS) is not None:
            # "bad|" or "x*" would refuse every prompt: almost certainly a slip.
            raise InvalidTerm(subject, Message("blocked_terms.rule_matches_empty"))
        for probe in _PROBES:
            compiled.search(probe, timeout=MATCH_TIMEOUT_SECONDS)
    except TimeoutError:
        raise InvalidTerm(subject, Message("blocked_terms.rule_too_slow",
                                           ms=f"{MATCH_TIMEOUT_SECONDS * 1000:g}")) from None


@dataclass(frozen=True)
class _Matcher:
    term: BlockedTerm
    needle: str = ""                      # plain terms: the normalised term
    pattern: regex.Pattern | None = None  # patterns: compiled


_COLUMNS = "id, guild_id, term, is_regex, added_by, created_at"


class BlockedTerms:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._cache: dict[int, tuple[_Matcher, ...]] = {}
        # Bumped on every change, so a load that read the table before a change committed does
        # not put its stale result in the cache after the change invalidated it.
        self._generation = 0

    async def add(self, guild_id: int, term: str, *, is_regex: bool, added_by: int) -> BlockedTerm:
        text = term.strip()
        if len(text) > MAX_TERM_CHARS:
            kind = "blocked_terms.subject_pattern_length" if is_regex else "blocked_terms.subject_term_length"
            raise InvalidTerm(Message(kind, count=f"{len(text):,}"),
                              Message("blocked_terms.rule_too_long", max=MAX_TERM_CHARS))
        if is_regex:
            if not text:
                raise InvalidTerm(_subject(text, True), Message("blocked_terms.rule_empty"))
            _validate_pattern(text)
        else:
            key = normalise(text)
            if not key:
                raise InvalidTerm(_subject(text, False), Message("blocked_terms.rule_empty_normalised"))

        async with self._db.transaction() as tx:
            # Inside the write transaction, so two concurrent adds cannot both pass these checks.
            row = await tx.fetchone("SELECT COUNT(*) AS n FROM blocked_terms WHERE guild_id = ?",
                                    (guild_id,))
            if row["n"] >= MAX_TERMS_PER_GUILD:
                raise InvalidTerm(Message("blocked_terms.subject_full", count=row["n"]),
                                  Message("blocked_terms.rule_remove_some"))
            if is_regex:
                duplicate = await tx.fetchone(
                    "SELECT 1 FROM blocked_terms WHERE guild_id = ? AND is_regex = 1 AND term = ?",
                    (guild_id, text))
            else:
                # "Bad" and "bad" are the same term once normalised; the UNIQUE constraint only
                # sees the text as typed.
                plain = await tx.fetchall(
                    "SELECT term FROM blocked_terms WHERE guild_id = ? AND is_regex = 0", (guild_id,))
                duplicate = any(normalise(r["term"]) == key for r in plain)
            if duplicate:
                raise InvalidTerm(_subject(text, is_regex), Message("blocked_terms.rule_duplicate"))
            created_at = _millis(self._clock.now())
            term_id = await tx.insert(
                "INSERT INTO blocked_terms (guild_id, term, is_regex, added_by, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (guild_id, text, int(is_regex), added_by, created_at))
        self._invalidate(guild_id)
        return BlockedTerm(term_id, guild_id, text, is_regex, added_by, created_at)

    async def remove(self, guild_id: int, term: str) -> BlockedTerm | None:
        """Remove by exact text (as listed); if a plain term and a pattern share it, the plain one."""
        return await self._remove(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = ? AND term = ? "
            "ORDER BY is_regex, id LIMIT 1",
            (guild_id, term.strip()))

    async def remove_by_id(self, guild_id: int, term_id: int) -> BlockedTerm | None:
        return await self._remove(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = ? AND id = ?", (guild_id, term_id))

    async def _remove(self, select: str, params: tuple) -> BlockedTerm | None:
        # Every select is scoped by guild_id, and the delete by the row found, so one guild can
        # never remove another's term.
        async with self._db.transaction() as tx:
            row = await tx.fetchone(select, params)
            if row is None:
                return None
            await tx.execute("DELETE FROM blocked_terms WHERE id = ? AND guild_id = ?",
                             (row["id"], row["guild_id"]))
        removed = BlockedTerm.from_row(row)
        self._invalidate(removed.guild_id)
        return removed

    async def list(self, guild_id: int) -> list[BlockedTerm]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM blocked_terms WHERE guild_id = ? ORDER BY created_at, id",
            (guild_id,))
        return [BlockedTerm.from_row(row) for row in rows]

    async def check(self, guild_id: int, prompt: str) -> None:
        """Raise PromptBlocked for the first (oldest) term the prompt contains."""
        matchers = self._cache.get(guild_id)
        if matchers is None:
            matchers = await self._load(guild_id)
        if not matchers:
            return
        text = normalise(prompt)
        for matcher in matchers:
            if matcher.pattern is None:
                hit = matcher.needle in text
            else:
                try:
                    hit = matcher.pattern.search(text, timeout=MATCH_TIMEOUT_SECONDS) is not None
                except TimeoutError:
                    # Skipped rather than treated as a match, so one bad pattern cannot refuse
                    # every prompt. The prompt is not logged: it is the member's.
                    log.warning("Blocked pattern %d of guild %d timed out after %g ms; skipped",
                                matcher.term.id, guild_id, MATCH_TIMEOUT_SECONDS * 1000)
                    continue
            if hit:
                raise PromptBlocked(matcher.term)

    def _invalidate(self, guild_id: int) -> None:
        self._generation += 1
        self._cache.pop(guild_id, None)

    async def _load(self, guild_id: int) -> tuple[_Matcher, ...]:
        generation = self._generation
        matchers = tuple(m for m in map(self._matcher, await self.list(guild_id)) if m is not None)
        if generation == self._generation:
            self._cache[guild_id] = matchers
        return matchers

    @staticmethod
    def _matcher(term: BlockedTerm) -> _Matcher | None:
        if not term.is_regex:
            # An empty needle would be "in" every prompt; add() refuses those, so skip any other.
            needle = normalise(term.term)
            return _Matcher(term, needle=needle) if needle else None
        try:
            return _Matcher(term, pattern=_compile(term.term))
        except InvalidTerm as error:
            # Only a row that bypassed add() (or a change in the `regex` module) gets here;
            # skipping it keeps the rest of the list working.
            log.error("Blocked pattern %d of guild %d is unusable (%s); skipped",
                      term.id, term.guild_id, error.rule)
            return None
