"""The fake EvoLink's files: the files host (uploads, and the uploaded files it serves) and the
"CDN" serving task results, which refuses default library User-Agents as EvoLink's does."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from pathlib import Path

from aiohttp import web

from bot.evolink.fake.base import FakeEvoLinkBase
from bot.evolink.fake.faults import FakeHold
from bot.evolink.fake.models import FakeUpload
from bot.evolink.fake.pictures import render_edit, render_png
from bot.evolink.limits import UPLOADED_FILE_LIFETIME

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}

# Not a playable video: just an MP4 `ftyp` box plus an empty `free` box, so the bytes look like
# an MP4 to sniffers. ffmpeg is not guaranteed on development machines; replace with a real
# encoded clip if a consumer ever needs to decode it.
PLACEHOLDER_MP4 = (
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # ftyp: brand isom, compatible isom/iso2
    b"\x00\x00\x00\x08free"
)


class FileRoutes(FakeEvoLinkBase):
    """POST /api/v1/files/upload/stream (with the key), and without it, like a CDN:
    GET /uploads/{file_id} and GET /results/{task_id}/{index}."""

    # Set up by FakeEvoLink.__init__ (server.py).
    refuse_default_user_agents: bool
    video_result: Path | None
    _results_hold: FakeHold | None

    async def _upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return self._error(request, 400, 400, "file: send multipart/form-data with a 'file'")
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return self._error(request, 400, 400, "file: the multipart field 'file' is required")
        data = part.file.read()
        if not data:
            return self._error(request, 400, 400, "file: the uploaded file is empty")
        if part.content_type not in UPLOAD_TYPES:
            return self._error(
                request, 400, 400, f"file: unsupported type {part.content_type!r} "
                "(jpeg, png, gif or webp)"
            )
        file_id = f"file_{secrets.token_hex(12)}"
        self.uploads[file_id] = FakeUpload(data, part.content_type, part.filename or file_id)
        now = self.clock.now()
        return web.json_response(
            {
                "success": True,
                "code": 200,
                "msg": "File uploaded successfully",
                "data": {
                    "file_id": file_id,
                    "file_name": part.filename or file_id,
                    "original_name": part.filename or file_id,
                    "file_size": len(data),
                    "mime_type": part.content_type,
                    "file_url": f"{self._public_base(request)}/uploads/{file_id}",
                    "upload_time": _iso(now),
                    "expires_at": _iso(now + UPLOADED_FILE_LIFETIME),
                },
            }
        )

    # --- "CDN" routes (no auth) -------------------------------------------------------------------

    async def _result(self, request: web.Request) -> web.StreamResponse:
        hold = self._results_hold
        if hold is not None and not hold.released:
            await hold._block()
        if self.refuse_default_user_agents and _is_default_user_agent(
            request.headers.get("User-Agent", "")
        ):
            return self._error(
                request, 403, "forbidden", "Default library User-Agent refused; send your own"
            )
        task = self.tasks.get(request.match_info["task_id"])
        try:
            index = int(request.match_info["index"])
        except ValueError:
            index = -1
        if (
            task is None
            or task.state_at(self.clock.monotonic())[0] != "completed"
            or not 0 <= index < task.result_count
        ):
            return self._error(request, 404, "not_found", "No such result")
        if task.kind == "video":
            if self.video_result is not None:
                # A real file chosen by the test or the demo (e.g. a 30 MB MP4), streamed from disk.
                return web.FileResponse(self.video_result, headers={"Content-Type": "video/mp4"})
            return web.Response(body=PLACEHOLDER_MP4, content_type="video/mp4")
        assert task.size is not None
        # Off the event loop: a large PNG takes a few milliseconds; cached after the first call.
        if task.edit_source is not None:
            png = await asyncio.to_thread(render_edit, task.edit_source, task.size[0], task.size[1], index)
        else:
            png = await asyncio.to_thread(render_png, task.size[0], task.size[1], index)
        return web.Response(body=png, content_type="image/png")

    async def _uploaded(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return self._error(request, 404, "not_found", "No such file")
        return web.Response(body=upload.data, content_type=upload.content_type)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _is_default_user_agent(user_agent: str) -> bool:
    agent = user_agent.strip().lower()
    # aiohttp sends "Python/3.x aiohttp/3.y"; requests "python-requests/..."; urllib
    # "Python-urllib/...".
    return not agent or agent.startswith(("python/", "python-", "aiohttp"))
