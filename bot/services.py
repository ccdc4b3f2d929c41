"""The bot's services, built once from the settings and closed with the bot: what every command,
button and job uses (the database, the EvoLink client, the ledger, the job runner, ...)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import discord

from bot import USER_AGENT
from bot.blocked_terms import BlockedTerms
from bot.callbacks import CallbackHub
from bot.channel_defaults import ChannelDefaultsStore
from bot.clock import Clock
from bot.config import Settings
from bot.credits import CreditLedger, to_milli
from bot.db import Database
from bot.db.events import EventBus, event_bus_for
from bot.delivery import JobMessages
from bot.evolink.client import UPLOAD_TIMEOUT, EvoLinkClient
from bot.evolink.stats import CallStats
from bot.jobs.kinds import JobKindRules
from bot.jobs.runner import JobRunner, RunnerSettings
from bot.jobs.store import JobKind, JobStore
from bot.media.limits import MediaLimits
from bot.media.sources import DiscordMedia, MediaOrigins, media_session
from bot.media.video import find_ffmpeg
from bot.metrics import Metrics
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from bot.web import CALLBACK_EVENT, WebServer

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the cogs, the launcher and the jobs use."""

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
    messages: JobMessages  # each job's message in Discord: progress, results, failures
    events: EventBus  # wake-ups from the other processes sharing the database (PostgreSQL)
    metrics: Metrics  # what /metrics shows: EvoLink calls, Discord requests, credits, jobs

    async def close(self) -> None:
        """Stop the jobs' watchers and the web server (the bot then closes its gateway), ..."""
        await self.runner.close()
        await self.web.stop()
        self.blocked_terms.close()  # the pattern worker processes

    async def close_connections(self) -> None:
        """... then the HTTP sessions and the database, last: writes in progress finish first."""
        await self.session.close()
        await self.discord_media.session.close()
        await self.events.close()
        await self.db.close()


async def build_services(client: discord.Client, settings: Settings, clock: Clock,
                         kinds: dict[JobKind, JobKindRules], metrics: Metrics) -> Services:
    """Open the database (migrating it), and build every service on it. `kinds` says what differs
    per kind of job (the benchmark's baseline swaps the polling policy there). `metrics`: the
    process's, made before the services (the bot's Discord requests are counted from its login)."""
    session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
    db = await Database.open(settings.database)
    evolink_stats = CallStats(clock)
    evolink = EvoLinkClient(
        session,
        api_key=settings.evolink_api_key.get_secret_value(),
        base_url=settings.evolink_base_url,
        files_base_url=settings.evolink_files_base_url,
        timeout=aiohttp.ClientTimeout(total=settings.evolink_timeout_seconds, connect=10),
        upload_timeout=UPLOAD_TIMEOUT,
        stats=evolink_stats,
        observer=metrics,
    )
    quotas = QuotaStore(db, clock, QuotaDefaults(
        allowance=to_milli(settings.default_daily_credits),
        period=Period.DAY,
        max_concurrent_jobs=settings.default_max_concurrent_jobs,
        max_waiting_jobs=settings.max_waiting_jobs_per_member,
        member_ceiling_per_day=to_milli(settings.max_member_credits_per_day),
        server_ceiling_per_day=to_milli(settings.max_server_credits_per_day),
    ))
    ledger = CreditLedger(db, clock, quotas, bot_daily_budget=to_milli(settings.bot_daily_budget),
                          observer=metrics)
    media = MediaLimits(downloads=settings.max_concurrent_downloads,
                        processing=settings.max_concurrent_media_processing)
    discord_media = DiscordMedia(media_session(), MediaOrigins(settings.discord_media_base_urls), media)
    store = JobStore(db, clock, lease_seconds=settings.lease_seconds)
    callbacks = CallbackHub(settings.public_base_url)
    events = event_bus_for(db)
    # An EvoLink callback received by another process, for a job this one watches.
    events.subscribe(CALLBACK_EVENT, callbacks.deliver)
    runner = JobRunner(
        db=db, store=store, ledger=ledger, evolink=evolink, session=session, clock=clock,
        # Beside the database whose job ids name its folders, so a resumed job finds the
        # files it had downloaded (and never another database's).
        work_dir=settings.database_path.with_suffix(".work"),
        settings=RunnerSettings(
            max_in_flight=settings.max_jobs_in_flight,
            max_in_flight_per_user=settings.max_jobs_in_flight_per_member,
            max_result_bytes=settings.max_result_bytes,
            kinds=kinds,
            lease_seconds=settings.lease_seconds,
        ),
        callbacks=callbacks,
        media=media,
        events=events,
        on_takeover=metrics.lease_taken_over,
        observer=metrics,
    )
    web = WebServer(bot=client, db=db, runner=runner, callbacks=callbacks, store=store, events=events,
                    host=settings.http_host, port=settings.http_port, metrics=metrics)
    ffmpeg = find_ffmpeg(settings.ffmpeg_path)
    if ffmpeg is None:
        log.warning("ffmpeg not found (FFMPEG_PATH=%s): videos over Discord's upload limit "
                    "will be posted as links instead of being re-encoded", settings.ffmpeg_path)
    messages = JobMessages(client, store=store, clock=clock, runner=runner, ffmpeg=ffmpeg, media=media)
    return Services(settings, clock, db, session, evolink, ledger, store, runner, ffmpeg, quotas,
                    BlockedTerms(db, clock), evolink_stats, ChannelDefaultsStore(db, clock), callbacks,
                    web, media, discord_media, messages, events, metrics)
