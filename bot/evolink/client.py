"""A thin, typed async client for the EvoLink API (Wan 2.5 models).

What it does: builds documented requests, turns answers into `models` types and failures into
`errors` types. What it does not do: retry. Retry policy belongs to callers, and a create must
never be re-sent blindly because it is a paid call whose outcome may be unknown after a timeout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from bot import USER_AGENT

from .errors import (
    BadRequest,
    EvoLinkConnectionError,
    EvoLinkError,
    EvoLinkTimeout,
    RateLimited,
    UnexpectedResponse,
    error_for_status,
    parse_retry_after,
)
from .models import AccountBalance, Task, UploadedFile
from .stats import CallStats

log = logging.getLogger("bot.evolink")

IMAGE_MODEL = "wan2.5-text-to-image"
EDIT_MODEL = "wan2.5-image-to-image"  # the same endpoint: edit one picture, or fuse two
VIDEO_MODEL = "wan2.5-image-to-video"

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
# Uploads carry up to ~10 MB over a possibly slow home connection.
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10)

T = TypeVar("T")


class CallObserver(Protocol):
    """Told of every call: its route's short name (never its URL, which holds task ids), `ok`,
    `error` or `rate_limited`, and how long it took (bot.metrics.Metrics is one)."""

    def evolink_call(self, endpoint: str, outcome: str, seconds: float) -> None: ...


class EvoLinkClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.evolink.ai",
        files_base_url: str = "https://files-api.evolink.ai",
        timeout: aiohttp.ClientTimeout | None = None,
        upload_timeout: aiohttp.ClientTimeout | None = None,
        stats: CallStats | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self._session = session  # owned by the caller: never closed here
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._files_base_url = files_base_url.rstrip("/")
        # A caller-given timeout applies to every call, uploads included, unless uploads get
        # their own (a file takes longer to send than a JSON call).
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._upload_timeout = upload_timeout or timeout or UPLOAD_TIMEOUT
        self._stats = stats  # None: nobody watches how the API answers
        self._observer = observer

    def __repr__(self) -> str:
        return (
            f"EvoLinkClient(base_url={self._base_url!r}, "
            f"files_base_url={self._files_base_url!r})"
        )

    # --- public calls ----------------------------------------------------------------------

    async def create_image_task(
        self,
        *,
        prompt: str,
        size: str,
        n: int,
        prompt_extend: bool,
        callback_url: str | None = None,
    ) -> Task:
        body: dict[str, Any] = {
            "model": IMAGE_MODEL,
            "prompt": prompt,
            "size": size,
            "n": n,
            "prompt_extend": prompt_extend,
        }
        return await self._create_image_generation("create_image", body, callback_url)

    async def create_edit_task(
        self,
        *,
        prompt: str,
        image_urls: Sequence[str],
        n: int,
        prompt_extend: bool,
        callback_url: str | None = None,
    ) -> Task:
        """Edit one picture (one URL) or fuse two, into `n` images. There is no size: the result
        follows the input picture."""
        body: dict[str, Any] = {
            "model": EDIT_MODEL,
            "prompt": prompt,
            "image_urls": list(image_urls),
            "n": n,
            "prompt_extend": prompt_extend,
        }
        return await self._create_image_generation("create_edit", body, callback_url)

    async def _create_image_generation(self, endpoint: str, body: dict[str, Any],
                                       callback_url: str | None) -> Task:
        """POST /v1/images/generations, the one endpoint of both image models."""
        if callback_url:
            body["callback_url"] = callback_url
        return await self._call(
            endpoint, "POST", f"{self._base_url}/v1/images/generations", Task.from_wire, json_body=body,
        )

    async def create_video_task(
        self,
        *,
        prompt: str,
        image_url: str,
        duration: int,
        quality: str,
        prompt_extend: bool,
        callback_url: str | None = None,
    ) -> Task:
        body: dict[str, Any] = {
            "model": VIDEO_MODEL,
            "prompt": prompt,
            "image_urls": [image_url],
            "duration": duration,
            "quality": quality,
            "prompt_extend": prompt_extend,
        }
        if callback_url:
            body["callback_url"] = callback_url
        return await self._call(
            "create_video", "POST", f"{self._base_url}/v1/videos/generations", Task.from_wire,
            json_body=body,
        )

    async def get_task(self, task_id: str) -> Task:
        # "." and ".." survive quoting and would be normalised away by servers and proxies,
        # turning the call into a different route: refuse them like the API would.
        if not task_id or task_id in (".", ".."):
            raise BadRequest("task id must be a non-empty path segment", code="invalid_task_id")
        url = URL(f"{self._base_url}/v1/tasks/{quote(task_id, safe='')}", encoded=True)
        return await self._call("get_task", "GET", url, Task.from_wire)

    async def get_balance(self) -> AccountBalance:
        return await self._call("balance", "GET", f"{self._base_url}/v1/credits", AccountBalance.from_wire)

    async def upload_file(self, data: bytes, *, filename: str, content_type: str) -> UploadedFile:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type=content_type)
        return await self._call(
            "upload",
            "POST",
            f"{self._files_base_url}/api/v1/files/upload/stream",
            UploadedFile.from_wire,
            form=form,
            timeout=self._upload_timeout,
            files_api=True,
        )

    # --- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        endpoint: str,
        method: str,
        url: str | URL,
        parse: Callable[[dict[str, Any]], T],
        *,
        json_body: dict[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        files_api: bool = False,
    ) -> T:
        """Every request goes through here, so each one (each attempt of a retried call) is
        counted once in the stats and by the observer: ok, or failed with whatever EvoLinkError it
        raised. `endpoint` names the route for the observer."""
        started = time.perf_counter()
        try:
            result = await self._exchange(
                method, url, parse, json_body=json_body, form=form, timeout=timeout, files_api=files_api
            )
        except EvoLinkError as exc:
            rate_limited = isinstance(exc, RateLimited)
            if self._stats is not None:
                self._stats.record(ok=False, rate_limited=rate_limited)
            if self._observer is not None:
                self._observer.evolink_call(endpoint, "rate_limited" if rate_limited else "error",
                                            time.perf_counter() - started)
            raise
        if self._stats is not None:
            self._stats.record(ok=True)
        if self._observer is not None:
            self._observer.evolink_call(endpoint, "ok", time.perf_counter() - started)
        return result

    async def _exchange(
        self,
        method: str,
        url: str | URL,
        parse: Callable[[dict[str, Any]], T],
        *,
        json_body: dict[str, Any] | None,
        form: aiohttp.FormData | None,
        timeout: aiohttp.ClientTimeout | None,
        files_api: bool,
    ) -> T:
        url = URL(url) if isinstance(url, str) else url
        where = f"{method} {url.path}"  # never the headers: they hold the key
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                data=form,
                headers=headers,
                timeout=timeout or self._timeout,
                # A redirect would carry the key to wherever it points; the API never redirects.
                allow_redirects=False,
                # Statuses are ours to map, whatever the shared session's default is.
                raise_for_status=False,
            ) as resp:
                request_id = resp.headers.get("x-request-id")
                raw = await resp.read()
                status = resp.status
                body = _json_or_none(raw)
                if 200 <= status < 300 and isinstance(body, dict):
                    if files_api and body.get("success") is False:
                        raise self._files_error(status, body, resp.headers, request_id)
                    try:
                        return parse(body)
                    except (ValueError, TypeError, KeyError) as exc:
                        raise UnexpectedResponse(
                            f"malformed answer: {exc}", status=status, request_id=request_id
                        ) from None
                if 200 <= status < 300:
                    raise UnexpectedResponse(
                        "answer is not a JSON object", status=status, request_id=request_id
                    )
                raise self._http_error(status, body, raw, resp.reason, resp.headers, request_id)
        except EvoLinkError as exc:
            log.warning("EvoLink %s failed: %s", where, exc)
            raise
        except TimeoutError:  # asyncio.TimeoutError is TimeoutError; aiohttp's timeouts subclass it
            log.warning("EvoLink %s timed out", where)
            raise EvoLinkTimeout(f"{where} timed out") from None
        except aiohttp.ClientConnectorError as exc:
            # Connection refused / DNS / TLS handshake: the request never left this machine.
            log.warning("EvoLink %s could not connect: %s", where, type(exc).__name__)
            raise EvoLinkConnectionError(
                f"{where}: could not connect ({type(exc).__name__})", request_sent=False
            ) from None
        except aiohttp.ClientError as exc:
            log.warning("EvoLink %s network error: %s", where, type(exc).__name__)
            raise EvoLinkConnectionError(
                f"{where}: network error ({type(exc).__name__})", request_sent=True
            ) from None

    def _redact(self, text: str) -> str:
        # Servers sometimes echo what they were sent; the key must never reach logs or users.
        return text.replace(self._api_key, "[redacted]") if text else text

    def _http_error(
        self,
        status: int,
        body: Any,
        raw: bytes,
        reason: str | None,
        headers: Any,
        request_id: str | None,
    ) -> EvoLinkError:
        code: str | None = None
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = _code(error.get("code"))
            message = _text(error.get("message"))
        elif isinstance(body, dict) and "success" in body:  # files-API error shape
            code = _code(body.get("code"))
            message = _text(body.get("msg") or body.get("message"))
        elif raw:  # not JSON (a proxy's HTML page, plain text)
            message = raw[:500].decode("utf-8", "replace")
        return error_for_status(
            status,
            code=code,
            message=self._redact(message) or reason or "no error message",
            request_id=request_id,
            retry_after=_retry_after(headers) if status == 429 else None,
        )

    def _files_error(
        self, status: int, body: dict[str, Any], headers: Any, request_id: str | None
    ) -> EvoLinkError:
        # The files API reports errors in the body (sometimes with HTTP 200): its `code` is read
        # like an HTTP status to pick the class; anything unrecognisable is UnexpectedResponse.
        raw_code = body.get("code")
        class_status: int | None = None
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            class_status = raw_code
        elif isinstance(raw_code, str) and raw_code.strip().isdigit():
            class_status = int(raw_code)
        if class_status is None or not 400 <= class_status <= 599:
            class_status = 0  # not an HTTP-like error code: -> UnexpectedResponse
        return error_for_status(
            status,
            code=_code(raw_code),
            message=self._redact(_text(body.get("msg") or body.get("message")))
            or "upload failed",
            request_id=request_id,
            retry_after=_retry_after(headers) if class_status == 429 else None,
            class_status=class_status,
        )


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _code(value: object) -> str | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    return str(value) if isinstance(value, str | int) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _retry_after(headers: Any) -> float | None:
    # Measure an HTTP-date Retry-After against the server's own Date header when it sent one,
    # so a skewed local clock does not distort the wait.
    now: datetime | None = None
    date = headers.get("Date")
    if date:
        try:
            now = parsedate_to_datetime(date)
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            now = None
    return parse_retry_after(headers.get("Retry-After"), now=now)


__all__ = ["CallObserver", "EDIT_MODEL", "EvoLinkClient", "IMAGE_MODEL", "VIDEO_MODEL", "DEFAULT_TIMEOUT", "UPLOAD_TIMEOUT"]
