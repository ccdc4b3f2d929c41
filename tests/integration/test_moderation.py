"""The moderator toolkit as moderators and members see it: every reply's text, every refusal,
and that no guild reaches another's data."""

from __future__ import annotations

import csv
import io
import re

from bot.units import format_credits
from tests.fakes.discord import DEFAULT_OWNER_ID
from tests.integration.conftest import (
    ARTISTS_ROLE,
    CHANNEL_ID,
    GUILD_ID,
    LOG_CHANNEL_ID,
    MANAGE_SERVER,
    MODS_ROLE,
    OTHER_GUILD_ID,
    USER_ID,
    boolean,
    channel,
    integer,
    member,
    number,
    role,
    text,
)

MOD_ID = 6006


async def as_mod(harness, name, *options, sub=None, guild_id=GUILD_ID) -> str:
    interaction = await harness.slash(name, *options, sub=sub, user_id=MOD_ID, guild_id=guild_id,
                                      permissions=MANAGE_SERVER)
    return await harness.reply_to(interaction)


async def as_member(harness, name, *options, sub=None, roles=(), guild_id=GUILD_ID) -> str:
    interaction = await harness.slash(name, *options, sub=sub, user_id=USER_ID, roles=roles,
                                      guild_id=guild_id)
    return await harness.reply_to(interaction)


async def audit_count(harness) -> int:
    row = await harness.bot.services.db.fetchone("SELECT COUNT(*) AS n FROM audit_log")
    return row["n"]


async def test_moderator_commands_are_refused_to_members_even_if_discords_hint_was_changed(harness):
    # Discord would hide these from members by default, but a server admin can change that: the
    # interaction then arrives, and the bot itself must refuse it.
    attempts = [
        ("quota", "set-default", [number("amount", 1000)]),
        ("quota", "grant", [member("member", USER_ID), number("amount", 500)]),
        ("quota", "block", [member("member", 777)]),
        ("quota", "budget", [number("amount", 1)]),
        ("quota", "show", []),
        ("quota", "moderator-role", [role("role", ARTISTS_ROLE)]),
        ("usage", "export", []),
        ("usage", "top", []),
        ("moderation", "blocked-terms add", [text("term", "fox")]),
    ]
    for name, sub, options in attempts:
        interaction = await harness.slash(name, *options, sub=sub, user_id=USER_ID, permissions=0)
        reply = await harness.reply_to(interaction)
        assert reply == "Only moderators can do this: it needs the Manage Server permission.", (sub, reply)
        assert harness.original(interaction).ephemeral
    assert await audit_count(harness) == 0
    assert (await harness.bot.services.ledger.balance(GUILD_ID, USER_ID)).remaining == 40_000


async def test_a_moderator_role_grants_the_right_but_cannot_hand_it_out(harness):
    assert await as_mod(harness, "quota", role("role", MODS_ROLE), sub="moderator-role") == (
        f"Members with <@&{MODS_ROLE}> can now use the moderator commands.")
    shown = await as_member(harness, "quota", sub="show", roles=(MODS_ROLE,))
    assert shown.startswith("**Default allowance**: 40 credits per member per day")
    refused = await as_member(harness, "quota", role("role", ARTISTS_ROLE), sub="moderator-role",
                              roles=(MODS_ROLE,))
    assert refused == "Only moderators can do this: it needs the Manage Server permission."
    # The hint in the refusal names the role once it exists.
    refused = await as_member(harness, "quota", sub="show")
    assert refused == ("Only moderators can do this: it needs the Manage Server permission or the "
                       f"moderator role <@&{MODS_ROLE}>.")


