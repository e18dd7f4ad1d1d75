"""Chunking and retrieval per assistant configuration.

Rules
- The main collection (``settings.collection``) holds the documents split with the app's settings
  (``RAG_CHUNK_SIZE`` / ``RAG_CHUNK_OVERLAP``). A configuration with another chunk size or overlap
  retrieves from a sibling collection, ``<collection>-c<size>-o<overlap>`` (:func:`collection_for`),
  one per (collection, chunk size, overlap).
- A sibling is built the first time it is needed and brought up to date every time it is opened
  (:func:`sync_variant`): documents added or replaced in the main collection are parsed again from
  their kept original file (``uploads/``) with the configuration's chunking; documents deleted from
  the main collection are removed. An unchanged document costs nothing. ``on_progress(done, total,
  name)`` reports each document, so a run can show "building the chunked index".
- Retrieval is similarity (the ``top_k`` most similar chunks, :meth:`PolicyIndex.query`) or MMR
  (:meth:`RetrievalIndex.query_mmr`: maximal marginal relevance over the :func:`mmr_fetch_k` most
  similar chunks, λ = :data:`MMR_LAMBDA`; scores stay the cosine similarity to the question).
- Errors: a document whose original file is no longer stored cannot be re-chunked:
  :class:`RetrievalError` naming it and saying to upload it again.

Integration point (document collections, issue 10): :func:`collection_for` is the one place that
names a chunking variant; when documents live in named collections, it takes the document
collection's index name instead of ``settings.collection`` and nothing else here changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag_core.errors import RagError, RetrievalError
from rag_core.ingest.documents import parse_document, safe_filename
from rag_core.ingest.embeddings import LocalEmbedder
from rag_core.ingest.index import PolicyIndex
from rag_core.models import Chunk, ScoredChunk
from rag_core.settings import Settings
from rag_core.vocab import Retrieval

__all__ = [
    "MMR_LAMBDA",
    "MMR_MIN_FETCH",
    "RetrievalIndex",
    "VariantBuild",
    "collection_for",
    "is_main",
    "mmr_fetch_k",
    "open_index",
    "pending_documents",
    "retrieve_with",
    "sync_variant",
    "variant_settings",
]

MMR_LAMBDA = 0.5
"""MMR trade-off: 1 = pure similarity, 0 = pure diversity."""
MMR_MIN_FETCH = 20
"""MMR chooses among at least this many of the most similar chunks (4 × top-k when larger)."""

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def is_main(settings: Settings, chunk_size: int, chunk_overlap: int) -> bool:
    """True when this chunking is the app's own (the main collection serves it)."""
    return (int(chunk_size), int(chunk_overlap)) == (settings.chunk_size, settings.chunk_overlap)


def collection_for(settings: Settings, chunk_size: int, chunk_overlap: int) -> str:
    """The index collection of this chunking (the main one for the app's own chunking)."""
    if is_main(settings, chunk_size, chunk_overlap):
        return settings.collection
    return f"{settings.collection}-c{int(chunk_size)}-o{int(chunk_overlap)}"


def variant_settings(settings: Settings, chunk_size: int, chunk_overlap: int) -> Settings:
    """The settings that open (and chunk into) the collection of this chunking."""
    return settings.replace(
        collection=collection_for(settings, chunk_size, chunk_overlap),
        chunk_size=int(chunk_size),
        chunk_overlap=int(chunk_overlap),
    )


def mmr_fetch_k(top_k: int) -> int:
    """How many of the most similar chunks MMR chooses from."""
    return max(MMR_MIN_FETCH, 4 * int(top_k))


@dataclass(frozen=True)
class VariantBuild:
    """What :func:`sync_variant` did to a chunking's collection."""

    collection: str
    """The collection's name."""
    added: int = 0
    """Documents (re)chunked and indexed now."""
    removed: int = 0
    """Documents removed because they are no longer in the main collection."""
    chunks: int = 0
    """Chunks written now."""
    seconds: float = 0.0
    """Time taken."""

    @property
    def built(self) -> bool:
        """True when anything had to be (re)built."""
        return bool(self.added or self.removed)


class RetrievalIndex(PolicyIndex):
    """:class:`PolicyIndex` with MMR retrieval (:meth:`query_mmr`)."""

    def query_mmr(
        self,
        questions: Sequence[str],
        top_k: int,
        *,
        fetch_k: int | None = None,
        lambda_mult: float = MMR_LAMBDA,
    ) -> list[list[ScoredChunk]]:
        """For each question, ``top_k`` chunks chosen greedily by maximal marginal relevance among
        its ``fetch_k`` most similar: each pick maximises λ·sim(question, chunk) − (1 − λ)·max
        sim(chunk, already picked). Same contracts as :meth:`PolicyIndex.query` (one list per
        question; ``[]`` when empty; :class:`RetrievalError` on failure)."""
        questions = list(questions)
        if top_k < 1:
            raise RetrievalError(f"top_k must be at least 1 (got {top_k}).")
        if not questions:
            return []
        n = self.count()
        if n == 0:
            return [[] for _ in questions]
        try:
            vectors = self.embedder.embed(questions)
        except RagError as exc:
            raise RetrievalError(f"The questions could not be embedded: {exc}") from exc
        k = min(top_k, n)
        fk = min(max(fetch_k or mmr_fetch_k(top_k), k), n)
        with self._errors(RetrievalError, "The policy index could not be queried"):
            got = self._collection.query(
                query_embeddings=vectors,
                n_results=fk,
                include=["documents", "metadatas", "distances", "embeddings"],
            )
        out: list[list[ScoredChunk]] = []
        for i in range(len(questions)):
            cands = [
                (ScoredChunk(_chunk(id_, text, meta), min(1.0, max(0.0, 1.0 - float(dist)))), emb)
                for id_, text, meta, dist, emb in zip(
                    got["ids"][i],
                    (got["documents"] or [])[i],
                    (got["metadatas"] or [])[i],
                    (got["distances"] or [])[i],
                    (got["embeddings"] if got["embeddings"] is not None else [])[i],
                    strict=True,
                )
            ]
            cands.sort(key=lambda c: (-round(c[0].score, 6), c[0].chunk.source, c[0].chunk.position))
            out.append(
                _mmr(
                    [c[0] for c in cands], np.asarray([c[1] for c in cands], dtype=np.float32), k, lambda_mult
                )
            )
        return out


