"""The Remix, Edit and Animate forms opened by the buttons under a result, and the choices they
share with the "Edit image" menu's form.

The forms are stateless: each is built from the job's row, sent, and forgotten (stopped before
sending, so discord.py keeps nothing in memory). Their submission is handled by
bot/ui/result_actions.submit_form from the raw values and the job id in the form's custom_id
(`wan:form:42:remix`), so a form opened before a restart still works when it is submitted after.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.channel_defaults import ChannelDefaults
from bot.errors import UserFacingError
from bot.i18n import Translate
from bot.jobs.inputs import ImageSource
from bot.jobs.store import Job, JobKind
from bot.requests import (
    DEFAULT_VIDEO_QUALITY,
    IMAGE_COUNT_RANGE,
    PROMPT_MAX_CHARS,
    VIDEO_DURATIONS,
    VIDEO_PROMPT_MAX_CHARS,
    EditOptions,
)
from bot.ui.choices import duration_options, quality_options

FORM_ID = re.compile(r"wan:form:(?P<job_id>[0-9]{1,20}):(?P<form>remix|edit|animate)")
NO_SECOND_PICTURE = "none"  # the "fuse with" choice that fuses nothing
MODAL_TITLE_CHARS = 45  # Discord's limit


def remix_form(job: Job, locale: str) -> discord.ui.Modal:
    """The job's prompt and options, filled in, to change before running again."""
    _ = Translate(locale)
    request = job.request
    form = _new_form(_("forms.remix_title", id=job.id), job.id, "remix")
    video = job.kind is JobKind.VIDEO
    form.add_item(discord.ui.Label(text=_("forms.prompt"), component=discord.ui.TextInput(
        custom_id="prompt", style=discord.TextStyle.paragraph, default=request["prompt"],
        max_length=VIDEO_PROMPT_MAX_CHARS if video else PROMPT_MAX_CHARS)))
    if video:
        _add_video_choices(form, _, request["duration"], request["quality"])
        return _sendable(form)
    if job.kind is JobKind.IMAGE:  # an edit's size follows its picture
        form.add_item(discord.ui.Label(
            text=_("forms.size"), description=_("forms.size_hint"),
            component=discord.ui.TextInput(custom_id="size", default=f"{request['width']}x{request['height']}",
                                           max_length=30)))
    form.add_item(discord.ui.Label(text=_("forms.count"), component=discord.ui.Select(
        custom_id="n", options=count_options(request["n"]))))
    return _sendable(form)


def edit_form(job: Job, images: int, default_count: int, locale: str) -> discord.ui.Modal:
    """Edit one of the job's images: what to change, which image and, when there are several,
    another of them to fuse it with; how many new images."""
    _ = Translate(locale)
    form = _new_form(_("forms.edit_title", id=job.id), job.id, "edit")
    add_edit_fields(form, _, images, default_count)
    return _sendable(form)


def add_edit_fields(form: discord.ui.Modal, _: Translate, pictures: int, default_count: int) -> None:
    """An edit's questions, for the Edit button's form and the "Edit image" menu's: what should
    change, which picture and another to fuse it with (when there are several), how many images.
    `chosen_edit` reads the answers."""
    form.add_item(discord.ui.Label(text=_("edit.prompt_label"), component=discord.ui.TextInput(
        custom_id="prompt", style=discord.TextStyle.paragraph, max_length=PROMPT_MAX_CHARS,
        placeholder=_("edit.prompt_placeholder"))))
    if pictures > 1:
        form.add_item(discord.ui.Label(text=_("forms.which_image"), component=discord.ui.Select(
            custom_id="image", options=picture_choices(_, pictures))))
        form.add_item(discord.ui.Label(
            text=_("forms.fuse_with"), description=_("forms.fuse_with_hint"),
            component=discord.ui.Select(custom_id="fuse", options=picture_choices(_, pictures, optional=True))))
    form.add_item(discord.ui.Label(text=_("forms.count"), component=discord.ui.Select(
        custom_id="n", options=count_options(default_count))))


def chosen_edit(data: Any, pictures: list[ImageSource], defaults: ChannelDefaults
                ) -> tuple[EditOptions, tuple[ImageSource, ...]]:
    """The options and pictures a submitted edit form (see add_edit_fields) asks for, an option
    left out taking the channel's default."""
    values = submitted_values(data)
    sources = chosen_pictures(pictures, values.get("image", "0"), values.get("fuse", NO_SECOND_PICTURE))
    return defaults.edit_options(values.get("prompt"), values.get("n")), sources


