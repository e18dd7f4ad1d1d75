"""Plotly figures of experiments: a comparison with confidence intervals, and a sweep's leaderboard.

Same contracts as :mod:`rag_core.reporting.figures`: pure functions of typed records, an
:func:`~rag_core.reporting.figures.empty_figure` when there is nothing to draw, every label from
stored text ``html.escape``-d. Error bars are 95 % bootstrap confidence intervals
(:mod:`rag_core.runs.statistics`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from rag_core.reporting.figures import _base_layout, empty_figure
from rag_core.reporting.significance import Leaderboard
from rag_core.runs.statistics import PairedDiff
from rag_core.vocab import Significance, metric

__all__ = ["VERDICT_COLORS", "comparison_figure", "difference_figure", "leaderboard_figure"]

#: Colour of a difference by verdict.
VERDICT_COLORS: dict[str, str] = {
    Significance.BETTER: "#3A9D79",
    Significance.WORSE: "#C8505B",
    Significance.NO_DIFFERENCE: "#6B7785",
    Significance.NOT_ENOUGH_DATA: "#9AA5B1",
}
_GREY, _BLUE = "#6B7785", "#2F6DB5"
_COLORWAY = ["#2F6DB5", "#E0892B", "#3A9D79", "#8E6CC2", "#C8505B", "#5B8DA8", "#A68A3F", "#6B7785"]


def _err(mean: float | None, ci: tuple[float | None, float | None]) -> tuple[float, float]:
    lo, hi = ci
    if mean is None or lo is None or hi is None:
        return 0.0, 0.0
    return max(0.0, hi - mean), max(0.0, mean - lo)


def comparison_figure(stats: Sequence[PairedDiff], baseline_id: int, candidate_id: int) -> go.Figure:
    """Grouped bars per metric: baseline and candidate means over the paired questions, with their
    95 % CIs as error bars, the verdict written above each metric; the hover shows the difference,
    its CI and the verdict."""
    title = "Baseline vs candidate (95 % confidence intervals)"
    rows = [s for s in stats if s.mean_a is not None and s.mean_b is not None]
    if not rows:
        return empty_figure(title=title)
    x = [html.escape(s.label) for s in rows]
    fig = go.Figure()
    for role, run_id, color, means, cis in (
        ("Baseline", baseline_id, _GREY, [s.mean_a for s in rows], [s.ci_a for s in rows]),
        ("Candidate", candidate_id, _BLUE, [s.mean_b for s in rows], [s.ci_b for s in rows]),
    ):
        errs = [_err(m, c) for m, c in zip(means, cis, strict=True)]
        verdicts = [
            f"Δ {s.diff:+.3f} [{s.ci_low:+.3f}, {s.ci_high:+.3f}] · {s.verdict}"
            if s.diff is not None and s.ci_low is not None and s.ci_high is not None
            else str(s.verdict)
            for s in rows
        ]
        fig.add_trace(
            go.Bar(
                name=f"{role} #{run_id}",
                x=x,
                y=means,
                marker_color=color,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [e[0] for e in errs],
                    "arrayminus": [e[1] for e in errs],
                    "thickness": 1.2,
                },
                text=[f"{m:.2f}" for m in means],
                textposition="inside",
                insidetextanchor="start",  # at the foot of the bar, clear of the error bar
                customdata=verdicts,
                hovertemplate=f"{role} #{run_id}<br>%{{x}}: %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
            )
        )
    for label, s in zip(x, rows, strict=True):  # the verdict above each metric's pair of bars
        mark = {Significance.BETTER: "▲ better", Significance.WORSE: "▼ worse"}.get(
            s.verdict, "≈ " + str(s.verdict)
        )
        fig.add_annotation(
            x=label,
            y=1.12,
            text=f"{mark} (Δ {s.diff:+.2f})" if s.diff is not None else mark,
            showarrow=False,
            font={"size": 12, "color": VERDICT_COLORS.get(s.verdict, _GREY)},
        )
    _base_layout(fig, title, barmode="group", bargap=0.35, showlegend=True)
    fig.update_xaxes(title="Metric")
    fig.update_yaxes(title="Mean over paired questions", range=[0, 1.2])
    return fig


def _up(s: PairedDiff) -> float:
    return 0.0 if s.diff is None or s.ci_high is None else max(0.0, s.ci_high - s.diff)


def _down(s: PairedDiff) -> float:
    return 0.0 if s.diff is None or s.ci_low is None else max(0.0, s.diff - s.ci_low)


def difference_figure(stats: Sequence[PairedDiff]) -> go.Figure:
    """One row per metric: candidate − baseline with its 95 % CI, coloured by verdict, around a
    zero line; the hover gives the p-value (Holm), the smallest detectable difference and, with judge
    repeats, the judge's own noise."""
    title = "Difference per metric (candidate − baseline)"
    rows = [s for s in stats if s.diff is not None]
    if not rows:
        return empty_figure(title=title)
    fig = go.Figure()
    for verdict in (
        Significance.BETTER,
        Significance.WORSE,
        Significance.NO_DIFFERENCE,
        Significance.NOT_ENOUGH_DATA,
    ):
        sel = [s for s in rows if s.verdict == verdict]
        if not sel:
            continue
        fig.add_trace(
            go.Scatter(
                name=str(verdict),
                x=[s.diff for s in sel],
                y=[html.escape(s.label) for s in sel],
                mode="markers",
                marker={"color": VERDICT_COLORS[verdict], "size": 11},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [_up(s) for s in sel],
                    "arrayminus": [_down(s) for s in sel],
                    "thickness": 2,
                },
                customdata=[
                    [
                        "—" if s.p_holm is None else f"{s.p_holm:.3g}",
                        "—" if s.mde is None else f"{s.mde:.3f}",
                        "" if s.judge_noise is None else f"<br>judge noise ± {s.judge_noise:.3f}",
                        s.n_paired,
                    ]
                    for s in sel
                ],
                hovertemplate=(
                    "%{y}: Δ %{x:+.3f}<br>p (Holm) %{customdata[0]} · %{customdata[3]} questions"
                    "<br>smallest detectable ± %{customdata[1]}%{customdata[2]}<extra></extra>"
                ),
            )
        )
    fig.add_vline(x=0, line_width=1, line_color="#333")
    _base_layout(fig, title, showlegend=True, height=max(220, 70 + 45 * len(rows)))
    fig.update_xaxes(title="Difference in mean score", zeroline=False)
    fig.update_yaxes(autorange="reversed")
    return fig


