"""A public bot on day one: the defaults let a member use every headline feature, the operator's
ceilings hold whatever moderators type, pictures come from Discord only, work before a
reservation is bounded, and a job's credits are held and closed exactly once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from aiohttp import web

from bot import USER_AGENT
from bot.config import Settings
from tests.integration.conftest import (
    MANAGE_SERVER,
    OTHER_GUILD_ID,
    USER_ID,
    member,
    number,
    start_harness,
    text,
)
from tests.media_samples import png

MOD_ID = 5006
OTHER_USER = 5007


async def _animate_harness(tmp_path, video, **settings):
    # Video jobs take 120 s of clock time: run the shared clock 40x so each test takes seconds.
    async for harness in start_harness(tmp_path, speed=40, **settings):
        harness.evolink.video_result = video
        yield harness


def _attachment_gets(harness) -> list:
    """The bot's downloads of members' pictures (the fake EvoLink fetches them too, as EvoLink
    does, under its own User-Agent)."""
    return [r for r in harness.discord.requests_to("GET", r"^/attachments/")
            if r.headers.get("User-Agent") == USER_AGENT]


async def _ledger(harness) -> list[tuple[str, int]]:
    rows = await harness.bot.services.db.fetchall("SELECT kind, amount FROM ledger ORDER BY id")
    return [(row["kind"], row["amount"]) for row in rows]


# -- 1. defaults that work ----------------------------------------------------------------------------


async def test_a_fresh_install_lets_a_member_imagine_and_animate_with_defaults_the_same_day(tmp_path, small_video):
    async for harness in _animate_harness(tmp_path, small_video):
        # Nothing but addresses and ports differs from what a new operator runs.
        for name in ("default_daily_credits", "default_max_concurrent_jobs", "max_member_credits_per_day",
                     "max_server_credits_per_day", "bot_daily_budget", "image_credits",
                     "video_credits_per_second"):
            assert getattr(harness.settings, name) == Settings.model_fields[name].default, name

        imagine = await harness.command("imagine", prompt="a lighthouse at dusk")
        await harness.wait_for_original(imagine, lambda m: len(m.attachments) == 1)
        picture = harness.discord.make_attachment("lighthouse.png", png(1280, 720))
        animate = await harness.command("animate", image=picture, prompt="the light turns")
        final = await harness.wait_for_original(animate, lambda m: bool(m.attachments), timeout=30)
        assert "5 s · 720p video" in final.text and "25.5 credits charged" in final.text

        balance = await harness.settled_balance()
        assert (balance.spent, balance.remaining) == (27_500, 12_500)


# -- 2. the operator's ceilings ------------------------------------------------------------------------


async def _as_mod(harness, *options, sub: str) -> str:
    interaction = await harness.slash("quota", *options, sub=sub, user_id=MOD_ID, permissions=MANAGE_SERVER)
    return await harness.reply_to(interaction)


async def test_moderators_cannot_give_or_budget_past_the_operators_ceilings(harness):
    audited = "SELECT COUNT(*) AS n FROM audit_log"
    assert await _as_mod(harness, number("amount", 1_000_000), sub="set-default") == (
        "amount 1000000: the bot's operator lets a server give one member at most 200 credits per day "
        "(200 a day)")
    assert await _as_mod(harness, member("member", USER_ID), number("amount", 201), sub="set-user") == (
        "amount 201: the bot's operator lets a server give one member at most 200 credits per day (200 a day)")
    assert await _as_mod(harness, number("amount", 5000), sub="budget") == (
        "amount 5000: the bot's operator lets one server spend at most 1000 credits per day (1000 a day)")
    assert (await harness.bot.services.db.fetchone(audited))["n"] == 0  # nothing was changed

    # A week may hold seven days' worth.
    assert await _as_mod(harness, number("amount", 1400), text("period", "week"), sub="set-default") == (
        "The server default is now 1400 credits per member per week, with at most 2 jobs at once per member.")
    assert await _as_mod(harness, member("member", USER_ID), number("amount", 1), sub="grant") == (
        "amount 1: with it the member would have 1401 credits this period, over the most the bot's operator "
        "lets a server give one member (1400 credits per week, 200 a day)")
    assert (await harness.balance()).total == 1_400_000


async def test_a_server_stops_at_the_operators_daily_ceiling_and_another_does_not(tmp_path):
    async for harness in start_harness(tmp_path, max_server_credits_per_day=5):
        first = await harness.command("imagine", prompt="two foxes", n=2)  # 4 credits
        await harness.wait_until_generating(first)
        refused = await harness.command("imagine", prompt="one more fox", user_id=OTHER_USER)
        text_shown = await harness.private_refusal(refused)
        assert text_shown.startswith(
            "This server has reached 5 credits today (spent, or held by jobs under way), the most the bot's "
            "operator lets one server spend per day. Generation resumes when it resets. It resets <t:")
        elsewhere = await harness.command("imagine", prompt="a fox elsewhere", user_id=OTHER_USER,
                                          guild_id=OTHER_GUILD_ID)
        await harness.wait_for_original(elsewhere, lambda m: len(m.attachments) == 1)


# -- 5. pictures from Discord only ---------------------------------------------------------------------


class RemoteSite:
    """Somewhere on the internet a link preview points at (here on loopback): it must never be
    fetched by the bot, and it counts what it is asked."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> RemoteSite:
        async def anything(request: web.Request) -> web.Response:
            self.requests.append(request.path)
            return web.Response(body=png(800, 600), content_type="image/png")

        app = web.Application()
        app.router.add_get("/{tail:.*}", anything)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _link_preview(remote: str, proxy_url: str) -> dict:
    # As Discord builds it: `url` is the remote site's address, `proxy_url` Discord's cached copy.
    return {"type": "image", "url": remote, "thumbnail": {"url": remote, "proxy_url": proxy_url,
                                                         "width": 800, "height": 600}}


