"""Plotly figures for the dashboard, as pure functions of pandas DataFrames.

Two layers, both free of Streamlit and of any I/O:

1. **Frame builders** turn history records into tidy DataFrames: :func:`runs_frame` (one row per
   run), :func:`results_frame` (one row per question of a run) and :func:`timeline_frame` (one row
   per request). They accept the records of :mod:`rag_core.storage.store` (``RunRecord``,
   ``ResultRecord``), :class:`rag_core.models.RequestTiming` / :class:`~rag_core.models.MetricScore`,
   or plain dicts with the same field names (duck typing; nothing is imported from ``history``).
2. **Figure functions** take those DataFrames and return a ``plotly.graph_objects.Figure``.

Contracts shared by every function here:

- "Empty" input (an empty list, an empty DataFrame, ``None``, or rows without the data a chart
  needs) never raises: frame builders return an empty DataFrame *with the documented columns*, and
  figure functions return a figure whose only content is the annotation :data:`NO_DATA`.
- Metric columns are named ``metric:<name>`` (see :data:`METRIC_PREFIX`, :func:`metric_columns`).
  A metric that *failed* is ``NaN`` in its ``metric:`` column and flagged in ``failed:<name>``;
  it is never a 0.
- Every text that comes from documents, questions, answers, question-set names or error messages
  is ``html.escape``-d before it reaches hover text or tick labels (Plotly renders a subset of
  HTML there).
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "KNOWN_METRICS",
    "METRIC_PREFIX",
    "NO_DATA",
    "PHASE_COLUMNS",
    "REGRESSION_THRESHOLD",
    "RESULT_COLUMNS",
    "RUN_COLUMNS",
    "STATUS_COLORS",
    "TIMELINE_COLUMNS",
    "empty_figure",
    "heatmap_figure",
    "metric_columns",
    "metric_compare_figure",
    "metric_name",
    "metric_trend_figure",
    "per_question_deltas",
    "phase_figure",
    "results_frame",
    "runs_frame",
    "speedup_figure",
    "timeline_figure",
    "timeline_frame",
]

#: Text shown on a figure that has nothing to draw.
NO_DATA = "No data yet"
#: Prefix of the per-metric value columns in :func:`runs_frame` and :func:`results_frame`.
METRIC_PREFIX = "metric:"
#: A per-question score that drops by more than this (candidate − baseline < −threshold) is a
#: regression in :func:`per_question_deltas`.
REGRESSION_THRESHOLD = 0.1
#: Display order of metrics (others follow alphabetically).
KNOWN_METRICS: tuple[str, ...] = (
    "faithfulness",
    "answer_relevancy",
    "context_precision",
    "context_recall",
    "semantic_similarity",
    "rouge_l",
)
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

#: Bar colour per request status in the timeline.
STATUS_COLORS: dict[str, str] = {
    "ok": "#3A9D79",
    "error": "#C8505B",
    "cancelled": "#9AA5B1",
}
_OTHER_STATUS_COLOR = "#E0892B"
_PHASE_TITLES: dict[str, str] = {
    "generation-sequential": "Generation (sequential baseline)",
    "generation": "Generation",
    "evaluation": "Evaluation",
}
_PHASE_ORDER = ("generation-sequential", "generation", "evaluation")
_BLUE, _ORANGE, _GREEN, _GREY = "#2F6DB5", "#E0892B", "#3A9D79", "#6B7785"
_PHASE_COLORS = {"retrieval_s": _ORANGE, "generation_s": _BLUE, "evaluation_s": _GREEN}
_FAILED_COLOR = "#4B5563"
_SCORE_SCALE = [[0.0, "#C8505B"], [0.5, "#F2E4A0"], [1.0, "#3A9D79"]]
_TEMPLATE = "plotly_white"
#: Categorical colours, same order as ``chartCategoricalColors`` in .streamlit/config.toml.
_COLORWAY = ["#2F6DB5", "#E0892B", "#3A9D79", "#8E6CC2", "#C8505B", "#5B8DA8", "#A68A3F", "#6B7785"]
_MAX_TIMELINE_HEIGHT = 2400


# --------------------------------------------------------------------------- small helpers


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a record, whether a dataclass/object or a mapping."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


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


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


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


def _metric_order(names: Iterable[str]) -> list[str]:
    known = {name: i for i, name in enumerate(KNOWN_METRICS)}
    return sorted(set(names), key=lambda n: (known.get(n, len(known)), n))


def metric_columns(df: pd.DataFrame | None) -> list[str]:
    """The ``metric:<name>`` columns of a frame, in display order ([] for None/empty)."""
    if df is None:
        return []
    names = [metric_name(c) for c in df.columns if isinstance(c, str) and c.startswith(METRIC_PREFIX)]
    return [METRIC_PREFIX + n for n in _metric_order(names)]


def metric_name(column: str) -> str:
    """``"metric:faithfulness"`` → ``"faithfulness"`` (other strings are returned unchanged)."""
    return column[len(METRIC_PREFIX) :] if column.startswith(METRIC_PREFIX) else column


def _is_empty(df: pd.DataFrame | None) -> bool:
    return df is None or not isinstance(df, pd.DataFrame) or df.empty


def empty_figure(message: str = NO_DATA, title: str | None = None) -> go.Figure:
    """A blank figure whose only content is ``message`` in the middle (axes hidden)."""
    fig = go.Figure()
    fig.add_annotation(
        text=html.escape(message),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": _GREY},
    )
    fig.update_layout(
        template=_TEMPLATE,
        height=260,
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 20, "r": 20, "t": 50 if title else 20, "b": 20},
    )
    return fig


def _base_layout(fig: go.Figure, title: str, **extra: Any) -> go.Figure:
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title, "x": 0.0, "xanchor": "left", "xref": "paper"},
        margin={"l": 60, "r": 20, "t": 80, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0},
        hoverlabel={"align": "left"},
        colorway=_COLORWAY,
        **extra,
    )
    return fig


def _run_hover(row: pd.Series) -> str:
    """Escaped one-line description of a run for hover text."""
    parts = [f"Run #{_int(row.get('id'))}"]
    created = row.get("created_at")
    if not _is_missing(created) and created is not pd.NaT:
        parts.append(html.escape(str(created)[:19]))
    for key in ("question_set", "backend", "mode"):
        value = row.get(key)
        if not _is_missing(value) and value != "":
            parts.append(_safe(value, limit=60, width=200))
    return " · ".join(parts)


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


def runs_frame(runs: Iterable[Any] | None) -> pd.DataFrame:
    """One row per run, oldest first (by ``created_at``, then ``id``).

    Columns: :data:`RUN_COLUMNS` (``created_at``/``finished_at`` as UTC datetimes, ``label`` as
    ``"#<id>"``, durations in seconds, NaN where a run has no value yet), then for every metric
    seen in any run's ``summary["metrics"]``: ``metric:<name>`` (mean, NaN when absent or failed),
    ``scored:<name>`` and ``failed:<name>`` (counts, 0 when absent).

    ``runs`` may hold ``history.RunRecord`` objects or dicts with the same keys; ``timings`` and
    ``summary`` follow the shapes in the team brief. None or ``[]`` gives an empty frame with the
    fixed columns. Never raises on missing or malformed summary fields.
    """
    rows: list[dict[str, Any]] = []
    metric_names: set[str] = set()
    for run in runs or []:
        timings = _dict(_get(run, "timings"))
        summary = _dict(_get(run, "summary"))
        gen = _dict(summary.get("generation"))
        usage = _dict(summary.get("usage"))
        metrics = _dict(summary.get("metrics"))
        n_questions = _get(run, "n_questions")
        if n_questions is None:
            n_questions = summary.get("n_questions")
        row: dict[str, Any] = {
            "id": _int(_get(run, "id")),
            "label": _run_label(_get(run, "id")),
            "created_at": _get(run, "created_at"),
            "finished_at": _get(run, "finished_at"),
            "question_set": _get(run, "question_set"),
            "backend": _get(run, "backend"),
            "mode": _get(run, "mode"),
            "suite": _get(run, "suite"),
            "status": _get(run, "status"),
            "n_questions": _int(n_questions),
            "total_s": _float(timings.get("total_s")),
            "retrieval_s": _float(timings.get("retrieval_s")),
            "generation_s": _float(timings.get("generation_s")),
            "evaluation_s": _float(timings.get("evaluation_s")),
            "sequential_s": _float(gen.get("sequential_s")),
            "async_s": _float(gen.get("async_s")),
            "concurrency": _float(gen.get("concurrency")),
            "speedup_measured": _float(gen.get("speedup_measured")),
            "speedup_estimated": _float(gen.get("speedup_estimated")),
            "ideal_speedup": _float(gen.get("ideal_speedup")),
            "input_tokens": _int(usage.get("input_tokens")),
            "output_tokens": _int(usage.get("output_tokens")),
            "cost_usd": _float(usage.get("cost_usd")),
            "errors": _int(summary.get("errors")),
        }
        for name, stats in metrics.items():
            name = str(name)
            metric_names.add(name)
            stats = _dict(stats)
            row[METRIC_PREFIX + name] = _float(stats.get("mean"))
            row["scored:" + name] = _int(stats.get("scored"))
            row["failed:" + name] = _int(stats.get("failed"))
        rows.append(row)

    extra: list[str] = []
    for name in _metric_order(metric_names):
        extra += [METRIC_PREFIX + name, "scored:" + name, "failed:" + name]
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra])
    for name in metric_names:
        df[METRIC_PREFIX + name] = df[METRIC_PREFIX + name].astype(float)
        for prefix in ("scored:", "failed:"):
            df[prefix + name] = df[prefix + name].fillna(0).astype(int)
    for col in ("created_at", "finished_at"):
        df[col] = pd.to_datetime(df[col], utc=True, errors="coerce", format="ISO8601")
    if not df.empty:
        df = df.sort_values(["created_at", "id"], na_position="first", kind="stable")
        df = df.reset_index(drop=True)
    return df


def _score_parts(score: Any) -> tuple[float, str | None, str | None, bool]:
    """(value or NaN, reason, error, failed) from a MetricScore, its dict, or a bare number."""
    if isinstance(score, int | float) and not isinstance(score, bool):
        return _float(score), None, None, False
    value = _get(score, "value")
    error = _get(score, "error")
    reason = _get(score, "reason")
    v = _float(value)
    failed = math.isnan(v)
    if failed and not error:
        error = "the metric returned no value"
    return v, reason, error, failed


def _result_status(res: Any) -> str:
    """Fallback for records without a ``status``: "error", "ok" or "pending"."""
    if _get(res, "error"):
        return "cancelled" if _get(res, "error_kind") == "CancelledError" else "error"
    return "ok" if _get(res, "answer") is not None else "pending"


def results_frame(results: Iterable[Any] | None) -> pd.DataFrame:
    """One row per question of one run, in ``index`` order.

    Columns: :data:`RESULT_COLUMNS` (``status`` is "ok" | "error" | "cancelled" | "pending",
    ``tokens`` = input + output tokens, ``n_contexts`` = number of retrieved chunks), then for every metric that appears in any result's ``scores``:
    ``metric:<name>`` (value in [0, 1]; NaN when the metric failed or was not scored for that
    question), ``failed:<name>`` (True only when the metric ran and failed — a failed metric is
    never a 0) and ``error:<name>`` (the failure message, else None).

    ``results`` may hold ``history.ResultRecord`` objects or dicts with the same keys; ``scores``
    values may be ``MetricScore`` objects, their dicts, or bare numbers. None/``[]`` gives an
    empty frame with the fixed columns.
    """
    rows: list[dict[str, Any]] = []
    metric_names: set[str] = set()
    for res in results or []:
        input_tokens = _int(_get(res, "input_tokens"))
        output_tokens = _int(_get(res, "output_tokens"))
        contexts = _get(res, "contexts") or []
        row: dict[str, Any] = {
            "index": _int(_get(res, "index")),
            "question": _get(res, "question", ""),
            "ground_truth": _get(res, "ground_truth", ""),
            "answer": _get(res, "answer"),
            "status": _get(res, "status") or _result_status(res),
            "error": _get(res, "error"),
            "error_kind": _get(res, "error_kind"),
            "latency_s": _float(_get(res, "latency_s")),
            "attempts": _int(_get(res, "attempts")),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "tokens": input_tokens + output_tokens,
            "model": _get(res, "model"),
            "n_contexts": len(contexts) if isinstance(contexts, Sequence) else 0,
        }
        for name, score in _dict(_get(res, "scores")).items():
            name = str(name)
            metric_names.add(name)
            value, _reason, error, failed = _score_parts(score)
            row[METRIC_PREFIX + name] = value
            row["failed:" + name] = failed
            row["error:" + name] = error if failed else None
        rows.append(row)

    extra: list[str] = []
    for name in _metric_order(metric_names):
        extra += [METRIC_PREFIX + name, "failed:" + name, "error:" + name]
    df = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    for name in metric_names:
        df[METRIC_PREFIX + name] = df[METRIC_PREFIX + name].astype(float)
        df["failed:" + name] = df["failed:" + name].fillna(False).astype(bool)
        df["error:" + name] = df["error:" + name].astype(object).where(df["error:" + name].notna(), None)
    if not df.empty:
        df = df.sort_values("index", kind="stable").reset_index(drop=True)
    return df


def timeline_frame(timings: Iterable[Any] | None) -> pd.DataFrame:
    """One row per request, with times in seconds since the run's first request started.

    Columns: :data:`TIMELINE_COLUMNS`. ``start_s``/``end_s`` are relative to the earliest
    ``start`` among all requests given (so 0 is the run's first request); ``duration_s`` is
    never negative (an ``end`` before its ``start`` counts as 0). Rows without a numeric
    ``start`` are dropped. Sorted by phase (sequential baseline, generation, evaluation, others)
    then start. ``timings`` may hold ``RequestTiming`` objects or dicts. None/``[]`` gives an
    empty frame with these columns.
    """
    raw: list[dict[str, Any]] = []
    for t in timings or []:
        start = _float(_get(t, "start"))
        if math.isnan(start):
            continue
        end = _float(_get(t, "end"))
        end = start if math.isnan(end) or end < start else end
        raw.append(
            {
                "index": _int(_get(t, "index")),
                "phase": str(_get(t, "phase") or "unknown"),
                "label": str(_get(t, "label") or ""),
                "status": str(_get(t, "status") or "unknown"),
                "attempts": _int(_get(t, "attempts"), default=1),
                "start": start,
                "end": end,
                "throttled_s": _float(_get(t, "throttled_s")),
                "input_tokens": _int(_get(t, "input_tokens")),
                "output_tokens": _int(_get(t, "output_tokens")),
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


# --------------------------------------------------------------------------- run-level figures


def speedup_figure(runs_df: pd.DataFrame | None) -> go.Figure:
    """Sequential vs async generation wall time per run, with the ideal async time marked.

    One group per run that has an async or sequential wall time: a "Sequential" bar (measured
    ``sequential_s``; when only an estimate exists — ``async_s × speedup_estimated`` — it is drawn
    as a hatched "Sequential (estimated)" bar), an "Async" bar (``async_s``) and an "Ideal" marker
    at ``sequential ÷ ideal_speedup`` on the async bar. Runs without either time are skipped;
    none left → :func:`empty_figure`.
    """
    title = "Generation wall time: sequential vs async"
    if _is_empty(runs_df):
        return empty_figure(title=title)
    need = {"sequential_s", "async_s"}
    if not need <= set(runs_df.columns):
        return empty_figure(title=title)
    df = runs_df[runs_df["sequential_s"].notna() | runs_df["async_s"].notna()].reset_index(drop=True)
    if df.empty:
        return empty_figure(title=title)

    positions = list(range(len(df)))
    seq_measured = df["sequential_s"].astype(float)
    est_speedup = df.get("speedup_estimated", pd.Series(math.nan, index=df.index)).astype(float)
    seq_estimated = (df["async_s"].astype(float) * est_speedup).where(seq_measured.isna())
    sequential = seq_measured.fillna(seq_estimated)
    ideal_factor = df.get("ideal_speedup", pd.Series(math.nan, index=df.index)).astype(float)
    ideal = (sequential / ideal_factor).where(ideal_factor > 0)
    hovers = [_run_hover(row) for _, row in df.iterrows()]
    speedup = df.get("speedup_measured", pd.Series(math.nan, index=df.index)).astype(float)
    speedup = speedup.fillna(est_speedup)

    fig = go.Figure()
    width = 0.36
    left = [p - 0.19 for p in positions]
    right = [p + 0.19 for p in positions]
    if seq_measured.notna().any():
        fig.add_trace(
            go.Bar(
                name="Sequential",
                x=left,
                y=seq_measured,
                width=width,
                marker_color=_GREY,
                customdata=hovers,
                hovertemplate="%{customdata}<br>Sequential: %{y:.2f} s<extra></extra>",
            )
        )
    if seq_estimated.notna().any():
        fig.add_trace(
            go.Bar(
                name="Sequential (estimated)",
                x=left,
                y=seq_estimated,
                width=width,
                marker={"color": "#B8C0CA", "pattern": {"shape": "/"}},
                customdata=hovers,
                hovertemplate="%{customdata}<br>Sequential (estimated from request latencies): "
                "%{y:.2f} s<extra></extra>",
            )
        )
    speed_text = ["" if math.isnan(s) else f"×{s:.1f}" for s in speedup]
    fig.add_trace(
        go.Bar(
            name="Async",
            x=right,
            y=df["async_s"].astype(float),
            width=width,
            marker_color=_BLUE,
            text=speed_text,
            textposition="outside",
            cliponaxis=False,
            customdata=list(zip(hovers, speed_text, strict=True)),
            hovertemplate="%{customdata[0]}<br>Async: %{y:.2f} s %{customdata[1]}<extra></extra>",
        )
    )
    if ideal.notna().any():
        fig.add_trace(
            go.Scatter(
                name="Ideal (sequential ÷ ideal speedup)",
                x=right,
                y=ideal,
                mode="markers",
                marker={"symbol": "line-ew", "size": 34, "line": {"width": 3, "color": _ORANGE}},
                customdata=[[h, _fmt(f, 1)] for h, f in zip(hovers, ideal_factor, strict=True)],
                hovertemplate="%{customdata[0]}<br>Ideal: %{y:.2f} s (÷ %{customdata[1]})<extra></extra>",
            )
        )
    _base_layout(fig, title, barmode="overlay", bargap=0.2)
    fig.update_xaxes(tickvals=positions, ticktext=[_run_label(i) for i in df["id"]], title="Run")
    fig.update_yaxes(title="Seconds", rangemode="tozero")
    return fig


def phase_figure(runs_df: pd.DataFrame | None) -> go.Figure:
    """Stacked bars per run: retrieval, generation and evaluation seconds (:data:`PHASE_COLUMNS`).

    Runs with no phase time at all are skipped; none left → :func:`empty_figure`.
    """
    title = "Time per phase"
    if _is_empty(runs_df) or not set(PHASE_COLUMNS) <= set(runs_df.columns):
        return empty_figure(title=title)
    df = runs_df[runs_df[list(PHASE_COLUMNS)].notna().any(axis=1)].reset_index(drop=True)
    if df.empty:
        return empty_figure(title=title)
    labels = [_run_label(i) for i in df["id"]]
    hovers = [_run_hover(row) for _, row in df.iterrows()]
    fig = go.Figure()
    for col in PHASE_COLUMNS:
        name = col.removesuffix("_s").capitalize()
        fig.add_trace(
            go.Bar(
                name=name,
                x=labels,
                y=df[col].astype(float),
                marker_color=_PHASE_COLORS[col],
                customdata=hovers,
                hovertemplate=f"%{{customdata}}<br>{name}: %{{y:.2f}} s<extra></extra>",
            )
        )
    _base_layout(fig, title, barmode="stack")
    fig.update_layout(legend_traceorder="normal")
    fig.update_xaxes(title="Run", type="category")
    fig.update_yaxes(title="Seconds", rangemode="tozero")
    return fig


def metric_trend_figure(runs_df: pd.DataFrame | None) -> go.Figure:
    """One line per metric: its mean across runs, oldest run on the left.

    Hover shows the run, the mean, and how many questions were scored / failed. Runs are placed
    as categories (``#<id>``) in time order so close-together runs stay readable. No metric
    values at all → :func:`empty_figure`.
    """
    title = "Metric trends across runs"
    if _is_empty(runs_df):
        return empty_figure(title=title)
    cols = [c for c in metric_columns(runs_df) if runs_df[c].notna().any()]
    if not cols:
        return empty_figure(title=title)
    df = runs_df[runs_df[cols].notna().any(axis=1)]
    if df.empty:
        return empty_figure(title=title)
    order = [c for c in ("created_at", "id") if c in df.columns]
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
    labels = [_run_label(i) for i in df["id"]]
    hovers = [_run_hover(row) for _, row in df.iterrows()]
    fig = go.Figure()
    for col in cols:
        name = metric_name(col)
        scored = df.get("scored:" + name, pd.Series(0, index=df.index)).fillna(0).astype(int)
        failed = df.get("failed:" + name, pd.Series(0, index=df.index)).fillna(0).astype(int)
        fig.add_trace(
            go.Scatter(
                name=html.escape(name),
                x=labels,
                y=df[col].astype(float),
                mode="lines+markers",
                connectgaps=True,
                customdata=[[h, s, f] for h, s, f in zip(hovers, scored, failed, strict=True)],
                hovertemplate=(
                    "%{customdata[0]}<br>" + html.escape(name) + ": %{y:.3f}"
                    "<br>scored %{customdata[1]}, failed %{customdata[2]}<extra></extra>"
                ),
            )
        )
    _base_layout(fig, title, showlegend=True)
    fig.update_xaxes(
        title="Run (oldest → newest)", type="category", categoryorder="array", categoryarray=labels
    )
    fig.update_yaxes(title="Mean score", range=[0, 1.05])
    return fig


def metric_compare_figure(
    baseline: pd.Series | pd.DataFrame | Mapping[str, Any] | None,
    candidate: pd.Series | pd.DataFrame | Mapping[str, Any] | None,
) -> go.Figure:
    """Grouped bars: each metric's mean in the baseline run next to the candidate run.

    ``baseline``/``candidate`` are rows of :func:`runs_frame` (a Series, a one-row DataFrame or a
    mapping); either may be None. Metrics are the union of both runs' ``metric:`` columns; a
    metric missing from one run has no bar there. The candidate's hover shows the delta. No
    metric values in either run → :func:`empty_figure`.
    """
    title = "Baseline vs candidate"
    rows = [("Baseline", _as_row(baseline), _GREY), ("Candidate", _as_row(candidate), _BLUE)]
    names: set[str] = set()
    for _, row, _ in rows:
        if row is not None:
            names |= {
                metric_name(str(k))
                for k, v in row.items()
                if str(k).startswith(METRIC_PREFIX) and not math.isnan(_float(v))
            }
    if not names:
        return empty_figure(title=title)
    metrics = _metric_order(names)
    base_row = rows[0][1]
    fig = go.Figure()
    for role, row, color in rows:
        if row is None:
            continue
        values = [_float(row.get(METRIC_PREFIX + m)) for m in metrics]
        scored = [_int(row.get("scored:" + m)) for m in metrics]
        if role == "Candidate" and base_row is not None:
            deltas = [
                v - _float(base_row.get(METRIC_PREFIX + m)) for v, m in zip(values, metrics, strict=True)
            ]
            delta_text = ["" if math.isnan(d) else f" (Δ {d:+.3f})" for d in deltas]
        else:
            delta_text = [""] * len(metrics)
        run_name = f"{role} {_run_label(row.get('id'))}"
        fig.add_trace(
            go.Bar(
                name=run_name,
                x=[html.escape(m) for m in metrics],
                y=values,
                marker_color=color,
                text=[_fmt(v, 2) if not math.isnan(v) else "" for v in values],
                textposition="outside",
                cliponaxis=False,
                customdata=[[s, d] for s, d in zip(scored, delta_text, strict=True)],
                hovertemplate=(
                    f"{html.escape(run_name)}<br>%{{x}}: %{{y:.3f}}%{{customdata[1]}}"
                    "<br>scored %{customdata[0]}<extra></extra>"
                ),
            )
        )
    _base_layout(fig, title, barmode="group", bargap=0.35)
    fig.update_xaxes(title="Metric")
    fig.update_yaxes(title="Mean score", range=[0, 1.1])
    return fig


# --------------------------------------------------------------------------- per-request / per-question


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0) + 1
        seen[label] = n
        out.append(label if n == 1 else f"{label} ({n})")
    return out


def timeline_figure(timeline_df: pd.DataFrame | None) -> go.Figure:
    """Gantt chart of requests: one horizontal bar per request from its start to its end.

    X axis: seconds since the run's first request. One panel per phase (sequential baseline,
    generation, evaluation, then any other), one row per request, bars coloured by status
    (:data:`STATUS_COLORS`; other statuses orange). With async generation the bars overlap —
    that overlap is the speedup. Empty input → :func:`empty_figure`.
    """
    title = "Request timeline"
    if _is_empty(timeline_df) or not {"start_s", "end_s", "phase"} <= set(timeline_df.columns):
        return empty_figure(title=title)
    df = timeline_df.copy()
    phases = sorted(df["phase"].unique(), key=lambda p: (_phase_rank(p), p))
    counts = [int((df["phase"] == p).sum()) for p in phases]
    gap_px = 50
    height = min(_MAX_TIMELINE_HEIGHT, max(320, 22 * sum(counts) + gap_px * len(phases) + 140))
    fig = make_subplots(
        rows=len(phases),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.2, gap_px / height) if len(phases) > 1 else 0.0,
        row_heights=[c / sum(counts) for c in counts],
        subplot_titles=[html.escape(_PHASE_TITLES.get(p, p.replace("-", " ").capitalize())) for p in phases],
    )
    fig.update_annotations(x=0.0, xanchor="left", font={"size": 13, "color": _GREY})
    shown: set[str] = set()
    for row_no, phase in enumerate(phases, start=1):
        part = df[df["phase"] == phase].sort_values(["start_s", "index"], kind="stable")
        with_label = phase not in ("generation", "generation-sequential")
        y = _unique(
            [
                f"Q{int(i) + 1}" + (f" · {_safe(lbl, limit=28, width=200)}" if with_label and lbl else "")
                for i, lbl in zip(part["index"], part["label"], strict=True)
            ]
        )
        part = part.assign(_y=y)
        known = list(STATUS_COLORS)
        for status in sorted(
            part["status"].unique(), key=lambda s: (known.index(s) if s in known else 99, s)
        ):
            sub = part[part["status"] == status]
            status_name = html.escape(str(status))
            fig.add_trace(
                go.Bar(
                    name=status_name,
                    legendgroup=status_name,
                    showlegend=status not in shown,
                    orientation="h",
                    y=sub["_y"],
                    base=sub["start_s"],
                    x=sub["duration_s"],
                    marker_color=STATUS_COLORS.get(status, _OTHER_STATUS_COLOR),
                    customdata=[
                        [_safe(lbl), _fmt(s), _fmt(e), _fmt(d), int(a), _fmt(th, 1)]
                        for lbl, s, e, d, a, th in zip(
                            sub["label"],
                            sub["start_s"],
                            sub["end_s"],
                            sub["duration_s"],
                            sub["attempts"],
                            sub["throttled_s"],
                            strict=True,
                        )
                    ],
                    hovertemplate=(
                        "%{y} · " + status_name + "<br>%{customdata[0]}"
                        "<br>%{customdata[1]} s → %{customdata[2]} s (%{customdata[3]} s)"
                        "<br>attempts %{customdata[4]}, throttled %{customdata[5]} s<extra></extra>"
                    ),
                ),
                row=row_no,
                col=1,
            )
            shown.add(status)
        fig.update_yaxes(
            type="category",
            categoryorder="array",
            categoryarray=y,
            autorange="reversed",
            row=row_no,
            col=1,
        )
    _base_layout(fig, title, barmode="overlay", height=height, bargap=0.25)
    fig.update_xaxes(rangemode="tozero", showgrid=True)
    fig.update_xaxes(title="Seconds since run start", row=len(phases), col=1)
    return fig


def heatmap_figure(results_df: pd.DataFrame | None) -> go.Figure:
    """Questions (rows, Q1 on top) × metrics (columns), cells coloured by score in [0, 1].

    A failed metric is drawn as a dark grey cell labelled "failed" (its error in the hover),
    never as a 0; a metric not scored for a question is left blank. Each scored cell shows its
    value. No metric columns or no rows → :func:`empty_figure`.
    """
    title = "Scores per question"
    cols = metric_columns(results_df)
    if _is_empty(results_df) or not cols:
        return empty_figure(title=title)
    df = results_df.sort_values("index", kind="stable").reset_index(drop=True)
    names = [metric_name(c) for c in cols]
    x = [html.escape(n) for n in names]
    y = [f"Q{int(i) + 1}" for i in df["index"]]
    questions = [_safe(q, limit=160) for q in df["question"]]

    values: list[list[float | None]] = []
    value_text: list[list[str]] = []
    failed_z: list[list[float | None]] = []
    failed_text: list[list[str]] = []
    hover: list[list[str]] = []
    for r in range(len(df)):
        row_v, row_t, row_fz, row_ft, row_h = [], [], [], [], []
        for name, col in zip(names, cols, strict=True):
            v = _float(df.at[r, col])
            failed = bool(df.at[r, "failed:" + name]) if ("failed:" + name) in df.columns else False
            err = df.at[r, "error:" + name] if ("error:" + name) in df.columns else None
            if failed:
                row_v.append(None)
                row_t.append("")
                row_fz.append(1.0)
                row_ft.append("failed")
                row_h.append("failed: " + _safe(err or "unknown error", limit=160))
            elif math.isnan(v):
                row_v.append(None)
                row_t.append("")
                row_fz.append(None)
                row_ft.append("")
                row_h.append("not scored")
            else:
                row_v.append(v)
                row_t.append(f"{v:.2f}")
                row_fz.append(None)
                row_ft.append("")
                row_h.append(f"{v:.3f}")
        values.append(row_v)
        value_text.append(row_t)
        failed_z.append(row_fz)
        failed_text.append(row_ft)
        hover.append(row_h)
    custom = [[[q, h] for h in row_h] for q, row_h in zip(questions, hover, strict=True)]
    hovertemplate = "%{y} · %{x}: %{customdata[1]}<br>%{customdata[0]}<extra></extra>"

    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            name="score",
            z=values,
            x=x,
            y=y,
            zmin=0.0,
            zmax=1.0,
            colorscale=_SCORE_SCALE,
            text=value_text,
            texttemplate="%{text}",
            customdata=custom,
            hovertemplate=hovertemplate,
            colorbar={"title": {"text": "score"}},
            xgap=2,
            ygap=2,
        )
    )
    if any(v is not None for row in failed_z for v in row):
        fig.add_trace(
            go.Heatmap(
                name="failed",
                z=failed_z,
                x=x,
                y=y,
                zmin=0.0,
                zmax=1.0,
                colorscale=[[0.0, _FAILED_COLOR], [1.0, _FAILED_COLOR]],
                showscale=False,
                text=failed_text,
                texttemplate="%{text}",
                textfont={"color": "#FFFFFF"},
                customdata=custom,
                hovertemplate=hovertemplate,
                xgap=2,
                ygap=2,
            )
        )
    height = min(_MAX_TIMELINE_HEIGHT, max(300, 28 * len(y) + 140))
    _base_layout(fig, title, height=height)
    fig.update_yaxes(autorange="reversed", type="category", title="Question")
    fig.update_xaxes(type="category", side="top", title=None)
    fig.update_layout(margin={"t": 90})
    return fig


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
