"""SQLite history store: question sets, documents, runs, per-question results, scores, timelines.

Written incrementally, so a crash loses nothing that finished: :meth:`HistoryStore.create_run`
inserts one ``"pending"`` result row per question up front, each answer and each score is
committed as soon as it arrives, and :meth:`HistoryStore.mark_interrupted` (called at app / CLI
start) turns runs whose process died into visible ``"interrupted"`` partial runs that
:meth:`HistoryStore.missing_items` can resume.

Contracts shared by every method
--------------------------------
* "Empty" is ``[]`` (or ``{}``), never ``None``.
* Asking for something that does not exist (``get_run``, ``get_results``, ``get_requests``,
  ``get_question_set``, ``missing_items``) raises :class:`InputError` naming the run or set: it is
  an id or name the user picked. Writing into a run or question that no longer exists
  (``save_answer``, ``save_scores``, ``save_requests``, ``update_run``) raises
  :class:`StorageError` naming the run. Deleting something absent is a no-op returning ``False``.
* Every ``sqlite3`` error is re-raised as :class:`StorageError` with a message saying what to do
  (e.g. "locked by another process").
* NaN / infinity never reach the database: a non-finite metric value is stored as a *failed*
  score (``value`` NULL, error ``"metric returned NaN"``), and JSON columns are written with
  ``allow_nan=False`` after replacing non-finite floats by ``null``.
* Secrets never reach storage: there is no column for an API key, and run config / timings /
  summary dicts holding a key such as ``api_key`` (or a :class:`Secret`, or an ``sk-ant-`` string)
  are refused with :class:`StorageError`.

Concurrency
-----------
One store is shared by Streamlit script threads and the engine's loop thread (``on_result``
callbacks), and the same file may be opened by two processes (the app and a CLI run).

*In-process:* a single connection opened with ``check_same_thread=False`` and guarded by an
``RLock``. Chosen over one connection per thread (``threading.local``) because Streamlit starts a
new script thread for every rerun: per-thread connections would pile up (one per rerun) until the
garbage collector closes them, whereas one connection is opened once and closed once
(``st.cache_resource(on_release=store.close)``). Serialising in-process access costs little: every
statement here takes milliseconds and nothing is held across user code.

*Across processes:* WAL journal mode (readers never block the writer and vice versa),
``busy_timeout`` (a writer waits up to :data:`BUSY_TIMEOUT_S` for the other process's write to
finish), and short write transactions opened with ``BEGIN IMMEDIATE`` (the write lock is taken up
front, so a read-then-write transaction can never fail half-way with SQLITE_BUSY).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.models import DocumentInfo, MetricScore, QAItem, RequestTiming
from rag_core.settings import Secret

#: Seconds a write waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 10.0
#: Every status a run can have.
RUN_STATUSES = ("running", "completed", "cancelled", "failed", "interrupted")
#: Error stored for a metric that returned NaN.
NAN_ERROR = "metric returned NaN"
#: Error stored for a metric that returned +/- infinity.
INF_ERROR = "metric returned an infinite value"
#: Error stored for a metric that returned ``None`` without saying why.
NO_VALUE_ERROR = "metric returned no value"
#: Longest question-set name accepted.
MAX_SET_NAME_CHARS = 200
#: Deepest nesting accepted in a JSON column (config / timings / summary / contexts).
_MAX_JSON_DEPTH = 32

# Schema migrations: MIGRATIONS[v] upgrades a database from user_version v to v + 1.
# Append new entries; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE question_sets (
            name        TEXT PRIMARY KEY,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE question_items (
            set_name      TEXT NOT NULL REFERENCES question_sets(name) ON DELETE CASCADE,
            idx           INTEGER NOT NULL,
            question      TEXT NOT NULL,
            ground_truth  TEXT NOT NULL,
            PRIMARY KEY (set_name, idx)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE documents (
            name        TEXT PRIMARY KEY,
            sha256      TEXT NOT NULL,
            pages       INTEGER NOT NULL,
            chunks      INTEGER NOT NULL,
            size_bytes  INTEGER NOT NULL,
            added_at    TEXT NOT NULL
        )
        """,
        # question_set is a plain name, not a foreign key: a run keeps its own copy of the
        # questions (in results), so deleting or editing the set later does not touch old runs.
        # owner identifies the process that created the run (see _owner_token).
        """
        CREATE TABLE runs (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at    TEXT NOT NULL,
            finished_at   TEXT,
            question_set  TEXT,
            backend       TEXT NOT NULL,
            mode          TEXT NOT NULL,
            suite         TEXT NOT NULL,
            status        TEXT NOT NULL CHECK (status IN
                              ('running', 'completed', 'cancelled', 'failed', 'interrupted')),
            config        TEXT NOT NULL DEFAULT '{}',
            timings       TEXT NOT NULL DEFAULT '{}',
            summary       TEXT NOT NULL DEFAULT '{}',
            n_questions   INTEGER NOT NULL,
            owner         TEXT NOT NULL DEFAULT ''
        )
        """,
        "CREATE INDEX runs_status ON runs(status)",
        """
        CREATE TABLE results (
            run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            idx            INTEGER NOT NULL,
            question       TEXT NOT NULL,
            ground_truth   TEXT NOT NULL,
            status         TEXT NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'ok', 'error', 'cancelled')),
            answer         TEXT,
            contexts       TEXT NOT NULL DEFAULT '[]',
            error          TEXT,
            error_kind     TEXT,
            latency_s      REAL,
            attempts       INTEGER NOT NULL DEFAULT 0,
            input_tokens   INTEGER NOT NULL DEFAULT 0,
            output_tokens  INTEGER NOT NULL DEFAULT 0,
            model          TEXT,
            updated_at     TEXT,
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE scores (
            run_id   INTEGER NOT NULL,
            idx      INTEGER NOT NULL,
            metric   TEXT NOT NULL,
            value    REAL,
            stdev    REAL,
            reason   TEXT,
            error    TEXT,
            cached   INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, idx, metric),
            FOREIGN KEY (run_id, idx) REFERENCES results(run_id, idx) ON DELETE CASCADE
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE requests (
            id             INTEGER PRIMARY KEY,
            run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            idx            INTEGER NOT NULL,
            phase          TEXT NOT NULL,
            label          TEXT NOT NULL,
            start          REAL NOT NULL,
            "end"          REAL NOT NULL,
            attempts       INTEGER NOT NULL,
            status         TEXT NOT NULL,
            throttled_s    REAL NOT NULL DEFAULT 0,
            input_tokens   INTEGER NOT NULL DEFAULT 0,
            output_tokens  INTEGER NOT NULL DEFAULT 0,
            extra          TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX requests_run ON requests(run_id, start)",
        """
        CREATE TABLE judge_cache (
            key         TEXT PRIMARY KEY,
            value       REAL NOT NULL,
            reason      TEXT,
            created_at  TEXT NOT NULL
        )
        """,
    ),
)
#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuestionSetInfo:
    """A saved question set, as listed (without its items)."""

    name: str
    """The set's unique name."""
    n_items: int
    """Number of questions in the set."""
    updated_at: str
    """ISO-8601 UTC timestamp of the last save."""


