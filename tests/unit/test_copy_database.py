"""`python -m bot copy-database`: a SQLite database the bot wrote moves into an empty PostgreSQL
database whole (balances, jobs, settings, every row), the bot carries on there with new ids, a
second copy or a broken one changes nothing, and no output shows the password."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from bot.blocked_terms import BlockedTerms
from bot.channel_defaults import ChannelDefaultsStore
from bot.clock import ScaledClock
from bot.credits import CreditLedger
from bot.db import Database, apply_migrations
from bot.jobs.store import JobKind, JobStore
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from bot.units import to_milli

REPO = Path(__file__).resolve().parents[2]

GUILD, OTHER_GUILD = 1001, 1002
ALICE, BOB, CAROL = 42, 43, 44
ARTISTS = 501
MOD = 9
CHANNEL = 5
# More jobs than one batch of the copy (1000 rows), so batches follow one another.
BULK_JOBS = 2100


@pytest.fixture
def clock():
    return ScaledClock(speed=1, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


class Bot:
    """The bot's stores on one database, as the bot builds them."""

    def __init__(self, db: Database, clock: ScaledClock) -> None:
        self.db = db
        self.quotas = QuotaStore(db, clock, QuotaDefaults(
            to_milli(40), Period.DAY, max_concurrent_jobs=2,
            member_ceiling_per_day=to_milli(200), server_ceiling_per_day=to_milli(1000)))
        self.ledger = CreditLedger(db, clock, self.quotas, bot_daily_budget=to_milli(2000))
        self.jobs = JobStore(db, clock)
        self.terms = BlockedTerms(db, clock)
        self.channel_defaults = ChannelDefaultsStore(db, clock)

    async def new_job(self, user: int, *, guild: int = GUILD, kind: JobKind = JobKind.IMAGE,
                      cost: float | None = 4, parent: int | None = None) -> int:
        async with self.db.transaction() as tx:
            job = await self.jobs.create(tx, kind=kind, guild_id=guild, channel_id=CHANNEL, user_id=user,
                                         interaction_id=7000 + user, request={"prompt": f"a cat for {user}"},
                                         locale="zh-CN", parent_job_id=parent)
            if cost is not None:
                await self.ledger.reserve(tx, guild_id=guild, user_id=user, job_id=job, amount=to_milli(cost))
        return job

    async def submit(self, job: int, *, callback_token: str | None = None) -> None:
        """Take the job out of the line (claimed by this process), as the runner does."""
        async with self.db.transaction() as tx:
            assert await self.jobs.claim_queued(tx, job, callback_token=callback_token) is not None


