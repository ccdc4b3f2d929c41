"""Copying the bot's SQLite database into an empty PostgreSQL database (`python -m bot
copy-database`): how an operator moves from one process to several without losing a job, a
credit or a setting.

Both databases are first migrated to the latest schema (the same numbered migrations), so they
have the same tables and columns. Then every table of the bot is copied, column by column, in
batches, inside ONE PostgreSQL transaction: if anything fails, PostgreSQL is left as empty as it
was. The copy never merges: a target that already holds any of the bot's rows is refused.

SQLite keeps whatever value it is given in any column; PostgreSQL would quietly round a fraction
stored in a whole-number column and store a blob in a text column as its hex escape. So every
value is checked against its PostgreSQL column's kind first, and a row that does not fit stops
the copy, named, rather than arriving changed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bot.db.engine import WRITE_LOCK_KEY, apply_migrations

# Rows per INSERT batch: few round trips, and memory stays flat however large the database is
# (rows are streamed from SQLite a batch at a time, never loaded all at once).
BATCH_ROWS = 1000

# yoyo's bookkeeping (each database keeps its own) and SQLite's internal tables are not the bot's.
_NOT_THE_BOTS = ("_yoyo", "yoyo_", "sqlite_")

# What SQLite's typeof() may answer for a value each PostgreSQL column takes unchanged (NULL fits
# every column: NOT NULL is PostgreSQL's to check). A column of another kind is not checked.
_FITS: dict[str, tuple[tuple[str, ...], str]] = {
    "bigint": (("integer",), "whole numbers"),
    "integer": (("integer",), "whole numbers"),
    "smallint": (("integer",), "whole numbers"),
    "double precision": (("integer", "real"), "numbers"),
    "text": (("text",), "text"),
    "bytea": (("blob",), "bytes"),
}


class CopyRefused(Exception):
    """The copy was not made (or was rolled back whole); the message is one line, fit to print."""


@dataclass(frozen=True)
class Table:
    """One of the bot's tables, as the SQLite schema describes it."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # its primary key: rows are copied in this order
    references: frozenset[str]  # the other tables its foreign keys point to


