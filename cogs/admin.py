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
from bot.i18n import CommandName, CommandPath, Translate, for_interaction
from bot.jobs.failures import OPERATOR_REFUND, JobFailed, JobFailure, stored_failure
from bot.jobs.kinds import ResultFile
from bot.jobs.progress import JobProgress, JobReporter
from bot.jobs.runner import JobBusy
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
        _ = for_interaction(interaction)
        services = self.bot.services
        charged, held = await services.ledger.bot_totals_today()
        ours = _("admin.charged_today", charged=format_credits(charged), held=format_credits(held))
        try:
            account = await services.evolink.get_balance()
        except EvoLinkError as exc:
            unreadable = _("admin.balance_unreadable", error=exc)
            await interaction.followup.send(f"{unreadable}\n{ours}", ephemeral=True)
            return
        key = (_("admin.key_unlimited") if account.key_unlimited else
               _("admin.key_left", amount=format_credits(to_milli(account.key_remaining_credits)))
               if account.key_remaining_credits is not None else _("admin.key_unknown"))
        account_line = _("admin.account", remaining=format_credits(to_milli(account.remaining_credits)),
                         used=format_credits(to_milli(account.used_credits)), key=key)
        await interaction.followup.send(f"{account_line}\n{ours}\n{_('admin.ledger_hint')}", ephemeral=True)

    @app_commands.command(name="status", description="The job line, paused submissions and EvoLink's errors")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        _ = for_interaction(interaction)
        services = self.bot.services
        runner = services.runner.status()
        calls = services.evolink_stats.summary()
        oldest = await services.store.oldest_unfinished()
        paused = (_("admin.submissions_paused", problem=runner.paused.problem_message.render(_.locale),
                    code=runner.paused.code) if runner.paused
                  else _("admin.submissions_accepted"))
        charged, held = await services.ledger.bot_totals_today()
        settings = services.settings
        lines = [
            _("admin.status_title"),
            _("admin.status_jobs", queued=runner.queued, in_flight=runner.in_flight,
              finishing=runner.finishing),
            _("admin.status_submissions", state=paused),
            _("admin.status_evolink", window=_duration(services.evolink_stats.window_seconds, _),
              calls=_("admin.calls_one" if calls.calls == 1 else "admin.calls", count=calls.calls),
              errors=calls.errors, rate=f"{calls.error_rate:.1%}", limited=calls.rate_limited),
        ]
        if oldest is None:
            lines.append(_("admin.oldest_none"))
        else:
            lines.append(_("admin.oldest", id=oldest.id, kind=_(f"admin.kind.{oldest.kind.value}"),
                           state=_(f"account.state.{oldest.state.value}"),
                           created=timestamp(from_millis(oldest.created_at)),
                           server=self._guild_name(oldest.guild_id)))
        lines.append(_("admin.status_ceilings", member=settings.max_member_credits_per_day,
                       server=settings.max_server_credits_per_day, bot=settings.bot_daily_budget,
                       charged=format_credits(charged), held=format_credits(held)))
        await interaction.followup.send("\n".join(lines), ephemeral=True)

    @app_commands.command(name="job", description="Look at one job, deliver its results again, or refund it")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id (shown under each job's message)",
                           action="What to do (default: show)")
    @app_commands.choices(action=[app_commands.Choice(name=action, value=action) for action in JOB_ACTIONS])
    async def job(self, interaction: discord.Interaction, job_id: int, action: str = "show") -> None:
        # Downloads, uploads and cancelling a job's task all take time: answer Discord first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self._job_reply(job_id, action, for_interaction(interaction))
        await interaction.followup.send(reply, ephemeral=True)

    async def _job_reply(self, job_id: int, action: str, _: Translate) -> str:
        if action not in JOB_ACTIONS:  # Discord offers only the choices; a crafted payload may not
            return _("admin.unknown_action", action=action,
                     command=CommandPath("admin", "job").render(_.locale), actions=", ".join(JOB_ACTIONS))
        if not 0 < job_id <= MAX_JOB_ID:
            return _("admin.bad_job_id", id=job_id)
        try:
            job = await self.bot.services.store.get(job_id)
        except KeyError:
            return _("admin.no_such_job", id=job_id)
        if action == "retry-delivery":
            return await self._retry_delivery(job, _)
        if action == "refund":
            return await self._refund(job, _)
        return await self._describe(job, _)

    async def _describe(self, job: Job, _: Translate) -> str:
        services = self.bot.services
        lines = [
            _("admin.job_title", id=job.id, kind=_(f"admin.kind.{job.kind.value}"),
              options=describe_options(job, _.locale), state=_(f"account.state.{job.state.value}")),
            quoted_prompt(job.request["prompt"]),
            _("admin.job_where", server=self._guild_name(job.guild_id), channel=f"<#{job.channel_id}>",
              user=f"<@{job.user_id}>", user_id=job.user_id),
            " · ".join([
                _("admin.job_created", when=_when(job.created_at, _)),
                _("admin.job_sent", when=_when(job.submitted_at, _)) if job.submitted_at
                else _("admin.job_not_sent"),
                _("admin.job_finished", when=_when(job.finished_at, _)) if job.finished_at
                else _("admin.job_not_finished"),
            ]),
            _("admin.job_task", task=job.task_id) if job.task_id else _("admin.job_no_task"),
        ]
        if job.error_code or job.error_message:
            # The stored English text: the operator reads it next to the logs.
            lines.append(_("admin.job_error", code=job.error_code,
                           message=job.error_message or _("admin.job_error_no_message")))
        results = len(job.result_urls)
        lines.append(_("admin.job_results", count=results) if results else _("admin.job_no_results"))
        cost = await services.ledger.job_cost(job.id)
        if cost.charged is not None:
            lines.append(_("admin.job_charged", amount=format_credits(cost.charged)))
        elif cost.refunded is not None:
            lines.append(_("admin.job_refunded", amount=format_credits(cost.refunded)))
        lines.append(self._runner_line(job, _))
        lines.append(_("admin.job_message", link=_message_link(job)) if job.message_id
                     else _("admin.job_no_message"))
        return "\n".join(lines)

    def _runner_line(self, job: Job, _: Translate) -> str:
        if self.bot.services.runner.is_busy(job.id):
            return _("admin.runner_busy")
        if job.state.is_final:
            return _("admin.runner_done")
        if job.state is JobState.QUEUED:
            return _("admin.runner_waiting")
        def name(english: str) -> str:
            return CommandName(english).render(_.locale)

        refund = (f"{CommandPath('admin', 'job').render(_.locale)} {name('id')}:{job.id} "
                  f"{name('action')}:{name('refund')}")
        return _("admin.runner_stuck", command=f"`{refund}`")

    async def _retry_delivery(self, before: Job, _: Translate) -> str:
        bot = self.bot
        reporter = _RedeliveryReporter(bot.services.messages.for_stored_job(before))
        try:
            await bot.services.runner.retry_delivery(before.id, reporter)
        except JobBusy:
            return _("admin.redeliver_busy", id=before.id, state=_(f"account.state.{before.state.value}"))
        except JobFailed as failed:
            restored = await self._restore_failure(before, reporter)
            reply = _("admin.redeliver_failed", id=before.id, reason=failed.failure.localized(_.locale))
            return reply + ("\n" + _("admin.redeliver_failure_restored") if restored else "")
        finally:
            reporter.stop()
        after = await bot.services.store.get(before.id)
        where = _("admin.where", link=_message_link(after)) if after.message_id else ""
        if before.state is JobState.FAILED:
            return _("admin.redelivered_free", id=before.id, where=where, code=before.error_code)
        if before.state is JobState.DONE:
            return _("admin.redelivered_again", id=before.id, where=where)
        charged = (await bot.services.ledger.job_cost(before.id)).charged
        cost = (_("admin.cost_charged", amount=format_credits(charged)) if charged is not None
                else _("admin.cost_settled"))
        return _("admin.delivered", id=before.id, where=where, cost=cost)

    async def _restore_failure(self, before: Job, reporter: _RedeliveryReporter) -> bool:
        """A failed delivery may have written in the message (e.g. 'sent to you by DM'): a job
        that had failed before shows its own failure again, with what it gave back."""
        if before.state is not JobState.FAILED or not reporter.delivery_attempted:
            return False
        failure = stored_failure(before.error_code, before.error_message)
        refunded = (await self.bot.services.ledger.job_cost(before.id)).refunded
        try:
            await reporter.show_failure(before, failure, refunded)
        except discord.HTTPException as exc:
            log.warning("Job %d: could not show its failure again (HTTP %s, code %s)",
                        before.id, exc.status, exc.code)
            return False
        return True

    async def _refund(self, job: Job, _: Translate) -> str:
        services = self.bot.services
        try:
            refunded = await services.runner.refund_stuck(job.id, OPERATOR_REFUND,
                                                          self.bot.services.messages.for_stored_job)
        except JobAlreadyFinished:
            now = await services.store.get(job.id)
            if now.state is JobState.DONE:
                grant = CommandPath("quota", "grant").render(_.locale)
                return _("admin.refund_done", id=job.id, command=f"`{grant}`", user=f"<@{now.user_id}>")
            return _("admin.refund_failed_already", id=job.id, code=now.error_code)
        gave_back = (_("admin.gave_back", amount=format_credits(refunded), user=f"<@{job.user_id}>")
                     if refunded is not None else _("admin.gave_nothing_back"))
        return _("admin.refunded", id=job.id, state=_(f"account.state.{job.state.value}"),
                 gave_back=gave_back)

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


def _when(millis: int | None, _: Translate) -> str:
    if millis is None:
        return _("admin.never")
    moment = from_millis(millis)
    return f"{timestamp(moment, 'f')} ({timestamp(moment)})"


def _message_link(job: Job) -> str:
    return f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"


def _duration(seconds: float, _: Translate) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return _("admin.hour") if hours == 1 else _("admin.hours", count=hours)
    minutes = round(seconds / 60)
    return _("admin.minute") if minutes == 1 else _("admin.minutes", count=minutes)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Admin(bot))
