"""Channel defaults at the store: values checked like the commands' own options, stored per
channel, cleared one by one or all at once, and the /defaults metadata translated for Discord."""

from __future__ import annotations

import re
import string

import pytest
from discord import app_commands

from bot.channel_defaults import BUILT_IN, ChannelDefaults, ChannelDefaultsStore
from bot.i18n import CHINESE, ENGLISH, Translate, command_strings, messages
from bot.requests import DEFAULT_SIZE, InvalidRequest
from bot.units import to_millis
from cogs.defaults import Defaults, render_defaults

GUILD, OTHER_GUILD = 1001, 1002
BRAINSTORM, GENERAL = 2001, 2002
MOD, OTHER_MOD = 9, 10


@pytest.fixture
def store(db, clock):
    return ChannelDefaultsStore(db, clock)


async def test_a_channel_without_defaults_has_none_and_falls_back_to_the_built_in_ones(store):
    defaults = await store.get(GUILD, BRAINSTORM)
    assert defaults == ChannelDefaults() and defaults.options_set == ()
    assert defaults.or_built_in() == BUILT_IN
    assert (BUILT_IN.size, BUILT_IN.n, BUILT_IN.prompt_extend, BUILT_IN.duration, BUILT_IN.quality) == (
        DEFAULT_SIZE, 1, True, 5, "720p")


async def test_values_are_stored_in_the_form_the_commands_use(store, clock):
    before = to_millis(clock.now())
    defaults = await store.set(None, GUILD, BRAINSTORM, MOD, size="Landscape 4:3", n=4,
                               prompt_extend=False, duration="10s", quality="1080")
    assert (defaults.size, defaults.n, defaults.prompt_extend, defaults.duration, defaults.quality) == (
        "1472x1104", 4, False, 10, "1080p")
    assert defaults.updated_by == MOD and to_millis(defaults.updated_at) >= before
    assert await store.get(GUILD, BRAINSTORM) == defaults


async def test_a_later_change_keeps_the_other_values_and_names_its_moderator(store):
    await store.set(None, GUILD, BRAINSTORM, MOD, n=4, quality="480p")
    defaults = await store.set(None, GUILD, BRAINSTORM, OTHER_MOD, n=2)
    assert (defaults.n, defaults.quality, defaults.updated_by) == (2, "480p", OTHER_MOD)
    assert defaults.options_set == ("n", "quality")
    assert defaults.or_built_in() == ChannelDefaults(DEFAULT_SIZE, 2, True, 5, "480p", OTHER_MOD,
                                                     defaults.updated_at)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(size="3000x100"), "size 3000x100: the aspect ratio must be between 1:4 and 4:1"),
    (dict(size="big"), "size 'big': expected WIDTHxHEIGHT in pixels, like 1280x1280"),
    (dict(n=5), "n 5: the number of images must be between 1 and 4"),
    (dict(duration=7), "duration 7: a video lasts 5 or 10 seconds"),
    (dict(quality="4k"), "quality '4k': choose 480p, 720p or 1080p"),
    # One bad value among good ones: nothing at all is written.
    (dict(n=2, quality="2160p"), "quality '2160p': choose 480p, 720p or 1080p"),
])
async def test_a_bad_value_is_refused_with_the_option_the_value_and_the_rule(store, db, changes, message):
    with pytest.raises(InvalidRequest) as refused:
        await store.set(None, GUILD, BRAINSTORM, MOD, **changes)
    assert message in str(refused.value)
    assert await db.fetchall("SELECT * FROM channel_defaults") == []


async def test_only_known_options_can_be_set_or_cleared(store):
    with pytest.raises(TypeError):
        await store.set(None, GUILD, BRAINSTORM, MOD, model="wan3")
    with pytest.raises(TypeError):
        await store.clear(None, GUILD, BRAINSTORM, MOD, ["model"])
    with pytest.raises(ValueError):
        await store.set(None, GUILD, BRAINSTORM, MOD)


async def test_channels_and_guilds_are_independent(store):
    await store.set(None, GUILD, BRAINSTORM, MOD, n=4)
    await store.set(None, OTHER_GUILD, GENERAL, MOD, n=3)
    assert (await store.get(GUILD, BRAINSTORM)).n == 4
    assert await store.get(GUILD, GENERAL) == ChannelDefaults()
    assert await store.get(OTHER_GUILD, BRAINSTORM) == ChannelDefaults()
    assert (await store.get(OTHER_GUILD, GENERAL)).n == 3


async def test_clear_one_option_then_all_leaves_no_row(store, db):
    await store.set(None, GUILD, BRAINSTORM, MOD, n=4, size="1024x1024", duration=10)
    assert await store.clear(None, GUILD, BRAINSTORM, OTHER_MOD, ["n"]) == ("n",)
    defaults = await store.get(GUILD, BRAINSTORM)
    assert (defaults.n, defaults.size, defaults.duration, defaults.updated_by) == (
        None, "1024x1024", 10, OTHER_MOD)
    # Clearing what is not set changes nothing and says so.
    assert await store.clear(None, GUILD, BRAINSTORM, OTHER_MOD, ["n", "quality"]) == ()

    assert await store.clear(None, GUILD, BRAINSTORM, MOD) == ("size", "duration")
    assert await store.get(GUILD, BRAINSTORM) == ChannelDefaults()
    assert await db.fetchall("SELECT * FROM channel_defaults") == []
    assert await store.clear(None, GUILD, BRAINSTORM, MOD) == ()


