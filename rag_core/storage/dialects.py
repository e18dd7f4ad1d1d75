"""What differs between the two databases the history can live in: SQLite (a file) and PostgreSQL.

:class:`SqliteDialect` and :class:`PostgresDialect` each know how to build a SQLAlchemy engine for
their database, how to start a transaction with the store's guarantees, how to check the database
before it is used, and how to turn their driver's errors into a :class:`StorageError` an analyst
can act on. They are the only code that knows either driver's error messages.

Write transactions (the guarantee the store's read-then-write methods rely on)
------------------------------------------------------------------------------
*SQLite:* ``BEGIN IMMEDIATE`` takes the database's write lock up front, so a write transaction
never fails half-way with SQLITE_BUSY and no other writer runs between its reads and its writes.

*PostgreSQL:* the same, with a transaction-level advisory lock: every write transaction starts
with ``pg_advisory_xact_lock(WRITE_LOCK)`` (READ COMMITTED), so writers run one at a time across
every process sharing the server, exactly like SQLite's single write lock, while readers never wait
(MVCC). Chosen over SERIALIZABLE + retry because the store's writes are a few milliseconds long and
often read-then-write (next version number, next attempt, ``COALESCE(MAX(id), 0) + 1``): one lock
makes them correct without a retry loop around user-visible side effects, and a writer that waits
longer than the busy timeout (``lock_timeout``) gets the same "locked by another process" message
as on SQLite. Read transactions use REPEATABLE READ: one snapshot for all their statements, like a
SQLite read transaction.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from rag_core.errors import StorageError

__all__ = ["WRITE_LOCK", "PostgresDialect", "SqliteDialect", "is_url", "redact_url"]

#: The advisory lock key every PostgreSQL write transaction holds (an arbitrary constant: "RAGH").
WRITE_LOCK = 0x52414748
#: The advisory lock key held while the schema is migrated.
MIGRATE_LOCK = 0x5241474D


def is_url(target: object) -> bool:
    """Whether ``target`` names a database server (a SQLAlchemy URL) rather than a SQLite file."""
    return isinstance(target, str) and "://" in target


def redact_url(url: str | sa.URL) -> str:
    """The URL with its password replaced by ``***`` (safe for messages and logs)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return str(url).split("://", 1)[0] + "://…"


class SqliteDialect:
    """The history in a SQLite file: one connection, WAL, busy timeout, ``BEGIN IMMEDIATE`` writes."""

    name = "sqlite"

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.where = f"the history database {path}"
        self.raw: sqlite3.Connection | None = None

    def create_engine(self) -> sa.Engine:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder {self.path.parent} for the history database "
                f"({exc.strerror}). Point RAG_DATA_DIR to a writable folder."
            ) from exc
        try:
            # isolation_level=None: we issue BEGIN ourselves (see begin()); SQLAlchemy's commit()
            # and rollback() end it.
            raw = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self.error(exc, "open the history") from exc
        try:
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            raw.execute("PRAGMA journal_mode = WAL")
            raw.execute("PRAGMA foreign_keys = ON")
            # NORMAL is durable against app crashes in WAL mode; only a power cut can lose the
            # last few commits (never corrupt the file).
            raw.execute("PRAGMA synchronous = NORMAL")
            self.quick_check(raw, "open the history")
        except sqlite3.Error as exc:
            raw.close()
            raise self.error(exc, "open the history") from exc
        except BaseException:
            raw.close()
            raise
        self.raw = raw
        return sa.create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)

    def begin(self, conn: sa.Connection, write: bool) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def quick_check(self, raw: sqlite3.Connection, action: str) -> None:
        """Raise the "damaged" :class:`StorageError` unless ``PRAGMA quick_check`` says ``ok``.

        Linear in the file's size (a few milliseconds per megabyte); run when the store opens and
        before a run is created, so no new run is written into a damaged file.
        """
        rows = raw.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            first = str(rows[0][0]) if rows else "no answer"
            raise StorageError(self.damaged(action, f"SQLite's check found: {first[:200]}"))

    def check(self, conn: sa.Connection, action: str) -> None:
        assert self.raw is not None
        self.quick_check(self.raw, action)

    def error(self, exc: BaseException, action: str) -> StorageError:
        """Translate a sqlite3 error into a StorageError an analyst can act on."""
        exc = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper: the driver's own error
        msg = str(exc).lower()
        where = self.where
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
            text = self.damaged(action)
        elif "full" in msg:
            text = f"Could not {action}: the disk holding {where} is full. Free some space and retry."
        elif "disk i/o" in msg:
            text = f"Could not {action}: disk I/O error on {where}. Check the disk, then retry."
        else:
            text = f"Could not {action} in {where}: {exc}."
        return StorageError(text)

    def damaged(self, action: str, detail: str = "") -> str:
        """The one message for a damaged history file (a failed open, query or quick_check)."""
        found = f" ({detail})" if detail else ""
        return (
            f"Could not {action}: the history database {self.path} is damaged or is not a SQLite "
            f"database{found}. Move the file aside (a new, empty history will be created) or restore "
            "a backup."
        )

    def close(self) -> None:
        if self.raw is not None:
            with contextlib.suppress(sqlite3.Error):
                self.raw.close()


