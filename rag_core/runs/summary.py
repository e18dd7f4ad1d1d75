"""Build a run's :class:`~rag_core.summary.RunSummary` from what the history store holds.

The summary is computed, never accumulated: metric stats come from the stored per-question scores,
time and spend from the stored attempt ledgers (one per execution of the run, see
:mod:`rag_core.usage`). A resumed or crashed run therefore reports the sum over all its attempts,
and a compare run bills both of its passes, without any special case.

Runs written before attempt ledgers existed keep the summary they stored (parsed by
:meth:`RunSummary.from_json`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rag_core.models import MetricScore
from rag_core.runs.correctness import decline_stats, headline
from rag_core.runs.statistics import bootstrap_ci
from rag_core.settings import Settings
from rag_core.storage.records import ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import (
    BATCH_DISCOUNT,
    GenerationStats,
    JudgeStats,
    MetricStats,
    PassUsage,
    RetryStats,
    RunSummary,
    Timings,
    Usage,
    ideal_speedup,
)
from rag_core.vocab import (
    Backend,
    Mode,
    Phase,
    RunStatus,
    Suite,
    metric,
    run_metrics,
    score_suite,
    suite_metrics,
)

__all__ = [
    "CACHE_READ_FACTOR",
    "CACHE_WRITE_FACTOR",
    "build_summary",
    "metric_stats",
    "price_passes",
    "with_quality",
]

CACHE_WRITE_FACTOR = 1.25
"""Prompt-cache writes cost this multiple of the base input price."""
CACHE_READ_FACTOR = 0.1
"""Prompt-cache reads cost this multiple of the base input price."""

_GENERATION_PHASES = (
    Phase.GENERATION_SEQUENTIAL,
    Phase.GENERATION,
    Phase.BATCH_SUBMIT,
    Phase.BATCH_WAIT,
    Phase.BATCH_COLLECT,
)


def build_summary(
    run: RunRecord,
    results: Sequence[ResultRecord],
    attempts: Sequence[Mapping[str, Any]],
    settings: Settings,
    *,
    status: str | None = None,
    failure: str | None = None,
    verdicts: Mapping[int, VerdictRecord] | None = None,
) -> RunSummary:
    """The summary of ``run`` from its results, attempt ledgers (snapshots, oldest first) and the
    analyst's ``verdicts`` (question index → verdict, for the headline).

    ``status``/``failure`` override the stored ones (the coordinator builds the final summary
    before it writes the final status).
    """
    suite = Suite(run.suite)
    notes = [dict(a.get("notes") or {}) for a in attempts]
    chosen = list(run.config.get("metrics") or [m.name for m in suite_metrics(suite)])
    if run.config.get("facts"):  # runs since key facts existed score them alongside
        chosen = [m.name for m in run_metrics(suite, chosen)]
    judge_model = next((n["judge_model"] for n in reversed(notes) if n.get("judge_model")), None)
    versions: dict[str, str] = next((n["versions"] for n in reversed(notes) if n.get("versions")), {})
    usage = Usage(passes=price_passes(_merge_passes(attempts), settings))
    return RunSummary(
        run_id=run.id,
        status=RunStatus(status or run.status),
        backend=Backend(run.backend),
        mode=Mode(run.mode),
        suite=suite,
        n_questions=len(results) or run.n_questions,
        answered=sum(1 for r in results if r.answer is not None),
        errors=sum(1 for r in results if r.error is not None and r.answer is None),
        timings=_timings(attempts),
        generation=_generation(run, attempts, len(results) or run.n_questions),
        metrics=metric_stats(suite, chosen, [r.scores for r in results], total=len(results)),
        usage=usage,
        judge=JudgeStats(
            suite=suite,
            model=judge_model,
            calls=usage.judge_calls,
            cache_hits=int(sum(n.get("cache_hits", 0) for n in notes)),
            versions=dict(versions),
        ),
        retries=RetryStats.from_notes(n.get("retries") for n in notes),
        failure=failure if failure is not None else (notes[-1].get("failure") if notes else None),
        headline=headline(results, verdicts),
        declines=decline_stats(results, method=_decline_method(versions)),
    )


def _decline_method(versions: Mapping[str, str]) -> str:
    return "claude" if "Claude" in str(versions.get("decline_behaviour", "")) else "patterns"


def with_quality(
    summary: RunSummary, results: Sequence[ResultRecord], verdicts: Mapping[int, VerdictRecord] | None
) -> RunSummary:
    """``summary`` with its headline and decline counts recomputed from ``results`` and ``verdicts``
    (verdicts change after a run ends; everything else in a finished run's summary does not)."""
    return summary.model_copy(
        update={
            "headline": headline(results, verdicts),
            "declines": decline_stats(results, method=_decline_method(summary.judge.versions)),
        }
    )


def metric_stats(
    suite: Suite, names: Iterable[str], scores: Sequence[Mapping[str, MetricScore]], *, total: int
) -> tuple[MetricStats, ...]:
    """Per metric: mean with its 95 % bootstrap CI, spread across questions, judge variance and
    counts (scored, failed, skipped). ``names`` are plain names in a run of ``suite`` (the
    key-facts metrics resolve to the ``facts`` suite).

    Every metric in ``names`` is reported (with ``scored=0`` when nothing was scored), plus any
    other metric found in ``scores``. ``total`` is the number of questions of the run. Failures
    are counted, never averaged; values are finite.
    """
    wanted = list(dict.fromkeys([*names, *(n for row in scores for n in row)]))
    out = []
    for name in wanted:
        items = [row[name] for row in scores if name in row]
        vals = [float(s.value) for s in items if s.value is not None and math.isfinite(float(s.value))]
        repeat_sds = [float(s.stdev) for s in items if s.value is not None and s.stdev is not None]
        ci = bootstrap_ci(vals)
        skipped = sum(1 for s in items if s.skipped)
        out.append(
            MetricStats(
                suite=score_suite(suite, name),
                name=name,
                mean=sum(vals) / len(vals) if vals else None,
                stdev=statistics.stdev(vals) if len(vals) >= 2 else None,
                scored=len(vals),
                failed=len(items) - len(vals) - skipped,
                skipped=skipped,
                total=max(total, len(items)),
                judge_stdev=sum(repeat_sds) / len(repeat_sds) if repeat_sds else None,
                ci_low=ci.ci_low,
                ci_high=ci.ci_high,
            )
        )
    return tuple(sorted(out, key=lambda m: (metric(m.id).order, m.name)))


def _merge_passes(attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for a in attempts:
        for p in a.get("passes") or []:
            key = (str(p.get("kind")), str(p.get("model")), bool(p.get("batch")))
            acc = merged.setdefault(key, {"kind": key[0], "model": key[1], "batch": key[2]})
            for f in (
                "calls",
                "input_tokens",
                "output_tokens",
                "estimated_input_tokens",
                "cache_write_tokens",
                "cache_read_tokens",
            ):
                acc[f] = acc.get(f, 0) + int(p.get(f) or 0)
    return [merged[k] for k in sorted(merged)]


def price_passes(passes: Iterable[Mapping[str, Any]], settings: Settings) -> tuple[PassUsage, ...]:
    """:class:`PassUsage` records with their price (batch discount, cache write/read prices)."""
    out = []
    for p in passes:
        model = str(p.get("model") or "")
        p_in, p_out = settings.price(model)
        billed_in = int(p.get("input_tokens") or 0) + int(p.get("estimated_input_tokens") or 0)
        cost = (
            billed_in * p_in
            + int(p.get("cache_write_tokens") or 0) * p_in * CACHE_WRITE_FACTOR
            + int(p.get("cache_read_tokens") or 0) * p_in * CACHE_READ_FACTOR
            + int(p.get("output_tokens") or 0) * p_out
        ) / 1_000_000
        if p.get("batch"):
            cost *= BATCH_DISCOUNT
        if not model.startswith("claude"):
            cost = 0.0  # the offline answerer and test doubles cost nothing
        out.append(PassUsage.model_validate({**p, "cost_usd": round(cost, 8)}))
    return tuple(out)


def _timings(attempts: Sequence[Mapping[str, Any]]) -> Timings:
    phases: dict[str, float] = {}
    total = 0.0
    for a in attempts:
        total += float(a.get("elapsed_s") or 0.0)
        for name, s in (a.get("phases") or {}).items():
            phases[name] = phases.get(name, 0.0) + float(s or 0.0)
    return Timings(
        retrieval_s=phases.get(Phase.RETRIEVAL, 0.0),
        generation_s=sum(phases.get(p, 0.0) for p in _GENERATION_PHASES),
        evaluation_s=phases.get(Phase.EVALUATION, 0.0),
        total_s=total,
        attempts=max(1, len(attempts)),
    )


def _generation(run: RunRecord, attempts: Sequence[Mapping[str, Any]], n_questions: int) -> GenerationStats:
    """Pass durations are the phase times of every attempt (written each second, so a killed
    attempt counts up to its last second); a measured speedup needs both compare passes complete
    in one attempt."""
    conc = int(run.config.get("concurrency") or 1)
    notes = [dict(a.get("notes") or {}) for a in attempts]

    def phase(name: str) -> float:
        return sum(float((a.get("phases") or {}).get(name) or 0.0) for a in attempts)

    mode = Mode(run.mode)
    seq = phase(Phase.GENERATION_SEQUENTIAL)
    asy = phase(Phase.GENERATION)
    busy = sum(float(n.get("busy_s") or 0.0) for n in notes)
    n_req = sum(int(n.get("n_requests") or 0) for n in notes)
    measured = None
    for n in notes:
        if n.get("compare_complete") and n.get("sequential_s") and n.get("async_s"):
            measured = float(n["sequential_s"]) / float(n["async_s"])
    estimated = None
    if run.backend != Backend.OFFLINE and busy > 0 and asy > 0 and mode != Mode.SEQUENTIAL:
        estimated = busy / asy
    ideal = 1.0 if mode in (Mode.SEQUENTIAL, Mode.BATCH) else ideal_speedup(n_questions, conc)
    batch = next((dict(n["batch"]) for n in reversed(notes) if isinstance(n.get("batch"), Mapping)), None)
    return GenerationStats(
        concurrency=1 if mode == Mode.SEQUENTIAL else conc,
        n_requests=n_req,
        sequential_s=seq or None,
        async_s=asy or None,
        busy_s=busy,
        speedup_measured=measured,
        speedup_estimated=estimated,
        ideal_speedup=ideal,
        batch=batch,
    )
