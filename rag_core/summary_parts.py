"""Parts of a run's summary that judge its quality: the "N of M correct" headline, declines and
retries (re-exported by :mod:`rag_core.summary`, which holds the run's record itself)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeclineStats", "Headline", "RetryStats"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)


def _fin(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Headline(_Record):
    """ "N of M answers correct", and how each answer was decided.

    An answer is *correct* when the analyst's verdict says ``correct`` (``partly`` and ``wrong``
    do not count); without a verdict, when it states every required key fact of the expected
    answer, or declines a question expected to be declined. A question with no answer is not
    correct. One that neither a verdict nor the automatic check can decide (e.g. its expected
    answer has no key fact) is *unchecked*, counted in ``total`` but not as correct.
    """

    correct: int = 0
    """N: answers counted correct."""
    total: int = 0
    """M: every question of the run."""
    by_analyst: int = 0
    """Questions decided by an analyst's verdict (given on this run, or inherited)."""
    inherited: int = 0
    """Of ``by_analyst``: verdicts inherited from an identical answer in an earlier run."""
    by_key_facts: int = 0
    """Questions decided automatically (key facts, declines, or no answer at all)."""
    unchecked: int = 0
    """Questions neither way could decide."""

    @property
    def basis(self) -> str:
        """What decided the count: ``"analyst"``, ``"key facts"``, ``"analyst + key facts"`` or ``"none"``."""
        if self.by_analyst and self.by_key_facts:
            return "analyst + key facts"
        if self.by_analyst:
            return "analyst"
        if self.by_key_facts:
            return "key facts"
        return "none"

    @property
    def text(self) -> str:
        """``"7 of 10 answers correct (by key facts)"``; says which evidence it used."""
        head = f"{self.correct} of {self.total} answers correct"
        if self.basis == "analyst":
            how = "the analyst's verdict" + (f", {self.inherited} inherited" if self.inherited else "")
        elif self.basis == "key facts":
            how = "key facts and declines"
        elif self.basis == "none":
            how = "nothing to decide by yet"
        else:
            how = (
                f"the analyst's verdict for {self.by_analyst}"
                + (f" ({self.inherited} inherited)" if self.inherited else "")
                + f", key facts and declines for {self.by_key_facts}"
            )
        tail = f"; {self.unchecked} not checked" if self.unchecked else ""
        return f"{head} (by {how}{tail})"

    def to_json(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "basis": self.basis, "text": self.text}


class DeclineStats(_Record):
    """How the assistant handled questions it should decline, and the others."""

    should_decline: int = 0
    """Questions expected to be declined (with an answer whose behaviour was checked)."""
    declined_when_should: int = 0
    """Of those, declined: correct."""
    answered_when_should_decline: int = 0
    """Of those, answered anyway: a guess where the policy is silent (the risky number)."""
    should_answer: int = 0
    """Questions expected to be answered (with a checked answer)."""
    declined_when_should_answer: int = 0
    """Of those, declined: the assistant refused a question the policy covers."""
    unchecked: int = 0
    """Questions whose behaviour could not be checked (no answer, or the check failed)."""
    method: str = "patterns"
    """``"patterns"`` or ``"claude"``: how declines were detected."""

    @property
    def recall(self) -> float | None:
        """declined_when_should / should_decline; None when no question should be declined."""
        return self.declined_when_should / self.should_decline if self.should_decline else None

    def to_json(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "recall": self.recall}


class RetryStats(_Record):
    """Retried Claude calls of a run (429, 529/5xx, timeouts, lost connections), summed over its
    attempts. Retries are counted and summarised here, not logged line by line."""

    calls: int = 0
    """Calls made (each with its retries; the judge's re-asks are calls of their own)."""
    retries: int = 0
    """Attempts beyond each call's first."""
    calls_retried: int = 0
    """Calls that needed at least one retry."""
    failed_calls: int = 0
    """Calls that failed for good (their budget spent, a deadline, or an error not worth retrying)."""
    throttled_s: float = 0.0
    """Seconds calls spent waiting before a retry (backoff and server ``retry-after``), summed."""
    longest_wait_s: float = 0.0
    """The longest single wait before a retry."""
    by_error: dict[str, int] = Field(default_factory=dict)
    """Error kind → retries it caused, e.g. ``{"RateLimitError": 12}``."""
    by_pass: dict[str, int] = Field(default_factory=dict)
    """``"answers"`` / ``"answers-sequential"`` / ``"judge"`` → retries."""
    by_metric: dict[str, int] = Field(default_factory=dict)
    """Judge metric → retries of its calls."""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_notes(cls, notes: Any) -> RetryStats:
        """Sum the per-attempt ``notes["retries"]`` dicts (``{pass: {calls, retries, …}}``)."""
        acc: dict[str, Any] = {"by_error": {}, "by_pass": {}, "by_metric": {}}
        for per_attempt in notes:
            for kind, d in (per_attempt or {}).items():
                if not isinstance(d, Mapping):
                    continue
                for f in ("calls", "retries", "calls_retried", "failed_calls"):
                    acc[f] = acc.get(f, 0) + int(d.get(f) or 0)
                acc["throttled_s"] = acc.get("throttled_s", 0.0) + float(d.get("throttled_s") or 0.0)
                acc["longest_wait_s"] = max(
                    acc.get("longest_wait_s", 0.0), float(d.get("longest_wait_s") or 0.0)
                )
                acc["by_pass"][kind] = acc["by_pass"].get(kind, 0) + int(d.get("retries") or 0)
                for group in ("by_error", "by_metric"):
                    for k, v in (d.get(group) or {}).items():
                        acc[group][k] = acc[group].get(k, 0) + int(v or 0)
        return cls.model_validate(acc)