class PostgresDialect:
    """The history on a PostgreSQL server (``RAG_DATABASE_URL``), through psycopg 3."""

    name = "postgresql"

    def __init__(self, url: str, busy_timeout_s: float) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StorageError(
                f"RAG_DATABASE_URL is not a database URL ({redact_url(url)}); expected e.g. "
                "postgresql+psycopg://user@host:5432/rag."
            ) from exc
        if parsed.get_backend_name() != "postgresql":
            raise StorageError(
                f"RAG_DATABASE_URL names a '{parsed.get_backend_name()}' database ({redact_url(parsed)}); "
                "only PostgreSQL (postgresql+psycopg://…) is supported. Unset it to use the SQLite file."
            )
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.safe_url = redact_url(parsed)
        self.password = parsed.password or ""
        self.busy_timeout_s = busy_timeout_s
        host = parsed.host or "localhost (unix socket)"
        self.server = f"{host}:{parsed.port or 5432}"
        self.where = f"the PostgreSQL history database '{parsed.database}' on {self.server}"

    def create_engine(self) -> sa.Engine:
        timeout_ms = int(self.busy_timeout_s * 1000)
        return sa.create_engine(
            self.url,
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=False,
            connect_args={
                "connect_timeout": max(2, int(self.busy_timeout_s)),
                # synchronous_commit=off: the SQLite file's durability (synchronous=NORMAL in WAL):
                # a crash of the server's machine can lose the last fraction of a second of
                # commits, never corrupt anything; without it every answer waits for a disk flush.
                "options": (
                    f"-c lock_timeout={timeout_ms} -c idle_in_transaction_session_timeout=600000 "
                    "-c synchronous_commit=off"
                ),
                "application_name": "rag-history",
            },
        )

    def begin(self, conn: sa.Connection, write: bool) -> None:
        if write:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        else:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def check(self, conn: sa.Connection, action: str) -> None:
        """The server answers (``SELECT 1``); the schema version is checked by the migrator."""
        conn.exec_driver_sql("SELECT 1").fetchone()

    def error(self, exc: BaseException, action: str) -> StorageError:
        """Translate a psycopg / SQLAlchemy error into a StorageError naming the server (never
        its password)."""
        orig = getattr(exc, "orig", None) or exc
        code = str(getattr(orig, "sqlstate", "") or "")
        msg = self._scrub(str(orig)).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        low = msg.lower()
        where = self.where
        if code == "55P03" or "lock timeout" in low:
            text = (
                f"Could not {action}: {where} is locked by another process (waited "
                f"{self.busy_timeout_s:g} s). Another app process or a CLI run is writing to it; "
                "wait for it to finish, then try again."
            )
        elif (
            code in ("28P01", "28000")
            or "authentication failed" in low
            or "no pg_hba.conf" in low
            or ('role "' in low and "does not exist" in low)
        ):
            text = (
                f"Could not {action}: the PostgreSQL server at {self.server} refused the user "
                f"'{self.url.username or ''}' ({msg}). Check the user and password in RAG_DATABASE_URL "
                f"({self.safe_url})."
            )
        elif code == "3D000" or ("database" in low and "does not exist" in low):
            text = (
                f"Could not {action}: the PostgreSQL server at {self.server} has no database "
                f"'{self.url.database}'. Create it (createdb {self.url.database}) or fix RAG_DATABASE_URL."
            )
        elif code == "53100" or "no space left" in low or "disk full" in low:
            text = (
                f"Could not {action}: the disk of the PostgreSQL server at {self.server} is full. "
                "Free some space on the server and retry."
            )
        elif code == "25006" or "read-only" in low or "read only" in low:
            text = (
                f"Could not {action}: {where} is read-only (a standby, or default_transaction_read_only). "
                "Point RAG_DATABASE_URL to the primary server."
            )
        elif code in ("40001", "40P01"):
            text = f"Could not {action}: {where} had a conflicting concurrent write. Try again."
        elif code == "42501" or "permission denied" in low:
            text = (
                f"Could not {action}: the user '{self.url.username or ''}' may not use {where} "
                f"({msg}). Grant it the rights on the database."
            )
        elif (
            code.startswith("08")
            or code.startswith("57P")
            or "connection refused" in low
            or "could not connect" in low
            or "connection failed" in low
            or "server closed the connection" in low
            or "timeout expired" in low
            or "could not translate host" in low
            or "name or service not known" in low
            or "consuming input failed" in low
        ):
            text = (
                f"Could not {action}: cannot reach the PostgreSQL server at {self.server} ({msg}). "
                f"Check that it is running and that RAG_DATABASE_URL ({self.safe_url}) is right, then "
                "try again."
            )
        else:
            text = f"Could not {action} in {where}: {msg}."
        return StorageError(text)

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text

    def close(self) -> None:
        return None


@lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """The store's qmark SQL (``?``) for psycopg: ``?`` → ``%s`` and ``%`` → ``%%``, outside string
    literals and quoted identifiers (a ``?`` inside quotes is kept as written)."""
    out: list[str] = []
    for part in _TOKENS.findall(sql):
        if part[0] in "'\"":
            out.append(part.replace("%", "%%"))
        else:
            out.append(part.replace("%", "%%").replace("?", "%s"))
    return "".join(out)


_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^'\"]+|['\"]")


def pg_value(value: Any) -> Any:
    """A parameter PostgreSQL can store: NUL characters (refused in TEXT) become U+FFFD."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value
