"""Bring an opened history database to this code's schema, with Alembic, on SQLite or PostgreSQL.

Called by the store when it opens a database (:meth:`rag_core.storage.connection.SqliteBase._open`):

1. Read the database's version: its Alembic revision (``alembic_version``), or for a SQLite file
   written before Alembic its ``PRAGMA user_version`` (1–6, the legacy ``MIGRATIONS`` list).
2. A version newer than :data:`~rag_core.storage.schema.SCHEMA_VERSION` is refused ("written by a
   newer version of this app"). The current version returns at once (no Alembic import).
3. Otherwise, under the database's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL the writers'
   advisory lock) — so two processes opening an old database never migrate it twice — re-read the
   version and run ``alembic upgrade head`` inside that one transaction: the baseline revision
   ``0006`` finishes the legacy list on an old SQLite file (or builds a new database), the later
   revisions follow. SQLite files then get ``PRAGMA user_version`` = the new version. Everything
   commits together or not at all.

``python -m rag_core.storage.migrate [path-or-url]`` prints the database's version and the head.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

from rag_core.errors import StorageError
from rag_core.storage.dialects import WRITE_LOCK, PostgresDialect, SqliteDialect
from rag_core.storage.schema import SCHEMA_VERSION

__all__ = ["MIGRATIONS_DIR", "current_version", "migrate"]

#: The Alembic script directory (env.py and versions/).
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _revision(conn: sa.Connection) -> str | None:
    """The Alembic revision stored in the database, or None when it has none (yet)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _user_version(conn: sa.Connection, dialect: SqliteDialect | PostgresDialect) -> int:
    if isinstance(dialect, SqliteDialect):
        return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    return 0


def _as_number(rev: str | None) -> int:
    if rev is None:
        return 0
    return int(rev) if rev.isdigit() else SCHEMA_VERSION + 1_000_000  # not one of ours: newer


def current_version(conn: sa.Connection, dialect: SqliteDialect | PostgresDialect) -> int:
    """The database's schema version: its Alembic revision number, else (a SQLite file from
    before Alembic) its ``PRAGMA user_version``; 0 for an empty database."""
    rev = _revision(conn)
    if rev is not None:
        return _as_number(rev)
    return _user_version(conn, dialect)


def migrate(conn: sa.Connection, dialect: SqliteDialect | PostgresDialect) -> None:
    """Upgrade the database on ``conn`` to :data:`SCHEMA_VERSION` (see the module's docstring).

    Raises :class:`StorageError` when it was written by a newer version of the app; database
    errors propagate (the caller translates them).
    """
    version = max(current_version(conn, dialect), _user_version(conn, dialect))
    _end(conn)
    _refuse_newer(version, dialect)
    if version == SCHEMA_VERSION and _revision_is_head(conn):
        return
    try:
        if isinstance(dialect, SqliteDialect):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = max(current_version(conn, dialect), _user_version(conn, dialect))
        _refuse_newer(version, dialect)
        _upgrade(conn)
        if isinstance(dialect, SqliteDialect):
            conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _revision_is_head(conn: sa.Connection) -> bool:
    ok = _revision(conn) == f"{SCHEMA_VERSION:04d}"
    _end(conn)
    return ok


def _refuse_newer(version: int, dialect: SqliteDialect | PostgresDialect) -> None:
    if version > SCHEMA_VERSION:
        shown = version if version < SCHEMA_VERSION + 1_000_000 else "unknown"
        where = dialect.path if isinstance(dialect, SqliteDialect) else dialect.where
        raise StorageError(
            f"The history database {where} was written by a newer version of this app "
            f"(schema {shown}, this version knows {SCHEMA_VERSION}). Upgrade the app, or "
            + (
                "set RAG_DATA_DIR to another folder."
                if isinstance(dialect, SqliteDialect)
                else "point RAG_DATABASE_URL to another database."
            )
        )


def _upgrade(conn: sa.Connection) -> None:
    """``alembic upgrade head`` on ``conn``, inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _end(conn: sa.Connection) -> None:
    if conn.in_transaction():
        conn.rollback()


def main(argv: list[str] | None = None) -> int:
    """Print the version of a history database (default: the one the settings name) and the head."""
    from rag_core.settings import Settings
    from rag_core.storage.store import HistoryStore

    args = sys.argv[1:] if argv is None else argv
    settings = Settings.load()
    target = args[0] if args else settings.history_target
    with HistoryStore(target) as store:
        print(f"{store.location}: schema {store.schema_version} (this version writes {SCHEMA_VERSION})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
