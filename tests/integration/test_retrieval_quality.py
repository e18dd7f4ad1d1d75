"""Retrieval quality on the shipped sample: the chunk that holds each answer is in the top 4."""

from __future__ import annotations

import json

import pytest

from rag_core.ingest.documents import parse_document
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.retrieval import retrieve
from tests.conftest import SAMPLE_PDF, SAMPLE_QUESTIONS
from tests.unit.test_extractive import SAMPLE_KEYS  # the phrase that states each answer

pytestmark = pytest.mark.slow


def _flat(text: str) -> str:
    return " ".join(text.split())  # PDF text wraps lines inside sentences


def test_answer_chunk_is_in_the_top_4_for_at_least_9_of_10(settings) -> None:
    questions = [q["question"] for q in json.loads(SAMPLE_QUESTIONS.read_text(encoding="utf-8"))]
    with PolicyIndex(settings) as index:
        assert (
            index.add_document(parse_document(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes(), settings)) == "added"
        )
        hits = retrieve(index, questions, top_k=4)
    covered = [(q, key, got) for q, key, got in zip(questions, SAMPLE_KEYS, hits, strict=True) if key]
    found = [q for q, key, got in covered if any(key in _flat(c.chunk.text) for c in got)]
    missed = sorted({q for q, _, _ in covered} - set(found))
    # The issue asks for ≥ 9 of 10; we hold every one of the 9 covered questions to it (the 10th
    # is the uncovered one, with no answer chunk to find).
    assert len(covered) == 9
    assert len(found) == 9, f"answer chunk not in the top 4 for: {missed}"
    for got in hits:
        assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
        assert all(0.0 <= c.score <= 1.0 and c.chunk.source == SAMPLE_PDF.name for c in got)
