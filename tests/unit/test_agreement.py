"""Metric-vs-analyst agreement (rag_core.evaluation.agreement) against known values."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rag_core.evaluation.agreement import (
    DISAGREE_KAPPA,
    MIN_VERDICTS,
    RunVerdicts,
    agreement_report,
    metric_agreement,
)
from rag_core.models import MetricScore
from rag_core.storage import ResultRecord, VerdictRecord
from rag_core.vocab import Verdict

C, P, W = Verdict.CORRECT, Verdict.PARTLY, Verdict.WRONG


def test_kappa_of_the_textbook_table() -> None:
    # Cohen's κ example (Wikipedia): a=20 both yes, b=5, c=10, d=15 both no → p_o 0.7, p_e 0.5, κ 0.4.
    scores = [1.0] * 20 + [0.0] * 5 + [1.0] * 10 + [0.0] * 15
    verdicts = [C] * 25 + [W] * 25
    m = metric_agreement("offline.rouge_l", scores, verdicts)
    assert m.kappa == pytest.approx(0.4)
    assert m.cutoff == 1.0  # the other cut-off (0.0) passes everything: κ = 0
    assert m.confusion == ((20, 5), (10, 15))
    assert m.n == 50 and m.note == ""
    assert m.kappa == pytest.approx(DISAGREE_KAPPA) and not m.disagrees  # 0.4 is not below 0.4


def test_perfect_separation_finds_the_cut_off_and_spearman_matches_its_definition() -> None:
    scores = [round(0.1 * i, 1) for i in range(1, 11)]  # 0.1 … 1.0
    verdicts = [W, W, W, P, P, P, C, C, C, C]
    m = metric_agreement("judge.faithfulness", scores, verdicts)
    assert m.kappa == pytest.approx(1.0) and m.cutoff == pytest.approx(0.7)
    assert m.confusion == ((4, 0), (0, 6))
    # Spearman's ρ = Pearson correlation of the ranks (ties get their average rank)
    score_ranks = np.arange(1, 11, dtype=float)
    verdict_ranks = np.array([2, 2, 2, 5, 5, 5, 8.5, 8.5, 8.5, 8.5])
    expected = np.corrcoef(score_ranks, verdict_ranks)[0, 1]
    # by hand: Σ(dx·dy) = 73.5, Σdx² = 82.5, Σdy² = 73.5 → ρ = √(73.5 / 82.5)
    assert m.spearman == pytest.approx(expected) and m.spearman == pytest.approx((73.5 / 82.5) ** 0.5)
    assert m.spearman_p is not None and m.spearman_p < 0.001


def test_a_metric_ranking_answers_backwards_disagrees() -> None:
    scores = [round(0.1 * i, 1) for i in range(1, 11)]
    verdicts = [C, C, C, C, C, W, W, W, W, W]
    m = metric_agreement("offline.semantic_similarity", scores, verdicts)
    assert m.kappa is not None and m.kappa < DISAGREE_KAPPA and m.disagrees
    assert m.spearman is not None and m.spearman < 0


def test_best_cut_off_is_the_brute_force_maximum_of_sklearns_kappa() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(12)
    for _ in range(20):
        n = rng.randint(10, 30)
        scores = [round(rng.random(), 2) for _ in range(n)]
        verdicts = [rng.choice([C, P, W]) for _ in range(n)]
        human = [1 if v == C else 0 for v in verdicts]
        if len(set(human)) < 2:
            continue
        best = max(
            (
                cohen_kappa_score(human, [1 if s >= t else 0 for s in scores])
                if len({s >= t for s in scores}) > 1
                else 0.0
            )
            for t in set(scores)
        )
        assert metric_agreement("x.y", scores, verdicts).kappa == pytest.approx(best)


@pytest.mark.parametrize(
    ("scores", "verdicts", "note", "has_rho"),
    [
        ([0.5] * 12, [C] * 6 + [W] * 6, "the metric gave every answer the same score", False),
        ([0.1 * i for i in range(12)], [C] * 12, "the analyst's verdicts are all correct", False),
        # no "correct" at all: κ cannot be measured, but partly-vs-wrong still ranks
        ([0.1 * i for i in range(12)], [P] * 6 + [W] * 6, "the analyst's verdicts are all not correct", True),
        ([0.1 * i for i in range(MIN_VERDICTS - 1)], [C, W] * 4 + [C], "only 9 scored answers", False),
    ],
)
def test_degenerate_inputs_give_a_note_not_an_error(scores, verdicts, note, has_rho) -> None:
    m = metric_agreement("x.y", scores, verdicts)
    assert note in m.note
    assert (m.spearman is not None) is has_rho
    assert not m.disagrees or m.kappa is not None


def _result(run_id: int, i: int, scores: dict[str, float | None], *, skipped: bool = False) -> ResultRecord:
    return ResultRecord(
        run_id=run_id,
        index=i,
        question=f"Q{i}?",
        ground_truth="",
        answer=f"A{i}",
        contexts=[],
        error=None,
        error_kind=None,
        latency_s=None,
        attempts=1,
        input_tokens=0,
        output_tokens=0,
        model=None,
        scores={
            k: MetricScore(
                metric=k,
                value=v,
                skipped=skipped and v is None,
                error=None if v is not None or skipped else "x",
            )
            for k, v in scores.items()
        },
    )


def test_report_pools_runs_excludes_failed_skipped_and_double_counted_verdicts() -> None:
    verdicts = [C, C, C, C, C, W, W, W, W, W, C, W]
    results = []
    for i, v in enumerate(verdicts):
        good = 0.9 if v == C else 0.1
        results.append(
            _result(
                1,
                i,
                {
                    "semantic_similarity": good,
                    "rouge_l": 1 - good,  # backwards: disagrees
                    "context_recall": None if i == 0 else good,  # one failure: not a pair
                    "answer_key_facts": None if i == 1 else good,
                },
                skipped=(i == 1),
            )
        )
    given = {i: VerdictRecord(1, i, v, "", "2026-12-01T00:00:00+00:00") for i, v in enumerate(verdicts)}
    # run 2 repeats two answers of run 1 and inherits their verdicts: not counted twice
    run2 = [_result(2, 0, {"semantic_similarity": 0.9}), _result(2, 1, {"semantic_similarity": 0.9})]
    inherited = {i: VerdictRecord(2, i, C, "", "2026-12-01T00:00:00+00:00", inherited_from=1) for i in (0, 1)}
    report = agreement_report(
        [RunVerdicts(1, "offline", results, given), RunVerdicts(2, "offline", run2, inherited)]
    )
    assert report.runs == (1, 2) and report.n_verdicts == 12 and report.enough
    by_id = {m.metric_id: m for m in report.metrics}
    assert [m.metric_id for m in report.metrics] == [
        "facts.answer_key_facts",
        "offline.semantic_similarity",
        "offline.rouge_l",
        "offline.context_recall",
    ]  # registry display order, suites resolved by name
    assert by_id["offline.semantic_similarity"].n == 12 and by_id["offline.semantic_similarity"].kappa == 1.0
    assert by_id["offline.context_recall"].n == 11 and by_id["facts.answer_key_facts"].n == 11
    assert report.disagreeing == frozenset({"offline.rouge_l"})
    # alone, run 2's inherited verdicts count (its source run is not in the set), but 2 < 10
    alone = agreement_report([RunVerdicts(2, "offline", run2, inherited)])
    assert alone.n_verdicts == 2 and not alone.enough and alone.disagreeing == frozenset()
    assert report.to_json()["metrics"][2]["disagrees"] is True


def test_disagreeing_metrics_are_flagged_on_the_charts_and_in_the_comparison() -> None:
    from rag_core.reporting import figures
    from rag_core.reporting.compare import compare_runs
    from rag_core.reporting.frames import results_frame
    from rag_core.storage import RunRecord

    verdicts = [C, C, C, C, C, W, W, W, W, W]
    results = [
        _result(1, i, {"semantic_similarity": 0.9 if v == C else 0.1, "rouge_l": 0.1 if v == C else 0.9})
        for i, v in enumerate(verdicts)
    ]
    given = {i: VerdictRecord(1, i, v, "", "2026-12-01T00:00:00+00:00") for i, v in enumerate(verdicts)}
    report = agreement_report([RunVerdicts(1, "offline", results, given)])
    assert report.disagreeing == frozenset({"offline.rouge_l"})

    frame = results_frame(results, suite="offline", verdicts=given)
    assert list(frame["verdict"][:2]) == ["correct", "correct"] and frame["correct"].tolist()[5] is False
    heat = figures.heatmap_figure(frame, report.disagreeing)
    assert list(heat.data[0].x) == ["Semantic similarity", "ROUGE-L" + figures.DISAGREE_MARK]
    bars = figures.metric_compare_figure(
        {"metric:offline.rouge_l": 0.5, "metric:offline.semantic_similarity": 0.5},
        {"metric:offline.rouge_l": 0.4, "metric:offline.semantic_similarity": 0.6},
        report.disagreeing,
    )
    assert "ROUGE-L" + figures.DISAGREE_MARK in list(bars.data[0].x)

    run = RunRecord(
        1,
        "2026-12-01T00:00:00+00:00",
        None,
        "s",
        "offline",
        "async",
        "offline",
        "completed",
        {},
        {},
        None,
        10,
    )
    cmp = compare_runs(run, run, results, results, base_verdicts=given, cand_verdicts=given, agreement=report)
    assert cmp.disagreeing == frozenset({"offline.rouge_l"})
    assert any(w.startswith("ROUGE-L disagrees with the analyst: κ = ") for w in cmp.warnings)
    assert cmp.deltas["base:correct"].tolist() == [True] * 5 + [False] * 5
