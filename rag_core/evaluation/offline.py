"""The ``offline`` suite: non-LLM metrics, computed locally on worker threads (no network, deterministic).

- ``semantic_similarity`` — RAGAS ``SemanticSimilarity`` (collections API) with our local
  MiniLM embeddings wrapped as a RAGAS ``BaseRagasEmbedding``: cosine of answer vs ground truth.
- ``rouge_l`` — RAGAS ``RougeScore(rouge_type="rougeL", mode="fmeasure")``, answer vs ground truth.
- ``context_recall`` — **hand-written**, because RAGAS' ``NonLLMContextRecall`` compares the
  retrieved contexts with *reference contexts* (which an analyst's question set does not
  have) and exists only in the deprecated pre-collections API. Ours is the non-LLM analogue
  of RAGAS' LLM ``ContextRecall``: the fraction of ground-truth sentences attributable to the
  retrieved context, where "attributable" means the sentence's embedding has cosine ≥
  :data:`CONTEXT_RECALL_THRESHOLD` with some sentence (or whole chunk) of the context.

The offline suite is not cached (it is cheap and deterministic).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np

from rag_core.errors import EvaluationError, RagError
from rag_core.evaluation.base import (
    OFFLINE_METRICS,
    Sample,
    Suite,
    _clip01,
    _drive,
    _Embedder,
    _Judgement,
    _missing,
    _pick,
    _ragas_version,
)
from rag_core.evaluation.embedding import _embedding_cls
from rag_core.evaluation.reasons import _cut, _shorten_json
from rag_core.models import MetricScore

__all__ = ["CONTEXT_RECALL_THRESHOLD", "OfflineSuite"]

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
        :func:`rag_core.ingest.embeddings.get_embedder`, loaded on first use)."""
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
