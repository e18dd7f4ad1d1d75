"""rag_core.reporting.frames: tidy frames from typed history records, per-question deltas.

Records are the typed ones the history store returns (RunRecord with a RunSummary, ResultRecord,
RequestTiming), built by the small factories below; test_figures.py reuses them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from rag_core.models import MetricScore, RequestTiming
from rag_core.reporting.frames import (
    REGRESSION_THRESHOLD,
    RESULT_COLUMNS,
    RUN_COLUMNS,
    TIMELINE_COLUMNS,
    metric_columns,
    metric_label,
    metric_name,
    per_question_deltas,
    results_frame,
    runs_frame,
    timeline_frame,
)
from rag_core.storage.records import ResultRecord, RunRecord
from rag_core.summary import GenerationStats, MetricStats, PassUsage, RunSummary, Timings, Usage

EVIL = "<img src=x onerror=alert(1)>"
T0 = 1_700_000_000.0
#: Phase times of a finished run (seconds).
TIMINGS = Timings(retrieval_s=0.4, generation_s=3.0, evaluation_s=1.5, total_s=4.9)


# --------------------------------------------------------------------------- record factories


def stats(
    suite: str, name: str, mean: float | None, scored: int, failed: int = 0, total: int = 3
) -> MetricStats:
    """One metric's summary over a run (``total`` = the run's question count)."""
    return MetricStats(suite=suite, name=name, mean=mean, scored=scored, failed=failed, total=total)


def summary(run_id: int, *, suite: str = "offline", n_questions: int = 3, **fields: Any) -> RunSummary:
    """A completed compare-mode offline run's summary; ``fields`` override any RunSummary field."""
    values: dict[str, Any] = {
        "run_id": run_id,
        "status": "completed",
        "backend": "offline",
        "mode": "compare",
        "suite": suite,
        "n_questions": n_questions,
        "timings": TIMINGS,
    }
    values.update(fields)
    return RunSummary(**values)


def run_record(run_id: int, created_at: str, *, summary: RunSummary | None, **fields: Any) -> RunRecord:
    """A RunRecord as HistoryStore.list_runs() returns it; its mode/suite/status follow ``summary``."""
    values: dict[str, Any] = {
        "id": run_id,
        "created_at": created_at,
        "finished_at": None,
        "question_set": "sample",
        "backend": "offline",
        "mode": str(summary.mode) if summary else "compare",
        "suite": str(summary.suite) if summary else "offline",
        "status": str(summary.status) if summary else "running",
        "config": {},
        "timings": summary.timings.to_json() if summary else {},
        "summary": summary,
        "n_questions": summary.n_questions if summary else 3,
    }
    values.update(fields)
    return RunRecord(**values)


def scores(**values: float | None) -> dict[str, MetricScore]:
    """Per-question scores by metric name; ``None`` is a failed metric (with an error message)."""
    return {
        name: MetricScore(name, v) if v is not None else MetricScore(name, None, error=f"{name} failed")
        for name, v in values.items()
    }