def count_options(chosen: int) -> list[discord.SelectOption]:
    """1 to 4 images, `chosen` picked in advance."""
    low, high = IMAGE_COUNT_RANGE
    return [discord.SelectOption(label=str(n), value=str(n), default=n == chosen) for n in range(low, high + 1)]


def picture_choices(_: Translate, count: int, *, optional: bool = False) -> list[discord.SelectOption]:
    """'Image 1' .. 'Image {count}', the first picked in advance; with `optional`, a first choice
    of no picture at all (picked in advance instead)."""
    choices = [discord.SelectOption(label=_("forms.image_number", number=k + 1), value=str(k),
                                    default=k == 0 and not optional) for k in range(count)]
    if optional:
        choices.insert(0, discord.SelectOption(label=_("forms.no_second_picture"), value=NO_SECOND_PICTURE,
                                               default=True))
    return choices


class NoSuchPicture(UserFacingError):
    def __init__(self, value: str) -> None:
        super().__init__("forms.no_such_picture", value=value[:20])


def chosen_pictures(pictures: list[ImageSource], image: str, fuse: str) -> tuple[ImageSource, ...]:
    """The picture to edit, and the one to fuse it with unless none was chosen (or the same one
    twice), from a submitted form's values (which a crafted interaction may set to anything)."""
    def picture(value: str) -> ImageSource:
        if not value.isdigit() or int(value) >= len(pictures):
            raise NoSuchPicture(value)
        return pictures[int(value)]

    first = picture(image or "0")
    if not fuse or fuse == NO_SECOND_PICTURE or fuse == image:
        return (first,)
    return first, picture(fuse)


def animate_form(job: Job, images: int, locale: str) -> discord.ui.Modal:
    """Turn one of the job's images into a video: which one, what happens, how long."""
    _ = Translate(locale)
    form = _new_form(_("forms.animate_title", id=job.id), job.id, "animate")
    if images > 1:
        form.add_item(discord.ui.Label(text=_("forms.which_image"), component=discord.ui.Select(
            custom_id="image", options=[
                discord.SelectOption(label=_("forms.image_number", number=k + 1), value=str(k), default=k == 0)
                for k in range(images)])))
    form.add_item(discord.ui.Label(text=_("forms.video_prompt"), component=discord.ui.TextInput(
        custom_id="prompt", style=discord.TextStyle.paragraph, max_length=VIDEO_PROMPT_MAX_CHARS,
        placeholder=_("forms.video_prompt_placeholder"))))
    _add_video_choices(form, _, VIDEO_DURATIONS[0], DEFAULT_VIDEO_QUALITY)
    return _sendable(form)


def _new_form(title: str, job_id: int, name: str) -> discord.ui.Modal:
    return discord.ui.Modal(title=title[:MODAL_TITLE_CHARS], custom_id=f"wan:form:{job_id}:{name}")


def _add_video_choices(form: discord.ui.Modal, _: Translate, duration: int, quality: str) -> None:
    form.add_item(discord.ui.Label(text=_("forms.duration"), component=discord.ui.Select(
        custom_id="duration", options=duration_options(_, duration))))
    form.add_item(discord.ui.Label(text=_("forms.quality"), component=discord.ui.Select(
        custom_id="quality", options=quality_options(quality))))


def _sendable(form: discord.ui.Modal) -> discord.ui.Modal:
    # Stopped: discord.py does not keep a stopped modal; result_actions.submit_form answers it.
    form.stop()
    return form


def submitted_values(data: Any) -> dict[str, str]:
    """custom_id -> value (text inputs) or first chosen value (selects), from a modal submit's
    raw components, whatever the nesting (action rows, labels)."""
    values: dict[str, str] = {}

    def walk(item: Any) -> None:
        if isinstance(item, list):
            for child in item:
                walk(child)
            return
        if not isinstance(item, dict):
            return
        if "custom_id" in item and ("value" in item or "values" in item):
            chosen = item.get("values")
            values[item["custom_id"]] = chosen[0] if chosen else item.get("value") or ""
        walk(item.get("components"))
        walk(item.get("component"))

    walk((data or {}).get("components"))
    return values
