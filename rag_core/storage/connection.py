"""The SQLite connection under the history store: open, migrate, one transaction at a time, errors.

:class:`SqliteBase` is the base of :class:`~rag_core.storage.store.HistoryStore` (see that module
for the store's contracts and concurrency model). Every ``sqlite3`` error is translated here, in
:meth:`SqliteBase._error`, reached through :meth:`SqliteBase._tx` (and while opening): this is the
only place that knows SQLite's error messages.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from rag_core.errors import StorageError
from rag_core.storage.owner import owner_token
from rag_core.storage.schema import BUSY_TIMEOUT_S, MIGRATIONS, SCHEMA_VERSION

__all__ = ["SqliteBase"]


class SqliteBase:
    """One shared connection (guarded by an ``RLock``), reopened after ``os.fork()``; short transactions.

    Opening creates the folder and the database if needed, checks it (``PRAGMA quick_check``:
    every page of every table and index is read and its structure verified) and migrates an older
    schema. Raises :class:`StorageError` when the file cannot be opened, is damaged or is not a
    SQLite database, or was written by a newer version of the app.
    """

    def __init__(self, db_path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.db_path = Path(db_path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._owner = owner_token()
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []  # connections copied by os.fork(); never used
        self._conn: sqlite3.Connection = self._connect()

    # --- connection ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder {self.db_path.parent} for the history database "
                f"({exc.strerror}). Point RAG_DATA_DIR to a writable folder."
            ) from exc
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _tx).
            conn = sqlite3.connect(
                self.db_path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "open the history") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # NORMAL is durable against app crashes in WAL mode; only a power cut can lose the
            # last few commits (never corrupt the file).
            conn.execute("PRAGMA synchronous = NORMAL")
            self._quick_check(conn, "open the history")
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open the history") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _quick_check(self, conn: sqlite3.Connection, action: str) -> None:
        """Raise the "damaged" :class:`StorageError` unless ``PRAGMA quick_check`` says ``ok``.

        Linear in the file's size (a few milliseconds per megabyte); run when the store opens and
        before a run is created, so no new run is written into a damaged file.
        """
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            first = str(rows[0][0]) if rows else "no answer"
            raise StorageError(self._damaged(action, f"SQLite's check found: {first[:200]}"))

    def check(self) -> None:
        """Check the database file's structure now (``PRAGMA quick_check``).

        Raises :class:`StorageError` saying the file is damaged and what to do.
        """
        with self._lock:
            conn = self._connection()
            try:
                self._quick_check(conn, "check the history")
            except sqlite3.Error as exc:
                raise self._error(exc, "check the history") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"The history database {self.db_path} was written by a newer version of this app "
                f"(schema {version}, this version knows {SCHEMA_VERSION}). Upgrade the app, or set "
                "RAG_DATA_DIR to another folder."
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError(f"The history store {self.db_path} has been closed; reopen it.")
        if os.getpid() != self._pid:  # forked: never share a SQLite connection across processes
            self._inherited.append(self._conn)
            self._pid = os.getpid()
            self._owner = owner_token()
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        """Close the connection. Idempotent; any later call raises :class:`StorageError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()

    @property
    def journal_mode(self) -> str:
        """The database's journal mode as SQLite reports it (``"wal"``)."""
        with self._lock:
            return str(self._connection().execute("PRAGMA journal_mode").fetchone()[0]).lower()

    @property
    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open database."""
        with self._lock:
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def _tx(self, action: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One short transaction. ``action`` completes "Could not …" in error messages."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise self._error(exc, action) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise self._error(exc, action) from exc
            except BaseException:
                _rollback(conn)
                raise

    def _error(self, exc: sqlite3.Error, action: str) -> StorageError:
        """Translate a sqlite3 error into a StorageError an analyst can act on."""
        msg = str(exc).lower()
        where = f"the history database {self.db_path}"
        if "locked" in msg or "busy" in msg:
            text = (
                f"Could not {action}: {where} is locked by another process (waited "
                f"{self.busy_timeout_s:g} s). Another copy of the app or a CLI run is writing to it; "
                "wait for it to finish or close it, then try again."
            )
        elif "readonly" in msg or "read-only" in msg:
            text = f"Could not {action}: {where} is read-only. Check the permissions of RAG_DATA_DIR."
        elif "unable to open" in msg:
            text = (
                f"Could not {action}: cannot open {where}. Check that the folder exists and is "
                "writable (RAG_DATA_DIR)."
            )
        elif "not a database" in msg or "malformed" in msg or "corrupt" in msg:
            text = self._damaged(action)
        elif "full" in msg:
            text = f"Could not {action}: the disk holding {where} is full. Free some space and retry."
        elif "disk i/o" in msg:
            text = f"Could not {action}: disk I/O error on {where}. Check the disk, then retry."
        else:
            text = f"Could not {action} in {where}: {exc}."
        return StorageError(text)

    def _damaged(self, action: str, detail: str = "") -> str:
        """The one message for a damaged history file (a failed open, query or quick_check)."""
        found = f" ({detail})" if detail else ""
        return (
            f"Could not {action}: the history database {self.db_path} is damaged or is not a SQLite "
            f"database{found}. Move the file aside (a new, empty history will be created) or restore "
            "a backup."
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