async def test_quota_replies_and_what_members_then_see(harness):
    assert await as_mod(harness, "quota", number("amount", 50), text("period", "week"),
                        integer("max_jobs", 3), sub="set-default") == (
        "The server default is now 50 credits per member per week, with at most 3 jobs at once per member.")
    credits = await as_member(harness, "credits")
    assert credits.startswith("**Your credits in this server this week**: 50 of 50 left\n"
                              "Used: 0 · Reserved by running jobs: 0\n"
                              "Your allowance 50 credits per week (from the server default). Refills <t:")

    assert await as_mod(harness, "quota", role("role", ARTISTS_ROLE), number("amount", 80), sub="set-role") == (
        f"Members with <@&{ARTISTS_ROLE}> now get 80 credits per week (a personal allowance still wins; "
        "of several roles, the highest counts).")
    credits = await as_member(harness, "credits", roles=(ARTISTS_ROLE,))
    assert "80 of 80 left" in credits and f"(from <@&{ARTISTS_ROLE}>)" in credits

    assert await as_mod(harness, "quota", member("member", USER_ID), number("amount", 30), sub="set-user") == (
        f"<@{USER_ID}> now gets 30 credits per week, whatever their roles.")
    credits = await as_member(harness, "credits", roles=(ARTISTS_ROLE,))
    assert "30 of 30 left" in credits and "(from a personal allowance)" in credits

    assert await as_mod(harness, "quota", member("member", USER_ID), number("amount", 5),
                        text("reason", "contest winner"), sub="grant") == (
        f"Granted 5 credits to <@{USER_ID}> for this week (contest winner). They have 35 credits left.")
    credits = await as_member(harness, "credits")
    assert "35 of 35 left" in credits and "Granted by moderators: 5" in credits

    assert await as_mod(harness, "quota", member("member", USER_ID), text("reason", "spam"), sub="block") == (
        f"<@{USER_ID}> is blocked from generating in this server (spam).")
    assert await as_member(harness, "imagine", text("prompt", "a fox")) == (
        "A moderator has blocked you from generating in this server (spam).")
    assert "⛔ A moderator has blocked you from generating here (spam)." in await as_member(harness, "credits")
    assert await as_mod(harness, "quota", member("member", USER_ID), sub="unblock") == (
        f"<@{USER_ID}> may generate again.")

    reply = await as_mod(harness, "quota", number("amount", 1), sub="budget")
    assert re.fullmatch(r"The server's weekly budget is now 1 credit \(0 used or reserved this week; "
                        r"it resets <t:\d+:R>\)\.", reply)
    refused = await as_member(harness, "imagine", text("prompt", "a fox"))
    assert refused == ("This needs 2 credits, more than this server's whole weekly budget (1 credits). "
                       "A moderator can raise it with /quota budget.")
    assert await as_mod(harness, "quota", sub="budget") == (
        "The server has no budget any more: only members' allowances limit spending.")

    shown = await as_mod(harness, "quota", member("member", USER_ID), sub="show")
    assert shown.startswith(f"**<@{USER_ID}>** · allowance 30 credits per week (from a personal allowance)\n"
                            "Left this week: **35 credits** · used 0 · reserved 0 · granted 5\n"
                            "Jobs running or waiting: 0 (at most 3 at once, 10 more in line) · refills <t:")
    shown = await as_mod(harness, "quota", sub="show")
    assert "**Default allowance**: 50 credits per member per week, at most 3 job(s) at once" in shown
    assert f"**Role allowances**: <@&{ARTISTS_ROLE}> 80" in shown
    assert f"**Personal allowances**: <@{USER_ID}> 30" in shown and "**Blocked**: nobody" in shown

    assert harness.evolink_creates() == []
    assert await audit_count(harness) == 8  # every change, and only changes, was audited


async def test_changes_are_echoed_to_the_log_channel(harness):
    assert await as_mod(harness, "quota", channel("channel", LOG_CHANNEL_ID), sub="log-channel") == (
        f"Moderator changes will be posted in <#{LOG_CHANNEL_ID}>.")
    await as_mod(harness, "quota", member("member", USER_ID), text("reason", "spam"), sub="block")

    def echoes(fake) -> list[str]:
        return [m.content for m in fake.messages.values() if m.channel_id == LOG_CHANNEL_ID]

    await harness.discord.wait_for(lambda fake: len(echoes(fake)) == 2)
    # Setting the channel is itself a change, so it is the first thing posted there.
    assert echoes(harness.discord) == [
        f"🛡️ <@{MOD_ID}>: Moderator changes will be posted in <#{LOG_CHANNEL_ID}>.",
        f"🛡️ <@{MOD_ID}>: <@{USER_ID}> is blocked from generating in this server (spam).",
    ]
    # Echoes never ping: the bot's default allowed mentions are none.
    post = harness.discord.requests_to("POST", rf"^/channels/{LOG_CHANNEL_ID}/messages$")[-1]
    assert post.json["allowed_mentions"]["parse"] == []


