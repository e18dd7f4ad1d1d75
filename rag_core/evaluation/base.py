"""The suite interface and what every suite and the scoring batch share.

A :class:`Suite` is a named set of metrics scored per :class:`Sample`; one engine job computes one
metric for one sample (:meth:`Suite.score`) and returns a :class:`_Judgement` — a finite value in
[0, 1] and an optional reason — or raises a :class:`~rag_core.errors.RagError` subclass. A score
that can be decided without computing ("no ground truth", "nothing retrieved") comes from
:meth:`Suite.precheck`. Helpers here turn RAGAS results into judgements: :func:`_clip01` (NaN /
infinity / None never become a score) and :func:`_drive` (run a CPU-only RAGAS coroutine without
an event loop). A per-job :class:`_Trace` (a context variable) counts the API calls and tokens a
job made.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rag_core.errors import EvaluationError, InputError
from rag_core.models import MetricScore
from rag_core.vocab import Suite as SuiteName
from rag_core.vocab import suite_metrics

__all__ = ["JUDGE_METRICS", "OFFLINE_METRICS", "SUITES", "Sample", "Suite"]

#: Suites that compute metrics (``none`` computes nothing); names and metric lists come from the
#: registry in :mod:`rag_core.vocab`.
SUITES: tuple[str, ...] = (SuiteName.OFFLINE, SuiteName.JUDGE)
OFFLINE_METRICS: tuple[str, ...] = tuple(m.name for m in suite_metrics(SuiteName.OFFLINE))
JUDGE_METRICS: tuple[str, ...] = tuple(m.name for m in suite_metrics(SuiteName.JUDGE))


@dataclass(frozen=True)
class Sample:
    """One answered question to score. Empty strings mean "absent" (no answer / no ground truth)."""

    question: str
    """The question asked."""
    answer: str
    """The answer produced ('' when there is none: answer-based metrics then fail)."""
    contexts: list[str]
    """Texts of the retrieved chunks, best first ([] when nothing was retrieved)."""
    ground_truth: str
    """The analyst's expected answer ('' when unknown: reference-based metrics then fail)."""
    expected: str = "answer"
    """``"answer"`` or ``"decline"`` (:class:`~rag_core.vocab.Expected`): on a row expected to be
    declined, metrics that compare with the expected answer are skipped, not scored."""


@dataclass(frozen=True)
class _Judgement:
    """What one job produced: a finite value in [0, 1] and an optional explanation."""

    value: float
    reason: str | None = None


class _Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class _Trace:
    """Per-job record, reached through a context variable from the SDK/LLM wrappers."""

    calls: int = 0
    """Requests sent (every attempt of every call, re-asks included)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    outputs: list[Any] = field(default_factory=list)
    metric: str = ""
    """The metric this job computes (names its calls: ``"faithfulness · call 2"``)."""
    item_key: str = ""
    """The judged item's identity (its judge-cache key): names its requests in a message batch."""
    logical_calls: int = 0
    """Judge calls started (a call is retried as a whole by the engine or the batcher)."""
    batcher: Any = None
    """The :class:`~rag_core.evaluation.judge_batches.JudgeBatcher` in batch mode, else None."""


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("rag_core_eval_trace", default=None)


def _ragas_version() -> str:
    import ragas

    return str(ragas.__version__)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an ``async def`` that never awaits anything to completion, synchronously.

    RAGAS' non-LLM collections metrics (``RougeScore``, ``SemanticSimilarity``) are ``async``
    wrappers around synchronous CPU code; stepping them here lets us run them on a worker thread
    (no event loop needed, no ``asyncio.run``). Raises :class:`EvaluationError` if the coroutine
    does suspend (a future RAGAS version that awaits something would need a different path).
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise EvaluationError("Internal: an offline metric tried to wait for I/O; it must be CPU-only.")


def _clip01(value: Any, what: str) -> float:
    """A finite float in [0, 1], or EvaluationError (NaN/inf/None never become a score)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EvaluationError(f"{what} returned a non-numeric value ({value!r}).") from None
    if not math.isfinite(v):
        raise EvaluationError(f"{what} returned no value (NaN): there was nothing it could judge.")
    return min(1.0, max(0.0, v))


class Suite:
    """A named set of metrics scored per sample. Subclasses implement :meth:`score`.

    ``name`` is ``"offline"`` or ``"judge"``; ``metrics`` the metric names in display order;
    ``model`` the judge model (None offline); ``cacheable`` whether results go to the judge cache.
    """

    name: str = ""
    metrics: tuple[str, ...] = ()
    model: str | None = None
    cacheable: bool = False
    _emb: Any = None

    def versions(self) -> dict[str, str]:
        """Metric name → version string recorded with each run (library version + class)."""
        raise NotImplementedError

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        """A final score decided without computing (e.g. "no ground truth"), or None to compute."""
        return None

    def expected_calls(self, metric: str, sample: Sample) -> int:
        """Sequential API calls one job for ``metric`` makes (0 offline). Used to order jobs."""
        return 0

    def caches(self, metric: str) -> bool:
        """Whether ``metric``'s judgements go to (and come from) the judge cache."""
        return self.cacheable

    def repeats(self, metric: str, requested: int) -> int:
        """How many times ``metric`` is judged when ``requested`` repeats are asked for (cached,
        i.e. non-deterministic, metrics repeat; deterministic ones run once)."""
        return requested if self.caches(metric) else 1

    def warm(self) -> None:
        """Import RAGAS and load the local embedding model now (≈3–5 s the first time in a
        process), e.g. from a background thread during phase 1. Optional; idempotent; raises
        :class:`RagError` if the embedding model cannot be loaded."""
        from ragas.metrics import collections  # noqa: F401

        if "rouge_l" in self.metrics:
            from rouge_score import rouge_scorer  # noqa: F401
        if self.name == "offline" or "answer_relevancy" in self.metrics:
            self._emb.embedder  # noqa: B018  (loads the model)

    async def score(self, metric: str, sample: Sample) -> _Judgement:
        """Compute one metric for one sample. Raises a :class:`RagError` subclass on failure."""
        raise NotImplementedError

    def cache_key(self, metric: str, sample: Sample, repeat: int) -> str:
        """sha256 hex of everything that determines a judgement (see module docstring)."""
        payload = json.dumps(
            [
                metric,
                self.versions().get(metric, ""),
                self.model,
                sample.question,
                sample.answer,
                list(sample.contexts),
                sample.ground_truth,
                int(repeat),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _missing(
    metric: str, sample: Sample, *, answer: bool = False, truth: bool = False, contexts: bool = False
) -> MetricScore | None:
    if answer and not sample.answer.strip():
        return MetricScore(metric=metric, value=None, error="no answer to score")
    if truth and not sample.ground_truth.strip():
        return MetricScore(
            metric=metric,
            value=None,
            error="no ground truth: add an expected answer to this question to score it",
        )
    if contexts and not any(c.strip() for c in sample.contexts):
        return MetricScore(metric=metric, value=None, error="nothing was retrieved for this question")
    return None


def _pick(metrics: Sequence[str] | None, allowed: tuple[str, ...], suite: str) -> tuple[str, ...]:
    if not metrics:
        return allowed
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise InputError(
            f"Unknown {suite} metric(s) {', '.join(map(repr, unknown))}: choose from {', '.join(allowed)}."
        )
    return tuple(m for m in allowed if m in set(metrics))