def copy_sqlite_to_postgresql(sqlite_path: Path, url: str, *, batch_rows: int = BATCH_ROWS,
                              on_table: Callable[[str, int], None] = lambda name, rows: None) -> dict[str, int]:
    """Copy every table of the SQLite database at `sqlite_path` into the PostgreSQL database at
    `url`, which must hold none of the bot's rows. Calls `on_table(name, rows)` as each table is
    copied and checked; returns the row count of every table, in the order they were copied.
    Raises CopyRefused (one line) if the copy cannot be made; nothing is then left in PostgreSQL."""
    # Never create an empty database where the operator expected theirs (Database.open would).
    if not sqlite_path.is_file():
        raise CopyRefused(f"there is no SQLite database at {sqlite_path}: set DATABASE_PATH, or pass "
                          "--sqlite PATH, to the bot's database file")
    # Nor migrate (that is, write into) a file that is not the bot's.
    _refuse_unless_the_bots(sqlite_path)
    with _failing_as(f"{sqlite_path} cannot be migrated"):
        apply_migrations(sqlite_path)
    with _failing_as("PostgreSQL cannot be reached or migrated"):
        apply_migrations(url)

    # mode=rw: open the file that is there, never create one.
    with _failing_as(f"{sqlite_path} cannot be read"):
        source = sqlite3.connect(f"{sqlite_path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    try:
        # One read transaction: every table is read from the same moment of the database.
        source.execute("BEGIN")
        with _failing_as(f"{sqlite_path} cannot be read"):
            tables = _in_copy_order(_bot_tables(source))
            migrated = _migrations(source)
        with _failing_as("PostgreSQL refused the connection"):
            target = psycopg.connect(url)
        with target, _failing_as("the copy failed, so nothing was copied"), target.transaction():
            # The bot's own write lock: no bot process can write while the copy checks and fills.
            target.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            kinds = _refuse_unless_ready(target, tables, migrated)
            counts: dict[str, int] = {}
            for table in tables:
                with _failing_as(f"copying {table.name} failed, so nothing was copied"):
                    _refuse_misfits(source, table, kinds[table.name])
                    counts[table.name] = _copy_table(source, target, table, batch_rows)
                on_table(table.name, counts[table.name])
            _restart_identities(target, counts)
        return counts
    finally:
        source.close()


@contextlib.contextmanager
def _failing_as(what: str) -> Iterator[None]:
    """A driver's error as CopyRefused: `what` went wrong, and the error's first line."""
    try:
        yield
    except (sqlite3.Error, psycopg.Error) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CopyRefused(f"{what}: {reason}") from None


def _refuse_unless_the_bots(sqlite_path: Path) -> None:
    """The file is a SQLite database with the bot's jobs (its first migration made them)."""
    with _failing_as(f"{sqlite_path} cannot be read"):
        probe = sqlite3.connect(f"{sqlite_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = probe.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
        finally:
            probe.close()
    if found is None:
        raise CopyRefused(f"{sqlite_path} is not the bot's database (it has no jobs table): set DATABASE_PATH, "
                          "or pass --sqlite PATH, to the bot's database file")


def _migrations(connection: Any) -> set[str]:
    """The migrations yoyo recorded as applied to this database (either engine)."""
    return {row[0] for row in connection.execute("SELECT migration_id FROM _yoyo_migration")}


def _bot_tables(source: sqlite3.Connection) -> list[Table]:
    """Every table of the bot in the SQLite schema, with its columns, key and references."""
    names = [row[0] for row in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    tables = []
    for name in names:
        if name.startswith(_NOT_THE_BOTS):
            continue
        # table_info rows: (cid, name, type, notnull, default, position in the primary key or 0).
        info = source.execute(f"PRAGMA table_info({_sqlite_name(name)})").fetchall()
        key = tuple(column[1] for column in sorted(info, key=lambda column: column[5]) if column[5])
        # foreign_key_list rows: (id, seq, referenced table, ...).
        references = {row[2] for row in source.execute(f"PRAGMA foreign_key_list({_sqlite_name(name)})")}
        tables.append(Table(name, tuple(column[1] for column in info), key, frozenset(references - {name})))
    return tables


def _in_copy_order(tables: list[Table]) -> list[Table]:
    """Referenced tables before the tables that reference them (PostgreSQL checks each foreign key
    as the row is inserted). A table referring to itself (a job's parent job) is copied in key
    order, so a parent, made first, comes first."""
    by_name = {table.name: table for table in tables}
    order = TopologicalSorter({table.name: table.references & by_name.keys() for table in tables})
    return [by_name[name] for name in order.static_order()]


def _refuse_unless_ready(target: psycopg.Connection[Any], tables: list[Table],
                         sqlite_migrations: set[str]) -> dict[str, dict[str, str]]:
    """Both databases had the same migrations (this bot applied all it knows to both, so any
    other was applied by a newer bot: its data changes would be missed), the target has every
    table with the same columns, and none holds a row. Returns each table's PostgreSQL column
    types by column."""
    postgresql_migrations = _migrations(target)
    if postgresql_migrations != sqlite_migrations:
        newer = ", ".join(sorted(postgresql_migrations ^ sqlite_migrations))
        raise CopyRefused(f"SQLite and PostgreSQL were migrated differently (a newer bot applied {newer}): run "
                          "this command with the newest bot version that ran on either database")
    kinds: dict[str, dict[str, str]] = {}
    for table_name, column_name, data_type in target.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"):
        kinds.setdefault(table_name, {})[column_name] = data_type
    for table in tables:
        if set(kinds.get(table.name, ())) != set(table.columns):
            raise CopyRefused(f"table {table.name} does not have the same columns in SQLite and in PostgreSQL: "
                              "run this command with the bot version that last ran on the SQLite database")
    for table in tables:
        rows = _count(target, table.name)
        if rows:
            raise CopyRefused(f"PostgreSQL already holds the bot's data ({table.name}: {rows_text(rows)}): the copy "
                              "only goes into an empty database, never into one in use")
    return kinds


def _refuse_misfits(source: sqlite3.Connection, table: Table, kinds: dict[str, str]) -> None:
    """Every value of the table fits its PostgreSQL column as it is (one pass over the table,
    inside SQLite); else the first row that does not, named by its key, stops the copy."""
    checked = [(column, _FITS[kinds[column]]) for column in table.columns if kinds[column] in _FITS]
    if not checked:
        return
    misfit = " OR ".join(
        f"typeof({_sqlite_name(column)}) NOT IN ({', '.join(repr(kind) for kind in ('null', *fits))})"
        for column, (fits, _) in checked)
    key = table.key or ("rowid",)
    row = source.execute(
        f"SELECT {', '.join(_sqlite_name(column) for column in (*key, *(column for column, _ in checked)))} "
        f"FROM {_sqlite_name(table.name)} WHERE {misfit} ORDER BY {', '.join(map(_sqlite_name, key))} LIMIT 1",
    ).fetchone()
    if row is None:
        return
    where = ", ".join(f"{name} {value}" for name, value in zip(key, row, strict=False))
    for (column, (fits, takes)), value in zip(checked, row[len(key):], strict=True):
        if value is None or _sqlite_kind(value) in fits:
            continue
        raise CopyRefused(f"{table.name}.{column} holds {_described(value)} in the row with {where}, where "
                          f"PostgreSQL takes {takes} only: correct that row in SQLite, then copy again")


def _sqlite_kind(value: object) -> str:
    """What SQLite's typeof() answers for a value sqlite3 read."""
    return {int: "integer", float: "real", str: "text", bytes: "blob"}[type(value)]


def _described(value: object) -> str:
    """A misfit value, shown so the operator can find it (a blob's bytes never are)."""
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{'the text' if isinstance(value, str) else 'the number'} {shown}"


def _copy_table(source: sqlite3.Connection, target: psycopg.Connection[Any], table: Table, batch_rows: int) -> int:
    """Copy one table a batch at a time; returns its row count, checked on both sides."""
    columns = ", ".join(_sqlite_name(column) for column in table.columns)
    order = ", ".join(_sqlite_name(column) for column in table.key) or "rowid"
    rows = source.execute(f"SELECT {columns} FROM {_sqlite_name(table.name)} ORDER BY {order}")
    insert = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values})").format(
        table=sql.Identifier(table.name),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in table.columns),
        values=sql.SQL(", ").join(sql.Placeholder() * len(table.columns)),
    )
    copied = 0
    with target.cursor() as cursor:
        while batch := rows.fetchmany(batch_rows):
            cursor.executemany(insert, batch)
            copied += len(batch)
    expected = source.execute(f"SELECT COUNT(*) FROM {_sqlite_name(table.name)}").fetchone()[0]
    landed = _count(target, table.name)
    if not copied == landed == expected:
        raise CopyRefused(f"table {table.name}: {expected} rows in SQLite, but {copied} read and {landed} "
                          "in PostgreSQL")
    return copied


def _restart_identities(target: psycopg.Connection[Any], counts: dict[str, int]) -> None:
    """Row ids are copied as they are, which leaves PostgreSQL's counters at 1: move each past
    the highest id copied, so the next job or ledger row the bot writes gets a new id."""
    identities = target.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall()
    for table_name, column_name in identities:
        if table_name not in counts:
            continue
        target.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({column}), 0) + 1, false) "
                    "FROM {table}").format(column=sql.Identifier(column_name), table=sql.Identifier(table_name)),
            (sql.Identifier(table_name).as_string(target), column_name))


def rows_text(rows: int) -> str:
    """'1 row', '1234 rows'."""
    return f"{rows} row" if rows == 1 else f"{rows} rows"


def _count(target: psycopg.Connection[Any], table_name: str) -> int:
    row = target.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table_name))).fetchone()
    assert row is not None  # an aggregate always answers one row
    return int(row[0])


def _sqlite_name(name: str) -> str:
    """A table or column name quoted for SQLite (names come from the schema, not from input)."""
    return '"' + name.replace('"', '""') + '"'
