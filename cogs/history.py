"""/jobs and /show: a member's recent jobs in this server, and a finished job posted again."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.delivery.refetch import Fetchers, LinkedFile, Refetched, job_sources, refetch_files
from bot.errors import UserFacingError
from bot.i18n import CommandPath, Message, Translate, command_name, for_interaction
from bot.jobs.failures import stored_failure
from bot.jobs.store import Job, JobState
from bot.media import megabytes
from bot.ui.account import job_line
from bot.ui.buttons import result_view
from bot.ui.checks import in_guild
from bot.ui.errors import answer_privately_after_public_deferral
from bot.ui.pages import LinkLine, pack_lines
from bot.ui.render import result_embed, timestamp

log = logging.getLogger(__name__)

DEFAULT_JOB_COUNT = 10
MAX_JOB_COUNT = 25
# Discord's integer options stop at 2**53 - 1 (its OpenAPI spec's Int53Type): a sync that declares
# more is refused whole, and then no command is registered at all.
MAX_JOB_ID = 2**53 - 1


def jump_link(job: Job) -> str:
    return f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"


class History(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    # -- /jobs ------------------------------------------------------------------------------------

    @app_commands.command(name="jobs", description="Your recent jobs in this server, newest first")
    @app_commands.describe(count="How many jobs to list, 1 to 25 (default 10)")
    @app_commands.check(in_guild)
    async def jobs(self, interaction: discord.Interaction,
                   count: app_commands.Range[int, 1, MAX_JOB_COUNT] | None = None) -> None:
        guild_id = _guild(interaction)
        # Discord's client keeps count in range, a crafted interaction need not.
        count = DEFAULT_JOB_COUNT if count is None else count
        if not 1 <= count <= MAX_JOB_COUNT:
            raise UserFacingError("history.bad_count", value=count, most=MAX_JOB_COUNT)
        _ = for_interaction(interaction)
        services = self.bot.services
        jobs = await services.store.recent_for_member(guild_id, interaction.user.id, count)
        if not jobs:
            await interaction.response.send_message(
                _("history.no_jobs", imagine=CommandPath("imagine").render(_.locale)), ephemeral=True)
            return
        costs = await services.ledger.job_costs(job.id for job in jobs)
        lines = [_("history.job_line", id=job.id, line=job_line(job, costs[job.id].charged, _.locale))
                 for job in jobs]
        embeds = [discord.Embed(description=page) for page in pack_lines(lines)]
        title = "history.jobs_title_one" if len(jobs) == 1 else "history.jobs_title"
        embeds[0].title = _(title, count=len(jobs))
        embeds[-1].set_footer(text=_("history.jobs_footer", show=CommandPath("show").render(_.locale),
                                     job=command_name(_.locale, "job")))
        # One embed per message: 25 long lines can pass the 6,000 characters a message's embeds
        # may hold together.
        await interaction.response.send_message(embed=embeds[0], ephemeral=True)
        for embed in embeds[1:]:
            await interaction.followup.send(embed=embed, ephemeral=True)

    # -- /show ------------------------------------------------------------------------------------

    @app_commands.command(name="show", description="Post a finished job of this server again, with its files")
    @app_commands.describe(job="The job's number, as /jobs lists it")
    @app_commands.check(in_guild)
    async def show(self, interaction: discord.Interaction,
                   job: app_commands.Range[int, 1, MAX_JOB_ID]) -> None:
        found = await self._finished_job_of_this_guild(interaction, job)
        _ = for_interaction(interaction)
        # Public, like the job's own message; the downloads below may take longer than 3 s.
        await interaction.response.defer(thinking=True)
        services = self.bot.services
        charged = (await services.ledger.job_cost(found.id)).charged or 0
        sources = await job_sources(self.bot, found, services.clock.now())
        fetchers = Fetchers(services.session, services.discord_media, found.guild_id)
        async with refetch_files(sources, fetchers=fetchers, job_id=found.id,
                                 max_file_bytes=interaction.filesize_limit) as fetched:
            if not fetched.found:
                await answer_privately_after_public_deferral(
                    interaction, _("history.show_files_gone", id=found.id, reasons=_reasons(fetched, _)))
                return
            links = [_link_line(linked, interaction.filesize_limit, _) for linked in fetched.linked]
            embed = result_embed(found, charged=charged, locale=_.locale, links=links)
            files = [discord.File(file.path, filename=file.filename) for file in fetched.files]
            try:
                await interaction.edit_original_response(embed=embed, attachments=files,
                                                         view=result_view(found, _.locale))
            except discord.HTTPException as exc:
                log.warning("Job %d: /show could not post it (HTTP %s, code %s)",
                            found.id, exc.status, exc.code)
                await answer_privately_after_public_deferral(
                    interaction, _("history.show_post_failed", id=found.id, status=exc.status))
                return
        log.info("Job %d: shown again by user %d from the %s", found.id, interaction.user.id,
                 fetched.origin.value if fetched.origin else "?")

    async def _finished_job_of_this_guild(self, interaction: discord.Interaction, job_id: int) -> Job:
        """The job, if it is this server's and done (and its result was not deleted on purpose);
        else a private refusal that says why. Only the database is read: this runs before the 3 s answer."""
        guild_id = _guild(interaction)
        job = None
        if 1 <= job_id <= MAX_JOB_ID:
            try:
                job = await self.bot.services.store.get(job_id)
            except KeyError:
                pass
        # Another server's job is as unknown here as one that never existed: its prompt is theirs.
        if job is None or job.guild_id != guild_id:
            raise UserFacingError("history.no_such_job", id=job_id, jobs=CommandPath("jobs"))
        if job.state is JobState.FAILED:
            failure = stored_failure(job.error_code, job.error_message)
            raise UserFacingError("history.show_failed", id=job.id, reason=failure.text or failure.message)
        if job.state is not JobState.DONE:
            where = Message("history.jump", link=jump_link(job)) if job.message_id else ""
            raise UserFacingError("history.show_unfinished", id=job.id,
                                  state=Message(f"history.state_{job.state.value}"), where=where)
        if job.removed_by is not None:
            # Its requester or a moderator deleted the result with its Delete button: on purpose.
            raise UserFacingError("history.show_removed", id=job.id, user=f"<@{job.removed_by}>")
        _check_may_show_here(interaction, job)
        return job


def _check_may_show_here(interaction: discord.Interaction, job: Job) -> None:
    """A job's prompt and files go only where its channel's content may go: back into that channel;
    elsewhere only for a caller who can view that channel, and never out of an age-restricted
    channel into one that is not. A thread counts as its parent channel. Worked out from the
    gateway's cache (the guild's roles, the channel's permission overwrites), the way Discord does;
    a channel the bot no longer knows keeps its jobs to itself."""
    if interaction.channel_id == job.channel_id:
        return
    guild = interaction.guild
    origin = _channel_itself(guild.get_channel_or_thread(job.channel_id) if guild else None)
    if origin is None:
        raise UserFacingError("history.show_origin_unknown", id=job.id)
    # Before the age check: a caller who cannot see the channel learns nothing about it.
    caller = interaction.user
    if not isinstance(caller, discord.Member) or not origin.permissions_for(caller).view_channel:
        raise UserFacingError("history.show_channel_hidden", id=job.id)
    if _age_restricted(origin) and not _age_restricted(_channel_itself(interaction.channel)):
        raise UserFacingError("history.show_age_restricted", id=job.id)


def _channel_itself(channel: object) -> discord.abc.GuildChannel | None:
    """The channel whose permissions and age restriction apply: a thread's parent."""
    if isinstance(channel, discord.Thread):
        return channel.parent
    return channel if isinstance(channel, discord.abc.GuildChannel) else None


def _age_restricted(channel: discord.abc.GuildChannel | None) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw and is_nsfw())


def _guild(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # in_guild
    return interaction.guild_id


def _reasons(fetched: Refetched, _: Translate) -> str:
    if not fetched.reasons:
        return _("history.gone_unknown")
    return "\n".join(f"- {reason.render(_.locale)}" for reason in fetched.reasons)


def _link_line(linked: LinkedFile, limit: int, _: Translate) -> LinkLine:
    """A file over the upload limit, by its link; the embed shortens its name (or, if the link
    itself leaves no room, says it is too long) to stay within Discord's limits."""
    file = linked.file
    size = megabytes(file.size) if file.size is not None else _("history.size_unknown")
    expiry = (_("history.link_expires", when=timestamp(linked.expires_at))
              if linked.expires_at is not None else "")
    return LinkLine(
        with_link=lambda name: _("history.show_linked", name=name, size=size, limit=megabytes(limit),
                                 url=file.url, expiry=expiry),
        without_link=lambda name: _("history.show_link_too_long", name=name, size=size, limit=megabytes(limit)),
        why=discord.utils.escape_markdown(file.filename))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(History(bot))

