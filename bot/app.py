"""The bot shell: wires the services together in setup_hook and loads the command cogs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import discord
from discord.ext import commands

from bot import USER_AGENT
from bot.blocked_terms import BlockedTerms
from bot.callbacks import CALLBACK_PATH, CallbackHub
from bot.channel_defaults import ChannelDefaultsStore
from bot.clock import Clock
from bot.config import Settings
from bot.credits import CreditLedger, to_milli
from bot.db import Database
from bot.evolink.client import UPLOAD_TIMEOUT, EvoLinkClient
from bot.evolink.stats import CallStats
from bot.i18n import CatalogueTranslator, supported_locale
from bot.jobs.failures import NOT_ACKNOWLEDGED
from bot.jobs.inputs import ImageSource
from bot.jobs.kinds import ImageJobRules, JobKindRules, VideoJobRules
from bot.jobs.pause import RESUMED_NOTICE, PauseReason
from bot.jobs.runner import JobRunner, RunnerSettings, Submission
from bot.jobs.store import Job, JobKind, JobStore
from bot.media.limits import MediaLimits
from bot.media.sources import DiscordMedia, MediaOrigins, media_session
from bot.media.video import find_ffmpeg
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from bot.requests import ImageRequest, VideoOptions, VideoRequest
from bot.ui.checks import member_role_ids
from bot.ui.errors import ReplyingCommandTree, defer_publicly, placeholder_taken
from bot.ui.job_message import JobMessage
from bot.web import WebServer

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.imagine", "cogs.animate", "cogs.credits", "cogs.quota", "cogs.usage", "cogs.moderation",
    "cogs.admin", "cogs.defaults", "cogs.history", "cogs.help", "cogs.results",
)


def use_discord_api(base_url: str) -> None:
    """Send every Discord REST call (bot and interaction tokens alike) to `base_url`: a REST proxy
    in production, a local fake in tests."""
    discord.http.Route.BASE = base_url.rstrip("/")


@dataclass
class Services:
    """What the cogs use. Created once in setup_hook, closed with the bot."""

    settings: Settings
    clock: Clock
    db: Database
    session: aiohttp.ClientSession
    evolink: EvoLinkClient
    ledger: CreditLedger
    store: JobStore
    runner: JobRunner
    ffmpeg: str | None  # None: videos over the upload limit are linked, not re-encoded
    quotas: QuotaStore
    blocked_terms: BlockedTerms
    evolink_stats: CallStats  # how EvoLink answered in the last hour, for /admin status
    channel_defaults: ChannelDefaultsStore  # what /imagine and /animate use for omitted options
    callbacks: CallbackHub  # EvoLink callbacks waking the jobs that wait on them (off without PUBLIC_BASE_URL)
    web: WebServer  # /healthz and the callback endpoint, on HTTP_HOST:HTTP_PORT
    media: MediaLimits  # slots for downloads, decodes and ffmpeg runs, shared fairly by the guilds
    discord_media: DiscordMedia  # fetching members' pictures (and /show's files) from Discord only


class WanBot(commands.AutoShardedBot):
    services: Services

    def __init__(self, settings: Settings, *, clock: Clock | None = None, serving: bool = True) -> None:
        # Slash commands and buttons need no privileged intents; `guilds` keeps guild data
        # (boost tier for upload limits) and nothing else is cached.
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=ReplyingCommandTree,
            help_command=None,
            # Prompts are user text: nothing the bot posts may ping anyone unless it says so.
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=None,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
        )
        self.settings = settings
        self.clock = clock or Clock()
        self.shutting_down = False
        # False for one-off commands (sync) that log in beside a running bot: no web server on its
        # HTTP_PORT, and no resuming of its jobs (two processes would poll and post them twice).
        self.serving = serving

    async def setup_hook(self) -> None:
        settings = self.settings
        session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        db = await Database.open(settings.database_path)
        evolink_stats = CallStats(self.clock)
        evolink = EvoLinkClient(
            session,
            api_key=settings.evolink_api_key.get_secret_value(),
            base_url=settings.evolink_base_url,
            files_base_url=settings.evolink_files_base_url,
            timeout=aiohttp.ClientTimeout(total=settings.evolink_timeout_seconds, connect=10),
            upload_timeout=UPLOAD_TIMEOUT,
            stats=evolink_stats,
        )
        quotas = QuotaStore(db, self.clock, QuotaDefaults(
            allowance=to_milli(settings.default_daily_credits),
            period=Period.DAY,
            max_concurrent_jobs=settings.default_max_concurrent_jobs,
            max_waiting_jobs=settings.max_waiting_jobs_per_member,
            member_ceiling_per_day=to_milli(settings.max_member_credits_per_day),
            server_ceiling_per_day=to_milli(settings.max_server_credits_per_day),
        ))
        ledger = CreditLedger(db, self.clock, quotas, bot_daily_budget=to_milli(settings.bot_daily_budget))
        media = MediaLimits(downloads=settings.max_concurrent_downloads,
                            processing=settings.max_concurrent_media_processing)
        discord_media = DiscordMedia(media_session(), MediaOrigins(settings.discord_media_base_urls), media)
        store = JobStore(db, self.clock)
        callbacks = CallbackHub(settings.public_base_url)
        runner = JobRunner(
            db=db, store=store, ledger=ledger, evolink=evolink, session=session, clock=self.clock,
            # Beside the database whose job ids name its folders, so a resumed job finds the
            # files it had downloaded (and never another database's).
            work_dir=settings.database_path.with_suffix(".work"),
            settings=RunnerSettings(
                max_in_flight=settings.max_jobs_in_flight,
                max_in_flight_per_user=settings.max_jobs_in_flight_per_member,
                max_result_bytes=settings.max_result_bytes,
                kinds=self.job_kinds(),
            ),
            callbacks=callbacks,
            media=media,
        )
        web = WebServer(bot=self, db=db, runner=runner, callbacks=callbacks,
                        host=settings.http_host, port=settings.http_port)
        ffmpeg = find_ffmpeg(settings.ffmpeg_path)
        if ffmpeg is None:
            log.warning("ffmpeg not found (FFMPEG_PATH=%s): videos over Discord's upload limit "
                        "will be posted as links instead of being re-encoded", settings.ffmpeg_path)
        self.services = Services(settings, self.clock, db, session, evolink, ledger, store, runner,
                                 ffmpeg, quotas, BlockedTerms(db, self.clock), evolink_stats,
                                 ChannelDefaultsStore(db, self.clock), callbacks, web, media, discord_media)
        # Before the cogs: the translator localises their commands' names and descriptions
        # whenever the tree is synced.
        await self.tree.set_translator(CatalogueTranslator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        runner.on_pause_change = self._tell_moderators_about_pause
        if not self.serving:
            return  # a one-off command (sync): the running bot owns the port and the jobs
        # Before the jobs resume: a taken port raises WebServerUnavailable, which `python -m bot`
        # reports in one line, and nothing has started that would have to be stopped again.
        await web.start()
        where = (f"EvoLink callbacks at {settings.public_base_url}{CALLBACK_PATH}/…" if callbacks.enabled
                 else "EvoLink callbacks off: no PUBLIC_BASE_URL")
        log.info("Web server on http://%s:%d (healthz; %s)", web.host, web.port, where)
        # Here, not in on_ready: commands can arrive before on_ready, and they must find the
        # line already rebuilt. Only database work is awaited; the jobs reach Discord themselves.
        await runner.resume_unfinished(self.reporter_for_stored_job)
        log.info("Ready to take commands (database %s)", settings.database_path)

    def job_kinds(self) -> dict[JobKind, JobKindRules]:
        """What differs per kind of job (create call, polling plan, checks, price). A method so
        the benchmark's baseline can swap the polling policy of the very same bot."""
        settings = self.settings
        return {
            JobKind.IMAGE: ImageJobRules(settings.prices, settings.image_job_timeout_seconds),
            JobKind.VIDEO: VideoJobRules(settings.prices, settings.video_job_timeout_seconds),
        }

    async def start_job_in_reply(
        self, interaction: discord.Interaction, *, kind: JobKind, request: ImageRequest | VideoRequest,
        parent_job_id: int | None = None,
    ) -> None:
        """Check, charge and start a job whose options are known (/imagine, a button's reroll, a
        form's remix), in a new reply to the interaction. Checked and charged before answering,
        so a refusal can be a private reply: both steps are local, well inside 3 seconds."""
        services = self.services
        assert interaction.guild_id is not None and interaction.channel_id is not None
        await services.blocked_terms.check(interaction.guild_id, request.prompt)
        submission = await services.runner.submit(
            kind=kind, guild_id=interaction.guild_id, channel_id=interaction.channel_id,
            user_id=interaction.user.id, interaction_id=interaction.id, request=request,
            role_ids=member_role_ids(interaction), locale=supported_locale(interaction.locale),
            parent_job_id=parent_job_id,
        )
        async with self.cancelled_unless_started(submission):
            deferral = await defer_publicly(interaction)
            await self.follow_job_in_reply(interaction, submission, deferral)

    @asynccontextmanager
    async def cancelled_unless_started(self, submission: Submission) -> AsyncIterator[None]:
        """A submitted job (written, its credits held) that fails to be acknowledged and put in
        line, for whatever reason (Discord refused the answer, the network broke, the handler was
        cancelled), is failed and refunded at once: a job the member never saw start must never
        run and be charged after a restart."""
        try:
            yield
        except BaseException:
            # Shielded: a cancellation (shutdown) must not cut the refund in half.
            await asyncio.shield(self.services.runner.cancel_unstarted(submission.job_id, NOT_ACKNOWLEDGED))
            log.warning("Job %d: not acknowledged; cancelled and refunded", submission.job_id)
            raise

    async def start_video_in_reply(self, interaction: discord.Interaction, source: ImageSource,
                                   options: VideoOptions, *, parent_job_id: int | None = None) -> None:
        """The /animate flow on a picture chosen some other way (a result's Animate button)."""
        animate = self.get_cog("Animate")
        await animate.start_video(interaction, source, options, parent_job_id=parent_job_id)  # type: ignore[union-attr]

    async def follow_job_in_reply(
        self,
        interaction: discord.Interaction,
        submission: Submission,
        deferral: discord.InteractionCallbackResponse | None,
    ) -> None:
        """Start a submitted job whose progress and results go in the deferred reply. The
        reply's id is stored at once, so the bot token can take over from the interaction token."""
        services = self.services
        message_id = deferral.message_id if deferral is not None else None
        if message_id is not None:
            await services.store.set_message(submission.job_id, message_id)
        job = await services.store.get(submission.job_id)
        reporter = JobMessage(
            self, job, store=services.store, clock=services.clock, reserved=submission.reserved,
            interaction=interaction, ffmpeg=services.ffmpeg, media=services.media,
        )
        services.runner.enqueue(job, reporter, running_limit=submission.running_limit)
        placeholder_taken(interaction)

    def reporter_for_stored_job(self, job: Job) -> JobMessage:
        """The message of a job known only from its row (resumed, or handled by an operator):
        no interaction, so every edit uses the bot token on the stored channel and message."""
        services = self.services
        return JobMessage(self, job, store=services.store, clock=services.clock,
                          reserved=services.runner.estimate(job), ffmpeg=services.ffmpeg, media=services.media)

    async def _tell_moderators_about_pause(self, reason: PauseReason | None) -> None:
        """Post in every log channel moderators have set that generations paused or resumed."""
        notice = reason.moderators_notice if reason else RESUMED_NOTICE
        for guild_id, channel_id in await self.services.quotas.log_channels():
            guild = self.get_guild(guild_id)  # the server's language, once the guild is cached
            try:
                await self.get_partial_messageable(channel_id).send(
                    notice.render(guild.preferred_locale if guild else None))
            except discord.HTTPException as exc:
                log.warning("Could not post to the log channel %d of guild %d (HTTP %s, code %s)",
                            channel_id, guild_id, exc.status, exc.code)

    async def close(self) -> None:
        # From now on commands get "restarting" (see ReplyingCommandTree.interaction_check).
        self.shutting_down = True
        services = getattr(self, "services", None)
        if services is not None:
            await services.runner.close()
            await services.web.stop()
            services.blocked_terms.close()  # the pattern worker processes
        await super().close()
        if services is not None:
            await services.session.close()
            await services.discord_media.session.close()
            await services.db.close()