def leaderboard_figure(board: Leaderboard) -> go.Figure:
    """A sweep's configurations (best first) × metrics: mean with its 95 % CI; a configuration
    significantly worse than the best on a metric is drawn hollow and marked ▼ in the hover."""
    title = "Sweep leaderboard (95 % confidence intervals)"
    if not board.rows or not board.metric_ids:
        return empty_figure(title=title)
    x = [html.escape(r.config) for r in board.rows]
    fig = go.Figure()
    for k, mid in enumerate(board.metric_ids):
        color = _COLORWAY[k % len(_COLORWAY)]
        means = [r.metrics[mid].mean if mid in r.metrics else None for r in board.rows]
        errs = [
            _err(r.metrics[mid].mean, (r.metrics[mid].ci_low, r.metrics[mid].ci_high))
            if mid in r.metrics
            else (0.0, 0.0)
            for r in board.rows
        ]
        worse = [mid in r.worse for r in board.rows]
        notes = [
            "▼ significantly worse than the best"
            if w
            else ("★ best" if board.best.get(mid) == r.run_id else "no detectable difference from the best")
            for r, w in zip(board.rows, worse, strict=True)
        ]
        fig.add_trace(
            go.Bar(
                name=html.escape(metric(mid).label),
                x=x,
                y=means,
                marker={
                    "color": ["rgba(255,255,255,0.9)" if w else color for w in worse],
                    "line": {"color": color, "width": 2},
                    "pattern": {"shape": ["/" if w else "" for w in worse], "fgcolor": color},
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [e[0] for e in errs],
                    "arrayminus": [e[1] for e in errs],
                    "thickness": 1.2,
                },
                customdata=notes,
                hovertemplate="%{x}<br>"
                + html.escape(metric(mid).label)
                + ": %{y:.3f}<br>%{customdata}<extra></extra>",
            )
        )
    _base_layout(fig, title, barmode="group", bargap=0.3, showlegend=True)
    fig.update_xaxes(title="Configuration (best first)", type="category")
    fig.update_yaxes(title="Mean score", range=[0, 1.1])
    return fig
