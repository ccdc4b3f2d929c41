"""A third kind of job: 'edit' (wan2.5-image-to-image: edit one picture, or fuse two).

Only the CHECK on jobs.kind changes, to allow the new value. PostgreSQL replaces the constraint.
SQLite cannot alter a constraint; a wider CHECK changes nothing on disk (every stored row still
passes), so the table's recorded definition is rewritten in place, the procedure SQLite's ALTER
TABLE documentation gives for changing a CHECK ("making other kinds of table schema changes"),
instead of copying the whole table.
"""

from typing import Any

from yoyo import step

from bot.db.ddl import POSTGRESQL, dialect_of

__depends__ = {'0008_leases_and_the_shared_line'}

_BEFORE = "CHECK (kind IN ('image', 'video'))"
_AFTER = "CHECK (kind IN ('image', 'video', 'edit'))"


def _allow_edit_jobs(connection: Any) -> None:
    cursor = connection.cursor()
    if dialect_of(connection) == POSTGRESQL:
        cursor.execute("ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check")
        cursor.execute(f"ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check {_AFTER}")
        return
    cursor.execute("PRAGMA schema_version")
    (version,) = cursor.fetchone()
    cursor.execute("PRAGMA writable_schema = ON")
    cursor.execute("UPDATE sqlite_schema SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'jobs'",
                   (_BEFORE, _AFTER))
    changed = cursor.rowcount
    # A new schema version makes every connection read the new definition.
    cursor.execute(f"PRAGMA schema_version = {version + 1}")
    cursor.execute("PRAGMA writable_schema = OFF")
    if changed != 1:
        raise RuntimeError("the jobs table's kind check was not where 0001_init put it")


steps = [step(_allow_edit_jobs)]