def _mmr(cands: list[ScoredChunk], emb: np.ndarray, k: int, lambda_mult: float) -> list[ScoredChunk]:
    if not cands:
        return []
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norms > 0, norms, 1.0)
    sim_q = np.asarray([c.score for c in cands], dtype=np.float64)
    chosen: list[int] = []
    max_sim = np.full(len(cands), -np.inf)
    for _ in range(min(k, len(cands))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lambda_mult * sim_q - (1.0 - lambda_mult) * penalty
        score[chosen] = -np.inf
        j = int(np.argmax(score))  # first maximum: candidates are in similarity order
        chosen.append(j)
        max_sim = np.maximum(max_sim, emb @ emb[j])
    return [cands[j] for j in chosen]


def _chunk(id_: str, text: str | None, meta: object) -> Chunk:
    m = meta if isinstance(meta, dict) else {}
    return Chunk(
        id=str(id_),
        text=text or "",
        source=str(m.get("source", "")),
        page=int(m.get("page", 1)),
        position=int(m.get("position", 0)),
        doc_sha256=str(m.get("doc_sha256", "")),
    )


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def sync_variant(
    settings: Settings,
    chunk_size: int,
    chunk_overlap: int,
    *,
    embedder: LocalEmbedder | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> VariantBuild:
    """Build or update the collection of this chunking from the main collection's documents
    (see the module rules). A no-op for the app's own chunking."""
    name = collection_for(settings, chunk_size, chunk_overlap)
    if is_main(settings, chunk_size, chunk_overlap):
        return VariantBuild(name)
    t0 = time.perf_counter()
    vs = variant_settings(settings, chunk_size, chunk_overlap)
    with _lock(f"{settings.chroma_dir}|{settings.chroma_host}|{name}"):
        with PolicyIndex(settings, embedder=embedder) as main:
            wanted = {d.name: d.sha256 for d in main.list_documents()}
        with PolicyIndex(vs, embedder=embedder) as var:
            have = {d.name: d.sha256 for d in var.list_documents()}
            todo = [n for n, sha in sorted(wanted.items()) if have.get(n) != sha]
            gone = [n for n in sorted(have) if n not in wanted]
            for n in gone:
                var.delete_document(n)
            chunks = 0
            for done, doc_name in enumerate(todo):
                if on_progress is not None:
                    on_progress(done, len(todo), doc_name)
                path = settings.uploads_dir / safe_filename(doc_name)
                try:
                    data = path.read_bytes()
                except OSError:
                    raise RetrievalError(
                        f"{doc_name}: its original file is no longer stored, so it cannot be split into "
                        f"{chunk_size}-character chunks for this configuration. Upload it again on the "
                        "Documents page (or use the app's chunk size)."
                    ) from None
                doc = parse_document(doc_name, data, vs)
                var.delete_document(doc_name)
                var.add_document(doc)
                chunks += len(doc.chunks)
            if on_progress is not None and todo:
                on_progress(len(todo), len(todo), "")
    return VariantBuild(
        name, added=len(todo), removed=len(gone), chunks=chunks, seconds=time.perf_counter() - t0
    )


def pending_documents(settings: Settings, chunk_size: int, chunk_overlap: int) -> int:
    """How many documents :func:`sync_variant` would (re)chunk now for this chunking (0 for the
    app's own chunking, or when its collection is up to date)."""
    if is_main(settings, chunk_size, chunk_overlap):
        return 0
    with PolicyIndex(settings) as main:
        wanted = {d.name: d.sha256 for d in main.list_documents()}
    with PolicyIndex(variant_settings(settings, chunk_size, chunk_overlap)) as var:
        have = {d.name: d.sha256 for d in var.list_documents()}
    return sum(1 for n, sha in wanted.items() if have.get(n) != sha)


def open_index(
    settings: Settings,
    chunk_size: int,
    chunk_overlap: int,
    *,
    embedder: LocalEmbedder | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> tuple[RetrievalIndex, VariantBuild]:
    """The index of this chunking, built or updated first (see :func:`sync_variant`). The caller
    closes it."""
    build = sync_variant(settings, chunk_size, chunk_overlap, embedder=embedder, on_progress=on_progress)
    return RetrievalIndex(variant_settings(settings, chunk_size, chunk_overlap), embedder=embedder), build


def retrieve_with(
    index: RetrievalIndex, questions: Sequence[str], top_k: int, retrieval: Retrieval | str
) -> list[list[ScoredChunk]]:
    """The chunks for each question (``[]`` for a blank one), by similarity or MMR, best first."""
    from rag_core.ingest.retrieval import retrieve

    if Retrieval(retrieval) == Retrieval.SIMILARITY:
        return retrieve(index, questions, top_k)
    questions = list(questions)
    asked = [i for i, q in enumerate(questions) if q and q.strip()]
    results: list[list[ScoredChunk]] = [[] for _ in questions]
    if asked:
        for i, chunks in zip(asked, index.query_mmr([questions[i] for i in asked], top_k), strict=True):
            results[i] = chunks
    return results
