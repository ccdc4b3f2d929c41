"""Discord's rules for the request bodies the fake receives: the requestBody schemas of Discord's own
OpenAPI description (vendored in ``spec/``), and the limits that description leaves out.

``body_errors(route, path, body)`` answers with Discord's nested error format
(``{"embeds": {"0": {"description": {"_errors": [{"code": ..., "message": ...}]}}}}``), which
the fake sends back as HTTP 400 / 50035 "Invalid Form Body"; an empty dict means the body is fine.

The spec is loaded and its validators built once per process (it is 1.2 MB; the suite starts
hundreds of fakes). Formats (``uri``, ``date-time``) are not checked: the JSON Schema default.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "spec" / "openapi.json"
_SPEC_URI = "urn:discord-api-spec:openapi.json"

# The fake's routes (RecordedRequest.route) -> the operation of the spec that describes them.
# Every route the fake serves with a body (POST, PUT, PATCH) is here; a unit test checks that.
OPERATIONS: dict[str, tuple[str, str]] = {
    "POST /interactions/{interaction_id}/{token}/callback":
        ("/interactions/{interaction_id}/{interaction_token}/callback", "post"),
    "POST /webhooks/{app_id}/{token}": ("/webhooks/{webhook_id}/{webhook_token}", "post"),
    "PATCH /webhooks/{app_id}/{token}/messages/{message_id}":
        ("/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", "patch"),
    "POST /channels/{channel_id}/messages": ("/channels/{channel_id}/messages", "post"),
    "PATCH /channels/{channel_id}/messages/{message_id}": ("/channels/{channel_id}/messages/{message_id}", "patch"),
    "POST /users/@me/channels": ("/users/@me/channels", "post"),
    "PUT /applications/{app_id}/commands": ("/applications/{application_id}/commands", "put"),
    "PUT /applications/{app_id}/guilds/{guild_id}/commands":
        ("/applications/{application_id}/guilds/{guild_id}/commands", "put"),
}
_ORIGINAL = ("/webhooks/{webhook_id}/{webhook_token}/messages/@original", "patch")

# ------------------------------------------------------------------------- Discord's limits
#
# Stated by the spec, so its schemas enforce them (test_fake_discord checks the spec still says so):
EMBEDS_PER_MESSAGE = 10
EMBED_TITLE_CHARS = 256
EMBED_DESCRIPTION_CHARS = 4096
EMBED_FIELDS = 25
EMBED_FIELD_NAME_CHARS = 256
EMBED_FIELD_VALUE_CHARS = 1024
EMBED_FOOTER_CHARS = 2048
EMBED_AUTHOR_NAME_CHARS = 256
CUSTOM_ID_CHARS = 100
BUTTON_LABEL_CHARS = 80
COMPONENTS_PER_ROW = 5
SELECT_OPTIONS = 25
SELECT_OPTION_CHARS = 100  # label, value and description
SELECT_PLACEHOLDER_CHARS = 150
MODAL_TITLE_CHARS = 45
MODAL_LABEL_CHARS = 45  # a text input's label, and a label component's
NONCE_CHARS = 25
COMMAND_NAME_CHARS = 32
COMMAND_DESCRIPTION_CHARS = 100
COMMAND_OPTIONS = 25
COMMAND_CHOICES = 25
CHOICE_NAME_CHARS = 100
MAX_SAFE_INTEGER = 2**53 - 1  # integer options' min_value, max_value and choices

# Not stated by the spec, or stated more loosely, so checked here:
MESSAGE_CONTENT_CHARS = 2000  # the spec says 4,000 for channel messages: that is Nitro users'; bots get 2,000
EMBEDS_TOTAL_CHARS = 6000  # titles, descriptions, field names and values, footers, author names together
ACTION_ROWS_PER_MESSAGE = 5  # the spec's 40 are for messages flagged IS_COMPONENTS_V2
MODAL_COMPONENTS = 5  # the spec says 40
CHOICE_VALUE_CHARS = 100  # a string choice's value; the spec says 6,000
# A chat-input command's description is 1 to 100 characters (the spec has no minimum: context
# menus send ""); NUMBER options' bounds and choices are JSON numbers Discord keeps within
# +-MAX_SAFE_INTEGER (the spec says "double"); chat-input command and option names are lower case
# and made of COMMAND_NAME_CHARACTERS (the spec only has their length).
COMMAND_NAME_CHARACTERS = regex.compile(r"^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]*$")
# The names, descriptions and choice values of a command, its options and choices together,
# counted per locale. Discord's docs have said 4,000 (some sources now 8,000): the fake takes the
# stricter figure.
COMMAND_TOTAL_CHARS = 4000

IS_COMPONENTS_V2 = 1 << 15
_CHAT_INPUT = 1
_SUBCOMMAND_TYPES = (1, 2)
_STRING_OPTION, _NUMBER_OPTION = 3, 10


@dataclass(frozen=True)
class FieldError:
    """One entry of Discord's error tree: where (keys down the body), Discord's code, its words."""

    path: tuple[str | int, ...]
    code: str
    message: str
    keyword: str = field(default="", compare=False)  # the JSON Schema keyword that failed, if any
    allowed: tuple = field(default=(), compare=False)  # for BASE_TYPE_CHOICES: the values allowed


def body_errors(route: str, path: str, body: Any) -> dict:
    """Discord's ``errors`` object for a request body on one of the fake's routes ({} if fine).

    ``body`` is the parsed JSON, or a multipart request's ``payload_json`` ({} when it had none).
    Routes without a request body in the spec (GET, DELETE) are not checked."""
    operation = OPERATIONS.get(route)
    if operation is None:
        return {}
    if operation[0].startswith("/webhooks/") and path.endswith("/messages/@original"):
        operation = _ORIGINAL  # the same body as any webhook message's edit, under its own path
    validator = _validators().get(operation)
    if validator is None:
        return {}
    found = [] if validator.is_valid(body) else list(_schema_errors(validator.iter_errors(body)))
    found += _limit_errors(route, body)
    return error_tree(found)


def error_tree(errors: Iterable[FieldError]) -> dict:
    """Discord's nested form: every key of the path is an object, the leaf lists ``_errors``."""
    tree: dict = {}
    for error in errors:
        node = tree
        for key in error.path:
            node = node.setdefault(str(key), {})
        entry = {"code": error.code, "message": error.message}
        if entry not in node.setdefault("_errors", []):
            node["_errors"].append(entry)
    return tree


