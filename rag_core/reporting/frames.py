"""Tidy pandas frames of runs, results and request timelines (the input of every chart and table).

Pure functions, free of Streamlit, Plotly and I/O:

- :func:`runs_frame` — one row per run, from :class:`~rag_core.storage.RunRecord` (its typed
  :class:`~rag_core.summary.RunSummary`).
- :func:`results_frame` — one row per question of a run, from
  :class:`~rag_core.storage.ResultRecord`.
- :func:`timeline_frame` — one row per request, from :class:`~rag_core.models.RequestTiming`.
- :func:`per_question_deltas` — a baseline run's questions next to a candidate's.

Contracts:

- "Empty" input (an empty list, ``None``, rows without the data a table needs) never raises: the
  builders return an empty DataFrame *with the documented columns*.
- Metric columns are named ``metric:<metric id>`` (``metric:judge.context_recall``; see
  :data:`METRIC_PREFIX`, :func:`metric_columns`, :mod:`rag_core.vocab`): a metric's identity is
  its suite and name, so the offline and the judged context recall are two columns. A metric
  that *failed* is ``NaN`` in its ``metric:`` column and flagged in ``failed:<id>``; never a 0.
  A metric *skipped* for a question (it does not apply, e.g. a reference-based metric on a
  question expected to be declined) is ``NaN`` and flagged in ``skipped:<id>``, never failed.
- The headline columns come first in spirit: :func:`runs_frame` has ``correct`` / ``checked`` …
  and :func:`results_frame` has ``correct`` / ``correct_by`` per question (see
  :mod:`rag_core.runs.correctness`).
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import pandas as pd

from rag_core.models import RequestTiming
from rag_core.runs.correctness import correctness, declined
from rag_core.storage.records import ResultRecord, RunRecord, VerdictRecord
from rag_core.vocab import metric

#: Text shown on a figure that has nothing to draw.
NO_DATA = "No data yet"
#: Prefix of the per-metric value columns in :func:`runs_frame` and :func:`results_frame`.
METRIC_PREFIX = "metric:"
#: A per-question score that drops by more than this (candidate − baseline < −threshold) is a
#: regression in :func:`per_question_deltas`.
REGRESSION_THRESHOLD = 0.1
#: Per-run phase durations (seconds) in stacking order.
PHASE_COLUMNS: tuple[str, ...] = ("retrieval_s", "generation_s", "evaluation_s")

#: Fixed columns of :func:`runs_frame` (metric columns follow them).
RUN_COLUMNS: tuple[str, ...] = (
    "id",
    "label",
    "created_at",
    "finished_at",
    "question_set",
    "backend",
    "mode",
    "suite",
    "status",
    "n_questions",
    "total_s",
    "retrieval_s",
    "generation_s",
    "evaluation_s",
    "sequential_s",
    "async_s",
    "concurrency",
    "speedup_measured",
    "speedup_estimated",
    "ideal_speedup",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "errors",
    "correct",
    "correct_of",
    "correct_basis",
    "should_decline",
    "declined_when_should",
    "answered_when_should_decline",
    "declined_when_should_answer",
)
#: Fixed columns of :func:`results_frame` (metric columns follow them).
RESULT_COLUMNS: tuple[str, ...] = (
    "index",
    "question",
    "ground_truth",
    "answer",
    "status",
    "error",
    "error_kind",
    "latency_s",
    "attempts",
    "input_tokens",
    "output_tokens",
    "tokens",
    "model",
    "n_contexts",
    "expected",
    "declined",
    "verdict",
    "verdict_comment",
    "verdict_inherited_from",
    "correct",
    "correct_by",
)
#: Columns of :func:`timeline_frame`.
TIMELINE_COLUMNS: tuple[str, ...] = (
    "index",
    "phase",
    "label",
    "status",
    "attempts",
    "start_s",
    "end_s",
    "duration_s",
    "throttled_s",
    "input_tokens",
    "output_tokens",
)
_PHASE_ORDER = ("generation-sequential", "generation", "evaluation")


# --------------------------------------------------------------------------- small helpers


def _float(value: Any) -> float:
    """A finite float, or NaN for None / non-numbers / inf (never raises)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _safe(text: Any, limit: int = 200, width: int = 60) -> str:
    """Escape text for Plotly hover/tick HTML: truncate to ``limit`` chars, wrap at ``width``."""
    if _is_missing(text):
        return ""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    lines = textwrap.wrap(s, width=width) or [""]
    # quote=False: Plotly's pseudo-HTML does not decode &quot;, and quotes cannot open a tag.
    return "<br>".join(html.escape(line, quote=False) for line in lines)


