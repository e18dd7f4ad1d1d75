"""The typed outcome of a run: :class:`RunSummary` and the records it is made of.

Every reader (pages, charts, CLI, exports, benchmarks) uses these records; JSON exists only at the
storage boundary (:meth:`RunSummary.to_json` / :meth:`RunSummary.from_json`) and in the CLI's
``--json``. The records are frozen pydantic models: validated when built, immutable after.

How the numbers are defined (each rule holds *by construction*, see :mod:`rag_core.runs.summary`):

- Usage and cost are summed over every Claude request the run ever sent — both passes of a compare
  run, every attempt of a resumed run — each request counted from the moment it is sent (a request
  in flight when the process died is counted with its estimated prompt tokens).
- Times are summed over every attempt of the run (the first try and each resume).
- ``ideal_speedup = N / ceil(N / C)``: ``N`` requests at concurrency ``C`` take ``ceil(N / C)`` waves.
- A metric's ``total`` is every question of the run, so a cancelled run reads "6 of 12 scored".
- A metric is identified by ``(suite, name)`` (:attr:`MetricStats.id`); offline and judged
  context recall never share a column or a trend line.
- The :class:`Headline` ("N of M answers correct") counts an answer correct by the analyst's
  verdict when there is one, otherwise automatically (all key facts present, or a correct
  decline), and says how many were decided each way. :class:`DeclineStats` counts declines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from rag_core.summary_parts import DeclineStats, Headline, RetryStats, _fin, _Record
from rag_core.vocab import Backend, Mode, RunStatus, Suite, metric, metric_id

__all__ = [
    "DeclineStats",
    "GenerationStats",
    "Headline",
    "JudgeStats",
    "MetricStats",
    "PassUsage",
    "RetryStats",
    "RunSummary",
    "Timings",
    "Usage",
    "ideal_speedup",
]

BATCH_DISCOUNT = 0.5
"""Message Batches requests cost this fraction of the normal per-token price."""


def ideal_speedup(n: int, concurrency: int) -> float:
    """The best possible async-over-sequential speedup for ``n`` equal requests at ``concurrency``.

    The requests go out in ``ceil(n / concurrency)`` waves, so the ceiling is ``n / waves``:
    12 questions at concurrency 8 take two waves, 6x at best (not 8x).
    """
    n, c = int(n), int(concurrency)
    if n <= 0 or c <= 0:
        return 1.0
    return n / math.ceil(n / c)


class MetricStats(_Record):
    """One metric over the questions of one run. Failures are counted, never averaged as 0."""

    suite: Suite
    """The suite that computed it."""
    name: str
    """Name within the suite, e.g. ``"context_recall"``."""
    mean: float | None = None
    """Mean over scored questions; None when nothing was scored."""
    stdev: float | None = None
    """Spread across questions (sample stdev); None below two scored questions."""
    scored: int = 0
    """Questions with a value."""
    failed: int = 0
    """Questions whose metric ran and failed (or had no answer to score)."""
    skipped: int = 0
    """Questions the metric does not apply to (e.g. a reference-based metric on a question
    expected to be declined): neither scored nor failed."""
    total: int = 0
    """Every question of the run (scored + failed + skipped + not scored yet)."""
    judge_stdev: float | None = None
    """The judge's own variance: mean over questions of the stdev between repeats."""
    ci_low: float | None = None
    """Lower bound of the mean's 95 % bootstrap confidence interval over questions (None below two
    scored questions; see :mod:`rag_core.runs.statistics`)."""
    ci_high: float | None = None
    """Upper bound of that interval."""

    @property
    def id(self) -> str:
        """``"<suite>.<name>"``, e.g. ``"judge.context_recall"``."""
        return metric_id(self.suite, self.name)

    @property
    def label(self) -> str:
        """Display name from the registry, unique across suites."""
        return metric(self.id).label

    @property
    def missing(self) -> int:
        """Questions not scored at all (cancelled or interrupted before scoring)."""
        return max(0, self.total - self.scored - self.failed - self.skipped)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suite": str(self.suite),
            "label": self.label,
            "mean": self.mean,
            "stdev": self.stdev,
            "scored": self.scored,
            "failed": self.failed,
            "skipped": self.skipped,
            "total": self.total,
            "judge_stdev": self.judge_stdev,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


