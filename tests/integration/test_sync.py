"""`python -m bot sync`: the commands Discord gets, with the rules its client enforces, and their
Chinese names and descriptions."""

import pytest

from bot.__main__ import sync_commands
from bot.i18n import CHINESE, command_strings
from tests.integration.conftest import GUILD_ID

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

ZH = "zh-CN"


async def test_sync_registers_every_command_in_one_guild(harness):
    await sync_commands(harness.settings, GUILD_ID)

    commands = {(c["name"], c["type"]): c for c in harness.discord.commands[GUILD_ID]}
    assert set(commands) == {("imagine", 1), ("edit", 1), ("animate", 1), ("credits", 1), ("Animate image", 3),
                             ("Edit image", 3),
                             ("quota", 1), ("usage", 1), ("moderation", 1), ("admin", 1),
                             ("defaults", 1), ("jobs", 1), ("show", 1), ("help", 1)}
    # Moderator groups are hidden from members by default (a hint; the code checks for real).
    assert str(commands["quota", 1]["default_member_permissions"]) == str(1 << 5)  # Manage Server
    assert str(commands["admin", 1]["default_member_permissions"]) == "0"  # administrators only
    assert {o["name"] for o in commands["quota", 1]["options"]} == {
        "set-default", "set-role", "set-user", "grant", "block", "unblock", "show", "budget",
        "moderator-role", "log-channel"}
    [terms] = commands["moderation", 1]["options"]
    assert (terms["name"], {o["name"] for o in terms["options"]}) == (
        "blocked-terms", {"add", "remove", "list"})

    imagine = {o["name"]: o for o in commands["imagine", 1]["options"]}
    assert imagine["prompt"]["required"] and imagine["prompt"]["max_length"] == 2000
    assert imagine["size"]["autocomplete"] is True
    assert (imagine["n"]["min_value"], imagine["n"]["max_value"]) == (1, 4)
    assert imagine["prompt_extend"]["type"] == 5

    edit = {o["name"]: o for o in commands["edit", 1]["options"]}
    assert [o["name"] for o in commands["edit", 1]["options"]] == ["image", "prompt", "image2", "n", "prompt_extend"]
    assert edit["image"]["type"] == 11 and edit["image"]["required"]
    assert edit["image2"]["type"] == 11 and not edit["image2"].get("required", False)
    assert edit["prompt"]["max_length"] == 2000 and (edit["n"]["min_value"], edit["n"]["max_value"]) == (1, 4)

    animate = {o["name"]: o for o in commands["animate", 1]["options"]}
    assert animate["image"]["type"] == 11 and animate["image"]["required"]
    assert animate["prompt"]["max_length"] == 1000
    assert [c["value"] for c in animate["duration"]["choices"]] == [5, 10]
    assert [c["value"] for c in animate["quality"]["choices"]] == ["480p", "720p", "1080p"]


async def test_every_command_passes_discords_spec_and_limits(harness):
    """The fake checks the sync against Discord's OpenAPI spec and limits; a sync is all or
    nothing, so one bad option (once /show's job, declared up to 2**53) would register no command."""
    await sync_commands(harness.settings, GUILD_ID)

    [put] = harness.discord.requests_to("PUT", rf"/guilds/{GUILD_ID}/commands$")
    assert (put.status, put.form_errors) == (200, None)
    show = {(c["name"], c["type"]): c for c in harness.discord.commands[GUILD_ID]}["show", 1]
    [job] = show["options"]
    assert (job["min_value"], job["max_value"]) == (1, 2**53 - 1)


async def test_sync_sends_the_chinese_names_and_descriptions_of_everything(harness):
    await sync_commands(harness.settings, GUILD_ID)
    chinese = command_strings(CHINESE)
    missing: list[str] = []

    def check(entry: dict, path: str, *, described: bool = True) -> None:
        """One command, option or choice: its Chinese name (and description) as the catalogue says."""
        if entry.get("name_localizations", {}).get(ZH) != chinese.get(entry["name"]):
            missing.append(f"{path}: name {entry.get('name_localizations')}")
        described_as = entry.get("description_localizations", {}).get(ZH)
        if described and described_as != chinese.get(entry["description"]):
            missing.append(f"{path}: description {entry.get('description_localizations')}")
        for option in entry.get("options", []):
            check(option, f"{path} {option['name']}")
        for choice in entry.get("choices", []):
            check(choice, f"{path} [{choice['name']}]", described=False)

    commands = harness.discord.commands[GUILD_ID]
    for command in commands:
        check(command, f"/{command['name']}", described=command["type"] == 1)
    assert missing == []

    # The translations really are Chinese, down to choices, sub-commands and context menus.
    synced = {(c["name"], c["type"]): c for c in commands}
    assert synced["imagine", 1]["name_localizations"][ZH] == "画图"
    assert synced["Animate image", 3]["name_localizations"][ZH] == "图片转视频"
    assert synced["Edit image", 3]["name_localizations"][ZH] == "编辑图片"
    quota = {o["name"]: o for o in synced["quota", 1]["options"]}
    assert quota["grant"]["name_localizations"][ZH] == "发放"
    set_default = {o["name"]: o for o in quota["set-default"]["options"]}
    assert [c["name_localizations"][ZH] for c in set_default["period"]["choices"]] == ["每天", "每周", "每月"]
    animate = {o["name"]: o for o in synced["animate", 1]["options"]}
    assert animate["duration"]["description_localizations"][ZH] == "视频时长（默认 5 秒）"
