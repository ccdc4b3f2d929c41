"""Faults around an /imagine job: the member still gets an answer, and pays at most once."""

from __future__ import annotations

from tests.integration.conftest import CHANNEL_ID, USER_ID


async def test_when_the_interaction_token_dies_the_result_arrives_by_bot_token_edit(harness):
    interaction = await harness.command("imagine", prompt="a slow fox")
    message = await harness.wait_until_generating(interaction)
    harness.discord.expire_token(harness.record(interaction).token)

    await harness.discord.wait_for(lambda fake: len(message.attachments) == 1)
    assert "**✅ Done**" in message.text
    bot_token_edits = harness.discord.requests_to("PATCH", rf"^/channels/{CHANNEL_ID}/messages/{message.id}$")
    assert bot_token_edits and bot_token_edits[-1].files
    # After the first 50027 the dead token is never tried again.
    token = harness.record(interaction).token
    refused = [r for r in harness.discord.requests if token in r.path and r.status == 401]
    assert len(refused) == 1


async def test_when_the_message_was_deleted_the_result_is_posted_anew_mentioning_the_member(harness):
    interaction = await harness.command("imagine", prompt="a shy fox")
    message = await harness.wait_until_generating(interaction)
    harness.discord.expire_token(harness.record(interaction).token)
    message.deleted = True

    def reposted(fake) -> bool:
        return any(m.attachments and m.id != message.id for m in fake.messages.values())

    await harness.discord.wait_for(reposted)
    [new] = [m for m in harness.discord.messages.values() if m.attachments]
    assert new.channel_id == CHANNEL_ID and new.content.startswith(f"<@{USER_ID}>") and "**✅ Done**" in new.text
    post = harness.discord.requests_to("POST", rf"^/channels/{CHANNEL_ID}/messages$")[-1]
    assert post.json["allowed_mentions"]["users"] == [USER_ID]  # pings the requester only


async def test_a_create_refused_with_429_is_retried_after_the_wait(harness):
    harness.evolink.fail_next("/v1/images/generations", 429, "rate_limit_exceeded", retry_after="5")
    interaction = await harness.command("imagine", prompt="a queued fox")
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)
    assert "**✅ Done**" in final.text
    creates = harness.evolink_creates()
    assert len(creates) == 2
    assert (creates[1].time - creates[0].time) >= 5  # the clock the fake shares with the bot


async def test_a_create_whose_outcome_is_unknown_is_never_sent_twice(harness):
    harness.evolink.fail_next("/v1/images/generations", 502, "internal_error", "bad gateway")
    interaction = await harness.command("imagine", prompt="a lost fox", n=2)
    final = await harness.wait_for_original(interaction, lambda m: "Failed" in m.text)
    assert "not sent again" in final.text and "4 credits given back" in final.text
    assert len(harness.evolink_creates()) == 1
    balance = await harness.bot.services.ledger.balance(7000, USER_ID)
    assert (balance.held, balance.remaining) == (0, 40_000)
