"""Issue 14: what a new document version did to a question's source link (stale flags)."""

from __future__ import annotations

from rag_core.storage.migrations import run_statements

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Portable SQL, run unchanged on SQLite and PostgreSQL (see rag_core/storage/migrations/__init__.py).
STATEMENTS: tuple[str, ...] = (
    # Issue 14, stale questions (rag_core.coverage.stale): what a new document version did to a
    # link. new_passage: the current passage of the same section ('' when the section is gone),
    # stale_reason: why it is flagged, stale_at: when, checked_version: the document version the
    # link was last compared with. Portable SQL (SQLite and PostgreSQL).
    "ALTER TABLE question_sources ADD COLUMN new_passage TEXT",
    "ALTER TABLE question_sources ADD COLUMN stale_reason TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE question_sources ADD COLUMN stale_at TEXT",
    "ALTER TABLE question_sources ADD COLUMN checked_version INTEGER",
)


def upgrade() -> None:
    run_statements(STATEMENTS)