def result_record(index: int, question: str, scores: dict[str, MetricScore], **fields: Any) -> ResultRecord:
    """One answered question of run 1 with one retrieved chunk; ``fields`` override."""
    values: dict[str, Any] = {
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
    values.update(fields)
    return ResultRecord(**values)


def sample_runs() -> list[RunRecord]:
    """Three runs, newest first (like HistoryStore.list_runs()): #3 async, #2 still running, #1 compare."""
    return [
        run_record(
            3,
            "2026-11-21T12:00:00+00:00",
            summary=summary(
                3,
                mode="async",
                generation=GenerationStats(
                    async_s=3.0, speedup_estimated=2.5, ideal_speedup=3.0, concurrency=4
                ),
                metrics=(stats("offline", "rouge_l", 0.7, scored=3),),
            ),
        ),
        run_record(2, "2026-11-21T09:00:00+00:00", summary=None),
        run_record(
            1,
            "2026-11-20T09:00:00+00:00",
            summary=summary(
                1,
                errors=1,
                generation=GenerationStats(
                    sequential_s=8.0,
                    async_s=2.0,
                    speedup_measured=4.0,
                    speedup_estimated=3.8,
                    ideal_speedup=8.0,
                    concurrency=8,
                ),
                metrics=(
                    stats("offline", "semantic_similarity", 0.8, scored=2, failed=1),
                    stats("offline", "rouge_l", 0.5, scored=3),
                ),
                usage=Usage(
                    passes=(
                        PassUsage(
                            kind="answers", model="m", input_tokens=100, output_tokens=50, cost_usd=0.01
                        ),
                        PassUsage(
                            kind="judge", model="m", input_tokens=900, output_tokens=90, cost_usd=0.0023
                        ),
                    )
                ),
            ),
        ),
    ]


def sample_results() -> list[ResultRecord]:
    """A judge-suite run's three questions, out of order: a failed metric, a real 0, an error."""
    return [
        result_record(2, "How many days of parental leave?", scores(faithfulness=0.9, context_recall=0.2)),
        result_record(
            0,
            f"Can I carry over holiday? {EVIL}",
            {
                "context_recall": MetricScore("context_recall", 0.0),
                "faithfulness": MetricScore("faithfulness", None, error="judge timed out"),
            },
        ),
        result_record(
            1,
            "What is the notice period?",
            scores(context_recall=0.75),  # no answer, so faithfulness was never scored
            answer=None,
            error="Rate limited",
            error_kind="RateLimitError",
        ),
    ]


# --------------------------------------------------------------------------- runs_frame


def test_runs_frame_one_row_per_run_in_time_order_with_metric_columns():
    df = runs_frame(sample_runs())
    assert list(df["id"]) == [1, 2, 3]
    assert list(df["label"]) == ["#1", "#2", "#3"]
    assert list(df.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    # Metric columns by id, in registry display order (semantic similarity before ROUGE-L).
    assert metric_columns(df) == ["metric:offline.semantic_similarity", "metric:offline.rouge_l"]
    first = df.iloc[0]
    assert first["speedup_measured"] == 4.0 and first["ideal_speedup"] == 8.0
    assert first["concurrency"] == 8.0 and first["errors"] == 1
    assert first["total_s"] == 4.9 and first["generation_s"] == 3.0
    # Cost covers every pass; tokens are the answer passes' only.
    assert first["cost_usd"] == pytest.approx(0.0123)
    assert first["input_tokens"] == 100 and first["output_tokens"] == 50
    assert first["metric:offline.semantic_similarity"] == 0.8
    assert first["scored:offline.semantic_similarity"] == 2
    assert first["failed:offline.semantic_similarity"] == 1
    assert first["total:offline.semantic_similarity"] == 3
    assert str(df["created_at"].dtype).startswith("datetime64")


def test_runs_frame_run_without_summary_has_nan_values_and_zero_counts():
    df = runs_frame(sample_runs())
    running = df.iloc[1]
    assert running["id"] == 2 and running["status"] == "running"
    for col in ("total_s", "async_s", "speedup_measured", "cost_usd", "metric:offline.rouge_l"):
        assert math.isnan(running[col]), col
    assert running["scored:offline.rouge_l"] == 0 and running["total:offline.rouge_l"] == 0
    assert running["errors"] == 0 and running["input_tokens"] == 0
    # Run 3 never had semantic similarity: NaN, not 0.
    assert math.isnan(df.iloc[2]["metric:offline.semantic_similarity"])


def test_runs_frame_failed_metric_is_nan_not_zero():
    run = run_record(
        1,
        "2026-11-20T09:00:00Z",
        summary=summary(
            1, suite="judge", metrics=(stats("judge", "faithfulness", None, scored=0, failed=3),)
        ),
    )
    row = runs_frame([run]).iloc[0]
    assert math.isnan(row["metric:judge.faithfulness"])
    assert row["scored:judge.faithfulness"] == 0 and row["failed:judge.faithfulness"] == 3


def test_runs_frame_keeps_offline_and_judged_context_recall_apart():
    """Regression: the same metric name in two suites is two measurements, so two columns."""
    offline = run_record(
        1,
        "2026-11-20T09:00:00Z",
        summary=summary(1, metrics=(stats("offline", "context_recall", 0.6, scored=3),)),
    )
    judged = run_record(
        2,
        "2026-11-21T09:00:00Z",
        backend="claude",
        summary=summary(
            2,
            suite="judge",
            backend="claude",
            metrics=(stats("judge", "context_recall", 0.8, scored=3),),
        ),
    )
    df = runs_frame([judged, offline])
    assert metric_columns(df) == ["metric:judge.context_recall", "metric:offline.context_recall"]
    assert "metric:context_recall" not in df.columns
    assert df["metric:offline.context_recall"].iloc[0] == 0.6
    assert math.isnan(df["metric:offline.context_recall"].iloc[1])
    assert math.isnan(df["metric:judge.context_recall"].iloc[0])
    assert df["metric:judge.context_recall"].iloc[1] == 0.8
    assert metric_label("metric:offline.context_recall") == "Context recall (offline)"
    assert metric_label("metric:judge.context_recall") == "Context recall (judge)"


def test_runs_frame_total_is_the_runs_question_count():
    """Regression: a run cancelled half-way reads "6 of 12 scored", not "6 of 6"."""
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
    row = runs_frame([cancelled]).iloc[0]
    assert row["status"] == "cancelled" and row["n_questions"] == 12
    assert row["scored:offline.rouge_l"] == 6 and row["failed:offline.rouge_l"] == 0
    assert row["total:offline.rouge_l"] == 12


def test_metric_column_helpers():
    assert metric_name("metric:judge.faithfulness") == "judge.faithfulness"
    assert metric_name("judge.faithfulness") == "judge.faithfulness"
    assert metric_label("judge.faithfulness") == "Faithfulness"
    # A metric the registry does not know (e.g. from a newer version) still gets a label.
    assert metric_label("metric:offline.bleu") == "Bleu (offline)"
    assert metric_columns(None) == [] and metric_columns(pd.DataFrame()) == []


# --------------------------------------------------------------------------- results_frame


def test_results_frame_keeps_failed_metrics_as_nan_and_flagged():
    df = results_frame(sample_results(), suite="judge")
    assert list(df["index"]) == [0, 1, 2]
    assert list(df.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert metric_columns(df) == ["metric:judge.faithfulness", "metric:judge.context_recall"]
    assert df.loc[0, "metric:judge.context_recall"] == 0.0  # a real zero stays a zero
    assert math.isnan(df.loc[0, "metric:judge.faithfulness"])
    assert bool(df.loc[0, "failed:judge.faithfulness"]) is True
    assert df.loc[0, "error:judge.faithfulness"] == "judge timed out"
    # Not scored at all (answer failed before judging) is not "failed".
    assert math.isnan(df.loc[1, "metric:judge.faithfulness"])
    assert not df.loc[1, "failed:judge.faithfulness"]
    assert df.loc[1, "error:judge.faithfulness"] is None
    assert df.loc[1, "error"] == "Rate limited" and df.loc[1, "status"] == "error"
    assert df.loc[0, "status"] == "ok"
    assert df.loc[2, "tokens"] == 15 and df.loc[2, "n_contexts"] == 1


def test_results_frame_names_metric_columns_by_the_runs_suite():
    offline = results_frame([result_record(0, "q", scores(context_recall=0.4))], suite="offline")
    judged = results_frame([result_record(0, "q", scores(context_recall=0.4))], suite="judge")
    assert metric_columns(offline) == ["metric:offline.context_recall"]
    assert metric_columns(judged) == ["metric:judge.context_recall"]


def test_results_frame_nan_score_counts_as_failed():
    res = result_record(
        0,
        "q",
        {
            "rouge_l": MetricScore("rouge_l", math.nan),
            "semantic_similarity": MetricScore("semantic_similarity", None),
        },
    )
    df = results_frame([res], suite="offline")
    for name in ("rouge_l", "semantic_similarity"):
        assert math.isnan(df.loc[0, f"metric:offline.{name}"])
        assert bool(df.loc[0, f"failed:offline.{name}"])
        assert df.loc[0, f"error:offline.{name}"] == "the metric returned no value"


def test_results_frame_status_of_pending_and_cancelled_questions():
    df = results_frame(
        [
            result_record(0, "a", {}, answer=None, attempts=0),
            result_record(1, "b", {}, answer=None, error="cancelled", error_kind="CancelledError"),
        ],
        suite="offline",
    )
    assert list(df["status"]) == ["pending", "cancelled"]
    assert metric_columns(df) == []


# --------------------------------------------------------------------------- timeline_frame


def test_timeline_frame_is_relative_to_first_request_and_grouped_by_phase():
    timings = [
        RequestTiming(0, "evaluation", "rouge_l", T0 + 5, T0 + 6, 1, "ok"),
        RequestTiming(0, "batch-collect", "other", T0 + 0.2, T0 + 0.3, 1, "ok"),
        RequestTiming(1, "generation", "q1", T0 + 1.5, T0 + 3.0, 2, "error", throttled_s=0.5),
        RequestTiming(0, "generation", "q0", T0 + 1.0, T0 + 2.0, 1, "ok"),
        RequestTiming(0, "generation-sequential", "q0", T0 + 0.0, T0 + 0.5, 1, "ok"),
        RequestTiming(2, "generation", "q2", T0 + 2, T0 + 1, 1, "cancelled"),  # end before start
        RequestTiming(3, "generation", "no start", math.nan, math.nan, 1, "cancelled"),
    ]
    df = timeline_frame(timings)
    assert list(df.columns) == list(TIMELINE_COLUMNS)
    # Sequential baseline, generation, evaluation, then any other phase.
    assert list(df["phase"]) == [
        "generation-sequential",
        "generation",
        "generation",
        "generation",
        "evaluation",
        "batch-collect",
    ]
    assert df["start_s"].min() == 0.0
    gen = df[df["phase"] == "generation"]
    assert list(gen["start_s"]) == [1.0, 1.5, 2.0]
    assert list(gen["duration_s"]) == [1.0, 1.5, 0.0]  # end before start → 0, not negative
    assert gen.iloc[1]["throttled_s"] == 0.5 and gen.iloc[1]["attempts"] == 2
    assert "no start" not in set(df["label"])


# --------------------------------------------------------------------------- empty input


def test_empty_builders_keep_their_columns():
    assert runs_frame([]).empty and list(runs_frame(None).columns) == list(RUN_COLUMNS)
    assert results_frame(None, suite="judge").empty
    assert list(results_frame([], suite="judge").columns) == list(RESULT_COLUMNS)
    assert timeline_frame(None).empty and list(timeline_frame([]).columns) == list(TIMELINE_COLUMNS)
    # Rows without the data a table needs are dropped, not an error.
    only_nan = timeline_frame([RequestTiming(0, "generation", "q", math.nan, math.nan, 1, "ok")])
    assert only_nan.empty and list(only_nan.columns) == list(TIMELINE_COLUMNS)


# --------------------------------------------------------------------------- deltas


def test_per_question_deltas_flags_drops_beyond_threshold():
    base = results_frame(
        [
            result_record(0, "Q one", scores(context_recall=0.8, faithfulness=0.9)),
            result_record(1, "Q two", scores(context_recall=0.8, faithfulness=0.9)),
            result_record(2, "Q three", scores(context_recall=0.5)),
            result_record(3, "Q gone", scores(context_recall=0.5)),
        ],
        suite="judge",
    )
    cand = results_frame(
        [
            # Reordered: matching is by question text, not position.
            result_record(0, "Q two", scores(context_recall=0.7, faithfulness=0.95)),  # exactly −0.1
            result_record(1, "Q one", scores(context_recall=0.85, faithfulness=0.5)),  # −0.4: regression
            result_record(2, "Q three", scores(context_recall=None)),  # failed: no delta
            result_record(3, "Q new", scores(context_recall=0.1)),
        ],
        suite="judge",
    )
    d = per_question_deltas(base, cand).set_index("question")
    assert REGRESSION_THRESHOLD == 0.1
    assert d.loc["Q one", "delta:judge.faithfulness"] == pytest.approx(-0.4)
    assert bool(d.loc["Q one", "regression"]) and d.loc["Q one", "regressed"] == ["judge.faithfulness"]
    assert d.loc["Q one", "worst_delta"] == pytest.approx(-0.4)
    assert d.loc["Q two", "delta:judge.context_recall"] == pytest.approx(-0.1)
    assert not d.loc["Q two", "regression"]
    assert math.isnan(d.loc["Q three", "delta:judge.context_recall"])
    assert not d.loc["Q three", "regression"]
    assert math.isnan(d.loc["Q new", "base:judge.context_recall"]) and not d.loc["Q new", "regression"]
    assert math.isnan(d.loc["Q gone", "cand:judge.context_recall"])
    assert list(d.index) == ["Q two", "Q one", "Q three", "Q new", "Q gone"]
    assert list(d["index"]) == [0, 1, 2, 3, 3]  # candidate position, else the baseline's
    # A stricter threshold flags the exact 0.1 drop too.
    strict = per_question_deltas(base, cand, threshold=0.05).set_index("question")
    assert bool(strict.loc["Q two", "regression"])


def test_per_question_deltas_match_questions_ignoring_case_and_whitespace():
    base = results_frame([result_record(0, "How  many days?", scores(rouge_l=0.9))], suite="offline")
    cand = results_frame([result_record(0, "how many\ndays?", scores(rouge_l=0.5))], suite="offline")
    d = per_question_deltas(base, cand)
    assert len(d) == 1 and d.loc[0, "delta:offline.rouge_l"] == pytest.approx(-0.4)
    assert d.loc[0, "regressed"] == ["offline.rouge_l"]


def test_per_question_deltas_never_compare_across_suites():
    """Regression: an offline and a judged context recall are not the same metric, so no delta."""
    base = results_frame([result_record(0, "q", scores(context_recall=0.9))], suite="offline")
    cand = results_frame([result_record(0, "q", scores(context_recall=0.1))], suite="judge")
    d = per_question_deltas(base, cand)
    assert d.loc[0, "base:offline.context_recall"] == 0.9
    assert d.loc[0, "cand:judge.context_recall"] == 0.1
    assert math.isnan(d.loc[0, "delta:offline.context_recall"])
    assert math.isnan(d.loc[0, "delta:judge.context_recall"])
    assert not d.loc[0, "regression"] and d.loc[0, "regressed"] == []


def test_per_question_deltas_empty_inputs():
    empty = per_question_deltas(None, pd.DataFrame())
    assert empty.empty and {"index", "question", "regression"} <= set(empty.columns)
    one = results_frame([result_record(0, "q", scores(rouge_l=0.5))], suite="offline")
    for d in (per_question_deltas(None, one), per_question_deltas(one, None)):
        assert len(d) == 1 and not d.loc[0, "regression"]
        assert math.isnan(d.loc[0, "delta:offline.rouge_l"])
