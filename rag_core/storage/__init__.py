"""The history: question sets, documents, runs, results, timelines, judge cache — in a SQLite file
(default) or on PostgreSQL (``RAG_DATABASE_URL``), through SQLAlchemy Core, migrated by Alembic.

- :mod:`~rag_core.storage` — :class:`HistoryStore` and its contracts (start there).
- :mod:`~rag_core.storage.records` — what it returns: :class:`QuestionSetInfo`, :class:`RunRecord`,
  :class:`ResultRecord`, :class:`VerdictRecord`.
- :mod:`~rag_core.storage.schema` — schema version, legacy migrations, run statuses, score error texts.
- :mod:`~rag_core.storage.migrations` — the Alembic revisions (how to add one: its docstring).
- :mod:`~rag_core.storage.dialects` — SQLite vs PostgreSQL: opening, write lock, error messages.
- :mod:`~rag_core.storage.jsonsafe` — NaN cleaning and secret refusal at the storage boundary.
- :mod:`~rag_core.storage.owner` — which process owns a running run.

Import public names from here: ``from rag_core.storage import HistoryStore, RunRecord``.
"""

from rag_core.storage.audit import AuditEntry
from rag_core.storage.records import QuestionSetInfo, ResultRecord, RunRecord, VerdictRecord
from rag_core.storage.store import HistoryStore

__all__ = ["AuditEntry", "HistoryStore", "QuestionSetInfo", "ResultRecord", "RunRecord", "VerdictRecord"]
