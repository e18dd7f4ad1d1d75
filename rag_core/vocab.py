"""The project's vocabulary: every mode, status, suite and metric is spelled here, once.

CLI choices, page labels, chart axes, exports and benchmarks read these enums and the metric
registry instead of writing the strings out again. Values are ``StrEnum`` members, so they compare
equal to (and serialise as) their plain string values: ``Mode.ASYNC == "async"``.

A metric's identity is ``(suite, name)``: the offline "context recall" (embedding similarity) and
the judged "context recall" (Claude decides) are different measurements. Their :attr:`MetricSpec.id`
(``"offline.context_recall"`` / ``"judge.context_recall"``) keys every cross-run table, chart
column and trend line, so the two are never joined; within one run the plain ``name`` is unique and is what the
per-question scores store.

Every scoring run computes its own suite's metrics *and* the ``facts`` suite (key facts and
declines: deterministic, explainable, no key needed). The ``facts`` metric names are unique across
all suites (checked below), so a per-question score stored under a plain name resolves to its
suite unambiguously: :func:`score_suite` / :func:`metric` with a run's suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from rag_core.errors import InputError

E = TypeVar("E", bound=StrEnum)

__all__ = [
    "ALWAYS_ON",
    "METRICS",
    "RUN_SUITES",
    "Backend",
    "Expected",
    "ItemStatus",
    "MetricSpec",
    "Mode",
    "Phase",
    "Retrieval",
    "RunStatus",
    "Significance",
    "Suite",
    "Verdict",
    "choice",
    "metric",
    "metric_id",
    "run_metrics",
    "score_suite",
    "suite_metrics",
]


def choice(enum: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``enum``; :class:`InputError` naming ``what`` and the choices
    when it is not one (e.g. a typo in a CLI flag or a stored config)."""
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise InputError(f"Unknown {what} {value!r}: choose one of {choices}.") from None


class Backend(StrEnum):
    """Who writes the answers."""

    OFFLINE = "offline"
    """The local extractive answerer: no key, no network."""
    CLAUDE = "claude"
    """Anthropic Claude through the Messages API."""


class Mode(StrEnum):
    """How answers are generated."""

    SEQUENTIAL = "sequential"
    """One request at a time."""
    ASYNC = "async"
    """Up to ``concurrency`` requests at once on the engine's loop thread."""
    COMPARE = "compare"
    """A sequential pass (timing baseline only) then an async pass: measures the speedup."""
    BATCH = "batch"
    """Anthropic Message Batches: half price, results within hours (Claude only)."""


class Suite(StrEnum):
    """Which metrics score the answers."""

    OFFLINE = "offline"
    """Non-LLM metrics computed locally."""
    JUDGE = "judge"
    """RAGAS LLM metrics with Claude as the judge (needs a key)."""
    NONE = "none"
    """No scoring: answers only."""
    FACTS = "facts"
    """Key facts and declines: deterministic, computed alongside every scoring suite (never chosen
    on its own; see :data:`ALWAYS_ON`)."""

    @property
    def selectable(self) -> bool:
        """Whether a run can be started with this suite (CLI ``--suite``, the Run page)."""
        return self in RUN_SUITES


#: Suites a run can be started with, in menu order.
RUN_SUITES: tuple[Suite, ...] = (Suite.OFFLINE, Suite.JUDGE, Suite.NONE)
#: Suites computed alongside every scoring suite (not with ``none``).
ALWAYS_ON: tuple[Suite, ...] = (Suite.FACTS,)


class Expected(StrEnum):
    """What a question-set row expects the assistant to do."""

    ANSWER = "answer"
    """The policy covers the question: the assistant should answer it (the default)."""
    DECLINE = "decline"
    """The policy does not cover it: the assistant should say so instead of guessing."""


class Verdict(StrEnum):
    """An analyst's verdict on one answer (Review page, CLI ``label``)."""

    CORRECT = "correct"
    PARTLY = "partly"
    """Right in part: something important is missing or wrong. Not counted as correct."""
    WRONG = "wrong"

    @property
    def correct(self) -> bool:
        """Counted as a correct answer in the headline (only ``correct`` is)."""
        return self is Verdict.CORRECT

    @property
    def ordinal(self) -> float:
        """The verdict as a number for rank correlation: wrong 0, partly 0.5, correct 1."""
        return {Verdict.WRONG: 0.0, Verdict.PARTLY: 0.5, Verdict.CORRECT: 1.0}[self]


