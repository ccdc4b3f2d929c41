"""The fake Discord's opt-in rate limits: Discord's buckets, headers and 429s, and discord.py pacing itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import discord
import pytest
from discord.http import handle_message_parameters

from tests.fakes.discord import (
    RATE_LIMIT_RULES,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    InteractionRecord,
    RateLimitRule,
    slash_command_payload,
)

GUILD_ID = 1250000000000000001
CHANNEL_ID = 1250000000000000002
BOT_AUTH = {"Authorization": "Bot fake-token"}
RATE_LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)


def _fake(*, rate_limits: bool) -> FakeDiscord:
    guild = FakeGuild(id=GUILD_ID, channels=[FakeChannel(CHANNEL_ID)])
    return FakeDiscord(guilds=[guild], rate_limits=rate_limits)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = _fake(rate_limits=True)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@asynccontextmanager
async def _identified(fake: FakeDiscord, http: aiohttp.ClientSession) -> AsyncIterator[None]:
    """A bare gateway client that identified, so the fake dispatches interactions (no bot needed)."""
    async with http.ws_connect(fake.ws_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "fake-token", "intents": 1, "properties": {}}})
        await fake.wait_until_identified()
        yield


@pytest.fixture
async def gateway(fake: FakeDiscord, http: aiohttp.ClientSession) -> AsyncIterator[None]:
    async with _identified(fake, http):
        yield


async def _deferred_interaction(fake: FakeDiscord, http: aiohttp.ClientSession) -> InteractionRecord:
    """An interaction answered with a thinking defer, so @original exists and can be edited."""
    iid = await fake.send_interaction(slash_command_payload(fake, name="draw", channel_id=CHANNEL_ID))
    record = fake.interaction_responses[iid]
    url = f"{fake.api_base}/interactions/{iid}/{record.token}/callback?with_response=1"
    async with http.post(url, json={"type": 5}) as resp:
        assert resp.status == 200, await resp.text()
    return record


def _original_url(fake: FakeDiscord, record: InteractionRecord) -> str:
    return f"{fake.api_base}/webhooks/{fake.application_id}/{record.token}/messages/@original"


async def _patch(http: aiohttp.ClientSession, url: str, content: str) -> tuple[int, dict, dict[str, str]]:
    async with http.patch(url, json={"content": content}) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


@pytest.fixture
def discord_api_base(fake: FakeDiscord) -> Iterator[None]:
    """Points discord.py's Route.BASE at the fake for the test, then restores it."""
    old_base = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base


# ----------------------------------------------------------------------------- the buckets


async def test_sixth_token_request_in_a_window_is_refused_until_retry_after(fake, http, gateway):
    fake.rate_limit_rules["webhook"] = RateLimitRule(limit=5, period=1.0)  # half the real window: a shorter wait
    first, other = await _deferred_interaction(fake, http), await _deferred_interaction(fake, http)
    url = _original_url(fake, first)
    answers = [await _patch(http, url, f"edit {n}") for n in range(6)]

    assert [status for status, _, _ in answers[:5]] == [200] * 5
    status, body, headers = answers[5]
    assert status == 429
    assert headers["Via"] == "1.1 google" and headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Scope"] == "user" and "X-RateLimit-Global" not in headers
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 1.0
    assert int(headers["Retry-After"]) >= body["retry_after"]
    # The refused edit had no effect and is recorded as the limiter's, not as an injected fault.
    message = fake.messages[first.original_message_id]
    assert message.content == "edit 4" and len(message.edits) == 5
    assert (fake.requests[-1].status, fake.requests[-1].rate_limited, fake.requests[-1].injected) == (429, True, False)
    assert [(hit.route, hit.bucket) for hit in fake.rate_limited] == [
        ("PATCH /webhooks/{app_id}/{token}/messages/{message_id}", "webhook")
    ]

    # Another token has its own bucket.
    status, _, _ = await _patch(http, _original_url(fake, other), "other token")
    assert status == 200 and fake.messages[other.original_message_id].content == "other token"

    await asyncio.sleep(body["retry_after"])
    status, _, headers = await _patch(http, url, "after the window")
    assert status == 200 and headers["X-RateLimit-Remaining"] == "4"
    assert message.content == "after the window"
    assert len(fake.rate_limited) == 1


