"""The tests' own PostgreSQL server (tests/postgres.py) against a real server: fresh databases
reachable by their URL, shared between connections, dropped afterwards; loopback only; and no
postgres process left behind, whether the test run ends, is interrupted or is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.postgres import SUPERUSER, PostgresServer

REPO = Path(__file__).resolve().parents[2]


async def test_a_fresh_database_is_empty_and_its_url_logs_in_with_the_password(postgres_url):
    parts = urlsplit(postgres_url)
    assert parts.scheme == "postgresql"
    assert parts.hostname == "127.0.0.1"
    assert parts.username == SUPERUSER and parts.password
    database = parts.path.lstrip("/")

    async with await connect(postgres_url) as connection:
        assert await value(connection, "SELECT current_database()") == database
        tables = await rows(connection, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables == []
        await connection.execute("CREATE TABLE jobs (id bigserial PRIMARY KEY, prompt text NOT NULL)")
        await connection.execute("INSERT INTO jobs (prompt) VALUES (%s)", ("a red fox in snow",))
        assert await value(connection, "SELECT prompt FROM jobs") == "a red fox in snow"

    # The password in the URL is checked, not ignored.
    wrong = postgres_url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await connect(wrong)


async def test_two_connections_see_each_others_committed_rows(postgres_url):
    async with await connect(postgres_url) as first, await connect(postgres_url) as second:
        await first.execute("CREATE TABLE credits (member bigint PRIMARY KEY, balance bigint NOT NULL)")

        async with first.transaction():
            await first.execute("INSERT INTO credits VALUES (5005, 100)")
            assert await value(second, "SELECT count(*) FROM credits") == 0  # not committed yet
        assert await value(second, "SELECT balance FROM credits WHERE member = 5005") == 100

        await second.execute("UPDATE credits SET balance = balance - 30 WHERE member = 5005")
        assert await value(first, "SELECT balance FROM credits WHERE member = 5005") == 70


async def _database_names(server: PostgresServer) -> set[str]:
    async with await connect(server.url()) as connection:
        return {row[0] for row in await rows(connection, "SELECT datname FROM pg_database")}


async def test_each_database_is_separate_and_dropped_afterwards(postgres_server):
    # The same context manager the postgres_url fixture uses, so that what happens after the
    # block (after the test, for the fixture) can be seen.
    with postgres_server.fresh_database() as first_url, postgres_server.fresh_database() as second_url:
        first_name = urlsplit(first_url).path.lstrip("/")
        second_name = urlsplit(second_url).path.lstrip("/")
        assert first_name != second_name
        first = await connect(first_url)
        second = await connect(second_url)
        await first.execute("CREATE TABLE only_here (x int)")
        assert await value(second, "SELECT to_regclass('only_here')") is None
        await second.close()
        # A connection still open at the end does not keep the database alive.
        assert {first_name, second_name} <= await _database_names(postgres_server)

    names = await _database_names(postgres_server)
    assert first_name not in names and second_name not in names
    # Nor is anything left of earlier tests' databases.
    assert {name for name in names if name.startswith("test_")} == set()
    await first.close()


def _listening_addresses(port: int) -> set[str]:
    """The local addresses the kernel has TCP sockets listening on `port`, from /proc/net."""
    listen_state = "0A"
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or fields[3] != listen_state:
                continue
            if width == 8:  # little-endian IPv4
                found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add(f"ipv6:{address}")
    return found


async def test_the_server_listens_on_loopback_only(postgres_server):
    assert _listening_addresses(postgres_server.port) == {"127.0.0.1"}
    async with await connect(postgres_server.url()) as connection:
        assert await value(connection, "SHOW listen_addresses") == "127.0.0.1"
        rules = await rows(
            connection, "SELECT type, address, netmask FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number")
    # The unix socket (in the server's private directory) and 127.0.0.1, nothing else.
    assert [tuple(rule) for rule in rules] == [
        ("local", None, None),
        ("host", "127.0.0.1", "255.255.255.255"),
    ]


# --- no postgres process outlives the test run --------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its exit status is left


def _server_processes(postmaster: int) -> set[int]:
    """The postmaster and its children (checkpointer, walwriter, backends...)."""
    pids = {postmaster}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            if parent == postmaster:
                pids.add(int(entry.name))
    return pids


def _wait_gone(pids: set[int], seconds: float = 15) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if _alive(pid)}
        if not alive:
            return alive
        time.sleep(0.05)
    return {pid for pid in pids if _alive(pid)}


def _read_server_line(process: subprocess.Popen[str]) -> tuple[int, Path]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("SERVER "):
            _, pid, root = line.split()
            return int(pid), Path(root)
    raise AssertionError(f"the child never started a server; exit code {process.wait()}")


def test_ctrl_c_during_a_test_run_stops_the_server_and_removes_its_directory(tmp_path):
    # A real pytest run that uses the fixtures, interrupted the way Ctrl-C interrupts it.
    test_file = tmp_path / "test_interrupted.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import time

            def test_waits(postgres_server, postgres_url):
                print("SERVER", postgres_server.pid, postgres_server.root, flush=True)
                time.sleep(60)
            """
        )
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-c", "pyproject.toml", "-p", "no:cacheprovider",
         "-p", "tests.conftest", str(test_file)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        postmaster, root = _read_server_line(child)
        processes = _server_processes(postmaster)
        assert root.is_dir()
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert "KeyboardInterrupt" in output
    assert _wait_gone(processes) == set()
    assert not root.exists()


def test_a_killed_test_run_leaves_no_server_running(tmp_path):
    # kill -9 gives the test process no chance to clean up: the kernel's parent-death signal
    # stops the server.
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import time
            from tests.postgres import start_server
            server = start_server()
            print("SERVER", server.pid, server.root, flush=True)
            time.sleep(60)
            """
        )],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    root = None
    try:
        postmaster, root = _read_server_line(child)
        processes = _server_processes(postmaster)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert _wait_gone(processes) == set()
    finally:
        child.kill()
        if root is not None:
            # The killed process could not delete it: a leftover directory is the one thing
            # kill -9 leaves behind.
            shutil.rmtree(root, ignore_errors=True)


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def rows(connection: psycopg.AsyncConnection, sql: str) -> list[tuple]:
    return await (await connection.execute(sql)).fetchall()  # type: ignore[arg-type]  # a literal


async def value(connection: psycopg.AsyncConnection, sql: str) -> object:
    row = await (await connection.execute(sql)).fetchone()  # type: ignore[arg-type]  # a literal
    return row[0] if row else None
