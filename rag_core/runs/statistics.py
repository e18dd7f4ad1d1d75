"""Statistics that say when a difference between two runs is real (numpy + scipy.stats).

Rules
- **Per run and metric**: the mean over the questions it scored, with a 95 % percentile bootstrap
  confidence interval (:func:`bootstrap_ci`; questions are resampled with replacement,
  :data:`N_RESAMPLES` times, from a fixed seed, so the same scores always give the same interval).
- **Per pair of runs on the same questions** (:func:`compare_paired`), for each metric over the
  questions scored in *both* runs (``n_paired``):
  - ``diff`` = mean(candidate − baseline), with a 95 % paired bootstrap CI (the same resampled
    questions for both runs);
  - ``p_value`` from a paired sign-flip permutation test of the mean difference (two-sided): exact
    — every one of the 2ⁿ sign patterns — when ``n_paired`` ≤ :data:`EXACT_MAX_N`, else
    :data:`N_RESAMPLES` random patterns with p = (1 + hits) / (1 + resamples);
  - ``p_holm``: Holm's step-down correction across the metrics compared (:func:`holm`);
  - ``verdict``: *better* / *worse* when ``p_holm`` < :data:`ALPHA` **and** the CI excludes 0 in the
    same direction (so a verdict never contradicts the interval shown next to it), else *no
    detectable difference*; *not enough paired questions* below two;
  - ``mde``: the smallest true difference these questions would detect with 80 % power at the
    Bonferroni level α/m (the strictest Holm step): (t₁₋α/2m + t_power) · sd(d) / √n, Student's t with
    n − 1 degrees of freedom. When every difference is 0 (a run against itself) sd(d) is unknown and
    the unpaired bound √(var_a + var_b) is used;
  - ``judge_noise``: with judge repeats, ±1.96 × the standard error that the judge's own variance
    between repeats adds to the mean difference, √(Σ sd_a²/r_a + sd_b²/r_b) / n — a difference no
    larger than this could be the judge changing its mind.
- Metrics where a lower value is better flip *better*/*worse* (none today; the registry says).
- Speed: every metric of a comparison shares one matrix of resampled questions (bootstrap counts ×
  values is one matrix product), so 1,000 questions × 4 metrics × 10,000 resamples take well under a
  second (``bench/experiments.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from rag_core.vocab import Significance, metric

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "EXACT_MAX_N",
    "N_RESAMPLES",
    "POWER",
    "SEED",
    "MeanCI",
    "PairedDiff",
    "PairedScores",
    "bootstrap_ci",
    "bootstrap_means",
    "compare_paired",
    "holm",
    "min_detectable_difference",
    "paired_scores_from",
    "sign_flip_pvalues",
    "verdict_for",
]

CONFIDENCE = 0.95
"""Confidence level of every interval."""
ALPHA = 0.05
"""Family-wise error rate of the verdicts (Holm across the metrics compared)."""
POWER = 0.8
"""Power at which the minimum detectable difference is stated."""
N_RESAMPLES = 10_000
"""Bootstrap resamples and random sign patterns."""
SEED = 20_261_201
"""Seed of the resampling: the same scores always give the same intervals and p-values."""
EXACT_MAX_N = 13
"""Up to this many paired questions the permutation test enumerates all 2ⁿ sign patterns (8,192)."""
_CHUNK = 2_000
"""Resamples generated at once (bounds memory at chunk × questions counts)."""


@dataclass(frozen=True)
class MeanCI:
    """A mean with its bootstrap confidence interval."""

    mean: float | None
    """Mean of the values (None when there are none)."""
    ci_low: float | None
    """Lower bound of the 95 % CI (None below two values)."""
    ci_high: float | None
    """Upper bound of the 95 % CI."""
    n: int
    """Number of values."""

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def _values(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr[np.isfinite(arr)]


def bootstrap_means(matrix: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap distribution of each column's mean: ``(n_resamples, columns)``.

    ``matrix`` is questions × columns; NaN marks a value that is missing (each resample averages the
    resampled questions that have a value in that column; NaN when none has). All columns share
    the same resampled questions, which makes paired statistics paired.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, m = x.shape
    out = np.full((n_resamples, m), np.nan)
    if n == 0 or n_resamples <= 0:
        return out
    present = np.isfinite(x)
    xz = np.where(present, x, 0.0)
    w = present.astype(np.float64)
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        num = counts @ xz
        den = counts @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + b] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _interval(dist: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = dist[np.isfinite(dist)]
    if finite.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Sequence[float | None] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> MeanCI:
    """Mean of the finite ``values`` (None/NaN are skipped) with its percentile bootstrap CI.

    No values → all None; one value → its mean with no interval; all equal → a zero-width interval.
    """
    v = _values(values)
    if v.size == 0:
        return MeanCI(None, None, None, 0)
    mean = float(v.mean())
    if v.size < 2:
        return MeanCI(mean, None, None, int(v.size))
    if np.all(v == v[0]):
        return MeanCI(mean, mean, mean, int(v.size))
    lo, hi = _interval(bootstrap_means(v, n_resamples=n_resamples, seed=seed)[:, 0], confidence)
    return MeanCI(mean, lo, hi, int(v.size))


def sign_flip_pvalues(
    diffs: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> list[float | None]:
    """Two-sided paired permutation p-values of each column's mean difference (H0: the sign of
    every question's difference is arbitrary). ``diffs`` is questions × metrics, NaN = not paired.

    Exact (all 2ⁿ sign patterns) when there are at most :data:`EXACT_MAX_N` questions, else
    ``n_resamples`` random patterns shared by all columns. None for a column with fewer than two
    paired questions; 1.0 when every difference is 0.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    n, m = d.shape
    present = np.isfinite(d)
    dz = np.where(present, d, 0.0)
    counts = present.sum(axis=0)
    obs = np.abs(dz.sum(axis=0))
    tol = 1e-9 * np.maximum(1.0, obs)
    hits = np.zeros(m)
    if n <= EXACT_MAX_N:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
        hits = (np.abs(patterns @ dz) >= obs - tol).sum(axis=0).astype(float)
        p = hits / patterns.shape[0]
    else:
        rng = np.random.default_rng(seed + 1)
        for start in range(0, n_resamples, _CHUNK):
            b = min(_CHUNK, n_resamples - start)
            signs = rng.integers(0, 2, size=(b, n)).astype(np.float64) * 2.0 - 1.0
            hits += (np.abs(signs @ dz) >= obs - tol).sum(axis=0)
        p = (1.0 + hits) / (1.0 + n_resamples)
    return [None if counts[j] < 2 else float(min(1.0, p[j])) for j in range(m)]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries are skipped and stay None).

    The k-th smallest of m p-values is multiplied by m − k + 1, made non-decreasing, capped at 1:
    ``holm([0.01, 0.04, 0.03, 0.005]) == [0.03, 0.06, 0.06, 0.02]``.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: float(pvalues[i]))):  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def min_detectable_difference(
    sd: float | None, n: int, *, alpha: float = ALPHA, power: float = POWER, tests: int = 1
) -> float | None:
    """The smallest true mean difference a paired test on ``n`` questions detects with ``power``
    at two-sided level ``alpha / tests``, given the differences' standard deviation ``sd``.

    ``(t(1 − α/2·tests) + t(power)) · sd / √n`` with n − 1 degrees of freedom; None below 2.
    """
    if sd is None or n < 2 or not math.isfinite(sd):
        return None
    a = alpha / max(1, tests)
    df = n - 1
    return float((stats.t.ppf(1.0 - a / 2.0, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


@dataclass(frozen=True)
class PairedScores:
    """One metric of two runs on the same questions, row by row (None = not scored)."""

    metric_id: str
    """``"suite.name"``."""
    a: Sequence[float | None]
    """Baseline value per question."""
    b: Sequence[float | None]
    """Candidate value per question (same rows as ``a``)."""
    sd_a: Sequence[float | None] | None = None
    """Baseline judge stdev between repeats per question (None without repeats)."""
    sd_b: Sequence[float | None] | None = None
    """Candidate judge stdev between repeats per question."""
    repeats_a: int = 1
    """Judge repeats behind each baseline value."""
    repeats_b: int = 1
    """Judge repeats behind each candidate value."""


@dataclass(frozen=True)
class PairedDiff:
    """One metric compared between a baseline (a) and a candidate (b) run (see the module rules)."""

    metric_id: str
    """``"suite.name"``."""
    label: str
    """Display name from the metric registry."""
    mean_a: float | None
    """Baseline mean over the paired questions."""
    mean_b: float | None
    """Candidate mean over the paired questions."""
    diff: float | None
    """mean_b − mean_a."""
    ci_low: float | None
    """Lower bound of the 95 % paired bootstrap CI of ``diff``."""
    ci_high: float | None
    """Upper bound."""
    p_value: float | None
    """Two-sided paired permutation p-value (uncorrected)."""
    p_holm: float | None
    """Holm-corrected across the metrics compared."""
    verdict: Significance
    """better / worse / no detectable difference / not enough paired questions."""
    n_paired: int
    """Questions scored in both runs."""
    mde: float | None
    """Smallest difference these questions detect (80 % power, α/m)."""
    judge_noise: float | None = None
    """± the judge's own variance could move ``diff`` (judge repeats only)."""
    ci_a: tuple[float | None, float | None] = (None, None)
    """95 % bootstrap CI of ``mean_a`` (same resampled questions)."""
    ci_b: tuple[float | None, float | None] = (None, None)
    """95 % bootstrap CI of ``mean_b``."""

    @property
    def significant(self) -> bool:
        return self.verdict in (Significance.BETTER, Significance.WORSE)

    def to_json(self) -> dict[str, Any]:
        """The CLI / export shape: ``{mean_a, mean_b, diff, ci_low, ci_high, p_value, verdict, n_paired, …}``."""
        return {
            "metric_id": self.metric_id,
            "label": self.label,
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "verdict": str(self.verdict),
            "n_paired": self.n_paired,
            "mde": self.mde,
            "judge_noise": self.judge_noise,
            "ci_a": list(self.ci_a),
            "ci_b": list(self.ci_b),
        }


def _judge_noise(p: PairedScores, rows: np.ndarray) -> float | None:
    if p.sd_a is None and p.sd_b is None:
        return None
    total = 0.0
    seen = False
    for sds, r in ((p.sd_a, p.repeats_a), (p.sd_b, p.repeats_b)):
        if sds is None:
            continue
        arr = np.asarray([np.nan if s is None else float(s) for s in sds], dtype=np.float64)[rows]
        arr = arr[np.isfinite(arr)]
        if arr.size:
            seen = True
            total += float(np.sum(arr**2)) / max(1, int(r))
    n = int(rows.sum())
    if not seen or n == 0:
        return None
    return 1.96 * math.sqrt(total) / n


def compare_paired(
    metrics: Sequence[PairedScores],
    *,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> list[PairedDiff]:
    """Compare two runs metric by metric on their shared questions (see the module rules).

    Every metric's rows must be aligned (row i = the same question in both runs). Returns one
    :class:`PairedDiff` per metric, in the given order.
    """
    if not metrics:
        return []
    n = max(len(p.a) for p in metrics)

    def col(vals: Sequence[float | None]) -> np.ndarray:
        arr = np.full(n, np.nan)
        for i, v in enumerate(vals):
            if v is not None and math.isfinite(float(v)):
                arr[i] = float(v)
        return arr

    a = np.column_stack([col(p.a) for p in metrics])
    b = np.column_stack([col(p.b) for p in metrics])
    paired = np.isfinite(a) & np.isfinite(b)
    a = np.where(paired, a, np.nan)
    b = np.where(paired, b, np.nan)
    d = b - a
    m = len(metrics)
    n_paired = paired.sum(axis=0)
    dist = bootstrap_means(np.concatenate([a, b, d], axis=1), n_resamples=n_resamples, seed=seed)
    pvals = sign_flip_pvalues(d, n_resamples=n_resamples, seed=seed)
    testable = [p if n_paired[j] >= 2 else None for j, p in enumerate(pvals)]
    adjusted = holm(testable)
    tests = sum(1 for p in testable if p is not None)
    out = []
    for j, p in enumerate(metrics):
        spec = metric(p.metric_id)
        k = int(n_paired[j])
        if k == 0:
            out.append(
                PairedDiff(
                    p.metric_id,
                    spec.label,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Significance.NOT_ENOUGH_DATA,
                    0,
                    None,
                )
            )
            continue
        aj, bj, dj = a[paired[:, j], j], b[paired[:, j], j], d[paired[:, j], j]
        mean_a, mean_b, diff = float(aj.mean()), float(bj.mean()), float(dj.mean())
        if k >= 2:
            ci_a = _interval(dist[:, j], confidence) if np.ptp(aj) > 0 else (mean_a, mean_a)
            ci_b = _interval(dist[:, m + j], confidence) if np.ptp(bj) > 0 else (mean_b, mean_b)
            lo, hi = _interval(dist[:, 2 * m + j], confidence) if np.ptp(dj) > 0 else (diff, diff)
            sd_d = float(np.std(dj, ddof=1))
            if sd_d == 0.0:
                sd_d = math.sqrt(float(np.var(aj, ddof=1) + np.var(bj, ddof=1)))
            mde = min_detectable_difference(sd_d, k, alpha=alpha, tests=max(1, tests))
        else:
            ci_a = ci_b = (None, None)
            lo = hi = None
            mde = None
        verdict = verdict_for(diff, lo, hi, adjusted[j], alpha, spec.higher_is_better, k)
        out.append(
            PairedDiff(
                metric_id=p.metric_id,
                label=spec.label,
                mean_a=mean_a,
                mean_b=mean_b,
                diff=diff,
                ci_low=lo,
                ci_high=hi,
                p_value=pvals[j],
                p_holm=adjusted[j],
                verdict=verdict,
                n_paired=k,
                mde=mde,
                judge_noise=_judge_noise(p, paired[:, j]),
                ci_a=ci_a,
                ci_b=ci_b,
            )
        )
    return out


def verdict_for(
    diff: float,
    lo: float | None,
    hi: float | None,
    p_holm: float | None,
    alpha: float,
    higher_is_better: bool,
    n: int,
) -> Significance:
    """The verdict of one comparison (see the module rules): significant only when the corrected
    p-value is below ``alpha`` and the CI excludes 0 on the same side as ``diff``."""
    if n < 2 or p_holm is None:
        return Significance.NOT_ENOUGH_DATA
    if p_holm >= alpha or lo is None or hi is None:
        return Significance.NO_DIFFERENCE
    if lo > 0 and diff > 0:
        return Significance.BETTER if higher_is_better else Significance.WORSE
    if hi < 0 and diff < 0:
        return Significance.WORSE if higher_is_better else Significance.BETTER
    return Significance.NO_DIFFERENCE


def paired_scores_from(
    a: Mapping[str, Sequence[float | None]], b: Mapping[str, Sequence[float | None]]
) -> list[PairedScores]:
    """Convenience: :class:`PairedScores` for every metric id present in both mappings."""
    return [PairedScores(mid, a[mid], b[mid]) for mid in a if mid in b]