async def test_limited_answers_carry_discord_rate_limit_headers(fake, http, gateway):
    first, other = await _deferred_interaction(fake, http), await _deferred_interaction(fake, http)
    answers = [await _patch(http, _original_url(fake, first), f"edit {n}") for n in range(5)]

    assert [status for status, _, _ in answers] == [200] * 5
    assert [headers["X-RateLimit-Remaining"] for _, _, headers in answers] == ["4", "3", "2", "1", "0"]
    assert RATE_LIMIT_RULES["webhook"] == RateLimitRule(limit=5, period=2.0)  # docs/discord-facts.md
    for _, _, headers in answers:
        assert headers["X-RateLimit-Limit"] == "5"
        assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 2.0
        assert float(headers["X-RateLimit-Reset"]) > time.time() - 60  # epoch seconds, not monotonic
    # One bucket hash for the kind, whatever the token (Discord's major parameter is not in it).
    _, _, other_headers = await _patch(http, _original_url(fake, other), "other")
    assert {h["X-RateLimit-Bucket"] for _, _, h in answers} == {other_headers["X-RateLimit-Bucket"]}

    # Followups and reads share the token's bucket; the channel bucket has another hash.
    followup_url = f"{fake.api_base}/webhooks/{fake.application_id}/{other.token}?wait=1"
    async with http.post(followup_url, json={"content": "followup"}) as resp:
        assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "3"
    async with http.get(_original_url(fake, other)) as resp:
        assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "2"
    async with http.post(
        f"{fake.api_base}/channels/{CHANNEL_ID}/messages", json={"content": "hi"}, headers=BOT_AUTH
    ) as resp:
        assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "4"
        assert resp.headers["X-RateLimit-Bucket"] != other_headers["X-RateLimit-Bucket"]
    assert fake.rate_limited == []


async def test_sixth_channel_send_is_refused_and_creates_nothing(fake, http):
    url = f"{fake.api_base}/channels/{CHANNEL_ID}/messages"
    statuses = []
    for n in range(6):
        async with http.post(url, json={"content": f"send {n}"}, headers=BOT_AUTH) as resp:
            statuses.append(resp.status)
            last_body, last_headers = await resp.json(), resp.headers
    assert statuses == [200] * 5 + [429]
    assert last_headers["Via"] == "1.1 google" and last_headers["X-RateLimit-Scope"] == "user"
    assert last_body["global"] is False and last_body["retry_after"] > 0
    assert [m.content for m in fake.messages_in(CHANNEL_ID)] == [f"send {n}" for n in range(5)]
    assert [(hit.route, hit.bucket) for hit in fake.rate_limited] == [
        ("POST /channels/{channel_id}/messages", "channel_messages")
    ]

    # Edits of a message in that channel share the channel's bucket.
    message_id = fake.messages_in(CHANNEL_ID)[0].id
    async with http.patch(f"{url}/{message_id}", json={"content": "edited"}, headers=BOT_AUTH) as resp:
        assert resp.status == 429
    assert fake.messages[message_id].content == "send 0"


async def test_interaction_callback_is_never_limited_and_token_routes_skip_the_global_bucket(fake, http, gateway):
    # Every bucket allows one request per minute: whatever counted twice would be refused.
    for kind in fake.rate_limit_rules:
        fake.rate_limit_rules[kind] = RateLimitRule(limit=1, period=60.0)

    records = [await _deferred_interaction(fake, http) for _ in range(3)]  # three callbacks: all 200
    callback_url = f"{fake.api_base}/interactions/{records[0].id}/{records[0].token}/callback"
    async with http.post(callback_url, json={"type": 5}, headers=BOT_AUTH) as resp:
        assert resp.status == 400 and "X-RateLimit-Limit" not in resp.headers  # already acknowledged, not 429
    assert [r.status for r in fake.requests_to("POST", r"/callback$")] == [200, 200, 200, 400]

    # A token route, even with a bot token, does not use up the global bucket.
    async with http.patch(_original_url(fake, records[0]), json={"content": "x"}, headers=BOT_AUTH) as resp:
        assert resp.status == 200
    async with http.get(f"{fake.api_base}/users/@me", headers=BOT_AUTH) as resp:
        assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "0"
    assert fake.rate_limited == []

    # The next bot-token request, even one with a bucket of its own, meets the global limit.
    async with http.post(
        f"{fake.api_base}/channels/{CHANNEL_ID}/messages", json={"content": "hi"}, headers=BOT_AUTH
    ) as resp:
        body, headers = await resp.json(), resp.headers
        assert resp.status == 429 and body["global"] is True
        assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
        assert headers["Via"] == "1.1 google" and headers["X-RateLimit-Remaining"] == "0"
    assert [(hit.route, hit.bucket) for hit in fake.rate_limited] == [("POST /channels/{channel_id}/messages", "global")]
    assert "hi" not in [m.content for m in fake.messages_in(CHANNEL_ID)]