async def test_no_guild_sees_or_changes_another_guilds_data(harness):
    await as_mod(harness, "quota", number("amount", 99), text("period", "month"), sub="set-default")
    await as_mod(harness, "quota", role("role", ARTISTS_ROLE), number("amount", 500), sub="set-role")
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", 7), sub="grant")
    await as_mod(harness, "moderation", text("term", "fox"), sub="blocked-terms add")

    # A moderator of the other server sees only its own (default) settings and an empty ledger...
    shown = await as_mod(harness, "quota", sub="show", guild_id=OTHER_GUILD_ID)
    assert shown.startswith("**Default allowance**: 40 credits per member per day")
    assert "**Role allowances**: none" in shown and "**Personal allowances**: none" in shown
    assert await as_mod(harness, "moderation", sub="blocked-terms list", guild_id=OTHER_GUILD_ID) == (
        "No blocked terms in this server.")
    export = await harness.slash("usage", sub="export", user_id=MOD_ID, guild_id=OTHER_GUILD_ID,
                                 permissions=MANAGE_SERVER)
    reply = await harness.wait_for_original(export, lambda m: bool(m.attachments))
    assert reply.content == "0 ledger rows for this server."
    # ...and what it changes stays there.
    await as_mod(harness, "quota", member("member", USER_ID), text("reason", "x"), sub="block",
                 guild_id=OTHER_GUILD_ID)
    await as_mod(harness, "moderation", text("term", "fox"), sub="blocked-terms remove", guild_id=OTHER_GUILD_ID)
    here = await harness.bot.services.ledger.balance(GUILD_ID, USER_ID)
    assert (here.blocked, here.allowance.amount, here.granted) == (False, 99_000, 7_000)
    assert [t.term for t in await harness.bot.services.blocked_terms.list(GUILD_ID)] == ["fox"]
    # A member there keeps the operator's defaults.
    assert "40 of 40 left" in await as_member(harness, "credits", guild_id=OTHER_GUILD_ID)


async def test_the_csv_export_matches_the_ledger_row_for_row(harness):
    harness.evolink.fail_tasks_matching("refused", "content_policy_violation", "no")
    done = await harness.command("imagine", prompt="a fox", n=2)
    failed = await harness.command("imagine", prompt="something refused")
    await harness.wait_for_original(done, lambda m: len(m.attachments) == 2)
    await harness.wait_for_original(failed, lambda m: "Failed" in m.text)
    await harness.settled_balance()
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", 1.5),
                 text("reason", "welcome, friend"), sub="grant")

    export = await harness.slash("usage", sub="export", user_id=MOD_ID, permissions=MANAGE_SERVER)
    reply = await harness.wait_for_original(export, lambda m: bool(m.attachments))
    assert reply.ephemeral and reply.content == "5 ledger rows for this server."
    [attachment] = reply.attachments
    assert attachment.filename.startswith(f"ledger-{GUILD_ID}-") and attachment.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(attachment.data.decode())))

    ledger = await harness.bot.services.db.fetchall("SELECT * FROM ledger WHERE guild_id = :guild ORDER BY id", {"guild": GUILD_ID})
    assert len(rows) == len(ledger) == 5
    for exported, stored in zip(rows, ledger, strict=True):
        assert int(exported["id"]) == stored["id"]
        assert exported["kind"] == stored["kind"]
        assert exported["credits"] == format_credits(stored["amount"])
        assert exported["user_id"] == str(stored["user_id"])
        assert exported["job_id"] == (str(stored["job_id"]) if stored["job_id"] else "")
        assert exported["job_kind"] == ("image" if stored["job_id"] else "")
        assert exported["reason"] == (stored["reason"] or "")
    assert [r["kind"] for r in rows[:2]] == ["reserve", "reserve"] and rows[-1]["kind"] == "grant"
    assert sorted(r["kind"] for r in rows[2:4]) == ["refund", "settle"]
    assert rows[-1]["credits"] == "1.5" and rows[-1]["actor_id"] == str(MOD_ID)

    top = await as_mod(harness, "usage", sub="top")
    assert top == f"**Top spenders today**\n1. <@{USER_ID}> · 4 credits · 1 job (image: 1)"


async def test_the_csv_export_never_hands_a_spreadsheet_a_formula(harness):
    """A moderator's reason is written into the file a spreadsheet opens: one that starts like a
    formula gets a leading quote, the exact text is still there after it, and credits stay numbers."""
    formula = '=HYPERLINK("http://evil","click")'
    full_width = "＠SUM(1+1)"
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", 2), text("reason", formula),
                 sub="grant")
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", -5), text("reason", full_width),
                 sub="grant")
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", 1), text("reason", "welcome"),
                 sub="grant")

    export = await harness.slash("usage", sub="export", user_id=MOD_ID, permissions=MANAGE_SERVER)
    reply = await harness.wait_for_original(export, lambda m: bool(m.attachments))
    [attachment] = reply.attachments
    raw = attachment.data.decode("utf-8")
    # No cell of the file starts with the formula itself: it is quoted text, a leading ' inside.
    assert '"\'=HYPERLINK(""http://evil"",""click"")"' in raw
    assert ",=HYPERLINK" not in raw and ',"=HYPERLINK' not in raw
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert [(row["credits"], row["reason"]) for row in rows] == [
        ("2", "'" + formula), ("-5", "'" + full_width), ("1", "welcome")]
    assert [row["reason"][1:] for row in rows[:2]] == [formula, full_width]


