"""Discord's text limits, and text made to fit them: lines packed into pages, lists wrapped over
lines, and link lines shortened around links that cannot be cut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import discord

MESSAGE_CONTENT_CHARS = 2000
EMBED_DESCRIPTION_CHARS = 4096
EMBED_TOTAL_CHARS = 6000  # title, description, field names and values, footer and author together


def pack_lines(lines: list[str], limit: int = EMBED_DESCRIPTION_CHARS) -> list[str]:
    """Lines grouped into as few texts of at most `limit` characters as they fit in."""
    pages: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = line[:limit]
        if current and size + 1 + len(line) > limit:
            pages.append("\n".join(current))
            current, size = [], 0
        size += len(line) + (1 if current else 0)
        current.append(line)
    if current:
        pages.append("\n".join(current))
    return pages


def wrap_list(render_first: Callable[[str], str], items: list[str], separator: str, limit: int) -> list[str]:
    """A list shown as `render_first(joined items)`, on one line if it fits in `limit` characters;
    else over several lines of at most `limit`, the first through `render_first` (which names the
    list), the others just the items that follow."""
    lines: list[str] = []
    current: list[str] = []
    for item in items:
        if current and len(_list_line(render_first, lines, [*current, item], separator)) > limit:
            lines.append(_list_line(render_first, lines, current, separator))
            current = []
        current.append(item)
    lines.append(_list_line(render_first, lines, current, separator))
    return lines


def _list_line(render_first: Callable[[str], str], done: list[str], items: list[str], separator: str) -> str:
    joined = separator.join(items)
    return joined if done else render_first(joined)


@dataclass(frozen=True)
class LinkLine:
    """A line that links a file: `with_link(why)` shows the link and why it is there; when the
    link itself is too long for the room left, `without_link(why)` says so instead (a link cut
    short would lead nowhere). Only `why` is shortened to make the line fit."""

    with_link: Callable[[str], str]
    without_link: Callable[[str], str]
    why: str


def fit_link_lines(links: list[LinkLine], budget: int) -> list[str]:
    """The lines, one per link, within `budget` characters together (newlines included): the
    reasons are shortened first, evenly; links that still do not fit, the longest first, are
    replaced by their line without a link."""
    if not links:
        return []
    full = [link.with_link(link.why) for link in links]
    room = budget - (len(links) - 1)  # the newlines between the lines
    if sum(map(len, full)) <= room:
        return full
    renders = [link.with_link for link in links]
    fixed = [len(render("")) for render in renders]
    while sum(fixed) > room:
        linked = [i for i, render in enumerate(renders) if render is links[i].with_link]
        if not linked:
            break
        longest = max(linked, key=lambda i: fixed[i])
        renders[longest] = links[longest].without_link
        fixed[longest] = len(renders[longest](""))
    allowed = _share(room - sum(fixed), [len(link.why) for link in links])
    lines = [render(cut(link.why, allow)) for render, link, allow in zip(renders, links, allowed, strict=True)]
    return lines if sum(map(len, lines)) <= room else [line[: max(0, room // len(lines))] for line in lines]


def _share(room: int, wants: list[int]) -> list[int]:
    """`room` characters shared between texts that want `wants`: the short ones get all they
    want, the others an equal share of what is left."""
    allowed = [0] * len(wants)
    left = max(0, room)
    order = sorted(range(len(wants)), key=lambda i: wants[i])
    for position, i in enumerate(order):
        allowed[i] = min(wants[i], left // (len(order) - position))
        left -= allowed[i]
    return allowed


def cut(text: str, limit: int) -> str:
    """The text, or its first `limit` characters ending with "…" when it is longer."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 0 else ""


def embed_chars(embed: discord.Embed) -> int:
    """What counts against EMBED_TOTAL_CHARS."""
    texts = [embed.title, embed.description, embed.footer.text, embed.author.name]
    for field in embed.fields:
        texts += [field.name, field.value]
    return sum(len(text) for text in texts if text)
