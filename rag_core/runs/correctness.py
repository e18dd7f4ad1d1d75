"""Is each answer correct? The per-question decision behind the headline, and the decline counts.

Rules (also :class:`~rag_core.summary.Headline`'s docstring)
1. The analyst's verdict decides when there is one (given on the result or inherited):
   ``correct`` is correct, ``partly`` and ``wrong`` are not.
2. Otherwise, automatically:
   - no answer → not correct;
   - a question expected to be declined → correct when the answer declined
     (``decline_behaviour`` = 1);
   - a question expected to be answered → not correct when the answer declined; else correct
     when every required key fact is stated (``answer_key_facts`` = 1.0), not correct when one
     is missing;
   - anything else (e.g. no key fact to check, or the check failed) → *unchecked*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag_core.models import MetricScore
from rag_core.storage.records import ResultRecord, VerdictRecord
from rag_core.summary import DeclineStats, Headline
from rag_core.vocab import Expected

__all__ = ["Correctness", "correctness", "decline_stats", "declined", "headline"]

#: ``answer_key_facts`` at or above this is "all key facts present" (1.0, with float tolerance).
ALL_FACTS = 1.0 - 1e-9


@dataclass(frozen=True)
class Correctness:
    """Whether one answer is correct, and what decided it."""

    correct: bool | None
    """True / False, or None when nothing could decide (unchecked)."""
    basis: str
    """``"analyst"``, ``"inherited"`` (an analyst's verdict on an identical earlier answer),
    ``"key facts"``, ``"decline"``, ``"no answer"`` or ``"unchecked"``."""

    @property
    def by_analyst(self) -> bool:
        return self.basis in ("analyst", "inherited")


def declined(result: ResultRecord) -> bool | None:
    """Whether the answer declined (from its ``decline_behaviour`` score); None when not checked."""
    score: MetricScore | None = result.scores.get("decline_behaviour")
    if result.answer is None or score is None or score.value is None:
        return None
    behaved = score.value >= 0.5
    return behaved if result.expected == Expected.DECLINE else not behaved


def correctness(result: ResultRecord, verdict: VerdictRecord | None = None) -> Correctness:
    """The decision for one result (see the module rules)."""
    if verdict is not None:
        return Correctness(verdict.verdict.correct, "inherited" if verdict.inherited else "analyst")
    if result.answer is None:
        return Correctness(False, "no answer")
    did_decline = declined(result)
    if result.expected == Expected.DECLINE:
        if did_decline is None:
            return Correctness(None, "unchecked")
        return Correctness(did_decline, "decline")
    if did_decline:
        return Correctness(False, "decline")
    facts = result.scores.get("answer_key_facts")
    if facts is None or facts.value is None:
        return Correctness(None, "unchecked")
    return Correctness(facts.value >= ALL_FACTS, "key facts")


def headline(
    results: Sequence[ResultRecord], verdicts: Mapping[int, VerdictRecord] | None = None
) -> Headline:
    """ "N of M answers correct" over ``results`` (M = all of them)."""
    verdicts = verdicts or {}
    decided = [correctness(r, verdicts.get(r.index)) for r in results]
    return Headline(
        correct=sum(1 for c in decided if c.correct),
        total=len(results),
        by_analyst=sum(1 for c in decided if c.by_analyst),
        inherited=sum(1 for c in decided if c.basis == "inherited"),
        by_key_facts=sum(1 for c in decided if not c.by_analyst and c.correct is not None),
        unchecked=sum(1 for c in decided if c.correct is None),
    )


def decline_stats(results: Sequence[ResultRecord], *, method: str = "patterns") -> DeclineStats | None:
    """Decline counts over ``results``; None when no result has a ``decline_behaviour`` score (the
    run was not scored, or predates declines)."""
    if not any("decline_behaviour" in r.scores for r in results):
        return None
    out = {"should_decline": 0, "declined_when_should": 0, "answered_when_should_decline": 0}
    out |= {"should_answer": 0, "declined_when_should_answer": 0, "unchecked": 0}
    for r in results:
        d = declined(r)
        if d is None:
            out["unchecked"] += 1
        elif r.expected == Expected.DECLINE:
            out["should_decline"] += 1
            out["declined_when_should" if d else "answered_when_should_decline"] += 1
        else:
            out["should_answer"] += 1
            out["declined_when_should_answer"] += int(d)
    return DeclineStats(**out, method=method)
