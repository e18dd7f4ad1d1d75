"""Issue 15: who started a run, and the append-only audit trail."""

from __future__ import annotations

from rag_core.storage.migrations import run_statements

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Portable SQL, run unchanged on SQLite and PostgreSQL (see rag_core/storage/migrations/__init__.py).
STATEMENTS: tuple[str, ...] = (
    # Issue 15. Sign-in, roles and the audit trail (rag_core.storage.audit). Portable SQL.
    # Who started a run: the principal's owner key (an e-mail once sign-in is on); '' = unknown
    # (runs from before sign-in, or local). Not the process `owner` token of a running run.
    "ALTER TABLE runs ADD COLUMN started_by TEXT NOT NULL DEFAULT ''",
    # Append-only: the store has no method that updates or deletes a row. `at` is an ISO-8601
    # UTC timestamp written by Python; `id` is MAX(id) + 1 inside the write transaction.
    """
    CREATE TABLE audit_log (
        id      BIGINT NOT NULL PRIMARY KEY,
        at      TEXT NOT NULL,
        actor   TEXT NOT NULL,
        role    TEXT NOT NULL DEFAULT '',
        action  TEXT NOT NULL,
        target  TEXT NOT NULL DEFAULT '',
        detail  TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX audit_log_at ON audit_log(at)",
)


def upgrade() -> None:
    run_statements(STATEMENTS)
