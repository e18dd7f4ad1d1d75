"""Cost estimates before a run (rag_core.runs.cost): calls per mode and metric, batch price."""

from __future__ import annotations

import pytest

from rag_core.runs.cost import (
    ANSWER_TOKENS,
    DECLINE_CHECK_OUTPUT_TOKENS,
    DECLINE_CHECK_PROMPT_TOKENS,
    JUDGE_PREFIX_TOKENS,
    QUESTION_TOKENS,
    estimate_run,
)
from rag_core.settings import Settings
from rag_core.vocab import suite_metrics


def test_offline_run_costs_nothing(settings: Settings) -> None:
    est = estimate_run(
        settings, n_questions=10, backend="offline", mode="async", suite="offline", metrics=None, top_k=4
    )
    assert (est.calls, est.input_tokens, est.cost_usd) == (0, 0, 0.0)
    assert not est.uses_claude


def test_claude_answers_one_call_per_question_two_in_compare(settings: Settings) -> None:
    kw = dict(n_questions=10, backend="claude", suite="none", metrics=None, top_k=4)
    assert estimate_run(settings, mode="async", **kw).answer_calls == 10
    assert estimate_run(settings, mode="sequential", **kw).answer_calls == 10
    compare = estimate_run(settings, mode="compare", **kw)
    assert compare.answer_calls == 20 and compare.judge_calls == 0
    # tokens ≈ chars / 4: 4 chunks of chunk_size chars dominate the prompt
    assert compare.input_tokens >= 20 * 4 * settings.chunk_size / 4
    expected = settings.cost_usd(settings.answer_model, compare.input_tokens, compare.output_tokens)
    assert compare.cost_usd == pytest.approx(expected, abs=1e-4)


def test_batch_mode_answers_cost_half(settings: Settings) -> None:
    kw = dict(n_questions=10, backend="claude", suite="none", metrics=None, top_k=4)
    normal = estimate_run(settings, mode="async", **kw)
    batch = estimate_run(settings, mode="batch", **kw)
    assert batch.answer_calls == normal.answer_calls == 10
    assert batch.cost_usd == pytest.approx(normal.cost_usd / 2, abs=1e-4)


def test_judge_calls_follow_the_metric_recipe(settings: Settings) -> None:
    assert [m.judge_calls(5) for m in suite_metrics("judge")] == [2, 3, 5, 1]
    est = estimate_run(
        settings,
        n_questions=10,
        backend="offline",
        mode="async",
        suite="judge",
        metrics=None,
        top_k=5,
        judge_repeats=2,
    )
    assert est.answer_calls == 0
    # metric calls per question and repeat, plus one decline check per question (never repeated)
    assert est.judge_calls == 10 * 2 * (2 + 3 + 5 + 1) + 10
    only = estimate_run(
        settings,
        n_questions=10,
        backend="offline",
        mode="async",
        suite="judge",
        metrics=["faithfulness"],
        top_k=5,
    )
    assert only.judge_calls == 20 + 10
    assert 0 < only.cost_usd < est.cost_usd


def test_suite_metrics_come_from_the_registry() -> None:
    assert [m.name for m in suite_metrics("offline")] == ["semantic_similarity", "rouge_l", "context_recall"]
    assert suite_metrics("none") == ()
    with pytest.raises(ValueError):
        suite_metrics("vibes")


def test_judge_cost_prices_the_prompt_cache_and_message_batches(settings: Settings) -> None:
    kw = dict(n_questions=100, backend="offline", suite="judge", metrics=None, top_k=4)
    plain = estimate_run(settings.replace(prompt_cache=False), mode="async", **kw)
    cached = estimate_run(settings, mode="async", **kw)
    batch = estimate_run(settings, mode="batch", **kw)
    assert plain.cache_read_tokens == plain.cache_write_tokens == 0
    assert plain.cost_usd == pytest.approx(plain.full_price_usd, abs=1e-4)
    # prefixes ≥ 1,024 tokens (verdicts, precision, recall) are written once each, then read
    assert cached.cache_write_tokens == sum(
        JUDGE_PREFIX_TOKENS[k] for k in ("verdicts", "precision", "recall")
    )
    assert cached.cache_read_tokens > 50 * cached.cache_write_tokens
    assert cached.input_tokens + cached.cache_read_tokens + cached.cache_write_tokens == plain.input_tokens
    # the one decline check per answer is too short to cache: compare the metrics' calls alone
    declines = settings.cost_usd(
        settings.judge_model,
        100 * (DECLINE_CHECK_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS),
        100 * DECLINE_CHECK_OUTPUT_TOKENS,
    )
    assert cached.cost_usd - declines < 0.75 * (plain.cost_usd - declines)
    assert cached.full_price_usd == plain.full_price_usd
    assert batch.cost_usd == pytest.approx(cached.cost_usd / 2, abs=1e-3)
    assert batch.cost_usd <= 0.4 * plain.cost_usd
    haiku = settings.replace(judge_model="claude-haiku-4-5")  # 2,048-token minimum: nothing cached
    assert estimate_run(haiku, mode="async", **kw).cache_read_tokens == 0