async def test_rate_limits_are_off_by_default(http):
    fake = _fake(rate_limits=False)
    await fake.start()
    try:
        async with _identified(fake, http):
            record = await _deferred_interaction(fake, http)
            answers = [await _patch(http, _original_url(fake, record), f"edit {n}") for n in range(10)]
        assert [status for status, _, _ in answers] == [200] * 10
        assert not any(name in headers for _, _, headers in answers for name in RATE_LIMIT_HEADERS)
        assert fake.messages[record.original_message_id].content == "edit 9"
        assert fake.rate_limited == []
    finally:
        await fake.close()


async def test_injected_429_is_not_counted_as_the_limiter(fake, http, gateway):
    record = await _deferred_interaction(fake, http)
    fake.fail_next("PATCH", r"/messages/@original$", 429, None)
    status, body, headers = await _patch(http, _original_url(fake, record), "refused by the test")
    assert status == 429 and headers["Via"] == "1.1 google" and body["retry_after"] == 0.05
    assert (fake.requests[-1].injected, fake.requests[-1].rate_limited) == (True, False)
    assert fake.rate_limited == []
    status, _, _ = await _patch(http, _original_url(fake, record), "applied")
    assert status == 200 and fake.messages[record.original_message_id].content == "applied"


# ----------------------------------------------------------------------------- discord.py paces itself


async def test_discord_py_webhook_paces_itself_from_the_headers(fake, http, gateway, discord_api_base):
    # A shorter window keeps the test quick; 10 edits in a row still overrun a 5-request window
    # unless the client waits when X-RateLimit-Remaining reaches 0.
    fake.rate_limit_rules["webhook"] = RateLimitRule(limit=5, period=0.5)
    record = await _deferred_interaction(fake, http)
    webhook = discord.Webhook.partial(fake.application_id, record.token, session=http)

    for n in range(10):
        await webhook.edit_message(record.original_message_id, content=f"edit {n}")

    message = fake.messages[record.original_message_id]
    assert message.content == "edit 9" and len(message.edits) == 10
    edits = fake.requests_to("PATCH", rf"^/webhooks/\d+/{record.token}/messages/")
    # AsyncWebhookAdapter sleeps X-RateLimit-Reset-After when Remaining is 0, so the fake never
    # has to refuse: without that pacing the sixth edit would be answered 429.
    assert [r.status for r in edits] == [200] * 10
    assert fake.rate_limited == []


async def test_discord_py_http_client_paces_channel_edits_from_the_headers(fake, discord_api_base):
    fake.rate_limit_rules["channel_messages"] = RateLimitRule(limit=5, period=0.5)
    client = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await client.static_login("fake-token")
        with handle_message_parameters(content="progress 0") as params:
            sent = await client.send_message(CHANNEL_ID, params=params)
        for n in range(1, 11):
            with handle_message_parameters(content=f"progress {n}") as params:
                await client.edit_message(CHANNEL_ID, sent["id"], params=params)

        message = fake.messages[int(sent["id"])]
        assert message.content == "progress 10" and len(message.edits) == 10
        # Ratelimit.update reads X-RateLimit-Remaining/Reset-After and the bucket hash; the
        # exhausted bucket sleeps before the sixth request instead of provoking a 429.
        assert [r.status for r in fake.requests_to("PATCH", rf"^/channels/{CHANNEL_ID}/messages/")] == [200] * 10
        assert fake.rate_limited == []
    finally:
        await client.close()


async def test_discord_py_http_client_waits_out_a_global_429(fake, discord_api_base):
    # Two requests a second for the whole bot; the login uses one of them.
    fake.rate_limit_rules["global"] = RateLimitRule(limit=2, period=1.0)
    client = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await client.static_login("fake-token")
        # discord.py keeps these two routes in separate buckets, but they share Discord's global
        # one, which shows itself only in a 429 ("global": true). Sent together, one of them
        # meets it: discord.py holds every request until retry_after has passed, then retries.
        channel, me = await asyncio.gather(
            client.get_channel(CHANNEL_ID), client.request(discord.http.Route("GET", "/users/@me"))
        )
        assert channel["id"] == str(CHANNEL_ID) and me["id"] == str(fake.bot_user_id)
        assert [hit.bucket for hit in fake.rate_limited] == ["global"]
        assert sorted(r.status for r in fake.requests[1:]) == [200, 200, 429]
    finally:
        await client.close()
