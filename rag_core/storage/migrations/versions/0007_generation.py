"""Issue 14: the review queue of generated question pairs and the generation cache."""

from __future__ import annotations

from rag_core.storage.migrations import run_statements

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Portable SQL, run unchanged on SQLite and PostgreSQL (see rag_core/storage/migrations/__init__.py).
STATEMENTS: tuple[str, ...] = (
    # Issue 14 (generation). Question / expected-answer pairs Claude wrote from the documents,
    # waiting for the analyst's review (rag_core.storage.authoring): status pending → accepted
    # (into question_set) or rejected. sources: JSON list of source links; flags: JSON list
    # (e.g. "general_knowledge"). Ids are computed as MAX(id)+1 in the write transaction.
    """
    CREATE TABLE generated_pairs (
        id               BIGINT NOT NULL PRIMARY KEY,
        job              TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        collection       TEXT NOT NULL,
        kind             TEXT NOT NULL,
        question         TEXT NOT NULL,
        expected_answer  TEXT NOT NULL,
        expected         TEXT NOT NULL DEFAULT 'answer',
        sources          TEXT NOT NULL DEFAULT '[]',
        flags            TEXT NOT NULL DEFAULT '[]',
        model            TEXT NOT NULL DEFAULT '',
        status           TEXT NOT NULL DEFAULT 'pending',
        question_set     TEXT,
        reviewed_at      TEXT
    )
    """,
    "CREATE INDEX generated_pairs_status ON generated_pairs(status, collection)",
    # What Claude answered for one generation request (passages + kind + model + prompt
    # version), so the same request is never paid for twice.
    """
    CREATE TABLE generation_cache (
        key            TEXT NOT NULL PRIMARY KEY,
        model          TEXT NOT NULL,
        response       TEXT NOT NULL,
        input_tokens   BIGINT NOT NULL DEFAULT 0,
        output_tokens  BIGINT NOT NULL DEFAULT 0,
        created_at     TEXT NOT NULL
    )
    """,
)


def upgrade() -> None:
    run_statements(STATEMENTS)
