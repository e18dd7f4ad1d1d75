"""Does a metric agree with the analyst? κ, Spearman and the confusion table per metric.

Once a run (or a set of runs) has at least :data:`MIN_VERDICTS` answers with an analyst's verdict,
each metric's scores on those answers are compared with the verdicts:

- **Cohen's κ at the best cut-off** (``sklearn.metrics.cohen_kappa_score``): the verdict as a
  yes/no (``correct`` = yes; ``partly`` and ``wrong`` = no) against "metric ≥ cut-off"; every
  distinct score is tried as the cut-off and the one with the highest κ is kept (ties: the one
  nearest 0.5). κ = 1 is perfect agreement, 0 is what chance gives, below 0 is worse than chance.
  Picking the best cut-off flatters the metric a little; with few verdicts treat κ as indicative.
- **Spearman's ρ** (``scipy.stats.spearmanr``): the score against the verdict as a number (wrong 0,
  partly 0.5, correct 1), with its p-value.
- **Confusion table** at that cut-off (``sklearn.metrics.confusion_matrix``): rows = the analyst
  (correct / not correct), columns = the metric (pass / fail).
- A metric **disagrees** with the analyst when its best κ is below :data:`DISAGREE_KAPPA`
  (Landis & Koch: "fair" or worse) — it is flagged in the compare view and on the charts.

Pairs: a result counts when it has a verdict and the metric scored it (failed and skipped scores
are left out). Over a set of runs, a verdict inherited from another run *of the same set* is left
out (the same judgement would count twice). κ or ρ is None, with a note, when it cannot be
computed (fewer than :data:`MIN_VERDICTS` pairs, the analyst gave one verdict only, or the metric
gave one value only).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.storage.records import ResultRecord, VerdictRecord
from rag_core.vocab import Verdict, metric

__all__ = [
    "DISAGREE_KAPPA",
    "MIN_VERDICTS",
    "AgreementReport",
    "MetricAgreement",
    "RunVerdicts",
    "agreement_report",
    "metric_agreement",
    "warm",
]

MIN_VERDICTS = 10
"""Answers with a verdict needed before agreement is shown (per run or set of runs, and per metric)."""
DISAGREE_KAPPA = 0.4
"""A metric whose best κ is below this disagrees with the analyst."""


@dataclass(frozen=True)
class MetricAgreement:
    """One metric against the analyst's verdicts."""

    metric_id: str
    """``"<suite>.<name>"``."""
    n: int
    """Answers with a verdict that the metric scored."""
    kappa: float | None = None
    """Cohen's κ at :attr:`cutoff`; None when it cannot be computed (see :attr:`note`)."""
    cutoff: float | None = None
    """Score at or above which the metric says "correct" (the cut-off with the best κ)."""
    spearman: float | None = None
    """Spearman's ρ between score and verdict (wrong 0, partly 0.5, correct 1)."""
    spearman_p: float | None = None
    """Two-sided p-value of ρ."""
    confusion: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    """``((analyst correct & metric pass, analyst correct & metric fail), (analyst not correct &
    metric pass, analyst not correct & metric fail))`` at the cut-off."""
    note: str = ""
    """Why κ or ρ is missing, '' otherwise."""

    @property
    def label(self) -> str:
        return metric(self.metric_id).label

    @property
    def disagrees(self) -> bool:
        """κ below :data:`DISAGREE_KAPPA` (a metric without a κ is not flagged)."""
        return self.kappa is not None and self.kappa < DISAGREE_KAPPA

    def to_json(self) -> dict[str, Any]:
        (tp, fn), (fp, tn) = self.confusion
        return {
            "metric_id": self.metric_id,
            "label": self.label,
            "n": self.n,
            "kappa": self.kappa,
            "cutoff": self.cutoff,
            "spearman": self.spearman,
            "spearman_p": self.spearman_p,
            "confusion": {
                "analyst_correct_metric_pass": tp,
                "analyst_correct_metric_fail": fn,
                "analyst_not_correct_metric_pass": fp,
                "analyst_not_correct_metric_fail": tn,
            },
            "disagrees": self.disagrees,
            "note": self.note,
        }


