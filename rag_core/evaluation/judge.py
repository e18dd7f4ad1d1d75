"""The ``judge`` suite: RAGAS LLM metrics judged by Claude (needs a key), and its judge client.

RAGAS 0.4 collections metrics ``Faithfulness``, ``AnswerRelevancy`` (local embeddings),
``ContextPrecisionWithReference`` (ground truth as reference) and ``ContextRecall``, over the judge
LLM client of :mod:`rag_core.evaluation.judge_client` (one per event loop and configuration): each
Claude call a metric makes is one engine call with its own slot, timeout and retry budget (or one
request of a Message Batch round in batch mode), under the data-only rule and prompt-cache layout
of :mod:`rag_core.evaluation.judge_prompt`. A metric fails only when one of its calls fails for
good, and the message names the call. RAGAS' explanations
(faithfulness verdicts per statement, generated questions, per-chunk verdicts, recall
classifications) are kept as :attr:`MetricScore.reason` (compact JSON, :mod:`~rag_core.evaluation.reasons`).

Nothing here raises a third-party exception: anthropic / ragas errors are mapped to
:mod:`rag_core.errors` (:func:`_judge_error`; API errors through :mod:`rag_core.answer.api_errors`).
:func:`judge_calls` is the one owner of how many Claude calls a judged answer costs.
"""

from __future__ import annotations

import hashlib
import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from rag_core.answer.api_errors import map_api_error, redact
from rag_core.errors import EvaluationError, InputError, RagError
from rag_core.evaluation.base import (
    _TRACE,
    JUDGE_METRICS,
    Sample,
    Suite,
    _clip01,
    _Embedder,
    _Judgement,
    _missing,
    _pick,
    _ragas_version,
    _Trace,
)
from rag_core.evaluation.embedding import _embedding_cls
from rag_core.evaluation.judge_client import JUDGE_PARSE_RETRIES, _JudgeKit, build_kit
from rag_core.evaluation.judge_prompt import reuse_static_prompt
from rag_core.evaluation.reasons import _cut, _reason
from rag_core.models import MetricScore
from rag_core.settings import Settings
from rag_core.vocab import ANSWER_RELEVANCY_STRICTNESS
from rag_core.vocab import Suite as SuiteName
from rag_core.vocab import metric as metric_spec

__all__ = ["ANSWER_RELEVANCY_STRICTNESS", "JUDGE_PARSE_RETRIES", "JudgeSuite", "judge_calls"]


_JUDGE_CLASSES = {
    "faithfulness": "Faithfulness",
    "answer_relevancy": "AnswerRelevancy",
    "context_precision": "ContextPrecisionWithReference",
    "context_recall": "ContextRecall",
}


_KITS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _JudgeKit]] = weakref.WeakKeyDictionary()
_KITS_LOCK = threading.Lock()


