"""What a pass of a run leaves behind besides its answers: timeline rows and retry counts.

- :func:`pass_timings` — one :class:`~rag_core.models.RequestTiming` per answer request that started.
- :func:`calls_of` — the remote calls an answer job made (a job retried whole counts as one call).
- :class:`RetryNotes` — per pass (``"answers"``, ``"answers-sequential"``, ``"judge"``): calls,
  retries, calls retried, calls failed for good, time throttled, the longest wait, retries by error
  kind and by judge metric. Stored as the attempt's ``notes["retries"]`` and summed over attempts
  into :class:`~rag_core.summary.RetryStats` by the run summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rag_core.engine import CallRecord, ItemResult
from rag_core.models import RequestTiming

__all__ = ["RetryNotes", "calls_of", "pass_timings"]


class RetryNotes:
    """Retry counts of one attempt of a run, per pass (plain JSON out; not thread-safe)."""

    def __init__(self) -> None:
        self._passes: dict[str, dict[str, Any]] = {}

    def _pass(self, kind: str) -> dict[str, Any]:
        return self._passes.setdefault(kind, {"by_error": {}, "by_metric": {}})

    def add(self, kind: str, calls: Iterable[tuple[str | None, CallRecord]]) -> None:
        """Count ``(judge metric or None, call)`` pairs into pass ``kind``."""
        d = self._pass(kind)
        for metric, c in calls:
            d["calls"] = d.get("calls", 0) + 1
            d["retries"] = d.get("retries", 0) + c.retries
            d["calls_retried"] = d.get("calls_retried", 0) + (1 if c.retries else 0)
            d["failed_calls"] = d.get("failed_calls", 0) + (1 if c.status == "error" else 0)
            d["throttled_s"] = d.get("throttled_s", 0.0) + c.throttled_s
            d["longest_wait_s"] = max(d.get("longest_wait_s", 0.0), c.longest_wait_s)
            for k, n in c.retried.items():
                d["by_error"][k] = d["by_error"].get(k, 0) + n
            if metric and c.retries:
                d["by_metric"][metric] = d["by_metric"].get(metric, 0) + c.retries

    def add_retries(self, kind: str, n: int) -> None:
        """Count ``n`` retries known only as a number (e.g. requests sent again in a later batch round)."""
        d = self._pass(kind)
        d["retries"] = d.get("retries", 0) + int(n)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {
            k: {**v, "by_error": dict(v["by_error"]), "by_metric": dict(v["by_metric"])}
            for k, v in self._passes.items()
        }


def calls_of(r: ItemResult) -> tuple[CallRecord, ...]:
    """The calls an answer job made (a job retried whole counts as one call)."""
    if r.calls or r.started_at is None:
        return r.calls
    return (
        CallRecord(
            label=r.label,
            start=r.started_at,
            end=r.ended_at,
            status=r.status,
            attempts=r.attempts,
            throttled_s=r.throttled_s,
            error_kind=r.error_kind,
        ),
    )


def pass_timings(
    results: Sequence[ItemResult], todo: list[int], phase: str, labels: list[str]
) -> list[RequestTiming]:
    out = []
    for r in results:
        if r.started_at is None:
            continue
        v = r.value if r.status == "ok" else None
        out.append(
            RequestTiming(
                index=todo[r.index],
                phase=phase,
                label=labels[r.index],
                start=r.started_at,
                end=r.ended_at or r.started_at,
                attempts=r.attempts,
                status=r.status,
                throttled_s=r.throttled_s,
                input_tokens=getattr(v, "input_tokens", 0) or 0,
                output_tokens=getattr(v, "output_tokens", 0) or 0,
            )
        )
    return out
