"""The store: SQLite or PostgreSQL behind one set of queries (engine.py), and the schema's
migrations written once for both (ddl.py, bot/migrations)."""

from bot.db.engine import (
    Database,
    DatabaseClosed,
    Params,
    PostgresDatabase,
    Row,
    Transaction,
    apply_migrations,
    is_postgresql_url,
)

__all__ = ["Database", "DatabaseClosed", "Params", "PostgresDatabase", "Row", "Transaction", "apply_migrations",
           "is_postgresql_url"]
