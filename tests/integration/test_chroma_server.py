"""Server mode: with a Chroma host set, the index talks to Chroma's own server (``chroma run``).

The same behaviour checks run against both backends (``embedded`` = PersistentClient under the
data dir, ``server`` = HttpClient to a real ``chroma run`` on loopback), a cross-check ingests the
same documents into both and compares every read, and the CLI runs end to end against the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import chromadb
import pytest

import rag_core.ingest.index as index_module
from rag_core.errors import IngestError, RetrievalError
from rag_core.ingest.documents import parse_document
from rag_core.ingest.embeddings import MiniLMEmbeddingFunction
from rag_core.ingest.index import PolicyIndex
from rag_core.models import ParsedDocument
from rag_core.settings import Settings
from tests.conftest import ROOT, SAMPLE_PDF, SAMPLE_QUESTIONS
from tests.fixtures.chroma_server import (  # noqa: F401  (the fixture `chroma_server`)
    ChromaServer,
    chroma_server_fixture,
    free_port,
    start_server,
    unique_collection,
)
from tests.fixtures.pdfs import text_pdf
from tests.unit.test_index import CountingEmbedder

pytestmark = pytest.mark.slow

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
QUESTIONS = [
    "How many days of annual leave do I get?",
    "When is the fire alarm tested?",
    "Who approves my holiday?",
    "Where do I find a first aider?",
    "Can I keep unused holiday?",
]


@pytest.fixture(params=["embedded", "server"])
def backend(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Small-chunk settings for each backend; the server ones use a collection of their own."""
    small = settings.replace(chunk_size=120, chunk_overlap=0)
    if request.param == "embedded":
        return small
    server: ChromaServer = request.getfixturevalue("chroma_server")
    return server.settings_for(small)


def doc(name: str, text: str, settings: Settings) -> ParsedDocument:
    return parse_document(name, text.encode(), settings)


def two_page_pdf(name: str, settings: Settings) -> ParsedDocument:
    return parse_document(name, text_pdf(["Leave is 25 days. " * 20, "Sick pay is 10 days. " * 20]), settings)


def assert_used_backend(settings: Settings) -> None:
    """Server mode must leave no local Chroma folder; embedded mode must have one."""
    assert settings.chroma_dir.exists() is (settings.chroma_host is None)


# --- the same behaviour on both backends ------------------------------------------------------
def test_added_unchanged_replaced_and_deleted(backend: Settings) -> None:
    counting = CountingEmbedder()
    with PolicyIndex(backend, embedder=counting) as index:  # type: ignore[arg-type]
        first = doc("leave.md", LEAVE, backend)
        assert index.add_document(first) == "added"
        assert index.count() == len(first.chunks) == 3

        calls = len(counting.calls)
        assert index.add_document(doc("leave.md", LEAVE, backend)) == "unchanged"
        assert len(counting.calls) == calls  # nothing embedded

        second = doc("leave.md", LEAVE.replace("25 days", "27 days"), backend)
        assert index.add_document(second) == "replaced"
        assert [c.id for c in index.chunks_of("leave.md")] == [c.id for c in second.chunks]
        assert "27 days" in index.chunks_of("leave.md")[0].text and index.count() == 3

        resplit = doc("leave.md", LEAVE.replace("25 days", "27 days"), backend.replace(chunk_size=400))
        assert index.add_document(resplit) == "replaced"  # same bytes, other split: ids collide
        assert [c.text for c in index.chunks_of("leave.md")] == [c.text for c in resplit.chunks]

        with pytest.raises(IngestError, match=r"^copy\.md: .*'leave\.md'"):
            index.add_document(doc("copy.md", LEAVE.replace("25 days", "27 days"), backend))

        index.add_document(doc("safety.md", SAFETY, backend))
        assert index.delete_document("leave.md") == len(resplit.chunks)
        assert index.delete_document("leave.md") == 0
        assert index.delete_document("never-added.pdf") == 0
        assert [d.name for d in index.list_documents()] == ["safety.md"]
        assert index.chunks_of("leave.md") == []
        assert index.count() == 2
    assert_used_backend(backend)


def test_list_documents_and_chunks_of(backend: Settings) -> None:
    with PolicyIndex(backend) as index:
        assert index.list_documents() == []
        assert index.chunks_of("Handbook.pdf") == []
        pdf = two_page_pdf("Handbook.pdf", backend)
        index.add_document(pdf)
        index.add_document(doc("safety.md", SAFETY, backend))

        docs = index.list_documents()
        assert [d.name for d in docs] == ["Handbook.pdf", "safety.md"]
        hb = docs[0]
        assert (hb.sha256, hb.pages, hb.chunks, hb.size_bytes) == (
            pdf.sha256,
            2,
            len(pdf.chunks),
            pdf.size_bytes,
        )
        assert datetime.fromisoformat(hb.added_at).tzinfo is not None
        assert index.indexed_sha256("Handbook.pdf") == pdf.sha256
        assert index.indexed_sha256("missing.pdf") is None

        chunks = index.chunks_of("Handbook.pdf")
        assert chunks == list(pdf.chunks)  # position order, pages kept
        assert {c.page for c in chunks} == {1, 2}
    assert_used_backend(backend)