async def build_sqlite_database(path: Path, clock: ScaledClock) -> dict[str, int]:
    """A SQLite database written by the bot's own code: settings, grants, jobs in every kind of
    state with their credits, blocked terms, channel defaults. Returns the jobs' ids by name."""
    db = await Database.open(path)
    bot = Bot(db, clock)
    try:
        await bot.quotas.set_default(GUILD, MOD, to_milli(30), max_jobs=3)
        await bot.quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(50))
        await bot.quotas.set_member_allowance(GUILD, MOD, BOB, to_milli(12.5))
        await bot.quotas.block(GUILD, MOD, CAROL, "spamming the channel")
        await bot.quotas.set_budget(OTHER_GUILD, MOD, to_milli(500))
        await bot.quotas.set_moderator_role(GUILD, MOD, 777)
        await bot.quotas.set_log_channel(GUILD, MOD, 888)
        await bot.ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(5), reason="contest", actor_id=MOD)

        done = await bot.new_job(ALICE)
        await bot.jobs.set_message(done, 9001)
        await bot.submit(done)
        await bot.jobs.mark_running(done, task_id="task-done", estimated_seconds=12.5)
        await bot.jobs.mark_downloading(done, result_urls=["https://files.example/1.png"])
        await bot.jobs.mark_delivering(done)
        async with db.transaction() as tx:
            await bot.ledger.settle(tx, job_id=done, amount=to_milli(2))
            await bot.jobs.mark_done(tx, done)
        await bot.jobs.set_delivered(done, [{"url": "https://cdn.example/1.png", "filename": "1.png",
                                             "content_type": "image/png", "size": 1234}])
        await bot.jobs.mark_removed(done, ALICE)

        failed = await bot.new_job(BOB, cost=2)
        async with db.transaction() as tx:
            await bot.ledger.refund(tx, job_id=failed, reason="content_policy_violation")
            await bot.jobs.mark_failed(tx, failed, code="content_policy_violation", message="refused")

        running = await bot.new_job(ALICE, kind=JobKind.VIDEO, cost=25.5, parent=done)
        await bot.submit(running, callback_token="callback-secret")
        await bot.jobs.mark_running(running, task_id="task-running", estimated_seconds=None)
        queued = await bot.new_job(ALICE, cost=2)

        await bot.terms.add(GUILD, "forbidden word", is_regex=False, added_by=MOD)
        await bot.terms.add(GUILD, r"bad\w+", is_regex=True, added_by=MOD)
        await bot.channel_defaults.set(None, GUILD, CHANNEL, MOD, size="1024x1024", n=2, prompt_extend=False,
                                       duration=10, quality="1080p")

        # Tables no store of this version writes yet (other processes' leases, the shared line's
        # turns, the shared state): written as those processes would.
        async with db.transaction() as tx:
            await tx.execute("UPDATE jobs SET lease_owner = 'host-1', lease_token = 'lease-1', "
                             "lease_expires_at = 1795000000000, acknowledged_at = 1795000000001 WHERE id = :id",
                             {"id": running})
            await tx.execute("INSERT INTO line_turns (guild_id, user_id, served) VALUES (:g, 0, 3), (:g, :u, 2)",
                             {"g": GUILD, "u": ALICE})
            await tx.execute("INSERT INTO bot_state (key, value, updated_at) VALUES ('paused', NULL, 1), "
                             "('identify.0', '1795000000000', 2)")
            # Many jobs, in one transaction (without credits: quick), past one batch of the copy.
            for _ in range(BULK_JOBS):
                await bot.jobs.create(tx, kind=JobKind.IMAGE, guild_id=OTHER_GUILD, channel_id=CHANNEL,
                                      user_id=BOB, interaction_id=None, request={"prompt": "ünïcode ✓ 100%"})
    finally:
        bot.terms.close()
        await db.close()
    return {"done": done, "failed": failed, "running": running, "queued": queued}


async def what_the_bot_reads(db: Database, clock: ScaledClock, job_ids: dict[str, int]) -> dict[str, object]:
    """Everything members and moderators see, read through the bot's own code."""
    bot = Bot(db, clock)
    try:
        return {
            "balances": [await bot.ledger.balance(guild, user, roles)
                         for guild in (GUILD, OTHER_GUILD) for user in (ALICE, BOB, CAROL)
                         for roles in ((), (ARTISTS,))],
            "jobs": {name: await bot.jobs.get(job) for name, job in job_ids.items()},
            "unfinished": await bot.jobs.unfinished(),
            "recent": await bot.jobs.recent_for_member(OTHER_GUILD, BOB, limit=25),
            "overview": [await bot.quotas.overview(guild) for guild in (GUILD, OTHER_GUILD)],
            "ledger": [await bot.ledger.ledger_rows(guild) for guild in (GUILD, OTHER_GUILD)],
            "usage": [await bot.ledger.guild_usage(guild) for guild in (GUILD, OTHER_GUILD)],
            "today": await bot.ledger.bot_totals_today(),
            "costs": await bot.ledger.job_costs(job_ids.values()),
            "terms": await bot.terms.list(GUILD),
            "channel_defaults": await bot.channel_defaults.get(GUILD, CHANNEL),
            "log_channels": await bot.quotas.log_channels(),
        }
    finally:
        bot.terms.close()


