"""Blocked terms: normalisation defeats trivial evasion, patterns cannot hang the bot, guilds are
isolated, and the per-guild cache follows every change."""

from __future__ import annotations

import logging
import time

import pytest

from bot.blocked_terms import (
    MAX_TERMS_PER_GUILD,
    BlockedTerms,
    InvalidTerm,
    PromptBlocked,
    normalise,
)

GUILD, OTHER_GUILD, MOD = 1001, 1002, 7


@pytest.fixture
def terms(db, clock) -> BlockedTerms:
    return BlockedTerms(db, clock)


async def blocked_by(terms, prompt, guild=GUILD):
    """The term that blocks `prompt`, or None if it passes."""
    try:
        await terms.check(guild, prompt)
    except PromptBlocked as blocked:
        return blocked.term
    return None


async def insert_directly(db, term, *, is_regex, guild=GUILD) -> int:
    """A row that never went through add()'s validation."""
    async with db.transaction() as tx:
        return await tx.insert(
            "INSERT INTO blocked_terms (guild_id, term, is_regex, added_by, created_at) "
            "VALUES (?, ?, ?, ?, 0)", (guild, term, int(is_regex), MOD))


@pytest.mark.parametrize("raw, expected", [
    ("BaD WoRd", "bad word"),
    ("Café crème", "cafe creme"),
    ("ba\u200bd", "bad"),
    ("b\u200c\u200d\u2060\ufeffa\u034fd", "bad"),
    ("ba\u00add", "bad"),
    ("ＢＡＤ", "bad"),
    ("  bad \n\n\t  word  ", "bad word"),
    ("Straße", "strasse"),
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected


async def test_plain_term_survives_evasion(terms):
    added = await terms.add(GUILD, "  bad  ", is_regex=False, added_by=MOD)
    assert added.term == "bad"  # stored as typed, trimmed
    for prompt in ["a BAD dog", "a ba\u200bd dog", "a b\u00ada\u200dd dog", "ＢＡＤ", "bád", "xbadx"]:
        assert await blocked_by(terms, prompt) == added, prompt
    assert await blocked_by(terms, "a good dog") is None


async def test_plain_term_with_accents_and_caps_matches_normalised_forms(terms):
    added = await terms.add(GUILD, "Crème  Brûlée", is_regex=False, added_by=MOD)
    for prompt in ["creme brulee", "CRÈME\nbrûlée", "a cre\u200bme   brulee tart"]:
        assert await blocked_by(terms, prompt) == added, prompt
    with pytest.raises(PromptBlocked) as caught:
        await terms.check(GUILD, "creme brulee")
    assert str(caught.value) == ('Your prompt contains "Crème  Brûlée", which this server does not '
                                 "allow. Nothing was charged.")


async def test_regex_term(terms):
    added = await terms.add(GUILD, r"\bn[a@]sty\b", is_regex=True, added_by=MOD)
    for prompt in ["a nasty thing", "N@STY", "n\u200ba\u0301sty!"]:
        assert await blocked_by(terms, prompt) == added, prompt
    assert await blocked_by(terms, "dynasty") is None
    with pytest.raises(PromptBlocked) as caught:
        await terms.check(GUILD, "so nasty")
    assert caught.value.term == added
    assert str(caught.value) == ("Your prompt matches a pattern this server does not allow. "
                                 "Nothing was charged.")


async def test_pattern_with_accents_matches_the_normalised_prompt(terms):
    await terms.add(GUILD, "Crème", is_regex=True, added_by=MOD)
    assert await blocked_by(terms, "creme") is not None


async def test_catastrophic_pattern_is_refused_at_add_time(terms):
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, "(a+)+$", is_regex=True, added_by=MOD)
    assert str(caught.value) == "pattern '(a+)+$': it is too slow (it took over 50 ms on a test text)"
    assert await terms.list(GUILD) == []


async def test_check_survives_a_slow_pattern(db, terms, caplog):
    slow_id = await insert_directly(db, "(a+)+$", is_regex=True)
    later = await terms.add(GUILD, "zzz", is_regex=False, added_by=MOD)
    prompt = "a" * 5000 + "!"
    with caplog.at_level(logging.WARNING, logger="bot.blocked_terms"):
        started = time.perf_counter()
        await terms.check(GUILD, prompt)  # skipped, not a match
        assert time.perf_counter() - started < 0.5
        # The terms after the slow one are still checked.
        assert await blocked_by(terms, prompt + " zzz") == later
    records = [r for r in caplog.records if r.name == "bot.blocked_terms"]
    assert records and all(r.levelno == logging.WARNING for r in records)
    message = records[0].getMessage()
    assert str(slow_id) in message and str(GUILD) in message and "aaaa" not in message


async def test_exploding_repeat_counts_are_refused_before_compiling(terms):
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, "(?:a{1000}){1000}", is_regex=True, added_by=MOD)
    assert str(caught.value) == ("pattern '(?:a{1000}){1000}': its repeat counts are too large "
                                 "(together they may multiply to at most 1000)")
    await terms.add(GUILD, r"\d{3}-\d{4}", is_regex=True, added_by=MOD)


