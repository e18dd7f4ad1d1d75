"""Phase 2: score answers with a metric suite, through the engine, with a judge cache.

Two suites share one interface (:class:`Suite`) and one entry point (:func:`submit_scoring`):

``offline`` (the default without an API key; no network, deterministic)
    - ``semantic_similarity`` — RAGAS ``SemanticSimilarity`` (collections API) with our local
      MiniLM embeddings wrapped as a RAGAS ``BaseRagasEmbedding``: cosine of answer vs ground truth.
    - ``rouge_l`` — RAGAS ``RougeScore(rouge_type="rougeL", mode="fmeasure")``, answer vs ground truth.
    - ``context_recall`` — **hand-written**, because RAGAS' ``NonLLMContextRecall`` compares the
      retrieved contexts with *reference contexts* (which an analyst's question set does not
      have) and exists only in the deprecated pre-collections API. Ours is the non-LLM analogue
      of RAGAS' LLM ``ContextRecall``: the fraction of ground-truth sentences attributable to the
      retrieved context, where "attributable" means the sentence's embedding has cosine ≥
      :data:`CONTEXT_RECALL_THRESHOLD` with some sentence (or whole chunk) of the context.

``judge`` (Claude as judge; needs a key)
    RAGAS 0.4 collections metrics ``Faithfulness``, ``AnswerRelevancy`` (local embeddings),
    ``ContextPrecisionWithReference`` (ground truth as reference) and ``ContextRecall``, with an
    ``llm_factory(judge_model, provider="anthropic", client=AsyncAnthropic(...))`` LLM whose
    ``temperature``/``top_p`` are removed (anthropic 2.x rejects them with some models) and whose
    ``max_tokens`` is ``settings.judge_max_tokens``. One client per event loop, SDK retries off:
    the engine owns retries, timeouts, concurrency, cancel and progress. RAGAS' explanations
    (faithfulness verdicts per statement, generated questions, per-chunk verdicts, recall
    classifications) are kept as :attr:`MetricScore.reason` (compact JSON).

Every (sample, metric[, repeat]) is one engine job; jobs are submitted longest-first (by the
number of sequential judge calls they make) so the batch's critical path starts first.

Contracts
- Failures are never zeros: a metric that cannot be computed (no ground truth, nothing to judge,
  NaN from RAGAS, an API error after the engine's retries, cancellation) is a
  ``MetricScore(value=None, error=<reason>)``. Values are finite and in [0, 1].
- The judge cache (``HistoryStore.judge_cache_get/put``) is keyed by the sha256 of metric, metric
  version, judge model, question, answer, contexts, ground truth and repeat index. A hit costs no
  API call; ``fresh=True`` skips reads but still writes. Failures are never cached. The offline
  suite is not cached (it is cheap and deterministic).
- Nothing here raises a third-party exception: judge errors are mapped to :mod:`rag_core.errors`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import statistics
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import numpy as np

from rag_core.engine.core import BatchHandle, BatchPolicy, Engine, ItemResult, Progress
from rag_core.errors import (
    EvaluationError,
    InputError,
    RagError,
)
from rag_core.models import MetricScore, RequestTiming
from rag_core.settings import Settings

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas phones home otherwise

log = logging.getLogger(__name__)

__all__ = [
    "CONTEXT_RECALL_THRESHOLD",
    "JUDGE_METRICS",
    "OFFLINE_METRICS",
    "SUITES",
    "JudgeSuite",
    "OfflineSuite",
    "Sample",
    "ScoringBatch",
    "ScoringOutcome",
    "Suite",
    "judge_summary",
    "make_suite",
    "submit_scoring",
    "suite_mismatch",
    "summarize",
]

SUITES: tuple[str, ...] = ("offline", "judge")
OFFLINE_METRICS: tuple[str, ...] = ("semantic_similarity", "rouge_l", "context_recall")
JUDGE_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")

CONTEXT_RECALL_THRESHOLD = 0.6
"""Cosine at or above which a ground-truth sentence counts as present in the retrieved context.

