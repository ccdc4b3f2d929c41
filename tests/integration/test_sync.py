"""`python -m bot sync`: the commands Discord gets, with the rules its client enforces."""

from bot.__main__ import sync_commands
from tests.integration.conftest import GUILD_ID


async def test_sync_registers_every_command_in_one_guild(harness):
    await sync_commands(harness.settings, GUILD_ID)

    commands = {(c["name"], c["type"]): c for c in harness.discord.commands[GUILD_ID]}
    assert set(commands) == {("imagine", 1), ("animate", 1), ("credits", 1), ("Animate image", 3),
                             ("quota", 1), ("usage", 1), ("moderation", 1), ("admin", 1)}
    # Moderator groups are hidden from members by default (a hint; the code checks for real).
    assert str(commands["quota", 1]["default_member_permissions"]) == str(1 << 5)  # Manage Server
    assert str(commands["admin", 1]["default_member_permissions"]) == "0"  # administrators only
    assert {o["name"] for o in commands["quota", 1]["options"]} == {
        "set-default", "set-role", "set-user", "grant", "block", "unblock", "show", "budget",
        "moderator-role", "log-channel"}
    [terms] = commands["moderation", 1]["options"]
    assert (terms["name"], {o["name"] for o in terms["options"]}) == ("blocked-terms", {"add", "remove", "list"})

    imagine = {o["name"]: o for o in commands["imagine", 1]["options"]}
    assert imagine["prompt"]["required"] and imagine["prompt"]["max_length"] == 2000
    assert imagine["size"]["autocomplete"] is True
    assert (imagine["n"]["min_value"], imagine["n"]["max_value"]) == (1, 4)
    assert imagine["prompt_extend"]["type"] == 5

    animate = {o["name"]: o for o in commands["animate", 1]["options"]}
    assert animate["image"]["type"] == 11 and animate["image"]["required"]
    assert animate["prompt"]["max_length"] == 1000
    assert [c["value"] for c in animate["duration"]["choices"]] == [5, 10]
    assert [c["value"] for c in animate["quality"]["choices"]] == ["480p", "720p", "1080p"]