class RunStatus(StrEnum):
    """Where a run stands. Every status but ``running`` is final until a resume."""

    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Its process died (or batch mode stopped waiting): finished work is kept, resume finishes it."""

    @property
    def resumable(self) -> bool:
        return self in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.INTERRUPTED)


class ItemStatus(StrEnum):
    """One job of an engine batch, or one question of a run."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (ItemStatus.OK, ItemStatus.ERROR, ItemStatus.CANCELLED)


class Phase(StrEnum):
    """What a run is doing right now (progress) and the timeline row a request belongs to."""

    STARTING = "starting"
    INDEXING = "indexing"
    """Building the chunked copy of the index a configuration asks for (first use only)."""
    RETRIEVAL = "retrieval"
    GENERATION_SEQUENTIAL = "generation-sequential"
    """Compare mode's sequential pass: timing baseline, its answers are not kept."""
    GENERATION = "generation"
    BATCH_SUBMIT = "batch-submit"
    BATCH_WAIT = "batch-wait"
    BATCH_COLLECT = "batch-collect"
    EVALUATION = "evaluation"
    DONE = "done"


class Retrieval(StrEnum):
    """How an assistant configuration picks the chunks it answers from."""

    SIMILARITY = "similarity"
    """The ``top_k`` chunks most similar to the question (cosine)."""
    MMR = "mmr"
    """Maximal marginal relevance: similar to the question, but not to each other (fewer near-duplicates)."""


class Significance(StrEnum):
    """What a paired comparison of two runs says about one metric (see rag_core.runs.statistics)."""

    BETTER = "better"
    """The candidate is significantly better (Holm-corrected test and the 95 % CI agree)."""
    WORSE = "worse"
    """The candidate is significantly worse."""
    NO_DIFFERENCE = "no detectable difference"
    """The difference is within what these questions can tell apart from noise."""
    NOT_ENOUGH_DATA = "not enough paired questions"
    """Fewer than two questions were scored in both runs: nothing can be tested."""


# --------------------------------------------------------------------------------------------
# Metric registry
# --------------------------------------------------------------------------------------------
ANSWER_RELEVANCY_STRICTNESS = 3
"""Questions RAGAS' AnswerRelevancy generates per answer (its default): 3 judge calls."""


def metric_id(suite: str, name: str) -> str:
    """The identity key of metric ``name`` as computed by ``suite``."""
    return f"{suite}.{name}"


@dataclass(frozen=True)
class MetricSpec:
    """One metric a run can report."""

    suite: Suite
    """The suite that computes it."""
    name: str
    """Name within its suite (what per-question scores store), e.g. ``"context_recall"``."""
    label: str
    """Display name, unique across suites, e.g. ``"Context recall (judge)"``."""
    order: int
    """Display order (lower first)."""
    description: str
    """One sentence for an HR analyst: what a high value means."""
    higher_is_better: bool = True
    """Whether a larger value is better (all current metrics: yes)."""
    calls_per_answer: int = 0
    """Claude calls to judge one answer (0 = no API call); see :meth:`judge_calls`."""
    calls_per_context: int = 0
    """Extra Claude calls per retrieved chunk (context precision judges chunks one by one)."""
    needs_reference: bool = False
    """Compares with the expected answer: skipped (not scored 0) on rows expected to decline."""

    @property
    def id(self) -> str:
        """``"<suite>.<name>"``: the key of cross-run tables, chart columns and trend lines."""
        return metric_id(self.suite, self.name)

    def judge_calls(self, n_contexts: int) -> int:
        """Claude calls one judged answer costs with ``n_contexts`` retrieved chunks."""
        if self.calls_per_context:
            return max(1, self.calls_per_context * int(n_contexts))
        return self.calls_per_answer


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        Suite.JUDGE,
        "faithfulness",
        "Faithfulness",
        10,
        "Share of the answer's statements that the retrieved policy text supports (no invention).",
        calls_per_answer=2,
    ),
    MetricSpec(
        Suite.JUDGE,
        "answer_relevancy",
        "Answer relevancy",
        20,
        "How directly the answer addresses the question asked.",
        calls_per_answer=ANSWER_RELEVANCY_STRICTNESS,
    ),
    MetricSpec(
        Suite.JUDGE,
        "context_precision",
        "Context precision",
        30,
        "Whether the passages that help answer the question are ranked first.",
        calls_per_context=1,
        needs_reference=True,
    ),
    MetricSpec(
        Suite.JUDGE,
        "context_recall",
        "Context recall (judge)",
        40,
        "Share of the expected answer's statements that the retrieved passages contain (judged by Claude).",
        calls_per_answer=1,
        needs_reference=True,
    ),
    MetricSpec(
        Suite.OFFLINE,
        "semantic_similarity",
        "Semantic similarity",
        50,
        "How close the answer's meaning is to the expected answer (embedding cosine).",
        needs_reference=True,
    ),
    MetricSpec(
        Suite.OFFLINE,
        "rouge_l",
        "ROUGE-L",
        60,
        "Word overlap between the answer and the expected answer (longest common subsequence).",
        needs_reference=True,
    ),
    MetricSpec(
        Suite.OFFLINE,
        "context_recall",
        "Context recall (offline)",
        70,
        "Share of the expected answer's sentences found in the retrieved passages (embedding match).",
        needs_reference=True,
    ),
    MetricSpec(
        Suite.FACTS,
        "answer_key_facts",
        "Answer key facts",
        1,
        "Share of the expected answer's key facts (numbers with units, dates, named terms) that the "
        "answer states; 1.0 = all of them.",
        needs_reference=True,
    ),
    MetricSpec(
        Suite.FACTS,
        "context_key_facts",
        "Context key facts",
        2,
        "Share of the expected answer's key facts found in the retrieved passages (retrieval quality).",
        needs_reference=True,
    ),
    MetricSpec(
        Suite.FACTS,
        "decline_behaviour",
        "Decline behaviour",
        3,
        "1 when the assistant declined a question it should decline, or answered one it should "
        "answer; 0 when it guessed or refused wrongly.",
    ),
)

