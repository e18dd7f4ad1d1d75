"""The audit trail and who started each run (issue 15).

Contracts (in addition to the store's, see :mod:`rag_core.storage.store`)
- The audit trail is **append-only**: :meth:`AuditStore.append_audit` adds a row; no method here
  (or anywhere in the store) updates or deletes one. Deleting a run, document or set keeps its
  entries. Ids increase by one (``MAX(id) + 1`` computed inside the write transaction).
- :meth:`AuditStore.set_run_started_by` writes the run's starter and, when given, its audit entry in
  ONE transaction: both or neither.
- ``started_by`` is ``''`` for runs recorded before sign-in existed (shown as "unknown").
- SQL here is portable (SQLite and PostgreSQL): timestamps come from Python, no rowid/lastrowid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.storage.connection import SqliteBase, _now

__all__ = ["AuditEntry", "AuditStore"]

#: Longest text kept in ``target`` / ``detail`` (longer is cut with "…").
MAX_AUDIT_TEXT = 2000


@dataclass(frozen=True)
class AuditEntry:
    """One thing someone did."""

    id: int
    """Increasing: a higher id happened later."""
    at: str
    """ISO-8601 UTC timestamp."""
    actor: str
    """Who: the principal's id (e-mail, ``local-admin`` or ``local-admin (CLI)``)."""
    role: str
    """Their role at the time."""
    action: str
    """What (:class:`rag_core.access.AuditAction`)."""
    target: str
    """On what, e.g. ``run #12`` or ``All documents / handbook.pdf v3``."""
    detail: str
    """Anything else worth knowing (a verdict, a count, the reason of a refusal)."""

    HEADER = ("id", "at", "actor", "role", "action", "target", "detail")

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.at, self.actor, self.role, self.action, self.target, self.detail)


_COLUMNS = "id, at, actor, role, action, target, detail"


def _cut(text: str) -> str:
    text = str(text or "").replace("\x00", "")
    return text if len(text) <= MAX_AUDIT_TEXT else text[: MAX_AUDIT_TEXT - 1] + "…"


class AuditStore(SqliteBase):
    """Audit-trail and run-starter methods of :class:`~rag_core.storage.store.HistoryStore`."""

    def _insert_audit(
        self, conn: Any, actor: str, role: str, action: str, target: str, detail: str
    ) -> AuditEntry:
        row = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit_log").fetchone()
        entry = AuditEntry(
            int(row[0]), _now(), _cut(actor), str(role), str(action), _cut(target), _cut(detail)
        )
        conn.execute(f"INSERT INTO audit_log({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", entry.row())
        return entry

    def append_audit(
        self, *, actor: str, role: str, action: str, target: str = "", detail: str = ""
    ) -> AuditEntry:
        """Append one entry (its own transaction); returns it."""
        if not actor or not action:
            raise StorageError("An audit entry needs who and what; it was not written.")
        with self._tx("write the audit trail", write=True) as conn:
            return self._insert_audit(conn, actor, role, action, target, detail)

    def audit_entries(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        actor: str | None = None,
        actions: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first, filtered: ``since``/``until`` are ISO timestamps or dates
        (``at >= since``, ``at < until``), ``actor`` a substring (case-insensitive), ``actions``
        exact names. ``[]`` when none match."""
        if limit is not None and limit < 0:
            raise InputError("The number of audit entries to show cannot be negative.")
        where: list[str] = []
        params: list[Any] = []
        if since:
            where.append("at >= ?")
            params.append(since)
        if until:
            where.append("at < ?")
            params.append(until)
        if actor:
            where.append("LOWER(actor) LIKE ?")
            params.append(f"%{actor.strip().lower()}%")
        if actions:
            where.append(f"action IN ({', '.join('?' for _ in actions)})")
            params.extend(actions)
        sql = f"SELECT {_COLUMNS} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._tx("read the audit trail", write=False) as conn:
            rows = conn.execute(sql, tuple(params)).fetchall()
        return [
            AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]))
            for r in rows
        ]

    # --- who started a run ---------------------------------------------------------------------
    def set_run_started_by(
        self,
        run_id: int,
        started_by: str,
        *,
        audit: tuple[str, str, str, str, str] | None = None,
    ) -> None:
        """Record who started ``run_id`` and (``audit`` = actor, role, action, target, detail) its
        audit entry, in one transaction. :class:`StorageError` when the run no longer exists."""
        with self._tx(f"record who started run #{run_id}", write=True) as conn:
            cur = conn.execute("UPDATE runs SET started_by = ? WHERE id = ?", (started_by, run_id))
            if cur.rowcount == 0:
                raise StorageError(f"Run #{run_id} no longer exists; who started it was not recorded.")
            if audit is not None:
                self._insert_audit(conn, *audit)

    def run_started_by(self, run_id: int) -> str:
        """Who started ``run_id`` (``''`` = unknown). :class:`InputError` when there is no such run."""
        with self._tx(f"read run #{run_id}", write=False) as conn:
            row = conn.execute("SELECT started_by FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"There is no run #{run_id} in the history (it may have been deleted).")
        return str(row[0] or "")

    def runs_started_by(self) -> dict[int, str]:
        """Run id → who started it, for every run (``''`` = unknown)."""
        with self._tx("read who started the runs", write=False) as conn:
            rows = conn.execute("SELECT id, started_by FROM runs").fetchall()
        return {int(r[0]): str(r[1] or "") for r in rows}
