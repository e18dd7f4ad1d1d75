"""Run attempts: one row per execution of a run, holding its ledger (:mod:`rag_core.usage`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.storage.connection import SqliteBase, _now
from rag_core.storage.jsonsafe import from_json, refuse_secrets, to_json

__all__ = ["AttemptsStore"]


class AttemptsStore(SqliteBase):
    """Attempt methods of :class:`~rag_core.storage.store.HistoryStore`."""

    def start_attempt(self, run_id: int) -> int:
        """Record that run ``run_id`` starts executing (again); return the attempt number (1, 2…).

        Raises :class:`StorageError` when the run does not exist.
        """
        now = _now()
        with self._tx(f"start an attempt of run #{run_id}", write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StorageError(f"Run #{run_id} no longer exists (it was deleted).")
            row = conn.execute("SELECT MAX(attempt) FROM run_attempts WHERE run_id = ?", (run_id,)).fetchone()
            attempt = int(row[0] or 0) + 1
            conn.execute(
                "INSERT INTO run_attempts(run_id, attempt, started_at, heartbeat_at) VALUES (?, ?, ?, ?)",
                (run_id, attempt, now, now),
            )
        return attempt

    def save_attempt(
        self, run_id: int, attempt: int, ledger: Mapping[str, Any], *, ended: bool = False
    ) -> None:
        """Replace the attempt's ledger snapshot (and stamp its end when ``ended``).

        Raises :class:`StorageError` when the attempt does not exist or the ledger holds a secret.
        """
        text = to_json(refuse_secrets(ledger, "ledger"), f"the ledger of run #{run_id}")
        now = _now()
        with self._tx(f"record the progress of run #{run_id}", write=True) as conn:
            cur = conn.execute(
                "UPDATE run_attempts SET ledger = ?, heartbeat_at = ?"
                + (", ended_at = ?" if ended else "")
                + " WHERE run_id = ? AND attempt = ?",
                (text, now, *((now,) if ended else ()), run_id, attempt),
            )
            if cur.rowcount == 0:
                raise StorageError(
                    f"Run #{run_id} no longer exists (it was deleted); its progress was not saved."
                )

    def get_attempts(self, run_id: int) -> list[dict[str, Any]]:
        """Ledger snapshots of every attempt of the run, oldest first (``[]`` for runs recorded
        before attempts existed). Each dict has ``attempt``, ``started_at``, ``ended_at`` (None
        when the attempt never finished) and the ledger's keys. :class:`InputError` if no run."""
        with self._tx(f"read the attempts of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(f"There is no run #{run_id} in the history (it may have been deleted).")
            rows = conn.execute(
                "SELECT attempt, started_at, ended_at, ledger FROM run_attempts WHERE run_id = ? ORDER BY attempt",
                (run_id,),
            ).fetchall()
        return [
            {
                **from_json(r[3], f"ledger of run #{run_id}", {}),
                "attempt": int(r[0]),
                "started_at": r[1],
                "ended_at": r[2],
            }
            for r in rows
        ]