async def test_a_link_preview_is_taken_from_discords_copy_never_from_the_site(harness):
    async with RemoteSite() as site:
        cached = harness.discord.host_media("preview.png", png(800, 600))
        posted = harness.discord.post_member_message(
            7001, USER_ID, f"{site.url}/latest.png", embeds=[_link_preview(f"{site.url}/latest.png", cached)])
        submitted = await harness.animate_with_menu(posted, "the clouds drift")
        await harness.wait_for_original(submitted, lambda m: "Generating" in m.text or bool(m.attachments),
                                        timeout=30)
        [create] = harness.evolink_creates()
        assert create.json["image_urls"] == [cached]
        assert site.requests == []


async def test_a_picture_outside_discord_is_refused_and_never_fetched(harness):
    async with RemoteSite() as site:
        # A crafted preview whose "cached copy" is somewhere else (an internal address, say).
        posted = harness.discord.post_member_message(
            7001, USER_ID, "look", embeds=[_link_preview(f"{site.url}/a.png", f"{site.url}/admin/secret.png")])
        submitted = await harness.animate_with_menu(posted, "the clouds drift")
        refusal = await harness.private_refusal_after_deferral(submitted)
        assert refusal == (
            "The picture the embedded picture is not stored on Discord, and the bot only takes pictures from "
            "Discord (uploads, and the copies Discord keeps of link previews). Upload it instead; nothing was "
            "charged.")
        assert site.requests == [] and harness.evolink_creates() == []
        assert await _ledger(harness) == []


async def test_a_redirect_away_from_discord_is_not_followed(harness):
    async with RemoteSite() as site:
        picture = harness.discord.make_attachment("cat.png", png(800, 800))
        harness.discord.redirect_media(picture["url"], f"{site.url}/internal/status")
        interaction = await harness.command("animate", image=picture, prompt="the cat yawns")
        refusal = await harness.private_refusal_after_deferral(interaction)
        assert "is not stored on Discord" in refusal
        assert site.requests == [] and harness.evolink_creates() == []


async def test_a_failed_download_says_so_without_the_remote_answer(harness):
    picture = harness.discord.make_attachment("gone.png", png(800, 800))
    harness.discord.expire_attachment(int(picture["id"]))  # its CDN link answers 404 now
    interaction = await harness.command("animate", image=picture, prompt="waves")
    refusal = await harness.private_refusal_after_deferral(interaction)
    assert refusal == ("I could not get the picture gone.png from Discord: it may have been deleted, or its "
                       "link may have expired. Post it again and retry; nothing was charged.")
    assert "404" not in refusal and "HTTP" not in refusal
    assert await _ledger(harness) == []


# -- 6. bounded work before a reservation -------------------------------------------------------------


async def test_six_parallel_animates_from_a_member_who_can_afford_one_prepare_one_picture(tmp_path, small_video):
    async for harness in _animate_harness(tmp_path, small_video, default_daily_credits=30):
        await _six_parallel_animates(harness)


async def _six_parallel_animates(harness) -> None:
    pictures = [harness.discord.make_attachment(f"cat{i}.png", png(900, 900)) for i in range(6)]
    interactions = await asyncio.gather(*(
        harness.command("animate", image=picture, prompt="the cat blinks") for picture in pictures))

    replies = [harness.record(i) for i in interactions]
    await harness.discord.wait_for(
        lambda fake: sum(bool(r.followup_message_ids) for r in replies) == 5, timeout=20)
    for interaction, record in zip(interactions, replies, strict=True):
        if record.followup_message_ids:
            refusal = await harness.private_refusal_after_deferral(interaction)
            assert refusal.startswith("Not enough credits: this needs 25.5 and you have 4.5 left today.")
    # One picture downloaded and checked, one video reserved and made.
    assert len(_attachment_gets(harness)) == 1
    [started] = [i for i, r in zip(interactions, replies, strict=True) if not r.followup_message_ids]
    await harness.wait_for_original(started, lambda m: bool(m.attachments), timeout=30)
    assert len(harness.evolink_creates()) == 1
    await harness.settled_balance()  # the settle is written just after the delivery
    assert [kind for kind, _ in await _ledger(harness)] == ["reserve", "settle"]