@dataclass(frozen=True)
class RunRecord:
    """One evaluation run (without its per-question results)."""

    id: int
    """Run id, increasing: a higher id is a newer run."""
    created_at: str
    """ISO-8601 UTC timestamp of when the run started."""
    finished_at: str | None
    """When it ended; ``None`` while running. For interrupted runs: the last recorded activity."""
    question_set: str | None
    """Name of the question set it used, if it came from a saved set."""
    backend: str
    """Answer backend, e.g. ``"offline"`` or ``"claude"``."""
    mode: str
    """``"sequential"``, ``"async"`` or ``"compare"``."""
    suite: str
    """Metric suite, e.g. ``"offline"`` or ``"judge"``."""
    status: str
    """One of :data:`RUN_STATUSES`."""
    config: dict[str, Any]
    """Settings the run used (models, top_k, concurrency…); never holds a secret."""
    timings: dict[str, Any]
    """Phase durations in seconds (``retrieval_s``, ``generation_s``, ``evaluation_s``, ``total_s``)."""
    summary: dict[str, Any]
    """Aggregates (see the brief's "Shapes"); ``{}`` until the run writes it."""
    n_questions: int
    """Number of questions in the run."""


@dataclass(frozen=True)
class ResultRecord:
    """One question of a run, with its answer (or error) and its metric scores."""

    run_id: int
    """The run it belongs to."""
    index: int
    """0-based position of the question in the run."""
    question: str
    """The question asked."""
    ground_truth: str
    """The expected answer ('' when unknown)."""
    answer: str | None
    """The answer produced; ``None`` when pending or failed."""
    contexts: list[dict[str, Any]]
    """Retrieved chunks as ``ScoredChunk.to_dict()`` dicts; ``[]`` when none."""
    error: str | None
    """Why the answer failed; ``None`` when it did not."""
    error_kind: str | None
    """Error class name, e.g. ``"RateLimitError"``; ``None`` when no error."""
    latency_s: float | None
    """Seconds spent in requests for this answer; ``None`` when unknown."""
    attempts: int
    """Attempts made (0 while pending)."""
    input_tokens: int
    """Prompt tokens billed."""
    output_tokens: int
    """Completion tokens billed."""
    model: str | None
    """Model that wrote the answer."""
    scores: dict[str, MetricScore] = field(default_factory=dict)
    """Metric name → score (failed scores have ``value=None``); ``{}`` when not scored yet."""

    @property
    def status(self) -> str:
        """``"ok"``, ``"error"``, ``"cancelled"`` or ``"pending"`` (nothing saved yet)."""
        return _result_status(self.answer, self.error, self.error_kind)


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
class HistoryStore:
    """The project's SQLite history. Safe to share between threads and processes.

    Opening creates the folder and the database if needed and migrates an older schema.
    Raises :class:`StorageError` when the file cannot be opened, is not a SQLite database, or was
    written by a newer version of the app.
    """

    def __init__(self, db_path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.db_path = Path(db_path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._owner = _owner_token()
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []  # connections copied by os.fork(); never used
        self._conn: sqlite3.Connection = self._connect()

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.db_path)!r})"

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open the history") from exc
        except BaseException:
            conn.close()
            raise
        return conn

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
            self._owner = _owner_token()
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
            text = (
                f"Could not {action}: {where} is damaged or is not a SQLite database. Move the file "
                "aside (a new, empty history will be created) or restore a backup."
            )
        elif "full" in msg:
            text = f"Could not {action}: the disk holding {where} is full. Free some space and retry."
        elif "disk i/o" in msg:
            text = f"Could not {action}: disk I/O error on {where}. Check the disk, then retry."
        else:
            text = f"Could not {action} in {where}: {exc}."
        return StorageError(text)

    # --- question sets ------------------------------------------------------------------------
    def save_question_set(self, name: str, items: Sequence[QAItem]) -> QuestionSetInfo:
        """Create or replace the set ``name`` with ``items`` (validated, whitespace-stripped).

        Raises :class:`InputError` for an empty/too-long name or invalid items (empty set,
        duplicate or empty questions…, naming the row). Runs that used an older version of the
        set are not changed.
        """
        from rag_core.ingest.questions import validate_items  # local: questions is a sibling module

        name = _set_name(name)
        clean = validate_items(items, source=f"Question set '{name}'")
        now = _now()
        with self._tx(f"save question set '{name}'", write=True) as conn:
            conn.execute(
                "INSERT INTO question_sets(name, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at",
                (name, now, now),
            )
            conn.execute("DELETE FROM question_items WHERE set_name = ?", (name,))
            conn.executemany(
                "INSERT INTO question_items(set_name, idx, question, ground_truth) VALUES (?, ?, ?, ?)",
                [(name, i, it.question, it.ground_truth) for i, it in enumerate(clean)],
            )
        return QuestionSetInfo(name=name, n_items=len(clean), updated_at=now)

    def list_question_sets(self) -> list[QuestionSetInfo]:
        """All saved sets, sorted by name (case-insensitive); ``[]`` when there are none."""
        with self._tx("list the question sets", write=False) as conn:
            rows = conn.execute(
                "SELECT s.name, COUNT(i.idx), s.updated_at FROM question_sets s "
                "LEFT JOIN question_items i ON i.set_name = s.name "
                "GROUP BY s.name ORDER BY s.name COLLATE NOCASE, s.name"
            ).fetchall()
        return [QuestionSetInfo(name=r[0], n_items=int(r[1]), updated_at=r[2]) for r in rows]

    def get_question_set(self, name: str) -> list[QAItem]:
        """The set's items in their saved order. Raises :class:`InputError` if no such set."""
        with self._tx(f"read question set '{name}'", write=False) as conn:
            exists = conn.execute("SELECT 1 FROM question_sets WHERE name = ?", (name,)).fetchone()
            if exists is None:
                names = [r[0] for r in conn.execute("SELECT name FROM question_sets ORDER BY name LIMIT 6")]
                raise InputError(f"There is no question set named '{name}'. {_available(names)}")
            rows = conn.execute(
                "SELECT question, ground_truth FROM question_items WHERE set_name = ? ORDER BY idx",
                (name,),
            ).fetchall()
        return [QAItem(question=q, ground_truth=g) for q, g in rows]

    def delete_question_set(self, name: str) -> bool:
        """Delete a set and its items. ``False`` when it did not exist. Runs are kept."""
        with self._tx(f"delete question set '{name}'", write=True) as conn:
            cur = conn.execute("DELETE FROM question_sets WHERE name = ?", (name,))
            return cur.rowcount > 0

    # --- documents ----------------------------------------------------------------------------
    def record_document(self, doc: DocumentInfo) -> None:
        """Create or replace the record of an indexed document (keyed by ``doc.name``)."""
        with self._tx(f"record document '{doc.name}'", write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO documents(name, sha256, pages, chunks, size_bytes, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (doc.name, doc.sha256, int(doc.pages), int(doc.chunks), int(doc.size_bytes), doc.added_at),
            )

    def forget_document(self, name: str) -> bool:
        """Remove a document's record. ``False`` when there was none."""
        with self._tx(f"forget document '{name}'", write=True) as conn:
            return conn.execute("DELETE FROM documents WHERE name = ?", (name,)).rowcount > 0

    def list_documents(self) -> list[DocumentInfo]:
        """Recorded documents sorted by name; ``[]`` when none."""
        with self._tx("list the documents", write=False) as conn:
            rows = conn.execute(
                "SELECT name, sha256, pages, chunks, size_bytes, added_at FROM documents "
                "ORDER BY name COLLATE NOCASE, name"
            ).fetchall()
        return [
            DocumentInfo(name=r[0], sha256=r[1], pages=r[2], chunks=r[3], size_bytes=r[4], added_at=r[5])
            for r in rows
        ]

    # --- runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        question_set: str | None,
        backend: str,
        mode: str,
        suite: str,
        config: Mapping[str, Any],
        items: Sequence[QAItem],
    ) -> int:
        """Start a run with status ``"running"`` and one ``"pending"`` result per item; return its id.

        Raises :class:`InputError` when ``items`` is empty, :class:`StorageError` when ``config``
        holds a secret (e.g. an ``api_key`` key) or cannot be stored as JSON.
        """
        if not items:
            raise InputError("A run needs at least one question; the question set is empty.")
        for i, it in enumerate(items):
            if not isinstance(it.question, str) or not isinstance(it.ground_truth, str):
                raise InputError(f"Question {i + 1} of the run is not text; re-import the question set.")
        config_json = _to_json(_refuse_secrets(config, "config"), "the run configuration")
        now = _now()
        with self._tx("create the run", write=True) as conn:
            cur = conn.execute(
                "INSERT INTO runs(created_at, question_set, backend, mode, suite, status, config, "
                "n_questions, owner) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (now, question_set, backend, mode, suite, config_json, len(items), self._owner),
            )
            run_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO results(run_id, idx, question, ground_truth, updated_at) VALUES (?, ?, ?, ?, ?)",
                [(run_id, i, it.question, it.ground_truth, now) for i, it in enumerate(items)],
            )
        return run_id

    def update_run(
        self,
        run_id: int,
        *,
        status: str | None = None,
        timings: Mapping[str, Any] | None = None,
        summary: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        finished: bool = False,
    ) -> None:
        """Change a run. Arguments left ``None`` are unchanged; dicts given *replace* the stored ones.

        ``finished=True`` stamps ``finished_at`` with the current time. Setting ``status="running"``
        (resume) makes this process the run's owner, so others do not mark it interrupted. Raises
        :class:`StorageError` for an unknown status, a missing run, or a dict holding a secret.
        """
        sets: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in RUN_STATUSES:
                raise StorageError(
                    f"Unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}."
                )
            sets.append("status = ?")
            params.append(status)
            if status == "running":  # a resumed run now belongs to the process resuming it
                sets.append("owner = ?")
                params.append(self._owner)
        for column, value in (("timings", timings), ("summary", summary), ("config", config)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(_to_json(_refuse_secrets(value, column), f"the {column} of run #{run_id}"))
        if finished:
            sets.append("finished_at = ?")
            params.append(_now())
        if not sets:
            return
        with self._tx(f"update run #{run_id}", write=True) as conn:
            cur = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*params, run_id))
            if cur.rowcount == 0:
                raise StorageError(
                    f"Run #{run_id} no longer exists (it was deleted); its update was not saved."
                )

    def get_run(self, run_id: int) -> RunRecord:
        """One run. Raises :class:`InputError` naming the run when it does not exist."""
        with self._tx(f"read run #{run_id}", write=False) as conn:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(_no_run(run_id))
        return _run_record(row)

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs newest first (at most ``limit``); ``[]`` when none. Never loads per-question results."""
        if limit is not None and limit < 0:
            raise InputError("The number of runs to list cannot be negative.")
        with self._tx("list the runs", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?",
                (-1 if limit is None else int(limit),),
            ).fetchall()
        return [_run_record(r) for r in rows]

    def delete_run(self, run_id: int, *, force: bool = False) -> bool:
        """Delete a run with its results, scores and request timeline. ``False`` if it did not exist.

        Refuses (:class:`StorageError`) to delete a run that is still running in a live process,
        unless ``force=True``.
        """
        with self._tx(f"delete run #{run_id}", write=True) as conn:
            row = conn.execute("SELECT status, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            if row[0] == "running" and not force and _owner_alive(row[1]):
                raise StorageError(f"Run #{run_id} is still running; cancel it before deleting it.")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return True

    def mark_interrupted(self, exclude: Collection[int] | None = None) -> list[int]:
        """Mark runs left ``"running"`` by a dead process as ``"interrupted"``; return their ids.

        Call at app / CLI start. Runs created by *this* process are marked unless their id is in
        ``exclude`` (pass the runs this process is still executing). Runs owned by another live
        process on this machine (e.g. a CLI run while the app starts) are left alone.
        ``finished_at`` is set to the run's last recorded activity.
        """
        skip = set(exclude or ())
        with self._tx("mark interrupted runs", write=True) as conn:
            rows = conn.execute("SELECT id, owner FROM runs WHERE status = 'running'").fetchall()
            ids = [
                int(rid)
                for rid, owner in rows
                if rid not in skip and (owner == self._owner or not _owner_alive(owner))
            ]
            for rid in ids:
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, "
                    "(SELECT MAX(updated_at) FROM results WHERE run_id = runs.id), created_at) "
                    "WHERE id = ?",
                    (rid,),
                )
        return sorted(ids)

    # --- per-question results -----------------------------------------------------------------
    def save_answer(
        self,
        run_id: int,
        index: int,
        *,
        answer: str | None = None,
        contexts: Sequence[Any] = (),
        error: str | None = None,
        error_kind: str | None = None,
        latency_s: float | None = None,
        attempts: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
    ) -> None:
        """Record question ``index``'s answer (or error), replacing what was there. Commits at once.

        ``contexts`` are ``ScoredChunk`` objects or their ``to_dict()`` dicts. Give an ``answer``
        or an ``error``; an ``error_kind`` of ``"CancelledError"`` marks the item cancelled (it
        is resumable). Raises :class:`StorageError` when neither is given or when the run or
        question does not exist.
        """
        if answer is None and error is None:
            raise StorageError(f"Run #{run_id}, item {index}: nothing to save (no answer and no error).")
        status = _result_status(answer, error, error_kind)
        ctx = [c.to_dict() if hasattr(c, "to_dict") else c for c in contexts]
        ctx_json = _to_json(ctx, f"the contexts of run #{run_id}, item {index}")
        action = f"save the answer of run #{run_id}, item {index}"
        with self._tx(action, write=True) as conn:
            cur = conn.execute(
                "UPDATE results SET status = ?, answer = ?, contexts = ?, error = ?, error_kind = ?, "
                "latency_s = ?, attempts = ?, input_tokens = ?, output_tokens = ?, model = ?, "
                "updated_at = ? WHERE run_id = ? AND idx = ?",
                (
                    status,
                    answer,
                    ctx_json,
                    error,
                    error_kind,
                    _finite(latency_s),
                    int(attempts),
                    int(input_tokens),
                    int(output_tokens),
                    model,
                    _now(),
                    run_id,
                    index,
                ),
            )
            if cur.rowcount == 0:
                raise StorageError(_missing_result(conn, run_id, index, "answer"))

    def save_scores(
        self, run_id: int, index: int, scores: Mapping[str, MetricScore] | Iterable[MetricScore]
    ) -> None:
        """Record metric scores for question ``index`` (one row per metric, replacing older ones).

        A non-finite value is stored as a failed score (``value`` None, error
        :data:`NAN_ERROR`); a ``None`` value without an error gets :data:`NO_VALUE_ERROR`.
        Raises :class:`StorageError` when the run or question does not exist.
        """
        items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
        rows = []
        for s in items:
            value, error = _score_value(s)
            rows.append(
                (run_id, index, s.metric, value, _finite(s.stdev), s.reason, error, int(bool(s.cached)))
            )
        action = f"save the scores of run #{run_id}, item {index}"
        with self._tx(action, write=True) as conn:
            cur = conn.execute(
                "UPDATE results SET updated_at = ? WHERE run_id = ? AND idx = ?", (_now(), run_id, index)
            )
            if cur.rowcount == 0:
                raise StorageError(_missing_result(conn, run_id, index, "scores"))
            conn.executemany(
                "INSERT OR REPLACE INTO scores(run_id, idx, metric, value, stdev, reason, error, cached) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def get_results(self, run_id: int) -> list[ResultRecord]:
        """The run's results in input order, with scores. Raises :class:`InputError` if no such run."""
        with self._tx(f"read the results of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            rows = conn.execute(
                "SELECT idx, question, ground_truth, answer, contexts, error, error_kind, latency_s, "
                "attempts, input_tokens, output_tokens, model FROM results WHERE run_id = ? ORDER BY idx",
                (run_id,),
            ).fetchall()
            score_rows = conn.execute(
                "SELECT idx, metric, value, stdev, reason, error, cached FROM scores WHERE run_id = ? "
                "ORDER BY idx, metric",
                (run_id,),
            ).fetchall()
        by_index: dict[int, dict[str, MetricScore]] = {}
        for idx, metric, value, stdev, reason, error, cached in score_rows:
            by_index.setdefault(idx, {})[metric] = MetricScore(
                metric=metric, value=value, reason=reason, error=error, stdev=stdev, cached=bool(cached)
            )
        return [
            ResultRecord(
                run_id=run_id,
                index=r[0],
                question=r[1],
                ground_truth=r[2],
                answer=r[3],
                contexts=_from_json(r[4], f"run #{run_id}, item {r[0]} contexts", []),
                error=r[5],
                error_kind=r[6],
                latency_s=r[7],
                attempts=r[8],
                input_tokens=r[9],
                output_tokens=r[10],
                model=r[11],
                scores=by_index.get(r[0], {}),
            )
            for r in rows
        ]

    def missing_items(
        self, run_id: int, *, metrics: Collection[str] | None = None, retry_errors: bool = False
    ) -> dict[str, list[int]]:
        """What a resume must still do, as ``{"answers": [...], "scores": [...]}`` (sorted indices).

        ``answers``: items with neither an answer nor an error (pending, or cancelled), plus
        failed items when ``retry_errors``. ``scores``: items with an answer but no score rows —
        or, when ``metrics`` is given, missing any of those metrics. A failed score counts as
        scored. Either list may be ``[]``. Raises :class:`InputError` if no such run.
        """
        with self._tx(f"read the progress of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            statuses = ("pending", "cancelled", "error") if retry_errors else ("pending", "cancelled")
            answers = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT idx FROM results WHERE run_id = ? AND status IN ({','.join('?' * len(statuses))}) "
                    "ORDER BY idx",
                    (run_id, *statuses),
                )
            ]
            answered = [
                int(r[0])
                for r in conn.execute(
                    "SELECT idx FROM results WHERE run_id = ? AND status = 'ok' ORDER BY idx", (run_id,)
                )
            ]
            have: dict[int, set[str]] = {}
            for idx, metric in conn.execute("SELECT idx, metric FROM scores WHERE run_id = ?", (run_id,)):
                have.setdefault(int(idx), set()).add(metric)
        wanted = set(metrics or ())
        if wanted:
            need_scores = [i for i in answered if not wanted <= have.get(i, set())]
        else:
            need_scores = [i for i in answered if not have.get(i)]
        return {"answers": answers, "scores": need_scores}

    # --- request timeline ---------------------------------------------------------------------
    def save_requests(self, run_id: int, timings: Iterable[RequestTiming]) -> int:
        """Append timeline rows for a run; return how many were written (0 for an empty iterable).

        Raises :class:`StorageError` when the run does not exist or a start/end is not finite.
        """
        rows = []
        for t in timings:
            start, end = _finite(t.start), _finite(t.end)
            if start is None or end is None:
                raise StorageError(
                    f"Run #{run_id}: the timing of item {t.index} ({t.phase}) has a non-finite start or "
                    "end time; the timeline was not saved."
                )
            rows.append(
                (
                    run_id,
                    int(t.index),
                    t.phase,
                    t.label,
                    start,
                    end,
                    int(t.attempts),
                    t.status,
                    _finite(t.throttled_s) or 0.0,
                    int(t.input_tokens),
                    int(t.output_tokens),
                    _to_json(_refuse_secrets(t.extra, "extra"), "a request's extra data"),
                )
            )
        if not rows:
            return 0
        with self._tx(f"save the request timeline of run #{run_id}", write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StorageError(
                    f"Run #{run_id} no longer exists (it was deleted); its timeline was not saved."
                )
            conn.executemany(
                'INSERT INTO requests(run_id, idx, phase, label, start, "end", attempts, status, '
                "throttled_s, input_tokens, output_tokens, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def get_requests(self, run_id: int) -> list[RequestTiming]:
        """The run's timeline ordered by start time; ``[]`` when none. :class:`InputError` if no run."""
        with self._tx(f"read the timeline of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            rows = conn.execute(
                'SELECT idx, phase, label, start, "end", attempts, status, throttled_s, input_tokens, '
                "output_tokens, extra FROM requests WHERE run_id = ? ORDER BY start, id",
                (run_id,),
            ).fetchall()
        return [
            RequestTiming(
                index=r[0],
                phase=r[1],
                label=r[2],
                start=r[3],
                end=r[4],
                attempts=r[5],
                status=r[6],
                throttled_s=r[7],
                input_tokens=r[8],
                output_tokens=r[9],
                extra=_from_json(r[10], f"run #{run_id} timeline", {}),
            )
            for r in rows
        ]

    # --- judge cache --------------------------------------------------------------------------
    def judge_cache_get(self, key: str) -> tuple[float, str | None] | None:
        """``(value, reason)`` cached under ``key``, or ``None`` on a miss."""
        with self._tx("read the judge cache", write=False) as conn:
            row = conn.execute("SELECT value, reason FROM judge_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else (float(row[0]), row[1])

    def judge_cache_put(self, key: str, value: float | None, reason: str | None) -> bool:
        """Cache a successful judgement under ``key`` (replacing any older one); return True.

        Failures are never cached: a ``None`` or non-finite ``value`` is ignored (returns False).
        """
        v = _finite(value)
        if v is None:
            return False
        with self._tx("write the judge cache", write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO judge_cache(key, value, reason, created_at) VALUES (?, ?, ?, ?)",
                (key, v, reason, _now()),
            )
        return True


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
_RUN_COLUMNS = (
    "id, created_at, finished_at, question_set, backend, mode, suite, status, config, timings, "
    "summary, n_questions"
)

_SECRET_KEY_NAMES = frozenset(
    {
        "apikey",
        "xapikey",
        "authorization",
        "password",
        "passwd",
        "secret",
        "token",
        "accesstoken",
        "authtoken",
        "bearertoken",
        "secretkey",
        "clientsecret",
    }
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _set_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("A question set needs a name.")
    name = " ".join(name.split())
    if len(name) > MAX_SET_NAME_CHARS:
        raise InputError(f"A question set name can have at most {MAX_SET_NAME_CHARS} characters.")
    return name


def _available(names: list[str]) -> str:
    if not names:
        return "No question sets are saved yet."
    shown = ", ".join(f"'{n}'" for n in names[:5])
    return f"Saved sets: {shown}{', …' if len(names) > 5 else ''}."


def _no_run(run_id: int) -> str:
    return f"There is no run #{run_id} in the history (it may have been deleted)."


def _missing_result(conn: sqlite3.Connection, run_id: int, index: int, what: str) -> str:
    row = conn.execute("SELECT n_questions FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return f"Run #{run_id} no longer exists (it was deleted); the {what} of item {index} was not saved."
    return f"Run #{run_id} has no item {index} (it has {row[0]} questions); the {what} were not saved."


def _result_status(answer: str | None, error: str | None, error_kind: str | None) -> str:
    if answer is not None:
        return "ok"
    if error_kind in ("CancelledError", "cancelled"):
        return "cancelled"
    if error is not None:
        return "error"
    return "pending"


def _finite(x: Any) -> float | None:
    """``float(x)`` when it is a finite number, else ``None``."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _score_value(s: MetricScore) -> tuple[float | None, str | None]:
    if s.value is None:
        return None, s.error or NO_VALUE_ERROR
    try:
        f = float(s.value)
    except (TypeError, ValueError):
        return None, f"metric returned a non-number ({type(s.value).__name__})"
    if math.isnan(f):
        return None, NAN_ERROR
    if math.isinf(f):
        return None, INF_ERROR
    return f, s.error


def _refuse_secrets(obj: Any, path: str, depth: int = 0) -> Any:
    """Return ``obj`` unchanged, or raise StorageError if it holds something that looks secret."""
    if depth > _MAX_JSON_DEPTH:
        raise StorageError(f"Refusing to store {path}: it is nested too deeply.")
    refuse = (
        f"Refusing to store {path}: it looks like a secret. API keys and other secrets are never "
        "written to the history database; remove it from the run's configuration."
    )
    if isinstance(obj, Secret):
        raise StorageError(refuse)
    if isinstance(obj, str):
        if obj.startswith("sk-ant-"):
            raise StorageError(refuse)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            norm = re.sub(r"[^a-z0-9]", "", str(k).lower())
            sub = f"{path}.{k}"
            if norm in _SECRET_KEY_NAMES or norm.endswith(("apikey", "secret", "password")):
                raise StorageError(
                    f"Refusing to store {sub}: it looks like a secret. API keys and other secrets are "
                    "never written to the history database; remove it from the run's configuration."
                )
            _refuse_secrets(v, sub, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            _refuse_secrets(v, f"{path}[{i}]", depth + 1)
    return obj


def _clean(obj: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``obj`` with every non-finite float replaced by ``None``."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError("nested too deeply")
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_clean(v, depth + 1) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _clean(dataclasses.asdict(obj), depth + 1)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, without importing numpy
        return _clean(obj.tolist(), depth + 1)
    raise TypeError(f"a {type(obj).__name__} is not JSON-serialisable")


def _to_json(obj: Any, what: str) -> str:
    try:
        return json.dumps(_clean(obj), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"Could not save {what}: {exc}.") from exc


def _from_json(text: str | None, what: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StorageError(f"The stored {what} are damaged ({exc}); delete that run.") from exc


def _run_record(r: Sequence[Any]) -> RunRecord:
    what = f"data of run #{r[0]}"
    return RunRecord(
        id=int(r[0]),
        created_at=r[1],
        finished_at=r[2],
        question_set=r[3],
        backend=r[4],
        mode=r[5],
        suite=r[6],
        status=r[7],
        config=_from_json(r[8], what, {}),
        timings=_from_json(r[9], what, {}),
        summary=_from_json(r[10], what, {}),
        n_questions=int(r[11]),
    )


# --- run ownership: which process is executing a "running" run ------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' when unknown/absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()  # fields after "(comm)" start at field 3
    return fields[19] if len(fields) > 19 else ""  # field 22: starttime


def _owner_token(pid: int | None = None) -> str:
    """``host|boot id|pid|start ticks``: identifies a process even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}|{_boot_id()}|{pid}|{_start_ticks(pid)}"


def _owner_alive(owner: str) -> bool:
    """Whether the process that wrote ``owner`` is still running (best effort, never raises)."""
    parts = owner.split("|")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    host, boot, pid_s, ticks = parts
    pid = int(pid_s)
    if host != socket.gethostname() or boot != _boot_id():
        return False  # another machine / container or a reboot: that process is gone
    if ticks:
        return _start_ticks(pid) == ticks
    if os.name == "nt":  # no /proc, and os.kill(pid, 0) would terminate the process on Windows
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