@dataclass(frozen=True)
class AgreementReport:
    """Every metric's agreement with the analyst over some runs."""

    runs: tuple[int, ...]
    """The runs the verdicts come from."""
    n_verdicts: int
    """Answers with a verdict (inherited ones from a run of the set excluded)."""
    metrics: tuple[MetricAgreement, ...] = field(default_factory=tuple)
    """In registry display order."""

    @property
    def enough(self) -> bool:
        """At least :data:`MIN_VERDICTS` verdicts: the numbers are shown."""
        return self.n_verdicts >= MIN_VERDICTS

    @property
    def disagreeing(self) -> frozenset[str]:
        """Ids of the metrics that disagree with the analyst (empty below :data:`MIN_VERDICTS`)."""
        return frozenset(m.metric_id for m in self.metrics if m.disagrees) if self.enough else frozenset()

    def get(self, metric_id: str) -> MetricAgreement | None:
        return next((m for m in self.metrics if m.metric_id == metric_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": list(self.runs),
            "n_verdicts": self.n_verdicts,
            "min_verdicts": MIN_VERDICTS,
            "enough": self.enough,
            "disagree_kappa": DISAGREE_KAPPA,
            "metrics": [m.to_json() for m in self.metrics],
        }


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def metric_agreement(metric_id: str, scores: Sequence[float], verdicts: Sequence[Verdict]) -> MetricAgreement:
    """κ at the best cut-off, Spearman's ρ and the confusion table of one metric (module docstring).

    ``scores`` and ``verdicts`` are paired (same length). Never raises for degenerate input: κ / ρ
    are None with a note instead.
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    n = len(scores)
    if n != len(verdicts):
        raise ValueError("scores and verdicts must have the same length")
    human = [1 if Verdict(v).correct else 0 for v in verdicts]
    ordinal = [Verdict(v).ordinal for v in verdicts]
    if n < MIN_VERDICTS:
        return MetricAgreement(
            metric_id, n, note=f"only {n} scored answers have a verdict (needs {MIN_VERDICTS})"
        )
    notes: list[str] = []
    kappa = cutoff = None
    best_pred: list[int] = [1] * n
    if len(set(human)) < 2:
        notes.append(f"the analyst's verdicts are all {'correct' if human[0] else 'not correct'}")
    else:
        # Every distinct score as the cut-off; κ from the 2×2 table (cheap), then the winner's κ
        # is computed again by scikit-learn, which is the value reported.
        best: tuple[tuple[float, float], float] | None = None
        for t in sorted(set(scores)):
            rank = (_kappa2x2(human, [1 if x >= t else 0 for x in scores]), -abs(t - 0.5))
            if best is None or rank > best[0]:
                best = (rank, t)
        assert best is not None
        cutoff = float(best[1])
        best_pred = [1 if x >= cutoff else 0 for x in scores]
        kappa = 0.0 if len(set(best_pred)) < 2 else _finite(cohen_kappa_score(human, best_pred))
    rho = p = None
    if len(set(scores)) < 2:
        notes.append("the metric gave every answer the same score")
    elif len(set(ordinal)) < 2:
        pass  # already noted above
    else:
        res = spearmanr(scores, ordinal)
        rho, p = _finite(res.statistic), _finite(res.pvalue)
    cm = confusion_matrix(human, best_pred, labels=[1, 0])
    confusion = ((int(cm[0][0]), int(cm[0][1])), (int(cm[1][0]), int(cm[1][1])))
    return MetricAgreement(metric_id, n, kappa, cutoff, rho, p, confusion, "; ".join(notes))


def _kappa2x2(human: Sequence[int], pred: Sequence[int]) -> float:
    """Cohen's κ of two yes/no raters from their 2×2 table (0 when chance agreement is total)."""
    n = len(human)
    tp = sum(1 for h, p in zip(human, pred, strict=True) if h and p)
    tn = sum(1 for h, p in zip(human, pred, strict=True) if not h and not p)
    yes_h, yes_p = sum(human), sum(pred)
    p_o = (tp + tn) / n
    p_e = (yes_h * yes_p + (n - yes_h) * (n - yes_p)) / (n * n)
    return 0.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


_WARM = threading.Event()


def warm() -> None:
    """Import scikit-learn and scipy on a background thread (≈3 s the first time in a process), so
    the first agreement table does not make the analyst wait. Idempotent; returns at once."""
    if _WARM.is_set():
        return
    _WARM.set()

    def load() -> None:
        import scipy.stats  # noqa: F401
        import sklearn.metrics  # noqa: F401

    threading.Thread(target=load, name="agreement-warm", daemon=True).start()


@dataclass(frozen=True)
class RunVerdicts:
    """One run's results and verdicts, as :func:`agreement_report` reads them."""

    run_id: int
    suite: str
    results: Sequence[ResultRecord]
    verdicts: Mapping[int, VerdictRecord]


def agreement_report(runs: Sequence[RunVerdicts]) -> AgreementReport:
    """Agreement of every metric scored in ``runs`` with the analyst's verdicts (pooled)."""
    ids = tuple(r.run_id for r in runs)
    in_set = set(ids)
    pairs: dict[str, tuple[list[float], list[Verdict]]] = {}
    n_verdicts = 0
    for run in runs:
        for res in run.results:
            v = run.verdicts.get(res.index)
            if v is None or (v.inherited_from is not None and v.inherited_from in in_set):
                continue
            n_verdicts += 1
            for name, score in res.scores.items():
                value = _finite(score.value)
                if value is None:
                    continue
                scores, verdicts = pairs.setdefault(metric(name, run.suite).id, ([], []))
                scores.append(value)
                verdicts.append(v.verdict)
    order = sorted(pairs, key=lambda mid: (metric(mid).order, mid))
    return AgreementReport(
        runs=ids,
        n_verdicts=n_verdicts,
        metrics=tuple(metric_agreement(mid, *pairs[mid]) for mid in order),
    )