Why 0.6 with all-MiniLM-L6-v2 (L2-normalised, so cosine = dot product), measured on the sample
handbook's 9 covered ground truths (15 sentences): against the handbook section that states the
fact, every sentence's best match scored 0.63–0.99 (median ≈ 0.8: paraphrases, "staff" vs
"employees", reordered clauses); against the best *other* section it scored 0.36–0.68 (median
≈ 0.5: same HR vocabulary, different fact). 0.6 sits between the two medians, just under the
lowest true match, so the score means "the retrieved text states this", not "it is about the
same topic". The uncovered question's ground truth ("not covered") peaks at 0.43 → recall 0.
"""

MAX_REASON_CHARS = 4000
"""Longest reason kept per score (JSON is shortened item by item, never cut mid-token)."""
JUDGE_PARSE_RETRIES = 1
"""instructor re-asks once when the judge's tool call does not match RAGAS' schema (one more call)."""
ANSWER_RELEVANCY_STRICTNESS = 3
"""Questions AnswerRelevancy generates per answer (RAGAS' default): 3 sequential judge calls."""
_EMBED_MEMO_SIZE = 4096


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One answered question to score. Empty strings mean "absent" (no answer / no ground truth)."""

    question: str
    """The question asked."""
    answer: str
    """The answer produced ('' when there is none: answer-based metrics then fail)."""
    contexts: list[str]
    """Texts of the retrieved chunks, best first ([] when nothing was retrieved)."""
    ground_truth: str
    """The analyst's expected answer ('' when unknown: reference-based metrics then fail)."""


@dataclass(frozen=True)
class _Judgement:
    """What one job produced: a finite value in [0, 1] and an optional explanation."""

    value: float
    reason: str | None = None


@dataclass
class ScoringOutcome:
    """Everything a finished (or cancelled) scoring batch produced."""

    scores: list[dict[str, MetricScore]]
    """Per sample, in input order: metric name → score (every metric of the suite is present)."""
    calls: int
    """API calls made (judge requests, including instructor re-asks and engine retries)."""
    cache_hits: int
    """Judgements served from the judge cache (one per (sample, metric, repeat))."""
    timings: list[RequestTiming]
    """One per job that started, ``phase="evaluation"``, ``index`` = sample position."""
    elapsed_s: float = 0.0
    """Wall time from submission to the end of the batch, seconds."""
    input_tokens: int = 0
    """Judge prompt tokens billed (0 for the offline suite and for cache hits)."""
    output_tokens: int = 0
    """Judge completion tokens billed."""
    cancelled: bool = False
    """True when :meth:`ScoringBatch.cancel` was called before the batch finished."""


class _Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Local embeddings as a RAGAS embeddings object
# --------------------------------------------------------------------------------------------
def _ragas_embedding_class() -> type:
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalRagasEmbedding(BaseRagasEmbedding):
        """Our offline MiniLM embedder behind RAGAS' modern embeddings interface.

        Sync methods run inline (callers put them on a worker thread); async methods hop to a
        worker thread so the event loop is never blocked by ONNX inference. A small LRU memo
        avoids embedding the same text twice within a run (e.g. a question across metrics).
        """

        def __init__(self, embedder: _Embedder | None = None) -> None:
            super().__init__(cache=None)
            self._embedder = embedder
            self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
            self._lock = threading.Lock()

        @property
        def embedder(self) -> _Embedder:
            if self._embedder is None:
                from rag_core.ingest.embeddings import get_embedder

                self._embedder = get_embedder()
            return self._embedder

        def vectors(self, texts: list[str]) -> np.ndarray:
            """(n, d) float32 L2-normalised vectors, one batched call for the texts not memoised."""
            keys = [t or " " for t in texts]
            with self._lock:
                missing = list(dict.fromkeys(k for k in keys if k not in self._memo))
            if missing:
                got = np.asarray(self.embedder.embed(missing), dtype=np.float32)
                with self._lock:
                    for k, v in zip(missing, got, strict=True):
                        self._memo[k] = v
                        self._memo.move_to_end(k)
                    while len(self._memo) > _EMBED_MEMO_SIZE:
                        self._memo.popitem(last=False)
                    fresh = dict(zip(missing, got, strict=True))
            else:
                fresh = {}
            with self._lock:
                rows = [fresh[k] if k in fresh else self._memo[k] for k in keys]
            return np.stack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.vectors([text])[0].tolist()

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.vectors(list(texts)).tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return (await anyio.to_thread.run_sync(self.vectors, [text]))[0].tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return (await anyio.to_thread.run_sync(self.vectors, list(texts))).tolist()

    return LocalRagasEmbedding


@functools.cache
def _embedding_cls() -> type:
    return _ragas_embedding_class()


def _ragas_version() -> str:
    import ragas

    return str(ragas.__version__)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an ``async def`` that never awaits anything to completion, synchronously.

    RAGAS' non-LLM collections metrics (``RougeScore``, ``SemanticSimilarity``) are ``async``
    wrappers around synchronous CPU code; stepping them here lets us run them on a worker thread
    (no event loop needed, no ``asyncio.run``). Raises :class:`EvaluationError` if the coroutine
    does suspend (a future RAGAS version that awaits something would need a different path).
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise EvaluationError("Internal: an offline metric tried to wait for I/O; it must be CPU-only.")


def _clip01(value: Any, what: str) -> float:
    """A finite float in [0, 1], or EvaluationError (NaN/inf/None never become a score)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EvaluationError(f"{what} returned a non-numeric value ({value!r}).") from None
    if not math.isfinite(v):
        raise EvaluationError(f"{what} returned no value (NaN): there was nothing it could judge.")
    return min(1.0, max(0.0, v))


def _split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of ``text``, whitespace-normalised; at most 200.

    Fragments under four words ("Yes.", "No,") carry no checkable fact on their own and are
    joined to the following sentence.
    """
    parts = re.split(r"(?<=[.!?;])\s+|\n{2,}|\n(?=\s*(?:[-*•]|\d+[.)])\s)", text or "")
    out: list[str] = []
    carry = ""
    for p in parts:
        p = " ".join(f"{carry} {p}".split())
        carry = ""
        if len(p.split()) < 4:
            carry = p
            continue
        out.append(p)
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        elif len(carry) >= 2:
            out.append(carry)
    return out[:200]


def _shorten_json(payload: dict[str, Any], list_key: str) -> str:
    """JSON of payload, dropping items of payload[list_key] from the end to fit MAX_REASON_CHARS."""
    text = json.dumps(payload, ensure_ascii=False)
    items = payload.get(list_key)
    if not isinstance(items, list):
        return text[:MAX_REASON_CHARS]
    kept = list(items)
    while len(text) > MAX_REASON_CHARS and kept:
        kept.pop()
        text = json.dumps(payload | {list_key: kept, "omitted": len(items) - len(kept)}, ensure_ascii=False)
    return text[:MAX_REASON_CHARS]


def _cut(s: Any, n: int = 300) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------
class Suite:
    """A named set of metrics scored per sample. Subclasses implement :meth:`score`.

    ``name`` is ``"offline"`` or ``"judge"``; ``metrics`` the metric names in display order;
    ``model`` the judge model (None offline); ``cacheable`` whether results go to the judge cache.
    """

    name: str = ""
    metrics: tuple[str, ...] = ()
    model: str | None = None
    cacheable: bool = False
    _emb: Any = None

    def versions(self) -> dict[str, str]:
        """Metric name → version string recorded with each run (library version + class)."""
        raise NotImplementedError

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        """A final score decided without computing (e.g. "no ground truth"), or None to compute."""
        return None

    def expected_calls(self, metric: str, sample: Sample) -> int:
        """Sequential API calls one job for ``metric`` makes (0 offline). Used to order jobs."""
        return 0

    def warm(self) -> None:
        """Import RAGAS and load the local embedding model now (≈3–5 s the first time in a
        process), e.g. from a background thread during phase 1. Optional; idempotent; raises
        :class:`RagError` if the embedding model cannot be loaded."""
        from ragas.metrics import collections  # noqa: F401

        if "rouge_l" in self.metrics:
            from rouge_score import rouge_scorer  # noqa: F401
        if self.name == "offline" or "answer_relevancy" in self.metrics:
            self._emb.embedder  # noqa: B018  (loads the model)

    async def score(self, metric: str, sample: Sample) -> _Judgement:
        """Compute one metric for one sample. Raises a :class:`RagError` subclass on failure."""
        raise NotImplementedError

    def cache_key(self, metric: str, sample: Sample, repeat: int) -> str:
        """sha256 hex of everything that determines a judgement (see module docstring)."""
        payload = json.dumps(
            [
                metric,
                self.versions().get(metric, ""),
                self.model,
                sample.question,
                sample.answer,
                list(sample.contexts),
                sample.ground_truth,
                int(repeat),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _missing(
    metric: str, sample: Sample, *, answer: bool = False, truth: bool = False, contexts: bool = False
) -> MetricScore | None:
    if answer and not sample.answer.strip():
        return MetricScore(metric=metric, value=None, error="no answer to score")
    if truth and not sample.ground_truth.strip():
        return MetricScore(
            metric=metric,
            value=None,
            error="no ground truth: add an expected answer to this question to score it",
        )
    if contexts and not any(c.strip() for c in sample.contexts):
        return MetricScore(metric=metric, value=None, error="nothing was retrieved for this question")
    return None


class OfflineSuite(Suite):
    """Non-LLM metrics, computed locally on worker threads (see module docstring)."""

    name = "offline"
    cacheable = False

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        *,
        embedder: _Embedder | None = None,
        threshold: float = CONTEXT_RECALL_THRESHOLD,
    ) -> None:
        """``embedder``: anything with ``embed(texts) -> (n, d)`` normalised vectors (default:
        :func:`rag_core.embeddings.get_embedder`, loaded on first use)."""
        self.metrics = _pick(metrics, OFFLINE_METRICS, "offline")
        self.threshold = float(threshold)
        self._emb = _embedding_cls()(embedder)
        self._lock = threading.Lock()
        self._ragas: dict[str, Any] = {}

    def _metric(self, name: str) -> Any:
        with self._lock:
            if name not in self._ragas:
                from ragas.metrics.collections import RougeScore, SemanticSimilarity

                if name == "semantic_similarity":
                    self._ragas[name] = SemanticSimilarity(embeddings=self._emb)
                else:
                    self._ragas[name] = RougeScore(rouge_type="rougeL", mode="fmeasure")
            return self._ragas[name]

    def versions(self) -> dict[str, str]:
        v = _ragas_version()
        emb = getattr(self._emb._embedder, "name", None)
        if not emb:
            from rag_core.ingest.embeddings import MODEL_ID

            emb = MODEL_ID
        table = {
            "semantic_similarity": f"ragas-{v}:SemanticSimilarity+{emb}",
            "rouge_l": f"ragas-{v}:RougeScore(rougeL,fmeasure)",
            "context_recall": f"rag_core-1:EmbeddingContextRecall(t={self.threshold:g})+{emb}",
        }
        return {m: table[m] for m in self.metrics}

    def precheck(self, metric: str, sample: Sample) -> MetricScore | None:
        if metric == "context_recall":
            early = _missing(metric, sample, truth=True)
            if early is None and not any(c.strip() for c in sample.contexts):
                return MetricScore(metric=metric, value=0.0, reason="nothing was retrieved")
            return early
        return _missing(metric, sample, answer=True, truth=True)

    async def score(self, metric: str, sample: Sample) -> _Judgement:
        if metric == "context_recall":
            return await anyio.to_thread.run_sync(self._context_recall, sample)
        return await anyio.to_thread.run_sync(self._reference_metric, metric, sample)

    def _reference_metric(self, metric: str, sample: Sample) -> _Judgement:
        m = self._metric(metric)
        try:
            result = _drive(m.ascore(reference=sample.ground_truth, response=sample.answer))
        except RagError:
            raise
        except Exception as exc:
            raise EvaluationError(f"{metric} could not be computed: {type(exc).__name__}: {exc}") from exc
        value = _clip01(result.value, metric)
        if metric == "semantic_similarity":
            return _Judgement(value, "cosine similarity of answer and ground truth embeddings")
        return _Judgement(value, "ROUGE-L F-measure of answer vs ground truth (longest common subsequence)")

    def _context_recall(self, sample: Sample) -> _Judgement:
        truth = _split_sentences(sample.ground_truth)
        if not truth:
            raise EvaluationError("no ground truth: the expected answer has no sentence to look for")
        units: list[str] = []
        for chunk in sample.contexts:
            units.extend(_split_sentences(chunk))
            if chunk.strip():
                units.append(" ".join(chunk.split()))
        try:
            vecs = self._emb.vectors(truth + units)
        except RagError:
            raise
        except Exception as exc:
            raise EvaluationError(f"context_recall: the embedding model failed: {exc}") from exc
        t, c = vecs[: len(truth)], vecs[len(truth) :]
        best = (t @ c.T).max(axis=1) if len(units) else np.zeros(len(truth), dtype=np.float32)
        hits = [bool(b >= self.threshold) for b in best]
        value = sum(hits) / len(hits)
        reason = _shorten_json(
            {
                "threshold": self.threshold,
                "sentences": [
                    {"sentence": _cut(s, 200), "best_similarity": round(float(b), 3), "attributed": h}
                    for s, b, h in zip(truth, best, hits, strict=True)
                ],
            },
            "sentences",
        )
        return _Judgement(_clip01(value, "context_recall"), reason)


# --- judge -----------------------------------------------------------------------------------
_JUDGE_CLASSES = {
    "faithfulness": "Faithfulness",
    "answer_relevancy": "AnswerRelevancy",
    "context_precision": "ContextPrecisionWithReference",
    "context_recall": "ContextRecall",
}


@dataclass
class _Trace:
    """Per-job record, reached through a context variable from the SDK/LLM wrappers."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    outputs: list[Any] = field(default_factory=list)


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("rag_core_eval_trace", default=None)


@dataclass
class _JudgeKit:
    """One AsyncAnthropic client and its RAGAS LLM, shared by every judge suite on one loop."""

    client: Any
    llm: Any


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
        cfg = (key_digest, s.base_url, s.judge_model, s.judge_max_tokens, s.request_timeout_s)
        with _KITS_LOCK:
            per_loop = _KITS.setdefault(loop, {})
            kit = per_loop.get(cfg)
            if kit is None:
                kit = per_loop[cfg] = self._build_kit()
            mine = self._metrics.setdefault(loop, {})
            if metric not in mine:  # metric objects are cheap; the client is what must be shared
                mine[metric] = self._build_metric(metric, kit.llm)
            return mine[metric]

    def _build_kit(self) -> _JudgeKit:
        from anthropic import AsyncAnthropic
        from ragas.llms import llm_factory

        s = self.settings
        client = AsyncAnthropic(
            api_key=s.api_key.get(),
            base_url=s.base_url,
            max_retries=0,
            timeout=s.request_timeout_s,
        )
        messages = client.messages
        original = messages.create

        @functools.wraps(original)
        async def counted_create(*args: Any, **kwargs: Any) -> Any:
            trace = _TRACE.get()
            if trace is not None:
                trace.calls += 1
            response = await original(*args, **kwargs)
            usage = getattr(response, "usage", None)
            if trace is not None and usage is not None:  # priced in the run summary
                trace.input_tokens += int(getattr(usage, "input_tokens", 0) or 0)
                trace.output_tokens += int(getattr(usage, "output_tokens", 0) or 0)
            return response

        messages.create = counted_create  # instructor patches this bound method below
        try:
            llm = llm_factory(s.judge_model, provider="anthropic", client=client)
        except Exception as exc:
            raise EvaluationError(f"Could not set up the judge model {s.judge_model!r}: {exc}") from exc
        llm.model_args.pop("temperature", None)
        llm.model_args.pop("top_p", None)
        llm.model_args["max_tokens"] = int(s.judge_max_tokens)
        llm.model_args["max_retries"] = JUDGE_PARSE_RETRIES
        agenerate = llm.agenerate

        async def traced_agenerate(prompt: str, response_model: Any) -> Any:
            out = await agenerate(prompt, response_model)
            trace = _TRACE.get()
            if trace is not None:
                trace.outputs.append(out)
            return out

        llm.agenerate = traced_agenerate
        return _JudgeKit(client=client, llm=llm)

    def _build_metric(self, metric: str, llm: Any) -> Any:
        from ragas.metrics import collections as mc

        if metric == "answer_relevancy":
            return mc.AnswerRelevancy(llm=llm, embeddings=self._emb, strictness=ANSWER_RELEVANCY_STRICTNESS)
        return getattr(mc, _JUDGE_CLASSES[metric])(llm=llm)

    # -- scoring ------------------------------------------------------------------------------
    async def score(self, metric: str, sample: Sample) -> _Judgement:
        trace = _TRACE.get()
        if trace is None:  # called outside submit_scoring (tests): trace locally
            trace = _Trace()
            token = _TRACE.set(trace)
        else:
            token = None
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
        except RagError:
            raise
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


def _reason(metric: str, outputs: list[Any]) -> str | None:
    """RAGAS' structured judge outputs for one job → compact JSON for the drill-down view."""
    dumps = [o.model_dump() if hasattr(o, "model_dump") else o for o in outputs]
    try:
        if metric == "faithfulness":
            verdicts = next(
                (
                    d["statements"]
                    for d in reversed(dumps)
                    if isinstance(d, dict) and d.get("statements") and isinstance(d["statements"][0], dict)
                ),
                [],
            )
            items = [
                {
                    "statement": _cut(v.get("statement", "")),
                    "verdict": int(v.get("verdict", 0)),
                    "reason": _cut(v.get("reason", ""), 200),
                }
                for v in verdicts
            ]
            return _shorten_json({"statements": items}, "statements")
        if metric == "answer_relevancy":
            items = [
                {"question": _cut(d.get("question", "")), "noncommittal": int(d.get("noncommittal", 0))}
                for d in dumps
                if isinstance(d, dict)
            ]
            return _shorten_json({"generated_questions": items}, "generated_questions")
        if metric == "context_precision":
            items = [
                {
                    "chunk": i + 1,
                    "verdict": int(d.get("verdict", 0)),
                    "reason": _cut(d.get("reason", ""), 200),
                }
                for i, d in enumerate(dumps)
                if isinstance(d, dict)
            ]
            return _shorten_json({"chunks": items}, "chunks")
        if metric == "context_recall":
            cls = next((d.get("classifications", []) for d in dumps if isinstance(d, dict)), [])
            items = [
                {
                    "statement": _cut(c.get("statement", "")),
                    "attributed": int(c.get("attributed", 0)),
                    "reason": _cut(c.get("reason", ""), 200),
                }
                for c in cls
            ]
            return _shorten_json({"statements": items}, "statements")
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return _shorten_json({"outputs": dumps}, "outputs") if dumps else None


def _judge_error(exc: BaseException, metric: str, settings: Settings) -> RagError:
    """Map anthropic / instructor / ragas exceptions to the project's tree (messages for analysts)."""
    import anthropic

    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 10 and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    api = next((x for x in chain if isinstance(x, anthropic.APIError)), None)
    if api is not None:
        from rag_core.answer.claude import map_api_error

        return map_api_error(
            api,
            model=settings.judge_model,
            base_url=settings.base_url,
            timeout_s=settings.request_timeout_s,
            secret=settings.api_key.get(),
        )
    if "IncompleteOutputException" in names:
        return EvaluationError(
            f"{metric}: the judge's answer was cut off at max_tokens={settings.judge_max_tokens}; "
            "raise RAG_JUDGE_MAX_TOKENS."
        )
    if "InstructorRetryException" in names or "ValidationError" in names:
        return EvaluationError(
            f"{metric}: the judge's answer did not match the structure RAGAS expects, "
            f"even after {JUDGE_PARSE_RETRIES + 1} attempts."
        )
    if isinstance(exc, ValueError):
        return EvaluationError(f"{metric}: RAGAS refused the sample: {_cut(exc, 200)}")
    return EvaluationError(f"{metric} could not be computed: {type(exc).__name__}: {_cut(exc, 200)}")


def judge_calls(metric: str, n_contexts: int) -> int:
    """Claude calls one judged answer costs for ``metric``: faithfulness 2, answer relevancy
    one per generated question, context precision one per retrieved chunk, context recall 1;
    0 for a metric that is not judged by Claude."""
    return {
        "faithfulness": 2,
        "answer_relevancy": ANSWER_RELEVANCY_STRICTNESS,
        "context_precision": max(1, n_contexts),
        "context_recall": 1,
    }.get(metric, 0)


def _pick(metrics: Sequence[str] | None, allowed: tuple[str, ...], suite: str) -> tuple[str, ...]:
    if not metrics:
        return allowed
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise InputError(
            f"Unknown {suite} metric(s) {', '.join(map(repr, unknown))}: choose from {', '.join(allowed)}."
        )
    return tuple(m for m in allowed if m in set(metrics))


def make_suite(
    name: str, settings: Settings, *, metrics: Sequence[str] | None = None, embedder: _Embedder | None = None
) -> Suite:
    """The suite called ``name`` (``"offline"`` or ``"judge"``), optionally limited to ``metrics``.

    Raises :class:`InputError` for an unknown suite or metric, or ``"judge"`` without an API key.
    ``embedder`` overrides the local embedding model (tests, benchmarks).
    """
    if name == "offline":
        return OfflineSuite(metrics, embedder=embedder)
    if name == "judge":
        return JudgeSuite(settings, metrics, embedder=embedder)
    raise InputError(f"Unknown metric suite {name!r}: choose one of {', '.join(SUITES)}.")


# --------------------------------------------------------------------------------------------
# Scoring batch
# --------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    sample: int
    metric: str
    repeat: int
    key: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _Pair:
    """All repeats of one (sample, metric): outcomes arrive in any order."""

    metric: str
    outcomes: list[tuple[float, str | None, bool] | str | None]
    """Per repeat: (value, reason, cached) on success, an error message, or None while pending."""
    final: MetricScore | None = None


class ScoringBatch:
    """A running scoring batch: :meth:`progress`, :meth:`cancel`, :meth:`wait`. Thread-safe."""

    def __init__(
        self,
        *,
        n_samples: int,
        suite: Suite,
        pairs: dict[tuple[int, str], _Pair],
        units: list[_Unit],
        on_score: Callable[[int, MetricScore], None] | None,
        cache_hits: int,
        pre_ok: int,
        pre_failed: int,
    ) -> None:
        self._n = n_samples
        self._suite = suite
        self._pairs = pairs
        self._units = units
        self._on_score = on_score
        self._cache_hits = cache_hits
        self._pre_ok, self._pre_failed = pre_ok, pre_failed
        self._lock = threading.Lock()
        self._handle: BatchHandle[Any] | None = None
        self._emitter = ThreadPoolExecutor(1, thread_name_prefix="rag-scores") if on_score else None
        self._outcome: ScoringOutcome | None = None
        self._t0 = time.perf_counter()

    # -- public -------------------------------------------------------------------------------
    def progress(self) -> Progress:
        """The engine's progress, with judgements settled up front (cache hits, "no ground
        truth" and the like) counted as done."""
        assert self._handle is not None
        p = self._handle.progress()
        pre = self._pre_ok + self._pre_failed
        return dataclasses.replace(
            p,
            total=p.total + pre,
            done=p.done + pre,
            ok=p.ok + self._pre_ok,
            errors=p.errors + self._pre_failed,
        )

    def cancel(self) -> None:
        """Stop scoring: finished scores are kept; the rest fail with "cancelled". Returns at once."""
        if self._handle is not None:
            self._handle.cancel()

    def done(self) -> bool:
        return self._handle is not None and self._handle.done()

    def wait(self, timeout: float | None = None) -> ScoringOutcome:
        """Block until the batch ends and return the outcome (also after :meth:`cancel`).

        Every ``on_score`` call has returned by then. Raises ``TimeoutError`` when still running
        after ``timeout`` seconds. Must not be called from the engine's loop thread.
        """
        assert self._handle is not None
        results = self._handle.wait(timeout)
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            for r in results:  # on_result already ran for each; this is a no-op safety net
                self._record(r)
            scores: list[dict[str, MetricScore]] = [{} for _ in range(self._n)]
            for (i, metric), pair in self._pairs.items():
                if pair.final is None:
                    pair.final = _aggregate(pair)
                scores[i][metric] = pair.final
            order = {m: k for k, m in enumerate(self._suite.metrics)}
            scores = [dict(sorted(d.items(), key=lambda kv: order.get(kv[0], 99))) for d in scores]
            timings = []
            k = max((u.repeat for u in self._units), default=0) + 1
            for r in results:
                if r.started_at is None:
                    continue
                u = self._units[r.index]
                timings.append(
                    RequestTiming(
                        index=u.sample,
                        phase="evaluation",
                        label=u.metric if k == 1 else f"{u.metric} #{u.repeat + 1}",
                        start=r.started_at,
                        end=r.ended_at or r.started_at,
                        attempts=r.attempts,
                        status=r.status,
                        throttled_s=r.throttled_s,
                        extra={"metric": u.metric, "repeat": u.repeat, "calls": u.calls},
                    )
                )
            p = self._handle.progress()
            self._outcome = ScoringOutcome(
                scores=scores,
                calls=sum(u.calls for u in self._units),
                input_tokens=sum(u.input_tokens for u in self._units),
                output_tokens=sum(u.output_tokens for u in self._units),
                cache_hits=self._cache_hits,
                timings=timings,
                elapsed_s=p.elapsed_s if p.total else time.perf_counter() - self._t0,
                cancelled=p.cancelled,
            )
        if self._emitter is not None:
            self._emitter.shutdown(wait=True)
        return self._outcome

    # -- internals ----------------------------------------------------------------------------
    def _start(
        self, engine: Engine, jobs: list[Callable[[], Any]], labels: list[str], policy: BatchPolicy
    ) -> None:
        for pair_key, pair in self._pairs.items():  # settled up front: emit now
            if all(o is not None for o in pair.outcomes):
                pair.final = _aggregate(pair)
                self._emit(pair_key[0], pair.final)
        self._handle = engine.submit(jobs, labels=labels, policy=policy, on_result=self._on_result)

    def _on_result(self, r: ItemResult) -> None:  # engine loop thread: must be quick
        with self._lock:
            done = self._record(r)
        if done is not None:
            self._emit(*done)

    def _record(self, r: ItemResult) -> tuple[int, MetricScore] | None:
        u = self._units[r.index]
        pair = self._pairs[(u.sample, u.metric)]
        if pair.outcomes[u.repeat] is not None:
            return None
        if r.status == "ok" and isinstance(r.value, _Judgement):
            pair.outcomes[u.repeat] = (r.value.value, r.value.reason, False)
        elif r.status == "cancelled":
            pair.outcomes[u.repeat] = "cancelled before it was scored"
        else:
            pair.outcomes[u.repeat] = r.error or "failed"
        if pair.final is None and all(o is not None for o in pair.outcomes):
            cancelled_only = all(o == "cancelled before it was scored" for o in pair.outcomes)
            pair.final = _aggregate(pair)
            if not cancelled_only:
                return u.sample, pair.final
        return None

    def _emit(self, sample: int, score: MetricScore) -> None:
        if self._emitter is None or self._on_score is None:
            return
        cb = self._on_score

        def call() -> None:
            try:
                cb(sample, score)
            except Exception:
                log.exception("on_score failed for sample %d metric %s", sample, score.metric)

        self._emitter.submit(call)


def _aggregate(pair: _Pair) -> MetricScore:
    """Mean ± stdev over successful repeats; failed repeats are excluded; all failed → failed."""
    ok = [o for o in pair.outcomes if isinstance(o, tuple)]
    if not ok:
        errors = [o for o in pair.outcomes if isinstance(o, str)]
        msg = errors[0] if errors else "cancelled before it was scored"
        if len(pair.outcomes) > 1:
            msg = f"{msg} (all {len(pair.outcomes)} judge repeats failed)"
        return MetricScore(metric=pair.metric, value=None, error=msg)
    values = [v for v, _, _ in ok]
    mean = sum(values) / len(values)
    stdev = statistics.stdev(values) if len(values) >= 2 else None
    reason = ok[0][1]
    if len(pair.outcomes) > 1 and len(ok) < len(pair.outcomes):
        failed = len(pair.outcomes) - len(ok)
        note = (
            f"{len(ok)} of {len(pair.outcomes)} judge repeats succeeded ({failed} failed and were excluded)"
        )
        reason = f"{note}; {reason}" if reason else note
    return MetricScore(
        metric=pair.metric, value=mean, reason=reason, stdev=stdev, cached=all(c for _, _, c in ok)
    )


def submit_scoring(
    samples: Sequence[Sample],
    *,
    suite: Suite,
    engine: Engine,
    policy: BatchPolicy,
    store: Any | None = None,
    fresh: bool = False,
    repeats: int = 1,
    on_score: Callable[[int, MetricScore], None] | None = None,
) -> ScoringBatch:
    """Start scoring ``samples`` with ``suite`` on ``engine``; returns a :class:`ScoringBatch` at once.

    - Judge cache lookups (``store.judge_cache_get``) happen here, before submission: a hit is
      settled without a job. ``fresh=True`` skips lookups; successful judgements are written
      back (``store.judge_cache_put``) from a worker thread in either case. A store error on
      read or write is logged and treated as a miss (scoring never fails because of the cache).
    - ``repeats`` (≥ 1) judges each (sample, metric) K times (cache keys differ per repeat) and
      reports mean and stdev; the offline suite is deterministic, so it always runs once.
    - ``on_score(sample_index, score)`` is called once per finished (sample, metric), from one
      dedicated worker thread (never the loop thread), in completion order; its exceptions are
      logged. (sample, metric) pairs stopped by :meth:`ScoringBatch.cancel` are not reported.
    - ``policy.timeout_s`` is per judge call: a job making n sequential calls gets n × timeout_s.

    Raises :class:`InputError` for ``repeats`` < 1; scoring failures never raise (see
    :class:`ScoringOutcome`).
    """
    if repeats < 1:
        raise InputError("Judge repeats must be at least 1.")
    k = repeats if suite.cacheable else 1
    pairs: dict[tuple[int, str], _Pair] = {}
    units: list[_Unit] = []
    weights: list[int] = []
    hits = pre_ok = pre_failed = 0
    for i, sample in enumerate(samples):
        for metric in suite.metrics:
            pair = pairs[(i, metric)] = _Pair(metric=metric, outcomes=[None] * k)
            early = suite.precheck(metric, sample)
            if early is not None:
                pair.outcomes = [None]
                pair.outcomes[0] = (
                    (early.value, early.reason, False) if early.ok else (early.error or "failed")
                )
                if early.ok:
                    pre_ok += 1
                else:
                    pre_failed += 1
                continue
            for r in range(k):
                key = suite.cache_key(metric, sample, r) if (store is not None and suite.cacheable) else None
                if key is not None and not fresh:
                    hit = _cache_get(store, key)
                    if hit is not None:
                        pair.outcomes[r] = (hit[0], hit[1], True)
                        hits += 1
                        pre_ok += 1
                        continue
                units.append(_Unit(sample=i, metric=metric, repeat=r, key=key))
                weights.append(suite.expected_calls(metric, sample))
    # Longest jobs first: the batch's critical path starts at once (stable for equal weights).
    order = sorted(range(len(units)), key=lambda j: -weights[j])
    units = [units[j] for j in order]
    max_calls = max([weights[j] for j in order], default=1)
    if suite.cacheable and max_calls > 1:
        policy = dataclasses.replace(policy, timeout_s=policy.timeout_s * max_calls)

    batch = ScoringBatch(
        n_samples=len(samples),
        suite=suite,
        pairs=pairs,
        units=units,
        on_score=on_score,
        cache_hits=hits,
        pre_ok=pre_ok,
        pre_failed=pre_failed,
    )
    jobs = [_make_job(suite, samples[u.sample], u, store) for u in units]
    labels = [f"{u.metric} · {samples[u.sample].question[:60]}" for u in units]
    batch._start(engine, jobs, labels, policy)
    return batch


def _make_job(suite: Suite, sample: Sample, unit: _Unit, store: Any | None) -> Callable[[], Any]:
    async def job() -> _Judgement:
        trace = _Trace()
        token = _TRACE.set(trace)
        try:
            result = await suite.score(unit.metric, sample)
        finally:
            _TRACE.reset(token)
            unit.calls += trace.calls
            unit.input_tokens += trace.input_tokens
            unit.output_tokens += trace.output_tokens
        if unit.key is not None and store is not None:
            await anyio.to_thread.run_sync(_cache_put, store, unit.key, result)
        return result

    return job


def _cache_get(store: Any, key: str) -> tuple[float, str | None] | None:
    try:
        hit = store.judge_cache_get(key)
    except RagError as exc:
        log.warning("judge cache read failed (treated as a miss): %s", exc)
        return None
    if hit is None:
        return None
    value, reason = hit
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value), reason


def _cache_put(store: Any, key: str, result: _Judgement) -> None:
    try:
        store.judge_cache_put(key, result.value, result.reason)
    except RagError as exc:
        log.warning("judge cache write failed (score kept): %s", exc)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------
def summarize(scores: Sequence[dict[str, MetricScore]]) -> dict[str, dict[str, Any]]:
    """Per metric: ``{mean, stdev, scored, failed, judge_stdev}`` over samples. Failures are excluded
    from the mean and counted; ``mean``/``stdev`` are None when fewer than 1/2 values were scored;
    never NaN. ``stdev`` is the spread *across questions*; ``judge_stdev`` is the judge's own
    variance (mean over questions of the stdev between repeats), None without ``--judge-repeats``."""
    per: dict[str, list[MetricScore]] = {}
    for row in scores:
        for name, s in row.items():
            per.setdefault(name, []).append(s)
    out: dict[str, dict[str, Any]] = {}
    for name, items in per.items():
        vals = [float(s.value) for s in items if s.value is not None and math.isfinite(float(s.value))]
        out[name] = {
            "mean": sum(vals) / len(vals) if vals else None,
            "stdev": statistics.stdev(vals) if len(vals) >= 2 else None,
            "scored": len(vals),
            "failed": len(items) - len(vals),
        }
        repeat_sds = [float(s.stdev) for s in items if s.value is not None and s.stdev is not None]
        out[name]["judge_stdev"] = sum(repeat_sds) / len(repeat_sds) if repeat_sds else None
    return out


def judge_summary(suite: Suite, outcome: ScoringOutcome | None = None) -> dict[str, Any]:
    """The run summary's ``judge`` block: ``{suite, model, calls, cache_hits, versions}``."""
    return {
        "suite": suite.name,
        "model": suite.model,
        "calls": outcome.calls if outcome else 0,
        "cache_hits": outcome.cache_hits if outcome else 0,
        "versions": suite.versions(),
    }


def suite_mismatch(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    """A warning when two runs' ``judge`` blocks were scored differently (suite, judge model or
    metric versions), else None. Scores from different suites are not comparable."""
    a, b = a or {}, b or {}
    if a.get("suite") != b.get("suite"):
        return f"These runs were scored by different metric suites ({a.get('suite')} vs {b.get('suite')})."
    if a.get("model") != b.get("model"):
        return f"These runs were judged by different models ({a.get('model')} vs {b.get('model')})."
    va, vb = a.get("versions") or {}, b.get("versions") or {}
    diff = sorted(m for m in set(va) & set(vb) if va[m] != vb[m])
    if diff:
        return f"Metric versions differ between these runs for: {', '.join(diff)}."
    return None
