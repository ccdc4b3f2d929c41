"""One server cannot slow the bot for another: a server whose moderators stored the slowest
blocked-term patterns they could find does not delay another server's answers."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tests.integration.conftest import GUILD_ID, OTHER_GUILD_ID, USER_ID, text

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

MOD_ID = 6006
OTHER_MEMBERS = [USER_ID + 100 + i for i in range(5)]

# Catastrophic backtracking of every kind `regex` has: nested quantifiers, overlapping
# alternatives, a polynomial ".*" chain, captures, a lookahead, a backreference. Each takes as long
# as any timeout allows on a long run of "q" followed by "!"; numbered so that all are distinct.
BACKTRACKING = ["(q+q+)+!{}x", "(q|q)+!{}x", "(q|qq)+!{}x", "(.*q){{12}}!{}x", "((q)+(q)+)+!{}x",
                "(?=(q+q+)+!{}x)", r"(q+)+\1!{}x", "(q|qq|qqq)+!{}x"]
# Compiling has no timeout, and these take ~100 ms each (Python code holding the GIL).
SLOW_TO_COMPILE = r"(?:[\p{{L}}\p{{N}}\p{{P}}\p{{S}}]|[\p{{L}}\p{{N}}\p{{P}}]){{1000}}!{}x"
TRIGGER = "q" * 1990 + "!"  # /imagine takes up to 2,000 characters


async def store_worst_patterns(harness) -> None:
    # Straight into the table: /moderation blocked-terms add now refuses every one of them (too
    # slow on the test texts made of their own characters, too slow to compile) and more than 20
    # patterns per server; such rows still exist in a database filled before those rules. 200 was
    # the old limit of terms per server: matched on the event loop with 50 ms each, as before,
    # they stall it for 10 seconds.
    patterns = [BACKTRACKING[i % len(BACKTRACKING)].format(i) for i in range(195)]
    patterns += [SLOW_TO_COMPILE.format(i) for i in range(5)]
    async with harness.bot.services.db.transaction() as tx:
        for pattern in patterns:
            await tx.execute(
                "INSERT INTO blocked_terms (guild_id, term, is_regex, added_by, created_at) "
                "VALUES (:guild, :term, 1, :by, 0)", {"guild": GUILD_ID, "term": pattern, "by": MOD_ID})


def answered_at(harness, interaction_id: int) -> float:
    """When the interaction's first answer reached Discord (never, if none came in time: Discord
    then shows the member "The application did not respond")."""
    record = harness.record(interaction_id)
    return record.callback_time if record.acknowledged else math.inf


def answered_or_failed(harness, interaction_id: int) -> bool:
    record = harness.record(interaction_id)
    return record.acknowledged or time.monotonic() - record.sent_at > harness.discord.interaction_ack_window


async def test_slow_patterns_of_one_server_do_not_delay_another_servers_answers(harness):
    await store_worst_patterns(harness)
    # The other server has a pattern of its own, so its prompts are checked by the same workers.
    await harness.bot.services.blocked_terms.add(OTHER_GUILD_ID, r"\bwolf\b", is_regex=True, added_by=MOD_ID)
    warm = await harness.slash("imagine", text("prompt", "a quiet lake"), guild_id=OTHER_GUILD_ID,
                               user_id=OTHER_MEMBERS[0])
    await harness.wait_for_original(warm, lambda m: len(m.attachments) == 1)

    # A member of the first server sends the prompt that sets off its patterns (loaded for the
    # first time, as after a restart); at the same moment, and while that check runs, members of
    # the other server send theirs. Discord sends each interaction when its member acts, whatever
    # the bot is doing; this fake Discord shares the bot's event loop, so a stalled loop would
    # delay its sending too. So each of them acts at a planned moment, and their wait counts
    # from there (never after the fake's dispatch, `sent_at`: the stricter measure).
    slow = await harness.slash("imagine", text("prompt", TRIGGER), guild_id=GUILD_ID)
    acted_at = [harness.record(slow).sent_at + offset for offset in (0, 0.05, 0.1, 0.2, 0.4)]

    async def act(member: int, at: float) -> int:
        await asyncio.sleep(at - time.monotonic())
        return await harness.slash("imagine", text("prompt", "a red fox in the snow"),
                                   guild_id=OTHER_GUILD_ID, user_id=member)

    others = await asyncio.gather(*(act(member, at) for member, at in zip(OTHER_MEMBERS, acted_at, strict=True)))
    await harness.discord.wait_for(lambda fake: all(answered_or_failed(harness, i) for i in [slow, *others]), 15)

    waits = [answered_at(harness, i) - at for i, at in zip(others, acted_at, strict=True)]
    assert max(waits) < 0.1, [f"{wait * 1000:.0f} ms" for wait in waits]
    # The first server's member is answered too, within Discord's 3 seconds: the patterns that
    # could not finish in the budget were skipped, and the job runs.
    assert answered_at(harness, slow) - harness.record(slow).sent_at < 3
    assert harness.record(slow).callback_type == 5
    for interaction in [slow, *others]:
        await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)

    # A prompt the other server blocks is still refused, privately and before any charge.
    refused = await harness.slash("imagine", text("prompt", "a grey wolf"), guild_id=OTHER_GUILD_ID,
                                  user_id=OTHER_MEMBERS[0])
    assert await harness.private_refusal(refused) == (
        "Your prompt matches a pattern this server does not allow. Nothing was charged.")
