"""The regex side of blocked patterns, as the pattern workers run it (bot/pattern_pool.py):
compiling, the add-time test texts, and searching a prompt within one time budget.

It runs in worker processes, so it imports nothing of the bot: plain functions that take and
return plain values. Its results name catalogue keys and fields; bot/blocked_terms.py turns them
into messages. The prompt's normalisation lives here too (the bot uses it for plain terms), so a
pattern is folded exactly like the text it is matched against.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

# A prompt against ALL of a guild's patterns together (see search() for how the time is shared
# and what happens when it runs out).
CHECK_BUDGET_SECONDS = 0.1

# When a pattern is added: the most one test text may take, and all of them together (so the
# moderator's command is answered well within Discord's 3 seconds).
MATCH_TIMEOUT_SECONDS = 0.05
PROBING_BUDGET_SECONDS = 0.5

# `regex` counts a timeout in CPU time of the whole process (C clock(), checked every 256 steps of
# its engine). A worker process runs one task at a time, so that is the task's own CPU time: no
# other guild's work can use it up. Across patterns and test texts the budgets are kept in wall
# time (time.monotonic), so on a busy machine the later searches get less time rather than the
# wait growing.

# Removed before matching: combining marks (accents once NFKD has split them off, the combining
# grapheme joiner U+034F, variation selectors), format characters (category Cf: U+200B..U+200F,
# U+2060..U+2064, U+FEFF, the soft hyphen U+00AD, tag characters...) and the Hangul fillers,
# which render as blanks and are a common way to hide letters on Discord.
_INVISIBLE = regex.compile(r"[\p{Mn}\p{Me}\p{Cf}\u115F\u1160\u3164\uFFA0]+")

# Patterns run against case-folded text; IGNORECASE lets a moderator write capitals anyway and
# FULLCASE makes "ß" match the "ss" that case-folding produces.
PATTERN_FLAGS = regex.IGNORECASE | regex.FULLCASE


def fold(text: str) -> str:
    """Compatibility forms folded (full-width letters, ligatures), accents and invisibles gone."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKD", text))


def normalise(text: str) -> str:
    # Fold before casefold() so compatibility letters (U+210C, full-width) are lowered too, and
    # again after, since case-folding can produce letters that decompose further.
    return " ".join(fold(fold(text).casefold()).split())


# Fixed repeat counts are expanded when `regex` compiles a pattern, and nested ones multiply:
# "(?:a{1000}){1000}" takes ~270 MB, a few more levels exhaust memory before any timeout can
# help. So the product of all {n}/{n,m} lower bounds is capped (a conservative over-count: an
# escaped brace or \x{41} counts too).
MAX_REPEAT_PRODUCT = 1000
_REPEAT_LOWER_BOUND = regex.compile(r"\{\s*(\d+)\s*(?:,[^}]*)?\}")

# Compiling has no timeout: it is Python code in `regex`. Within the cap above it still reaches
# ~100 ms for a pattern of large Unicode classes ("[\p{L}\p{N}\p{P}\p{S}]{1000}"), where an
# ordinary pattern takes under 3 ms. Each worker compiles a guild's patterns once, so a pattern
# over this limit (in CPU time of the compiling thread) is refused when added, and skipped if it
# is stored anyway.
COMPILE_LIMIT_SECONDS = 0.02


@dataclass(frozen=True)
class Refusal:
    """Why a pattern cannot be used: `rule` is a catalogue key under [blocked_terms], `fields`
    its placeholders. A plain value, so it crosses from a worker process intact."""

    rule: str
    fields: dict[str, object] = field(default_factory=dict)


