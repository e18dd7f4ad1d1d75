"""The analyst's verdicts on answers: save, clear, read — with inheritance by identical answer.

Contracts (in addition to the store's, see :mod:`rag_core.storage.store`)
- One verdict per result (run, question index); saving again replaces it (new time, new comment).
- A verdict is given to an *answer*: saving one for a question that has no answer, or for a run
  or question that does not exist, raises :class:`InputError` naming them (the CLI's ``label`` and
  the Review page pass what the analyst picked).
- Inheritance is computed when read, never copied: a result without a verdict of its own inherits
  the most recently given verdict on an *earlier* run's result with the same question text and an
  identical answer text (:attr:`VerdictRecord.inherited_from` names that run). A verdict given on
  the result itself always wins; deleting the earlier run (or its verdict) removes the inherited
  one too.
"""

from __future__ import annotations

from collections.abc import Iterable

from rag_core.errors import InputError
from rag_core.storage.connection import SqliteBase, TxConnection, _now
from rag_core.storage.records import VerdictRecord
from rag_core.storage.runs_store import _no_run
from rag_core.storage.schema import MAX_COMMENT_CHARS
from rag_core.vocab import Verdict, choice

__all__ = ["VerdictsStore"]


class VerdictsStore(SqliteBase):
    """Verdict methods of :class:`~rag_core.storage.store.HistoryStore`."""

    def save_verdict(self, run_id: int, index: int, verdict: str, comment: str = "") -> VerdictRecord:
        """Record the analyst's ``verdict`` (correct / partly / wrong) on question ``index`` of the
        run, replacing an earlier one. Commits at once; returns what was stored.

        Raises :class:`InputError` for an unknown verdict, run or question, a question without an
        answer, or a comment over :data:`~rag_core.storage.schema.MAX_COMMENT_CHARS` characters.
        """
        v = choice(Verdict, str(verdict).strip().lower(), "verdict")
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise InputError(
                f"A comment can have at most {MAX_COMMENT_CHARS} characters ({len(comment)} given)."
            )
        now = _now()
        with self._tx(f"save the verdict on run #{run_id}, question {index + 1}", write=True) as conn:
            self._check_result(conn, run_id, index)
            conn.execute(
                "INSERT INTO verdicts(run_id, idx, verdict, comment, labelled_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, idx) DO UPDATE SET verdict = excluded.verdict, "
                "comment = excluded.comment, labelled_at = excluded.labelled_at",
                (run_id, index, str(v), comment, now),
            )
        return VerdictRecord(run_id=run_id, index=index, verdict=v, comment=comment, labelled_at=now)

    def clear_verdict(self, run_id: int, index: int) -> bool:
        """Remove the verdict given on this result (an inherited one then shows again). ``False``
        when there was none."""
        with self._tx(f"clear the verdict on run #{run_id}, question {index + 1}", write=True) as conn:
            return (
                conn.execute("DELETE FROM verdicts WHERE run_id = ? AND idx = ?", (run_id, index)).rowcount
                > 0
            )

    def get_verdicts(self, run_id: int) -> dict[int, VerdictRecord]:
        """Question index → verdict (given on it, else inherited); ``{}`` when none.
        Raises :class:`InputError` if there is no such run."""
        with self._tx(f"read the verdicts of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            own = conn.execute(
                "SELECT idx, verdict, comment, labelled_at FROM verdicts WHERE run_id = ?", (run_id,)
            ).fetchall()
            inherited = conn.execute(
                "SELECT r.idx, v.verdict, v.comment, v.labelled_at, v.run_id "
                "FROM results r "
                "JOIN results p ON p.question = r.question AND p.answer = r.answer AND p.run_id < r.run_id "
                "JOIN verdicts v ON v.run_id = p.run_id AND v.idx = p.idx "
                "WHERE r.run_id = ? AND r.answer IS NOT NULL "
                "ORDER BY v.labelled_at, v.run_id",
                (run_id,),
            ).fetchall()
        out: dict[int, VerdictRecord] = {}
        for idx, verdict, comment, at, source in inherited:  # oldest first: the latest wins
            out[int(idx)] = VerdictRecord(run_id, int(idx), Verdict(verdict), comment, at, int(source))
        for idx, verdict, comment, at in own:
            out[int(idx)] = VerdictRecord(run_id, int(idx), Verdict(verdict), comment, at)
        return dict(sorted(out.items()))

    def runs_with_verdicts(self) -> list[int]:
        """Ids of runs holding at least one verdict given on them (newest first); ``[]`` when none."""
        with self._tx("list the runs with verdicts", write=False) as conn:
            return [
                int(r[0]) for r in conn.execute("SELECT DISTINCT run_id FROM verdicts ORDER BY run_id DESC")
            ]

    def later_identical_answers(self, run_id: int, indices: Iterable[int]) -> list[int]:
        """Ids of later runs holding an identical answer to the same question as one of ``indices``
        of ``run_id`` (their inherited verdicts change when these verdicts do); ``[]`` when none."""
        idx = sorted({int(i) for i in indices})
        if not idx:
            return []
        marks = ",".join("?" * len(idx))
        with self._tx(f"find answers identical to run #{run_id}'s", write=False) as conn:
            rows = conn.execute(
                "SELECT DISTINCT r.run_id FROM results p "
                "JOIN results r ON r.question = p.question AND r.answer = p.answer AND r.run_id > p.run_id "
                f"WHERE p.run_id = ? AND p.idx IN ({marks}) AND p.answer IS NOT NULL ORDER BY r.run_id",
                (run_id, *idx),
            ).fetchall()
        return [int(r[0]) for r in rows]

    @staticmethod
    def _check_result(conn: TxConnection, run_id: int, index: int) -> None:
        row = conn.execute("SELECT n_questions FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(_no_run(run_id))
        res = conn.execute(
            "SELECT answer FROM results WHERE run_id = ? AND idx = ?", (run_id, index)
        ).fetchone()
        if res is None:
            raise InputError(f"Run #{run_id} has no question {index + 1} (it has {row[0]} questions).")
        if res[0] is None:
            raise InputError(
                f"Question {index + 1} of run #{run_id} has no answer to review (it failed or was not "
                "answered yet)."
            )
