"""The EvoLink client against the fake server (and tiny misbehaving servers), over real HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot import USER_AGENT
from bot.clock import ScaledClock
from bot.evolink import (
    AccountBalance,
    BadRequest,
    EvoLinkClient,
    EvoLinkConnectionError,
    EvoLinkError,
    EvoLinkTimeout,
    InsufficientQuota,
    PermissionDenied,
    RateLimited,
    ServerError,
    Task,
    TaskNotFound,
    TaskStatus,
    Unauthorized,
    UnexpectedResponse,
)
from bot.evolink.fake import FakeEvoLink
from tests.fakes.ports import free_port

API_KEY = "sk-test-0123456789abcdef-SECRET"
SPEED = 300.0  # a 30 s image task takes 0.1 s of real time


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(SPEED)


@pytest.fixture
async def fake(clock: ScaledClock) -> AsyncIterator[FakeEvoLink]:
    server = FakeEvoLink(clock=clock, api_key=API_KEY)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(session: aiohttp.ClientSession, fake: FakeEvoLink) -> EvoLinkClient:
    return EvoLinkClient(
        session,
        api_key=API_KEY,
        base_url=fake.base_url,
        files_base_url=fake.base_url,
        timeout=aiohttp.ClientTimeout(total=5, connect=2),
    )


async def poll_until_final(client: EvoLinkClient, clock: ScaledClock, task_id: str) -> list[Task]:
    seen = []
    for _ in range(2000):
        task = await client.get_task(task_id)
        seen.append(task)
        if task.is_final:
            return seen
        await clock.sleep(1.0)
    raise AssertionError("task never finished")


def png_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


# --- happy paths ---------------------------------------------------------------------------------


async def test_image_task_end_to_end(client: EvoLinkClient, fake: FakeEvoLink, clock: ScaledClock):
    created = await client.create_image_task(
        prompt="a lighthouse at dawn", size="1024x768", n=2, prompt_extend=False
    )
    assert created.id.startswith("task-unified-")
    assert created.status is TaskStatus.PENDING and created.progress == 0
    assert not created.is_final and not created.succeeded
    assert created.estimated_time == 30.0
    assert created.credits_reserved == Decimal("3.6")
    assert created.model == "wan2.5-text-to-image"
    assert isinstance(created.created, int)

    seen = await poll_until_final(client, clock, created.id)
    final = seen[-1]
    assert final.status is TaskStatus.COMPLETED and final.succeeded and final.progress == 100
    assert len(final.results) == 2
    assert TaskStatus.PROCESSING in {t.status for t in seen}
    progresses = [t.progress for t in seen]
    assert progresses == sorted(progresses)

    # What the client sent: the documented body, the key and an honest User-Agent.
    create_request = next(r for r in fake.requests if r.path == "/v1/images/generations")
    assert create_request.json == {
        "model": "wan2.5-text-to-image",
        "prompt": "a lighthouse at dawn",
        "size": "1024x768",
        "n": 2,
        "prompt_extend": False,
    }
    api_requests = [r for r in fake.requests if r.path.startswith("/v1/")]
    assert api_requests
    for request in api_requests:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["User-Agent"] == USER_AGENT

    # Results download from a plain session (no key), like the bot does from EvoLink's CDN.
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as plain:
        for i, url in enumerate(final.results):
            async with plain.get(url) as resp:
                assert resp.status == 200
                assert resp.content_type == "image/png"
                data = await resp.read()
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "PNG"
                assert image.size == (1024, 768)
            assert url.endswith(f"/results/{final.id}/{i}")
    result_requests = [r for r in fake.requests if r.path.startswith("/results/")]
    assert len(result_requests) == 2
    for request in result_requests:
        assert "Authorization" not in request.headers
        assert API_KEY not in str(dict(request.headers))


async def test_upload_then_video_task(client: EvoLinkClient, fake: FakeEvoLink, clock: ScaledClock):
    fake.video_seconds = 60.0
    uploaded = await client.upload_file(
        png_bytes(640, 480), filename="cat.png", content_type="image/png"
    )
    assert uploaded.file_id and uploaded.file_url.startswith(fake.base_url)
    assert uploaded.expires_at is not None
    upload_request = next(r for r in fake.requests if r.path == "/api/v1/files/upload/stream")
    assert upload_request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert upload_request.headers["User-Agent"] == USER_AGENT

    task = await client.create_video_task(
        prompt="the cat turns its head",
        image_url=uploaded.file_url,
        duration=10,
        quality="1080p",
        prompt_extend=True,
    )
    assert task.credits_reserved == Decimal("85.17")
    assert task.estimated_time == 120.0
    sent = next(r for r in fake.requests if r.path == "/v1/videos/generations").json
    assert sent["model"] == "wan2.5-image-to-video"
    assert sent["image_urls"] == [uploaded.file_url]
    assert sent["duration"] == 10 and sent["quality"] == "1080p"
    assert "callback_url" not in sent

    final = (await poll_until_final(client, clock, task.id))[-1]
    assert final.succeeded and len(final.results) == 1
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as plain:
        async with plain.get(final.results[0]) as resp:
            assert resp.status == 200
            assert resp.content_type == "video/mp4"


async def test_upload_then_edit_and_fusion_tasks(client: EvoLinkClient, fake: FakeEvoLink, clock: ScaledClock):
    callback_url = f"http://127.0.0.1:{free_port()}/cb/x"  # loopback, where nothing listens
    first = await client.upload_file(png_bytes(640, 480), filename="fox.png", content_type="image/png")
    second = await client.upload_file(png_bytes(512, 512), filename="mug.png", content_type="image/png")

    edit = await client.create_edit_task(prompt="the same fox, at night", image_urls=[first.file_url],
                                         n=2, prompt_extend=False)
    fusion = await client.create_edit_task(prompt="the fox printed on the mug",
                                           image_urls=[first.file_url, second.file_url], n=1,
                                           prompt_extend=True, callback_url=callback_url)
    assert edit.credits_reserved == Decimal("3.6") and fusion.credits_reserved == Decimal("1.8")
    sent = [r.json for r in fake.requests if r.path == "/v1/images/generations"]
    assert sent[0] == {"model": "wan2.5-image-to-image", "prompt": "the same fox, at night",
                       "image_urls": [first.file_url], "n": 2, "prompt_extend": False}
    assert sent[1]["image_urls"] == [first.file_url, second.file_url]
    assert sent[1]["callback_url"] == callback_url and "size" not in sent[1]

    final = (await poll_until_final(client, clock, edit.id))[-1]
    assert final.succeeded and len(final.results) == 2


async def test_balance(client: EvoLinkClient, fake: FakeEvoLink, clock: ScaledClock):
    before = await client.get_balance()
    assert isinstance(before, AccountBalance)
    assert before.remaining_credits == Decimal("10000")
    assert before.used_credits == 0
    assert before.key_remaining_credits == Decimal("100000")
    assert before.key_unlimited is False

    task = await client.create_image_task(prompt="x", size="1280x1280", n=1, prompt_extend=True)
    await poll_until_final(client, clock, task.id)
    after = await client.get_balance()
    assert after.used_credits == task.credits_reserved == Decimal("1.8")
    assert after.remaining_credits == Decimal("10000") - Decimal("1.8")


async def test_failed_task_is_typed(client: EvoLinkClient, fake: FakeEvoLink, clock: ScaledClock):
    fake.fail_tasks_matching("forbidden", "content_policy_violation", "Blocked by policy")
    task = await client.create_image_task(
        prompt="something forbidden", size="1280x1280", n=1, prompt_extend=True
    )
    final = (await poll_until_final(client, clock, task.id))[-1]
    assert final.status is TaskStatus.FAILED and final.is_final and not final.succeeded
    assert final.results == ()
    assert final.error is not None
    assert final.error.code == "content_policy_violation"
    assert final.error.message == "Blocked by policy"


# --- HTTP error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls", "transient"),
    [
        (400, "invalid_request", BadRequest, False),
        (400, "invalid_task_id", BadRequest, False),
        (401, "unauthorized", Unauthorized, False),
        (402, "insufficient_quota", InsufficientQuota, False),
        (402, "quota_exceeded", InsufficientQuota, False),
        (403, "model_access_denied", PermissionDenied, False),
        (404, "task_not_found", TaskNotFound, False),
        (429, "rate_limit_exceeded", RateLimited, True),
        (500, "internal_error", ServerError, True),
        (502, "internal_error", ServerError, True),
        (503, "internal_error", ServerError, True),
        (504, 1504, ServerError, True),  # integer code (pre-2026 style)
        (401, 401, Unauthorized, False),
        (409, "conflict", UnexpectedResponse, False),
        (418, 418, UnexpectedResponse, False),
    ],
)
async def test_error_mapping(
    client: EvoLinkClient, fake: FakeEvoLink, status, code, cls, transient
):
    fake.fail_next("/v1/tasks/", status, code, "Something went wrong")
    with pytest.raises(EvoLinkError) as info:
        await client.get_task("task-unified-1-abcdefgh")
    error = info.value
    assert type(error) is cls
    assert error.transient is transient
    assert error.status == status
    assert error.code == str(code) and isinstance(error.code, str)
    assert error.message == "Something went wrong"
    assert error.request_id is not None
    assert error.request_id == fake.requests[-1].request_id
    text = str(error)
    assert str(status) in text and str(code) in text and error.request_id in text
    assert "\n" not in text


async def test_error_mapping_on_create_and_balance(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/images/", 402, "insufficient_quota", "Out of credits")
    with pytest.raises(InsufficientQuota):
        await client.create_image_task(prompt="x", size="1280x1280", n=1, prompt_extend=True)
    fake.fail_next("/v1/videos/", 403, "model_access_denied", "No access")
    with pytest.raises(PermissionDenied):
        await client.create_video_task(
            prompt="x", image_url="https://example.com/a.png", duration=5, quality="720p",
            prompt_extend=True,
        )
    fake.fail_next("/v1/credits", 503, "internal_error", "Down")
    with pytest.raises(ServerError):
        await client.get_balance()
    assert not fake.tasks  # nothing was created by the failed calls


async def test_rate_limited_retry_after_seconds(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", "Slow down", retry_after="7")
    with pytest.raises(RateLimited) as info:
        await client.get_task("task-unified-1-abcdefgh")
    assert info.value.retry_after == 7.0
    assert info.value.transient


async def test_rate_limited_retry_after_http_date(client: EvoLinkClient, fake: FakeEvoLink):
    when = datetime.now(UTC) + timedelta(seconds=120)
    fake.fail_next(
        "/v1/tasks/", 429, "rate_limit_exceeded", "Slow down",
        retry_after=format_datetime(when, usegmt=True),
    )
    with pytest.raises(RateLimited) as info:
        await client.get_task("task-unified-1-abcdefgh")
    assert info.value.retry_after is not None
    assert 100 <= info.value.retry_after <= 121


@pytest.mark.parametrize("header", [None, "soon", ""])
async def test_rate_limited_without_usable_retry_after(
    client: EvoLinkClient, fake: FakeEvoLink, header: str | None
):
    fake.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", "Slow down", retry_after=header)
    with pytest.raises(RateLimited) as info:
        await client.get_task("task-unified-1-abcdefgh")
    assert info.value.retry_after is None


async def test_non_json_error_body(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next(
        "/v1/credits", 502, "ignored",
        raw_body="<html>\n<body><h1>502 Bad Gateway</h1>\n" + "x" * 5000 + "</body></html>",
    )
    with pytest.raises(ServerError) as info:
        await client.get_balance()
    error = info.value
    assert error.status == 502 and error.code is None and error.transient
    assert "502 Bad Gateway" in error.message
    assert error.request_id == fake.requests[-1].request_id
    assert len(str(error)) < 400 and "\n" not in str(error)


async def test_error_body_without_error_object(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/credits", 500, "x", raw_body='{"detail": "boom"}')
    with pytest.raises(ServerError) as info:
        await client.get_balance()
    assert info.value.code is None


async def test_success_status_with_non_json_body(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/credits", 200, "x", raw_body="<html>maintenance</html>")
    with pytest.raises(UnexpectedResponse) as info:
        await client.get_balance()
    assert info.value.status == 200 and not info.value.transient


async def test_success_status_with_malformed_task(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/tasks/", 200, "x", raw_body='{"status": "completed"}')
    with pytest.raises(UnexpectedResponse):
        await client.get_task("task-unified-1-abcdefgh")


async def test_files_api_errors(client: EvoLinkClient, fake: FakeEvoLink):
    data = png_bytes(400, 400)
    # Errors in the body with HTTP 200, code read like a status.
    fake.fail_next("/api/v1/files", 200, 429, "Too many uploads", retry_after="3")
    with pytest.raises(RateLimited) as info:
        await client.upload_file(data, filename="a.png", content_type="image/png")
    assert info.value.code == "429" and info.value.retry_after == 3.0
    assert info.value.message == "Too many uploads"
    fake.fail_next("/api/v1/files", 200, 1234, "Weird")
    with pytest.raises(UnexpectedResponse) as info2:
        await client.upload_file(data, filename="a.png", content_type="image/png")
    assert info2.value.code == "1234"
    # Errors with an HTTP error status in the files shape.
    fake.fail_next("/api/v1/files", 402, 402, "File quota exceeded")
    with pytest.raises(InsufficientQuota):
        await client.upload_file(data, filename="a.png", content_type="image/png")
    # Real validation by the fake: an unsupported type.
    with pytest.raises(BadRequest) as info3:
        await client.upload_file(b"GIF89a", filename="a.txt", content_type="text/plain")
    assert "file" in info3.value.message


# --- the key stays secret ----------------------------------------------------------------------


async def test_wrong_key_and_key_never_shown(session: aiohttp.ClientSession, fake: FakeEvoLink):
    wrong_key = "sk-wrong-key-ABCDEF"
    client = EvoLinkClient(session, api_key=wrong_key, base_url=fake.base_url)
    assert wrong_key not in repr(client) and wrong_key not in str(client)
    with pytest.raises(Unauthorized) as info:
        await client.get_balance()
    assert not info.value.transient
    assert wrong_key not in str(info.value) and wrong_key not in repr(info.value)


async def test_key_echoed_by_server_is_redacted(client: EvoLinkClient, fake: FakeEvoLink):
    fake.fail_next("/v1/credits", 401, "unauthorized", f"Key {API_KEY} has expired")
    with pytest.raises(Unauthorized) as info:
        await client.get_balance()
    for text in (str(info.value), repr(info.value), info.value.message, str(info.value.args)):
        assert API_KEY not in text
    assert API_KEY not in repr(client)


async def test_get_task_quotes_the_id(client: EvoLinkClient, fake: FakeEvoLink):
    with pytest.raises((TaskNotFound, BadRequest)):
        await client.get_task("task-unified-1/../../credits")
    assert not any(r.path == "/v1/credits" for r in fake.requests)
    with pytest.raises(TaskNotFound):
        await client.get_task("task-unified-1-what?x=1#frag")
    assert fake.requests[-1].path.startswith("/v1/tasks/task-unified-1-what?x=1#frag")
    count = len(fake.requests)
    with pytest.raises(BadRequest) as info:
        await client.get_task("..")
    assert info.value.code == "invalid_task_id"
    assert len(fake.requests) == count  # refused before sending anything


# --- network failures ----------------------------------------------------------------------------


async def test_connection_refused(session: aiohttp.ClientSession):
    client = EvoLinkClient(session, api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EvoLinkConnectionError) as info:
        await client.create_image_task(prompt="x", size="1280x1280", n=1, prompt_extend=True)
    assert info.value.request_sent is False
    assert info.value.transient
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)


async def test_server_disconnect_means_request_may_have_been_sent(session: aiohttp.ClientSession):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request reached us...
        writer.close()  # ...and we hang up without answering

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = EvoLinkClient(session, api_key=API_KEY, base_url=f"http://127.0.0.1:{port}")
        with pytest.raises(EvoLinkConnectionError) as info:
            await client.get_balance()
        assert info.value.request_sent is True
    finally:
        server.close()
        await server.wait_closed()


async def test_timeout(session: aiohttp.ClientSession):
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/images/generations", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        client = EvoLinkClient(
            session,
            api_key=API_KEY,
            base_url=f"http://127.0.0.1:{port}",
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
        with pytest.raises(EvoLinkTimeout) as info:
            await client.create_image_task(prompt="x", size="1280x1280", n=1, prompt_extend=True)
        assert info.value.transient
        assert API_KEY not in str(info.value)
    finally:
        release.set()
        await runner.cleanup()


# --- model parsing (tolerance) -------------------------------------------------------------------


def test_task_from_wire_is_tolerant():
    task = Task.from_wire(
        {
            "id": "task-unified-1-abc",
            "status": "weird-new-status",
            "progress": 150,
            "results": ["https://x/1.png", 7, None, ""],
            "task_info": "nope",
            "usage": {"credits_reserved": 5},
            "error": {"code": 500, "message": "boom"},
            "created": "not a number",
        }
    )
    assert task.status is TaskStatus.UNKNOWN and task.is_final and not task.succeeded
    assert task.progress == 100
    assert task.results == ("https://x/1.png",)
    assert task.estimated_time is None
    assert task.credits_reserved == Decimal(5)
    assert task.error is not None and task.error.code == "500"
    assert task.created is None and task.model is None

    minimal = Task.from_wire({"id": "t", "status": "processing", "progress": -3})
    assert minimal.progress == 0 and not minimal.is_final
    assert minimal.results == () and minimal.error is None and minimal.credits_reserved is None

    assert Task.from_wire({"id": "t", "status": "cancelled"}).is_final
    completed_without_results = Task.from_wire({"id": "t", "status": "completed", "results": []})
    assert completed_without_results.is_final and not completed_without_results.succeeded
    assert Task.from_wire({"id": "t", "status": "completed", "usage": {"credits_reserved": 0.1}}
                          ).credits_reserved == Decimal("0.1")

    with pytest.raises(ValueError):
        Task.from_wire({"status": "pending"})
    with pytest.raises(ValueError):
        Task.from_wire({"id": "t"})


def test_balance_from_wire_without_token():
    balance = AccountBalance.from_wire(
        {"success": True, "data": {"user": {"remaining_credits": 1095.4, "used_credits": 135.9}}}
    )
    assert balance.remaining_credits == Decimal("1095.4")
    assert balance.key_remaining_credits is None and balance.key_unlimited is False
    with pytest.raises(ValueError):
        AccountBalance.from_wire({"success": True, "data": {}})


async def test_session_raise_for_status_does_not_change_mapping(fake: FakeEvoLink):
    async with aiohttp.ClientSession(raise_for_status=True) as strict:
        client = EvoLinkClient(strict, api_key=API_KEY, base_url=fake.base_url)
        fake.fail_next("/v1/credits", 429, "rate_limit_exceeded", "Slow down", retry_after="2")
        with pytest.raises(RateLimited) as info:
            await client.get_balance()
        assert info.value.retry_after == 2.0
