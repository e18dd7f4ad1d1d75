"""Work shared by the runs of one sweep: identical retrievals, answers and judgements are done once.

A :class:`ReuseCache` lives as long as a sweep (:mod:`rag_core.runs.sweep`) and is handed to each
of its runs (``start_run(..., reuse=cache)``). Rules:

- **Retrieval** is keyed by (index collection, retrieval method, question). Similarity retrieval at
  ``top_k`` is a prefix of the same retrieval at a larger ``k``, so one query at the largest k serves
  every smaller one (the sweep runs larger k first). MMR results are reused only for the same k.
- **Answers** are keyed by what the answerer sees: the backend, for Claude the configuration's answer
  fingerprint (model, system prompt, instructions, temperature, max tokens), the question and the
  contexts (source, page, text, score). The offline answerer ignores the model and prompts, so two
  configurations that differ only there get the same answers. A reused answer keeps the latency and
  tokens of the request that produced it; nothing is sent or billed again.
- **Scores** are keyed by suite, metrics, judge model, judge repeats, question, answer, contexts and
  expected answer; only complete, successful scorings are kept. (The judge cache in the history
  store keeps judged scores across sweeps too; this also covers the offline suite.)
- **Embeddings**: a :class:`CachingEmbedder` embeds each distinct text once for the whole sweep
  (questions, candidate sentences, expected answers), so partly overlapping work is cheap as well.
- :class:`ReuseCounters` count what was computed and what was reused, per kind: the proof that
  reuse happened (shown with the sweep, stored in its counters). Thread-safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_core.experiment import AssistantConfig
from rag_core.models import Answer, MetricScore, ScoredChunk
from rag_core.settings import Settings
from rag_core.vocab import Backend, Retrieval

__all__ = ["BuildProgress", "CachingEmbedder", "ReuseCache", "ReuseCounters", "fetch_contexts"]


@dataclass
class ReuseCounters:
    """What a sweep computed and what it reused (see the module rules)."""

    retrievals_computed: int = 0
    """Questions retrieved by querying the index."""
    retrievals_reused: int = 0
    """Questions whose chunks came from an earlier run of the sweep."""
    answers_computed: int = 0
    """Answers generated."""
    answers_reused: int = 0
    """Answers taken from an earlier run of the sweep (identical question and contexts)."""
    scores_computed: int = 0
    """Questions scored."""
    scores_reused: int = 0
    """Questions whose scores came from an earlier run (identical question, answer, contexts)."""
    embeddings_computed: int = 0
    """Distinct texts embedded."""
    embeddings_reused: int = 0
    """Embeddings served from the sweep's memo."""
    judge_cache_hits: int = 0
    """Judgements served from the history's judge cache (summed from the runs)."""
    index_builds: int = 0
    """Chunked index collections built or updated for a configuration's chunking."""
    index_build_s: float = 0.0
    """Seconds spent building them."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CachingEmbedder:
    """An embedder that embeds each distinct text once (a memo in front of the real one)."""

    def __init__(self, inner: Any | None, counters: ReuseCounters, lock: threading.Lock) -> None:
        self._inner = inner
        self._counters = counters
        self._lock = lock
        self._memo: dict[str, np.ndarray] = {}

    @property
    def inner(self) -> Any:
        if self._inner is None:
            from rag_core.ingest.embeddings import get_embedder

            self._inner = get_embedder()
        return self._inner

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", "embedder"))

    @property
    def dimension(self) -> int:
        return int(getattr(self.inner, "dimension", 0))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            vectors = np.asarray(self.inner.embed(missing))
            with self._lock:
                for t, v in zip(missing, vectors, strict=True):
                    self._memo[t] = v
        with self._lock:
            self._counters.embeddings_computed += len(missing)
            self._counters.embeddings_reused += len(texts) - len(missing)
            rows = [self._memo[t] for t in texts]
        if not rows:
            return np.asarray(self.inner.embed([]))
        return np.stack(rows)


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _contexts_key(contexts: Sequence[ScoredChunk]) -> list[Any]:
    return [[c.chunk.source, c.chunk.page, c.chunk.text, round(float(c.score), 6)] for c in contexts]


class ReuseCache:
    """The memos of one sweep (see the module rules)."""

    def __init__(self, embedder: Any | None = None) -> None:
        self.counters = ReuseCounters()
        self._lock = threading.Lock()
        self.embedder = CachingEmbedder(embedder, self.counters, self._lock)
        self._contexts: dict[tuple[str, str, str], tuple[int, list[ScoredChunk]]] = {}
        self._answers: dict[str, tuple[Answer, float | None]] = {}
        self._scores: dict[str, dict[str, MetricScore]] = {}

    # --- retrieval --------------------------------------------------------------------------------
    def contexts(
        self, collection: str, retrieval: str, question: str, top_k: int
    ) -> list[ScoredChunk] | None:
        """The chunks an earlier run retrieved for this question, or None."""
        with self._lock:
            got = self._contexts.get((collection, str(retrieval), question))
        if got is None:
            return None
        k, chunks = got
        if k == top_k or (str(retrieval) == Retrieval.SIMILARITY and k >= top_k):
            return chunks[:top_k]
        return None

    def put_contexts(
        self, collection: str, retrieval: str, question: str, top_k: int, chunks: list[ScoredChunk]
    ) -> None:
        with self._lock:
            key = (collection, str(retrieval), question)
            old = self._contexts.get(key)
            if old is None or top_k > old[0]:
                self._contexts[key] = (top_k, list(chunks))

    # --- answers ----------------------------------------------------------------------------------
    @staticmethod
    def answer_key(
        backend: str, config: AssistantConfig, question: str, contexts: Sequence[ScoredChunk]
    ) -> str:
        shaping = config.answer_fingerprint() if backend == Backend.CLAUDE else ""
        return _sha([str(backend), shaping, question, _contexts_key(contexts)])

    def answer(self, key: str) -> tuple[Answer, float | None] | None:
        with self._lock:
            got = self._answers.get(key)
            if got is not None:
                self.counters.answers_reused += 1
            return got

    def put_answer(self, key: str, answer: Answer, latency_s: float | None) -> None:
        with self._lock:
            self._answers.setdefault(key, (answer, latency_s))
            self.counters.answers_computed += 1

    # --- scores -----------------------------------------------------------------------------------
    @staticmethod
    def score_key(
        *,
        suite: str,
        metrics: Sequence[str],
        judge_model: str | None,
        repeats: int,
        question: str,
        answer: str,
        contexts: Sequence[str],
        ground_truth: str,
    ) -> str:
        return _sha(
            [
                str(suite),
                sorted(metrics),
                judge_model,
                int(repeats),
                question,
                answer,
                list(contexts),
                ground_truth,
            ]
        )

    def scores(self, key: str) -> dict[str, MetricScore] | None:
        with self._lock:
            got = self._scores.get(key)
            if got is not None:
                self.counters.scores_reused += 1
            return got

    def put_scores(self, key: str, scores: dict[str, MetricScore]) -> None:
        with self._lock:
            self.counters.scores_computed += 1
            if scores and all(s.ok for s in scores.values()):
                self._scores.setdefault(key, dict(scores))

    def add(self, **counts: float) -> None:
        """Add to counters (``retrievals_computed=3``, ``index_build_s=1.2``…)."""
        with self._lock:
            for name, value in counts.items():
                setattr(self.counters, name, getattr(self.counters, name) + value)

    def snapshot(self) -> ReuseCounters:
        with self._lock:
            return dataclasses.replace(self.counters)


class BuildProgress:
    """Progress of a chunked-index build, in the shape a run's progress view reads."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.in_flight = 0
        self.retries = 0
        self.errors = 0
        self.eta_s: float | None = None
        self.concurrency_limit = 0
        self._started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def update(self, done: int, total: int, _name: str = "") -> None:
        self.done, self.total = done, total
        self.in_flight = 1 if done < total else 0

    def progress(self) -> BuildProgress:
        return self

    def cancel(self) -> None:  # a build is short and leaves a consistent collection: it finishes
        return None


