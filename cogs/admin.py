"""/admin: the bot owner's tools: the EvoLink account next to what the bot charged, the state of the
job line and of EvoLink's answers, and a look at (or a hand on) any one job."""

from __future__ import annotations

import logging
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.evolink.errors import EvoLinkError
from bot.jobs.failures import OPERATOR_REFUND, JobFailed, JobFailure
from bot.jobs.kinds import ResultFile
from bot.jobs.runner import JobBusy, JobProgress, JobReporter
from bot.jobs.store import Job, JobAlreadyFinished, JobState
from bot.ui.checks import owner_only
from bot.ui.render import describe_options, quoted_prompt, timestamp
from bot.units import format_credits, from_millis, to_milli

log = logging.getLogger(__name__)

JOB_ACTIONS = ("show", "retry-delivery", "refund")
# SQLite integers are signed 64-bit; discord.py does not enforce an option's range itself.
MAX_JOB_ID = 2**63 - 1


# Shown to server administrators only (a hint); owner_only is the real check.
@app_commands.default_permissions()
class Admin(commands.GroupCog, group_name="admin", group_description="The bot owner's tools"):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await owner_only(interaction)

    @app_commands.command(name="balance", description="EvoLink's account balance next to what the bot charged today")
    async def balance(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        charged, held = await services.ledger.bot_totals_today()
        ours = (f"The bot charged members **{format_credits(charged)}** credits today (UTC), across "
                f"every server; running jobs hold {format_credits(held)} more.")
        try:
            account = await services.evolink.get_balance()
        except EvoLinkError as exc:
            await interaction.followup.send(f"EvoLink's balance could not be read ({exc}).\n{ours}", ephemeral=True)
            return
        key = ("unlimited" if account.key_unlimited else
               f"{format_credits(to_milli(account.key_remaining_credits))} left"
               if account.key_remaining_credits is not None else "unknown")
        await interaction.followup.send(
            f"**EvoLink account**: {format_credits(to_milli(account.remaining_credits))} credits left, "
            f"{format_credits(to_milli(account.used_credits))} used in all · this API key: {key}\n{ours}\n"
            "-# If EvoLink's used credits grow faster than what the bot charges, some spending is not "
            "going through the bot's ledger (another app on the same key, or jobs charged by EvoLink "
            "but refunded to members).",
            ephemeral=True,
        )

    @app_commands.command(name="status", description="The job line, paused submissions and EvoLink's errors")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        runner = services.runner.status()
        calls = services.evolink_stats.summary()
        oldest = await services.store.oldest_unfinished()
        paused = (f"⏸️ **paused**: {runner.paused.problem} (`{runner.paused.code}`)" if runner.paused
                  else "accepted")
        window = _duration(services.evolink_stats.window_seconds)
        lines = [
            "**Bot status**",
            f"Jobs: **{runner.queued}** waiting in line · **{runner.in_flight}** at EvoLink · "
            f"**{runner.finishing}** downloading or delivering",
            f"New submissions: {paused}",
            f"EvoLink in the last {window}: **{calls.calls}** call{_s(calls.calls)}, "
            f"**{calls.errors}** failed ({calls.error_rate:.1%}), "
            f"{calls.rate_limited} of them rate limited (429)",
        ]
        if oldest is None:
            lines.append("Oldest unfinished job: none")
        else:
            lines.append(f"Oldest unfinished job: **{oldest.id}** · {oldest.kind} · {oldest.state} · "
                         f"created {timestamp(from_millis(oldest.created_at))} · "
                         f"server {self._guild_name(oldest.guild_id)}")
        await interaction.followup.send("\n".join(lines), ephemeral=True)

    @app_commands.command(name="job", description="Look at one job, deliver its results again, or refund it")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id (shown under each job's message)",
                           action="What to do (default: show)")
    @app_commands.choices(action=[app_commands.Choice(name=action, value=action) for action in JOB_ACTIONS])
    async def job(self, interaction: discord.Interaction, job_id: int, action: str = "show") -> None:
        # Downloads, uploads and cancelling a job's task all take time: answer Discord first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self._job_reply(job_id, action)
        await interaction.followup.send(reply, ephemeral=True)

    async def _job_reply(self, job_id: int, action: str) -> str:
        if action not in JOB_ACTIONS:  # Discord offers only the choices; a crafted payload may not
            return f"`{action}` is not an action of /admin job: use {', '.join(JOB_ACTIONS)}."
        if not 0 < job_id <= MAX_JOB_ID:
            return f"There is no job {job_id}: job ids are positive whole numbers."
        try:
            job = await self.bot.services.store.get(job_id)
        except KeyError:
            return f"There is no job {job_id}."
        if action == "retry-delivery":
            return await self._retry_delivery(job)
        if action == "refund":
            return await self._refund(job)
        return await self._describe(job)

    async def _describe(self, job: Job) -> str:
        services = self.bot.services
        lines = [
            f"**Job {job.id}** · {job.kind} · {describe_options(job)} · **{job.state}**",
            quoted_prompt(job.request["prompt"]),
            f"Server {self._guild_name(job.guild_id)} · channel <#{job.channel_id}> · "
            f"requested by <@{job.user_id}> (`{job.user_id}`)",
            " · ".join([
                f"Created {_when(job.created_at)}",
                f"sent to EvoLink {_when(job.submitted_at)}" if job.submitted_at else "not sent to EvoLink",
                f"finished {_when(job.finished_at)}" if job.finished_at else "not finished",
            ]),
            f"EvoLink task: `{job.task_id}`" if job.task_id else "EvoLink task: none yet",
        ]
        if job.error_code or job.error_message:
            lines.append(f"Error: `{job.error_code}`: {job.error_message or 'no message'}")
        results = len(job.result_urls)
        lines.append(f"Results: {results} known (EvoLink links)" if results else "Results: none known")
        charged = (await services.ledger.charges([job.id])).get(job.id)
        refunded = (await services.ledger.refunds([job.id])).get(job.id)
        if charged is not None:
            lines.append(f"Charged: {format_credits(charged)} credits")
        elif refunded is not None:
            lines.append(f"Refunded: {format_credits(refunded)} credits")
        lines.append(self._runner_line(job))
        lines.append(f"Message: {_message_link(job)}" if job.message_id else "Message: not known")
        return "\n".join(lines)

    def _runner_line(self, job: Job) -> str:
        if self.bot.services.runner.is_busy(job.id):
            return "Runner: working on it now"
        if job.state.is_final:
            return "Runner: done with it"
        if job.state is JobState.QUEUED:
            return "Runner: waiting for a free slot"
        return ("Runner: **not working on it** although it is unfinished; "
                f"`/admin job id:{job.id} action:refund` ends it and gives the credits back")

    async def _retry_delivery(self, before: Job) -> str:
        bot = self.bot
        reporter = _RedeliveryReporter(bot.reporter_for_stored_job(before))
        try:
            await bot.services.runner.retry_delivery(before.id, reporter)
        except JobBusy:
            return (f"Job {before.id} is still being worked on ({before.state}): it delivers by itself "
                    "when it finishes. Refund it instead if it is stuck.")
        except JobFailed as failed:
            restored = await self._restore_failure(before, reporter)
            return (f"Job {before.id} was not delivered again: {failed.failure.message}"
                    + ("\nIts message shows its failure again." if restored else ""))
        finally:
            reporter.stop()
        after = await bot.services.store.get(before.id)
        where = f" ({_message_link(after)})" if after.message_id else ""
        if before.state is JobState.FAILED:
            return (f"Job {before.id} was delivered again in its message{where}, free of charge: it had "
                    f"failed (`{before.error_code}`) and its credits were given back, so nothing was "
                    "charged.")
        if before.state is JobState.DONE:
            return (f"Job {before.id} was delivered again in its message{where}; it had been charged "
                    "already and was not charged again.")
        charged = (await bot.services.ledger.charges([before.id])).get(before.id)
        cost = f"charged {format_credits(charged)} credits" if charged is not None else "settled as usual"
        return f"Job {before.id} was delivered in its message{where} and {cost}."

    async def _restore_failure(self, before: Job, reporter: _RedeliveryReporter) -> bool:
        """A failed delivery may have written in the message (e.g. 'sent to you by DM'): a job
        that had failed before shows its own failure again, with what it gave back."""
        if before.state is not JobState.FAILED or not reporter.delivery_attempted:
            return False
        failure = JobFailure(before.error_code or "unknown_error",
                             before.error_message or "This job failed.")
        refunded = (await self.bot.services.ledger.refunds([before.id])).get(before.id)
        try:
            await reporter.show_failure(before, failure, refunded)
        except discord.HTTPException as exc:
            log.warning("Job %d: could not show its failure again (HTTP %s, code %s)",
                        before.id, exc.status, exc.code)
            return False
        return True

    async def _refund(self, job: Job) -> str:
        services = self.bot.services
        try:
            refunded = await services.runner.refund_stuck(job.id, OPERATOR_REFUND,
                                                          self.bot.reporter_for_stored_job)
        except JobAlreadyFinished:
            now = await services.store.get(job.id)
            if now.state is JobState.DONE:
                return (f"Job {job.id} is already finished: it was delivered and charged, so it cannot be "
                        f"refunded. To give the member credits back, use `/quota grant` in its server "
                        f"for <@{now.user_id}>.")
            return f"Job {job.id} is already finished: it failed (`{now.error_code}`) and was refunded then."
        gave_back = (f"{format_credits(refunded)} credits were given back to <@{job.user_id}>"
                     if refunded is not None else "it held no credits to give back")
        return (f"Job {job.id} was stopped ({job.state} until now) and marked failed; {gave_back}. "
                "Its message now says the operator stopped it.")

    def _guild_name(self, guild_id: int) -> str:
        guild = self.bot.get_guild(guild_id)
        return f"{discord.utils.escape_markdown(guild.name)} (`{guild_id}`)" if guild else f"`{guild_id}`"


class _RedeliveryReporter:
    """A job's message during an operator's redelivery. Progress is not shown: the message keeps
    what it showed (its results or its failure) until new results replace it, so a redelivery
    that fails leaves no 'Downloading…' behind."""

    def __init__(self, message: JobReporter) -> None:
        self._message = message
        self.delivery_attempted = False

    async def show_progress(self, progress: JobProgress) -> None:
        return None

    async def deliver(self, job: Job, results: list[ResultFile], charged: int,
                      links_expire_at: datetime) -> None:
        self.delivery_attempted = True
        await self._message.deliver(job, results, charged, links_expire_at)

    async def show_failure(self, job: Job, failure: JobFailure, refunded: int | None) -> None:
        await self._message.show_failure(job, failure, refunded)

    def stop(self) -> None:
        self._message.stop()


def _when(millis: int | None) -> str:
    if millis is None:
        return "never"
    moment = from_millis(millis)
    return f"{timestamp(moment, 'f')} ({timestamp(moment)})"


def _message_link(job: Job) -> str:
    return f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = round(seconds / 60)
    return "minute" if minutes == 1 else f"{minutes} minutes"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Admin(bot))
