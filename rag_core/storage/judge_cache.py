"""The judge cache: successful judgements keyed by a hash of their inputs, shared by every run.

The key is computed by the evaluation package (:mod:`rag_core.evaluation`); failures are never
cached.
"""

from __future__ import annotations

from rag_core.storage.connection import SqliteBase, _now
from rag_core.storage.jsonsafe import finite

__all__ = ["JudgeCacheStore"]


class JudgeCacheStore(SqliteBase):
    """Judge-cache methods of :class:`~rag_core.storage.store.HistoryStore`."""

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
        v = finite(value)
        if v is None:
            return False
        with self._tx("write the judge cache", write=True) as conn:
            conn.execute(
                "INSERT INTO judge_cache(key, value, reason, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, reason = excluded.reason, "
                "created_at = excluded.created_at",
                (key, v, reason, _now()),
            )
        return True
