"""The ``facts`` suite (key facts and declines), and :class:`WithFacts`, which scores it alongside a
run's own suite in one batch.

Metrics (registry: :mod:`rag_core.vocab`, suite ``facts``)
- ``answer_key_facts`` — share of the expected answer's required key facts the answer states
  (:mod:`~rag_core.evaluation.facts`). Reason: JSON ``{"in": "answer", "found": [...],
  "missing": [...], "background": [...]}``.
- ``context_key_facts`` — the same, looked for in the retrieved passages (a retrieval metric
  without a key).
- ``decline_behaviour`` — 1.0 when the answer declined a question expected to be declined, or
  answered one expected to be answered; 0.0 otherwise. Reason: JSON ``{"expected", "declined",
  "method", "phrase", "claude_reason", "patterns"}``. By phrase patterns; with the judge suite,
  by a Claude check (:class:`~rag_core.evaluation.declines.ClaudeDeclineCheck`), one engine job per
  answer, cached in the judge cache and never repeated.

Skips (:attr:`MetricScore.skipped`, neither a score nor a failure)
- Metrics that compare with the expected answer (:attr:`MetricSpec.needs_reference`, in every
  suite) are skipped on rows expected to be declined: there is no answer to compare with.
- The key-facts metrics are skipped when the expected answer has no required key fact (the reason
  says so; such a question is counted as "not checked" in the headline until an analyst labels it).

Failures as elsewhere: no answer, or no expected answer on a row expected to be answered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from rag_core.evaluation.base import Sample, Suite, _Judgement
from rag_core.evaluation.declines import ClaudeDeclineCheck, DeclineDetection, detect_decline
from rag_core.evaluation.facts import FactCheck, check_facts, extract_facts
from rag_core.evaluation.reasons import _shorten_json
from rag_core.models import MetricScore
from rag_core.vocab import Expected
from rag_core.vocab import Suite as SuiteName
from rag_core.vocab import metric as registry_metric

__all__ = ["DECLINE_SKIP", "NO_FACTS_SKIP", "FactsSuite", "WithFacts", "skip_score"]

FACTS_VERSION = "rag_core-1:KeyFacts"
DECLINES_VERSION = "rag_core-1:DeclinePatterns"
#: Reason stored with a reference-based metric skipped on a row expected to be declined.
DECLINE_SKIP = (
    "skipped: this question is expected to be declined, so there is no expected answer to compare with"
)
#: Reason stored when the expected answer has no required key fact.
NO_FACTS_SKIP = (
    "skipped: the expected answer has no key fact to check (no number, date or named term outside "
    "brackets); label this answer on the Review page"
)


def skip_score(metric_name: str, reason: str) -> MetricScore:
    """A skipped score for ``metric_name``."""
    return MetricScore(metric=metric_name, value=None, reason=reason, skipped=True)


class FactsSuite(Suite):
    """Key facts and declines (see the module docstring). ``decline_check`` (optional) asks Claude."""

    name = SuiteName.FACTS.value
    metrics = ("answer_key_facts", "context_key_facts", "decline_behaviour")

    def __init__(self, *, decline_check: ClaudeDeclineCheck | None = None) -> None:
        self.decline_check = decline_check
        self.model = decline_check.model if decline_check is not None else None

    def versions(self) -> dict[str, str]:
        decline = self.decline_check.version() if self.decline_check is not None else DECLINES_VERSION
        return {
            "answer_key_facts": FACTS_VERSION,
            "context_key_facts": FACTS_VERSION,
            "decline_behaviour": decline,
        }

    def caches(self, metric: str) -> bool:
        return metric == "decline_behaviour" and self.decline_check is not None

    def repeats(self, metric: str, requested: int) -> int:
        return 1  # deterministic, or a classification (Claude is asked once)

    def expected_calls(self, metric: str, sample: Sample) -> int:
        return 1 if self.caches(metric) else 0

    def warm(self) -> None:
        return None

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        if not sample.answer.strip():
            return MetricScore(metric=metric, value=None, error="no answer to score")
        if metric == "decline_behaviour":
            return None
        if sample.expected == Expected.DECLINE:
            return skip_score(metric, DECLINE_SKIP)
        if not sample.ground_truth.strip():
            return MetricScore(
                metric=metric,
                value=None,
                error="no ground truth: add an expected answer to this question to score it",
            )
        facts = extract_facts(sample.ground_truth, question=sample.question)
        if not any(not f.background for f in facts):
            return skip_score(metric, NO_FACTS_SKIP)
        if metric == "answer_key_facts":
            return _facts_score(metric, check_facts(facts, sample.answer), "answer")
        if not any(c.strip() for c in sample.contexts):
            return _facts_score(metric, check_facts(facts, ""), "passages")
        return _facts_score(metric, check_facts(facts, "\n\n".join(sample.contexts)), "passages")

    def cache_key(self, metric: str, sample: Sample, repeat: int) -> str:
        """As every suite's, plus the expected behaviour (the value depends on it)."""
        return super().cache_key(metric, sample, repeat) + ":" + str(Expected(sample.expected))

    async def score(self, metric: str, sample: Sample) -> _Judgement:
        """Only ``decline_behaviour`` gets here (the key facts are settled in :meth:`precheck`)."""
        patterns = detect_decline(sample.answer)
        found = patterns
        if self.decline_check is not None:
            found = await self.decline_check.check(sample.question, sample.answer)
        return decline_judgement(sample.expected, found, patterns)


