"""Contexts for many questions at once.

:func:`retrieve` is one batched embed + one Chroma query for all questions (see
:meth:`PolicyIndex.query`). The prompt's context block is built by :mod:`rag_core.answer.prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.errors import RetrievalError
from rag_core.ingest.index import PolicyIndex
from rag_core.models import DEFAULT_COLLECTION, ScoredChunk


def retrieve(
    index: PolicyIndex, questions: Sequence[str], top_k: int, collection: str = DEFAULT_COLLECTION
) -> list[list[ScoredChunk]]:
    """The ``top_k`` best chunks of ``collection`` for each question, in question order, best first.

    Returns one list per question (``[]`` for each when the index is empty, ``[]`` overall
    when ``questions`` is empty). Blank questions get ``[]`` without being embedded. Raises
    :class:`RetrievalError` if the index cannot be queried or ``top_k < 1``.
    """
    questions = list(questions)
    if top_k < 1:
        raise RetrievalError(f"top_k must be at least 1 (got {top_k}); check RAG_TOP_K.")
    asked = [i for i, q in enumerate(questions) if q and q.strip()]
    results: list[list[ScoredChunk]] = [[] for _ in questions]
    if asked:
        found = index.query([questions[i] for i in asked], top_k, collection)
        for i, chunks in zip(asked, found, strict=True):
            results[i] = chunks
    return results
