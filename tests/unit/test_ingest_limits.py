"""Bounded ingestion (issue 15 item 7): embedding in batches under the same Cancel and time budget as
parsing, nothing half-indexed when stopped, and oversized text refused before it is read."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from rag_core.errors import IngestError
from rag_core.ingest.control import (
    EMBED_BATCH,
    IngestCancelled,
    IngestControl,
    IngestTimedOut,
    embed_batch_size,
    embed_delay_s,
    step_text,
)
from rag_core.ingest.documents import parse_document, size_problem
from rag_core.ingest.embeddings import get_embedder
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.service import CANCELLED, cancel_message, ingest_bytes, ingest_paths
from rag_core.models import DEFAULT_COLLECTION
from rag_core.storage import HistoryStore

PARAGRAPH = "Annual leave. Employees receive 25 days of paid holiday per year plus public holidays."


def policy_text(n: int) -> bytes:
    """``n`` distinct paragraphs under numbered headings (small chunks → many batches)."""
    parts = []
    for i in range(n):
        if i % 5 == 0:
            parts.append(f"{i // 5 + 1}. Section {i // 5 + 1}")
        parts.append(f"{PARAGRAPH} Rule {i}: requests need {i % 9 + 1} days of notice.")
    return "\n\n".join(parts).encode()


class CountingEmbedder:
    """The real embedder, counting batch sizes and calling ``hook(call number)`` before each one."""

    def __init__(self, hook=None) -> None:
        self.inner = get_embedder()
        self.dimension = self.inner.dimension
        self.name = self.inner.name
        self.calls: list[int] = []
        self.hook = hook

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        if self.hook is not None:
            self.hook(len(self.calls))
        return self.inner.embed(texts)


@pytest.fixture
def small(settings):
    return settings.replace(chunk_size=150, chunk_overlap=0)


@pytest.fixture
def store(small):
    s = HistoryStore(small.db_path)
    yield s
    s.close()


def _state(index: PolicyIndex, store: HistoryStore) -> tuple:
    """What a user could see: the index's chunks and the catalog's documents and versions."""
    docs = store.list_documents()
    return (
        index.count(),
        sorted(index.chunks_of(d.name, d.collection)[0].id for d in docs if index.count()),
        [(d.name, d.version, d.sha256, d.chunks) for d in docs],
        [(v.version, v.sha256) for d in docs for v in store.document_versions(d.name, d.collection)],
    )


# --- batching --------------------------------------------------------------------------------
def test_embedding_runs_in_bounded_batches_and_reports_each_one(small, store, monkeypatch) -> None:
    monkeypatch.setenv("RAG_EMBED_BATCH", "16")
    counting = CountingEmbedder()
    seen: list[tuple[str, int, int]] = []
    with PolicyIndex(small, embedder=counting) as index:  # type: ignore[arg-type]
        out = ingest_bytes(
            "leave.txt",
            policy_text(60),
            settings=small,
            store=store,
            index=index,
            on_progress=lambda *a: seen.append(a),
        )
    assert out.status == "added" and out.chunks > 40
    assert max(counting.calls) <= 16 and sum(counting.calls) == out.chunks
    embedding = [(d, t) for stage, d, t in seen if stage == "embedding"]
    # "embedding chunk k of N" before every batch, then N of N
    assert [d for d, _ in embedding] == [*range(0, out.chunks, 16), out.chunks]
    assert {t for _, t in embedding} == {out.chunks}
    assert step_text("embedding", 16, out.chunks) == f"embedding chunk 17 of {out.chunks}"


def test_batch_size_and_test_delay_come_from_the_environment_only_when_set(monkeypatch) -> None:
    monkeypatch.delenv("RAG_EMBED_BATCH", raising=False)
    monkeypatch.delenv("RAG_TEST_EMBED_DELAY_S", raising=False)
    assert embed_batch_size() == EMBED_BATCH == 64 and embed_delay_s() == 0.0
    monkeypatch.setenv("RAG_EMBED_BATCH", "100000")
    monkeypatch.setenv("RAG_TEST_EMBED_DELAY_S", "999")
    assert embed_batch_size() == 256 and embed_delay_s() == 5.0  # clamped
    monkeypatch.setenv("RAG_EMBED_BATCH", "zero")
    monkeypatch.setenv("RAG_TEST_EMBED_DELAY_S", "soon")
    assert embed_batch_size() == EMBED_BATCH and embed_delay_s() == 0.0


# --- cancel between batches --------------------------------------------------------------------
def test_cancel_between_batches_leaves_index_and_catalog_as_they_were(small, store, monkeypatch) -> None:
    monkeypatch.setenv("RAG_EMBED_BATCH", "8")
    control = IngestControl(None)
    counting = CountingEmbedder()
    with PolicyIndex(small, embedder=counting) as index:  # type: ignore[arg-type]
        first = ingest_bytes(
            "first.md", b"# Pay\n\nMonthly, on the 25th.\n", settings=small, store=store, index=index
        )
        assert first.status == "added"
        before = _state(index, store)
        counting.calls.clear()
        counting.hook = lambda n: control.cancel() if n == 3 else None
        out = ingest_bytes(
            "big.txt", policy_text(60), settings=small, store=store, index=index, control=control
        )
        assert out.status == CANCELLED and out.chunks == 0 and out.version == 0
        assert out.error is not None and out.error.startswith(
            "big.txt: cancelled while embedding chunk 25 of"
        )
        assert "nothing of it was indexed" in out.error
        assert len(counting.calls) == 3  # stopped at the next batch, not at the end
        assert _state(index, store) == before  # nothing half-indexed, nothing recorded
    assert not (small.uploads_dir / "big.txt").exists()  # no copy kept either


def test_cancel_of_a_new_version_keeps_the_old_one(small, store, monkeypatch) -> None:
    monkeypatch.setenv("RAG_EMBED_BATCH", "8")
    control = IngestControl(None)
    counting = CountingEmbedder()
    with PolicyIndex(small, embedder=counting) as index:  # type: ignore[arg-type]
        assert (
            ingest_bytes("h.txt", policy_text(30), settings=small, store=store, index=index).status == "added"
        )
        before = _state(index, store)
        counting.calls.clear()
        counting.hook = lambda n: control.cancel() if n == 2 else None
        out = ingest_bytes(
            "h.txt", policy_text(31), settings=small, store=store, index=index, control=control
        )
        assert out.status == CANCELLED
        assert _state(index, store) == before
        assert [v.version for v in store.document_versions("h.txt", DEFAULT_COLLECTION)] == [1]


def test_multi_file_cancel_keeps_earlier_files_and_names_them(ws_settings) -> None:
    from rag_core.workspace import Workspace

    ws = Workspace(ws_settings)
    try:
        control = IngestControl(None)

        def on_progress(i: int, stage: str, done: int, total: int) -> None:
            if i == 1:
                control.cancel()  # the user clicks Cancel while the second file is embedded

        outcomes = ws.ingest_files(
            [
                ("a.md", b"# Leave\n\n25 days.\n"),
                ("b.md", b"# Pay\n\nMonthly.\n"),
                ("c.md", b"# Car\n\nNo.\n"),
            ],
            on_progress=on_progress,
            control=control,
        )
        assert [o.status for o in outcomes] == ["added", CANCELLED, CANCELLED]
        assert [d.name for d in ws.documents()] == ["a.md"]
        message = cancel_message(outcomes)
        assert message == (
            "Indexing cancelled — kept a.md (indexed before the cancel); nothing of b.md was indexed; "
            "not started: c.md."
        )
    finally:
        ws.close()


def test_cancel_message_when_nothing_was_kept() -> None:
    from rag_core.ingest.service import IngestOutcome

    stopped = IngestOutcome("big.txt", CANCELLED, error="big.txt: cancelled while embedding chunk 9 of 90")
    assert cancel_message([stopped]) == (
        "Indexing cancelled — nothing indexed; the collection is as it was before the upload; "
        "nothing of big.txt was indexed."
    )
    assert cancel_message([IngestOutcome("a.md", "added")]) is None


# --- time budget -----------------------------------------------------------------------------
def test_time_budget_stops_embedding_with_a_clear_message(small, store, monkeypatch) -> None:
    monkeypatch.setenv("RAG_EMBED_BATCH", "8")
    ticks = itertools.count()
    control = IngestControl(10.0, clock=lambda: float(next(ticks)))  # 1 "second" per check
    with PolicyIndex(small) as index:
        before = _state(index, store)
        out = ingest_bytes(
            "big.txt", policy_text(80), settings=small, store=store, index=index, control=control
        )
        assert out.status == "error" and out.error is not None
        assert out.error.startswith(
            "big.txt: indexing took longer than the 10 s limit (stopped while embedding chunk"
        )
        assert "nothing of it was indexed" in out.error and "RAG_INGEST_BUDGET_S" in out.error
        assert _state(index, store) == before


def test_control_checks_name_the_step() -> None:
    control = IngestControl(None)
    control.check("x.pdf", "reading", 3, 10)  # fine
    control.cancel()
    with pytest.raises(IngestCancelled, match=r"^x\.pdf: cancelled while reading page 4 of 10 "):
        control.check("x.pdf", "reading", 3, 10)
    late = IngestControl(5.0, clock=iter([0.0, 9.0]).__next__)
    with pytest.raises(IngestTimedOut, match=r"^x\.pdf: indexing took longer than the 5 s limit"):
        late.check("x.pdf")
    assert issubclass(IngestTimedOut, IngestError) and issubclass(IngestCancelled, IngestError)


def test_parsing_a_pdf_is_stopped_at_the_next_page(small, store) -> None:
    from tests.fixtures.pdfs import text_pdf

    control = IngestControl(None)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "reading" and done == 2:
            control.cancel()

    data = text_pdf([f"Page {i}. Leave is 25 days. " * 10 for i in range(30)])
    out = ingest_bytes("long.pdf", data, settings=small, store=store, control=control, on_progress=progress)
    assert out.status == CANCELLED and "cancelled while reading page" in (out.error or "")
    assert store.list_documents() == []


# --- early refusal of oversized files -----------------------------------------------------------
def test_oversized_text_is_refused_from_its_size_with_name_size_and_limit(settings) -> None:
    mb = 1024 * 1024
    problem = size_problem("dump.txt", 49 * mb, settings)
    assert problem is not None
    assert problem.startswith("dump.txt: the file is 49.0 MB of text, above the 5 MB limit for .txt files")
    assert "Split it into at least 10 smaller files" in problem and "RAG_MAX_TEXT_MB" in problem
    assert size_problem("dump.md", 6 * mb, settings) is not None
    assert size_problem("page.html", 6 * mb, settings) is not None
    assert size_problem("dump.txt", 4 * mb, settings) is None
    assert size_problem("big.pdf", 49 * mb, settings) is None  # PDFs: pages and the upload limit
    assert "above the 50 MB limit" in (size_problem("big.pdf", 51 * mb, settings) or "")
    assert "empty" in (size_problem("x.txt", 0, settings) or "")


def test_oversized_text_bytes_are_refused_before_decoding(settings, monkeypatch) -> None:
    import rag_core.ingest.documents as documents

    def boom(*a, **k):  # pragma: no cover - the point is that it is never called
        raise AssertionError("the text was decoded")

    monkeypatch.setattr(documents, "read_text", boom)
    data = b"a" * (settings.max_text_mb * 1024 * 1024 + 1)
    with pytest.raises(IngestError, match=r"^big\.txt: the file is 5\.0 MB of text, above the 5 MB limit"):
        parse_document("big.txt", data, settings)


def test_ingest_paths_refuses_a_huge_file_without_reading_it(settings, tmp_path: Path, monkeypatch) -> None:
    huge = tmp_path / "dump.txt"
    with huge.open("wb") as fh:  # sparse: 49 MB on paper, nothing on disk
        fh.truncate(49 * 1024 * 1024)
    read: list[Path] = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or original(self))
    store = HistoryStore(settings.db_path)
    try:
        [out] = list(ingest_paths([huge], settings=settings, store=store))
    finally:
        store.close()
    assert out.status == "error" and huge not in read
    assert out.error is not None and out.error.startswith(
        "dump.txt: the file is 49.0 MB of text, above the 5 MB"
    )


def test_docx_whose_text_unpacks_too_large_is_refused_before_parsing(settings) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:p>" + " " * (41 * 1024 * 1024) + "</w:p>")
    with pytest.raises(
        IngestError, match=r"^huge\.docx: its text unpacks to 41 MB of Word XML, above the 40 MB"
    ):
        parse_document("huge.docx", buf.getvalue(), settings)


def test_settings_for_the_limits(data_dir) -> None:
    from rag_core.errors import InputError
    from rag_core.settings import Settings

    s = Settings.load(
        env={"RAG_DATA_DIR": str(data_dir), "RAG_MAX_TEXT_MB": "3", "RAG_INGEST_BUDGET_S": "60"},
        secrets_path=data_dir / "none.toml",
    )
    assert s.max_text_mb == 3 and s.ingest_budget_s == 60.0
    with pytest.raises(InputError, match="RAG_INGEST_BUDGET_S"):
        Settings.load(
            env={"RAG_DATA_DIR": str(data_dir), "RAG_INGEST_BUDGET_S": "0"},
            secrets_path=data_dir / "none.toml",
        )


# --- background jobs (the Documents page's Cancel) -------------------------------------------
@pytest.fixture
def ws_settings(settings):
    return settings.replace(chunk_size=150, chunk_overlap=0)


def test_background_ingest_can_be_cancelled_and_reports_progress(ws_settings, monkeypatch) -> None:
    from rag_core.workspace import Workspace

    monkeypatch.setenv("RAG_EMBED_BATCH", "4")
    ws = Workspace(ws_settings)
    try:
        ws.ingest_files([("a.md", b"# Leave\n\n25 days.\n")])
        before = [(d.name, d.version) for d in ws.documents()]
        reached = __import__("threading").Event()
        original = PolicyIndex._write

        def slow_write(self, doc, collection, on_progress):  # type: ignore[no-untyped-def]
            def progress(done: int, total: int) -> None:
                on_progress(done, total)
                if done >= 8:
                    reached.set()
                    assert job_cancelled.wait(30)

            return original(self, doc, collection, progress)

        job_cancelled = __import__("threading").Event()
        monkeypatch.setattr(PolicyIndex, "_write", slow_write)
        job = ws.start_ingest([("big.txt", policy_text(60))])
        assert reached.wait(120)
        view = ws.ingest_job(job)
        assert view is not None and not view.finished and view.stage == "embedding"
        assert view.text.startswith("big.txt: embedding chunk 9 of ") and view.text.endswith("(1 of 1)")
        assert ws.cancel_ingest(job)
        job_cancelled.set()
        assert ws.wait_ingest(job, 120)
        done = ws.ingest_job(job)
        assert done is not None and done.finished and [o.status for o in done.outcomes] == [CANCELLED]
        assert [(d.name, d.version) for d in ws.documents()] == before
        assert not ws.cancel_ingest(job)  # already over
        assert ws.ingest_job("nope") is None
    finally:
        ws.close()


def test_a_reindex_of_the_same_bytes_cannot_be_stopped_half_way(small, store, monkeypatch) -> None:
    """Same bytes, new chunk settings: the old chunks must go first, so a Cancel after that point
    lets the write finish instead of leaving the document missing from the index."""
    monkeypatch.setenv("RAG_EMBED_BATCH", "8")
    data = policy_text(30)
    with PolicyIndex(small) as index:
        assert ingest_bytes("h.txt", data, settings=small, store=store, index=index).status == "added"
        bigger = small.replace(chunk_size=300)
        control = IngestControl(None)
        counting = CountingEmbedder(hook=lambda n: control.cancel() if n == 2 else None)
        index._embedder = counting  # type: ignore[assignment]
        out = ingest_bytes("h.txt", data, settings=bigger, store=store, index=index, control=control)
        assert out.status == "replaced" and control.cancelled
        assert index.count() == out.chunks == len(index.chunks_of("h.txt"))
        assert [d.chunks for d in store.list_documents()] == [out.chunks]
