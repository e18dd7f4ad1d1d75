"""What a run would cost with Claude, estimated before it starts (:func:`estimate_run`).

Tokens are estimated as characters / 4 (:data:`rag_core.usage.CHARS_PER_TOKEN`); judge calls per
answer come from the metric registry (:meth:`rag_core.vocab.MetricSpec.judge_calls`), the same
table the scoring uses, so the estimate and the bill agree on how many calls a metric makes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rag_core.settings import Settings
from rag_core.summary import BATCH_DISCOUNT
from rag_core.usage import CHARS_PER_TOKEN
from rag_core.vocab import Backend, Mode, Suite, metric, suite_metrics

__all__ = [
    "ANSWER_PROMPT_TOKENS",
    "ANSWER_TOKENS",
    "DECLINE_CHECK_OUTPUT_TOKENS",
    "DECLINE_CHECK_PROMPT_TOKENS",
    "FAITHFULNESS_OUTPUT_TOKENS",
    "JUDGE_OUTPUT_TOKENS",
    "JUDGE_PROMPT_TOKENS",
    "QUESTION_TOKENS",
    "CostEstimate",
    "estimate_run",
]

ANSWER_PROMPT_TOKENS = 350
"""Prompt tokens of the answer prompt around the question and the context."""
QUESTION_TOKENS = 30
"""Tokens of a typical question."""
ANSWER_TOKENS = 250
"""Tokens of a typical answer (also the answer's share of judge prompts)."""
JUDGE_PROMPT_TOKENS = 700
"""Prompt tokens of a RAGAS judge template (instructions + few-shot examples)."""
JUDGE_OUTPUT_TOKENS = 200
"""Output tokens of a judge call (verdict JSON)."""
FAITHFULNESS_OUTPUT_TOKENS = 500
"""Output tokens of a faithfulness call (it lists statements)."""
DECLINE_CHECK_PROMPT_TOKENS = 300
"""Prompt tokens of the decline check (instructions + tool schema) around the question and answer."""
DECLINE_CHECK_OUTPUT_TOKENS = 60
"""Output tokens of the decline check (a tool call with a one-line reason)."""


@dataclass(frozen=True)
class CostEstimate:
    """What a run would cost with Claude, before it starts. An upper estimate: cache hits are free."""

    answer_calls: int
    """Claude calls that write answers (twice the questions in compare mode)."""
    judge_calls: int
    """Claude calls that judge answers (metric calls × questions × repeats)."""
    input_tokens: int
    """Estimated prompt tokens over all calls."""
    output_tokens: int
    """Estimated completion tokens over all calls."""
    cost_usd: float
    """Estimated price in USD from ``settings.cost_usd`` (answer model + judge model)."""

    @property
    def calls(self) -> int:
        return self.answer_calls + self.judge_calls

    @property
    def uses_claude(self) -> bool:
        return self.calls > 0


def estimate_run(
    settings: Settings,
    *,
    n_questions: int,
    backend: str,
    mode: str,
    suite: str,
    metrics: Sequence[str] | None,
    top_k: int,
    judge_repeats: int = 1,
    context_chars: int | None = None,
) -> CostEstimate:
    """Estimate Claude calls, tokens and cost for a run.

    Answers: one call per question (two in ``compare`` mode: a sequential and an async pass) when
    ``backend`` is Claude; in ``batch`` mode they cost :data:`~rag_core.summary.BATCH_DISCOUNT`
    of the price. Judge (``suite == "judge"``): per question and repeat, each chosen metric's
    registry call count (faithfulness 2, answer relevancy 3, context precision ``top_k``, context
    recall 1), plus one decline check per question (key facts and declines are scored with every
    suite; with the judge suite Claude checks the declines, once per answer, not per repeat).
    ``context_chars`` per retrieved chunk defaults to ``settings.chunk_size`` (the largest a chunk
    can be).
    """
    n = max(0, int(n_questions))
    k = max(1, int(top_k))
    repeats = max(1, int(judge_repeats))
    chunk_tokens = math.ceil((context_chars or settings.chunk_size) / CHARS_PER_TOKEN)
    context_tokens = k * chunk_tokens

    answer_calls = a_in = a_out = 0
    if backend == Backend.CLAUDE:
        answer_calls = n * (2 if mode == Mode.COMPARE else 1)
        a_in = answer_calls * (ANSWER_PROMPT_TOKENS + QUESTION_TOKENS + context_tokens)
        a_out = answer_calls * ANSWER_TOKENS

    judge_calls = j_in = j_out = 0
    if suite == Suite.JUDGE:
        chosen = [metric(m, Suite.JUDGE) for m in metrics] if metrics else list(suite_metrics(Suite.JUDGE))
        per_q_in = per_q_out = per_q_calls = 0
        for spec in chosen:
            calls = spec.judge_calls(k)
            per_q_calls += calls
            if spec.name == "faithfulness":  # statements from the answer, then verdicts vs the context
                per_q_in += 2 * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS) + context_tokens
                per_q_out += 2 * FAITHFULNESS_OUTPUT_TOKENS
            elif spec.name == "answer_relevancy":  # generated questions from the answer
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + ANSWER_TOKENS)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
            elif spec.name == "context_precision":  # one chunk per call
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS + chunk_tokens)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
            else:  # context recall: the whole context once
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS + context_tokens)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
        judge_calls = n * repeats * per_q_calls + n
        j_in = n * repeats * per_q_in + n * (DECLINE_CHECK_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS)
        j_out = n * repeats * per_q_out + n * DECLINE_CHECK_OUTPUT_TOKENS

    cost = 0.0
    if answer_calls:
        answer_cost = settings.cost_usd(settings.answer_model, a_in, a_out)
        cost += answer_cost * (BATCH_DISCOUNT if mode == Mode.BATCH else 1.0)
    if judge_calls:
        cost += settings.cost_usd(settings.judge_model, j_in, j_out)
    return CostEstimate(
        answer_calls=answer_calls,
        judge_calls=judge_calls,
        input_tokens=a_in + j_in,
        output_tokens=a_out + j_out,
        cost_usd=round(cost, 4),
    )
