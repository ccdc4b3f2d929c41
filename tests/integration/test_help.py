"""/help: every command and button explained privately, with examples, in the reader's language."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.fakes.discord import payload_text, slash_command_payload
from tests.integration.conftest import CHANNEL_ID, GUILD_ID

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

LOCALES = Path(__file__).parents[2] / "bot" / "locales"


def embed_characters(embeds: list[dict]) -> int:
    """What Discord counts against its 6,000 characters for all embeds of one message."""
    total = 0
    for embed in embeds:
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len((embed.get("footer") or {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return total


async def private_help(harness, **payload_options) -> list[dict]:
    payload = slash_command_payload(harness.discord, name="help", **payload_options)
    interaction = await harness.discord.send_interaction(payload)
    await harness.private_refusal(interaction)  # a private first answer
    embeds = harness.original(interaction).embeds
    # Within Discord's limits: 10 embeds, 6,000 characters together, 1,024 per field value.
    assert len(embeds) <= 10 and embed_characters(embeds) <= 6000
    assert all(len(f["value"]) <= 1024 for embed in embeds for f in embed.get("fields", []))
    assert all(len(embed.get("description", "")) <= 4096 for embed in embeds)
    return embeds


def text_of(embeds: list[dict]) -> str:
    return payload_text({"embeds": embeds})


async def test_help_explains_every_command_and_button_privately_with_examples(harness):
    embeds = await private_help(harness, guild_id=GUILD_ID, channel_id=CHANNEL_ID)
    shown = text_of(embeds)

    commands = {f["name"] for f in embeds[0]["fields"]}
    assert commands == {"/imagine", "/edit", "/animate", "/credits", "/jobs", "/show"}
    # Concrete examples, typed as a member would.
    assert "`/imagine prompt:a red fox in the snow, watercolor`" in shown
    assert "`/imagine prompt:a lighthouse at dusk, cinematic light size:1664x936 n:2`" in shown
    assert re.search(r"`/animate image:\(your picture\) prompt:[^`]+ duration:10`", shown)
    assert "`/jobs count:25`" in shown and "`/show job:42`" in shown and "`/credits`" in shown
    # The size presets and the prices come from the code and the operator's settings.
    assert "`1280x1280` 1:1" in shown and "`1664x936` 16:9" in shown
    assert "1 to 4 images, 2 credits each" in shown
    assert "**Apps → Animate image**" in shown and "**Apps → Edit image**" in shown
    assert re.search(r"`/edit image:\(your picture\) prompt:[^`]+ image2:\(another picture\)`", shown)
    assert "1 to 4 new images, 2 credits each" in shown
    for button in ("Reroll", "Remix", "Edit", "Animate", "Details", "Delete"):
        assert f"**{button}**:" in embeds[1]["description"]
    assert "a new job (charged as usual)" in shown and "you pick which when there are several" in shown
    for moderator_command in ("/defaults", "/quota", "/moderation"):
        assert f"**{moderator_command}**:" in embeds[2]["description"]


async def test_help_works_in_direct_messages(harness):
    embeds = await private_help(harness, guild_id=None)
    assert embeds[0]["title"] == "🎨 Wan 2.5: what I can do"


async def test_help_speaks_chinese_to_a_chinese_client(harness):
    embeds = await private_help(harness, guild_id=GUILD_ID, channel_id=CHANNEL_ID, locale="zh-CN")
    shown = text_of(embeds)

    assert embeds[0]["title"] == "🎨 Wan 2.5：我能做什么"
    assert "提示词" in shown and "积分" in shown and "每个结果下方的按钮" in shown
    # Commands and options are named as a Chinese client shows them (the synced translations).
    assert "/我的任务" in shown and "`/查看 任务:42`" in shown
    assert "雪地里的红狐狸，水彩风格" in shown
    assert "what I can do" not in shown and "Buttons under every result" not in shown


def test_history_and_help_speak_both_languages_with_the_same_fields():
    english, chinese = (tomllib.loads((LOCALES / f"{name}.toml").read_text("utf-8"))
                        for name in ("en-US", "zh-CN"))
    for table in ("history", "help"):
        assert english[table].keys() == chinese[table].keys(), table
        for key, template in english[table].items():
            fields = set(re.findall(r"{(\w+)}", template))
            assert fields == set(re.findall(r"{(\w+)}", chinese[table][key])), key
    for command in ("jobs", "show", "help"):
        names = [value for key, value in chinese["commands"][command].items() if " " not in key]
        assert all(re.fullmatch(r"[^\sA-Z]{1,32}", name) for name in names), names
        assert all(len(value) <= 100 for value in chinese["commands"][command].values())
