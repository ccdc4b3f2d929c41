"""The documented rules for the body of a create request (image or video task): a field that
breaks one raises `_Invalid`, answered as 400 invalid_request naming the field."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from aiohttp import web
from yarl import URL

_SIZE_RE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")


class _Invalid(Exception):
    """A request field breaks a documented rule: answered as 400 invalid_request."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Invalid("body", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Invalid("body", "The request body must be a JSON object")
    return body


def _model(body: dict[str, Any], expected: str) -> None:
    if body.get("model") != expected:
        raise _Invalid("model", f"model must be {expected!r}")


def _prompt(body: dict[str, Any], limit: int) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _Invalid("prompt", "prompt is required")
    if len(prompt) > limit:
        raise _Invalid("prompt", f"prompt must be at most {limit} characters")
    return prompt


def _size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size", "1280x1280")
    match = _SIZE_RE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise _Invalid("size", "size must be 'WxH' in pixels, e.g. '1280x1280'")
    width, height = int(match[1]), int(match[2])
    if not 768 * 768 <= width * height <= 1440 * 1440:
        raise _Invalid("size", "size: W*H must be between 768*768 and 1440*1440")
    if not (width * 4 >= height and height * 4 >= width):
        raise _Invalid("size", "size: the aspect ratio W/H must be between 1/4 and 4")
    return width, height


def _int_field(body: dict[str, Any], name: str, *, default: int, allowed: Any) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        choices = (
            f"{allowed.start}..{allowed.stop - 1}"
            if isinstance(allowed, range)
            else " or ".join(map(str, allowed))
        )
        raise _Invalid(name, f"{name} must be an integer, {choices}")
    return value


def _bool_field(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _Invalid(name, f"{name} must be a boolean")
    return value


def _callback_url(body: dict[str, Any]) -> str | None:
    value = body.get("callback_url")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("callback_url", "callback_url must be an HTTPS URL")
    url = URL(value)
    # EvoLink wants HTTPS on a public host; loopback over http is this fake's allowance for tests.
    if url.scheme != "https" and not (url.scheme == "http" and _is_loopback_host(url.host)):
        raise _Invalid("callback_url", "callback_url must be an HTTPS URL")
    return value


def _is_loopback_host(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _image_urls(body: dict[str, Any]) -> str:
    urls = body.get("image_urls")
    if (
        not isinstance(urls, list)
        or len(urls) != 1
        or not isinstance(urls[0], str)
        or not urls[0].startswith(("http://", "https://"))
    ):
        raise _Invalid("image_urls", "image_urls must be a list of exactly 1 image URL")
    return urls[0]


def _edit_image_urls(body: dict[str, Any]) -> tuple[str, ...]:
    """wan2.5-image-to-image: 1 picture to edit, or 2 to fuse."""
    urls = body.get("image_urls")
    if (
        not isinstance(urls, list)
        or not 1 <= len(urls) <= 2
        or not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in urls)
    ):
        raise _Invalid("image_urls", "image_urls must be a list of 1 or 2 image URLs")
    return tuple(urls)


def _no_size(body: dict[str, Any]) -> None:
    """The editing model takes no size: its output follows the input picture."""
    if "size" in body:
        raise _Invalid("size", "size is not supported by wan2.5-image-to-image: the output follows the input image")
