"""The two catalogues: same keys, same fields, templates that format, keys the code uses that
exist, and a Chinese name and description for every string of the real command tree."""

from __future__ import annotations

import ast
import string
from collections import defaultdict
from pathlib import Path

import discord
import pytest
import regex
from discord import app_commands

from bot.app import EXTENSIONS, WanBot
from bot.config import load_settings
from bot.i18n import CHINESE, COMMANDS_TABLE, ENGLISH, _raw_catalogue, command_strings, messages, text
from bot.jobs.failures import _TASK_ERRORS
from bot.jobs.pause import KEY_FORBIDDEN, KEY_REFUSED, OUT_OF_CREDITS
from bot.jobs.store import JobKind, JobState
from bot.periods import Period
from bot.requests import SIZE_PRESETS, preset_label

ROOT = Path(__file__).resolve().parents[2]
# Discord's rule for command and option names (CHAT_INPUT), lower case where the script has case.
NAME_RULE = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_both_catalogues_have_the_same_keys():
    english, chinese = messages(ENGLISH), messages(CHINESE)
    assert sorted(set(english) - set(chinese)) == [], "untranslated"
    assert sorted(set(chinese) - set(english)) == [], "translated but unknown in English"


@pytest.mark.parametrize("key", sorted(messages(ENGLISH)))
def test_every_template_has_the_same_fields_and_formats(key):
    english, chinese = messages(ENGLISH)[key], messages(CHINESE)[key]
    assert fields_of(chinese) == fields_of(english)
    # Fields are filled with text: a format spec such as {count:,} would break on a str value.
    for template in (english, chinese):
        values = {name: f"<{name}>" for name in fields_of(template)}
        assert all(f"<{name}>" in template.format(**values) for name in values)
    assert text(CHINESE, key, **{name: "x" for name in fields_of(english)})


def _keys_used_in_code() -> dict[str, str]:
    """Every literal catalogue key passed to a call in bot/ and cogs/ ("table.key"), with where."""
    tables = set(_raw_catalogue(ENGLISH)) - {COMMANDS_TABLE}
    used: dict[str, str] = {}
    for path in sorted([*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("cogs").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for argument in node.args:
                if (isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                        and regex.fullmatch(r"[a-z_]+(\.[a-z0-9_]+)+", argument.value)
                        and argument.value.split(".")[0] in tables):
                    used[argument.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return used


def test_every_key_the_code_names_exists():
    english = messages(ENGLISH)
    used = _keys_used_in_code()
    assert "requests.invalid" in used and "failures.not_acknowledged" in used  # the scan finds keys
    assert {key: where for key, where in used.items() if key not in english} == {}


def test_every_key_built_from_a_value_exists():
    english = messages(ENGLISH)
    built = [
        *(f"failures.task.{code}" for code in _TASK_ERRORS),
        *(f"credits.{table}.{period.value}" for period in Period
          for table in ("this_period", "period_adjective", "period_name")),
        *(f"account.state.{state.value}" for state in JobState),
        *(f"admin.kind.{kind.value}" for kind in JobKind),
        *(f"errors.option_type.{kind.name.lower()}" for kind in discord.AppCommandOptionType),
        *(f"pause.problem.{reason.code}" for reason in (OUT_OF_CREDITS, KEY_REFUSED, KEY_FORBIDDEN)),
    ]
    assert [key for key in built if key not in english] == []
    assert [preset_label(preset, CHINESE) for preset in SIZE_PRESETS] != [p.label for p in SIZE_PRESETS]


# -- command metadata ---------------------------------------------------------------------------


@pytest.fixture
async def command_tree(tmp_path) -> app_commands.CommandTree:
    """The real bot's command tree, with every cog loaded, and no connection to anything."""
    settings = load_settings(None, discord_token="unused", evolink_api_key="unused",
                             database_path=tmp_path / "bot.db")
    bot = WanBot(settings)
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    return bot.tree  # never started: nothing to close


def _strings(tree: app_commands.CommandTree) -> list[tuple[str, str, tuple[str, ...]]]:
    """(kind, English text, path) of every string Discord gets on sync."""
    found: list[tuple[str, str, tuple[str, ...]]] = []

    def walk(command: app_commands.Command | app_commands.Group, path: tuple[str, ...]) -> None:
        here = (*path, command.name)
        found.append(("name", command.name, here))
        found.append(("description", command.description, here))
        if isinstance(command, app_commands.Group):
            for child in command.commands:
                walk(child, here)
            return
        for parameter in command.parameters:
            found.append(("name", parameter.display_name, (*here, parameter.display_name)))
            found.append(("description", parameter.description, (*here, parameter.display_name)))
            found.extend(("choice", choice.name, (*here, parameter.display_name))
                         for choice in parameter.choices)

    for command in tree.get_commands(type=discord.AppCommandType.chat_input):
        walk(command, ())
    for menu_type in (discord.AppCommandType.message, discord.AppCommandType.user):
        found.extend(("menu", menu.name, (menu.name,)) for menu in tree.get_commands(type=menu_type))
    return found


async def test_every_command_string_has_a_valid_chinese_translation(command_tree):
    strings = _strings(command_tree)
    names = {english for kind, english, _ in strings}
    mine = {"imagine", "animate", "credits", "quota", "usage", "moderation", "admin", "Animate image"}
    assert mine <= names
    chinese = command_strings(CHINESE)
    assert sorted({english for _, english, _ in strings if english not in chinese}) == []
    problems = []
    for kind, english, path in strings:
        translated = chinese[english]
        if kind == "name" and not (NAME_RULE.match(translated) and translated == translated.lower()):
            problems.append((path, translated, "not a valid Discord name"))
        if kind == "menu" and not 1 <= len(translated) <= 32:
            problems.append((path, translated, "a menu name has 1 to 32 characters"))
        if kind in ("description", "choice") and not 1 <= len(translated) <= 100:
            problems.append((path, translated, "at most 100 characters"))
    assert problems == []


async def test_sibling_commands_and_options_keep_distinct_chinese_names(command_tree):
    chinese = command_strings(CHINESE)
    siblings: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for kind, english, path in _strings(command_tree):
        if kind == "name":
            siblings[path[:-1]].append(chinese[english])
    assert {parent: names for parent, names in siblings.items() if len(set(names)) != len(names)} == {}


def test_one_english_string_has_one_translation_across_command_tables():
    """command_strings merges the [commands.*] tables: a string translated two ways would get
    whichever table comes last."""
    seen: dict[str, set[str]] = defaultdict(set)
    for table in _raw_catalogue(CHINESE).get(COMMANDS_TABLE, {}).values():
        for english, translated in table.items():
            seen[english].add(translated)
    assert {english: values for english, values in seen.items() if len(values) > 1} == {}
