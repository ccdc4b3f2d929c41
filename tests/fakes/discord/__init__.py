"""A fake Discord (REST API + gateway websocket) for driving the real bot in tests.

This is a real aiohttp server on 127.0.0.1 that speaks Discord's wire format, so the
bot's own discord.py code runs unchanged: point it here with
``discord.http.Route.BASE = fake.api_base`` before ``login()``; ``GET /gateway/bot``
then hands out the fake's own websocket URL.

Everything the bot does is recorded (``requests``, ``messages``,
``interaction_responses``, ``commands``) so tests assert on what Discord would have
seen, and Discord's awkward rules that bite real bots are enforced: the 3 s window
for the first interaction response, 15 min interaction tokens, one response per
interaction, per-file upload limits, "Unknown Message" for deleted or ephemeral
messages edited with the bot token, nonce dedupe of channel sends, channel
permissions (``deny_permissions``) and users who refuse DMs (``refuse_dms``). Every request
body is checked against Discord's own OpenAPI description and the limits it leaves out
(``bodies.py``): a body that breaks them gets Discord's 400 / 50035
"Invalid Form Body" with its nested ``errors``, also kept in ``RecordedRequest.form_errors``.
Faults are injected with ``fail_next`` and ``hold`` (an answer withheld after its
effect was applied, as when the bot dies mid-request). ``FakeDiscord(rate_limits=True)``
also enforces Discord-like rate limits (``RATE_LIMIT_RULES``) with Discord's headers and
429 answers, counting every 429 it answers in ``rate_limited``.

Typical use::

    fake = FakeDiscord()
    await fake.start()
    discord.http.Route.BASE = fake.api_base
    task = asyncio.create_task(bot.start("fake-token"))
    await fake.wait_until_identified()
    iid = await fake.send_interaction(slash_command_payload(fake, name="ping"))
    await fake.wait_for(lambda f: f.interaction_responses[iid].acknowledged)
    ...
    await bot.close(); await fake.close()   # close the bot first, or it reconnects

Identifiers in requests/messages are ints; the wire format uses strings, as Discord does.

Where things are: ``server.py`` (``FakeDiscord``: settings and state, lifecycle, route table,
the recording middleware) puts together one route group per module: ``interactions.py``
(callbacks, followups, token message routes), ``rest.py`` (bot-token routes: channel messages,
channels, DMs, commands), ``messages.py`` (the message store, uploads, media URLs),
``gateway.py`` (the websocket, dispatch), ``faults.py`` and ``rate_limits.py``. The data they
share is in ``models.py``, ``ids.py`` and ``base.py``; the objects they answer with are built in
``payloads.py`` and ``wire.py``; the payloads tests send in ``interaction_payloads.py``.
"""

from tests.fakes.discord.faults import Hold
from tests.fakes.discord.ids import (
    DEFAULT_APPLICATION_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_OWNER_ID,
    DEFAULT_USER_ID,
    DISCORD_EPOCH_MS,
    new_snowflake,
)
from tests.fakes.discord.interaction_payloads import (
    component_payload,
    modal_submit_payload,
    slash_command_payload,
)
from tests.fakes.discord.messages import MiB
from tests.fakes.discord.models import (
    DEFAULT_BOT_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FakeChannel,
    FakeGuild,
    FakeMessage,
    FakeOverwrite,
    FakeRole,
    IdentifyRecord,
    InteractionRecord,
    RecordedFile,
    RecordedRequest,
    payload_text,
)
from tests.fakes.discord.payloads import user_payload
from tests.fakes.discord.rate_limits import (
    CHANNEL_MESSAGES_BUCKET,
    GLOBAL_BUCKET,
    RATE_LIMIT_RULES,
    WEBHOOK_BUCKET,
    RateLimitHit,
    RateLimitRule,
)
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.wire import API_PREFIX

__all__ = [
    "API_PREFIX",
    "CHANNEL_MESSAGES_BUCKET",
    "DEFAULT_APPLICATION_ID",
    "DEFAULT_CHANNEL_ID",
    "DEFAULT_GUILD_ID",
    "DEFAULT_OWNER_ID",
    "DEFAULT_USER_ID",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMessage",
    "FakeOverwrite",
    "FakeRole",
    "GLOBAL_BUCKET",
    "Hold",
    "IdentifyRecord",
    "InteractionRecord",
    "RATE_LIMIT_RULES",
    "RateLimitHit",
    "RateLimitRule",
    "RecordedFile",
    "RecordedRequest",
    "component_payload",
    "modal_submit_payload",
    "new_snowflake",
    "slash_command_payload",
    "user_payload",
    "WEBHOOK_BUCKET",
    # Public names of the old single module that its __all__ left out, importable from here as before.
    "DEFAULT_BOT_PERMISSIONS",
    "DISCORD_EPOCH_MS",
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "MiB",
    "payload_text",
]
