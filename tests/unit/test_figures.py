"""rag_core.reporting.figures: Plotly figures drawn from the frames of rag_core.reporting.frames.

Frames are built from typed records with the factories of test_frames.py, so every figure is
checked against what the history store really returns.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from rag_core.models import RequestTiming
from rag_core.reporting.figures import (
    NO_DATA,
    STATUS_COLORS,
    empty_figure,
    heatmap_figure,
    metric_compare_figure,
    metric_trend_figure,
    phase_figure,
    speedup_figure,
    timeline_figure,
)
from rag_core.reporting.frames import results_frame, runs_frame, timeline_frame
from tests.unit.test_frames import (
    EVIL,
    T0,
    run_record,
    sample_results,
    sample_runs,
    stats,
    summary,
)


def _is_no_data(fig: go.Figure) -> bool:
    return len(fig.data) == 0 and any(a.text == NO_DATA for a in fig.layout.annotations)


def _all_strings(obj: Any) -> list[str]:
    """Every string inside a figure's JSON (hover text, ticks, custom data...)."""
    out: list[str] = []
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            out += _all_strings(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            out += _all_strings(v)
    return out


def _offline_and_judged_runs() -> pd.DataFrame:
    """Run #1 scored offline and run #2 judged, both with a ``context_recall`` metric."""
    return runs_frame(
        [
            run_record(
                2,
                "2026-11-21T09:00:00Z",
                backend="claude",
                summary=summary(
                    2,
                    suite="judge",
                    backend="claude",
                    metrics=(
                        stats("judge", "faithfulness", 0.9, scored=3),
                        stats("judge", "context_recall", 0.8, scored=3),
                    ),
                ),
            ),
            run_record(
                1,
                "2026-11-20T09:00:00Z",
                summary=summary(
                    1,
                    metrics=(
                        stats("offline", "rouge_l", 0.4, scored=3),
                        stats("offline", "context_recall", 0.6, scored=3),
                    ),
                ),
            ),
        ]
    )


# --------------------------------------------------------------------------- run-level figures


def test_speedup_figure_bars_per_run_with_ideal_marker():
    fig = speedup_figure(runs_frame(sample_runs()))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {
        "Sequential",
        "Sequential (estimated)",
        "Async",
        "Ideal (sequential ÷ ideal speedup)",
    }
    assert list(fig.layout.xaxis.ticktext) == ["#1", "#3"]  # run 2 has no summary yet: skipped
    assert list(by_name["Async"].y) == [2.0, 3.0]
    assert list(by_name["Async"].text) == ["×4.0", "×2.5"]  # measured, else estimated
    assert by_name["Sequential"].y[0] == 8.0
    # Run 3 has no measured sequential time: estimated = async × speedup_estimated.
    assert math.isnan(by_name["Sequential"].y[1])
    assert by_name["Sequential (estimated)"].y[1] == pytest.approx(7.5)
    assert list(by_name["Ideal (sequential ÷ ideal speedup)"].y) == pytest.approx([1.0, 2.5])


def test_phase_figure_stacks_three_phases():
    fig = phase_figure(runs_frame(sample_runs()))
    assert [t.name for t in fig.data] == ["Retrieval", "Generation", "Evaluation"]
    assert fig.layout.barmode == "stack"
    assert list(fig.data[1].x) == ["#1", "#3"]  # the running run has no phase times yet
    assert list(fig.data[1].y) == [3.0, 3.0]


def test_metric_trend_figure_one_line_per_metric_with_scored_counts():
    fig = metric_trend_figure(runs_frame(sample_runs()))
    by_name = {t.name: t for t in fig.data}
    assert [t.name for t in fig.data] == ["Semantic similarity", "ROUGE-L"]  # registry labels
    rouge = by_name["ROUGE-L"]
    assert list(rouge.x) == ["#1", "#3"]  # time order; the running run has no metrics
    assert list(rouge.y) == [0.5, 0.7]
    assert [row[1:] for row in rouge.customdata] == [[3, 0, 3], [3, 0, 3]]  # scored, failed, total
    assert "scored %{customdata[1]} of %{customdata[3]}" in rouge.hovertemplate
    semantic = by_name["Semantic similarity"]
    assert semantic.y[0] == 0.8 and math.isnan(semantic.y[1])  # not measured in run 3: a gap, not 0
    assert semantic.customdata[0][1:] == [2, 1, 3]


def test_metric_trend_figure_draws_offline_and_judged_context_recall_apart():
    """Regression: offline and judged context recall are two lines with their registry labels."""
    fig = metric_trend_figure(_offline_and_judged_runs())
    by_name = {t.name: t for t in fig.data}
    assert [t.name for t in fig.data] == [
        "Faithfulness",
        "Context recall (judge)",
        "ROUGE-L",
        "Context recall (offline)",
    ]
    assert list(by_name["Context recall (offline)"].x) == ["#1", "#2"]
    offline, judged = by_name["Context recall (offline)"].y, by_name["Context recall (judge)"].y
    assert offline[0] == 0.6 and math.isnan(offline[1])
    assert math.isnan(judged[0]) and judged[1] == 0.8
    assert "Context recall (judge): " in by_name["Context recall (judge)"].hovertemplate


def test_metric_trend_hover_shows_scored_of_the_runs_question_count():
    """Regression: a run cancelled half-way shows "scored 6 of 12", its total is its question count."""
    cancelled = run_record(
        7,
        "2026-11-20T09:00:00Z",
        summary=summary(
            7,
            status="cancelled",
            n_questions=12,
            metrics=(stats("offline", "rouge_l", 0.5, scored=6, total=12),),
        ),
    )
    (trace,) = metric_trend_figure(runs_frame([cancelled])).data
    assert trace.customdata[0][1:] == [6, 0, 12]
    assert "scored %{customdata[1]} of %{customdata[3]}, failed %{customdata[2]}" in trace.hovertemplate


def test_metric_compare_figure_grouped_bars():
    df = runs_frame(sample_runs())
    fig = metric_compare_figure(df[df["id"] == 1], df[df["id"] == 3].iloc[0])
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["Baseline #1", "Candidate #3"]
    assert list(fig.data[0].x) == ["Semantic similarity", "ROUGE-L"]
    assert list(fig.data[0].y) == [0.8, 0.5]
    cand = list(fig.data[1].y)
    assert math.isnan(cand[0]) and cand[1] == 0.7
    assert fig.data[1].customdata[0][1] == ""  # no delta against a metric the candidate lacks
    assert "Δ +0.200" in fig.data[1].customdata[1][1]
    # A mapping row works too, and a lone run has no deltas.
    alone = metric_compare_figure(None, df[df["id"] == 3].iloc[0].to_dict())
    assert [t.name for t in alone.data] == ["Candidate #3"]
    assert [row[1] for row in alone.data[0].customdata] == [""]


def test_metric_compare_figure_never_computes_a_delta_across_suites():
    df = _offline_and_judged_runs()
    fig = metric_compare_figure(df.iloc[0], df.iloc[1])
    base, cand = fig.data
    assert list(base.x) == [
        "Faithfulness",
        "Context recall (judge)",
        "ROUGE-L",
        "Context recall (offline)",
    ]
    assert list(cand.y)[1] == 0.8 and math.isnan(list(base.y)[1])
    assert all(row[1] == "" for row in cand.customdata)  # nothing shared, so no Δ anywhere


# --------------------------------------------------------------------------- per-request / per-question


def test_heatmap_marks_failed_cells_distinctly_not_as_zero():
    fig = heatmap_figure(results_frame(sample_results(), suite="judge"))
    scores, failed = fig.data
    assert list(scores.x) == ["Faithfulness", "Context recall (judge)"]
    assert list(scores.y) == ["Q1", "Q2", "Q3"]
    # Q1 faithfulness failed: no value in the score layer, a labelled cell in the failed layer.
    assert scores.z[0][0] is None
    assert failed.z[0][0] == 1.0 and failed.text[0][0] == "failed"
    assert "judge timed out" in failed.customdata[0][0][1]
    # Q1 context recall is a genuine 0.0 and is drawn as one.
    assert scores.z[0][1] == 0.0 and scores.text[0][1] == "0.00"
    # Q2 faithfulness was never scored: blank in both layers.
    assert scores.z[1][0] is None and failed.z[1][0] is None
    assert scores.customdata[1][0][1] == "not scored"
    # The failed colour is not on the score scale, so a failure never looks like any score.
    score_colours = {c.upper() for _, c in scores.colorscale}
    assert {c.upper() for _, c in failed.colorscale}.isdisjoint(score_colours)
    assert failed.showscale is False


def test_heatmap_labels_columns_by_the_runs_suite():
    res = [r for r in sample_results() if "faithfulness" not in r.scores]
    offline = heatmap_figure(results_frame(res, suite="offline"))
    judged = heatmap_figure(results_frame(res, suite="judge"))
    assert list(offline.data[0].x) == ["Context recall (offline)"]
    assert list(judged.data[0].x) == ["Context recall (judge)"]


def test_heatmap_without_failures_has_one_layer():
    res = [r for r in sample_results() if r.index != 0]
    (only,) = heatmap_figure(results_frame(res, suite="judge")).data
    assert only.name == "score"


def test_timeline_figure_bar_per_request_coloured_by_status():
    timings = [
        RequestTiming(
            i, "generation", f"question {i}", T0 + i * 0.1, T0 + 1 + i * 0.1, 1, "error" if i == 2 else "ok"
        )
        for i in range(4)
    ] + [
        RequestTiming(i, "evaluation", "rouge_l", T0 + 2 + i, T0 + 2.5 + i, 1, "cancelled") for i in range(2)
    ]
    fig = timeline_figure(timeline_frame(timings))
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert sum(len(t.y) for t in bars) == 6
    colours = {t.name: t.marker.color for t in bars}
    assert colours["ok"] == STATUS_COLORS["ok"]
    assert colours["error"] == STATUS_COLORS["error"]
    assert colours["cancelled"] == STATUS_COLORS["cancelled"]
    error_bar = next(t for t in bars if t.name == "error")
    assert list(error_bar.base) == pytest.approx([0.2]) and list(error_bar.x) == pytest.approx([1.0])
    # One panel per phase, legend entry per status only once.
    assert [a.text for a in fig.layout.annotations] == ["Generation", "Evaluation"]
    assert sum(1 for t in bars if t.showlegend is not False) == 3
    # Evaluation rows carry the metric name; duplicate labels get a counter, not a merged row.
    evaluation = next(t for t in bars if t.name == "cancelled")
    assert list(evaluation.y) == ["Q1 · rouge_l", "Q2 · rouge_l"]


def test_timeline_figure_panels_in_phase_order():
    timings = [
        RequestTiming(0, "evaluation", "rouge_l", T0 + 3, T0 + 4, 1, "ok"),
        RequestTiming(0, "generation", "q", T0 + 1, T0 + 2, 1, "ok"),
        RequestTiming(0, "generation-sequential", "q", T0, T0 + 0.5, 1, "ok"),
    ]
    fig = timeline_figure(timeline_frame(timings))
    assert [a.text for a in fig.layout.annotations] == [
        "Generation (sequential baseline)",
        "Generation",
        "Evaluation",
    ]


# --------------------------------------------------------------------------- escaping


def test_user_text_in_hover_is_html_escaped():
    strings = _all_strings(heatmap_figure(results_frame(sample_results(), suite="judge")).to_plotly_json())
    assert not any(EVIL in s for s in strings)
    assert any("&lt;img src=x onerror=alert(1)&gt;" in s for s in strings)

    tl = timeline_frame([RequestTiming(0, "evaluation", EVIL, T0, T0 + 1, 1, "ok")])
    assert not any(EVIL in s for s in _all_strings(timeline_figure(tl).to_plotly_json()))

    runs = sample_runs()
    runs[2] = dataclasses.replace(runs[2], question_set=EVIL)
    df = runs_frame(runs)
    for fig in (
        speedup_figure(df),
        phase_figure(df),
        metric_trend_figure(df),
        metric_compare_figure(df.iloc[0], df.iloc[2]),
        empty_figure(EVIL),
    ):
        assert not any("<img" in s for s in _all_strings(fig.to_plotly_json()))


# --------------------------------------------------------------------------- empty input


@pytest.mark.parametrize(
    "fig_fn", [speedup_figure, phase_figure, metric_trend_figure, timeline_figure, heatmap_figure]
)
@pytest.mark.parametrize("empty", [None, pd.DataFrame()], ids=["none", "empty-frame"])
def test_empty_inputs_give_no_data_figure(fig_fn, empty):
    assert _is_no_data(fig_fn(empty))


def test_empty_frames_and_runs_without_data_give_no_data_figures():
    assert _is_no_data(timeline_figure(timeline_frame([])))
    assert _is_no_data(heatmap_figure(results_frame([], suite="judge")))
    assert _is_no_data(heatmap_figure(results_frame(sample_results()[:0], suite="judge")))
    # A run that exists but has no summary (no timings, no metrics) yet.
    bare = runs_frame([run_record(1, "2026-11-20T09:00:00Z", summary=None)])
    for fn in (speedup_figure, phase_figure, metric_trend_figure):
        assert _is_no_data(fn(bare))
    # A finished run scored by no suite has no metric to trend.
    unscored = runs_frame([run_record(1, "2026-11-20T09:00:00Z", summary=summary(1, suite="none"))])
    assert _is_no_data(metric_trend_figure(unscored))
    assert _is_no_data(metric_compare_figure(None, None))
    assert _is_no_data(metric_compare_figure(bare.iloc[0], bare))
    assert _is_no_data(metric_compare_figure(pd.DataFrame(), {}))
