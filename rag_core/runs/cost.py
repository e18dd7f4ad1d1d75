"""What a run would cost with Claude, estimated before it starts (:func:`estimate_run`).

Tokens are estimated as characters / 4 (:data:`rag_core.usage.CHARS_PER_TOKEN`); judge calls per
answer come from the metric registry (:meth:`rag_core.vocab.MetricSpec.judge_calls`), the same
table the scoring uses, so the estimate and the bill agree on how many calls a metric makes.

Savings are priced the way they are billed:

- Prompt caching (``settings.prompt_cache``): each judge call's static prefix (tool schema, the
  data-only system prompt, RAGAS' instructions and examples: :data:`JUDGE_PREFIX_TOKENS`) is
  cached when it is at least the model's minimum (:func:`~rag_core.answer.prompt.min_cache_tokens`):
  the first call of each prompt writes it (1.25× the input price), every later one reads it (0.1×).
  Shorter prefixes are billed in full. Answer prompts are not cached (their system prompt is far
  below the minimum).
- Batch mode: answers *and* judge calls go through Message Batches,
  :data:`~rag_core.summary.BATCH_DISCOUNT` of the price (caching applies inside batches too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rag_core.answer.prompt import min_cache_tokens
from rag_core.runs.summary import CACHE_READ_FACTOR, CACHE_WRITE_FACTOR
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
    "JUDGE_PREFIX_TOKENS",
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
JUDGE_PREFIX_TOKENS: dict[str, int] = {
    "statements": 730,
    "verdicts": 1225,
    "questions": 780,
    "precision": 1330,
    "recall": 1900,
}
"""Static prefix of each judge prompt (tool schema + data-only system prompt + RAGAS' instructions
and examples), tokens at characters / 4, measured on ragas 0.4.3: faithfulness' two calls
(statements, then verdicts), answer relevancy's question generation, context precision's per-chunk
verdict, context recall's classification. Checked against the real prompts by the tests."""
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
    """Estimated prompt tokens billed at the full input price, over all calls."""
    output_tokens: int
    """Estimated completion tokens over all calls."""
    cost_usd: float
    """Estimated price in USD (answer model + judge model), with prompt-cache and batch prices."""
    cache_write_tokens: int = 0
    """Judge prompt tokens written to the prompt cache (1.25× the input price)."""
    cache_read_tokens: int = 0
    """Judge prompt tokens read from the prompt cache (0.1× the input price)."""
    full_price_usd: float = 0.0
    """The same calls without prompt caching and without the batch discount."""

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
    ``backend`` is Claude. Judge (``suite == "judge"``): per question and repeat, each chosen
    metric's registry call count (faithfulness 2, answer relevancy 3, context precision ``top_k``,
    context recall 1), with the prompt-cache prices of the module docstring, plus one decline check
    per question (key facts and declines are scored with every suite; with the judge suite Claude
    checks the declines, once per answer, not per repeat). In ``batch`` mode
    both cost :data:`~rag_core.summary.BATCH_DISCOUNT` of the price. ``context_chars`` per
    retrieved chunk defaults to ``settings.chunk_size`` (the largest a chunk can be).
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

    judge_calls = j_in = j_out = j_write = j_read = j_full_in = 0
    if suite == Suite.JUDGE:
        chosen = [metric(m, Suite.JUDGE) for m in metrics] if metrics else list(suite_metrics(Suite.JUDGE))
        q, a = QUESTION_TOKENS, ANSWER_TOKENS
        # per question: (prompt kind, calls, dynamic tokens per call, output tokens per call)
        recipe: list[tuple[str, int, int, int]] = []
        for spec in chosen:
            calls = spec.judge_calls(k)
            judge_calls += n * repeats * calls
            if spec.name == "faithfulness":  # statements from the answer, then verdicts vs the context
                recipe += [("statements", 1, q + a, FAITHFULNESS_OUTPUT_TOKENS)]
                recipe += [("verdicts", 1, context_tokens + a, FAITHFULNESS_OUTPUT_TOKENS)]
            elif spec.name == "answer_relevancy":  # questions generated from the answer
                recipe += [("questions", calls, a, JUDGE_OUTPUT_TOKENS)]
            elif spec.name == "context_precision":  # one chunk per call, against the reference
                recipe += [("precision", calls, q + a + chunk_tokens, JUDGE_OUTPUT_TOKENS)]
            else:  # context recall: the whole context once, against the reference
                recipe += [("recall", calls, q + a + context_tokens, JUDGE_OUTPUT_TOKENS)]
        cache_min = min_cache_tokens(settings.judge_model)
        for kind, calls, dynamic, out in recipe:
            total = n * repeats * calls
            prefix = JUDGE_PREFIX_TOKENS[kind]
            j_full_in += total * (prefix + dynamic)
            j_out += total * out
            j_in += total * dynamic
            if settings.prompt_cache and prefix >= cache_min and total:
                j_write += prefix  # the first call of this prompt writes the cache, the rest read it
                j_read += (total - 1) * prefix
            else:
                j_in += total * prefix
        # One Claude decline check per answer (not per repeat), uncached.
        decline_in = n * (DECLINE_CHECK_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS)
        judge_calls += n
        j_in += decline_in
        j_full_in += decline_in
        j_out += n * DECLINE_CHECK_OUTPUT_TOKENS

    discount = BATCH_DISCOUNT if mode == Mode.BATCH else 1.0
    cost = full = 0.0
    if answer_calls:
        answer_cost = settings.cost_usd(settings.answer_model, a_in, a_out)
        cost += answer_cost * discount
        full += answer_cost
    if judge_calls:
        p_in, p_out = settings.price(settings.judge_model)
        judge_cost = (
            j_in * p_in
            + j_write * p_in * CACHE_WRITE_FACTOR
            + j_read * p_in * CACHE_READ_FACTOR
            + j_out * p_out
        ) / 1_000_000
        cost += judge_cost * discount
        full += settings.cost_usd(settings.judge_model, j_full_in, j_out)
    return CostEstimate(
        answer_calls=answer_calls,
        judge_calls=judge_calls,
        input_tokens=a_in + j_in,
        output_tokens=a_out + j_out,
        cost_usd=round(cost, 4),
        cache_write_tokens=j_write,
        cache_read_tokens=j_read,
        full_price_usd=round(full, 4),
    )
