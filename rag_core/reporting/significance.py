"""Statistics over stored runs: a paired comparison of two runs and a sweep's leaderboard.

- :func:`compare_stats` pairs two runs' questions (by text, whitespace- and case-insensitive, the
  first occurrence wins) and compares every metric both runs scored with
  :func:`rag_core.runs.statistics.compare_paired` (paired bootstrap CI, permutation test, Holm,
  verdict, minimum detectable difference, judge noise).
- :func:`comparison_json` is the ``compare --json`` document: the diff of what changed and, per
  metric, ``{mean_a, mean_b, diff, ci_low, ci_high, p_value, verdict, n_paired, …}``.
- :func:`leaderboard`: one row per run (configuration) of a sweep with each metric's mean and 95 %
  bootstrap CI, billed cost, answer latency; for each metric the best configuration, and which others
  are significantly worse than it (paired test against the best, Holm-corrected across the
  configurations compared).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.reporting.diff import RunDiff
from rag_core.runs.statistics import (
    ALPHA,
    MeanCI,
    PairedDiff,
    PairedScores,
    bootstrap_ci,
    compare_paired,
    holm,
    verdict_for,
)
from rag_core.storage.records import ResultRecord, RunRecord
from rag_core.vocab import Significance, metric, metric_id

__all__ = [
    "Leaderboard",
    "LeaderboardRow",
    "compare_stats",
    "comparison_json",
    "leaderboard",
    "metric_values",
    "paired_metrics",
]


def _key(q: str) -> str:
    return " ".join(str(q).split()).casefold()


def metric_values(run: RunRecord, results: Sequence[ResultRecord]) -> dict[str, list[float | None]]:
    """Metric id → value per question (None = not scored), in the run's question order."""
    names: list[str] = []
    for r in results:
        for name in r.scores:
            if name not in names:
                names.append(name)
    return {
        metric_id(run.suite, n): [r.scores[n].value if n in r.scores else None for r in results]
        for n in names
    }


def paired_metrics(
    run_a: RunRecord, run_b: RunRecord, results_a: Sequence[ResultRecord], results_b: Sequence[ResultRecord]
) -> list[PairedScores]:
    """Every metric scored in both runs, on the questions both runs asked (rows aligned)."""
    first_b: dict[str, ResultRecord] = {}
    for r in results_b:
        first_b.setdefault(_key(r.question), r)
    seen: set[str] = set()
    rows: list[tuple[ResultRecord, ResultRecord]] = []
    for r in results_a:
        k = _key(r.question)
        if k in first_b and k not in seen:
            seen.add(k)
            rows.append((r, first_b[k]))
    names_a = {metric_id(run_a.suite, n) for r, _ in rows for n in r.scores}
    names_b = {metric_id(run_b.suite, n) for _, r in rows for n in r.scores}
    common = sorted(names_a & names_b, key=lambda m: (metric(m).order, m))
    rep_a = int(run_a.config.get("judge_repeats") or 1)
    rep_b = int(run_b.config.get("judge_repeats") or 1)
    out = []
    for mid in common:
        name = mid.split(".", 1)[1]

        def col(side: int, what: str, name: str = name) -> list[float | None]:
            vals = []
            for pair in rows:
                sc = pair[side].scores.get(name)
                vals.append(None if sc is None else getattr(sc, what))
            return vals

        sd_a, sd_b = col(0, "stdev"), col(1, "stdev")
        out.append(
            PairedScores(
                mid,
                col(0, "value"),
                col(1, "value"),
                sd_a=sd_a if any(v is not None for v in sd_a) else None,
                sd_b=sd_b if any(v is not None for v in sd_b) else None,
                repeats_a=rep_a,
                repeats_b=rep_b,
            )
        )
    return out


def compare_stats(
    run_a: RunRecord, run_b: RunRecord, results_a: Sequence[ResultRecord], results_b: Sequence[ResultRecord]
) -> list[PairedDiff]:
    """Per metric both runs scored: the paired comparison of ``run_b`` (candidate) against ``run_a``."""
    return compare_paired(paired_metrics(run_a, run_b, results_a, results_b))