def test_query_orders_by_score_in_one_batch(backend: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingEmbedder()
    with PolicyIndex(backend, embedder=counting) as index:  # type: ignore[arg-type]
        assert index.query(["How much holiday?", "Fire alarm?"], 4) == [[], []]
        assert index.query([], 4) == []
        with pytest.raises(RetrievalError, match="top_k"):
            index.query(["x"], 0)

        index.add_document(doc("leave.md", LEAVE, backend))
        index.add_document(doc("safety.md", SAFETY, backend))
        counting.calls.clear()
        results = index.query(QUESTIONS, 3)
        assert counting.calls == [len(QUESTIONS)]  # one embedding call for all questions

        leave, fire = results[0], results[1]
        assert "25 days" in leave[0].chunk.text and leave[0].chunk.source == "leave.md"
        assert "fire alarm" in fire[0].chunk.text and fire[0].chunk.source == "safety.md"
        assert leave[0].score > 0.4
        for hits in results:
            assert len(hits) == 3
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            assert all(0.0 <= s <= 1.0 for s in scores)

        assert len(index.query(["first aid"], 50)[0]) == index.count() == 5  # top_k > chunks

        monkeypatch.setattr(index_module, "QUERY_BATCH", 2)  # split batches give the same answers
        split = index.query(QUESTIONS, 3)
        assert [[h.chunk.id for h in r] for r in split] == [[h.chunk.id for h in r] for r in results]
    assert_used_backend(backend)


def test_reopened_by_a_new_instance_and_by_plain_chromadb(backend: Settings) -> None:
    with PolicyIndex(backend) as index:
        index.add_document(doc("leave.md", LEAVE, backend))
        index.add_document(doc("safety.md", SAFETY, backend))
        before = index.query(QUESTIONS, 2)

    with PolicyIndex(backend) as again:
        assert [d.name for d in again.list_documents()] == ["leave.md", "safety.md"]
        assert again.count() == 5
        after = again.query(QUESTIONS, 2)
    assert [[(h.chunk.id, round(h.score, 5)) for h in r] for r in after] == [
        [(h.chunk.id, round(h.score, 5)) for h in r] for r in before
    ]

    # A plain client, no embedding function given: the collection remembers ours by name.
    client_settings = chromadb.Settings(anonymized_telemetry=False)
    if backend.chroma_host:
        client = chromadb.HttpClient(
            host=backend.chroma_host, port=backend.chroma_port, settings=client_settings
        )
    else:
        client = chromadb.PersistentClient(path=str(backend.chroma_dir), settings=client_settings)
    collection = client.get_collection(backend.collection)
    assert collection.configuration["embedding_function"].name() == MiniLMEmbeddingFunction.name()
    assert (collection.configuration.get("hnsw") or {}).get("space") == "cosine"
    by_text = collection.query(query_texts=["fire alarm test"], n_results=1)
    assert "fire alarm" in by_text["documents"][0][0]
    assert_used_backend(backend)


def test_both_backends_return_identical_reads(
    settings: Settings, chroma_server: ChromaServer, tmp_path: Path
) -> None:
    """Same documents in, same documents, chunks, ranking and scores out."""
    embedded = settings.replace(chunk_size=120, chunk_overlap=0)
    served = chroma_server.settings_for(embedded.replace(data_dir=tmp_path / "served"))
    docs = [
        two_page_pdf("Handbook.pdf", embedded),
        doc("leave.md", LEAVE, embedded),
        doc("safety.md", SAFETY, embedded),
    ]
    reads = []
    for s in (embedded, served):
        with PolicyIndex(s) as index:
            statuses = [index.add_document(d) for d in docs]
            reads.append(
                {
                    "statuses": statuses,
                    "docs": [dataclasses.replace(d, added_at="") for d in index.list_documents()],
                    "chunks": {d.name: index.chunks_of(d.name) for d in docs},
                    "hits": index.query(QUESTIONS, 4),
                    "count": index.count(),
                }
            )
    local, remote = reads
    assert remote["statuses"] == local["statuses"] == ["added"] * 3
    assert remote["docs"] == local["docs"] and remote["chunks"] == local["chunks"]
    assert remote["count"] == local["count"]
    for lhits, rhits in zip(local["hits"], remote["hits"], strict=True):
        # Compared by content: chunks with identical text tie exactly, and each backend may
        # order (or cut at top_k) such twins differently.
        assert [(h.chunk.source, h.chunk.text) for h in rhits] == [
            (h.chunk.source, h.chunk.text) for h in lhits
        ]
        assert [h.score for h in rhits] == pytest.approx([h.score for h in lhits], abs=1e-4)
    assert any(  # the tie case is really exercised
        len({h.chunk.text for h in hits}) < len(hits) for hits in local["hits"]
    )
    assert_used_backend(embedded)
    assert_used_backend(served)


# --- server lost and back ---------------------------------------------------------------------
def test_server_going_away_gives_clear_errors_and_data_survives_a_restart(
    tmp_path: Path, settings: Settings
) -> None:
    server = start_server(tmp_path / "own-server")  # its own server: this test stops it
    try:
        s = server.settings_for(settings.replace(chunk_size=120, chunk_overlap=0))
        where = f"Chroma server at 127.0.0.1:{server.port}"
        index = PolicyIndex(s)
        index.add_document(doc("leave.md", LEAVE, s))

        server.stop()
        with pytest.raises(RetrievalError, match="RAG_CHROMA_HOST") as read_err:
            index.query(["How much holiday?"], 2)
        assert where in str(read_err.value) and "chroma run" in str(read_err.value)
        with pytest.raises(RetrievalError, match=where):
            index.list_documents()
        with pytest.raises(IngestError, match=rf"^safety\.md: .*{where}"):
            index.add_document(doc("safety.md", SAFETY, s))
        with pytest.raises(IngestError, match=rf"^leave\.md: .*{where}"):
            index.delete_document("leave.md")
        with pytest.raises(RetrievalError, match=rf"Cannot reach the {where}.*RAG_CHROMA_HOST"):
            PolicyIndex(s)

        server.start()  # same --path, same port
        assert [d.name for d in index.list_documents()] == ["leave.md"]  # old instance reconnects
        with PolicyIndex(s) as fresh:
            assert fresh.count() == 3
            assert "25 days" in fresh.query(["How many days of annual leave?"], 1)[0][0].chunk.text
        index.close()
        assert_used_backend(s)
    finally:
        server.stop()


# --- the CLI end to end -----------------------------------------------------------------------
def _cli(data_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "ANTHROPIC_"))}
    env.update(
        ANONYMIZED_TELEMETRY="False",
        HF_HUB_OFFLINE="1",
        RAGAS_DO_NOT_TRACK="true",
        RAG_SECRETS_FILE=os.devnull + ".no-secrets.toml",
        **extra,
    )
    return env