class Unusable(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.rule)
        self.refusal = refusal


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pattern (as stored) the way it is matched; raises Unusable if it cannot be."""
    factors = (max(1, int(n)) for n in _REPEAT_LOWER_BOUND.findall(pattern))
    if math.prod(factors) > MAX_REPEAT_PRODUCT:
        raise Unusable(Refusal("rule_repeats", {"max": MAX_REPEAT_PRODUCT}))
    started = time.thread_time()
    try:
        # Folded like the prompt (it is ASCII-safe: syntax and escapes are unchanged), so a
        # pattern written with accents still matches the accent-free prompt. Not from `regex`'s
        # own cache, so the time below is the real cost (_compiled keeps the result).
        compiled = regex.compile(fold(pattern), PATTERN_FLAGS, cache_pattern=False)
    except (regex.error, ValueError, OverflowError) as error:
        raise Unusable(Refusal("rule_compile", {"error": str(error)})) from None
    if time.thread_time() - started > COMPILE_LIMIT_SECONDS:
        raise Unusable(Refusal("rule_slow_to_prepare", {"ms": f"{COMPILE_LIMIT_SECONDS * 1000:g}"}))
    return compiled


# Each worker keeps what it compiled last (the patterns of 200 guilds at the cap), so a guild's
# patterns are compiled once per worker rather than for every prompt.
_compiled = functools.lru_cache(maxsize=4096)(compile_pattern)


# Texts on which catastrophic backtracking shows up; a pattern that times out on any of them is
# refused when it is added. They look like normalised prompts (lower case), longer than a real one
# (2,000 characters at most). These fixed ones catch the classic cases; _derived_probes adds texts
# made of the pattern's own characters, which these would miss ("(q+q+)+!0" has no "a").
_PROBES = (
    "a" * 3000 + "!",
    "x" * 3000,
    "ab" * 1500,
    " " * 3000 + "!",
    "a " * 1500 + "!",
    "word " * 600 + "!",
    "1" * 3000 + "!",
)

# Derived test texts: each of the pattern's characters repeated PROBE_RUN times and followed by
# another one (or one the pattern does not name, or both), pairs of them alternated, and a run
# after the characters that precede it in the pattern ("^x(q+q+)+!" needs the "x" first).
PROBE_RUN = 3000
MAX_PROBE_CHARS = 8  # at most 164 derived texts: 10 to 80 ms for an ordinary pattern
MAX_PROBE_PREFIX = 50
_OUTSIDERS = "~#%z7"

# How a group opens after "(?": non-capturing, lookaround, atomic, branch reset, named, a reference
# or recursion, a comment, a condition, inline flags. None of it is text the pattern matches.
_GROUP_HEAD = regex.compile(
    r"\(\?(?:[:=!>|]|<[=!]|P?<\w+>|P[=>]\w+\)|&\w+\)|[R+\-]?\d*\)|\#[^)]*\)|\(\w+\)|[a-zA-Z^\-]*[:)])?")
# Escapes followed by a name or number in braces (\p{L}, \N{...}, \x{41}, \g{1}), or by hex digits.
_BRACED_ESCAPES = "pPNxuUgk"
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_HEX_DIGITS = regex.compile(r"[0-9a-fA-F]*")


def _matched_length(pattern: regex.Pattern, text: str, start: int, end: int) -> int:
    """How many characters `pattern` matches at `start` (0 when it does not)."""
    found = pattern.match(text, start, end)
    return len(found[0]) if found else 0
# Class escapes stand for a character of their class.
_CLASS_ESCAPES = {"d": "1", "w": "a"}
# After a literal, these mean it may be repeated or tried another way: where backtracking lives.
_REPEATS = "+*?{)|"


def _literals(pattern: str) -> list[tuple[str, bool]]:
    """The characters a pattern names (in order), each with whether a quantifier, a group's end or
    an alternation follows it. A best-effort reading of the syntax, only used to choose test
    texts: a character read wrongly costs a useless test text, never a wrong match."""
    found: list[tuple[str, bool]] = []
    class_members: list[int] | None = None  # inside [...]: indexes in `found` of its members
    i, end = 0, len(pattern)
    while i < end:
        ch = pattern[i]
        literal: str | None = None
        if ch == "\\" and i + 1 < end:
            escaped = pattern[i + 1]
            i += 2
            if not escaped.isalnum():
                literal = escaped
            elif escaped in _BRACED_ESCAPES and i < end and pattern[i] == "{":
                i = pattern.find("}", i) + 1 or end
            elif escaped in _HEX_ESCAPES:
                i += _matched_length(_HEX_DIGITS, pattern, i, i + _HEX_ESCAPES[escaped])
            else:
                literal = _CLASS_ESCAPES.get(escaped)
        elif class_members is not None:
            i += 1
            if ch == "]":
                # A class's members are repeated if the class is.
                repeated = i < end and pattern[i] in _REPEATS
                for member in class_members:
                    found[member] = (found[member][0], repeated)
                class_members = None
                continue
            if ch not in "^-&|~[":
                literal = ch
        elif ch == "[":
            class_members = []
            i += 1 + pattern.startswith("^", i + 1)
            if pattern.startswith("]", i):  # "[]...]" starts with a literal "]"
                literal = "]"
                i += 1
        elif ch == "{":  # repeat counts or fuzzy constraints
            i = pattern.find("}", i) + 1 or end
        elif ch == "(" and pattern.startswith("?", i + 1):
            i += _matched_length(_GROUP_HEAD, pattern, i, end) or 2
        else:
            i += 1
            if ch not in "()|*+?^$.":
                literal = ch
        if literal is not None:
            found.append((literal, i < end and pattern[i] in _REPEATS))
            if class_members is not None:
                class_members.append(len(found) - 1)
    return found


def _derived_probes(pattern: str) -> list[str]:
    """Test texts made of the characters `pattern` (as compiled: folded) names, as a normalised
    prompt would hold them; at most MAX_PROBE_CHARS characters, repeated ones first."""
    literals: list[tuple[str, bool]] = []
    for literal, repeated in _literals(pattern):
        # The prompt is case-folded and folded: "ß" arrives as "ss", "Ａ" as "a".
        literals += [(ch, repeated) for ch in fold(fold(literal).casefold()) if not ch.isspace()]
    ordered = [ch for ch, repeated in literals if repeated] + [ch for ch, _ in literals]
    chars = list(dict.fromkeys(ordered))[:MAX_PROBE_CHARS]
    outsider = next((ch for ch in _OUTSIDERS if ch not in chars), "\u00a4")
    probes: list[str] = []
    for ch in chars:
        run, others = ch * PROBE_RUN, [c for c in chars if c != ch]
        probes += [run + after for after in [*others, outsider]]
        # The run broken, then a character the pattern requires: `regex` skips a text that lacks
        # a required character, so "(Q|q)+;" is only slow on a text that has the ";".
        probes += [run + outsider + after for after in others]
        before = _literals_before(literals, ch)
        if before:
            probes.append(before[-MAX_PROBE_PREFIX:] + ch * PROBE_RUN + outsider)
    for first, second in itertools.combinations(chars, 2):
        probes.append((first + second) * (PROBE_RUN // 2) + outsider)
    return list(dict.fromkeys(probes))


def _literals_before(literals: list[tuple[str, bool]], ch: str) -> str:
    """The pattern's literal characters that come before the first `ch`."""
    return "".join(c for c, _ in itertools.takewhile(lambda literal: literal[0] != ch, literals))


