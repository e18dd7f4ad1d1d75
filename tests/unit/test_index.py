"""The Chroma-backed policy index: add/replace/delete/list/query, persistence, errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import chromadb
import numpy as np
import pytest

from rag_core.errors import IngestError, RetrievalError
from rag_core.ingest.documents import parse_document
from rag_core.ingest.embeddings import LocalEmbedder, MiniLMEmbeddingFunction, get_embedder
from rag_core.ingest.index import PolicyIndex
from tests.fixtures.pdfs import text_pdf

ROOT = Path(__file__).resolve().parents[2]

LEAVE = "\n\n".join(
    [
        "Annual leave. Employees receive 25 days of paid holiday per year plus public holidays.",
        "Carry over. Up to five unused days of holiday may be carried into the next leave year.",
        "Booking. Holiday requests must be approved by your line manager two weeks in advance.",
    ]
)
SAFETY = "\n\n".join(
    [
        "Fire safety. The fire alarm is tested every Monday at 10:00; no evacuation is needed.",
        "First aid. First aiders are listed on the noticeboard next to each kitchen.",
    ]
)


class CountingEmbedder:
    """Wraps the real embedder and counts embed calls (to prove no work is done)."""

    def __init__(self) -> None:
        self.inner = get_embedder()
        self.calls: list[int] = []
        self.dimension = self.inner.dimension
        self.name = self.inner.name

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.embed(texts)


@pytest.fixture
def small(settings):
    """Settings with small chunks so short texts give several chunks."""
    return settings.replace(chunk_size=120, chunk_overlap=0)


@pytest.fixture
def index(small):
    with PolicyIndex(small) as idx:
        yield idx


def doc(name: str, text: str, settings):
    return parse_document(name, text.encode(), settings)


# --- add / unchanged / replaced / delete --------------------------------------------------
def test_add_then_unchanged_then_replaced(small):
    counting = CountingEmbedder()
    with PolicyIndex(small, embedder=counting) as index:  # type: ignore[arg-type]
        first = doc("leave.md", LEAVE, small)
        assert index.add_document(first) == "added"
        assert index.count() == len(first.chunks) == 3

        calls = len(counting.calls)
        assert index.add_document(doc("leave.md", LEAVE, small)) == "unchanged"
        assert len(counting.calls) == calls  # no embedding work: an unchanged file costs nothing

        second = doc("leave.md", LEAVE.replace("25 days", "27 days"), small)
        assert index.add_document(second) == "replaced"
        chunks = index.chunks_of("leave.md")
        assert [c.id for c in chunks] == [c.id for c in second.chunks]
        assert "27 days" in chunks[0].text and index.count() == len(second.chunks)


def test_same_bytes_split_differently_are_replaced(small, index):
    assert index.add_document(doc("leave.md", LEAVE, small)) == "added"
    bigger = small.replace(chunk_size=400)
    again = doc("leave.md", LEAVE, bigger)
    assert index.add_document(again) == "replaced"
    assert [c.text for c in index.chunks_of("leave.md")] == [c.text for c in again.chunks]
    assert index.count() == len(again.chunks)


def test_identical_content_under_another_name_is_refused(small, index):
    index.add_document(doc("leave.md", LEAVE, small))
    with pytest.raises(IngestError, match=r"^copy\.md: .*'leave\.md'"):
        index.add_document(doc("copy.md", LEAVE, small))
    assert [d.name for d in index.list_documents()] == ["leave.md"]


def test_delete_reports_chunks_removed(small, index):
    index.add_document(doc("leave.md", LEAVE, small))
    index.add_document(doc("safety.md", SAFETY, small))
    assert index.delete_document("leave.md") == 3
    assert index.delete_document("leave.md") == 0
    assert index.delete_document("never-added.pdf") == 0
    assert [d.name for d in index.list_documents()] == ["safety.md"]
    assert index.chunks_of("leave.md") == []


def test_progress_is_reported(small, index):
    seen: list[tuple[int, int]] = []
    index.add_document(doc("leave.md", LEAVE, small), on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3, 3)


# --- list / chunks_of -----------------------------------------------------------------------
def test_list_documents_aggregates_metadata(small, index):
    assert index.list_documents() == []
    pdf = parse_document(
        "Handbook.pdf", text_pdf(["Leave is 25 days. " * 20, "Sick pay is 10 days. " * 20]), small
    )
    index.add_document(pdf)
    index.add_document(doc("safety.md", SAFETY, small))

    docs = index.list_documents()
    assert [d.name for d in docs] == ["Handbook.pdf", "safety.md"]
    hb = docs[0]
    assert (hb.sha256, hb.pages, hb.chunks, hb.size_bytes) == (pdf.sha256, 2, len(pdf.chunks), pdf.size_bytes)
    assert datetime.fromisoformat(hb.added_at).tzinfo is not None


def test_chunks_of_keeps_pages_and_order(small, index):
    pdf = parse_document("hb.pdf", text_pdf(["Leave is 25 days. " * 20, "Sick pay is 10 days. " * 20]), small)
    index.add_document(pdf)
    chunks = index.chunks_of("hb.pdf")
    assert chunks == list(pdf.chunks)
    assert {c.page for c in chunks} == {1, 2}


# --- query ---------------------------------------------------------------------------------
def test_query_on_empty_index_gives_empty_lists(index):
    assert index.query(["How much holiday?", "Fire alarm?"], 4) == [[], []]
    assert index.query([], 4) == []


def test_query_ranks_relevant_chunks_first_with_scores_in_range(small):
    counting = CountingEmbedder()
    with PolicyIndex(small, embedder=counting) as index:  # type: ignore[arg-type]
        index.add_document(doc("leave.md", LEAVE, small))
        index.add_document(doc("safety.md", SAFETY, small))
        counting.calls.clear()

        results = index.query(
            ["How many days of annual leave do I get?", "When is the fire alarm tested?"], 3
        )
        assert counting.calls == [2]  # one embedding call for all questions

    leave, fire = results
    assert len(leave) == len(fire) == 3
    assert "25 days" in leave[0].chunk.text and leave[0].chunk.source == "leave.md"
    assert "fire alarm" in fire[0].chunk.text
    for hits in results:
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert leave[0].score > 0.4


def test_query_top_k_larger_than_index_returns_everything(small, index):
    index.add_document(doc("safety.md", SAFETY, small))
    assert len(index.query(["first aid"], 50)[0]) == index.count() == 2


def test_query_rejects_top_k_below_one(index):
    with pytest.raises(RetrievalError, match="top_k"):
        index.query(["x"], 0)


# --- persistence and registration ----------------------------------------------------------
REOPEN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import chromadb
    from rag_core.settings import Settings
    from rag_core.ingest.index import PolicyIndex
    settings = Settings(data_dir=Path(sys.argv[1]), chunk_size=120, chunk_overlap=0)
    with PolicyIndex(settings) as index:
        hits = index.query(["How many days of annual leave do I get?"], 1)[0]
        docs = [d.name for d in index.list_documents()]
    # Plain chromadb, no embedding function passed: works because importing
    # rag_core.ingest.embeddings registered ours under the name stored in the collection.
    client = chromadb.PersistentClient(path=str(settings.chroma_dir),
                                       settings=chromadb.Settings(anonymized_telemetry=False))
    collection = client.get_collection(settings.collection)
    by_text = collection.query(query_texts=["fire alarm test"], n_results=1)
    print(json.dumps({"docs": docs, "top": hits[0].chunk.text, "score": hits[0].score,
                      "ef": collection.configuration["embedding_function"].name(),
                      "by_text": by_text["documents"][0][0]}))
    """
)


