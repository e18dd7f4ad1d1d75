"""Checks on generated pairs, all local (no Claude call): duplicates, declines, general knowledge.

**Near-duplicates** (:func:`drop_duplicates`). Every new question is embedded with the project's
local model (all-MiniLM-L6-v2, L2-normalised: cosine = dot product) together with the questions
already in the target question set and in the review queue. Questions are taken in order; one whose
cosine with an existing question or an earlier kept one is at least :data:`DUPLICATE_COSINE` is
dropped. Why 0.90, measured with this model: a near-verbatim rewording ("How many days of annual
leave do I get?" / "… do I get each year?") scores 0.96; a real paraphrase ("… / How much annual
leave am I entitled to?") 0.79 — but two *different* questions on one passage ("How many days can I
carry over?" / "When must carried-over days be used?") score 0.77, so MiniLM cannot tell deeper
paraphrases from distinct questions. The cut drops the near-verbatim duplicates generators produce
and keeps questions that test different facts of one passage; the reviewer catches the rest.

**Declines** (:func:`decline_is_covered`). A decline pair is kept only when retrieval finds
nothing relevant, by the offline answerer's own "not covered" rule
(:mod:`rag_core.answer.extractive`): the question is searched in the collection (top-k), and the
documents *cover* it when the best retrieval score reaches ``MIN_RETRIEVAL_SCORE`` and the best
candidate sentence reaches ``MIN_SENTENCE_SCORE`` (the threshold calibrated on held-out questions
in ``bench/calibrate_answerer.py``). Covered "declines" are dropped: an expected decline that the
documents answer would mark a correct answer wrong.

**General knowledge** (:func:`general_knowledge`). A closed-book check: Claude is asked the question
without any document (:func:`rag_core.authoring.prompt.closed_book_request`), told to reply UNKNOWN
when the answer depends on an employer's own policy. The pair is flagged ``general_knowledge`` when
the closed-book reply is not UNKNOWN (nor a "not covered" sentence) and states the expected answer's
key facts (:mod:`rag_core.evaluation.facts`: at least half of the required figures, durations and
named terms), or — for an expected answer without key facts — when its embedding cosine with the
expected answer is at least :data:`GENERAL_KNOWLEDGE_COSINE`. Such a question does not test the
retrieval: an assistant could answer it from memory. The pair is flagged, not dropped: the
analyst decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rag_core.answer.extractive import MIN_RETRIEVAL_SCORE, MIN_SENTENCE_SCORE
from rag_core.authoring.prompt import UNKNOWN
from rag_core.evaluation.facts import check_facts, extract_facts
from rag_core.models import ScoredChunk

__all__ = [
    "DUPLICATE_COSINE",
    "GENERAL_KNOWLEDGE",
    "GENERAL_KNOWLEDGE_COSINE",
    "GENERAL_KNOWLEDGE_FACT_SHARE",
    "decline_is_covered",
    "drop_duplicates",
    "general_knowledge",
]

#: Cosine (MiniLM) at or above which two questions are near-duplicates.
DUPLICATE_COSINE = 0.90
#: Flag name of a pair answerable without the documents.
GENERAL_KNOWLEDGE = "general_knowledge"
#: Share of the expected answer's key facts a closed-book reply must state to be flagged.
GENERAL_KNOWLEDGE_FACT_SHARE = 0.5
#: Cosine with the expected answer above which a closed-book reply is flagged (answers without key facts).
GENERAL_KNOWLEDGE_COSINE = 0.80


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def drop_duplicates(
    questions: Sequence[str],
    existing: Sequence[str],
    embedder: Embedder,
    *,
    threshold: float = DUPLICATE_COSINE,
) -> tuple[list[int], dict[int, str]]:
    """``(kept indices, {dropped index: the question it duplicates})`` (see the module docstring)."""
    if not questions:
        return [], {}
    texts = [*existing, *questions]
    unit = _unit(embedder.embed(texts))
    ex, new = unit[: len(existing)], unit[len(existing) :]
    kept: list[int] = []
    dropped: dict[int, str] = {}
    for i, v in enumerate(new):
        best, what = -1.0, ""
        if len(ex):
            sims = ex @ v
            j = int(np.argmax(sims))
            best, what = float(sims[j]), existing[j]
        for k in kept:
            s = float(new[k] @ v)
            if s > best:
                best, what = s, questions[k]
        if best >= threshold or questions[i].strip().casefold() in {q.strip().casefold() for q in existing}:
            dropped[i] = what
        else:
            kept.append(i)
    return kept, dropped


def decline_is_covered(question: str, contexts: Sequence[ScoredChunk], answerer: object) -> bool:
    """True when the offline answerer would answer ``question`` from ``contexts`` (retrieved for it):
    the documents seem to cover it, so it is no decline question (see the module docstring).
    ``answerer``: an :class:`~rag_core.answer.extractive.ExtractiveAnswerer`."""
    if not contexts or max(c.score for c in contexts) < MIN_RETRIEVAL_SCORE:
        return False
    best = float(answerer.best_score(question, list(contexts)))  # type: ignore[attr-defined]
    return best >= MIN_SENTENCE_SCORE


def _says_unknown(reply: str) -> bool:
    text = reply.strip().strip(".").upper()
    low = reply.lower()
    return not text or text.startswith(UNKNOWN) or "do not cover" in low or "don't know" in low


def general_knowledge(question: str, expected_answer: str, reply: str, embedder: Embedder | None) -> bool:
    """True when the closed-book ``reply`` already gives ``expected_answer`` (module docstring)."""
    if _says_unknown(reply):
        return False
    facts = extract_facts(expected_answer, question=question)
    check = check_facts(facts, reply)
    if check.required:
        return (check.share or 0.0) >= GENERAL_KNOWLEDGE_FACT_SHARE
    if embedder is None:
        return False
    u = _unit(embedder.embed([expected_answer, reply]))
    return float(u[0] @ u[1]) >= GENERAL_KNOWLEDGE_COSINE
