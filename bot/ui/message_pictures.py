"""The pictures of a Discord message, for the message menus ("Animate image", "Edit image"): its
image attachments, else the pictures of its embeds (link previews). The bytes are checked later
(bot/jobs/inputs.py); this only finds candidates."""

from __future__ import annotations

import discord

from bot.jobs.inputs import ImageSource

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
EMBEDDED_PICTURE = "the embedded picture"


def message_pictures(message: discord.Message) -> list[ImageSource]:
    """Every picture of the message, in order: image attachments, then (when it has none)
    embeds' images and thumbnails.

    For an embed, only Discord's cached copy (`proxy_url`, on its media proxy) is a candidate:
    its `url` is the remote site's address, which anyone can point anywhere."""
    pictures = [ImageSource(attachment.url, attachment.filename, attachment.size)
                for attachment in message.attachments if _claims_image(attachment)]
    if pictures:
        return pictures
    return [ImageSource(picture.proxy_url, EMBEDDED_PICTURE)
            for embed in message.embeds for picture in (embed.image, embed.thumbnail)
            if picture and picture.proxy_url]


def first_picture(message: discord.Message) -> ImageSource | None:
    pictures = message_pictures(message)
    return pictures[0] if pictures else None


def _claims_image(attachment: discord.Attachment) -> bool:
    return bool((attachment.content_type or "").startswith("image/")
                or attachment.filename.lower().endswith(IMAGE_EXTENSIONS) or attachment.width)
