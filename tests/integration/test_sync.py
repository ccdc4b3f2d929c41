"""`python -m bot sync`: the slash commands Discord gets, with the rules its client enforces."""

from bot.__main__ import sync_commands
from tests.integration.conftest import GUILD_ID


async def test_sync_registers_imagine_and_credits_in_one_guild(harness):
    await sync_commands(harness.settings, GUILD_ID)

    commands = {c["name"]: c for c in harness.discord.commands[GUILD_ID]}
    assert set(commands) == {"imagine", "credits"}
    options = {o["name"]: o for o in commands["imagine"]["options"]}
    assert options["prompt"]["required"] and options["prompt"]["max_length"] == 2000
    assert options["size"]["autocomplete"] is True
    assert (options["n"]["min_value"], options["n"]["max_value"]) == (1, 4)
    assert options["prompt_extend"]["type"] == 5