class PassUsage(_Record):
    """Claude requests of one kind (one pass) of a run, summed over its attempts."""

    kind: str
    """``"answers"``, ``"answers-sequential"`` (compare mode's timing pass) or ``"judge"``."""
    model: str
    """The model the requests went to."""
    batch: bool = False
    """Sent through the Message Batches API (half price)."""
    calls: int = 0
    """Requests sent (every attempt, retries included)."""
    input_tokens: int = 0
    """Prompt tokens billed, from the responses."""
    output_tokens: int = 0
    """Completion tokens billed."""
    estimated_input_tokens: int = 0
    """Prompt tokens of requests whose response never arrived (in flight at a crash, timed out):
    counted at an estimate (characters / 4), because the API may have billed them."""
    cache_write_tokens: int = 0
    """Prompt tokens written to Anthropic's prompt cache (billed 1.25x)."""
    cache_read_tokens: int = 0
    """Prompt tokens read from the prompt cache (billed 0.1x)."""
    cost_usd: float = 0.0
    """Price of this pass in USD (batch discount and cache prices applied)."""

    @property
    def answers(self) -> bool:
        return self.kind != "judge"


class Usage(_Record):
    """Everything a run sent to Claude, per pass."""

    passes: tuple[PassUsage, ...] = ()

    def _sum(self, field: str, *, answers: bool) -> int:
        return sum(int(getattr(p, field)) for p in self.passes if p.answers == answers)

    @property
    def answer_calls(self) -> int:
        return self._sum("calls", answers=True)

    @property
    def judge_calls(self) -> int:
        return self._sum("calls", answers=False)

    @property
    def answer_cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.passes if p.answers)

    @property
    def judge_cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.passes if not p.answers)

    @property
    def cost_usd(self) -> float:
        return self.answer_cost_usd + self.judge_cost_usd

    def to_json(self) -> dict[str, Any]:
        """The README's ``usage`` block (answer/judge tokens and costs) plus ``passes``."""
        return {
            "input_tokens": self._sum("input_tokens", answers=True),
            "output_tokens": self._sum("output_tokens", answers=True),
            "answer_calls": self.answer_calls,
            "judge_input_tokens": self._sum("input_tokens", answers=False),
            "judge_output_tokens": self._sum("output_tokens", answers=False),
            "judge_calls": self.judge_calls,
            "estimated_input_tokens": self._sum("estimated_input_tokens", answers=True)
            + self._sum("estimated_input_tokens", answers=False),
            "answer_cost_usd": round(self.answer_cost_usd, 6),
            "judge_cost_usd": round(self.judge_cost_usd, 6),
            "cost_usd": round(self.cost_usd, 6),
            "passes": [p.model_dump(mode="json") for p in self.passes],
        }


class Timings(_Record):
    """Wall time per phase in seconds, summed over every attempt (first try and resumes)."""

    retrieval_s: float = 0.0
    generation_s: float = 0.0
    evaluation_s: float = 0.0
    total_s: float = 0.0
    """Wall time of all attempts together (includes setup between phases)."""
    attempts: int = 1
    """How many times the run was executed (1 + resumes)."""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class GenerationStats(_Record):
    """How answer generation went: pass durations and the async-over-sequential speedup."""

    concurrency: int = 1
    """Requests in flight at once in the async pass."""
    n_requests: int = 0
    """Questions the async (or sequential) pass answered requests for."""
    sequential_s: float | None = None
    """Wall time of the sequential pass (sequential and compare modes)."""
    async_s: float | None = None
    """Wall time of the async pass (async and compare modes), summed over attempts."""
    busy_s: float = 0.0
    """Σ of request latencies in the async pass (Claude only)."""
    speedup_measured: float | None = None
    """sequential_s / async_s, compare mode only (both passes complete in one attempt)."""
    speedup_estimated: float | None = None
    """busy_s / async_s: how many requests overlapped on average (Claude; None for offline
    answers, which are CPU-bound and would claim a speedup that does not exist)."""
    ideal_speedup: float = 1.0
    """``N / ceil(N / C)``: the best possible speedup for these N requests at concurrency C."""
    batch: dict[str, Any] | None = None
    """Batch mode: the Message Batch ids, counts and message (None otherwise)."""

    @property
    def speedup(self) -> float | None:
        """Measured when known, else estimated."""
        return self.speedup_measured if self.speedup_measured is not None else self.speedup_estimated

    @property
    def efficiency(self) -> float | None:
        """Speedup as a share of the ideal (1.0 = perfect)."""
        s = self.speedup
        return s / self.ideal_speedup if s is not None and self.ideal_speedup > 0 else None

    def to_json(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude={"batch"})
        if self.batch is not None:
            out["batch"] = self.batch
        return out


