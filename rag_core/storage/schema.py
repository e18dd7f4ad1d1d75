"""The history database's schema: its version, the legacy migrations, and the constants every part of the store shares.

Schema changes are Alembic revisions (:mod:`rag_core.storage.migrations`, one file per version
under ``versions/``), run when the store opens a database, SQLite or PostgreSQL.

``MIGRATIONS`` is the legacy, hand-written list SQLite files were built with before Alembic:
``MIGRATIONS[v]`` upgrades a file from ``PRAGMA user_version`` *v* to *v + 1*. It is frozen at its
:data:`LEGACY_VERSION` released entries, which the baseline revision ``0006`` applies to old (and
new) SQLite files. Do not append to it: add a revision instead (a new entry here is ignored; see
``rag_core/storage/migrations/__init__.py`` for how to turn one into a revision in a minute).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "BUSY_TIMEOUT_S",
    "INF_ERROR",
    "LEGACY_VERSION",
    "MAX_COMMENT_CHARS",
    "MAX_SET_NAME_CHARS",
    "MIGRATIONS",
    "NAN_ERROR",
    "NO_VALUE_ERROR",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
]

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
#: Longest verdict comment accepted.
MAX_COMMENT_CHARS = 2000
#: Deepest nesting accepted in a JSON column (config / timings / summary / contexts).

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
        # owner identifies the process that created the run (see rag_core.storage.owner).
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
    (
        # One row per execution of a run (the first try and each resume): its ledger of Claude
        # requests and phase times (rag_core.usage), rewritten every second while it executes.
        """
        CREATE TABLE run_attempts (
            run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            attempt       INTEGER NOT NULL,
            started_at    TEXT NOT NULL,
            heartbeat_at  TEXT NOT NULL,
            ended_at      TEXT,
            ledger        TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, attempt)
        ) WITHOUT ROWID
        """,
    ),
    (
        # Issue 10: documents belong to a named collection and keep a version history.
        # documents is rebuilt with the key (collection, name): the same file name may exist in two
        # collections. Existing documents join the default collection as version 1.
        """
        CREATE TABLE documents_v3 (
            collection  TEXT NOT NULL DEFAULT 'All documents',
            name        TEXT NOT NULL,
            sha256      TEXT NOT NULL,
            pages       INTEGER NOT NULL,
            chunks      INTEGER NOT NULL,
            size_bytes  INTEGER NOT NULL,
            added_at    TEXT NOT NULL,
            version     INTEGER NOT NULL DEFAULT 1,
            ocr_pages   INTEGER NOT NULL DEFAULT 0,
            format      TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (collection, name)
        ) WITHOUT ROWID
        """,
        """
        INSERT INTO documents_v3(collection, name, sha256, pages, chunks, size_bytes, added_at)
        SELECT 'All documents', name, sha256, pages, chunks, size_bytes, added_at FROM documents
        """,
        "DROP TABLE documents",
        "ALTER TABLE documents_v3 RENAME TO documents",
        # One row per distinct content ever indexed under (collection, name); kept when the
        # document is deleted, so numbering continues and past runs can still be explained.
        # sections: {section path: fingerprint}; sections_changed: paths that differ from the
        # previous version (JSON list).
        """
        CREATE TABLE document_versions (
            collection        TEXT NOT NULL,
            name              TEXT NOT NULL,
            version           INTEGER NOT NULL,
            sha256            TEXT NOT NULL,
            added_at          TEXT NOT NULL,
            chunks            INTEGER NOT NULL,
            pages             INTEGER NOT NULL,
            size_bytes        INTEGER NOT NULL,
            ocr_pages         INTEGER NOT NULL DEFAULT 0,
            sections          TEXT NOT NULL DEFAULT '{}',
            sections_changed  TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (collection, name, version)
        ) WITHOUT ROWID
        """,
        """
        INSERT INTO document_versions(collection, name, version, sha256, added_at, chunks, pages,
                                      size_bytes)
        SELECT collection, name, 1, sha256, added_at, chunks, pages, size_bytes FROM documents
        """,
        """
        CREATE TABLE collections (
            name        TEXT PRIMARY KEY,
            created_at  TEXT NOT NULL
        )
        """,
        "INSERT INTO collections(name, created_at) VALUES ('All documents', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))",
        # NULL: the set is not bound (a run chooses its collection).
        "ALTER TABLE question_sets ADD COLUMN collection TEXT",
    ),
    (
        # Experiments (rag_core.storage.experiments): named, versioned assistant configurations
        # (a save that changes nothing adds no version), a version row per question-set save, a
        # run's name, note and identity (config version, question-set version, documents, code),
        # and sweeps.
        """
        CREATE TABLE assistant_configs (
            name         TEXT NOT NULL,
            version      INTEGER NOT NULL,
            created_at   TEXT NOT NULL,
            fingerprint  TEXT NOT NULL,
            config       TEXT NOT NULL,
            note         TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (name, version)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE question_set_versions (
            set_name    TEXT NOT NULL,
            version     INTEGER NOT NULL,
            sha256      TEXT NOT NULL,
            n_items     INTEGER NOT NULL,
            created_at  TEXT NOT NULL,
            PRIMARY KEY (set_name, version)
        ) WITHOUT ROWID
        """,
        "ALTER TABLE runs ADD COLUMN name TEXT",
        "ALTER TABLE runs ADD COLUMN note TEXT",
        "ALTER TABLE runs ADD COLUMN identity TEXT NOT NULL DEFAULT '{}'",
        """
        CREATE TABLE sweeps (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at    TEXT NOT NULL,
            finished_at   TEXT,
            name          TEXT NOT NULL,
            question_set  TEXT,
            status        TEXT NOT NULL,
            plan          TEXT NOT NULL DEFAULT '{}',
            run_ids       TEXT NOT NULL DEFAULT '[]',
            counters      TEXT NOT NULL DEFAULT '{}',
            owner         TEXT NOT NULL DEFAULT ''
        )
        """,
    ),
    (
        # Issue 12. What each question expects: "answer" (the default) or "decline" (the policy
        # does not cover it), in question sets and in each run's own copy of its questions.
        "ALTER TABLE question_items ADD COLUMN expected TEXT NOT NULL DEFAULT 'answer' "
        "CHECK (expected IN ('answer', 'decline'))",
        "ALTER TABLE results ADD COLUMN expected TEXT NOT NULL DEFAULT 'answer' "
        "CHECK (expected IN ('answer', 'decline'))",
        # A metric that does not apply to a question (skipped: value NULL, reason says why) is
        # neither a score nor a failure.
        "ALTER TABLE scores ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0",
        # The analyst's verdict on one answer, given on the Review page or with the CLI's `label`.
        # Only verdicts given on this result are stored; a later run's identical answer to the same
        # question inherits the latest of them when read (rag_core.storage.verdicts).
        """
        CREATE TABLE verdicts (
            run_id       INTEGER NOT NULL,
            idx          INTEGER NOT NULL,
            verdict      TEXT NOT NULL CHECK (verdict IN ('correct', 'partly', 'wrong')),
            comment      TEXT NOT NULL DEFAULT '',
            labelled_at  TEXT NOT NULL,
            PRIMARY KEY (run_id, idx),
            FOREIGN KEY (run_id, idx) REFERENCES results(run_id, idx) ON DELETE CASCADE
        ) WITHOUT ROWID
        """,
        # Inheritance looks answers up by question text.
        "CREATE INDEX results_question ON results(question)",
    ),
    (
        # Issue 14. The passages that support each question's expected answer (rag_core.storage.sources),
        # keyed by question text so reordering or re-saving a set keeps them. Portable SQL (runs
        # unchanged on SQLite and PostgreSQL). stale: 1 when a new document version changed or
        # removed the passage (the analyst clears it by editing or confirming the expected answer).
        """
        CREATE TABLE question_sources (
            set_name     TEXT NOT NULL,
            question     TEXT NOT NULL,
            position     INTEGER NOT NULL,
            collection   TEXT NOT NULL,
            document     TEXT NOT NULL,
            version      INTEGER NOT NULL,
            section      TEXT NOT NULL DEFAULT '',
            page         INTEGER,
            chunk_id     TEXT NOT NULL,
            passage      TEXT NOT NULL,
            fingerprint  TEXT NOT NULL,
            origin       TEXT NOT NULL DEFAULT 'generated',
            stale        INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (set_name, question, position)
        )
        """,
        "CREATE INDEX question_sources_document ON question_sources(collection, document)",
    ),
)
#: The last version built by the legacy list (the Alembic baseline revision, ``0006``).
LEGACY_VERSION = 6


def _head_version() -> int:
    names = (Path(__file__).parent / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    return max((int(p.name[:4]) for p in names if re.fullmatch(r"\d{4}_\w+\.py", p.name)), default=0)


#: The schema version this code writes: the highest Alembic revision number (revision files are
#: named ``NNNN_slug.py`` with ``revision = "NNNN"``). SQLite files also carry it in
#: ``PRAGMA user_version``, so an older app refuses a newer file.
SCHEMA_VERSION = _head_version()
