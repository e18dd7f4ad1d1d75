"""Alembic migrations of the history database, for SQLite and PostgreSQL alike.

The store runs them itself when it opens a database (:mod:`rag_core.storage.migrate`); users need
no ``alembic.ini``. Developers can still use Alembic's commands through the store's own setup:
``python -m rag_core.storage.migrate`` prints the versions.

Revisions live in ``versions/``, one file each, named ``NNNN_slug.py`` with ``revision = "NNNN"``
and ``down_revision`` the previous number: the number is the schema version (``SCHEMA_VERSION`` is
the highest file number; SQLite files also carry it in ``PRAGMA user_version``, so an older app
refuses a newer file). ``0006`` is the baseline: on SQLite it finishes the legacy hand-written
``MIGRATIONS`` list (files of versions 1–5 are upgraded by it); on PostgreSQL it creates the same
schema with PostgreSQL types (identity ids, DOUBLE PRECISION).

Adding a schema change (e.g. turning an entry appended to the legacy ``MIGRATIONS`` list into a
revision — a minute's work): copy ``versions/TEMPLATE.txt`` to ``versions/0007_audit.py``, set
``revision = "0007"`` and ``down_revision = "0006"`` (the previous file's number), paste the tuple of
statements as ``STATEMENTS``, and remove the entry from ``MIGRATIONS`` (which stays frozen at its
6 released entries; a test checks it). Statements must be portable (they run unchanged on SQLite
and PostgreSQL): types TEXT, INTEGER, BIGINT, DOUBLE PRECISION; no AUTOINCREMENT, WITHOUT ROWID,
PRAGMA, strftime/datetime()/json_*; ``INSERT … ON CONFLICT`` rather than ``INSERT OR …``. When a
statement must differ, branch on ``op.get_bind().dialect.name`` in ``upgrade()``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["run_statements"]


def run_statements(statements: Iterable[str]) -> None:
    """Inside a revision's ``upgrade()``: run portable SQL statements, in order, as written."""
    from alembic import op

    bind = op.get_bind()
    for statement in statements:
        bind.exec_driver_sql(statement)
