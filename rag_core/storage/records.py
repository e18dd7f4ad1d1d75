"""What the history store returns: question sets, runs and per-question results, as frozen records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag_core.experiment import RunIdentity
from rag_core.models import MetricScore
from rag_core.summary import RunSummary
from rag_core.vocab import Expected, Verdict

__all__ = ["QuestionSetInfo", "ResultRecord", "RunRecord", "VerdictRecord", "result_status"]


@dataclass(frozen=True)
class QuestionSetInfo:
    """A saved question set, as listed (without its items)."""

    name: str
    """The set's unique name."""
    n_items: int
    """Number of questions in the set."""
    updated_at: str
    """ISO-8601 UTC timestamp of the last save."""
    collection: str | None = None
    """The document collection its runs retrieve from; ``None`` when not bound."""


@dataclass(frozen=True)
class RunRecord:
    """One evaluation run (without its per-question results)."""

    id: int
    """Run id, increasing: a higher id is a newer run."""
    created_at: str
    """ISO-8601 UTC timestamp of when the run started."""
    finished_at: str | None
    """When it ended; ``None`` while running. For interrupted runs: the last recorded activity."""
    question_set: str | None
    """Name of the question set it used, if it came from a saved set."""
    backend: str
    """Answer backend, e.g. ``"offline"`` or ``"claude"``."""
    mode: str
    """``"sequential"``, ``"async"`` or ``"compare"``."""
    suite: str
    """Metric suite, e.g. ``"offline"`` or ``"judge"``."""
    status: str
    """One of :data:`rag_core.storage.schema.RUN_STATUSES`."""
    config: dict[str, Any]
    """Settings the run used (models, top_k, concurrency…); never holds a secret."""
    timings: dict[str, Any]
    """Phase durations in seconds (``retrieval_s``, ``generation_s``, ``evaluation_s``, ``total_s``)."""
    summary: RunSummary | None
    """The run's outcome as last stored (:mod:`rag_core.runs.summary` computes it); ``None`` until
    the run has stored one. Parsed from JSON here, at the storage boundary."""
    n_questions: int
    """Number of questions in the run."""
    name: str | None = None
    """The analyst's name for the run (optional)."""
    note: str | None = None
    """The analyst's note about the run (optional)."""
    identity: RunIdentity | None = None
    """What the run was made of (configuration version, question-set version, documents, code);
    ``None`` for runs recorded before identities existed."""


@dataclass(frozen=True)
class ResultRecord:
    """One question of a run, with its answer (or error) and its metric scores."""

    run_id: int
    """The run it belongs to."""
    index: int
    """0-based position of the question in the run."""
    question: str
    """The question asked."""
    ground_truth: str
    """The expected answer ('' when unknown)."""
    answer: str | None
    """The answer produced; ``None`` when pending or failed."""
    contexts: list[dict[str, Any]]
    """Retrieved chunks as ``ScoredChunk.to_dict()`` dicts; ``[]`` when none."""
    error: str | None
    """Why the answer failed; ``None`` when it did not."""
    error_kind: str | None
    """Error class name, e.g. ``"RateLimitError"``; ``None`` when no error."""
    latency_s: float | None
    """Seconds spent in requests for this answer; ``None`` when unknown."""
    attempts: int
    """Attempts made (0 while pending)."""
    input_tokens: int
    """Prompt tokens billed."""
    output_tokens: int
    """Completion tokens billed."""
    model: str | None
    """Model that wrote the answer."""
    scores: dict[str, MetricScore] = field(default_factory=dict)
    """Metric name → score (failed scores have ``value=None``); ``{}`` when not scored yet."""
    expected: Expected = Expected.ANSWER
    """Whether the question should be answered or declined (copied from the question set)."""

    @property
    def status(self) -> str:
        """``"ok"``, ``"error"``, ``"cancelled"`` or ``"pending"`` (nothing saved yet)."""
        return result_status(self.answer, self.error, self.error_kind)


def result_status(answer: str | None, error: str | None, error_kind: str | None) -> str:
    """A result row's status from what was saved: ``"ok"``, ``"cancelled"``, ``"error"`` or ``"pending"``."""
    if answer is not None:
        return "ok"
    if error_kind in ("CancelledError", "cancelled"):
        return "cancelled"
    if error is not None:
        return "error"
    return "pending"


@dataclass(frozen=True)
class VerdictRecord:
    """An analyst's verdict on one answer of a run."""

    run_id: int
    """The run whose result this verdict applies to."""
    index: int
    """0-based position of the question in that run."""
    verdict: Verdict
    """correct / partly / wrong."""
    comment: str
    """The analyst's comment ('' when none)."""
    labelled_at: str
    """ISO-8601 UTC timestamp of when it was given."""
    inherited_from: int | None = None
    """The earlier run whose identical answer to the same question carried this verdict; ``None``
    when it was given on this result itself."""

    @property
    def inherited(self) -> bool:
        return self.inherited_from is not None
