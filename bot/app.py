"""The bot shell: builds the services and the launcher in setup_hook, loads the command cogs, and
closes everything in order."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.callbacks import CALLBACK_PATH
from bot.clock import Clock
from bot.config import Settings
from bot.db.shared_state import SharedState
from bot.identify_pacing import IDENTIFY_SPACING_SECONDS, IdentifyPacer
from bot.jobs.kinds import EditJobRules, ImageJobRules, JobKindRules, VideoJobRules
from bot.jobs.pause import RESUMED_NOTICE, PauseReason
from bot.jobs.store import JobKind
from bot.launch import Launcher
from bot.metrics import Metrics
from bot.services import Services, build_services
from bot.ui.errors import ReplyingCommandTree
from bot.ui.moderation_log import post_to_every_log_channel
from bot.ui.translator import CatalogueTranslator

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.imagine", "cogs.edit", "cogs.animate", "cogs.credits", "cogs.quota", "cogs.usage", "cogs.moderation",
    "cogs.admin", "cogs.defaults", "cogs.history", "cogs.help", "cogs.results",
)


def use_discord_api(base_url: str) -> None:
    """Send every Discord REST call (bot and interaction tokens alike) to `base_url`: a REST proxy
    in production, a local fake in tests."""
    discord.http.Route.BASE = base_url.rstrip("/")


def discord_rest_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """Count every REST request discord.py makes (interaction answers and followups included: they
    share its session) by method and status, and its 429s. Only requests under the REST base are
    counted: the gateway's websocket and CDN reads use the same session but are not REST calls.
    The path is never looked at beyond that prefix: it holds interaction tokens."""

    def is_rest(url: yarl.URL) -> bool:
        return str(url).startswith(discord.http.Route.BASE + "/")

    async def on_request_end(session: aiohttp.ClientSession, context: SimpleNamespace,
                             params: aiohttp.TraceRequestEndParams) -> None:
        if is_rest(params.url):
            response = params.response
            metrics.discord_request(params.method, response.status, response.headers.get("X-RateLimit-Scope"))

    async def on_request_exception(session: aiohttp.ClientSession, context: SimpleNamespace,
                                   params: aiohttp.TraceRequestExceptionParams) -> None:
        if is_rest(params.url):
            metrics.discord_request(params.method, None)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    trace.on_request_exception.append(on_request_exception)
    return trace


class WanBot(commands.AutoShardedBot):
    services: Services
    launcher: Launcher  # the one path that starts a job, for every command, button and form

    def __init__(self, settings: Settings, *, clock: Clock | None = None, serving: bool = True) -> None:
        # Slash commands and buttons need no privileged intents; `guilds` keeps guild data
        # (boost tier for upload limits, channels and roles for /show) and nothing else is cached.
        intents = discord.Intents.none()
        intents.guilds = True
        # Made here rather than with the other services: discord.py's session (and the trace that
        # counts its requests) exists from the first request, the login, before setup_hook.
        self.metrics = Metrics()
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
            # Neither set: every shard GET /gateway/bot recommends, in this process (see connect).
            shard_count=settings.shard_count,
            # None is discord.py's own default (its typing omits it).
            shard_ids=list(settings.shard_ids) or None,  # type: ignore[arg-type]
            http_trace=discord_rest_trace(self.metrics),
        )
        # Spaces IDENTIFYs per bucket (before_identify_hook). Its max_concurrency comes from
        # GET /gateway/bot in connect(); a gate shared with other processes can be set as
        # `identify_pacer.gate` before connect() (see bot.identify_pacing.IdentifyGate).
        self.identify_pacer = IdentifyPacer()
        self.settings = settings
        self.clock = clock or Clock()
        self.shutting_down = False
        # False for one-off commands (sync) that log in beside a running bot: no web server on its
        # HTTP_PORT, and no resuming of its jobs (two processes would poll and post them twice).
        self.serving = serving

    async def setup_hook(self) -> None:
        settings = self.settings
        self.services = services = await build_services(self, settings, self.clock, self.job_kinds(),
                                                        self.metrics)
        self.launcher = Launcher(services)
        # Before the cogs: the translator localises their commands' names and descriptions
        # whenever the tree is synced.
        await self.tree.set_translator(CatalogueTranslator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        services.runner.on_pause_change = self._tell_moderators_about_pause
        if not self.serving:
            return  # a one-off command (sync): the running bot owns the port and the jobs
        # Before the jobs resume: a taken port raises WebServerUnavailable, which `python -m bot`
        # reports in one line, and nothing has started that would have to be stopped again.
        web = services.web
        await web.start()
        where = (f"EvoLink callbacks at {settings.public_base_url}{CALLBACK_PATH}/…" if services.callbacks.enabled
                 else "EvoLink callbacks off: no PUBLIC_BASE_URL")
        log.info("Web server on http://%s:%d (healthz, metrics; %s)", web.host, web.port, where)
        if services.db.shared:
            # Processes sharing the database wake each other (the line moved, a callback arrived)
            # and take turns at IDENTIFY in each bucket, as Discord allows one per 5 s.
            await services.events.start()
            self.identify_pacer.gate = self._identify_turn_across_processes
        # Here, not in on_ready: commands can arrive before on_ready, and they must find the
        # line already rebuilt. Only database work is awaited; the jobs reach Discord themselves.
        await services.runner.resume_unfinished(services.messages.for_stored_job)
        log.info("Ready to take commands (database %s)", settings.database_shown)

    async def connect(self, *, reconnect: bool = True) -> None:
        await self._use_gateway_from_api()
        await super().connect(reconnect=reconnect)

    async def _use_gateway_from_api(self) -> None:
        """Take the gateway address, the shard count (unless set) and max_concurrency from our own
        `GET /gateway/bot`, at DISCORD_API_BASE_URL like every REST call.

        Given a shard_count, discord.py 2.7 skips that request and connects to its built-in
        `DiscordWebSocket.DEFAULT_GATEWAY`; it falls back to that address on its own too, whatever
        the shard count: `Shard.reconnect` and a re-IDENTIFY after an invalidated session pass no
        gateway, and an invalidated session resets `ws.gateway` to it. So the address is set there,
        the one place every new session reads it, rather than by overriding `launch_shards` (which
        would cover only the first connection). Like `discord.http.Route.BASE` (use_discord_api),
        it is per process, and it comes from that same REST base, so the two always agree: the
        fake Discord in tests, or a gateway proxy in production."""
        recommended_shards, gateway_url, session_start_limit = await self.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        if self.shard_count is None:
            # What launch_shards would do itself, minus its second request.
            self.shard_count = recommended_shards
        self.identify_pacer.max_concurrency = session_start_limit["max_concurrency"]

    async def _identify_turn_across_processes(self, bucket: int, _max_concurrency: int) -> None:
        try:
            # On the wall clock, never the bot's (tests run theirs faster): Discord counts real seconds.
            await SharedState(self.services.db, Clock()).wait_turn(f"identify:{bucket}", IDENTIFY_SPACING_SECONDS)
        except Exception as exc:  # the gate must not raise (see IdentifyGate): identify anyway
            log.warning("IDENTIFY turn: the database did not answer (%s); identifying without it",
                        type(exc).__name__)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py's default sleeps 5 s before every IDENTIFY but the process's first, in every
        # bucket alike; this waits only for the shard's own bucket (and the gate, if any).
        await self.identify_pacer.wait_turn(shard_id or 0)

    def job_kinds(self) -> dict[JobKind, JobKindRules]:
        """What differs per kind of job (create call, polling plan, checks, price). A method so
        the benchmark's baseline can swap the polling policy of the very same bot."""
        settings = self.settings
        return {
            JobKind.IMAGE: ImageJobRules(settings.prices, settings.image_job_timeout_seconds),
            JobKind.EDIT: EditJobRules(settings.prices, settings.image_job_timeout_seconds),
            JobKind.VIDEO: VideoJobRules(settings.prices, settings.video_job_timeout_seconds),
        }

    async def _tell_moderators_about_pause(self, reason: PauseReason | None) -> None:
        """Post in every log channel moderators have set that generations paused or resumed."""
        notice = reason.moderators_notice if reason else RESUMED_NOTICE
        await post_to_every_log_channel(self, self.services.quotas, notice)

    async def close(self) -> None:
        # From now on commands get "restarting" (see ReplyingCommandTree.interaction_check).
        self.shutting_down = True
        services = getattr(self, "services", None)
        if services is not None:
            await services.close()
        await super().close()
        if services is not None:
            await services.close_connections()