async def test_blocked_terms_refuse_prompts_before_any_charge(harness):
    assert await as_mod(harness, "moderation", text("term", "Forbidden Fruit"), sub="blocked-terms add") == (
        "Prompts with the term `Forbidden Fruit` are now refused here.")
    # Case, full-width letters, a zero-width space and extra spaces do not get around it.
    evasive = "a tree of ＦＯＲＢＩＤＤＥＮ   fru\u200bit, in watercolour"
    assert await as_member(harness, "imagine", text("prompt", evasive)) == (
        'Your prompt contains "Forbidden Fruit", which this server does not allow. Nothing was charged.')
    assert harness.evolink_creates() == []

    reply = await as_mod(harness, "moderation", text("term", "(a+)+$"), boolean("regex", True),
                         sub="blocked-terms add")
    assert reply == "pattern '(a+)+$': it is too slow (it took over 50 ms on a test text)"
    assert await as_mod(harness, "moderation", text("term", r"\bn[a@]sty\b"), boolean("regex", True),
                        sub="blocked-terms add") == r"Prompts with the pattern `\bn[a@]sty\b` are now refused here."
    assert await as_member(harness, "imagine", text("prompt", "a N@STY fox")) == (
        "Your prompt matches a pattern this server does not allow. Nothing was charged.")
    assert await as_mod(harness, "moderation", sub="blocked-terms list") == (
        "**Blocked in prompts here** (2)\n• `Forbidden Fruit`\n• `\\bn[a@]sty\\b` (pattern)")
    assert await as_mod(harness, "moderation", text("term", "Forbidden Fruit"), sub="blocked-terms remove") == (
        "`Forbidden Fruit` is no longer blocked.")
    interaction = await harness.command("imagine", prompt=evasive)
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)


async def test_admin_balance_is_for_the_owner_only(harness):
    interaction = await harness.slash("admin", sub="balance", user_id=USER_ID, permissions=MANAGE_SERVER)
    assert await harness.reply_to(interaction) == "Only the bot's owner can do this."
    interaction = await harness.slash("admin", sub="balance", user_id=DEFAULT_OWNER_ID)
    reply = await harness.reply_to(interaction)
    assert reply.startswith("**EvoLink account**: 10000 credits left, 0 used in all · this API key: 100000 left\n"
                            "The bot charged members **0** credits today (UTC), across every server; "
                            "running jobs hold 0 more.")


async def test_the_removal_replies(harness):
    await as_mod(harness, "quota", role("role", ARTISTS_ROLE), number("amount", 80), sub="set-role")
    assert await as_mod(harness, "quota", role("role", ARTISTS_ROLE), sub="set-role") == (
        f"<@&{ARTISTS_ROLE}> no longer has an allowance of its own.")
    await as_mod(harness, "quota", member("member", USER_ID), number("amount", 3), sub="set-user")
    assert await as_mod(harness, "quota", member("member", USER_ID), sub="set-user") == (
        f"<@{USER_ID}> is back to the server default and their roles' allowances.")
    assert await as_mod(harness, "quota", member("member", USER_ID), number("amount", -4),
                        sub="grant") == (
        f"Took 4 credits from <@{USER_ID}> for today (granted by a moderator). They have 36 credits left.")
    assert await as_mod(harness, "quota", sub="moderator-role") == (
        "Only members with Manage Server can use the moderator commands now.")
    assert await as_mod(harness, "quota", sub="log-channel") == (
        "Moderator changes will no longer be posted in a channel.")
    assert await as_mod(harness, "moderation", text("term", "nothing"), sub="blocked-terms remove") == (
        "`nothing` is not on this server's list (use /moderation blocked-terms list).")
    # Bad amounts get the rule and the value, and change nothing.
    assert await as_mod(harness, "quota", number("amount", 0.0001), sub="set-default") == (
        "amount 0.0001: credits have at most 3 decimals")
    assert (await harness.bot.services.ledger.balance(GUILD_ID, USER_ID)).allowance.amount == 40_000
    credits = await as_member(harness, "credits")
    assert credits.startswith("**Your credits in this server today**: 36 of 36 left\n"
                              "Used: 0 · Reserved by running jobs: 0 · Granted by moderators: -4\n")


