"""rag_core.reporting.charts: frames from history records, Plotly figures, per-question deltas.

Records are given as plain dicts / models.MetricScore / models.RequestTiming (charts duck-types
them), so these tests do not depend on rag_core.storage.store.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from rag_core.models import MetricScore, RequestTiming
from rag_core.reporting import charts
from rag_core.reporting.charts import (
    NO_DATA,
    REGRESSION_THRESHOLD,
    heatmap_figure,
    metric_columns,
    metric_compare_figure,
    metric_trend_figure,
    per_question_deltas,
    phase_figure,
    results_frame,
    runs_frame,
    speedup_figure,
    timeline_figure,
    timeline_frame,
)

EVIL = "<img src=x onerror=alert(1)>"


def _run(run_id: int, created_at: str, **over: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "id": run_id,
        "created_at": created_at,
        "finished_at": None,
        "question_set": "sample",
        "backend": "offline",
        "mode": "compare",
        "suite": "offline",
        "status": "completed",
        "config": {},
        "timings": {"retrieval_s": 0.4, "generation_s": 3.0, "evaluation_s": 1.5, "total_s": 4.9},
        "summary": {
            "n_questions": 3,
            "errors": 1,
            "generation": {
                "sequential_s": 8.0,
                "async_s": 2.0,
                "speedup_measured": 4.0,
                "speedup_estimated": 3.8,
                "ideal_speedup": 8.0,
                "concurrency": 8,
            },
            "metrics": {
                "rouge_l": {"mean": 0.5, "stdev": 0.1, "scored": 3, "failed": 0},
                "semantic_similarity": {"mean": 0.8, "stdev": 0.05, "scored": 2, "failed": 1},
            },
            "usage": {"input_tokens": 100, "output_tokens": 50, "cost_usd": 0.0123},
        },
        "n_questions": 3,
    }
    run.update(over)
    return run


def _result(index: int, question: str, scores: dict[str, Any], **over: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "run_id": 1,
        "index": index,
        "question": question,
        "ground_truth": "gt",
        "answer": "ans",
        "contexts": [{"id": "a:0", "text": "t", "source": "h.pdf", "page": 1, "score": 0.9}],
        "error": None,
        "error_kind": None,
        "latency_s": 1.25,
        "attempts": 1,
        "input_tokens": 10,
        "output_tokens": 5,
        "model": "offline-extractive",
        "scores": scores,
    }
    res.update(over)
    return res


@pytest.fixture
def runs() -> list[dict[str, Any]]:
    # Given newest first, like HistoryStore.list_runs().
    return [
        _run(
            3,
            "2026-11-21T12:00:00+00:00",
            mode="async",
            summary={
                "n_questions": 3,
                "errors": 0,
                "generation": {
                    "sequential_s": None,
                    "async_s": 3.0,
                    "speedup_measured": None,
                    "speedup_estimated": 2.5,
                    "ideal_speedup": 3.0,
                    "concurrency": 4,
                },
                "metrics": {"rouge_l": {"mean": 0.7, "stdev": None, "scored": 3, "failed": 0}},
            },
        ),
        _run(2, "2026-11-21T09:00:00+00:00", status="running", timings={}, summary={}),
        _run(1, "2026-11-20T09:00:00+00:00"),
    ]


@pytest.fixture
def results() -> list[dict[str, Any]]:
    return [
        _result(
            2,
            "How many days of parental leave?",
            {
                "rouge_l": MetricScore("rouge_l", 0.2),
                "faithfulness": MetricScore("faithfulness", 0.9),
            },
        ),
        _result(
            0,
            f"Can I carry over holiday? {EVIL}",
            {
                "rouge_l": MetricScore("rouge_l", 0.0),
                "faithfulness": MetricScore("faithfulness", None, error="judge timed out"),
            },
        ),
        _result(
            1,
            "What is the notice period?",
            {"rouge_l": MetricScore("rouge_l", 0.75)},
            answer=None,
            error="Rate limited",
            error_kind="RateLimitError",
        ),
    ]


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


# --------------------------------------------------------------------------- frames


def test_runs_frame_one_row_per_run_in_time_order_with_metric_columns(runs):
    df = runs_frame(runs)
    assert list(df["id"]) == [1, 2, 3]
    for col in charts.RUN_COLUMNS:
        assert col in df.columns
    assert metric_columns(df) == ["metric:semantic_similarity", "metric:rouge_l"]
    first = df.iloc[0]
    assert first["speedup_measured"] == 4.0 and first["ideal_speedup"] == 8.0
    assert first["cost_usd"] == pytest.approx(0.0123) and first["errors"] == 1
    assert first["scored:semantic_similarity"] == 2 and first["failed:semantic_similarity"] == 1
    running = df.iloc[1]
    assert math.isnan(running["total_s"]) and math.isnan(running["metric:rouge_l"])
    assert running["scored:rouge_l"] == 0
    assert str(df["created_at"].dtype).startswith("datetime64")


def test_results_frame_keeps_failed_metrics_as_nan_and_flagged(results):
    df = results_frame(results)
    assert list(df["index"]) == [0, 1, 2]
    assert df.loc[0, "metric:rouge_l"] == 0.0  # a real zero stays a zero
    assert math.isnan(df.loc[0, "metric:faithfulness"])
    assert bool(df.loc[0, "failed:faithfulness"]) is True
    assert df.loc[0, "error:faithfulness"] == "judge timed out"
    # Not scored at all (answer failed before judging) is not "failed".
    assert math.isnan(df.loc[1, "metric:faithfulness"]) and not df.loc[1, "failed:faithfulness"]
    assert df.loc[1, "error"] == "Rate limited" and df.loc[1, "status"] == "error"
    assert df.loc[0, "status"] == "ok"
    assert df.loc[2, "tokens"] == 15 and df.loc[2, "n_contexts"] == 1


def test_results_frame_accepts_score_dicts_and_numbers():
    df = results_frame([_result(0, "q", {"a": {"value": None, "error": "boom"}, "b": 0.4})])
    assert bool(df.loc[0, "failed:a"]) and df.loc[0, "error:a"] == "boom"
    assert df.loc[0, "metric:b"] == 0.4


def test_timeline_frame_is_relative_to_first_request_and_grouped_by_phase():
    t0 = 1_700_000_000.0
    timings = [
        RequestTiming(0, "evaluation", "rouge_l", t0 + 5, t0 + 6, 1, "ok"),
        RequestTiming(1, "generation", "q1", t0 + 1.5, t0 + 3.0, 2, "error", throttled_s=0.5),
        RequestTiming(0, "generation", "q0", t0 + 1.0, t0 + 2.0, 1, "ok"),
        RequestTiming(0, "generation-sequential", "q0", t0 + 0.0, t0 + 0.5, 1, "ok"),
        {
            "index": 2,
            "phase": "generation",
            "label": "q2",
            "start": t0 + 2,
            "end": t0 + 1,
            "attempts": 1,
            "status": "cancelled",
        },
        {"index": 3, "phase": "generation", "label": "no start", "start": None, "end": None},
    ]
    df = timeline_frame(timings)
    assert list(df.columns) == list(charts.TIMELINE_COLUMNS)
    assert list(df["phase"]) == [
        "generation-sequential",
        "generation",
        "generation",
        "generation",
        "evaluation",
    ]
    assert df["start_s"].min() == 0.0
    gen = df[df["phase"] == "generation"]
    assert list(gen["start_s"]) == [1.0, 1.5, 2.0]
    assert list(gen["duration_s"]) == [1.0, 1.5, 0.0]  # end before start → 0, not negative
    assert gen.iloc[1]["throttled_s"] == 0.5


# --------------------------------------------------------------------------- figures


def test_speedup_figure_bars_per_run_with_ideal_marker(runs):
    fig = speedup_figure(runs_frame(runs))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {
        "Sequential",
        "Sequential (estimated)",
        "Async",
        "Ideal (sequential ÷ ideal speedup)",
    }
    assert list(fig.layout.xaxis.ticktext) == ["#1", "#3"]  # run 2 has no timings: skipped
    assert list(by_name["Async"].y) == [2.0, 3.0]
    assert by_name["Sequential"].y[0] == 8.0
    # Run 3 has no measured sequential time: estimated = async × speedup_estimated.
    assert math.isnan(by_name["Sequential"].y[1])
    assert by_name["Sequential (estimated)"].y[1] == pytest.approx(7.5)
    assert list(by_name["Ideal (sequential ÷ ideal speedup)"].y) == pytest.approx([1.0, 2.5])


def test_phase_figure_stacks_three_phases(runs):
    fig = phase_figure(runs_frame(runs))
    assert [t.name for t in fig.data] == ["Retrieval", "Generation", "Evaluation"]
    assert fig.layout.barmode == "stack"
    assert list(fig.data[1].x) == ["#1", "#3"]
    assert list(fig.data[1].y) == [3.0, 3.0]


def test_metric_trend_figure_one_line_per_metric_with_scored_counts(runs):
    fig = metric_trend_figure(runs_frame(runs))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"rouge_l", "semantic_similarity"}
    rouge = by_name["rouge_l"]
    assert list(rouge.x) == ["#1", "#3"]  # time order; the running run has no metrics
    assert list(rouge.y) == [0.5, 0.7]
    assert [row[1] for row in rouge.customdata] == [3, 3]
    assert "scored %{customdata[1]}" in rouge.hovertemplate


def test_metric_compare_figure_grouped_bars(runs):
    df = runs_frame(runs)
    fig = metric_compare_figure(df[df["id"] == 1], df[df["id"] == 3].iloc[0])
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["Baseline #1", "Candidate #3"]
    assert list(fig.data[0].x) == ["semantic_similarity", "rouge_l"]
    assert list(fig.data[0].y) == [0.8, 0.5]
    cand = list(fig.data[1].y)
    assert math.isnan(cand[0]) and cand[1] == 0.7
    assert "Δ +0.200" in fig.data[1].customdata[1][1]


def test_heatmap_marks_failed_cells_distinctly_not_as_zero(results):
    fig = heatmap_figure(results_frame(results))
    scores, failed = fig.data
    assert list(scores.x) == ["faithfulness", "rouge_l"]
    assert list(scores.y) == ["Q1", "Q2", "Q3"]
    # Q1 faithfulness failed: no value in the score layer, a labelled cell in the failed layer.
    assert scores.z[0][0] is None
    assert failed.z[0][0] == 1.0 and failed.text[0][0] == "failed"
    assert "judge timed out" in failed.customdata[0][0][1]
    # Q1 rouge_l is a genuine 0.0 and is drawn as one.
    assert scores.z[0][1] == 0.0 and scores.text[0][1] == "0.00"
    # Q2 faithfulness was never scored: blank in both layers.
    assert scores.z[1][0] is None and failed.z[1][0] is None
    # The failed colour is not on the score scale, so a failure never looks like any score.
    score_colours = {c.upper() for _, c in scores.colorscale}
    assert {c.upper() for _, c in failed.colorscale}.isdisjoint(score_colours)
    assert failed.showscale is False


def test_timeline_figure_bar_per_request_coloured_by_status():
    t0 = 1_700_000_000.0
    timings = [
        RequestTiming(
            i, "generation", f"question {i}", t0 + i * 0.1, t0 + 1 + i * 0.1, 1, "error" if i == 2 else "ok"
        )
        for i in range(4)
    ] + [
        RequestTiming(i, "evaluation", "rouge_l", t0 + 2 + i, t0 + 2.5 + i, 1, "cancelled") for i in range(2)
    ]
    fig = timeline_figure(timeline_frame(timings))
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert sum(len(t.y) for t in bars) == 6
    colours = {t.name: t.marker.color for t in bars}
    assert colours["ok"] == charts.STATUS_COLORS["ok"]
    assert colours["error"] == charts.STATUS_COLORS["error"]
    assert colours["cancelled"] == charts.STATUS_COLORS["cancelled"]
    error_bar = next(t for t in bars if t.name == "error")
    assert list(error_bar.base) == pytest.approx([0.2]) and list(error_bar.x) == pytest.approx([1.0])
    # One panel per phase, legend entry per status only once.
    assert [a.text for a in fig.layout.annotations] == ["Generation", "Evaluation"]
    assert sum(1 for t in bars if t.showlegend is not False) == 3


def test_user_text_in_hover_is_html_escaped(results, runs):
    res_df = results_frame(results)
    strings = _all_strings(heatmap_figure(res_df).to_plotly_json())
    assert not any(EVIL in s for s in strings)
    assert any("&lt;img src=x onerror=alert(1)&gt;" in s for s in strings)

    t0 = 1_700_000_000.0
    tl = timeline_frame([RequestTiming(0, "evaluation", EVIL, t0, t0 + 1, 1, "ok")])
    assert not any(EVIL in s for s in _all_strings(timeline_figure(tl).to_plotly_json()))

    runs[2]["question_set"] = EVIL
    for fig in (
        speedup_figure(runs_frame(runs)),
        phase_figure(runs_frame(runs)),
        metric_trend_figure(runs_frame(runs)),
    ):
        assert not any("<img" in s for s in _all_strings(fig.to_plotly_json()))


@pytest.mark.parametrize(
    "fig_fn", [speedup_figure, phase_figure, metric_trend_figure, timeline_figure, heatmap_figure]
)
@pytest.mark.parametrize("empty", [None, pd.DataFrame()], ids=["none", "empty-frame"])
def test_empty_inputs_give_no_data_figure(fig_fn, empty):
    assert _is_no_data(fig_fn(empty))


def test_empty_builders_and_rows_without_data():
    assert runs_frame([]).empty and list(runs_frame(None).columns) == list(charts.RUN_COLUMNS)
    assert results_frame([]).empty and timeline_frame(None).empty
    assert _is_no_data(timeline_figure(timeline_frame([])))
    assert _is_no_data(heatmap_figure(results_frame([])))
    # Runs that exist but have no timings / metrics yet.
    bare = runs_frame([_run(1, "2026-11-20T09:00:00Z", timings={}, summary={})])
    for fn in (speedup_figure, phase_figure, metric_trend_figure):
        assert _is_no_data(fn(bare))
    assert _is_no_data(metric_compare_figure(None, None))
    assert _is_no_data(metric_compare_figure(bare.iloc[0], bare))


# --------------------------------------------------------------------------- deltas


def test_per_question_deltas_flags_drops_beyond_threshold():
    base = results_frame(
        [
            _result(0, "Q one", {"rouge_l": 0.8, "faithfulness": 0.9}),
            _result(1, "Q two", {"rouge_l": 0.8, "faithfulness": 0.9}),
            _result(2, "Q three", {"rouge_l": 0.5}),
            _result(3, "Q gone", {"rouge_l": 0.5}),
        ]
    )
    cand = results_frame(
        [
            # Reordered: matching is by question text, not position.
            _result(0, "Q two", {"rouge_l": 0.7, "faithfulness": 0.95}),  # exactly −0.1: not > 0.1
            _result(1, "Q one", {"rouge_l": 0.85, "faithfulness": 0.5}),  # −0.4: regression
            _result(2, "Q three", {"rouge_l": {"value": None, "error": "x"}}),  # failed: no delta
            _result(3, "Q new", {"rouge_l": 0.1}),
        ]
    )
    d = per_question_deltas(base, cand).set_index("question")
    assert REGRESSION_THRESHOLD == 0.1
    assert d.loc["Q one", "delta:faithfulness"] == pytest.approx(-0.4)
    assert bool(d.loc["Q one", "regression"]) and d.loc["Q one", "regressed"] == ["faithfulness"]
    assert d.loc["Q one", "worst_delta"] == pytest.approx(-0.4)
    assert d.loc["Q two", "delta:rouge_l"] == pytest.approx(-0.1)
    assert not d.loc["Q two", "regression"]
    assert math.isnan(d.loc["Q three", "delta:rouge_l"]) and not d.loc["Q three", "regression"]
    assert math.isnan(d.loc["Q new", "base:rouge_l"]) and not d.loc["Q new", "regression"]
    assert math.isnan(d.loc["Q gone", "cand:rouge_l"])
    assert list(d.index) == ["Q two", "Q one", "Q three", "Q new", "Q gone"]
    # A stricter threshold flags the exact 0.1 drop too.
    strict = per_question_deltas(base, cand, threshold=0.05).set_index("question")
    assert bool(strict.loc["Q two", "regression"])


def test_per_question_deltas_empty_inputs():
    empty = per_question_deltas(None, pd.DataFrame())
    assert empty.empty and {"index", "question", "regression"} <= set(empty.columns)
    one_side = per_question_deltas(None, results_frame([_result(0, "q", {"rouge_l": 0.5})]))
    assert len(one_side) == 1 and not one_side.loc[0, "regression"]