def test_reopening_from_disk_in_a_new_process(small, data_dir):
    with PolicyIndex(small) as index:
        index.add_document(doc("leave.md", LEAVE, small))
        index.add_document(doc("safety.md", SAFETY, small))

    proc = subprocess.run(
        [sys.executable, "-c", REOPEN, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            "PYTHONPATH": str(ROOT),
            "ANONYMIZED_TELEMETRY": "False",
            "HF_HUB_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["docs"] == ["leave.md", "safety.md"]
    assert "25 days" in out["top"] and 0 < out["score"] <= 1
    assert out["ef"] == MiniLMEmbeddingFunction.name()
    assert "fire alarm" in out["by_text"]


# --- errors ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_chroma_server_says_how_to_fix(settings):
    port = _free_port()
    with pytest.raises(RetrievalError) as err:
        PolicyIndex(settings.replace(chroma_host="127.0.0.1", chroma_port=port))
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "chroma run" in message and "RAG_CHROMA_HOST" in message


def test_collection_built_with_another_model_is_reported(settings):
    client = chromadb.PersistentClient(
        path=str(settings.chroma_dir), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    client.create_collection(settings.collection)  # Chroma's default embedding function
    with pytest.raises(RetrievalError, match="RAG_COLLECTION"):
        PolicyIndex(settings)


def test_collection_with_l2_distance_is_reported(settings):
    client = chromadb.PersistentClient(
        path=str(settings.chroma_dir), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    client.create_collection(
        settings.collection,
        embedding_function=MiniLMEmbeddingFunction(),  # type: ignore[arg-type]
        configuration={"hnsw": {"space": "l2"}},
    )
    with pytest.raises(RetrievalError, match="'l2' distance"):
        PolicyIndex(settings)


def test_failed_write_leaves_nothing_behind(small, index):
    class Broken(LocalEmbedder):
        def __init__(self) -> None:
            self.calls = 0

        def embed(self, texts):  # type: ignore[override]
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("boom")
            return get_embedder().embed(texts)

    import rag_core.ingest.index as index_module

    big = doc("leave.md", (LEAVE + "\n\n") * 120, small)
    assert len(big.chunks) > index_module.ADD_BATCH
    index._embedder = Broken()
    with pytest.raises(IngestError, match=r"^leave\.md: "):
        index.add_document(big)
    assert index.count() == 0


def test_closed_index_raises_retrieval_error(small):
    index = PolicyIndex(small)
    index.close()
    index.close()  # idempotent
    with pytest.raises(RetrievalError, match="closed"):
        index.count()


def test_huge_question_batches_are_split_but_give_the_same_answers(small, index, monkeypatch):
    import rag_core.ingest.index as index_module

    index.add_document(doc("leave.md", LEAVE, small))
    index.add_document(doc("safety.md", SAFETY, small))
    questions = ["holiday days?", "fire alarm?", "first aid?", "carry over?", "booking leave?"]
    whole = index.query(questions, 2)
    monkeypatch.setattr(index_module, "QUERY_BATCH", 2)
    split = index.query(questions, 2)
    assert [[h.chunk.id for h in r] for r in split] == [[h.chunk.id for h in r] for r in whole]
    assert len(split) == 5