def test_cli_ingests_and_runs_against_the_server(tmp_path: Path, chroma_server: ChromaServer) -> None:
    data_dir = tmp_path / "D"
    collection = unique_collection()
    env = _cli_env(
        RAG_CHROMA_HOST=chroma_server.host, RAG_CHROMA_PORT=str(chroma_server.port), RAG_COLLECTION=collection
    )

    ingest = _cli(data_dir, env, "ingest", str(SAMPLE_PDF))
    assert ingest.returncode == 0, ingest.stderr
    assert f"added     {SAMPLE_PDF.name}" in ingest.stdout

    out = tmp_path / "out.json"
    run = _cli(
        data_dir,
        env,
        "run",
        "--questions",
        str(SAMPLE_QUESTIONS),
        "--backend",
        "offline",
        "--suite",
        "none",
        "--json",
        str(out),
        "--quiet",
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(out.read_text())
    assert summary["status"] == "completed" and summary["n_questions"] == 10 and summary["errors"] == 0
    for r in summary["results"]:
        assert r["answer"], r
        assert r["contexts"] and all(c["source"] == SAMPLE_PDF.name for c in r["contexts"]), r

    assert not (data_dir / "chroma").exists()  # nothing stored locally: the server holds the index
    served = Settings(
        data_dir=tmp_path / "elsewhere",
        chroma_host=chroma_server.host,
        chroma_port=chroma_server.port,
        collection=collection,
    )
    with PolicyIndex(served) as index:
        assert [d.name for d in index.list_documents()] == [SAMPLE_PDF.name]


def test_cli_with_an_unreachable_server_says_how_to_fix_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "D"
    port = free_port()
    env = _cli_env(RAG_CHROMA_HOST="127.0.0.1", RAG_CHROMA_PORT=str(port))
    proc = _cli(data_dir, env, "ingest", str(SAMPLE_PDF))
    assert proc.returncode != 0
    assert f"Cannot reach the Chroma server at 127.0.0.1:{port}" in proc.stderr
    assert "chroma run" in proc.stderr and "RAG_CHROMA_HOST" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (data_dir / "chroma").exists()