class JudgeStats(_Record):
    """How the answers were scored."""

    suite: Suite = Suite.NONE
    model: str | None = None
    """The judge model (None for the offline suite)."""
    calls: int = 0
    """Judge requests sent over every attempt (re-asks and retries included)."""
    cache_hits: int = 0
    """Judgements served from the judge cache."""
    versions: dict[str, str] = Field(default_factory=dict)
    """Metric name → version string (library version + class), to tell comparable runs apart."""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def mismatch(self, other: JudgeStats) -> str | None:
        """Why scores of this run and ``other`` are not comparable, or None."""
        if self.suite != other.suite:
            return f"These runs were scored by different metric suites ({self.suite} vs {other.suite})."
        if self.model != other.model:
            return f"These runs were judged by different models ({self.model} vs {other.model})."
        diff = sorted(
            m for m in set(self.versions) & set(other.versions) if self.versions[m] != other.versions[m]
        )
        if diff:
            return f"Metric versions differ between these runs for: {', '.join(diff)}."
        return None


class RunSummary(_Record):
    """A run's outcome. Built by :func:`rag_core.runs.summary.build_summary`; stored as JSON."""

    run_id: int
    status: RunStatus
    backend: Backend
    mode: Mode
    suite: Suite
    n_questions: int
    """Every question of the run."""
    answered: int = 0
    """Questions with an answer."""
    errors: int = 0
    """Questions whose answer failed."""
    timings: Timings = Field(default_factory=Timings)
    generation: GenerationStats = Field(default_factory=GenerationStats)
    metrics: tuple[MetricStats, ...] = ()
    """In registry display order."""
    usage: Usage = Field(default_factory=Usage)
    judge: JudgeStats = Field(default_factory=JudgeStats)
    retries: RetryStats = Field(default_factory=RetryStats)
    """Retried Claude calls, per pass, per metric and per error, and the time spent throttled."""
    failure: str | None = None
    """Why the run failed (status ``failed``)."""
    headline: Headline | None = None
    """"N of M answers correct" (None for runs recorded before it existed)."""
    declines: DeclineStats | None = None
    """Declines (None when the run was not scored, or was recorded before declines existed)."""

    def metric(self, key: str) -> MetricStats | None:
        """Stats by metric id (``"judge.faithfulness"``) or by plain name within this run's suite."""
        for m in self.metrics:
            if key in (m.id, m.name):
                return m
        return None

    @property
    def cost_usd(self) -> float:
        return self.usage.cost_usd

    # --- storage boundary --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The JSON stored with the run and written by ``--json`` (the README's contract).

        It leads with ``headline`` ("N of M answers correct", when known). ``metrics`` is keyed by
        the metric's name (unique in one run); each entry carries its ``id``, ``suite`` and
        ``label`` as well.
        """
        out: dict[str, Any] = {}
        if self.headline is not None:
            out["headline"] = self.headline.to_json()
        out |= {
            "run_id": self.run_id,
            "status": str(self.status),
            "backend": str(self.backend),
            "mode": str(self.mode),
            "suite": str(self.suite),
            "n_questions": self.n_questions,
            "answered": self.answered,
            "errors": self.errors,
            "timings": self.timings.to_json(),
            "generation": self.generation.to_json(),
            "metrics": {m.name: m.to_json() for m in self.metrics},
            "usage": self.usage.to_json(),
            "judge": self.judge.to_json(),
            "retries": self.retries.to_json(),
        }
        if self.declines is not None:
            out["declines"] = self.declines.to_json()
        if self.failure is not None:
            out["failure"] = self.failure
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **fallback: Any) -> RunSummary:
        """Parse :meth:`to_json`'s dict, or a summary written by an older version.

        ``fallback`` supplies fields that older summaries kept outside the summary (``run_id``,
        ``status``, ``backend``, ``mode``, ``suite``, ``n_questions``, ``timings``).
        """
        d = dict(data or {})
        base = {k: v for k, v in fallback.items() if v is not None}
        base.update(
            {k: d[k] for k in ("run_id", "status", "backend", "mode", "suite", "n_questions") if k in d}
        )
        suite = Suite(str(base.get("suite", "none")))
        n = int(base.get("n_questions") or 0)
        timings = d.get("timings") or fallback.get("timings") or {}
        gen = dict(d.get("generation") or {})
        usage = d.get("usage") or {}
        judge = dict(d.get("judge") or {})
        judge.setdefault("suite", str(suite))
        metrics = []
        for name, st in (d.get("metrics") or {}).items():
            st = dict(st or {})
            m_suite = st.get("suite") or str(suite)
            metrics.append(
                MetricStats(
                    suite=Suite(m_suite) if m_suite in Suite.__members__.values() else suite,
                    name=str(name),
                    mean=_fin(st.get("mean")),
                    stdev=_fin(st.get("stdev")),
                    scored=int(st.get("scored") or 0),
                    failed=int(st.get("failed") or 0),
                    skipped=int(st.get("skipped") or 0),
                    total=int(st.get("total") or n),
                    judge_stdev=_fin(st.get("judge_stdev")),
                    ci_low=_fin(st.get("ci_low")),
                    ci_high=_fin(st.get("ci_high")),
                )
            )
        return cls(
            run_id=int(base.get("run_id") or 0),
            status=RunStatus(str(base.get("status", "completed"))),
            backend=Backend(str(base.get("backend", "offline"))),
            mode=Mode(str(base.get("mode", "async"))),
            suite=suite,
            n_questions=n,
            answered=int(d.get("answered") or 0),
            errors=int(d.get("errors") or 0),
            timings=Timings.model_validate(
                {k: v for k, v in ((k, _fin(timings.get(k))) for k in Timings.model_fields) if v is not None}
            ),
            generation=_generation_from_json(gen),
            metrics=tuple(sorted(metrics, key=lambda m: (metric(m.id).order, m.id))),
            usage=_usage_from_json(usage, judge.get("model")),
            judge=JudgeStats(
                suite=Suite(str(judge.get("suite"))),
                model=judge.get("model"),
                calls=int(judge.get("calls") or 0),
                cache_hits=int(judge.get("cache_hits") or 0),
                versions=dict(judge.get("versions") or {}),
            ),
            retries=RetryStats.model_validate(d["retries"])
            if isinstance(d.get("retries"), Mapping)
            else RetryStats(),
            failure=d.get("failure"),
            headline=_sub(Headline, d.get("headline")),
            declines=_sub(DeclineStats, d.get("declines")),
        )


def _sub(cls: Any, data: Any) -> Any:
    """A sub-record from its JSON (derived fields such as ``text`` are ignored), or None."""
    return cls.model_validate(data) if isinstance(data, Mapping) else None


def _generation_from_json(g: Mapping[str, Any]) -> GenerationStats:
    return GenerationStats(
        concurrency=int(g.get("concurrency") or 1),
        n_requests=int(g.get("n_requests") or 0),
        sequential_s=_fin(g.get("sequential_s")),
        async_s=_fin(g.get("async_s")),
        busy_s=_fin(g.get("busy_s")) or 0.0,
        speedup_measured=_fin(g.get("speedup_measured")),
        speedup_estimated=_fin(g.get("speedup_estimated")),
        ideal_speedup=_fin(g.get("ideal_speedup")) or 1.0,
        batch=dict(g["batch"]) if isinstance(g.get("batch"), Mapping) else None,
    )


def _usage_from_json(u: Mapping[str, Any], judge_model: str | None) -> Usage:
    if isinstance(u.get("passes"), list):
        return Usage(passes=tuple(PassUsage.model_validate(p) for p in u["passes"]))
    # A summary written before per-pass usage existed: one answer pass and one judge pass.
    passes = []
    if u.get("input_tokens") or u.get("output_tokens"):
        passes.append(
            PassUsage(
                kind="answers",
                model="unknown",
                batch=bool(u.get("batch_discount")),
                input_tokens=int(u.get("input_tokens") or 0),
                output_tokens=int(u.get("output_tokens") or 0),
                cost_usd=float(u.get("answer_cost_usd", u.get("cost_usd", 0.0)) or 0.0),
            )
        )
    if u.get("judge_input_tokens") or u.get("judge_output_tokens"):
        passes.append(
            PassUsage(
                kind="judge",
                model=judge_model or "unknown",
                input_tokens=int(u.get("judge_input_tokens") or 0),
                output_tokens=int(u.get("judge_output_tokens") or 0),
                cost_usd=float(u.get("judge_cost_usd") or 0.0),
            )
        )
    return Usage(passes=tuple(passes))
