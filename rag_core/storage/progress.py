"""Progress of runs as stored: what another app process sharing the history can see of a run it
does not execute (several app processes on one PostgreSQL, or the app next to a CLI run).

Portable SQL (SQLite and PostgreSQL). Read-only; the numbers are those already committed by the
process executing the run (an answer or a score is committed as soon as it arrives).
"""

from __future__ import annotations

from typing import Any

from rag_core.storage.connection import SqliteBase
from rag_core.storage.jsonsafe import from_json

__all__ = ["ProgressStore"]


class ProgressStore(SqliteBase):
    """Stored-progress methods of :class:`~rag_core.storage.store.HistoryStore`."""

    def running_run_ids(self, *, others_only: bool = False) -> list[int]:
        """Ids of runs whose status is ``running`` (in any process), oldest first; ``[]`` when none.

        ``others_only``: only runs another process created or resumed (the run's stored owner is
        not this process). A run is committed as ``running`` a moment before its process registers
        it as live, so "not live here" alone would call this process's newest run another's."""
        with self._tx("list the running runs", write=False) as conn:
            rows = conn.execute("SELECT id, owner FROM runs WHERE status = 'running' ORDER BY id").fetchall()
        return [int(r[0]) for r in rows if not (others_only and r[1] == self._owner)]

    def stored_progress(self, run_id: int) -> dict[str, Any] | None:
        """``{status, total, answered, errors, scored, created_at, ledger}`` of a run as committed so
        far (``ledger``: the latest attempt's snapshot, ``{}`` before it starts); None when there is
        no such run."""
        with self._tx(f"read the progress of run #{run_id}", write=False) as conn:
            run = conn.execute(
                "SELECT status, n_questions, created_at FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if run is None:
                return None
            counts = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) FROM results WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            scored = conn.execute(
                "SELECT COUNT(DISTINCT idx) FROM scores WHERE run_id = ?", (run_id,)
            ).fetchone()
            ledger = conn.execute(
                "SELECT ledger FROM run_attempts WHERE run_id = ? ORDER BY attempt DESC LIMIT 1", (run_id,)
            ).fetchone()
        return {
            "status": str(run[0]),
            "total": int(run[1]),
            "created_at": str(run[2]),
            "answered": int(counts[0]),
            "errors": int(counts[1]),
            "scored": int(scored[0]),
            "ledger": from_json(ledger[0], f"ledger of run #{run_id}", {}) if ledger else {},
        }
