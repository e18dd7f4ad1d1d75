"""Collections scope retrieval and runs; re-uploads keep version records (issue 10, items 5 and 6)."""

from __future__ import annotations

import sqlite3

import pytest

from rag_core.errors import InputError
from rag_core.models import DEFAULT_COLLECTION, QAItem
from rag_core.reporting.compare import document_warnings
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.storage.schema import MIGRATIONS, SCHEMA_VERSION
from rag_core.workspace import Workspace

NORTH = b"# Expenses\n\nNorthwind refunds purchases over 50 pounds only with a receipt.\n"
SOUTH = b"# Expenses\n\nSouthbank refunds purchases over 75 dollars only with a receipt.\n"
QUESTION = "Which purchases need a receipt to be refunded?"


@pytest.fixture
def ws(settings: Settings):
    w = Workspace(settings)
    yield w
    w.close()


def _two_organisations(ws: Workspace) -> None:
    """The same file name for two organisations, each in its own collection."""
    assert ws.ingest_files([("expenses.md", NORTH)], collection="Northwind")[0].status == "added"
    assert ws.ingest_files([("expenses.md", SOUTH)], collection="Southbank")[0].status == "added"


def test_search_only_returns_chunks_of_the_chosen_collection(ws: Workspace) -> None:
    _two_organisations(ws)
    assert ws.collections() == [DEFAULT_COLLECTION, "Northwind", "Southbank"]
    north = ws.search(QUESTION, 4, collection="Northwind")
    south = ws.search(QUESTION, 4, collection="Southbank")
    assert [h.chunk.text.splitlines()[-1] for h in north] == [NORTH.decode().splitlines()[-1]]
    assert ["75 dollars" in h.chunk.text for h in south] == [True]
    assert ws.search(QUESTION, 4) == []  # the default collection is empty
    assert [(d.collection, d.name) for d in ws.documents()] == [
        ("Northwind", "expenses.md"),
        ("Southbank", "expenses.md"),
    ]
    # Deleting one organisation's file leaves the other's alone.
    assert ws.delete_document("expenses.md", "Northwind") == 1
    assert ws.search(QUESTION, 4, collection="Northwind") == []
    assert len(ws.search(QUESTION, 4, collection="Southbank")) == 1


def test_a_run_retrieves_only_from_its_collection_and_stores_the_versions_it_used(ws: Workspace) -> None:
    _two_organisations(ws)
    ws.save_question_set("Southbank questions", [QAItem(QUESTION, "Purchases over 75 dollars.")])
    ws.bind_question_set("Southbank questions", "Southbank")
    run_id = ws.start_run("Southbank questions", suite="none")  # the bound collection by default
    assert ws.wait_run(run_id, timeout=120)
    run = ws.run(run_id)
    assert run.status == "completed", ws.summary(run_id).failure
    assert run.config["collection"] == "Southbank"
    [doc] = run.config["documents"]
    assert doc["name"] == "expenses.md" and doc["version"] == 1 and len(doc["sha256"]) == 64
    [result] = ws.results(run_id)
    assert {c["source"] for c in result.contexts} == {"expenses.md"}
    assert all(c["doc_sha256"] == doc["sha256"] for c in result.contexts)
    assert "75 dollars" in (result.answer or "") and "50 pounds" not in (result.answer or "")
    # A bound set cannot be run on another collection; unknown collections are refused.
    with pytest.raises(InputError, match="bound to the collection 'Southbank'"):
        ws.start_run("Southbank questions", suite="none", collection="Northwind")
    with pytest.raises(InputError, match="no document collection named"):
        ws.bind_question_set("Southbank questions", "Nowhere")
    assert next(s for s in ws.question_sets() if s.name == "Southbank questions").collection == "Southbank"


