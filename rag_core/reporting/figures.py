"""Plotly figures for the dashboard, as pure functions of the frames in :mod:`.frames`.

Contracts:

- Figure functions take DataFrames and return a ``plotly.graph_objects.Figure``; input without the
  data a chart needs gives a figure whose only content is the annotation :data:`NO_DATA`.
- Metrics are labelled by their registry label (:func:`rag_core.vocab.metric`), unique across
  suites, and are never joined across suites. A metric whose id is in ``disagreeing`` (it
  disagrees with the analyst's verdicts, :mod:`rag_core.evaluation.agreement`) is labelled with
  :data:`DISAGREE_MARK`.
- Every text that comes from documents, questions, answers, question-set names or error messages
  is ``html.escape``-d before it reaches hover text or tick labels (Plotly renders a subset of
  HTML there).
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rag_core.reporting.frames import (
    METRIC_PREFIX,
    NO_DATA,
    PHASE_COLUMNS,
    _as_row,
    _float,
    _fmt,
    _has_rows,
    _int,
    _is_missing,
    _metric_order,
    _phase_rank,
    _run_label,
    _safe,
    metric_columns,
    metric_label,
    metric_name,
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
_BLUE, _ORANGE, _GREEN, _GREY = "#2F6DB5", "#E0892B", "#3A9D79", "#6B7785"
_PHASE_COLORS = {"retrieval_s": _ORANGE, "generation_s": _BLUE, "evaluation_s": _GREEN}
_FAILED_COLOR = "#4B5563"
_SCORE_SCALE = [[0.0, "#C8505B"], [0.5, "#F2E4A0"], [1.0, "#3A9D79"]]
_TEMPLATE = "plotly_white"
#: Categorical colours, same order as ``chartCategoricalColors`` in .streamlit/config.toml.
_COLORWAY = ["#2F6DB5", "#E0892B", "#3A9D79", "#8E6CC2", "#C8505B", "#5B8DA8", "#A68A3F", "#6B7785"]
_MAX_TIMELINE_HEIGHT = 2400
#: Appended to the label of a metric that disagrees with the analyst.
DISAGREE_MARK = " ⚠ disagrees with analyst"


def _label(metric_id: str, disagreeing: Collection[str] = ()) -> str:
    """Escaped display label of a metric, flagged when it disagrees with the analyst."""
    return html.escape(metric_label(metric_id) + (DISAGREE_MARK if metric_id in disagreeing else ""))


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
    if not _has_rows(runs_df):
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

    Runs with no phase time at all (none recorded, or all zero) are skipped; none left → :func:`empty_figure`.
    """
    title = "Time per phase"
    if not _has_rows(runs_df) or not set(PHASE_COLUMNS) <= set(runs_df.columns):
        return empty_figure(title=title)
    phases = runs_df[list(PHASE_COLUMNS)].astype(float).fillna(0.0)
    df = runs_df[(phases > 0).any(axis=1)].reset_index(drop=True)
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


def metric_trend_figure(runs_df: pd.DataFrame | None, disagreeing: Collection[str] = ()) -> go.Figure:
    """One line per metric: its mean across runs, oldest run on the left, with error bars for the
    mean's 95 % bootstrap CI when the runs stored one (metrics in ``disagreeing`` flagged).

    Hover shows the run, the mean, and how many questions were scored / failed. Runs are placed
    as categories (``#<id>``) in time order so close-together runs stay readable. No metric
    values at all → :func:`empty_figure`.
    """
    title = "Metric trends across runs"
    if not _has_rows(runs_df):
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
        total = df.get("total:" + name, scored + failed).fillna(0).astype(int)
        y = df[col].astype(float)
        fig.add_trace(
            go.Scatter(
                name=_label(name, disagreeing),
                x=labels,
                y=y,
                mode="lines+markers",
                connectgaps=True,
                error_y=_ci_error(df, name, y),
                line={"dash": "dot"} if name in disagreeing else None,
                customdata=[[h, s, f, t] for h, s, f, t in zip(hovers, scored, failed, total, strict=True)],
                hovertemplate=(
                    "%{customdata[0]}<br>" + _label(name, disagreeing) + ": %{y:.3f}"
                    "<br>scored %{customdata[1]} of %{customdata[3]}, failed %{customdata[2]}<extra></extra>"
                ),
            )
        )
    _base_layout(fig, title, showlegend=True)
    fig.update_xaxes(
        title="Run (oldest → newest)", type="category", categoryorder="array", categoryarray=labels
    )
    fig.update_yaxes(title="Mean score", range=[0, 1.05])
    return fig


def _ci_error(df: pd.DataFrame, name: str, y: pd.Series) -> dict[str, Any] | None:
    """Asymmetric error bars from the ``ci_low:``/``ci_high:`` columns (95 % bootstrap CI), or None."""
    lo, hi = df.get("ci_low:" + name), df.get("ci_high:" + name)
    if lo is None or hi is None or not (lo.notna().any() and hi.notna().any()):
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": (hi.astype(float) - y).clip(lower=0).fillna(0).tolist(),
        "arrayminus": (y - lo.astype(float)).clip(lower=0).fillna(0).tolist(),
        "thickness": 1,
        "width": 3,
    }


def metric_compare_figure(
    baseline: pd.Series | pd.DataFrame | Mapping[str, Any] | None,
    candidate: pd.Series | pd.DataFrame | Mapping[str, Any] | None,
    disagreeing: Collection[str] = (),
) -> go.Figure:
    """Grouped bars: each metric's mean in the baseline run next to the candidate run (metrics in
    ``disagreeing`` flagged).

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
                x=[_label(m, disagreeing) for m in metrics],
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
    if not _has_rows(timeline_df) or not {"start_s", "end_s", "phase"} <= set(timeline_df.columns):
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


def heatmap_figure(results_df: pd.DataFrame | None, disagreeing: Collection[str] = ()) -> go.Figure:
    """Questions (rows, Q1 on top) × metrics (columns), cells coloured by score in [0, 1].

    A failed metric is drawn as a dark grey cell labelled "failed" (its error in the hover),
    never as a 0; a metric skipped for a question (it does not apply) or not scored is left
    blank, its hover says which. Each scored cell shows its value. Metrics in ``disagreeing`` are
    flagged. No metric columns or no rows → :func:`empty_figure`.
    """
    title = "Scores per question"
    cols = metric_columns(results_df)
    if not _has_rows(results_df) or not cols:
        return empty_figure(title=title)
    df = results_df.sort_values("index", kind="stable").reset_index(drop=True)
    names = [metric_name(c) for c in cols]
    x = [_label(n, disagreeing) for n in names]
    y = [f"Q{int(i) + 1}" for i in df["index"]]
    questions = [_safe(q, limit=160) for q in df["question"]]

    values: list[list[float | None]] = []
    value_text: list[list[str]] = []
    failed_z: list[list[float | None]] = []
    failed_text: list[list[str]] = []
    hover: list[list[str]] = []
    for r in range(len(df)):
        row_v: list[float | None] = []
        row_fz: list[float | None] = []
        row_t: list[str] = []
        row_ft: list[str] = []
        row_h: list[str] = []
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
                skipped = bool(df.at[r, "skipped:" + name]) if ("skipped:" + name) in df.columns else False
                row_v.append(None)
                row_t.append("")
                row_fz.append(None)
                row_ft.append("")
                row_h.append("skipped (does not apply to this question)" if skipped else "not scored")
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
