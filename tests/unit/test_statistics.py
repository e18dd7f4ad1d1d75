"""rag_core.runs.statistics against known values and against scipy.stats' own implementations."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from rag_core.runs.statistics import (
    EXACT_MAX_N,
    PairedScores,
    bootstrap_ci,
    bootstrap_means,
    compare_paired,
    holm,
    min_detectable_difference,
    sign_flip_pvalues,
)
from rag_core.vocab import Significance


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


# --- Holm ---------------------------------------------------------------------------------------
def test_holm_matches_the_textbook_example() -> None:
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 → max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_missing_tests() -> None:
    assert holm([0.5, None, 0.9]) == [1.0, None, 1.0]
    assert holm([]) == []
    assert holm([0.04]) == [0.04]


# --- permutation test -----------------------------------------------------------------------------
def test_exact_sign_flip_p_value_is_the_known_one() -> None:
    # five positive differences: only the all-plus and all-minus patterns are as extreme → 2/32
    assert sign_flip_pvalues(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == [pytest.approx(0.0625)]


@pytest.mark.parametrize("n", [6, 10, EXACT_MAX_N])
def test_exact_p_values_equal_scipy_permutation_test(n: int) -> None:
    rng = np.random.default_rng(n)
    d = rng.normal(0.1, 0.3, n)
    ours = sign_flip_pvalues(d)[0]
    theirs = stats.permutation_test(
        (d,), _mean, permutation_type="samples", n_resamples=10_000, vectorized=True
    ).pvalue
    assert ours == pytest.approx(theirs, abs=1e-12)  # both enumerate all 2^n sign patterns


def test_monte_carlo_p_value_agrees_with_scipy_within_resampling_noise() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.05, 0.3, 60)
    ours = sign_flip_pvalues(d)[0]
    theirs = stats.permutation_test(
        (d,), _mean, permutation_type="samples", n_resamples=10_000, vectorized=True, rng=3
    ).pvalue
    assert ours is not None and abs(ours - theirs) < 0.02


def test_all_zero_differences_give_p_one_and_too_few_give_none() -> None:
    assert sign_flip_pvalues(np.zeros(30)) == [1.0]
    assert sign_flip_pvalues(np.array([[0.2, np.nan], [np.nan, np.nan], [0.1, 0.3]])) == [
        pytest.approx(0.5),
        None,
    ]


# --- bootstrap ------------------------------------------------------------------------------------
def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap() -> None:
    x = np.random.default_rng(1).random(50)
    ours = bootstrap_ci(x)
    theirs = stats.bootstrap((x,), _mean, method="percentile", n_resamples=10_000, rng=2).confidence_interval
    assert ours.mean == pytest.approx(float(x.mean()))
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.01)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.01)
    assert ours.ci_low < ours.mean < ours.ci_high


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_ci([]).mean is None and bootstrap_ci([None, float("nan")]).n == 0
    one = bootstrap_ci([0.4])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (0.4, None, None, 1)
    same = bootstrap_ci([0.7] * 8)
    assert (same.ci_low, same.ci_high) == (pytest.approx(0.7), pytest.approx(0.7))


def test_bootstrap_is_deterministic_and_paired_columns_share_resamples() -> None:
    x = np.random.default_rng(2).random((40, 2))
    a, b = bootstrap_means(x), bootstrap_means(x)
    assert np.array_equal(a, b)
    # column 2 = column 0 + 0.1 exactly: the same resampled questions → the same shift in every resample
    shifted = bootstrap_means(np.column_stack([x[:, 0], x[:, 0] + 0.1]))
    assert np.allclose(shifted[:, 1] - shifted[:, 0], 0.1)


# --- minimum detectable difference -------------------------------------------------------------------
def test_min_detectable_difference_known_values() -> None:
    # (t(0.975, 15) + t(0.8, 15)) / 4 = (2.1314 + 0.8662) / 4
    assert min_detectable_difference(1.0, 16) == pytest.approx(0.7494, abs=1e-4)
    # large n: the normal approximation (1.96 + 0.8416) * sd / sqrt(n)
    assert min_detectable_difference(0.2, 10_000) == pytest.approx((1.95996 + 0.84162) * 0.2 / 100, rel=1e-3)
    # four metrics compared: Bonferroni level 0.0125 makes it larger
    assert min_detectable_difference(1.0, 16, tests=4) > min_detectable_difference(1.0, 16)
    assert min_detectable_difference(1.0, 1) is None and min_detectable_difference(None, 10) is None


# --- paired comparison ------------------------------------------------------------------------------
def _scores(seed: int, n: int, shift: float) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 0.8, n)
    b = np.clip(a + shift + rng.normal(0, 0.05, n), 0, 1)
    return list(a), list(b)


def test_a_run_compared_with_itself_has_no_detectable_difference() -> None:
    a, _ = _scores(1, 10, 0.0)
    out = compare_paired(
        [PairedScores("offline.rouge_l", a, a), PairedScores("offline.semantic_similarity", a, a)]
    )
    for s in out:
        assert s.verdict == Significance.NO_DIFFERENCE
        assert (s.diff, s.ci_low, s.ci_high, s.p_value, s.p_holm) == (0.0, 0.0, 0.0, 1.0, 1.0)
        assert s.n_paired == 10 and s.mde is not None and s.mde > 0


def test_clear_shifts_are_better_and_worse_and_noise_is_not() -> None:
    up_a, up_b = _scores(2, 40, +0.15)
    dn_a, dn_b = _scores(3, 40, -0.15)
    no_a, no_b = _scores(4, 40, 0.0)
    out = compare_paired(
        [
            PairedScores("offline.semantic_similarity", up_a, up_b),
            PairedScores("offline.rouge_l", dn_a, dn_b),
            PairedScores("offline.context_recall", no_a, no_b),
        ]
    )
    verdicts = [s.verdict for s in out]
    assert verdicts[:2] == [Significance.BETTER, Significance.WORSE]
    assert verdicts[2] == Significance.NO_DIFFERENCE
    better = out[0]
    assert better.ci_low > 0 and better.diff == pytest.approx(better.mean_b - better.mean_a)
    assert better.ci_a[0] < better.mean_a < better.ci_a[1]
    # Holm: the adjusted p-values are the raw ones stepped up across the three metrics
    assert [s.p_holm for s in out] == pytest.approx(holm([s.p_value for s in out]))


def test_only_questions_scored_in_both_runs_are_paired() -> None:
    a = [0.5, None, 0.7, 0.9, 0.2]
    b = [0.6, 0.8, None, 0.9, 0.3]
    (s,) = compare_paired([PairedScores("offline.rouge_l", a, b)])
    assert s.n_paired == 3
    assert s.mean_a == pytest.approx((0.5 + 0.9 + 0.2) / 3) and s.mean_b == pytest.approx(
        (0.6 + 0.9 + 0.3) / 3
    )
    (none,) = compare_paired([PairedScores("offline.rouge_l", [0.5, None], [None, 0.4])])
    assert none.verdict == Significance.NOT_ENOUGH_DATA and none.n_paired == 0


def test_judge_noise_is_the_standard_error_of_the_repeats() -> None:
    a, b = [0.5] * 4, [0.6] * 4
    sd = [0.1] * 4
    (s,) = compare_paired(
        [PairedScores("judge.faithfulness", a, b, sd_a=sd, sd_b=sd, repeats_a=3, repeats_b=3)]
    )
    # 1.96 * sqrt(4 * 0.01/3 * 2) / 4
    assert s.judge_noise == pytest.approx(1.96 * math.sqrt(8 * 0.01 / 3) / 4)
    (plain,) = compare_paired([PairedScores("judge.faithfulness", a, b)])
    assert plain.judge_noise is None


def test_the_json_shape_has_the_documented_keys() -> None:
    a, b = _scores(5, 12, 0.05)
    (s,) = compare_paired([PairedScores("offline.rouge_l", a, b)])
    assert {"mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "verdict", "n_paired"} <= set(
        s.to_json()
    )
    assert s.to_json()["verdict"] in {v.value for v in Significance}


def test_one_thousand_questions_four_metrics_ten_thousand_resamples_is_fast() -> None:
    rng = np.random.default_rng(0)
    metrics = []
    for mid in (
        "judge.faithfulness",
        "judge.answer_relevancy",
        "judge.context_precision",
        "judge.context_recall",
    ):
        a = rng.random(1000)
        metrics.append(PairedScores(mid, list(a), list(np.clip(a + rng.normal(0.01, 0.1, 1000), 0, 1))))
    compare_paired(metrics)  # warm-up
    t0 = time.perf_counter()
    out = compare_paired(metrics)
    elapsed = time.perf_counter() - t0
    assert len(out) == 4 and all(s.n_paired == 1000 for s in out)
    assert elapsed < 3.0, elapsed  # ≤ 1 s on an idle 2-core machine (bench/experiments.py); slack for CI load