async def test_changes_in_a_callers_transaction_roll_back_with_it(store, db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await store.set(tx, GUILD, BRAINSTORM, MOD, n=4)
            assert (await store.get(GUILD, BRAINSTORM, tx)).n == 4  # visible inside
            raise RuntimeError("the audit row could not be written")
    assert await store.get(GUILD, BRAINSTORM) == ChannelDefaults()


async def test_every_change_writes_its_audit_row_with_it_and_only_changes_do(store, db):
    async def audit_rows():
        rows = await db.fetchall("SELECT guild_id, actor_id, action, details FROM audit_log ORDER BY id")
        return [tuple(row) for row in rows]

    await store.set(None, GUILD, BRAINSTORM, MOD, quality="1080", n=4)
    with pytest.raises(InvalidRequest):
        await store.set(None, GUILD, BRAINSTORM, MOD, n=9)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await store.set(tx, GUILD, BRAINSTORM, MOD, size="1024x1024")
            raise RuntimeError("the caller's transaction fails after the change")
    await store.clear(None, GUILD, BRAINSTORM, OTHER_MOD, ["n"])
    assert await store.clear(None, GUILD, BRAINSTORM, OTHER_MOD, ["n", "size"]) == ()
    await store.clear(None, GUILD, BRAINSTORM, MOD)
    assert await audit_rows() == [
        (GUILD, MOD, "defaults-set", f'{{"channel_id": {BRAINSTORM}, "quality": "1080p", "n": 4}}'),
        (GUILD, OTHER_MOD, "defaults-clear", f'{{"channel_id": {BRAINSTORM}, "cleared": ["n"]}}'),
        (GUILD, MOD, "defaults-clear", f'{{"channel_id": {BRAINSTORM}, "cleared": ["quality"]}}'),
    ]


async def test_a_stored_value_the_rules_no_longer_accept_is_ignored_not_imposed(store, db):
    # E.g. a size allowed when it was set and refused by today's rules: members must not be
    # blocked by it; the built-in default applies and the others still do.
    await store.set(None, GUILD, BRAINSTORM, MOD, n=4, size="1024x1024")
    async with db.transaction() as tx:
        await tx.execute("UPDATE channel_defaults SET size = '5000x5000'")
    defaults = await store.get(GUILD, BRAINSTORM)
    assert (defaults.size, defaults.n) == (None, 4)
    assert defaults.or_built_in().size == DEFAULT_SIZE


async def test_show_marks_what_the_channel_sets_and_what_is_built_in(store):
    defaults = await store.set(None, GUILD, BRAINSTORM, MOD, n=4, prompt_extend=False)
    english = render_defaults(Translate(ENGLISH), BRAINSTORM, defaults)
    assert english.splitlines()[:4] == [
        f"**Defaults in <#{BRAINSTORM}>** (a member's own options always win)",
        "**/imagine**: size 1280x1280 (built-in) · n **4** · prompt_extend **off**",
        "**/edit**: n **4** · prompt_extend **off**",
        "**/animate**: duration 5 seconds (built-in) · quality 720p (built-in) · prompt_extend **off**",
    ]
    assert re.fullmatch(rf"-# Last changed by <@{MOD}> <t:\d+:R>\..*", english.splitlines()[4])
    chinese = render_defaults(Translate(CHINESE), BRAINSTORM, defaults)
    assert "数量 **4**" in chinese and "尺寸 1280x1280（内置）" in chinese and "提示词扩写 **关**" in chinese
    empty = render_defaults(Translate(ENGLISH), GENERAL, ChannelDefaults())
    assert empty.endswith("-# Nothing is set here: every option is the bot's built-in default. "
                          "Moderators can set them with /defaults set.")


def test_the_catalogues_have_the_same_keys_and_fields_for_defaults_animate_and_edit():
    for table in ("defaults.", "animate.", "edit."):
        english = {k: v for k, v in messages(ENGLISH).items() if k.startswith(table)}
        chinese = {k: v for k, v in messages(CHINESE).items() if k.startswith(table)}
        assert english and set(english) == set(chinese)
        for key, template in english.items():
            assert _fields(template) == _fields(chinese[key]), key


def test_every_defaults_command_string_has_a_valid_chinese_translation():
    group = Defaults(bot=None).app_command  # type: ignore[arg-type]
    strings: list[tuple[str, str]] = [("name", group.name), ("description", group.description)]
    for command in group.commands:
        assert isinstance(command, app_commands.Command)
        strings += [("name", command.name), ("description", command.description)]
        for parameter in command.parameters:
            strings += [("name", parameter.name), ("description", parameter.description)]
            strings += [("choice", choice.name) for choice in parameter.choices
                        if not choice.name.endswith("p")]  # 480p, 720p, 1080p read the same in Chinese
    translations = command_strings(CHINESE)
    for kind, english in strings:
        assert english in translations, english
        chinese = translations[english]
        if kind == "name":
            assert re.fullmatch(r"[-_\w]{1,32}", chinese) and chinese == chinese.lower(), chinese
        else:
            assert 1 <= len(chinese) <= 100, chinese


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