async def test_every_moderator_change_leaves_one_audit_row_saying_who_did_what_to_whom(harness):
    async def change(name, *options, sub):
        reply = await as_mod(harness, name, *options, sub=sub)
        assert reply and not reply.startswith("Only moderators"), (sub, reply)

    await change("quota", number("amount", 50), text("period", "week"), integer("max_jobs", 3),
                 sub="set-default")
    await change("quota", role("role", ARTISTS_ROLE), number("amount", 80), sub="set-role")
    await change("quota", role("role", ARTISTS_ROLE), sub="set-role")
    await change("quota", member("member", USER_ID), number("amount", 30), sub="set-user")
    await change("quota", member("member", USER_ID), sub="set-user")
    await change("quota", member("member", USER_ID), number("amount", 5), text("reason", "contest winner"),
                 sub="grant")
    await change("quota", member("member", USER_ID), number("amount", -2), sub="grant")
    await change("quota", member("member", USER_ID), text("reason", "spam"), sub="block")
    await change("quota", member("member", USER_ID), sub="unblock")
    await change("quota", number("amount", 100), sub="budget")
    await change("quota", sub="budget")
    await change("quota", role("role", MODS_ROLE), sub="moderator-role")
    await change("quota", sub="moderator-role")
    await change("quota", channel("channel", LOG_CHANNEL_ID), sub="log-channel")
    await change("quota", sub="log-channel")
    await change("moderation", text("term", "fox"), sub="blocked-terms add")
    await change("moderation", text("term", r"\bwolf\b"), boolean("regex", True), sub="blocked-terms add")
    await change("moderation", text("term", "fox"), sub="blocked-terms remove")
    await change("defaults", integer("n", 4), text("quality", "480p"), sub="set")
    await change("defaults", text("option", "n"), sub="clear")
    # What changes nothing leaves no row: a term that is not listed, a default that is not set.
    await change("moderation", text("term", "badger"), sub="blocked-terms remove")
    await change("defaults", text("option", "size"), sub="clear")

    rows = await harness.bot.services.db.fetchall(
        "SELECT guild_id, actor_id, action, target_user_id, target_role_id, details FROM audit_log ORDER BY id")
    assert {(row["guild_id"], row["actor_id"]) for row in rows} == {(GUILD_ID, MOD_ID)}
    assert [(row["action"], row["target_user_id"], row["target_role_id"], row["details"]) for row in rows] == [
        ("set-default", None, None, '{"default_allowance": 50000, "period": "week", "max_concurrent_jobs": 3}'),
        ("set-role", None, ARTISTS_ROLE, '{"allowance": 80000}'),
        ("set-role", None, ARTISTS_ROLE, '{"allowance": null}'),
        ("set-user", USER_ID, None, '{"allowance": 30000}'),
        ("set-user", USER_ID, None, '{"allowance": null}'),
        ("grant", USER_ID, None, '{"amount": 5000, "reason": "contest winner"}'),
        ("grant", USER_ID, None, '{"amount": -2000, "reason": "granted by a moderator"}'),
        ("block", USER_ID, None, '{"blocked": true, "block_reason": "spam"}'),
        ("unblock", USER_ID, None, '{"blocked": false, "block_reason": null}'),
        ("budget", None, None, '{"budget": 100000}'),
        ("budget", None, None, '{"budget": null}'),
        ("moderator-role", None, None, f'{{"moderator_role_id": {MODS_ROLE}}}'),
        ("moderator-role", None, None, '{"moderator_role_id": null}'),
        ("log-channel", None, None, f'{{"log_channel_id": {LOG_CHANNEL_ID}}}'),
        ("log-channel", None, None, '{"log_channel_id": null}'),
        ("blocked-term-add", None, None, '{"term": "fox", "regex": false}'),
        ("blocked-term-add", None, None, '{"term": "\\\\bwolf\\\\b", "regex": true}'),
        ("blocked-term-remove", None, None, '{"term": "fox", "regex": false}'),
        ("defaults-set", None, None, f'{{"channel_id": {CHANNEL_ID}, "n": 4, "quality": "480p"}}'),
        ("defaults-clear", None, None, f'{{"channel_id": {CHANNEL_ID}, "cleared": ["n"]}}'),
    ]
