"""The fake EvoLink server at the wire level (plain aiohttp requests, no client)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot import USER_AGENT
from bot.clock import ScaledClock
from bot.evolink.fake import FakeEvoLink, render_png

API_KEY = "sk-fake-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}", "User-Agent": USER_AGENT}


@pytest.fixture
def clock() -> ScaledClock:
    # Nearly frozen: tests move time with advance(), so task states are deterministic.
    return ScaledClock(1e-9)


@pytest.fixture
async def fake(clock: ScaledClock) -> AsyncIterator[FakeEvoLink]:
    server = FakeEvoLink(clock=clock, api_key=API_KEY)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = AUTH if headers is None else headers
    async with http.request(method, url, json=json, headers=headers) as r:
        assert r.headers.get("x-request-id")
        assert r.content_type == "application/json"
        return r.status, await r.json(), r


def image_body(**overrides: Any) -> dict[str, Any]:
    body = {"model": "wan2.5-text-to-image", "prompt": "a red fox", "size": "1280x1280", "n": 1}
    body.update(overrides)
    return body


def video_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "model": "wan2.5-image-to-video",
        "prompt": "the fox runs",
        "image_urls": ["https://example.com/fox.png"],
        "duration": 5,
        "quality": "720p",
    }
    body.update(overrides)
    return body


async def test_create_image_task_shape(fake: FakeEvoLink, http: aiohttp.ClientSession, clock):
    status, task, _ = await call(
        http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body(n=3)
    )
    assert status == 200
    assert re.fullmatch(r"task-unified-\d+-[a-z0-9]{8}", task["id"])
    assert task == {
        "id": task["id"],
        "created": int(clock.now().timestamp()),
        "model": "wan2.5-text-to-image",
        "object": "image.generation.task",
        "type": "image",
        "status": "pending",
        "progress": 0,
        "task_info": {"can_cancel": True, "estimated_time": 30},
        "usage": {"billing_rule": "per_call", "credits_reserved": 5.4, "user_group": "default"},
    }
    assert task["id"].startswith(f"task-unified-{task['created']}-")
    assert fake.tasks[task["id"]].size == (1280, 1280)


async def test_create_video_task_shape(fake: FakeEvoLink, http: aiohttp.ClientSession):
    status, task, _ = await call(
        http, "POST", f"{fake.base_url}/v1/videos/generations", json=video_body(quality="480p")
    )
    assert status == 200
    assert task["object"] == "video.generation.task" and task["type"] == "video"
    assert task["model"] == "wan2.5-image-to-video"
    assert task["task_info"] == {"can_cancel": True, "estimated_time": 120}
    assert task["usage"]["credits_reserved"] == 12.75  # 5 s * 5.1 * 0.5


async def test_task_lifecycle_follows_the_clock(fake: FakeEvoLink, http, clock: ScaledClock):
    _, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                            json=image_body(n=2, size="1440x720"))
    url = f"{fake.base_url}/v1/tasks/{task['id']}"
    states = []
    for seconds in (0, 2, 1, 3, 5, 10, 8, 0.5):  # cumulative: 2, 3, 6, 11, 21, 29, 29.5
        clock.advance(seconds)
        status, read, _ = await call(http, "GET", url)
        assert status == 200 and "results" not in read
        states.append((read["status"], read["progress"]))
    assert states[0] == ("pending", 0) and states[1] == ("pending", 0)
    assert all(s == "processing" for s, _ in states[3:])
    progresses = [p for _, p in states]
    assert progresses == sorted(progresses) and progresses[-1] < 100

    # Not downloadable before completion.
    async with http.get(f"{fake.base_url}/results/{task['id']}/0", headers=AUTH) as r:
        assert r.status == 404

    clock.advance(0.5)
    _, done, _ = await call(http, "GET", url)
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["task_info"]["can_cancel"] is False
    assert done["results"] == [
        f"{fake.base_url}/results/{task['id']}/0",
        f"{fake.base_url}/results/{task['id']}/1",
    ]
    plain = {"User-Agent": USER_AGENT}
    for result in done["results"]:
        async with http.get(result, headers=plain) as r:
            assert r.status == 200 and r.content_type == "image/png"
            with Image.open(io.BytesIO(await r.read())) as image:
                assert image.size == (1440, 720)
                extrema = image.convert("RGB").getextrema()
                assert any(low != high for low, high in extrema)  # not blank
    async with http.get(f"{fake.base_url}/results/{task['id']}/2", headers=plain) as r:
        assert r.status == 404


async def test_result_downloads_refuse_default_user_agent(fake: FakeEvoLink, http, clock):
    _, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                            json=image_body())
    clock.advance(31)
    async with http.get(f"{fake.base_url}/results/{task['id']}/0") as r:  # aiohttp's default UA
        assert r.status == 403
        assert r.headers.get("x-request-id")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"size": "100x100"}, "size"),
        ({"size": "1500x1500"}, "size"),
        ({"size": "2880x360"}, "size"),  # area fine, ratio 8
        ({"size": "1280*1280"}, "size"),
        ({"size": 1280}, "size"),
        ({"n": 0}, "n"),
        ({"n": 5}, "n"),
        ({"n": "2"}, "n"),
        ({"n": True}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"model": "wan2.5-image-to-video"}, "model"),
        ({"prompt_extend": "yes"}, "prompt_extend"),
        ({"callback_url": "http://example.com/hook"}, "callback_url"),
    ],
)
async def test_image_validation(fake: FakeEvoLink, http, overrides, field):
    status, body, _ = await call(
        http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body(**overrides)
    )
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["param"] == field
    assert field in body["error"]["message"]
    assert not fake.tasks


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": "x" * 1001}, "prompt"),
        ({"duration": 7}, "duration"),
        ({"quality": "4k"}, "quality"),
        ({"image_urls": []}, "image_urls"),
        ({"image_urls": ["https://a/1.png", "https://a/2.png"]}, "image_urls"),
        ({"image_urls": "https://a/1.png"}, "image_urls"),
        ({"model": "wan2.5-text-to-image"}, "model"),
    ],
)
async def test_video_validation(fake: FakeEvoLink, http, overrides, field):
    status, body, _ = await call(
        http, "POST", f"{fake.base_url}/v1/videos/generations", json=video_body(**overrides)
    )
    assert status == 400 and body["error"]["param"] == field and field in body["error"]["message"]


async def test_valid_edge_sizes_accepted(fake: FakeEvoLink, http):
    for size in ("768x768", "1440x1440", "2304x576", "576x2304"):  # bounds of area and ratio
        status, _, _ = await call(
            http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body(size=size)
        )
        assert status == 200, size
    # 1000 prompt characters are fine for video, 2000 for images.
    status, _, _ = await call(http, "POST", f"{fake.base_url}/v1/videos/generations",
                              json=video_body(prompt="y" * 1000))
    assert status == 200
    status, _, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                              json=image_body(prompt="y" * 2000))
    assert status == 200


async def test_invalid_json_body(fake: FakeEvoLink, http):
    async with http.post(f"{fake.base_url}/v1/images/generations", data=b"{nope",
                         headers={**AUTH, "Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_request"


async def test_auth(fake: FakeEvoLink, http):
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer sk-wrong"}):
        status, body, _ = await call(http, "GET", f"{fake.base_url}/v1/credits", headers=headers)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert "sk-wrong" not in str(body)
    # Files host uses its own error shape.
    async with http.post(f"{fake.base_url}/api/v1/files/upload/stream") as r:
        assert r.status == 401
        assert await r.json() == {"success": False, "code": 401, "msg": (await r.json())["msg"]}


async def test_any_bearer_accepted_without_configured_key(clock, http):
    async with FakeEvoLink(clock=clock) as fake:
        status, _, _ = await call(http, "GET", f"{fake.base_url}/v1/credits",
                                  headers={"Authorization": "Bearer anything"})
        assert status == 200


async def test_unknown_task_ids(fake: FakeEvoLink, http):
    status, body, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/task-unified-1-zzzzzzzz")
    assert status == 404 and body["error"]["code"] == "task_not_found"
    status, body, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/bogus")
    assert status == 400 and body["error"]["code"] == "invalid_task_id"
    status, body, _ = await call(http, "GET", f"{fake.base_url}/v1/nothing-here")
    assert status == 404 and "error" in body


async def test_task_failure_injection(fake: FakeEvoLink, http, clock: ScaledClock):
    fake.fail_tasks_matching("forbidden", "content_policy_violation", "Policy says no")
    _, bad, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                           json=image_body(prompt="something forbidden"))
    _, good, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                            json=image_body(prompt="something nice"))
    clock.advance(16)  # past half of 30 s: the bad task has failed
    _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{bad['id']}")
    assert read["status"] == "failed"
    assert read["error"] == {"code": "content_policy_violation", "message": "Policy says no",
                             "type": "task_error"}
    assert "results" not in read
    clock.advance(15)
    _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{bad['id']}")
    assert read["status"] == "failed"
    _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{good['id']}")
    assert read["status"] == "completed" and "error" not in read


async def test_balance_shape_and_charging(fake: FakeEvoLink, http, clock: ScaledClock):
    status, balance, _ = await call(http, "GET", f"{fake.base_url}/v1/credits")
    assert status == 200
    assert balance == {
        "success": True,
        "data": {
            "user": {"remaining_credits": 10000.0, "used_credits": 0.0},
            "token": {"remaining_credits": 100000.0, "unlimited_credits": False,
                      "used_credits": 0.0},
        },
    }
    fake.fail_tasks_matching("fail", "service_error", "Upstream broke")
    await call(http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body(n=2))
    await call(http, "POST", f"{fake.base_url}/v1/images/generations",
               json=image_body(prompt="fail please"))
    _, balance, _ = await call(http, "GET", f"{fake.base_url}/v1/credits")
    assert balance["data"]["user"]["used_credits"] == 0.0  # nothing completed yet
    clock.advance(30)
    _, balance, _ = await call(http, "GET", f"{fake.base_url}/v1/credits")
    assert balance["data"]["user"] == {"remaining_credits": 9996.4, "used_credits": 3.6}
    assert fake.used_credits() == Decimal("3.6")  # the failed task was not charged


async def test_insufficient_quota(fake: FakeEvoLink, http):
    fake.starting_credits = Decimal("2")
    status, _, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                              json=image_body(n=1))
    assert status == 200
    status, body, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                                 json=image_body(n=1))  # 1.8 is still reserved
    assert status == 402 and body["error"]["code"] == "insufficient_quota"


async def test_fail_next(fake: FakeEvoLink, http):
    fake.fail_next("/v1/credits", 503, "internal_error", "Try later", times=2)
    fake.fail_next("/v1/tasks", 429, 1429, "Slow", retry_after="12")
    for _ in range(2):
        status, body, r = await call(http, "GET", f"{fake.base_url}/v1/credits")
        assert status == 503
        assert body == {"error": {"code": "internal_error", "message": "Try later",
                                  "type": "api_error", "param": None}}
        assert "Retry-After" not in r.headers
    status, _, _ = await call(http, "GET", f"{fake.base_url}/v1/credits")
    assert status == 200
    status, body, r = await call(http, "GET", f"{fake.base_url}/v1/tasks/task-unified-1-x")
    assert status == 429 and body["error"]["code"] == 1429 and r.headers["Retry-After"] == "12"
    status, _, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/task-unified-1-x")
    assert status == 404
    # Failed requests are recorded too.
    assert [r.path for r in fake.requests].count("/v1/credits") == 3


async def test_fail_every_fails_exactly_every_nth(fake: FakeEvoLink, http):
    credits = f"{fake.base_url}/v1/credits"
    await call(http, "GET", credits)  # before the rule: not counted
    fake.fail_every("/v1/credits", 3, 503, "internal_error", "Busy", retry_after="7")
    statuses = []
    for _ in range(7):
        status, body, r = await call(http, "GET", credits)
        statuses.append(status)
        if status == 503:
            # The same body and header fail_next answers with.
            assert body == {"error": {"code": "internal_error", "message": "Busy",
                                      "type": "api_error", "param": None}}
            assert r.headers["Retry-After"] == "7"
        # Other paths neither fail nor count.
        status, _, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/task-unified-1-x")
        assert status == 404
    assert statuses == [200, 200, 503, 200, 200, 503, 200]

    fake.stop_failing()
    for _ in range(3):
        status, _, _ = await call(http, "GET", credits)
        assert status == 200


async def test_fail_every_counts_requests_fail_next_answers(fake: FakeEvoLink, http):
    fake.fail_every("/v1/credits", 2, 500, "internal_error")
    fake.fail_next("/v1/credits", 429, "rate_limited")
    statuses = [(await call(http, "GET", f"{fake.base_url}/v1/credits"))[0] for _ in range(4)]
    assert statuses == [429, 500, 200, 500]


async def test_stall_next_create_times_out_client_but_creates_task(
    fake: FakeEvoLink, http, caplog: pytest.LogCaptureFixture
):
    fake.stall_next_create(30.0)
    impatient = aiohttp.ClientTimeout(total=0.5)
    with pytest.raises(TimeoutError):
        async with http.post(f"{fake.base_url}/v1/images/generations", json=image_body(n=2),
                             headers=AUTH, timeout=impatient):
            pass
    # EvoLink accepted it: the task exists and its credits are reserved.
    [task] = fake.tasks.values()
    assert task.prompt == "a red fox" and task.credits_reserved == Decimal("3.6")
    assert fake.task_state(task.id) == ("pending", 0)
    fake.starting_credits = Decimal("5")
    status, body, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                                 json=image_body(n=1))
    assert status == 402  # 3.6 of 5 reserved by the task the client never saw

    # Only the next create was stalled.
    fake.starting_credits = Decimal("10000")
    started = time.perf_counter()
    status, _, _ = await call(http, "POST", f"{fake.base_url}/v1/videos/generations",
                              json=video_body())
    assert status == 200 and time.perf_counter() - started < 0.5
    assert len(fake.tasks) == 2

    # Closing does not wait for the stalled answer, and nothing complains about the gone client.
    caplog.set_level(logging.DEBUG)
    started = time.perf_counter()
    await fake.close()
    assert time.perf_counter() - started < 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_stall_next_create_delays_the_answer(fake: FakeEvoLink, http):
    fake.stall_next_create(0.3, times=2)
    for _ in range(2):
        started = time.perf_counter()
        status, _, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                                  json=image_body())
        assert status == 200 and time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    await call(http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body())
    assert time.perf_counter() - started < 0.3
    assert len(fake.tasks) == 3


async def test_hold_results_until_released(fake: FakeEvoLink, http, clock: ScaledClock):
    _, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                            json=image_body(n=2))
    clock.advance(31)
    hold = fake.hold_results()
    with pytest.raises(RuntimeError):
        fake.hold_results()  # one at a time

    async def download(index: int) -> tuple[int, bytes]:
        async with http.get(f"{fake.base_url}/results/{task['id']}/{index}",
                            headers={"User-Agent": USER_AGENT}) as r:
            return r.status, await r.read()

    downloads = [asyncio.create_task(download(i)) for i in range(2)]
    await asyncio.wait_for(hold.arrived.wait(), 5)
    for _ in range(100):
        if hold.waiting == 2:
            break
        await asyncio.sleep(0.01)
    assert hold.waiting == 2
    # Other routes are not held.
    status, _, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task['id']}")
    assert status == 200
    await asyncio.sleep(0.1)
    assert not any(d.done() for d in downloads)

    hold.release()
    results = await asyncio.wait_for(asyncio.gather(*downloads), 5)
    assert [status for status, _ in results] == [200, 200]
    assert all(data.startswith(b"\x89PNG") for _, data in results)
    assert hold.waiting == 0 and hold.released
    # Released: later downloads pass, and a new hold can be taken.
    assert (await download(0))[0] == 200
    assert not fake.hold_results().arrived.is_set()


async def test_close_releases_held_results(clock, http):
    fake = FakeEvoLink(clock=clock)
    await fake.start()
    hold = fake.hold_results()
    pending = asyncio.create_task(http.get(f"{fake.base_url}/results/task-unified-1-x/0",
                                           headers={"User-Agent": USER_AGENT}))
    await asyncio.wait_for(hold.arrived.wait(), 5)
    started = time.perf_counter()
    await fake.close()
    assert time.perf_counter() - started < 5 and hold.released
    try:
        (await pending).release()
    except aiohttp.ClientError:
        pass  # the server went away: either outcome is fine


async def test_upload_and_video_input_checks(fake: FakeEvoLink, http, clock: ScaledClock):
    def png(width: int, height: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (width, height), "navy").save(out, "PNG")
        return out.getvalue()

    async def upload(data: bytes) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="in.png", content_type="image/png")
        async with http.post(f"{fake.base_url}/api/v1/files/upload/stream", data=form,
                             headers=AUTH) as r:
            assert r.status == 200 and r.headers.get("x-request-id")
            body = await r.json()
        assert body["success"] is True and body["code"] == 200
        return body["data"]

    good = await upload(png(800, 600))
    assert good["file_url"] == f"{fake.base_url}/uploads/{good['file_id']}"
    assert good["expires_at"].endswith("Z")
    async with http.get(good["file_url"]) as r:
        assert r.status == 200 and r.content_type == "image/png"
        assert await r.read() == png(800, 600)
    tiny = await upload(png(100, 100))

    urls = {
        "good": good["file_url"],
        "tiny": tiny["file_url"],
        "missing": f"{fake.base_url}/uploads/file_nope",
    }
    ids = {}
    for name, url in urls.items():
        status, task, _ = await call(http, "POST", f"{fake.base_url}/v1/videos/generations",
                                     json=video_body(image_urls=[url]))
        assert status == 200
        ids[name] = task["id"]
    clock.advance(120)
    results = {}
    for name, task_id in ids.items():
        _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task_id}")
        results[name] = read
    assert results["good"]["status"] == "completed" and len(results["good"]["results"]) == 1
    assert results["tiny"]["error"]["code"] == "image_dimension_mismatch"
    assert results["missing"]["error"]["code"] == "image_processing_error"
    async with http.get(results["good"]["results"][0], headers={"User-Agent": USER_AGENT}) as r:
        assert r.status == 200 and r.content_type == "video/mp4"
        assert (await r.read())[4:8] == b"ftyp"


async def test_upload_validation(fake: FakeEvoLink, http):
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
    async with http.post(f"{fake.base_url}/api/v1/files/upload/stream", data=form,
                         headers=AUTH) as r:
        body = await r.json()
    assert r.status == 400 and body["success"] is False and body["code"] == 400
    assert "file" in body["msg"]


async def test_records_requests(fake: FakeEvoLink, http, clock: ScaledClock):
    await call(http, "POST", f"{fake.base_url}/v1/images/generations", json=image_body())
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == "/v1/images/generations"
    assert request.json == image_body()
    assert request.headers["authorization"] == f"Bearer {API_KEY}"  # case-insensitive
    assert request.time == pytest.approx(clock.monotonic(), abs=1e-3)
    assert request.request_id.startswith("req-")


async def test_refuses_non_loopback_hosts(clock):
    for host in ("0.0.0.0", "192.168.1.2", "example.com", "::"):
        with pytest.raises(ValueError):
            await FakeEvoLink(clock=clock).start(host)


async def test_start_on_loopback_and_localhost(clock):
    async with FakeEvoLink(clock=clock) as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
    fake = FakeEvoLink(clock=clock)
    try:
        assert (await fake.start("localhost")).startswith("http://127.0.0.1:")
    finally:
        await fake.close()


def test_render_png_is_fast_and_exact():
    render_png.cache_clear()
    started = time.perf_counter()
    data = render_png(1440, 1440, 3)
    assert time.perf_counter() - started < 1.0
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (1440, 1440) and image.format == "PNG"
        assert "transparency" not in image.info
    assert render_png(1440, 1440, 3) is data  # cached


# -- wan2.5-image-to-image: editing one picture, or fusing two -------------------------------------


def edit_body(**overrides: Any) -> dict[str, Any]:
    body = {"model": "wan2.5-image-to-image", "prompt": "the same fox, at night",
            "image_urls": ["https://example.com/fox.png"], "n": 1}
    body.update(overrides)
    return body


def picture(width: int, height: int, *, mode: str = "RGB", kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (30, 120, 200, 128)[: len(mode)]).save(out, kind)
    return out.getvalue()


async def upload_picture(fake: FakeEvoLink, http, data: bytes, content_type: str = "image/png") -> str:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="in", content_type=content_type)
    async with http.post(f"{fake.base_url}/api/v1/files/upload/stream", data=form, headers=AUTH) as r:
        assert r.status == 200
        return (await r.json())["data"]["file_url"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"image_urls": []}, "image_urls"),
    ({"image_urls": ["https://a.example/1.png", "https://a.example/2.png", "https://a.example/3.png"]}, "image_urls"),
    ({"image_urls": "https://a.example/1.png"}, "image_urls"),
    ({"image_urls": ["ftp://a.example/1.png"]}, "image_urls"),
    ({"size": "1024x1024"}, "size"),  # the output follows the input: no size for this model
    ({"n": 5}, "n"),
    ({"n": 0}, "n"),
    ({"prompt": "x" * 2001}, "prompt"),
    ({"prompt": ""}, "prompt"),
])
async def test_edit_validation(fake: FakeEvoLink, http, overrides, field):
    status, body, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations", json=edit_body(**overrides))
    assert status == 400
    assert body["error"]["param"] == field and body["error"]["type"] == "invalid_request_error"
    assert fake.tasks == {}


async def test_an_edit_of_one_picture_and_a_fusion_of_two_are_accepted(fake: FakeEvoLink, http, clock):
    one = await upload_picture(fake, http, picture(800, 600))
    other = await upload_picture(fake, http, picture(512, 512))
    for urls, n in (([one], 2), ([one, other], 1)):
        status, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                                     json=edit_body(image_urls=urls, n=n))
        assert status == 200
        assert (task["model"], task["type"], task["status"]) == ("wan2.5-image-to-image", "image", "pending")
        assert Decimal(str(task["usage"]["credits_reserved"])) == Decimal("1.8") * n
    clock.advance(60)
    for task in fake.tasks.values():
        _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task.id}")
        assert read["status"] == "completed" and len(read["results"]) == task.result_count
        # The result follows the first picture, and is that picture changed, not a stock image.
        async with http.get(read["results"][0], headers={"User-Agent": USER_AGENT}) as r:
            assert r.status == 200 and r.content_type == "image/png"
            with Image.open(io.BytesIO(await r.read())) as result:
                assert result.size == (800, 600) and result.mode == "RGB"
                assert result.getpixel((10, 10)) != (30, 120, 200)  # edited, not returned as it was


@pytest.mark.parametrize(("data", "content_type", "code"), [
    (picture(300, 600), "image/png", "image_dimension_mismatch"),     # under 384 px
    (picture(5200, 400), "image/png", "image_dimension_mismatch"),    # over 5000 px
    (picture(600, 600, mode="RGBA"), "image/png", "image_processing_error"),  # transparency
    (picture(600, 600, kind="GIF"), "image/gif", "image_processing_error"),   # not jpeg/png/bmp/webp
    (b"GIF89a not really", "image/gif", "image_processing_error"),            # not a picture
])
async def test_an_edit_checks_each_picture_as_evolink_does(fake: FakeEvoLink, http, clock, data, content_type, code):
    good = await upload_picture(fake, http, picture(800, 600))
    bad = await upload_picture(fake, http, data, content_type)
    # The bad one is checked whether it is the picture to edit or the one to fuse in.
    for urls in ([bad], [good, bad]):
        status, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations",
                                     json=edit_body(image_urls=urls))
        assert status == 200
    clock.advance(60)
    for task in fake.tasks.values():
        _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task.id}")
        assert read["status"] == "failed" and read["error"]["code"] == code


async def test_an_edit_of_a_picture_too_large_in_bytes_fails(fake: FakeEvoLink, http, clock):
    noisy = Image.frombytes("RGB", (2400, 2400), os.urandom(2400 * 2400 * 3))  # noise: it will not compress
    out = io.BytesIO()
    noisy.save(out, "PNG", compress_level=0)
    assert out.tell() > 10 * 1024 * 1024
    url = await upload_picture(fake, http, out.getvalue())
    status, task, _ = await call(http, "POST", f"{fake.base_url}/v1/images/generations", json=edit_body(image_urls=[url]))
    assert status == 200
    clock.advance(60)
    _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task['id']}")
    assert read["error"]["code"] == "image_too_large"


# -- input pictures fetched from the origins the fake is given ----------------------------------------


class PictureSite:
    """A tiny web server on loopback standing in for Discord's CDN: serves `pictures` by path
    (404 for others; /hop redirects to /fox.png) and records every request, query included."""

    def __init__(self) -> None:
        self.pictures: dict[str, bytes] = {}
        self.requested: list[str] = []
        self.url = ""

    async def _serve(self, request: web.Request) -> web.Response:
        self.requested.append(request.path_qs)
        if request.path == "/hop":
            return web.Response(status=302, headers={"Location": f"{self.url}/fox.png"})
        data = self.pictures.get(request.path)
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="image/png")


@pytest.fixture
async def site() -> AsyncIterator[PictureSite]:
    site = PictureSite()
    app = web.Application()
    app.router.add_get("/{name}", site._serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    site.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield site
    await runner.cleanup()


@pytest.fixture
async def fetching(clock: ScaledClock, site: PictureSite) -> AsyncIterator[FakeEvoLink]:
    server = FakeEvoLink(clock=clock, api_key=API_KEY, input_origins=(site.url,))
    await server.start()
    yield server
    await server.close()


async def ended(fake: FakeEvoLink, http, clock: ScaledClock, body: dict[str, Any], path: str = "images") -> dict:
    """Create a task, let it run its course, and read it."""
    status, task, _ = await call(http, "POST", f"{fake.base_url}/v1/{path}/generations", json=body)
    assert status == 200
    clock.advance(180)
    _, read, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/{task['id']}")
    return read


def halves(width: int, height: int) -> bytes:
    """White on the left, black on the right: the reverse of render_png's gradient, which is dark
    on the left, so a result bright on the left can only come from this picture."""
    image = Image.new("RGB", (width, height), "black")
    image.paste((255, 255, 255), (0, 0, width // 2, height))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_an_edit_of_a_fetched_picture_comes_back_as_that_picture_changed(fetching, site, http, clock):
    site.pictures["/fox.png"] = halves(800, 600)
    signed = f"{site.url}/fox.png?ex=6650b1c2&is=664f6042&hm=3f1a9c"  # Discord's links are signed
    read = await ended(fetching, http, clock, edit_body(image_urls=[signed], n=2))
    assert read["status"] == "completed" and len(read["results"]) == 2
    assert site.requested == ["/fox.png?ex=6650b1c2&is=664f6042&hm=3f1a9c"]  # fetched once, as given
    for link in read["results"]:
        async with http.get(link, headers={"User-Agent": USER_AGENT}) as r:
            with Image.open(io.BytesIO(await r.read())) as result:
                assert result.size == (800, 600)  # the fetched picture's shape, not a stock square
                left, right = result.getpixel((100, 300)), result.getpixel((700, 300))
                assert sum(left) > sum(right) + 200  # its bright half and dark half, tinted
                assert left != (255, 255, 255)  # changed, not returned as it was


@pytest.mark.parametrize(("data", "code", "message"), [
    (picture(300, 600), "image_dimension_mismatch", "Input image is 300x600"),
    (picture(600, 600, mode="RGBA"), "image_processing_error", "transparency"),
    (b"<html>not a picture</html>", "image_processing_error", "format is not supported"),
    # 11 MB: a real PNG with trailing bytes; the fake stops reading just past 10 MB.
    (picture(800, 600) + bytes(11 * 1024 * 1024), "image_too_large", "over 10485760 bytes"),
    (None, "image_processing_error", "The input image could not be downloaded"),  # 404
])
async def test_a_fetched_picture_is_checked_as_evolink_does(fetching, site, http, clock, data, code, message):
    site.pictures["/good.png"] = picture(800, 600)
    if data is not None:
        site.pictures["/bad.png"] = data
    # The bad one is checked whether it is the picture to edit or the one to fuse in.
    for urls in ([f"{site.url}/bad.png"], [f"{site.url}/good.png", f"{site.url}/bad.png"]):
        read = await ended(fetching, http, clock, edit_body(image_urls=urls))
        assert read["status"] == "failed" and read["error"]["code"] == code
        assert message in read["error"]["message"]


async def test_a_fetch_does_not_follow_redirects(fetching, site, http, clock):
    site.pictures["/fox.png"] = picture(800, 600)
    read = await ended(fetching, http, clock, edit_body(image_urls=[f"{site.url}/hop"]))
    assert read["error"] == {"code": "image_processing_error", "type": "task_error",
                             "message": "The input image could not be downloaded"}
    assert site.requested == ["/hop"]


async def test_a_picture_on_an_origin_not_given_is_never_requested(clock, site, http):
    site.pictures["/tiny.png"] = picture(100, 100)  # would fail either model's check
    port = site.url.rsplit(":", 1)[1]
    # The same host on another port, and the same host and port over https: other origins.
    others = ("http://127.0.0.1:1", f"https://127.0.0.1:{port}")
    async with FakeEvoLink(clock=clock, api_key=API_KEY, input_origins=others) as fake:
        edit = await ended(fake, http, clock, edit_body(image_urls=[f"{site.url}/tiny.png"]))
        video = await ended(fake, http, clock, video_body(image_urls=[f"{site.url}/tiny.png"]), "videos")
    assert edit["status"] == video["status"] == "completed"  # unchecked, as before
    assert site.requested == []


async def test_a_fetched_first_frame_is_checked_by_the_video_rules(fetching, site, http, clock):
    site.pictures["/small.png"] = picture(300, 300)
    site.pictures["/frame.png"] = picture(640, 360)
    small = await ended(fetching, http, clock, video_body(image_urls=[f"{site.url}/small.png"]), "videos")
    assert small["status"] == "failed" and small["error"]["code"] == "image_dimension_mismatch"
    assert "300x300" in small["error"]["message"]
    frame = await ended(fetching, http, clock, video_body(image_urls=[f"{site.url}/frame.png"]), "videos")
    assert frame["status"] == "completed"
    assert site.requested == ["/small.png", "/frame.png"]