# ------------------------------------------------------------------------- the spec


@functools.cache
def load_spec() -> dict:
    """The vendored spec, parsed once per process."""
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validators() -> dict[tuple[str, str], Draft202012Validator]:
    """One validator per operation with a JSON request body, built once per process."""
    spec = _with_quirks(load_spec())
    registry = Registry().with_resource(_SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    validators = {}
    for spec_path, method in {*OPERATIONS.values(), _ORIGINAL}:
        body = spec["paths"][spec_path][method].get("requestBody")
        if body is None:
            continue
        schema = _rebase(body["content"]["application/json"]["schema"])
        Draft202012Validator.check_schema(schema)
        validators[spec_path, method] = Draft202012Validator(schema, registry=registry)
    return validators


def _rebase(schema: Any) -> Any:
    """An operation's schema, lifted out of the document: its "#/components/..." references are
    made to point into the registered spec."""
    if isinstance(schema, dict):
        return {key: (_SPEC_URI + value if key == "$ref" and value.startswith("#") else _rebase(value))
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema


def _with_quirks(spec: dict) -> dict:
    """The spec with Discord's known leniencies (spec/README.md), each only where it
    occurs: ids that discord.py sends as integers where the spec wants snowflake strings (an
    attachment's id, a DM's recipient_id, the users and roles of allowed_mentions)."""
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    snowflake = {"$ref": "#/components/schemas/SnowflakeType"}
    integer_id = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
    schemas["MessageAttachmentRequest"]["properties"]["id"] = {"anyOf": [snowflake, integer_id]}
    recipient = schemas["CreatePrivateChannelRequest"]["properties"]["recipient_id"]
    recipient["oneOf"] = [*recipient["oneOf"], integer_id]
    for mentioned in ("users", "roles"):
        items = schemas["MessageAllowedMentionsRequest"]["properties"][mentioned]["items"]
        items["oneOf"] = [*items["oneOf"], integer_id]
    return spec


def _schema_errors(errors: Iterable[ValidationError]) -> Iterator[FieldError]:
    for error in errors:
        yield from _leaf_errors(error)


def _leaf_errors(error: ValidationError) -> Iterator[FieldError]:
    """Discord names the field that is wrong, not the union it belongs to: for anyOf/oneOf, the
    errors of the branch the body came closest to matching."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        if all(sub.validator in ("const", "enum") and not sub.relative_path for sub in error.context):
            yield _choices(tuple(error.absolute_path), [v for sub in error.context for v in _allowed(sub)])
            return
        branches: dict[int, list[FieldError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).extend(_leaf_errors(sub))
        union = tuple(error.absolute_path)
        kinds = [_wrong_kind(union, leaves) for leaves in branches.values()]
        if all(kinds):
            # No branch is of the body's "type": that field is what is wrong.
            yield _choices((*union, "type"), [v for kind in kinds for leaf in kind for v in leaf.allowed])
            return
        yield from max(branches.values(), key=lambda leaves: _closeness(union, leaves))
        return
    for leaf in _field_errors(error):
        yield dataclasses.replace(leaf, keyword=leaf.keyword or str(error.validator))


def _wrong_kind(union: tuple, leaves: list[FieldError]) -> list[FieldError]:
    """Discord's unions are told apart by a "type" field: the errors saying a branch is of another type."""
    return [leaf for leaf in leaves if leaf.path == (*union, "type") and leaf.code == "BASE_TYPE_CHOICES"]


def _closeness(union: tuple, leaves: list[FieldError]) -> tuple:
    """How well a union's branch fits: of the body's type; then the one whose errors lie deepest
    (it matched the most); then one that failed on more than a JSON type; not merely "null"; the
    fewest errors."""
    depth = min((len(leaf.path) for leaf in leaves), default=0)
    shallow = [leaf for leaf in leaves if len(leaf.path) == depth]
    beyond_type = any(leaf.keyword != "type" for leaf in shallow)
    only_null = all(leaf.message == "Must be null." for leaf in leaves)
    return not _wrong_kind(union, leaves), depth, beyond_type, not only_null, -len(leaves)


def _allowed(error: ValidationError) -> list:
    return [error.validator_value] if error.validator == "const" else list(error.validator_value)


def _choices(path: tuple, allowed: Iterable) -> FieldError:
    values = tuple(sorted(set(allowed), key=lambda v: (str(type(v)), v)))
    return FieldError(path, "BASE_TYPE_CHOICES", f"Value must be one of {{{', '.join(map(str, values))}}}.",
                      keyword="enum", allowed=values)


def _field_errors(error: ValidationError) -> Iterator[FieldError]:
    path = tuple(error.absolute_path)
    value, schema, keyword = error.instance, error.schema, error.validator
    if keyword == "required":
        for name in error.validator_value:
            if isinstance(value, dict) and name not in value:
                yield FieldError((*path, name), "BASE_TYPE_REQUIRED", "This field is required")
        return
    if schema.get("format") == "snowflake" and keyword in ("type", "pattern"):
        yield FieldError(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
        return
    least = schema.get("minLength", schema.get("minItems", 0))
    most = schema.get("maxLength", schema.get("maxItems"))
    if keyword in ("minLength", "minItems", "maxLength", "maxItems") and least and most is not None:
        # Discord words a field with both bounds as one range.
        yield FieldError(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {least} and {most} in length.")
    elif keyword in ("maxLength", "maxItems", "maxProperties"):
        yield FieldError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {error.validator_value} or fewer in length.")
    elif keyword in ("minLength", "minItems"):
        yield FieldError(path, "BASE_TYPE_MIN_LENGTH", f"Must be {error.validator_value} or more in length.")
    elif keyword == "maximum":
        yield FieldError(path, "NUMBER_TYPE_MAX",
                         f"int value should be less than or equal to {error.validator_value}.")
    elif keyword == "minimum":
        yield FieldError(path, "NUMBER_TYPE_MIN",
                         f"int value should be greater than or equal to {error.validator_value}.")
    elif keyword in ("enum", "const"):
        yield _choices(path, _allowed(error))
    elif keyword == "type":
        yield _type_error(path, value, error.validator_value)
    else:
        yield FieldError(path, "BASE_TYPE_INVALID", error.message)


def _type_error(path: tuple, value: Any, expected: str | list[str]) -> FieldError:
    wanted = next((t for t in ([expected] if isinstance(expected, str) else expected) if t != "null"), "null")
    if wanted in ("integer", "number"):
        return FieldError(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not {"int" if wanted == "integer" else "a number"}.')
    if wanted == "string":
        return FieldError(path, "BASE_TYPE_STRING", f'Could not interpret "{value}" as string.')
    if wanted == "boolean":
        return FieldError(path, "BASE_TYPE_BOOLEAN", "Must be either true or false.")
    if wanted == "object":
        return FieldError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
    if wanted == "array":
        return FieldError(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    return FieldError(path, "BASE_TYPE_INVALID", f"Must be {wanted}.")


# ------------------------------------------------------------------------- the limits the spec leaves out


def _limit_errors(route: str, body: Any) -> list[FieldError]:
    if not isinstance(body, (dict, list)):
        return []  # the schema has already said what is wrong
    if route.startswith("PUT /applications/"):
        return [error for index, command in _items(body) for error in _command_errors(command, (index,))]
    if not isinstance(body, dict):
        return []
    if route.startswith("POST /interactions/"):
        data = body.get("data")
        if not isinstance(data, dict):
            return []
        callback = body.get("type")
        if callback in (4, 7):
            return _message_errors(data, ("data",))
        if callback == 8:
            return _choice_errors(data.get("choices"), ("data", "choices"), _STRING_OPTION)
        if callback == 9:
            return _too_many(data.get("components"), MODAL_COMPONENTS, ("data", "components"))
        return []
    return _message_errors(body, ())


def _message_errors(message: dict, at: tuple) -> list[FieldError]:
    errors: list[FieldError] = []
    content = message.get("content")
    if isinstance(content, str) and len(content) > MESSAGE_CONTENT_CHARS:
        errors.append(_max_length((*at, "content"), MESSAGE_CONTENT_CHARS))
    embeds = message.get("embeds")
    if isinstance(embeds, list) and sum(map(_embed_chars, embeds)) > EMBEDS_TOTAL_CHARS:
        errors.append(FieldError((*at, "embeds"), "BASE_TYPE_MAX_LENGTH",
                                 f"Embed size exceeds maximum size of {EMBEDS_TOTAL_CHARS}"))
    flags = message.get("flags")
    if not (isinstance(flags, int) and flags & IS_COMPONENTS_V2):
        errors += _too_many(message.get("components"), ACTION_ROWS_PER_MESSAGE, (*at, "components"))
    return errors


def _embed_chars(embed: Any) -> int:
    if not isinstance(embed, dict):
        return 0
    texts = [embed.get("title"), embed.get("description"), (embed.get("footer") or {}).get("text"),
             (embed.get("author") or {}).get("name")]
    for embed_field in embed.get("fields") or []:
        if isinstance(embed_field, dict):
            texts += [embed_field.get("name"), embed_field.get("value")]
    return sum(len(text) for text in texts if isinstance(text, str))


def _command_errors(command: Any, at: tuple) -> list[FieldError]:
    if not isinstance(command, dict) or command.get("type", _CHAT_INPUT) not in (None, _CHAT_INPUT):
        return []  # context menus: any case, spaces, an empty description
    errors = _name_errors(command, at)
    description = command.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= COMMAND_DESCRIPTION_CHARS:
        errors.append(FieldError((*at, "description"), "BASE_TYPE_BAD_LENGTH",
                                 f"Must be between 1 and {COMMAND_DESCRIPTION_CHARS} in length."))
    for index, option in _items(command.get("options")):
        errors += _option_errors(option, (*at, "options", index))
    locales = {None, *_locales(command)}
    if max(_command_chars(command, locale) for locale in locales) > COMMAND_TOTAL_CHARS:
        errors.append(FieldError(at, "APPLICATION_COMMAND_TOO_LARGE",
                                 f"Command exceeds maximum size ({COMMAND_TOTAL_CHARS})"))
    return errors


def _locales(entry: Any) -> set[str]:
    if not isinstance(entry, dict):
        return set()
    found = {*(entry.get("name_localizations") or {}), *(entry.get("description_localizations") or {})}
    for nested in [*(entry.get("options") or []), *(entry.get("choices") or [])]:
        found |= _locales(nested)
    return found


def _command_chars(entry: Any, locale: str | None) -> int:
    """What a command (or option, or choice) adds to COMMAND_TOTAL_CHARS in one locale."""
    if not isinstance(entry, dict):
        return 0

    def localized(key: str) -> str:
        text = ((entry.get(f"{key}_localizations") or {}).get(locale) if locale else None) or entry.get(key)
        return text if isinstance(text, str) else ""

    total = len(localized("name")) + len(localized("description"))
    if isinstance(entry.get("value"), str):
        total += len(entry["value"])
    return total + sum(_command_chars(nested, locale)
                       for nested in [*(entry.get("options") or []), *(entry.get("choices") or [])])


def _option_errors(option: Any, at: tuple) -> list[FieldError]:
    if not isinstance(option, dict):
        return []
    errors = _name_errors(option, at)
    kind = option.get("type")
    if kind in _SUBCOMMAND_TYPES:
        for index, nested in _items(option.get("options")):
            errors += _option_errors(nested, (*at, "options", index))
        return errors
    if kind == _NUMBER_OPTION:
        for bound in ("min_value", "max_value"):
            errors += _unsafe_number(option.get(bound), (*at, bound))
    return errors + _choice_errors(option.get("choices"), (*at, "choices"), kind)


def _choice_errors(choices: Any, at: tuple, kind: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, choice in _items(choices):
        if not isinstance(choice, dict):
            continue
        value = choice.get("value")
        if kind == _STRING_OPTION and isinstance(value, str) and len(value) > CHOICE_VALUE_CHARS:
            errors.append(_max_length((*at, index, "value"), CHOICE_VALUE_CHARS))
        if kind == _NUMBER_OPTION:
            errors += _unsafe_number(value, (*at, index, "value"))
    return errors


def _name_errors(entry: dict, at: tuple) -> list[FieldError]:
    names = [((*at, "name"), entry.get("name"))]
    names += [((*at, "name_localizations", locale), name)
              for locale, name in (entry.get("name_localizations") or {}).items()]
    return [FieldError(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            for where, name in names
            if isinstance(name, str) and not (COMMAND_NAME_CHARACTERS.match(name) and name == name.lower())]


def _unsafe_number(value: Any, at: tuple) -> list[FieldError]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        sign, bound = ("less", MAX_SAFE_INTEGER) if value > 0 else ("greater", -MAX_SAFE_INTEGER)
        return [FieldError(at, "NUMBER_TYPE_MAX" if value > 0 else "NUMBER_TYPE_MIN",
                           f"float value should be {sign} than or equal to {bound}.")]
    return []


def _too_many(items: Any, most: int, at: tuple) -> list[FieldError]:
    if isinstance(items, list) and len(items) > most:
        return [_max_length(at, most)]
    return []


def _max_length(at: tuple, most: int) -> FieldError:
    return FieldError(at, "BASE_TYPE_MAX_LENGTH", f"Must be {most} or fewer in length.")


def _items(values: Any) -> list[tuple[int, Any]]:
    return list(enumerate(values)) if isinstance(values, list) else []