async def test_pattern_matching_empty_text_is_refused(terms):
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, "bad|", is_regex=True, added_by=MOD)
    assert str(caught.value) == "pattern 'bad|': it matches an empty text, so it would block every prompt"


@pytest.mark.parametrize("term, is_regex, message", [
    ("x" * 201, True, "pattern of 201 characters: at most 200 characters are allowed"),
    ("x" * 250, False, "term of 250 characters: at most 200 characters are allowed"),
    ("([", True, "pattern '([': it does not compile (unterminated character set at position 2)"),
    ("   ", False, "term '': it is empty after normalising"),
    ("\u200b\u00ad", False, "term '\u200b\u00ad': it is empty after normalising"),
    ("", True, "pattern '': it is empty"),
])
async def test_invalid_terms(terms, term, is_regex, message):
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, term, is_regex=is_regex, added_by=MOD)
    assert str(caught.value) == message


async def test_a_term_of_exactly_the_limit_is_allowed(terms):
    await terms.add(GUILD, "x" * 200, is_regex=False, added_by=MOD)


async def test_duplicates(terms):
    await terms.add(GUILD, "bad", is_regex=False, added_by=MOD)
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, " BÁD ", is_regex=False, added_by=MOD)
    assert str(caught.value) == "term 'BÁD': it is already on the list"
    await terms.add(GUILD, "b.d", is_regex=True, added_by=MOD)
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, "b.d", is_regex=True, added_by=MOD)
    assert str(caught.value) == "pattern 'b.d': it is already on the list"
    # The same text as a plain term and as a pattern are different terms.
    await terms.add(GUILD, "b.d", is_regex=False, added_by=MOD)
    assert len(await terms.list(GUILD)) == 3


async def test_per_guild_limit(db, terms):
    async with db.transaction() as tx:
        for i in range(MAX_TERMS_PER_GUILD):
            await tx.execute(
                "INSERT INTO blocked_terms (guild_id, term, added_by, created_at) VALUES (?, ?, ?, 0)",
                (GUILD, f"term{i}", MOD))
    with pytest.raises(InvalidTerm) as caught:
        await terms.add(GUILD, "one more", is_regex=False, added_by=MOD)
    assert str(caught.value) == "this server already has 200 blocked terms: remove some first"
    await terms.add(OTHER_GUILD, "one more", is_regex=False, added_by=MOD)


async def test_guild_isolation(terms):
    mine = await terms.add(GUILD, "bad", is_regex=False, added_by=MOD)
    assert await blocked_by(terms, "bad", guild=OTHER_GUILD) is None
    assert await terms.list(OTHER_GUILD) == []
    assert await terms.remove(OTHER_GUILD, "bad") is None
    assert await terms.remove_by_id(OTHER_GUILD, mine.id) is None
    assert await terms.list(GUILD) == [mine]
    assert await blocked_by(terms, "bad") == mine
    # The same term can be on both lists, independently.
    theirs = await terms.add(OTHER_GUILD, "bad", is_regex=False, added_by=MOD)
    assert await terms.remove(GUILD, "bad") == mine
    assert await terms.list(OTHER_GUILD) == [theirs]


async def test_list_remove_and_fields(terms, clock):
    first = await terms.add(GUILD, "one", is_regex=False, added_by=MOD)
    clock.advance(60)
    second = await terms.add(GUILD, "tw[o0]", is_regex=True, added_by=8)
    assert second.is_regex and second.added_by == 8 and second.guild_id == GUILD
    assert second.created_at - first.created_at >= 60_000
    assert await terms.list(GUILD) == [first, second]
    assert await terms.remove(GUILD, "tw[o0]") == second
    assert await terms.remove(GUILD, "tw[o0]") is None
    assert await terms.remove_by_id(GUILD, first.id) == first
    assert await terms.list(GUILD) == []


async def test_cache_is_used_and_invalidated(db, terms):
    assert await blocked_by(terms, "bad") is None  # caches the empty list
    added = await terms.add(GUILD, "bad", is_regex=False, added_by=MOD)
    assert await blocked_by(terms, "bad") == added  # add invalidated the cache

    # Deleting behind the store's back is not seen: check() answers from the cache.
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM blocked_terms WHERE id = ?", (added.id,))
    assert await blocked_by(terms, "bad") == added

    again = await terms.add(GUILD, "bad", is_regex=False, added_by=MOD)
    assert await blocked_by(terms, "bad") == again
    await terms.remove(GUILD, "bad")
    assert await blocked_by(terms, "bad") is None  # remove invalidated the cache
    pattern = await terms.add(GUILD, "ba+d", is_regex=True, added_by=MOD)
    assert await blocked_by(terms, "baaad") == pattern
    await terms.remove_by_id(GUILD, pattern.id)
    assert await blocked_by(terms, "baaad") is None


async def test_first_matching_term_wins_and_unusable_rows_are_skipped(db, terms):
    await insert_directly(db, "\u200b", is_regex=False)  # would match everything if not skipped
    await insert_directly(db, "([", is_regex=True)
    first = await terms.add(GUILD, "red", is_regex=False, added_by=MOD)
    await terms.add(GUILD, "r.d", is_regex=True, added_by=MOD)
    assert await blocked_by(terms, "a red rose") == first
    assert await blocked_by(terms, "a blue rose") is None