def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    v = _float(value)
    return "—" if math.isnan(v) else f"{v:.{digits}f}{unit}"


def _metric_order(ids: Iterable[str]) -> list[str]:
    """Metric ids in registry display order (unknown ones last, alphabetically)."""
    return sorted(set(ids), key=lambda k: (metric(k).order, k))


def metric_columns(df: pd.DataFrame | None) -> list[str]:
    """The ``metric:<id>`` columns of a frame, in display order ([] for None/empty)."""
    if df is None:
        return []
    names = [metric_name(c) for c in df.columns if isinstance(c, str) and c.startswith(METRIC_PREFIX)]
    return [METRIC_PREFIX + n for n in _metric_order(names)]


def metric_name(column: str) -> str:
    """``"metric:judge.faithfulness"`` → ``"judge.faithfulness"`` (other strings are returned unchanged)."""
    return column[len(METRIC_PREFIX) :] if column.startswith(METRIC_PREFIX) else column


def metric_label(column_or_id: str) -> str:
    """Display label of a metric column or id, e.g. ``"Context recall (judge)"``."""
    return metric(metric_name(column_or_id)).label


def _is_empty(df: pd.DataFrame | None) -> bool:
    return df is None or not isinstance(df, pd.DataFrame) or df.empty


def _has_rows(df: pd.DataFrame | None) -> TypeGuard[pd.DataFrame]:
    """A DataFrame with at least one row: ``not _is_empty(df)``, typed so checkers narrow ``df``."""
    return not _is_empty(df)


def _run_label(run_id: Any) -> str:
    return f"#{_int(run_id)}"


def _as_row(run: pd.Series | pd.DataFrame | Mapping[str, Any] | None) -> pd.Series | None:
    if run is None:
        return None
    if isinstance(run, pd.DataFrame):
        return None if run.empty else run.iloc[0]
    if isinstance(run, pd.Series):
        return run
    if isinstance(run, Mapping):
        return pd.Series(dict(run))
    return None


# --------------------------------------------------------------------------- frame builders