def test_a_changed_upload_is_a_new_version_with_the_sections_that_changed(ws: Workspace) -> None:
    v1 = b"# Leave\n\nStaff get 25 days.\n\n# Expenses\n\nReceipts over 50 pounds.\n"
    v2 = b"# Leave\n\nStaff get 27 days.\n\n# Expenses\n\nReceipts over 50 pounds.\n\n# Pensions\n\n5 percent.\n"
    first = ws.ingest_files([("handbook.md", v1)])[0]
    assert (first.status, first.version, first.sections_changed) == ("added", 1, ())
    assert ws.ingest_files([("handbook.md", v1)])[0].version == 1  # same bytes: no new version
    second = ws.ingest_files([("handbook.md", v2)])[0]
    assert (second.status, second.version) == ("replaced", 2)
    assert second.sections_changed == ("Leave", "Pensions")  # edited, added; "Expenses" is unchanged
    versions = ws.document_versions("handbook.md")
    assert [(v.version, v.sections_changed) for v in versions] == [(2, ("Leave", "Pensions")), (1, ())]
    assert versions[0].sha256 != versions[1].sha256 and versions[0].chunks >= 3
    [doc] = ws.documents()
    assert (doc.version, doc.format) == (2, "md")
    # The history survives a delete: the next upload continues the numbering.
    ws.delete_document("handbook.md")
    assert [v.version for v in ws.document_versions("handbook.md")] == [2, 1]
    assert ws.ingest_files([("handbook.md", v1)])[0].version == 3


def test_history_warns_when_two_runs_used_different_versions(ws: Workspace) -> None:
    ws.ingest_files([("policy.md", NORTH)])
    ws.save_question_set("q", [QAItem(QUESTION, "")])
    first = ws.start_run("q", suite="none")
    assert ws.wait_run(first, timeout=120)
    ws.ingest_files([("policy.md", NORTH + b"\nReceipts are kept for six years.\n")])
    second = ws.start_run("q", suite="none")
    assert ws.wait_run(second, timeout=120)
    warnings = ws.compare(first, second).warnings
    assert any(f"policy.md v1 in #{first} vs v2 in #{second}" in w for w in warnings), warnings
    same = ws.compare(second, second).warnings
    assert not any("document versions" in w for w in same)
    assert document_warnings(ws.run(first), ws.run(first)) == []


def test_collection_names_and_deleting_collections(ws: Workspace) -> None:
    assert ws.create_collection("  Harbour   Lane ") == "Harbour Lane"
    with pytest.raises(InputError, match="needs a name"):
        ws.create_collection("   ")
    with pytest.raises(InputError, match="cannot be deleted"):
        ws.delete_collection(DEFAULT_COLLECTION)
    ws.ingest_files([("a.md", NORTH)], collection="Harbour Lane")
    with pytest.raises(InputError, match="still has 1 document"):
        ws.delete_collection("Harbour Lane")
    ws.delete_document("a.md", "Harbour Lane")
    assert ws.delete_collection("Harbour Lane") is True
    assert ws.collections() == [DEFAULT_COLLECTION]


def test_schema_migration_keeps_existing_documents_as_version_one(tmp_path) -> None:
    db = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(db)
    for migration in MIGRATIONS[:2]:  # a database written before collections existed
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO documents VALUES ('old.pdf', 'abc', 3, 7, 1234, '2026-11-01T10:00:00+00:00')")
    conn.execute("INSERT INTO question_sets VALUES ('s', '2026-11-01', '2026-11-01')")
    conn.commit()
    conn.close()
    with HistoryStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        [doc] = store.list_documents()
        assert (doc.collection, doc.name, doc.version, doc.chunks) == (DEFAULT_COLLECTION, "old.pdf", 1, 7)
        [v] = store.document_versions("old.pdf")
        assert (v.version, v.sha256, v.sections_changed) == (1, "abc", ())
        assert store.list_question_sets()[0].collection is None
        assert store.list_collections() == [DEFAULT_COLLECTION]


def test_chunks_indexed_before_collections_join_the_default_collection(settings: Settings) -> None:
    import chromadb

    from rag_core.ingest.embeddings import MiniLMEmbeddingFunction, get_embedder
    from rag_core.ingest.index import PolicyIndex

    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    client = chromadb.PersistentClient(
        path=str(settings.chroma_dir), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    old = client.get_or_create_collection(
        settings.collection,
        embedding_function=MiniLMEmbeddingFunction(),  # type: ignore[arg-type]
        configuration={"hnsw": {"space": "cosine"}},
    )
    text = "Staff get 27 days of annual leave."
    old.add(
        ids=["abc:0"],
        documents=[text],
        embeddings=get_embedder().embed([text]),
        metadatas=[{"source": "old.md", "page": 1, "position": 0, "doc_sha256": "abc", "pages": 1}],
    )
    del old, client
    with PolicyIndex(settings) as index:
        [doc] = index.list_documents(DEFAULT_COLLECTION)
        assert (doc.name, doc.collection) == ("old.md", DEFAULT_COLLECTION)
        assert index.query(["annual leave"], 1)[0][0].chunk.text == text
