"""Phase 2 of a run: score answers with a metric suite, through the engine, with a judge cache.

Two suites share one interface (:class:`Suite`) and one entry point (:func:`submit_scoring`):
``offline`` (the default without an API key; no network, deterministic) and ``judge`` (Claude as
judge through RAGAS; needs a key).

- :mod:`~rag_core.evaluation.base` — :class:`Sample`, the :class:`Suite` interface, metric names.
- :mod:`~rag_core.evaluation.offline` — :class:`OfflineSuite` (semantic similarity, ROUGE-L,
  embedding context recall).
- :mod:`~rag_core.evaluation.judge` — :class:`JudgeSuite`, its Claude client, :func:`judge_calls`.
- :mod:`~rag_core.evaluation.facts` — key facts of an expected answer (numbers with units, dates,
  named terms), normalised; which of them a text states.
- :mod:`~rag_core.evaluation.declines` — did an answer decline? Phrase patterns and a Claude check.
- :mod:`~rag_core.evaluation.facts_suite` — the ``facts`` suite (answer/context key facts, decline
  behaviour) and :class:`WithFacts`, which scores it alongside every run's suite.
- :mod:`~rag_core.evaluation.agreement` — agreement of each metric with the analyst's verdicts
  (Cohen's κ at the best cut-off, Spearman, confusion table).
- :mod:`~rag_core.evaluation.embedding` — local embeddings as a RAGAS embeddings object.
- :mod:`~rag_core.evaluation.reasons` — the compact JSON reasons kept with scores.
- :mod:`~rag_core.evaluation.scoring` — :func:`make_suite`, :func:`submit_scoring`,
  :class:`ScoringBatch`, :class:`ScoringOutcome`, the judge cache (contracts there).

Import public names from here: ``from rag_core.evaluation import make_suite, submit_scoring``.
"""

# RAGAS_DO_NOT_TRACK is set by rag_core/__init__.py, which runs before this module.
from rag_core.evaluation.base import JUDGE_METRICS, OFFLINE_METRICS, SUITES, Sample, Suite
from rag_core.evaluation.facts_suite import FactsSuite, WithFacts
from rag_core.evaluation.judge import JudgeSuite, judge_calls
from rag_core.evaluation.offline import CONTEXT_RECALL_THRESHOLD, OfflineSuite
from rag_core.evaluation.scoring import ScoringBatch, ScoringOutcome, make_suite, submit_scoring

__all__ = [
    "CONTEXT_RECALL_THRESHOLD",
    "JUDGE_METRICS",
    "OFFLINE_METRICS",
    "SUITES",
    "FactsSuite",
    "JudgeSuite",
    "OfflineSuite",
    "Sample",
    "ScoringBatch",
    "ScoringOutcome",
    "Suite",
    "WithFacts",
    "judge_calls",
    "make_suite",
    "submit_scoring",
]
