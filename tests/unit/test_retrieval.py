"""Batched retrieval for many questions."""

from __future__ import annotations

import pytest

from rag_core.errors import RetrievalError
from rag_core.ingest.documents import parse_document
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.retrieval import retrieve

HANDBOOK = "\n\n".join(
    [
        "Annual leave. Employees receive 25 days of paid holiday per year plus public holidays.",
        "Sick pay. Full pay is paid for the first 10 days of sickness absence in any year.",
        "Fire safety. The fire alarm is tested every Monday at 10:00; no evacuation is needed.",
        "Expenses. Claims must be submitted within 30 days with receipts attached.",
    ]
)


@pytest.fixture
def index(settings):
    small = settings.replace(chunk_size=100, chunk_overlap=0)
    with PolicyIndex(small) as idx:
        idx.add_document(parse_document("handbook.md", HANDBOOK.encode(), small))
        yield idx


def test_retrieve_answers_every_question_in_order_with_one_query(index, monkeypatch):
    calls: list[list[str]] = []
    real_query = index.query

    def spy(questions, top_k, collection):
        calls.append(list(questions))
        return real_query(questions, top_k, collection)

    monkeypatch.setattr(index, "query", spy)
    questions = [
        "How much holiday do I get?",
        "   ",
        "When is the fire alarm tested?",
        "How long to claim expenses?",
    ]
    results = retrieve(index, questions, top_k=2)

    assert len(calls) == 1 and calls[0] == [questions[0], questions[2], questions[3]]  # blanks not embedded
    assert [len(r) for r in results] == [2, 0, 2, 2]
    assert "25 days" in results[0][0].chunk.text
    assert "fire alarm" in results[2][0].chunk.text
    assert "30 days" in results[3][0].chunk.text


def test_retrieve_on_empty_index_and_no_questions(settings):
    with PolicyIndex(settings) as empty:
        assert retrieve(empty, ["anything?"], 4) == [[]]
        assert retrieve(empty, [], 4) == []


def test_retrieve_rejects_bad_top_k(index):
    with pytest.raises(RetrievalError, match="RAG_TOP_K"):
        retrieve(index, ["q"], 0)
