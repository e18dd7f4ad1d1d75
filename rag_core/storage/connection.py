"""The connection under the history store: open, migrate, one transaction at a time, errors.

:class:`SqliteBase` is the base of :class:`~rag_core.storage.store.HistoryStore` (see that module
for the store's contracts and concurrency model). It runs on SQLAlchemy 2 (Core) over either
database: a SQLite file (the default) or a PostgreSQL server named by a URL (``RAG_DATABASE_URL``).
What differs between the two — opening, the write lock, the check at open, error messages — lives
in :mod:`~rag_core.storage.dialects`; the schema is built and upgraded by Alembic
(:mod:`~rag_core.storage.migrate`).

Store code is written once for both: ``with self._tx(action, write=...) as conn:`` then
``conn.execute(sql, params)`` with ``?`` placeholders (qmark, as in ``sqlite3``), ``.fetchone()``,
``.fetchall()``, ``.rowcount`` and positional row access ``row[0]``. SQL must be portable (see the
rules in :mod:`~rag_core.storage.migrations`): ``INSERT … ON CONFLICT``, ``RETURNING``, no PRAGMA,
no SQLite-only functions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rag_core.errors import StorageError
from rag_core.storage.dialects import PostgresDialect, SqliteDialect, is_url, pg_value, to_pyformat
from rag_core.storage.owner import owner_token
from rag_core.storage.schema import BUSY_TIMEOUT_S

__all__ = ["SqliteBase", "TxConnection"]

#: Errors a database call can raise (the driver's own, or SQLAlchemy's wrapping of them).
_DB_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, sa.exc.SQLAlchemyError)
try:  # psycopg is only needed for PostgreSQL
    import psycopg

    _DB_ERRORS += (psycopg.Error,)
except ImportError:  # pragma: no cover - psycopg is a declared dependency
    pass


class TxConnection:
    """What :meth:`SqliteBase._tx` yields: ``execute`` / ``executemany`` taking qmark SQL.

    On PostgreSQL the ``?`` placeholders become psycopg's ``%s`` (outside quotes), and NUL
    characters in text parameters (PostgreSQL refuses them) become U+FFFD.
    """

    __slots__ = ("_conn", "_pg")

    def __init__(self, conn: sa.Connection, pg: bool) -> None:
        self._conn = conn
        self._pg = pg

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:  # a SQLAlchemy CursorResult
        """Run one statement; the result has ``fetchone``, ``fetchall``, ``rowcount`` and iterates rows."""
        if not params:
            return self._conn.exec_driver_sql(sql)
        if self._pg:
            return self._conn.exec_driver_sql(to_pyformat(sql), tuple(pg_value(v) for v in params))
        return self._conn.exec_driver_sql(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters (nothing when ``rows`` is empty)."""
        if self._pg:
            batch = [tuple(pg_value(v) for v in r) for r in rows]
            sql = to_pyformat(sql)
        else:
            batch = [tuple(r) for r in rows]
        if batch:
            self._conn.exec_driver_sql(sql, batch)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "postgresql" if self._pg else "sqlite"


