"""Runs: create, update, list, delete, and mark the ones whose process died as interrupted."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.experiment import RunIdentity
from rag_core.models import QAItem
from rag_core.storage.connection import SqliteBase, TxConnection, _now
from rag_core.storage.jsonsafe import from_json, refuse_secrets, to_json
from rag_core.storage.owner import heartbeat_recent, owner_alive, owner_on_this_host
from rag_core.storage.records import RunRecord
from rag_core.storage.schema import RUN_STATUSES
from rag_core.summary import RunSummary

__all__ = ["RunsStore"]


class RunsStore(SqliteBase):
    """Run methods of :class:`~rag_core.storage.store.HistoryStore`."""

    # --- runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        question_set: str | None,
        backend: str,
        mode: str,
        suite: str,
        config: Mapping[str, Any],
        items: Sequence[QAItem],
    ) -> int:
        """Start a run with status ``"running"`` and one ``"pending"`` result per item; return its id.

        Raises :class:`InputError` when ``items`` is empty, :class:`StorageError` when ``config``
        holds a secret (e.g. an ``api_key`` key) or cannot be stored as JSON, or when the database
        file is damaged (checked first with :meth:`check`, so nothing is written into it).
        """
        if not items:
            raise InputError("A run needs at least one question; the question set is empty.")
        for i, it in enumerate(items):
            if not isinstance(it.question, str) or not isinstance(it.ground_truth, str):
                raise InputError(f"Question {i + 1} of the run is not text; re-import the question set.")
        config_json = to_json(refuse_secrets(config, "config"), "the run configuration")
        self.check()  # never write a new run into a damaged file
        now = _now()
        with self._tx("create the run", write=True) as conn:
            cur = conn.execute(
                "INSERT INTO runs(created_at, question_set, backend, mode, suite, status, config, "
                "n_questions, owner) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?) RETURNING id",
                (now, question_set, backend, mode, suite, config_json, len(items), self._owner),
            )
            run_id = int(cur.fetchone()[0])
            conn.executemany(
                "INSERT INTO results(run_id, idx, question, ground_truth, expected, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, i, it.question, it.ground_truth, str(it.expected), now)
                    for i, it in enumerate(items)
                ],
            )
        return run_id

    def update_run(
        self,
        run_id: int,
        *,
        status: str | None = None,
        timings: Mapping[str, Any] | None = None,
        summary: RunSummary | None = None,
        config: Mapping[str, Any] | None = None,
        finished: bool = False,
    ) -> None:
        """Change a run. Arguments left ``None`` are unchanged; dicts given *replace* the stored ones.

        ``finished=True`` stamps ``finished_at`` with the current time. Setting ``status="running"``
        (resume) makes this process the run's owner, so others do not mark it interrupted. Raises
        :class:`StorageError` for an unknown status, a missing run, or a dict holding a secret.
        """
        sets: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in RUN_STATUSES:
                raise StorageError(
                    f"Unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}."
                )
            sets.append("status = ?")
            params.append(status)
            if status == "running":  # a resumed run now belongs to the process resuming it
                sets.append("owner = ?")
                params.append(self._owner)
        summary_json = summary.to_json() if summary is not None else None
        for column, value in (("timings", timings), ("summary", summary_json), ("config", config)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(to_json(refuse_secrets(value, column), f"the {column} of run #{run_id}"))
        if finished:
            sets.append("finished_at = ?")
            params.append(_now())
        if not sets:
            return
        with self._tx(f"update run #{run_id}", write=True) as conn:
            cur = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*params, run_id))
            if cur.rowcount == 0:
                raise StorageError(
                    f"Run #{run_id} no longer exists (it was deleted); its update was not saved."
                )

    def get_run(self, run_id: int) -> RunRecord:
        """One run. Raises :class:`InputError` naming the run when it does not exist."""
        with self._tx(f"read run #{run_id}", write=False) as conn:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(_no_run(run_id))
        return _run_record(row)

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs newest first (at most ``limit``); ``[]`` when none. Never loads per-question results."""
        if limit is not None and limit < 0:
            raise InputError("The number of runs to list cannot be negative.")
        with self._tx("list the runs", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC" + ("" if limit is None else " LIMIT ?"),
                () if limit is None else (int(limit),),
            ).fetchall()
        return [_run_record(r) for r in rows]

    def delete_run(self, run_id: int, *, force: bool = False) -> bool:
        """Delete a run with its results, scores and request timeline. ``False`` if it did not exist.

        Refuses (:class:`StorageError`) to delete a run that is still running in a live process,
        unless ``force=True``.
        """
        with self._tx(f"delete run #{run_id}", write=True) as conn:
            row = conn.execute("SELECT status, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            if row[0] == "running" and not force and _run_alive(conn, run_id, row[1]):
                raise StorageError(f"Run #{run_id} is still running; cancel it before deleting it.")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return True

    def mark_interrupted(self, exclude: Collection[int] | None = None) -> list[int]:
        """Mark runs left ``"running"`` by a dead process as ``"interrupted"``; return their ids.

        Call at app / CLI start. Runs created by *this* process are marked unless their id is in
        ``exclude`` (pass the runs this process is still executing). Runs owned by another live
        process on this machine (e.g. a CLI run while the app starts) are left alone.
        ``finished_at`` is set to the run's last recorded activity.
        """
        skip = set(exclude or ())
        with self._tx("mark interrupted runs", write=True) as conn:
            rows = conn.execute("SELECT id, owner FROM runs WHERE status = 'running'").fetchall()
            ids = [
                int(rid)
                for rid, owner in rows
                if rid not in skip and (owner == self._owner or not _run_alive(conn, int(rid), owner))
            ]
            for rid in ids:
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, "
                    "(SELECT MAX(updated_at) FROM results WHERE run_id = runs.id), created_at) "
                    "WHERE id = ?",
                    (rid,),
                )
        return sorted(ids)


