"""Two languages: English and Simplified Chinese.

Every reply is looked up by key in a catalogue, one TOML file per language in `bot/locales/`
(`en-US.toml`, `zh-CN.toml`), which a translator edits without touching code. Keys are dotted
paths of the files' tables (`[errors] not_enough_credits = "..."` is `errors.not_enough_credits`);
values are `str.format` templates with named fields.

Replies follow the locale of whoever reads them: `interaction.locale` for an interaction's
reply, the requester's locale (stored with the job) for a job's public message. A missing
translation falls back to English, so a half-translated catalogue never breaks a reply.

Command metadata (names, descriptions, choices) is written in English in the code, and
translated by `CatalogueTranslator` (bot/ui/translator.py) from the `[commands.<command>]` tables
of the other catalogues, keyed by the English text itself, gettext style: the translator sees
exactly what they translate.

Nothing here imports discord: the core (credits, jobs, media...) builds its messages with it. A
Discord locale is read by its `value` ("zh-CN"), like the plain string it stands for.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import discord

log = logging.getLogger(__name__)

ENGLISH = "en-US"
CHINESE = "zh-CN"
SUPPORTED = (ENGLISH, CHINESE)
# Discord locales that read a supported catalogue best. Traditional Chinese readers are better
# served by Simplified Chinese than by English.
_LOCALE_ALIASES = {"en-GB": ENGLISH, "zh-TW": CHINESE}
COMMANDS_TABLE = "commands"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = str(value)
    return flat


@cache
def _raw_catalogue(locale: str) -> dict[str, Any]:
    text = (resources.files("bot") / "locales" / f"{locale}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def messages(locale: str) -> dict[str, str]:
    """Every reply template of a catalogue, by dotted key."""
    # Command metadata is keyed by English text, not by path: it is not a reply.
    replies = {key: value for key, value in _raw_catalogue(locale).items() if key != COMMANDS_TABLE}
    return _flatten(replies)


@cache
def command_strings(locale: str) -> dict[str, str]:
    """English command metadata -> its translation in `locale`, from `[commands.<command>]`
    tables (one per command, so each reads as a unit)."""
    strings: dict[str, str] = {}
    for table in _raw_catalogue(locale).get(COMMANDS_TABLE, {}).values():
        strings.update(table)
    return strings


def supported_locale(locale: discord.Locale | str | None) -> str:
    """The catalogue for a Discord locale: Chinese for zh-CN (and zh-TW), else English."""
    value = str(getattr(locale, "value", locale) or ENGLISH)
    value = _LOCALE_ALIASES.get(value, value)
    return value if value in SUPPORTED else ENGLISH


def text(locale: discord.Locale | str | None, key: str, /, **fields: Any) -> str:
    """The reply `key` in the reader's language, with `fields` filled in.

    An unknown key is a bug: it raises KeyError (the catalogue test catches it before release).
    A key missing from a translation falls back to English.
    """
    template = messages(supported_locale(locale)).get(key)
    if template is None:
        template = messages(ENGLISH)[key]
    return template.format(**fields)


class Message:
    """A reply not yet put into words: a key and its fields, rendered later in the reader's
    language. A field may itself be a Message (rendered in the same language), e.g. the rule
    an option broke."""

    __slots__ = ("key", "fields")

    def __init__(self, key: str, /, **fields: Any) -> None:
        self.key = key
        self.fields = fields

    def render(self, locale: discord.Locale | str | None) -> str:
        fields = {name: value.render(locale) if isinstance(value, Message) else value
                  for name, value in self.fields.items()}
        return text(locale, self.key, **fields)

    def __repr__(self) -> str:
        return f"Message({self.key!r}, {self.fields!r})"


def command_name(locale: discord.Locale | str | None, english: str) -> str:
    """A command's, option's or choice's name as the reader's Discord client shows it: the
    translation the commands were synced with (CatalogueTranslator), else the English name."""
    language = supported_locale(locale)
    return english if language == ENGLISH else command_strings(language).get(english, english)


class CommandName(Message):
    """An option's or command's name as a field of a reply rendered later (see command_name)."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def render(self, locale: discord.Locale | str | None) -> str:
        return command_name(locale, self.key)


class CommandPath(Message):
    """'/moderation blocked-terms list' as the reader's client shows it, each name translated."""

    __slots__ = ()

    def __init__(self, *names: str) -> None:
        super().__init__(" ".join(names))

    def render(self, locale: discord.Locale | str | None) -> str:
        return "/" + " ".join(command_name(locale, name) for name in self.key.split())


def for_interaction(interaction: discord.Interaction) -> Translate:
    """A `text` bound to the locale of the member who sent the interaction."""
    return Translate(supported_locale(interaction.locale))


class Translate:
    """`text` bound to one locale: `_ = Translate("zh-CN"); _("jobs.title", count=3)`."""

    __slots__ = ("locale",)

    def __init__(self, locale: discord.Locale | str | None) -> None:
        self.locale = supported_locale(locale)

    def __call__(self, key: str, /, **fields: Any) -> str:
        return text(self.locale, key, **fields)
