"""Command line: `python -m bot [run | sync [--guild ID] | demo | check | healthcheck |
copy-database [--sqlite PATH]]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import discord

from bot.app import WanBot, use_discord_api
from bot.clock import Clock
from bot.config import (
    ConfigError,
    Settings,
    load_copy_databases,
    load_settings,
    load_web_server_address,
    postgresql_secrets,
    postgresql_shown,
)
from bot.health import run_checks
from bot.logging_setup import configure_logging
from bot.web import WebServerUnavailable

log = logging.getLogger("bot")

EXIT_CONFIG = 2
EXIT_CHECK_FAILED = 1
EXIT_REFUSED = 1
# Docker's HEALTHCHECK kills the probe after 5 s; answer before that, with a verdict.
HEALTHCHECK_TIMEOUT_SECONDS = 4


def main(argv: list[str] | None = None, *, bot_class: type[WanBot] = WanBot) -> int:
    """`bot_class` lets the benchmark run its baseline variant of the bot with the same command line."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="Wan 2.5 generation bot for Discord")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the bot (the default)")
    sync = commands.add_parser("sync", help="register the slash commands with Discord, then exit")
    sync.add_argument("--guild", type=int, metavar="ID",
                      help="register in one server only (instant; global registration can take an hour)")
    commands.add_parser("demo", help="run the bot against a built-in fake EvoLink: only DISCORD_TOKEN is needed")
    commands.add_parser("check", help="verify the settings, both keys, the database and ffmpeg, then exit")
    commands.add_parser("healthcheck", help="ask the running bot's /healthz (on HTTP_PORT) whether it is "
                        "healthy: exit 0 if so, 1 if not (for Docker's HEALTHCHECK)")
    copy = commands.add_parser("copy-database", help="copy the SQLite database at DATABASE_PATH into the empty "
                               "PostgreSQL database at DATABASE_URL, then exit (stop the bot first)")
    copy.add_argument("--sqlite", type=Path, metavar="PATH",
                      help="the SQLite database to copy (default: DATABASE_PATH, ./data/bot.db)")
    args = parser.parse_args(argv)
    command = args.command or "run"
    if command == "healthcheck":
        # Before load_settings: the probe needs no token or key, only where the server listens.
        return probe_health()
    if command == "copy-database":
        # Neither: the copy needs the two databases only. DATABASE_URL is read from the
        # environment or .env, never from the command line, where `ps` would show its password.
        return copy_database(args.sqlite)

    overrides: dict[str, Any] = {}
    if command == "demo":
        overrides["evolink_api_key"] = "demo-key-not-secret"
    try:
        settings = load_settings(**overrides)
    except ConfigError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(
        settings.log_level,
        secrets=settings.secrets,
    )
    use_discord_api(settings.discord_api_base_url)

    if command == "check":
        results = asyncio.run(run_checks(settings))
        for result in results:
            print(result.line())
        return 0 if all(result.ok for result in results) else EXIT_CHECK_FAILED
    try:
        if command == "sync":
            asyncio.run(sync_commands(settings, args.guild))
        elif command == "demo":
            asyncio.run(run_demo(settings))
        else:
            asyncio.run(run_bot(settings, bot_class=bot_class))
    except discord.LoginFailure:
        print("error: DISCORD_TOKEN was refused by Discord: expected a valid bot token.", file=sys.stderr)
        return EXIT_CONFIG
    except WebServerUnavailable as problem:
        log.error("Not started: HTTP_PORT %d (HTTP_HOST %s) cannot be used: %s. Another program (or "
                  "another copy of the bot) may be listening there; set HTTP_PORT to a free port.",
                  problem.port, problem.host, problem.why)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        pass
    return 0


def probe_health() -> int:
    """`python -m bot healthcheck`: GET /healthz on this machine, print one line, 0 if healthy."""
    try:
        host, port = load_web_server_address()
    except ConfigError as problem:
        print(f"unhealthy: {problem}")
        return EXIT_CHECK_FAILED
    if port == 0:
        print("unhealthy: HTTP_PORT is 0 (any free port), so there is no known port to ask")
        return EXIT_CHECK_FAILED
    # A server listening on every interface is asked on loopback (asyncio binds "::" as IPv6 only).
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    # No proxy: an HTTP_PROXY set for the bot's outgoing calls must not intercept a local probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HEALTHCHECK_TIMEOUT_SECONDS) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as answer:
        status, body = answer.code, answer.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, not HTTP
        print(f"unhealthy: no answer from {url} ({type(exc).__name__}: {exc})")
        return EXIT_CHECK_FAILED
    print(f"{'healthy' if status == 200 else f'unhealthy (HTTP {status})'}: {_health_summary(body)}")
    return 0 if status == 200 else EXIT_CHECK_FAILED