def runs_frame(runs: Iterable[RunRecord] | None) -> pd.DataFrame:
    """One row per run, oldest first (by ``created_at``, then ``id``).

    Columns: :data:`RUN_COLUMNS` (``created_at``/``finished_at`` as UTC datetimes, ``label`` as
    ``"#<id>"``, durations in seconds, NaN where a run has no value yet; ``correct`` of
    ``correct_of`` answers correct and the evidence used, ``correct_basis``, from the summary's
    headline; the decline counts, NaN when the run has none), then for every metric (by id) in
    any run's summary: ``metric:<id>`` (mean, NaN when absent or failed), ``scored:<id>``,
    ``failed:<id>``, ``skipped:<id>`` and ``total:<id>`` (counts, 0 when absent), ``ci_low:<id>`` and
    ``ci_high:<id>`` (the mean's 95 % bootstrap CI, NaN when unknown).
    None or ``[]`` gives an empty frame with the fixed columns.
    """
    rows: list[dict[str, Any]] = []
    metric_ids: set[str] = set()
    for run in runs or []:
        s = run.summary
        row: dict[str, Any] = {
            "id": int(run.id),
            "label": _run_label(run.id),
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "question_set": run.question_set,
            "backend": run.backend,
            "mode": run.mode,
            "suite": run.suite,
            "status": run.status,
            "n_questions": int(run.n_questions),
        }
        if s is not None:
            g, t = s.generation, s.timings
            row.update(
                total_s=t.total_s,
                retrieval_s=t.retrieval_s,
                generation_s=t.generation_s,
                evaluation_s=t.evaluation_s,
                sequential_s=_float(g.sequential_s),
                async_s=_float(g.async_s),
                concurrency=float(g.concurrency),
                speedup_measured=_float(g.speedup_measured),
                speedup_estimated=_float(g.speedup_estimated),
                ideal_speedup=float(g.ideal_speedup),
                input_tokens=sum(p.input_tokens for p in s.usage.passes if p.answers),
                output_tokens=sum(p.output_tokens for p in s.usage.passes if p.answers),
                cost_usd=s.usage.cost_usd,
                errors=s.errors,
            )
            if s.headline is not None:
                row.update(
                    correct=float(s.headline.correct),
                    correct_of=float(s.headline.total),
                    correct_basis=s.headline.basis,
                )
            if s.declines is not None:
                d = s.declines
                row.update(
                    should_decline=float(d.should_decline),
                    declined_when_should=float(d.declined_when_should),
                    answered_when_should_decline=float(d.answered_when_should_decline),
                    declined_when_should_answer=float(d.declined_when_should_answer),
                )
            for m in s.metrics:
                metric_ids.add(m.id)
                row[METRIC_PREFIX + m.id] = _float(m.mean)
                row["scored:" + m.id] = m.scored
                row["failed:" + m.id] = m.failed
                row["skipped:" + m.id] = m.skipped
                row["total:" + m.id] = m.total
                row["ci_low:" + m.id] = _float(m.ci_low)
                row["ci_high:" + m.id] = _float(m.ci_high)
        rows.append(row)

    extra: list[str] = []
    for mid in _metric_order(metric_ids):
        extra += [METRIC_PREFIX + mid, "scored:" + mid, "failed:" + mid, "skipped:" + mid, "total:" + mid]
        extra += ["ci_low:" + mid, "ci_high:" + mid]
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra])
    for col in RUN_COLUMNS:
        if col.endswith("_s") or col in (
            "concurrency",
            "speedup_measured",
            "speedup_estimated",
            "ideal_speedup",
            "cost_usd",
            "correct",
            "correct_of",
            "should_decline",
            "declined_when_should",
            "answered_when_should_decline",
            "declined_when_should_answer",
        ):
            df[col] = df[col].astype(float)
    df["correct_basis"] = df["correct_basis"].astype(object)
    for col in ("input_tokens", "output_tokens", "errors"):
        df[col] = df[col].fillna(0).astype(int)
    for mid in metric_ids:
        df[METRIC_PREFIX + mid] = df[METRIC_PREFIX + mid].astype(float)
        df["ci_low:" + mid] = df["ci_low:" + mid].astype(float)
        df["ci_high:" + mid] = df["ci_high:" + mid].astype(float)
        for prefix in ("scored:", "failed:", "skipped:", "total:"):
            df[prefix + mid] = df[prefix + mid].fillna(0).astype(int)
    for col in ("created_at", "finished_at"):
        df[col] = pd.to_datetime(df[col], utc=True, errors="coerce", format="ISO8601")
    if not df.empty:
        df = df.sort_values(["created_at", "id"], na_position="first", kind="stable")
        df = df.reset_index(drop=True)
    return df