class SqliteBase:
    """One shared connection (guarded by an ``RLock``), reopened after ``os.fork()``; short transactions.

    ``db_path`` is a SQLite file path, or a PostgreSQL URL (``postgresql+psycopg://user@host/db``).
    Opening creates the folder and the database if needed, checks it (SQLite: ``PRAGMA
    quick_check``, every page of every table and index is read and its structure verified;
    PostgreSQL: the server answers) and migrates an older schema. Raises :class:`StorageError` when
    the database cannot be opened or reached, is damaged or is not a SQLite database, or was written
    by a newer version of the app.
    """

    def __init__(self, db_path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.busy_timeout_s = float(busy_timeout_s)
        self._dialect: SqliteDialect | PostgresDialect
        if is_url(db_path):
            self._dialect = PostgresDialect(str(db_path), self.busy_timeout_s)
            self.db_path: Path | None = None
        else:
            self.db_path = Path(db_path)
            self._dialect = SqliteDialect(self.db_path, self.busy_timeout_s)
        self._lock = threading.RLock()
        self._owner = owner_token()
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[Any] = []  # connections copied by os.fork(); never used nor closed
        self._engine: sa.Engine
        self._sa: sa.Connection
        self._open()

    # --- connection ---------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect.name

    @property
    def _pg(self) -> bool:
        return isinstance(self._dialect, PostgresDialect)

    def _open(self) -> None:
        from rag_core.storage.migrate import migrate

        engine = self._dialect.create_engine()
        try:
            conn = engine.connect()
        except _DB_ERRORS as exc:
            engine.dispose()
            self._dialect.close()
            raise self._error(exc, "open the history") from exc
        try:
            self._dialect.check(conn, "open the history")
            _end(conn)
            migrate(conn, self._dialect)
        except _DB_ERRORS as exc:
            _end(conn)
            conn.close()
            engine.dispose()
            self._dialect.close()
            raise self._error(exc, "open the history") from exc
        except BaseException:
            _end(conn)
            conn.close()
            engine.dispose()
            self._dialect.close()
            raise
        self._engine, self._sa = engine, conn
        # The raw sqlite3 connection (SQLite) for PRAGMAs and tests; the SQLAlchemy one otherwise.
        self._conn: Any = self._dialect.raw if isinstance(self._dialect, SqliteDialect) else conn

    def check(self) -> None:
        """Check the database now: SQLite's ``PRAGMA quick_check`` of the file's structure, or that
        the PostgreSQL server answers.

        Raises :class:`StorageError` saying the file is damaged (or the server unreachable) and
        what to do.
        """
        with self._lock:
            conn = self._connection()
            try:
                self._dialect.check(conn, "check the history")
            except _DB_ERRORS as exc:
                _end(conn)
                raise self._error(exc, "check the history") from exc
            _end(conn)

    def _connection(self) -> sa.Connection:
        if self._closed:
            raise StorageError(f"The history store {self._where} has been closed; reopen it.")
        if os.getpid() != self._pid:  # forked: never share a connection across processes
            self._inherited.extend([self._sa, self._engine, self._conn])
            self._engine.dispose(close=False)
            self._pid = os.getpid()
            self._owner = owner_token()
            if isinstance(self._dialect, SqliteDialect):
                self._dialect = SqliteDialect(self._dialect.path, self.busy_timeout_s)
            self._open()
        return self._sa

    def close(self) -> None:
        """Close the connection. Idempotent; any later call raises :class:`StorageError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                if os.getpid() != self._pid:
                    return  # a forked child: the connection belongs to the parent
                with contextlib.suppress(*_DB_ERRORS):
                    self._sa.close()
                with contextlib.suppress(*_DB_ERRORS):
                    self._engine.dispose()
                self._dialect.close()

    @property
    def _where(self) -> str:
        return str(self.db_path) if self.db_path is not None else self._dialect.where

    @property
    def journal_mode(self) -> str:
        """The database's journal mode as SQLite reports it (``"wal"``); ``"postgresql"`` there."""
        with self._lock:
            self._connection()
            if isinstance(self._dialect, SqliteDialect):
                return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            return self._dialect.name

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (its Alembic revision, a number)."""
        from rag_core.storage.migrate import current_version

        with self._lock:
            conn = self._connection()
            try:
                return current_version(conn, self._dialect)
            finally:
                _end(conn)

    def change_token(self) -> str:
        """A token that changes whenever any process may have written to the history (a cache key):
        the file's (and its WAL's) size and modification time, or the server's WAL position."""
        if self.db_path is not None:
            parts = []
            for p in (self.db_path, Path(f"{self.db_path}-wal")):
                try:
                    st = os.stat(p)
                    parts.append(f"{st.st_mtime_ns}:{st.st_size}")
                except OSError:
                    parts.append("-")
            return "|".join(parts)
        with self._tx("read the history's position", write=False) as conn:
            return str(conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])

    @contextlib.contextmanager
    def _tx(self, action: str, *, write: bool) -> Iterator[TxConnection]:
        """One short transaction. ``action`` completes "Could not …" in error messages.

        ``write=True`` takes the database's write lock first (SQLite ``BEGIN IMMEDIATE``;
        PostgreSQL a transaction advisory lock), so a read-then-write never interleaves with
        another writer.
        """
        with self._lock:
            conn = self._connection()
            for retry in (True, False):
                try:
                    self._dialect.begin(conn, write)
                    break
                except _DB_ERRORS as exc:
                    _rollback(conn)
                    # A server restart drops the connection: nothing was done yet, reconnect once.
                    if retry and self._pg and getattr(exc, "connection_invalidated", False):
                        continue
                    raise self._error(exc, action) from exc
            try:
                yield TxConnection(conn, self._pg)
                conn.commit()
            except _DB_ERRORS as exc:
                _rollback(conn)
                raise self._error(exc, action) from exc
            except BaseException:
                _rollback(conn)
                raise

    def _error(self, exc: BaseException, action: str) -> StorageError:
        """Translate a database error into a StorageError an analyst can act on."""
        if isinstance(exc, StorageError):
            return exc
        return self._dialect.error(exc, action)

    def _damaged(self, action: str, detail: str = "") -> str:
        """The one message for a damaged history file (a failed open, query or quick_check)."""
        if isinstance(self._dialect, SqliteDialect):
            return self._dialect.damaged(action, detail)
        return f"Could not {action}: {self._dialect.where} is damaged ({detail})."


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rollback(conn: sa.Connection) -> None:
    with contextlib.suppress(*_DB_ERRORS):
        conn.rollback()


def _end(conn: sa.Connection) -> None:
    """End the read transaction SQLAlchemy began implicitly (nothing was written)."""
    if conn.in_transaction():
        _rollback(conn)