_BY_ID: dict[str, MetricSpec] = {m.id: m for m in METRICS}
_ALWAYS_ON_NAMES: dict[str, Suite] = {m.name: m.suite for m in METRICS if m.suite in ALWAYS_ON}
# A plain score name must resolve to one suite: always-on names never appear in another suite.
assert not {m.name for m in METRICS if m.suite not in ALWAYS_ON} & set(_ALWAYS_ON_NAMES)


def score_suite(run_suite: str, name: str) -> Suite:
    """The suite that computed the score a run of ``run_suite`` stored under the plain ``name``
    (``"answer_key_facts"`` → ``facts``; ``"faithfulness"`` in a judge run → ``judge``)."""
    always = _ALWAYS_ON_NAMES.get(name)
    if always is not None:
        return always
    try:
        return Suite(run_suite)
    except ValueError:
        return Suite.NONE


def metric(key: str, suite: str | None = None) -> MetricSpec:
    """The spec for a metric id (``"judge.faithfulness"``), or for a plain name within ``suite``.

    An unknown metric (e.g. one written by a newer version) gets a generic spec, so old or foreign
    history never breaks a page: its label is the name, capitalised, with the suite in brackets.
    """
    if "." not in key and suite is not None:
        key = metric_id(score_suite(suite, key), key)
    spec = _BY_ID.get(key)
    if spec is not None:
        return spec
    s, _, name = key.partition(".")
    if not name:
        s, name = (suite or "unknown"), key
    try:
        suite_v = Suite(s)
    except ValueError:
        suite_v = Suite.NONE
    return MetricSpec(suite_v, name, f"{name.replace('_', ' ').capitalize()} ({s})", 1000, "")


def suite_metrics(suite: str) -> tuple[MetricSpec, ...]:
    """The metrics of ``suite`` in display order (``()`` for ``"none"``).

    Raises ``ValueError`` for an unknown suite name.
    """
    s = Suite(suite)
    return tuple(sorted((m for m in METRICS if m.suite == s), key=lambda m: m.order))


def run_metrics(suite: str, chosen: Sequence[str] | None = None) -> tuple[MetricSpec, ...]:
    """Every metric a run of ``suite`` reports, in display order: the always-on suites' metrics
    (key facts, declines) first, then ``chosen`` (names within ``suite``; None = all of them).
    ``()`` for ``"none"``. Raises ``ValueError`` for an unknown suite."""
    s = Suite(suite)
    if s == Suite.NONE:
        return ()
    own = suite_metrics(s)
    if chosen:
        own = tuple(m for m in own if m.name in set(chosen))
    extra = tuple(m for a in ALWAYS_ON if a != s for m in suite_metrics(a))
    return (*extra, *own)
