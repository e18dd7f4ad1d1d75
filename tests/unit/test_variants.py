"""Chunking per configuration (a collection per chunk size and overlap, built on first use) and MMR."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag_core.errors import RetrievalError
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.service import delete_document, ingest_bytes
from rag_core.ingest.variants import (
    RetrievalIndex,
    collection_for,
    open_index,
    pending_documents,
    retrieve_with,
    sync_variant,
)
from rag_core.settings import Settings
from rag_core.storage import HistoryStore

LEAVE = "Full-time employees receive twenty-five days of paid annual leave each calendar year."
DOC = "\n\n".join(
    [
        LEAVE,
        LEAVE.replace("receive", "get"),
        LEAVE.replace("paid", "paid holiday"),
        "Unused annual leave of up to five days may be carried over into the next year with approval.",
        "Expense claims must be submitted within thirty days with itemised receipts attached.",
        "The office is closed on public holidays; emergency cover is arranged by the facilities team.",
    ]
)


@pytest.fixture
def indexed(settings: Settings) -> Iterator[tuple[Settings, HistoryStore]]:
    s = settings.replace(chunk_size=120, chunk_overlap=0)
    store = HistoryStore(s.db_path)
    out = ingest_bytes("leave.md", DOC.encode(), settings=s, store=store)
    assert out.status == "added", out
    yield s, store
    store.close()


def test_a_chunking_gets_its_own_collection_built_once(indexed: tuple[Settings, HistoryStore]) -> None:
    s, store = indexed
    assert collection_for(s, 120, 0) == s.collection
    assert collection_for(s, 300, 50) == f"{s.collection}-c300-o50"
    assert sync_variant(s, 120, 0).built is False  # the app's own chunking: the main collection
    assert pending_documents(s, 300, 50) == 1
    progress: list[tuple[int, int, str]] = []
    first = sync_variant(s, 300, 50, on_progress=lambda d, t, n: progress.append((d, t, n)))
    assert first.built and first.added == 1 and first.chunks >= 2
    assert progress[0] == (0, 1, "leave.md") and progress[-1] == (1, 1, "")
    assert pending_documents(s, 300, 50) == 0
    assert sync_variant(s, 300, 50).built is False  # reused
    with PolicyIndex(s) as main:
        n_main = main.count()
    index, build = open_index(s, 300, 50)
    with index:
        assert not build.built and 0 < index.count() < n_main  # bigger chunks → fewer of them
        got = retrieve_with(index, ["How many days of annual leave?", "  "], 2, "similarity")
    assert len(got[0]) == 2 and got[1] == []
    # the document is deleted from the main collection → the variant follows
    delete_document("leave.md", settings=s, store=store)
    assert sync_variant(s, 300, 50).removed == 1


def test_a_variant_cannot_be_built_without_the_original_file(indexed: tuple[Settings, HistoryStore]) -> None:
    s, _ = indexed
    (s.uploads_dir / "leave.md").unlink()
    with pytest.raises(RetrievalError, match=r"leave\.md: its original file is no longer stored"):
        sync_variant(s, 400, 40)


def test_mmr_skips_near_duplicates_that_similarity_returns(indexed: tuple[Settings, HistoryStore]) -> None:
    s, _ = indexed
    q = "How many days of paid annual leave do full-time employees get?"
    with RetrievalIndex(s) as index:
        sim = retrieve_with(index, [q], 3, "similarity")[0]
        mmr = retrieve_with(index, [q], 3, "mmr")[0]
    dupes = lambda chunks: sum("twenty-five days" in c.chunk.text for c in chunks)  # noqa: E731
    assert dupes(sim) == 3  # the three near-identical sentences
    assert dupes(mmr) < 3 and mmr[0].chunk.id == sim[0].chunk.id  # the best one first, then diversity
    assert all(0.0 <= c.score <= 1.0 for c in mmr)