async def every_row(db: Database) -> dict[str, tuple[list[str], list[tuple[object, ...]]]]:
    """Every table of the bot (not yoyo's), each with its columns and all its rows, sorted."""
    if db.dialect == "sqlite":
        names = [row[0] for row in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [row[0] for row in await db.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
    tables = {}
    for name in sorted(n for n in names if not n.startswith(("_yoyo", "yoyo_", "sqlite_"))):
        rows = await db.fetchall(f"SELECT * FROM {name}")
        columns = await db.fetchall(
            "SELECT name FROM pragma_table_info(:t) ORDER BY cid" if db.dialect == "sqlite" else
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :t ORDER BY ordinal_position", {"t": name})
        tables[name] = ([column[0] for column in columns], sorted((tuple(row) for row in rows), key=repr))
    return tables


def run_copy(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as an operator runs it: no token, no EvoLink key in its environment."""
    clean = {key: value for key, value in os.environ.items()
             if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY", "DATABASE_URL", "DATABASE_PATH")}
    return subprocess.run([sys.executable, "-m", "bot", "copy-database", *args], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=120)


def assert_no_password(result: subprocess.CompletedProcess[str], password: str) -> None:
    assert password not in result.stdout + result.stderr


async def test_the_copy_moves_everything_and_the_bot_carries_on_in_postgresql(
        tmp_path, clock, postgres_server, postgres_url):
    sqlite_path = tmp_path / "old" / "bot.db"
    job_ids = await build_sqlite_database(sqlite_path, clock)
    source = await Database.open(sqlite_path)
    before, rows_before = await what_the_bot_reads(source, clock, job_ids), await every_row(source)
    await source.close()

    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url}, "--sqlite", str(sqlite_path))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_no_password(result, postgres_server.password)
    lines = result.stdout.splitlines()
    database_name = postgres_url.rsplit("/", 1)[1]
    target = f"PostgreSQL 127.0.0.1:{postgres_server.port}/{database_name}"
    assert lines[0] == f"Copying {sqlite_path} into {target}"
    # One line per table, with its rows; referenced tables before those that reference them.
    per_table = dict(line.split(": ") for line in lines[1:-1])
    assert per_table == {name: f"{len(rows)} row" + ("" if len(rows) == 1 else "s")
                         for name, (_, rows) in rows_before.items()}
    assert per_table["jobs"] == f"{BULK_JOBS + 4} rows"
    assert list(per_table).index("jobs") < list(per_table).index("ledger")
    assert list(per_table).index("jobs") < list(per_table).index("credit_holds")
    total = sum(len(rows) for _, rows in rows_before.values())
    assert lines[-1] == (f"Done: {total} rows in {len(rows_before)} tables copied from {sqlite_path} into "
                         f"{target}. Start the bot with DATABASE_URL set.")

    copied = await Database.open(postgres_url)
    try:
        # What members and moderators see is the same, and so is every row of every table.
        assert await what_the_bot_reads(copied, clock, job_ids) == before
        assert await every_row(copied) == rows_before
        assert before["balances"][0].granted == to_milli(5)  # the comparison compared something
        assert before["jobs"]["running"].callback_token == "callback-secret"

        # The bot carries on: new rows get ids above every copied one.
        bot = Bot(copied, clock)
        try:
            highest_job = max(row[0] for row in rows_before["jobs"][1])
            new_job = await bot.new_job(BOB, guild=GUILD, cost=2)
            assert new_job == highest_job + 1
            assert (await bot.jobs.get(new_job)).request == {"prompt": "a cat for 43"}
            await bot.ledger.grant(guild_id=GUILD, user_id=BOB, amount=to_milli(1), reason="thanks", actor_id=MOD)
            term = await bot.terms.add(GUILD, "another word", is_regex=False, added_by=MOD)
            assert term.id == max(row[0] for row in rows_before["blocked_terms"][1]) + 1
        finally:
            bot.terms.close()
        for table in ("ledger", "audit_log"):
            ids = [row[0] for row in await copied.fetchall(f"SELECT id FROM {table} ORDER BY id")]
            assert len(ids) == len(set(ids)) > len(rows_before[table][1])
            assert min(ids[len(rows_before[table][1]):]) > max(row[0] for row in rows_before[table][1])
        after_first_copy = await every_row(copied)
    finally:
        await copied.close()

    # A second copy into the now-used database is refused and changes nothing.
    again = run_copy(tmp_path, {"DATABASE_URL": postgres_url}, "--sqlite", str(sqlite_path))
    assert again.returncode == 1
    assert_no_password(again, postgres_server.password)
    refusal = again.stderr.strip().splitlines()
    assert len(refusal) == 1
    assert re.fullmatch(r"error: PostgreSQL already holds the bot's data \((\w+): (\d+) rows?\): the copy only "
                        r"goes into an empty database, never into one in use", refusal[0])
    table, count = re.findall(r"\((\w+): (\d+) rows?\)", refusal[0])[0]
    assert int(count) == len(after_first_copy[table][1]) > 0
    copied = await Database.open(postgres_url)
    try:
        assert await every_row(copied) == after_first_copy
    finally:
        await copied.close()


async def test_settings_come_from_a_dotenv_file_and_need_no_token(tmp_path, clock, postgres_server, postgres_url):
    sqlite_path = tmp_path / "data" / "bot.db"
    job_ids = await build_sqlite_database(sqlite_path, clock)
    # The .env an operator already has: DATABASE_PATH (here the default) and now DATABASE_URL.
    (tmp_path / ".env").write_text(f"DATABASE_URL={postgres_url}\n")

    result = run_copy(tmp_path, {})

    assert result.returncode == 0, result.stderr
    assert "DISCORD_TOKEN" not in result.stdout + result.stderr
    assert_no_password(result, postgres_server.password)
    assert result.stdout.splitlines()[0].startswith("Copying data/bot.db into PostgreSQL 127.0.0.1:")
    copied = await Database.open(postgres_url)
    try:
        job = await JobStore(copied, clock).get(job_ids["done"])
        assert (job.state, job.task_id, job.locale) == ("done", "task-done", "zh-CN")
    finally:
        await copied.close()


# Rows the bot never writes, but a hand-edited or damaged file might hold, in the ledger (copied
# after the jobs): each stops the copy midway, named, where PostgreSQL would otherwise refuse the
# row or, worse, quietly store it changed (a fraction rounded, a blob as its hex escape).
BROKEN_LEDGER_ROWS = [
    pytest.param("amount = 'lots'", "ledger.amount holds the text 'lots' in the row with id {id}, where PostgreSQL "
                 "takes whole numbers only: correct that row in SQLite, then copy again", id="text-in-a-number"),
    pytest.param("amount = 2.5", "ledger.amount holds the number 2.5 in the row with id {id}, where PostgreSQL "
                 "takes whole numbers only: correct that row in SQLite, then copy again", id="fraction-in-a-number"),
    pytest.param("reason = x'00ff10'", "ledger.reason holds a blob of 3 bytes in the row with id {id}, where "
                 "PostgreSQL takes text only: correct that row in SQLite, then copy again", id="blob-in-text"),
    pytest.param("job_id = 999999", 'copying ledger failed, so nothing was copied: insert or update on table '
                 '"ledger" violates foreign key constraint "ledger_job_id_fkey"', id="a-job-that-is-not-there"),
]


@pytest.mark.parametrize(("change", "reason"), BROKEN_LEDGER_ROWS)
async def test_a_failure_midway_leaves_postgresql_empty(tmp_path, clock, postgres_server, postgres_url,
                                                        change, reason):
    sqlite_path = tmp_path / "bot.db"
    await build_sqlite_database(sqlite_path, clock)
    with contextlib.closing(sqlite3.connect(sqlite_path)) as broken, broken:
        [last_id] = broken.execute("SELECT MAX(id) FROM ledger").fetchone()
        broken.execute(f"UPDATE ledger SET {change} WHERE id = ?", (last_id,))  # foreign_keys is off here

    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url}, "--sqlite", str(sqlite_path))

    assert result.returncode == 1
    assert_no_password(result, postgres_server.password)
    copied = result.stdout.splitlines()
    assert f"jobs: {BULK_JOBS + 4} rows" in copied  # the jobs were copied before the ledger failed
    assert not [line for line in copied if line.startswith(("ledger:", "Done:"))]
    assert result.stderr.strip().splitlines() == [f"error: {reason.format(id=last_id)}"]
    target = await Database.open(postgres_url)
    try:
        assert {name: rows for name, (_, rows) in (await every_row(target)).items() if rows} == {}
    finally:
        await target.close()


async def test_postgresql_migrated_by_a_newer_bot_is_refused(tmp_path, clock, postgres_server, postgres_url):
    sqlite_path = tmp_path / "bot.db"
    await build_sqlite_database(sqlite_path, clock)
    # A newer bot ran on the PostgreSQL database once (its data migrations ran on empty tables, so
    # a copy of older data would miss them).
    apply_migrations(postgres_url)
    with psycopg.connect(postgres_url) as newer:
        newer.execute("INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
                      "VALUES ('f00d', '0099_from_a_newer_bot', now())")

    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url}, "--sqlite", str(sqlite_path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: SQLite and PostgreSQL were migrated differently (a newer bot applied 0099_from_a_newer_bot): run "
        "this command with the newest bot version that ran on either database"]
    target = await Database.open(postgres_url)
    try:
        assert {name: rows for name, (_, rows) in (await every_row(target)).items() if rows} == {}
    finally:
        await target.close()


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "{path} is not the bot's database (it has no jobs table): set DATABASE_PATH, or pass --sqlite PATH, "
          "to the bot's database file"),
    (b"DISCORD_TOKEN=not-a-database\n" * 100, "{path} cannot be read: file is not a database"),
], ids=["an-empty-file", "not-sqlite"])
def test_a_file_that_is_not_the_bots_database_is_refused_and_left_alone(tmp_path, postgres_server, postgres_url,
                                                                       content, reason):
    not_the_bots = tmp_path / "notes.db"
    not_the_bots.write_bytes(content)

    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url}, "--sqlite", str(not_the_bots))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {reason.format(path=not_the_bots)}"]
    assert not_the_bots.read_bytes() == content  # not migrated: nothing was written into it
    with psycopg.connect(postgres_url) as target:
        assert target.execute("SELECT COUNT(*) FROM information_schema.tables "
                              "WHERE table_schema = current_schema()").fetchone() == (0,)


async def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path, postgres_server, postgres_url):
    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url})  # DATABASE_PATH: ./data/bot.db

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: there is no SQLite database at data/bot.db: set DATABASE_PATH, or pass --sqlite PATH, to the "
        "bot's database file"]
    assert not (tmp_path / "data").exists()
    assert_no_password(result, postgres_server.password)

    elsewhere = tmp_path / "nowhere" / "bot.db"
    result = run_copy(tmp_path, {"DATABASE_URL": postgres_url, "DATABASE_PATH": str(elsewhere)})
    assert result.returncode == 1
    assert f"there is no SQLite database at {elsewhere}:" in result.stderr
    assert not elsewhere.parent.exists()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "error: DATABASE_URL is not set: expected postgresql://user:password@host:port/name."),
    ({"DATABASE_URL": ""}, "error: DATABASE_URL is not set: expected postgresql://user:password@host:port/name."),
    ({"DATABASE_URL": "mysql://root:hunter2@localhost/bot"},
     "error: DATABASE_URL is malformed: expected postgresql://user:password@host:port/name."),
])
def test_database_url_missing_or_malformed_is_one_line_exit_2(tmp_path, env, expected):
    (tmp_path / "bot.db").touch()
    result = run_copy(tmp_path, env, "--sqlite", str(tmp_path / "bot.db"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [expected]
    assert "hunter2" not in result.stderr
    assert (tmp_path / "bot.db").stat().st_size == 0  # not migrated: nothing was done


async def test_an_unreachable_postgresql_is_one_line_without_the_password(tmp_path, clock):
    sqlite_path = tmp_path / "bot.db"
    await build_sqlite_database(sqlite_path, clock)
    with unused_port() as port:
        url = f"postgresql://wan:s3cret-pa55@127.0.0.1:{port}/wanbot"
        result = run_copy(tmp_path, {"DATABASE_URL": url}, "--sqlite", str(sqlite_path))
    assert result.returncode == 1
    assert "s3cret-pa55" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"Copying {sqlite_path} into PostgreSQL 127.0.0.1:{port}/wanbot"]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: PostgreSQL cannot be reached or migrated: connection failed:")


@contextlib.contextmanager
def unused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that nothing listens on (bound but not listening: nothing else takes it)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