def results_frame(
    results: Iterable[ResultRecord] | None,
    *,
    suite: str,
    verdicts: Mapping[int, VerdictRecord] | None = None,
) -> pd.DataFrame:
    """One row per question of one run (scored by ``suite``), in ``index`` order.

    Columns: :data:`RESULT_COLUMNS` (``status`` is "ok" | "error" | "cancelled" | "pending",
    ``tokens`` = input + output tokens, ``n_contexts`` = number of retrieved chunks,
    ``expected`` "answer" | "decline", ``declined`` True/False/None (not checked), the analyst's
    ``verdict`` from ``verdicts`` (question index → verdict; None when none) with its comment and
    the run it was inherited from, ``correct`` True/False/None and ``correct_by`` what decided
    it), then for every metric that appears in any result's ``scores``: ``metric:<id>`` (value
    in [0, 1]; NaN when the metric failed, was skipped or was not scored for that question),
    ``failed:<id>`` (True only when the metric ran and failed — a failed metric is never a 0),
    ``skipped:<id>`` (True when it does not apply) and ``error:<id>`` (the failure message, else
    None). None/``[]`` gives an empty frame with the fixed columns.
    """
    verdicts = verdicts or {}
    rows: list[dict[str, Any]] = []
    metric_ids: set[str] = set()
    for res in results or []:
        v = verdicts.get(res.index)
        decided = correctness(res, v)
        row: dict[str, Any] = {
            "index": int(res.index),
            "question": res.question,
            "ground_truth": res.ground_truth,
            "answer": res.answer,
            "status": res.status,
            "error": res.error,
            "error_kind": res.error_kind,
            "latency_s": _float(res.latency_s),
            "attempts": int(res.attempts),
            "input_tokens": int(res.input_tokens),
            "output_tokens": int(res.output_tokens),
            "tokens": int(res.input_tokens) + int(res.output_tokens),
            "model": res.model,
            "n_contexts": len(res.contexts),
            "expected": str(res.expected),
            "declined": declined(res),
            "verdict": str(v.verdict) if v else None,
            "verdict_comment": v.comment if v else None,
            "verdict_inherited_from": v.inherited_from if v else None,
            "correct": decided.correct,
            "correct_by": decided.basis,
        }
        for name, score in res.scores.items():
            mid = metric(name, suite).id
            metric_ids.add(mid)
            value = _float(score.value)
            failed = math.isnan(value) and not score.skipped
            row[METRIC_PREFIX + mid] = value
            row["failed:" + mid] = failed
            row["skipped:" + mid] = bool(score.skipped)
            row["error:" + mid] = (score.error or "the metric returned no value") if failed else None
        rows.append(row)

    extra: list[str] = []
    for mid in _metric_order(metric_ids):
        extra += [METRIC_PREFIX + mid, "failed:" + mid, "skipped:" + mid, "error:" + mid]
    df = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    for col in ("declined", "verdict", "verdict_comment", "verdict_inherited_from", "correct"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    for mid in metric_ids:
        df[METRIC_PREFIX + mid] = df[METRIC_PREFIX + mid].astype(float)
        df["failed:" + mid] = df["failed:" + mid].fillna(False).astype(bool)
        df["skipped:" + mid] = df["skipped:" + mid].fillna(False).astype(bool)
        df["error:" + mid] = df["error:" + mid].astype(object).where(df["error:" + mid].notna(), None)
    if not df.empty:
        df = df.sort_values("index", kind="stable").reset_index(drop=True)
    return df


def timeline_frame(timings: Iterable[RequestTiming] | None) -> pd.DataFrame:
    """One row per request, with times in seconds since the run's first request started.

    Columns: :data:`TIMELINE_COLUMNS`. ``start_s``/``end_s`` are relative to the earliest
    ``start`` among all requests given (so 0 is the run's first request); ``duration_s`` is
    never negative (an ``end`` before its ``start`` counts as 0). Rows without a numeric
    ``start`` are dropped. Sorted by phase (sequential baseline, generation, evaluation, others)
    then start. None/``[]`` gives an empty frame with these columns.
    """
    raw: list[dict[str, Any]] = []
    for t in timings or []:
        start = _float(t.start)
        if math.isnan(start):
            continue
        end = _float(t.end)
        end = start if math.isnan(end) or end < start else end
        raw.append(
            {
                "index": int(t.index),
                "phase": str(t.phase or "unknown"),
                "label": str(t.label or ""),
                "status": str(t.status or "unknown"),
                "attempts": int(t.attempts or 1),
                "start": start,
                "end": end,
                "throttled_s": _float(t.throttled_s),
                "input_tokens": int(t.input_tokens),
                "output_tokens": int(t.output_tokens),
            }
        )
    if not raw:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    t0 = min(r["start"] for r in raw)
    for r in raw:
        r["start_s"] = r["start"] - t0
        r["end_s"] = r["end"] - t0
        r["duration_s"] = r["end"] - r["start"]
    df = pd.DataFrame(raw, columns=[*TIMELINE_COLUMNS, "start", "end"])
    df["throttled_s"] = df["throttled_s"].fillna(0.0)
    df["_order"] = df["phase"].map(_phase_rank)
    df = df.sort_values(["_order", "start_s", "index"], kind="stable")
    return df[list(TIMELINE_COLUMNS)].reset_index(drop=True)


def _phase_rank(phase: str) -> int:
    return _PHASE_ORDER.index(phase) if phase in _PHASE_ORDER else len(_PHASE_ORDER)


def per_question_deltas(
    baseline_results_df: pd.DataFrame | None,
    candidate_results_df: pd.DataFrame | None,
    threshold: float = REGRESSION_THRESHOLD,
) -> pd.DataFrame:
    """Per-question metric changes from a baseline run to a candidate run.

    Questions are matched by their text (whitespace-normalised), so reordered question sets
    still line up; a question present in only one run keeps NaN for the other side. For every
    metric in either frame there are ``base:<m>``, ``cand:<m>`` and ``delta:<m>`` (candidate −
    baseline; NaN when either side is missing or failed). ``worst_delta`` is the most negative
    delta, ``regressed`` lists the metrics whose score dropped by more than ``threshold``, and
    ``regression`` is True when that list is not empty. Columns ``index`` (candidate position,
    else baseline) and ``question`` come first; rows follow the candidate's order, then
    baseline-only questions. Either input None/empty → rows of the other side (with NaN deltas);
    both empty → an empty frame with columns ``index, question, worst_delta, regressed,
    regression``.
    """
    fixed = ["index", "question"]
    tail = ["worst_delta", "regressed", "regression"]
    base = baseline_results_df if not _is_empty(baseline_results_df) else None
    cand = candidate_results_df if not _is_empty(candidate_results_df) else None
    if base is None and cand is None:
        return pd.DataFrame(columns=fixed + tail)
    metrics = _metric_order(
        {metric_name(c) for c in metric_columns(base)} | {metric_name(c) for c in metric_columns(cand)}
    )

    def keyed(df: pd.DataFrame | None, prefix: str) -> pd.DataFrame:
        if df is None:
            return pd.DataFrame(
                columns=["_key", f"{prefix}index", "question"] + [f"{prefix}{m}" for m in metrics]
            )
        out = pd.DataFrame(
            {
                "_key": [" ".join(str(q).split()).casefold() for q in df["question"]],
                f"{prefix}index": df["index"].astype(int).to_numpy(),
                "question": df["question"].to_numpy(),
            }
        )
        for m in metrics:
            col = METRIC_PREFIX + m
            out[f"{prefix}{m}"] = df[col].astype(float).to_numpy() if col in df.columns else math.nan
        return out.drop_duplicates("_key", keep="first")

    b = keyed(base, "base:")
    c = keyed(cand, "cand:")
    merged = c.merge(b, on="_key", how="outer", suffixes=("", "_b"), sort=False)
    # Order: candidate rows by their index, then baseline-only rows by theirs.
    merged["_order"] = merged["cand:index"].astype(float).fillna(merged["base:index"].astype(float) + 1e9)
    merged = merged.sort_values("_order", kind="stable").reset_index(drop=True)
    question = merged["question"].astype(object)
    if "question_b" in merged.columns:
        question = question.where(question.notna(), merged["question_b"].astype(object))
    out = pd.DataFrame(
        {
            "index": merged["cand:index"]
            .astype(float)
            .fillna(merged["base:index"].astype(float))
            .astype(int),
            "question": question,
        }
    )
    for m in metrics:
        out[f"base:{m}"] = merged[f"base:{m}"].astype(float)
        out[f"cand:{m}"] = merged[f"cand:{m}"].astype(float)
        out[f"delta:{m}"] = out[f"cand:{m}"] - out[f"base:{m}"]
    delta_cols = [f"delta:{m}" for m in metrics]
    if delta_cols:
        out["worst_delta"] = out[delta_cols].min(axis=1, skipna=True)
    else:
        out["worst_delta"] = math.nan
    # A tiny epsilon keeps an exact 0.1 drop (0.8 → 0.7 = −0.10000000000000009) from counting.
    limit = -abs(threshold) - 1e-9
    out["regressed"] = [
        [m for m in metrics if _float(out.at[i, f"delta:{m}"]) < limit] for i in range(len(out))
    ]
    out["regression"] = out["regressed"].map(bool).astype(bool)
    return out