def copy_database(sqlite_path: Path | None) -> int:
    """`python -m bot copy-database`: one line per table copied and a last line; 0 if copied."""
    from bot.db.copy import CopyRefused, copy_sqlite_to_postgresql, rows_text

    try:
        database_path, database_url = load_copy_databases()
    except ConfigError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    url = database_url.get_secret_value()
    source, target = sqlite_path or database_path, postgresql_shown(url)
    # Whatever a driver or a library says passes through the redactor: the password never shows.
    redactor = configure_logging("WARNING", secrets=postgresql_secrets(url))

    def say(line: str, *, file: Any = sys.stdout) -> None:
        print(redactor.redact(line), file=file, flush=True)

    def copied(table: str, rows: int) -> None:
        say(f"{table}: {rows_text(rows)}")

    say(f"Copying {source} into {target}")
    try:
        counts = copy_sqlite_to_postgresql(source, url, on_table=copied)
    except CopyRefused as refusal:
        say(f"error: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception:
        # Not foreseen: the traceback goes to the log, whose formatter redacts the password too.
        log.exception("The copy failed; PostgreSQL was left as it was")
        return EXIT_REFUSED
    say(f"Done: {rows_text(sum(counts.values()))} in {len(counts)} tables copied from {source} into {target}. "
        "Start the bot with DATABASE_URL set.")
    return 0


def _health_summary(body: bytes) -> str:
    try:
        health = json.loads(body)
        jobs = health["jobs"]
        paused = f", paused ({health['paused']})" if health.get("paused") else ""
        return (f"discord {health['discord']}{_shards_summary(health)}, database {health['database']}, "
                f"{jobs['queued']} queued, {jobs['in_flight']} in flight, {jobs['finishing']} finishing{paused}")
    except (ValueError, KeyError, TypeError):
        return "the answer was not the bot's health report"


def _shards_summary(health: dict[str, Any]) -> str:
    """This process's shards and any that are down, e.g. ` (shards 0-1 of 4; shard 1 not connected)`."""
    shards = health.get("shards")
    if not shards:
        return ""  # an older bot, or the shard count is not known yet
    ids = [shard["id"] for shard in shards]
    down = [shard["id"] for shard in shards if shard["state"] != "connected"]
    count = f" of {health['shard_count']}" if health.get("shard_count") else ""
    text = f"{_shard_ids(ids)}{count}"
    if down:
        text += f"; {_shard_ids(down)} not connected"
    return f" ({text})"


def _shard_ids(ids: list[int]) -> str:
    """`shard 3`, `shards 0-3,8`: runs of consecutive ids shortened, so 64 shards stay one word."""
    runs: list[list[int]] = []
    for shard_id in sorted(ids):
        if runs and shard_id == runs[-1][-1] + 1:
            runs[-1].append(shard_id)
        else:
            runs.append([shard_id])
    listed = ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)
    return f"shard{'s' if len(ids) > 1 else ''} {listed}"


async def run_bot(settings: Settings, clock: Clock | None = None, *,
                  bot_class: type[WanBot] = WanBot) -> None:
    bot = bot_class(settings, clock=clock)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stopping.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        stopper = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Stopping (signal received)")
        else:
            stopper.cancel()
            runner.result()  # re-raise what ended the bot (e.g. LoginFailure)
    # Leaving `async with` closed the bot, the jobs' watchers, the HTTP session and the database.


async def sync_commands(settings: Settings, guild_id: int | None) -> None:
    """Register the slash commands. Discord caps command creations per day, so this is an
    explicit step, never done on every start."""
    # No web server: the running bot already listens on HTTP_PORT, and a sync only needs login.
    bot = WanBot(settings, serving=False)
    async with bot:
        await bot.login(settings.discord_token.get_secret_value())
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
        where = f"server {guild_id}" if guild_id else "all servers (may take up to an hour to appear)"
        print(f"Registered {len(synced)} commands in {where}: "
              + ", ".join(f"/{command.name}" for command in synced))


async def run_demo(settings: Settings) -> None:
    """The real bot, with EvoLink replaced by the built-in fake server on this machine: try the
    commands with only a Discord token, without spending EvoLink credits."""
    from bot.evolink.fake import FakeEvoLink

    # The fake downloads members' pictures from Discord's media hosts, as EvoLink would: it checks
    # them by EvoLink's rules, and an edit comes back as the member's own picture, changed.
    fake = FakeEvoLink(image_seconds=12, image_estimate=12, video_seconds=30, video_estimate=30,
                       input_origins=settings.discord_media_base_urls)
    base_url = await fake.start("127.0.0.1", 0)
    log.info("Demo mode: EvoLink is a local fake at %s; results are generated test images", base_url)
    try:
        demo_settings = settings.model_copy(
            update={"evolink_base_url": base_url, "evolink_files_base_url": base_url}
        )
        await run_bot(demo_settings)
    finally:
        await fake.close()


if __name__ == "__main__":
    sys.exit(main())