def _facts_score(metric_name: str, check: FactCheck, where: str) -> MetricScore:
    share = check.share
    assert share is not None  # precheck made sure there are required facts
    reason = _shorten_json(check.to_json(where), "background")
    return MetricScore(metric=metric_name, value=share, reason=reason)


def decline_judgement(expected: str, found: DeclineDetection, patterns: DeclineDetection) -> _Judgement:
    """The ``decline_behaviour`` value and reason for one answer."""
    should_decline = expected == Expected.DECLINE
    payload: dict[str, object] = {
        "expected": str(Expected(expected)),
        "declined": found.declined,
        "method": found.method,
    }
    if found.phrase:
        payload["phrase"] = found.phrase
    if found.method == "claude":
        payload["claude_reason"] = found.reason
        payload["patterns"] = {"declined": patterns.declined, "phrase": patterns.phrase}
    return _Judgement(
        1.0 if found.declined == should_decline else 0.0, json.dumps(payload, ensure_ascii=False)
    )


class WithFacts(Suite):
    """A run's suite together with the ``facts`` suite, as one suite for one scoring batch.

    Metrics: the facts metrics, then ``primary``'s. Each metric is delegated to the suite that owns
    it; reference-based metrics of either are skipped on rows expected to be declined.
    """

    def __init__(self, primary: Suite, facts: FactsSuite) -> None:
        self.primary = primary
        self.facts = facts
        self.name = primary.name
        self.metrics = (*facts.metrics, *primary.metrics)
        self.model = primary.model
        self.cacheable = primary.cacheable or facts.decline_check is not None
        self._emb = primary._emb
        self._owner: Mapping[str, Suite] = {
            **dict.fromkeys(facts.metrics, facts),
            **dict.fromkeys(primary.metrics, primary),
        }

    def _of(self, metric_name: str) -> Suite:
        return self._owner[metric_name]

    def versions(self) -> dict[str, str]:
        return {**self.facts.versions(), **self.primary.versions()}

    def caches(self, metric: str) -> bool:
        return self._of(metric).caches(metric)

    def repeats(self, metric: str, requested: int) -> int:
        return self._of(metric).repeats(metric, requested)

    def expected_calls(self, metric: str, sample: Sample) -> int:
        return self._of(metric).expected_calls(metric, sample)

    def warm(self) -> None:
        self.primary.warm()

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        owner = self._of(metric)
        needs_reference = registry_metric(metric, self.primary.name).needs_reference
        if owner is self.primary and sample.expected == Expected.DECLINE and needs_reference:
            return skip_score(metric, DECLINE_SKIP)
        return owner.precheck(metric, sample)

    def unanswered(self, metric: str, expected: str) -> MetricScore:
        """The score of ``metric`` for a question that got no answer."""
        if expected == Expected.DECLINE and registry_metric(metric, self._suite_of(metric)).needs_reference:
            return skip_score(metric, DECLINE_SKIP)
        return MetricScore(metric=metric, value=None, error="no answer to score")

    def _suite_of(self, metric: str) -> str:
        return self.facts.name if self._of(metric) is self.facts else self.primary.name

    async def score(self, metric: str, sample: Sample) -> _Judgement:
        return await self._of(metric).score(metric, sample)

    def cache_key(self, metric: str, sample: Sample, repeat: int) -> str:
        return self._of(metric).cache_key(metric, sample, repeat)