def comparison_json(
    run_a: RunRecord,
    run_b: RunRecord,
    stats: Sequence[PairedDiff],
    changes: RunDiff,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``compare --json`` document (see the module docstring)."""
    return {
        "baseline": run_a.id,
        "candidate": run_b.id,
        "changes": changes.to_json(),
        "metrics": {s.metric_id: s.to_json() for s in stats},
        "warnings": list(warnings),
        "alpha": ALPHA,
        "method": (
            "paired over questions scored in both runs: 95% percentile bootstrap CI of the mean difference, "
            "two-sided sign-flip permutation test, Holm correction across metrics; verdict needs both"
        ),
    }


# --------------------------------------------------------------------------------------------
# Leaderboard
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaderboardRow:
    """One configuration of a sweep (one run)."""

    run_id: int
    config: str
    """The configuration's label (``"name v2"``)."""
    status: str
    metrics: dict[str, MeanCI]
    """Metric id → mean with 95 % bootstrap CI over the run's questions."""
    worse: dict[str, PairedDiff] = field(default_factory=dict)
    """Metric id → the comparison against the best configuration, for metrics where this one is
    significantly worse."""
    best_on: tuple[str, ...] = ()
    """Metric ids on which this configuration has the highest mean."""
    cost_usd: float = 0.0
    """What this run was billed (reused answers and judgements cost nothing again)."""
    latency_s: float | None = None
    """Mean answer latency over the answered questions (a reused answer keeps its original latency)."""
    total_s: float = 0.0
    """Wall time of the run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config": self.config,
            "status": self.status,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "significantly_worse_than_best": {k: v.to_json() for k, v in self.worse.items()},
            "best_on": list(self.best_on),
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "total_s": self.total_s,
        }


@dataclass(frozen=True)
class Leaderboard:
    """A sweep's configurations side by side, sorted by the first metric's mean (best first)."""

    rows: tuple[LeaderboardRow, ...]
    metric_ids: tuple[str, ...]
    """Metrics shown, in registry order."""
    best: dict[str, int] = field(default_factory=dict)
    """Metric id → run id of the best configuration."""

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metric_ids),
            "best": dict(self.best),
            "rows": [r.to_json() for r in self.rows],
        }


def _label(run: RunRecord) -> str:
    if run.identity is not None and run.identity.config is not None:
        return run.identity.config.label
    return run.name or f"run #{run.id}"


def leaderboard(runs: Sequence[RunRecord], results: Mapping[int, Sequence[ResultRecord]]) -> Leaderboard:
    """The leaderboard of ``runs`` (see the module docstring); ``results`` by run id."""
    values = {r.id: metric_values(r, results.get(r.id, [])) for r in runs}
    ids = sorted({m for v in values.values() for m in v}, key=lambda m: (metric(m).order, m))
    cis = {r.id: {m: bootstrap_ci(values[r.id].get(m, [])) for m in ids} for r in runs}
    best: dict[str, int] = {}
    worse: dict[int, dict[str, PairedDiff]] = {r.id: {} for r in runs}
    by_id = {r.id: r for r in runs}
    for m in ids:
        scored = [(float(mean), r.id) for r in runs if (mean := cis[r.id][m].mean) is not None]
        if not scored:
            continue
        sign = 1.0 if metric(m).higher_is_better else -1.0
        best_id = max(scored, key=lambda t: (sign * t[0], -t[1]))[1]  # ties: the earliest run
        best[m] = best_id
        others = [rid for _, rid in scored if rid != best_id]
        diffs = []
        for rid in others:
            pair = paired_metrics(by_id[best_id], by_id[rid], results.get(best_id, []), results.get(rid, []))
            found = [p for p in pair if p.metric_id == m]
            diffs.append(compare_paired(found)[0] if found else None)
        adjusted = holm([d.p_value if d is not None else None for d in diffs])
        for rid, d, p_adj in zip(others, diffs, adjusted, strict=True):
            if d is None or d.diff is None:
                continue
            v = verdict_for(d.diff, d.ci_low, d.ci_high, p_adj, ALPHA, metric(m).higher_is_better, d.n_paired)
            if v == Significance.WORSE:
                worse[rid][m] = PairedDiff(**{**d.__dict__, "p_holm": p_adj, "verdict": v})
    rows = []
    for r in runs:
        res = results.get(r.id, [])
        lat = [
            x.latency_s
            for x in res
            if x.answer is not None and x.latency_s is not None and math.isfinite(x.latency_s)
        ]
        rows.append(
            LeaderboardRow(
                run_id=r.id,
                config=_label(r),
                status=r.status,
                metrics=cis[r.id],
                worse=worse[r.id],
                best_on=tuple(m for m in ids if best.get(m) == r.id),
                cost_usd=float(r.summary.cost_usd) if r.summary else 0.0,
                latency_s=sum(lat) / len(lat) if lat else None,
                total_s=float(r.summary.timings.total_s) if r.summary else 0.0,
            )
        )
    first = ids[0] if ids else None
    sign0 = 1.0 if first is None or metric(first).higher_is_better else -1.0

    def rank(row: LeaderboardRow) -> tuple[float, int]:
        mean = row.metrics[first].mean if first is not None else None
        return (-(sign0 * mean) if mean is not None else math.inf, row.run_id)

    return Leaderboard(rows=tuple(sorted(rows, key=rank)), metric_ids=tuple(ids), best=best)
