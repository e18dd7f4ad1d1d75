"""Display formatting shared by the pages (numbers, durations, metric lines). UI side only:
``rag_core`` returns typed records; how they read on screen is decided here."""

from __future__ import annotations

import math

from rag_core.summary import GenerationStats, MetricStats, RetryStats


def duration(seconds: float | None) -> str:
    """``"—"``, ``"0.8 s"``, ``"42 s"`` or ``"3 min 05 s"``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def metric_line(stats: MetricStats | None) -> str:
    """``"0.86 (95 % CI 0.80–0.91) ± 0.10 · 9 of 12 scored"`` (12 = every question of the run; the CI when
    the summary has one); ``"— · 0 of 12 scored"``
    when nothing was scored, with failures and unscored questions named."""
    if stats is None:
        return "— · not scored"
    value = "—" if stats.mean is None else f"{stats.mean:.2f}"
    if stats.ci_low is not None and stats.ci_high is not None:
        value += f" (95 % CI {stats.ci_low:.2f}–{stats.ci_high:.2f})"
    spread = f" ± {stats.stdev:.2f}" if stats.stdev is not None and stats.stdev > 0 else ""
    extra = []
    if stats.failed:
        extra.append(f"{stats.failed} failed")
    if stats.missing:
        extra.append(f"{stats.missing} not scored")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{value}{spread} · {stats.scored} of {stats.total} scored{tail}"


def speedup_line(g: GenerationStats | None) -> str | None:
    """``"5.8× measured (ideal 6.0× for 12 questions at concurrency 8)"``; None when unknown."""
    if g is None or g.speedup is None:
        return None
    kind = "measured" if g.speedup_measured is not None else "estimated"
    ideal = f" (ideal {g.ideal_speedup:.1f}×"
    if g.efficiency is not None:
        ideal += f", {g.efficiency:.0%} of it"
    return f"{g.speedup:.1f}× {kind}{ideal})"


def retries_line(r: RetryStats | None) -> str | None:
    """``"12 (answers 2, judge 10; faithfulness 4, …) · throttled 14 s, longest wait 3.0 s"``;
    None when nothing was retried."""
    if r is None or not (r.retries or r.failed_calls):
        return None
    passes = ", ".join(f"{k} {v}" for k, v in r.by_pass.items() if v)
    metrics = ", ".join(f"{k} {v}" for k, v in r.by_metric.items() if v)
    inner = passes + (f"; {metrics}" if metrics else "")
    line = f"{r.retries}" + (f" ({inner})" if inner else "")
    line += f" · throttled {duration(r.throttled_s)}, longest wait {duration(r.longest_wait_s)}"
    if r.failed_calls:
        line += f" · {r.failed_calls} calls failed for good"
    return line