def validate(pattern: str) -> Refusal | None:
    """Why `pattern` may not be added (it cannot be compiled, matches an empty text, or is too
    slow on a test text or on all of them together), or None. A pool task."""
    try:
        compiled = compile_pattern(pattern)
    except Unusable as unusable:
        return unusable.refusal
    if compiled.search("", timeout=MATCH_TIMEOUT_SECONDS, concurrent=True) is not None:
        # "bad|" or "x*" would refuse every prompt: almost certainly a slip.
        return Refusal("rule_matches_empty")
    deadline = time.monotonic() + PROBING_BUDGET_SECONDS
    for probe in dict.fromkeys([*_PROBES, *_derived_probes(fold(pattern))]):
        limit = min(MATCH_TIMEOUT_SECONDS, deadline - time.monotonic())
        try:
            if limit <= 0:  # never pass a negative timeout: `regex` reads it as none at all
                raise TimeoutError
            compiled.search(probe, timeout=limit, concurrent=True)
        except TimeoutError:
            if limit == MATCH_TIMEOUT_SECONDS:
                return Refusal("rule_too_slow", {"ms": f"{MATCH_TIMEOUT_SECONDS * 1000:g}"})
            return Refusal("rule_too_slow_in_all", {"ms": f"{PROBING_BUDGET_SECONDS * 1000:g}"})
    return None


def prepare(patterns: Sequence[str]) -> list[tuple[int, Refusal]]:
    """Compile a guild's stored patterns; those that cannot be (rows that never went through
    validate(), or a change in `regex`), by index. A pool task."""
    unusable = []
    for index, pattern in enumerate(patterns):
        try:
            _compiled(pattern)
        except Unusable as error:
            unusable.append((index, error.refusal))
    return unusable


@dataclass(frozen=True)
class Verdict:
    matched: int | None  # the first (oldest) pattern that matches, if any
    unchecked: tuple[int, ...] = ()  # patterns that did not finish within the budget


def search(patterns: Sequence[str], text: str, budget: float = CHECK_BUDGET_SECONDS) -> Verdict:
    """Search `text` (normalised) with each pattern, oldest first, all within `budget` seconds.
    A pool task.

    Each pattern may take an equal share of the time left (the budget divided among the patterns
    not yet tried), so time a fast pattern leaves unused passes to those after it, and one slow
    pattern can never use up the time of the others: a prompt made to be slow for one pattern
    still meets every other. The patterns that needed more than their share are then tried again,
    oldest first, sharing what is left. A pattern that still does not finish is skipped, as if it
    did not match: refusing instead would let one slow pattern refuse every prompt.
    """
    compiled: list[regex.Pattern | None] = []
    for pattern in patterns:  # before the clock starts: once per worker, not per prompt
        try:
            compiled.append(_compiled(pattern))
        except Unusable:
            compiled.append(None)  # prepare() reported it; the guild's list drops it
    deadline = time.monotonic() + budget

    def matches(pattern: regex.Pattern | None, sharing: int) -> bool | None:
        share = (deadline - time.monotonic()) / sharing
        if pattern is None or share <= 0:  # never pass a negative timeout: `regex` reads it as none
            return None
        try:
            # concurrent=True releases the GIL while matching (safe: a str cannot change). A
            # worker process has no other thread to run meanwhile, but were this ever run in a
            # thread of the bot, its event loop would keep running.
            return pattern.search(text, timeout=share, concurrent=True) is not None
        except TimeoutError:
            return None

    matched: int | None = None
    slow: list[int] = []
    for index, compiled_pattern in enumerate(compiled):
        hit = matches(compiled_pattern, len(compiled) - index)
        if hit is None:
            slow.append(index)
        elif hit:
            matched = index
            break
    unchecked: list[int] = []
    for tried, index in enumerate(slow):  # all older than `matched`: the loop above stopped there
        hit = matches(compiled[index], len(slow) - tried)
        if hit is None:
            unchecked.append(index)
        elif hit:
            return Verdict(index, tuple(unchecked))
    return Verdict(matched, tuple(unchecked))
