"""The wire basics every route group of the fake Discord shares: the API's path prefix, JSON answers
as discord.py reads them, and Discord's errors (a handler raises ``_Reject``, the middleware sends
its response)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.discord.models import RecordedRequest

API_PREFIX = "/api/v10"

# Where the middleware leaves the parsed, recorded request for the handlers.
_REC = web.RequestKey("rec", RecordedRequest)


class _Reject(Exception):
    """Raised inside handlers to answer with a Discord error."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _json(status, {"code": code, "message": message, **extra})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py decodes JSON only when Content-Type is exactly "application/json"
    # (http.py json_or_text); web.json_response would add "; charset=utf-8".
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _invalid_form_body(errors: dict) -> _Reject:
    """Discord's answer to a body that breaks its rules; ``errors`` is its nested tree, e.g.
    ``{"embeds": {"0": {"description": {"_errors": [{"code": ..., "message": ...}]}}}}``."""
    return _Reject(400, 50035, "Invalid Form Body", errors=errors)


def _form_error(field_name: str, message: str) -> _Reject:
    return _invalid_form_body({field_name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}})


# Discord's errors: (HTTP status, Discord's code, its message).
_UNKNOWN_MESSAGE = (404, 10008, "Unknown Message")
_UNKNOWN_CHANNEL = (404, 10003, "Unknown Channel")
_UNKNOWN_WEBHOOK = (404, 10015, "Unknown Webhook")
_UNKNOWN_INTERACTION = (404, 10062, "Unknown interaction")
_INVALID_TOKEN = (401, 50027, "Invalid Webhook Token")
_ALREADY_ACKED = (400, 40060, "Interaction has already been acknowledged.")
_TOO_LARGE = (413, 40005, "Request entity too large")
_UNAUTHORIZED = (401, 0, "401: Unauthorized")
_MISSING_ACCESS = (403, 50001, "Missing Access")
_MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
_CANNOT_DM = (403, 50007, "Cannot send messages to this user")