async def test_downloads_wait_for_a_free_slot(tmp_path, small_video):
    async for harness in _animate_harness(tmp_path, small_video, max_concurrent_downloads=1):
        await _two_downloads_one_slot(harness)


async def _two_downloads_one_slot(harness) -> None:
    held = harness.discord.hold("GET", r"^/attachments/")
    first = await harness.command("animate", image=harness.discord.make_attachment("a.png", png(800, 800)),
                                  prompt="first")
    await asyncio.wait_for(held.arrived.wait(), 10)  # the one slot is taken by this download
    second = await harness.command("animate", image=harness.discord.make_attachment("b.png", png(800, 800)),
                                   prompt="second", user_id=OTHER_USER, guild_id=OTHER_GUILD_ID)
    await harness.discord.wait_for(lambda fake: harness.record(second).callback_type == 5)
    await asyncio.sleep(0.3)
    assert len(_attachment_gets(harness)) == 1, "a second download started while the slot was taken"
    held.release()
    for interaction in (first, second):
        await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    assert len(_attachment_gets(harness)) == 2


# -- 7. a hold is closed exactly once ------------------------------------------------------------------


async def test_an_acknowledgement_discord_refuses_frees_the_hold(harness):
    harness.discord.fail_next("POST", r"^/interactions/\d+/[^/]+/callback$", 400,
                              {"code": 40060, "message": "Interaction has already been acknowledged."})
    await harness.command("imagine", prompt="a fox nobody sees", n=2)
    await harness.discord.wait_for(lambda fake: bool(fake.requests_to("POST", r"/callback$")))
    await _wait_for_ledger(harness, [("reserve", 4000), ("refund", 4000)])
    assert (await harness.balance()).held == 0 and harness.evolink_creates() == []


async def test_an_acknowledgement_lost_to_the_network_never_runs_even_after_a_restart(harness):
    # Discord got the deferral, the bot never heard back.
    harness.discord.drop_next("POST", r"^/interactions/\d+/[^/]+/callback$", after_applying=True)
    await harness.command("imagine", prompt="a fox lost in the network", n=2)
    await _wait_for_ledger(harness, [("reserve", 4000), ("refund", 4000)])
    await harness.restart()
    await asyncio.sleep(60 / harness.clock.speed)  # a minute of job time: it would have been sent
    assert harness.evolink_creates() == []
    job = await harness.bot.services.store.get(1)
    assert (job.state, job.error_code) == ("failed", "not_acknowledged")
    assert await _ledger(harness) == [("reserve", 4000), ("refund", 4000)]


async def test_a_command_cut_off_while_acknowledging_never_runs(harness):
    # The bot stops while Discord sits on the deferral: whatever the handler could still write,
    # the next start must not send the job the member never saw start.
    held = harness.discord.hold("POST", r"^/interactions/\d+/[^/]+/callback$")
    await harness.command("imagine", prompt="a fox at closing time")
    await asyncio.wait_for(held.arrived.wait(), 10)
    await harness.restart()
    await asyncio.sleep(60 / harness.clock.speed)
    assert harness.evolink_creates() == []
    assert await _ledger(harness) == [("reserve", 2000), ("refund", 2000)]
    assert (await harness.balance()).held == 0


async def test_images_beyond_those_asked_for_are_not_charged(harness):
    harness.evolink.extra_image_results = 1
    interaction = await harness.command("imagine", prompt="one fox, please", n=1)
    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments))
    assert "2 credits charged" in final.text
    await harness.settled_balance()
    assert await _ledger(harness) == [("reserve", 2000), ("settle", 2000)]


async def test_a_price_rise_before_the_settlement_never_charges_more_than_was_held(harness):
    held = harness.evolink.hold_results()
    interaction = await harness.command("imagine", prompt="two foxes at the old price", n=2)
    await asyncio.wait_for(held.arrived.wait(), 20)  # generated; its results are being fetched
    await harness.stop_bot()
    harness.settings = harness.settings.model_copy(update={"image_credits": Decimal(25)})
    held.release()
    await harness.start_bot()  # resumes the download, then delivers and settles at the new price
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 2, timeout=30)
    assert "4 credits charged" in final.text
    await harness.settled_balance()
    assert await _ledger(harness) == [("reserve", 4000), ("settle", 4000)]


async def _wait_for_ledger(harness, expected: list[tuple[str, int]]) -> None:
    for _ in range(200):
        if await _ledger(harness) == expected:
            return
        await asyncio.sleep(0.05)
    assert await _ledger(harness) == expected

