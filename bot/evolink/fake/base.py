"""What every part of the fake EvoLink shares: the state its route groups read (set up by
`FakeEvoLink.__init__` in server.py) and the documented error answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.evolink.fake.models import FakeTask, FakeUpload

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class FakeEvoLinkBase:
    """The base of FakeEvoLink's parts (tasks, files, faults, callbacks), as Red-DiscordBot's
    MixinMeta: it declares the state they share; each part declares what else it reads."""

    clock: Clock
    base_url: str  # set by start()
    tasks: dict[str, FakeTask]
    uploads: dict[str, FakeUpload]

    def _error(
        self,
        request: web.Request,
        status: int,
        code: str | int,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        if request.path.startswith("/api/v1/files"):
            # The files host has its own shape: {"success": false, "code": <int>, "msg": ...}.
            body: dict[str, Any] = {
                "success": False,
                "code": code if isinstance(code, int) else status,
                "msg": message,
            }
        else:
            body = {
                "error": {
                    "code": code,
                    "message": message,
                    "type": _ERROR_TYPES.get(status, "api_error"),
                    "param": param,
                }
            }
        return web.json_response(body, status=status, headers=headers)

    def _public_base(self, request: web.Request) -> str:
        # Under pytest-aiohttp's test server start() is not called: use the request's origin.
        return self.base_url or str(request.url.origin())