def fetch_contexts(
    settings: Settings,
    config: AssistantConfig,
    questions: Sequence[str],
    *,
    reuse: ReuseCache | None = None,
    embedder: Any | None = None,
    on_build: Callable[[int, int, str], None] | None = None,
) -> list[list[ScoredChunk]]:
    """The chunks for each question under ``config`` (its chunking's collection — built on first
    use — its retrieval method and top-k), reusing what ``reuse`` already holds."""
    from rag_core.ingest.variants import collection_for, open_index, retrieve_with

    collection = collection_for(settings, config.chunk_size, config.chunk_overlap)
    out: list[list[ScoredChunk] | None] = [None] * len(questions)
    if reuse is not None:
        for i, q in enumerate(questions):
            out[i] = reuse.contexts(collection, config.retrieval, q, config.top_k)
    todo = [i for i, got in enumerate(out) if got is None]
    if reuse is not None:
        reuse.add(retrievals_reused=len(questions) - len(todo), retrievals_computed=len(todo))
    if todo:
        index, build = open_index(
            settings, config.chunk_size, config.chunk_overlap, embedder=embedder, on_progress=on_build
        )
        try:
            found = retrieve_with(index, [questions[i] for i in todo], config.top_k, config.retrieval)
        finally:
            index.close()
        if reuse is not None and build.built:
            reuse.add(index_builds=1, index_build_s=build.seconds)
        for i, chunks in zip(todo, found, strict=True):
            out[i] = chunks
            if reuse is not None:
                reuse.put_contexts(collection, config.retrieval, questions[i], config.top_k, chunks)
    return [c or [] for c in out]
