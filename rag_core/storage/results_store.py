"""Per-question results (answers, scores), what a resume still has to do, and the request timeline."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.models import MetricScore, RequestTiming
from rag_core.storage.connection import SqliteBase, TxConnection, _now
from rag_core.storage.jsonsafe import finite, from_json, refuse_secrets, to_json
from rag_core.storage.records import ResultRecord, result_status
from rag_core.storage.runs_store import _no_run
from rag_core.storage.schema import INF_ERROR, NAN_ERROR, NO_VALUE_ERROR
from rag_core.vocab import Expected

__all__ = ["ResultsStore"]


class ResultsStore(SqliteBase):
    """Result and timeline methods of :class:`~rag_core.storage.store.HistoryStore`."""

    # --- per-question results -----------------------------------------------------------------
    def save_answer(
        self,
        run_id: int,
        index: int,
        *,
        answer: str | None = None,
        contexts: Sequence[Any] = (),
        error: str | None = None,
        error_kind: str | None = None,
        latency_s: float | None = None,
        attempts: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
    ) -> None:
        """Record question ``index``'s answer (or error), replacing what was there. Commits at once.

        ``contexts`` are ``ScoredChunk`` objects or their ``to_dict()`` dicts. Give an ``answer``
        or an ``error``; an ``error_kind`` of ``"CancelledError"`` marks the item cancelled (it
        is resumable). Raises :class:`StorageError` when neither is given or when the run or
        question does not exist.
        """
        if answer is None and error is None:
            raise StorageError(f"Run #{run_id}, item {index}: nothing to save (no answer and no error).")
        status = result_status(answer, error, error_kind)
        ctx = [c.to_dict() if hasattr(c, "to_dict") else c for c in contexts]
        ctx_json = to_json(ctx, f"the contexts of run #{run_id}, item {index}")
        action = f"save the answer of run #{run_id}, item {index}"
        with self._tx(action, write=True) as conn:
            cur = conn.execute(
                "UPDATE results SET status = ?, answer = ?, contexts = ?, error = ?, error_kind = ?, "
                "latency_s = ?, attempts = ?, input_tokens = ?, output_tokens = ?, model = ?, "
                "updated_at = ? WHERE run_id = ? AND idx = ?",
                (
                    status,
                    answer,
                    ctx_json,
                    error,
                    error_kind,
                    finite(latency_s),
                    int(attempts),
                    int(input_tokens),
                    int(output_tokens),
                    model,
                    _now(),
                    run_id,
                    index,
                ),
            )
            if cur.rowcount == 0:
                raise StorageError(_missing_result(conn, run_id, index, "answer"))

    def save_scores(
        self, run_id: int, index: int, scores: Mapping[str, MetricScore] | Iterable[MetricScore]
    ) -> None:
        """Record metric scores for question ``index`` (one row per metric, replacing older ones).

        A non-finite value is stored as a failed score (``value`` None, error
        :data:`NAN_ERROR`); a ``None`` value without an error gets :data:`NO_VALUE_ERROR`, unless
        the score is ``skipped`` (kept as a skip with its reason).
        Raises :class:`StorageError` when the run or question does not exist.
        """
        items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
        rows = []
        for s in items:
            value, error = (None, None) if s.skipped else _score_value(s)
            rows.append(
                (
                    run_id,
                    index,
                    s.metric,
                    value,
                    finite(s.stdev),
                    s.reason,
                    error,
                    int(bool(s.cached)),
                    int(bool(s.skipped)),
                )
            )
        action = f"save the scores of run #{run_id}, item {index}"
        with self._tx(action, write=True) as conn:
            cur = conn.execute(
                "UPDATE results SET updated_at = ? WHERE run_id = ? AND idx = ?", (_now(), run_id, index)
            )
            if cur.rowcount == 0:
                raise StorageError(_missing_result(conn, run_id, index, "scores"))
            conn.executemany(
                "INSERT INTO scores(run_id, idx, metric, value, stdev, reason, error, cached, skipped) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, idx, metric) DO UPDATE SET "
                "value = excluded.value, stdev = excluded.stdev, reason = excluded.reason, "
                "error = excluded.error, cached = excluded.cached, skipped = excluded.skipped",
                rows,
            )

    def get_results(self, run_id: int) -> list[ResultRecord]:
        """The run's results in input order, with scores. Raises :class:`InputError` if no such run."""
        with self._tx(f"read the results of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            rows = conn.execute(
                "SELECT idx, question, ground_truth, answer, contexts, error, error_kind, latency_s, "
                "attempts, input_tokens, output_tokens, model, expected FROM results WHERE run_id = ? "
                "ORDER BY idx",
                (run_id,),
            ).fetchall()
            score_rows = conn.execute(
                "SELECT idx, metric, value, stdev, reason, error, cached, skipped FROM scores "
                "WHERE run_id = ? ORDER BY idx, metric",
                (run_id,),
            ).fetchall()
        by_index: dict[int, dict[str, MetricScore]] = {}
        for idx, metric, value, stdev, reason, error, cached, skipped in score_rows:
            by_index.setdefault(idx, {})[metric] = MetricScore(
                metric=metric,
                value=value,
                reason=reason,
                error=error,
                stdev=stdev,
                cached=bool(cached),
                skipped=bool(skipped),
            )
        return [
            ResultRecord(
                run_id=run_id,
                index=r[0],
                question=r[1],
                ground_truth=r[2],
                answer=r[3],
                contexts=from_json(r[4], f"run #{run_id}, item {r[0]} contexts", []),
                error=r[5],
                error_kind=r[6],
                latency_s=r[7],
                attempts=r[8],
                input_tokens=r[9],
                output_tokens=r[10],
                model=r[11],
                scores=by_index.get(r[0], {}),
                expected=Expected(r[12]),
            )
            for r in rows
        ]

    def missing_items(
        self, run_id: int, *, metrics: Collection[str] | None = None, retry_errors: bool = False
    ) -> dict[str, list[int]]:
        """What a resume must still do, as ``{"answers": [...], "scores": [...]}`` (sorted indices).

        ``answers``: items with neither an answer nor an error (pending, or cancelled), plus
        failed items when ``retry_errors``. ``scores``: items with an answer but no score rows —
        or, when ``metrics`` is given, missing any of those metrics. A failed score counts as
        scored. Either list may be ``[]``. Raises :class:`InputError` if no such run.
        """
        with self._tx(f"read the progress of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            statuses = ("pending", "cancelled", "error") if retry_errors else ("pending", "cancelled")
            answers = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT idx FROM results WHERE run_id = ? AND status IN ({','.join('?' * len(statuses))}) "
                    "ORDER BY idx",
                    (run_id, *statuses),
                )
            ]
            answered = [
                int(r[0])
                for r in conn.execute(
                    "SELECT idx FROM results WHERE run_id = ? AND status = 'ok' ORDER BY idx", (run_id,)
                )
            ]
            have: dict[int, set[str]] = {}
            for idx, metric in conn.execute("SELECT idx, metric FROM scores WHERE run_id = ?", (run_id,)):
                have.setdefault(int(idx), set()).add(metric)
        wanted = set(metrics or ())
        if wanted:
            need_scores = [i for i in answered if not wanted <= have.get(i, set())]
        else:
            need_scores = [i for i in answered if not have.get(i)]
        return {"answers": answers, "scores": need_scores}

    # --- request timeline ---------------------------------------------------------------------
    def save_requests(self, run_id: int, timings: Iterable[RequestTiming]) -> int:
        """Append timeline rows for a run; return how many were written (0 for an empty iterable).

        Raises :class:`StorageError` when the run does not exist or a start/end is not finite.
        """
        rows = []
        for t in timings:
            start, end = finite(t.start), finite(t.end)
            if start is None or end is None:
                raise StorageError(
                    f"Run #{run_id}: the timing of item {t.index} ({t.phase}) has a non-finite start or "
                    "end time; the timeline was not saved."
                )
            rows.append(
                (
                    run_id,
                    int(t.index),
                    t.phase,
                    t.label,
                    start,
                    end,
                    int(t.attempts),
                    t.status,
                    finite(t.throttled_s) or 0.0,
                    int(t.input_tokens),
                    int(t.output_tokens),
                    to_json(refuse_secrets(t.extra, "extra"), "a request's extra data"),
                )
            )
        if not rows:
            return 0
        with self._tx(f"save the request timeline of run #{run_id}", write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StorageError(
                    f"Run #{run_id} no longer exists (it was deleted); its timeline was not saved."
                )
            conn.executemany(
                'INSERT INTO requests(run_id, idx, phase, label, start, "end", attempts, status, '
                "throttled_s, input_tokens, output_tokens, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def get_requests(self, run_id: int) -> list[RequestTiming]:
        """The run's timeline ordered by start time; ``[]`` when none. :class:`InputError` if no run."""
        with self._tx(f"read the timeline of run #{run_id}", write=False) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise InputError(_no_run(run_id))
            rows = conn.execute(
                'SELECT idx, phase, label, start, "end", attempts, status, throttled_s, input_tokens, '
                "output_tokens, extra FROM requests WHERE run_id = ? ORDER BY start, id",
                (run_id,),
            ).fetchall()
        return [
            RequestTiming(
                index=r[0],
                phase=r[1],
                label=r[2],
                start=r[3],
                end=r[4],
                attempts=r[5],
                status=r[6],
                throttled_s=r[7],
                input_tokens=r[8],
                output_tokens=r[9],
                extra=from_json(r[10], f"run #{run_id} timeline", {}),
            )
            for r in rows
        ]


def _missing_result(conn: TxConnection, run_id: int, index: int, what: str) -> str:
    row = conn.execute("SELECT n_questions FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return f"Run #{run_id} no longer exists (it was deleted); the {what} of item {index} was not saved."
    return f"Run #{run_id} has no item {index} (it has {row[0]} questions); the {what} were not saved."


def _score_value(s: MetricScore) -> tuple[float | None, str | None]:
    if s.value is None:
        return None, s.error or NO_VALUE_ERROR
    try:
        f = float(s.value)
    except (TypeError, ValueError):
        return None, f"metric returned a non-number ({type(s.value).__name__})"
    if math.isnan(f):
        return None, NAN_ERROR
    if math.isinf(f):
        return None, INF_ERROR
    return f, s.error