_RUN_COLUMNS = (
    "id, created_at, finished_at, question_set, backend, mode, suite, status, config, timings, "
    "summary, n_questions, name, note, identity"
)


def _run_alive(conn: TxConnection, run_id: int, owner: str) -> bool:
    """Whether the process executing a ``running`` run is alive: probed on this host; on another
    host (or container) sharing the history, judged by the run's last heartbeat."""
    if owner_on_this_host(owner):
        return owner_alive(owner)
    row = conn.execute(
        "SELECT COALESCE(MAX(a.heartbeat_at), MAX(r.created_at)) FROM runs r "
        "LEFT JOIN run_attempts a ON a.run_id = r.id WHERE r.id = ?",
        (run_id,),
    ).fetchone()
    return heartbeat_recent(row[0] if row else None)


def _no_run(run_id: int) -> str:
    return f"There is no run #{run_id} in the history (it may have been deleted)."


def _run_record(r: Sequence[Any]) -> RunRecord:
    what = f"data of run #{r[0]}"
    return RunRecord(
        id=int(r[0]),
        created_at=r[1],
        finished_at=r[2],
        question_set=r[3],
        backend=r[4],
        mode=r[5],
        suite=r[6],
        status=r[7],
        config=from_json(r[8], what, {}),
        timings=from_json(r[9], what, {}),
        summary=_summary(from_json(r[10], what, {}), r),
        n_questions=int(r[11]),
        name=r[12],
        note=r[13],
        identity=RunIdentity.from_json(from_json(r[14], what, {})),
    )


def _summary(data: dict[str, Any], r: Sequence[Any]) -> RunSummary | None:
    """The stored summary as a record (older shapes too); None when none was stored yet."""
    if not data:
        return None
    try:
        return RunSummary.from_json(
            data,
            run_id=int(r[0]),
            status=r[7],
            backend=r[4],
            mode=r[5],
            suite=r[6],
            n_questions=int(r[11]),
            timings=from_json(r[9], f"data of run #{r[0]}", {}),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise StorageError(f"The stored summary of run #{r[0]} is damaged ({exc}); delete that run.") from exc