class JudgeSuite(Suite):
    """RAGAS LLM metrics judged by Claude (see module docstring). Needs ``settings.api_key``."""

    name = "judge"
    cacheable = True

    def __init__(
        self, settings: Settings, metrics: Sequence[str] | None = None, *, embedder: _Embedder | None = None
    ) -> None:
        """Raises :class:`InputError` when no API key is configured or a metric is unknown."""
        if not settings.has_key:
            raise InputError(
                "The judge metrics need an Anthropic API key: set ANTHROPIC_API_KEY (or add it to "
                ".streamlit/secrets.toml), or choose the offline metrics."
            )
        self.settings = settings
        self.metrics = _pick(metrics, JUDGE_METRICS, "judge")
        self.model = settings.judge_model
        self._emb = _embedding_cls()(embedder)
        self._metrics: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

    def versions(self) -> dict[str, str]:
        v = _ragas_version()
        return {m: f"ragas-{v}:{_JUDGE_CLASSES[m]}" for m in self.metrics}

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        if metric == "faithfulness":
            return _missing(metric, sample, answer=True, contexts=True)
        if metric == "answer_relevancy":
            return _missing(metric, sample, answer=True)
        if metric == "context_precision":
            return _missing(metric, sample, truth=True, contexts=True)
        early = _missing(metric, sample, truth=True)  # context_recall
        if early is None and not any(c.strip() for c in sample.contexts):
            return MetricScore(metric=metric, value=0.0, reason="nothing was retrieved")
        return early

    def expected_calls(self, metric: str, sample: Sample) -> int:
        return judge_calls(metric, len(sample.contexts))

    # -- one client per event loop --------------------------------------------------------------
    def _metric(self, metric: str) -> Any:
        """The RAGAS metric object for the running loop, on that loop's shared judge client."""
        import asyncio

        loop = asyncio.get_running_loop()
        s = self.settings
        key_digest = hashlib.sha256((s.api_key.get() or "").encode()).hexdigest()[:16]
        cfg = (key_digest, s.base_url, s.judge_model, s.judge_max_tokens, s.request_timeout_s, s.prompt_cache)
        with _KITS_LOCK:
            per_loop = _KITS.setdefault(loop, {})
            kit = per_loop.get(cfg)
            if kit is None:
                kit = per_loop[cfg] = build_kit(s)
            mine = self._metrics.setdefault(loop, {})
            if metric not in mine:  # metric objects are cheap; the client is what must be shared
                mine[metric] = self._build_metric(metric, kit.llm)
            return mine[metric]

    def _build_metric(self, metric: str, llm: Any) -> Any:
        from ragas.metrics import collections as mc

        if metric == "answer_relevancy":
            m = mc.AnswerRelevancy(llm=llm, embeddings=self._emb, strictness=ANSWER_RELEVANCY_STRICTNESS)
        else:
            m = getattr(mc, _JUDGE_CLASSES[metric])(llm=llm)
        for attr in ("prompt", "statement_generator_prompt", "nli_statement_prompt"):
            if hasattr(m, attr):
                reuse_static_prompt(getattr(m, attr))
        return m

    # -- scoring ------------------------------------------------------------------------------
    async def score(self, metric: str, sample: Sample) -> _Judgement:
        trace = _TRACE.get()
        if trace is None:  # called directly, not through submit_scoring: trace locally
            trace = _Trace()
            token = _TRACE.set(trace)
        else:
            token = None
        trace.metric = trace.metric or metric
        try:
            m = self._metric(metric)
            trace.outputs.clear()
            q, a, ctx, gt = sample.question, sample.answer, list(sample.contexts), sample.ground_truth
            if metric == "faithfulness":
                result = await m.ascore(user_input=q, response=a, retrieved_contexts=ctx)
            elif metric == "answer_relevancy":
                result = await m.ascore(user_input=q, response=a)
            elif metric == "context_precision":
                result = await m.ascore(user_input=q, reference=gt, retrieved_contexts=ctx)
            else:
                result = await m.ascore(user_input=q, retrieved_contexts=ctx, reference=gt)
        except Exception as exc:
            raise _judge_error(exc, metric, self.settings) from exc
        finally:
            if token is not None:
                _TRACE.reset(token)
        reason = _reason(metric, trace.outputs)
        value = result.value
        if value is None or not math.isfinite(float(value)):
            raise EvaluationError(_NAN_REASONS.get(metric, f"{metric}: RAGAS returned no value (NaN)."))
        return _Judgement(_clip01(value, metric), reason)


_NAN_REASONS = {
    "faithfulness": "faithfulness: the judge found no factual statements in the answer to check.",
    "context_recall": "context_recall: the judge found no statements in the ground truth to look for.",
    "context_precision": "context_precision: the judge gave no verdicts for the retrieved chunks.",
    "answer_relevancy": "answer_relevancy: the judge generated no questions from the answer.",
}


def _judge_error(exc: BaseException, metric: str, settings: Settings) -> RagError:
    """Map what a RAGAS metric raised to the project's tree (messages for analysts).

    A :class:`RagError` anywhere in the exception chain (a judge call that failed for good, a
    malformed or truncated judge answer — raised by the judge client) keeps its class, so a
    rejected key stays fatal, with the metric named first; a raw ``anthropic`` error goes through
    :func:`~rag_core.answer.api_errors.map_api_error`; anything else (RAGAS refusing a sample) is
    described, redacted by :func:`~rag_core.answer.api_errors.redact`.
    """
    import anthropic

    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 10 and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    ours = next((x for x in chain if isinstance(x, RagError)), None)
    if ours is not None:
        return type(ours)(redact(f"{metric}: {ours}", settings.api_key.get()), retry_after=ours.retry_after)
    api = next((x for x in chain if isinstance(x, anthropic.APIError)), None)
    if api is not None:
        return map_api_error(
            api,
            model=settings.judge_model,
            base_url=settings.base_url,
            timeout_s=settings.request_timeout_s,
            secret=settings.api_key.get(),
        )
    detail = _cut(redact(str(exc), settings.api_key.get()), 200)
    if isinstance(exc, ValueError):
        return EvaluationError(f"{metric}: RAGAS refused the sample: {detail}")
    return EvaluationError(f"{metric} could not be computed: {type(exc).__name__}: {detail}")


def judge_calls(metric: str, n_contexts: int) -> int:
    """Claude calls one judged answer costs for ``metric`` (the registry's count:
    :meth:`rag_core.vocab.MetricSpec.judge_calls`); 0 for a metric not judged by Claude."""
    spec = metric_spec(metric, SuiteName.JUDGE)
    return spec.judge_calls(n_contexts) if spec.suite == SuiteName.JUDGE else 0
