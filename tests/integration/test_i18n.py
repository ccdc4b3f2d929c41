"""Replies follow the member's Discord language: Chinese for zh-CN, English otherwise; the log
channel follows the server's language."""

from __future__ import annotations

import re

import pytest

from tests.fakes.discord import slash_command_payload
from tests.integration.conftest import (
    CHANNEL_ID,
    GUILD_ID,
    LOG_CHANNEL_ID,
    MANAGE_SERVER,
    USER_ID,
    channel,
    member,
    number,
)

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

MOD_ID = 6006


async def ask(harness, name: str, locale: str, *, sub: str | None = None, options: list[dict] | None = None,
              user_id: int = USER_ID, permissions: int = 0, resolved: dict | None = None) -> str:
    """Send a command from a member whose Discord is set to `locale`; the text of the reply."""
    payload = slash_command_payload(
        harness.discord, name=name, subcommand=sub, options=options or [], guild_id=GUILD_ID,
        channel_id=CHANNEL_ID, user_id=user_id, locale=locale, permissions=permissions, resolved=resolved)
    interaction = await harness.discord.send_interaction(payload)
    return await harness.reply_to(interaction)


def imagine_options(size: str, n: int = 1) -> list[dict]:
    return [{"name": "prompt", "type": 3, "value": "a fox"}, {"name": "size", "type": 3, "value": size},
            {"name": "n", "type": 4, "value": n}]


async def test_an_invalid_size_is_explained_in_the_members_language(harness):
    chinese = await ask(harness, "imagine", "zh-CN", options=imagine_options("3000x100"))
    # The option as the Chinese client shows it, the value, and the rule, all in Chinese.
    assert chinese == "尺寸 3000x100：宽高比必须在 1:4 到 4:1 之间"
    chinese = await ask(harness, "imagine", "zh-CN", options=imagine_options("767x768"))
    assert chinese == "尺寸 767x768：图片像素总数必须在 768x768（589,824）到 1440x1440（2,073,600）之间，当前为 589,056"

    english = await ask(harness, "imagine", "en-US", options=imagine_options("3000x100"))
    assert english == "size 3000x100: the aspect ratio must be between 1:4 and 4:1"
    assert harness.evolink_creates() == [] and (await harness.balance()).spent == 0


async def test_credits_in_chinese_and_in_english(harness):
    chinese = await ask(harness, "credits", "zh-CN")
    assert chinese.startswith("**你今天在本服务器的积分**：剩余 40 / 40\n已使用：0 · 运行中任务预留：0\n"
                              "你的额度：每天 40 积分（来自服务器默认额度）。将在 <t:")
    english = await ask(harness, "credits", "en-US")
    assert english.startswith("**Your credits in this server today**: 40 of 40 left\n")


async def test_a_moderator_refusal_in_chinese_and_in_english(harness):
    options = [{"name": "amount", "type": 10, "value": 1000}]
    chinese = await ask(harness, "quota", "zh-CN", sub="set-default", options=options)
    assert chinese == "只有管理员可以执行此操作：需要“管理服务器”权限。"
    english = await ask(harness, "quota", "en-US", sub="set-default", options=options)
    assert english == "Only moderators can do this: it needs the Manage Server permission."
    assert (await harness.bot.services.quotas.moderator_role(GUILD_ID)) is None


async def test_not_enough_credits_in_chinese_and_in_english(harness):
    # A personal allowance of 3 credits; two images cost 2 each: more than the whole allowance.
    target = member("member", USER_ID)

    async def allow(amount: int) -> str:
        return await ask(harness, "quota", "en-US", sub="set-user", user_id=MOD_ID, permissions=MANAGE_SERVER,
                         options=[target.payload, number("amount", amount).payload], resolved=target.resolved)

    assert await allow(3) == f"<@{USER_ID}> now gets 3 credits per day, whatever their roles."
    chinese = await ask(harness, "imagine", "zh-CN", options=imagine_options("1024x1024", n=2))
    assert chinese == ("本次需要 4 积分，超过你在这里的全部额度（每天 3 积分），因此永远无法运行。"
                       "管理员可以用 /额度 设置默认（所有人）或 /额度 设置成员（单个成员）提高额度。")
    english = await ask(harness, "imagine", "en-US", options=imagine_options("1024x1024", n=2))
    assert english == ("This needs 4 credits, more than your whole allowance here (3 credits per day), so it "
                       "can never fit. A moderator can raise allowances with /quota set-default (everyone) or "
                       "/quota set-user (one member).")
    assert harness.evolink_creates() == [] and (await harness.balance()).held == 0

    # With 5 a day, one image (2) is held: two more images (4) do not fit what is left (3).
    await allow(5)
    await harness.command("imagine", prompt="one image first")
    chinese = await ask(harness, "imagine", "zh-CN", options=imagine_options("1024x1024", n=2))
    assert re.fullmatch(r"积分不足：本次需要 4，你今天还剩 3。你的额度将在 <t:\d+:R> 恢复。", chinese), chinese
    english = await ask(harness, "imagine", "en-US", options=imagine_options("1024x1024", n=2))
    assert re.fullmatch(r"Not enough credits: this needs 4 and you have 3 left today\. "
                        r"Your allowance refills <t:\d+:R>\.", english), english
    assert len(harness.evolink_creates()) <= 1 and (await harness.balance()).held <= 2_000


async def test_the_log_channel_follows_the_servers_language_and_the_reply_the_moderators(harness):
    harness.discord.guilds[GUILD_ID].preferred_locale = "zh-CN"
    log_channel = channel("channel", LOG_CHANNEL_ID)
    await ask(harness, "quota", "en-US", sub="log-channel", user_id=MOD_ID, permissions=MANAGE_SERVER,
              options=[log_channel.payload], resolved=log_channel.resolved)

    target = member("member", USER_ID)
    reply = await ask(harness, "quota", "en-US", sub="grant", user_id=MOD_ID, permissions=MANAGE_SERVER,
                      options=[target.payload, number("amount", 5).payload], resolved=target.resolved)
    assert reply == (f"Granted 5 credits to <@{USER_ID}> for today (granted by a moderator). "
                     "They have 45 credits left.")

    def posted() -> list[str]:
        return [m.text for m in harness.discord.messages.values() if m.channel_id == LOG_CHANNEL_ID]

    await harness.discord.wait_for(lambda fake: len(posted()) == 2)
    assert posted()[1] == (f"🛡️ <@{MOD_ID}>: 已在今天为 <@{USER_ID}> 发放 5 积分（由管理员发放）。"
                           "其剩余 45 积分。")
