"""Documents page: upload several files (one bad), list, preview chunks, search, re-index, delete."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import texts
from tests.conftest import SAMPLE_PDF

PAGE = "pages/documents.py"


def index_and_wait(at: AppTest, key: str = "docs.index", timeout: float = 240) -> AppTest:
    """Click an index button, then rerun until the background ingest has ended (fragments do not
    tick in AppTest). Bounded in count and time."""
    at.button(key=key).click().run()
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout * 10)):
        if "docs.ingest_job" in at.session_state:
            assert time.monotonic() < deadline, "the ingest did not finish"
            time.sleep(0.1)
            at.run()
        else:
            break
    assert not at.exception, [e.value for e in at.exception]
    return at


def _documents_table(at: AppTest) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "Document" in df.value.columns)


def test_upload_indexes_good_files_and_names_the_bad_one(app, empty_dir: Path) -> None:
    at = app(empty_dir)
    uploader = at.file_uploader(key="docs.upload")
    assert uploader.accept_multiple_files
    assert set(uploader.allowed_type) >= {".pdf", ".txt", ".md"}
    uploader.upload(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes(), "application/pdf")
    uploader.upload("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf")
    uploader.upload(
        "notes.md", b"# Remote work\n\nStaff may work from home two days a week.\n", "text/markdown"
    )
    at.run()
    index_and_wait(at)
    assert not at.exception, [e.value for e in at.exception]

    errors = texts(at, "error")
    assert len(errors) == 1 and "broken" in errors[0]
    successes = " ".join(texts(at, "success"))
    assert "northwind" in successes and "notes" in successes

    table = _documents_table(at)
    assert sorted(table["Document"]) == ["northwind_staff_handbook.pdf", "notes.md"]
    pdf_row = table[table["Document"] == "northwind_staff_handbook.pdf"].iloc[0]
    assert pdf_row["Pages"] == 13 and pdf_row["Chunks"] > 10


def test_chunk_preview_shows_pages(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    chunks = next(df.value for df in at.dataframe if "Text" in df.value.columns)
    assert len(chunks) > 10
    assert chunks["Page"].min() == 1 and chunks["Page"].max() > 5
    assert chunks["Text"].str.len().min() > 0


def test_search_the_index_shows_chunks_and_scores(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    at.text_input(key="docs.search_query").input("How many holiday days can I carry over?").run()
    assert not at.exception
    headers = [m for m in texts(at, "markdown") if "score" in m]
    assert len(headers) == at.slider(key="docs.search_k").value == 4
    assert all("northwind" in h and "p. " in h for h in headers)  # file › section, p. N
    assert any("carr" in m.lower() for m in texts(at, "markdown"))  # the carry-over chunk is shown


def test_reindex_and_delete_with_confirmation(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    at.button(key="docs.reindex").click().run()
    assert any("Re-indexed" in t for t in texts(at, "success"))

    at.button(key="docs.delete").click().run()
    assert any("Delete" in t for t in texts(at, "warning"))
    assert len(_documents_table(at)) == 1  # nothing deleted before confirming
    at.button(key="docs.delete_confirm").click().run()
    assert not at.exception
    assert any("Deleted" in t for t in texts(at, "success"))
    assert any("No documents indexed yet" in t for t in texts(at, "info"))


# --- issue 10: formats, collections, versions, OCR message -------------------------------------
def test_word_and_html_files_index_into_a_new_collection_with_sections(app, empty_dir: Path) -> None:
    from tests.unit.test_formats import HTML, docx_bytes

    at = app(empty_dir)
    assert set(at.file_uploader(key="docs.upload").allowed_type) >= {".docx", ".html", ".htm"}
    at.text_input(key="docs.new_collection").input("Harbour Lane").run()
    at.button(key="docs.create_collection").click().run()
    assert at.selectbox(key="docs.collection").value == "Harbour Lane"
    uploader = at.file_uploader(key="docs.upload")
    uploader.upload(
        "policies.docx",
        docx_bytes(),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    uploader.upload("sickness.html", HTML, "text/html")
    uploader.upload("old_policy.doc", b"\xd0\xcf\x11\xe0 old Word", "application/msword")
    at.run()
    index_and_wait(at)
    assert not at.exception, [e.value for e in at.exception]
    [error] = texts(at, "error")  # the old Word file is refused with how to convert it
    assert error.startswith("old_policy.doc: .doc is not a supported type") and "Save As" in error
    assert any("policies.docx** — indexed (v1)" in t for t in texts(at, "success"))

    table = _documents_table(at)
    assert sorted(table["Document"]) == ["policies.docx", "sickness.html"]
    assert set(table["Type"]) == {"DOCX", "HTML"} and set(table["Version"]) == {1}
    chunks = next(df.value for df in at.dataframe if "Section" in df.value.columns)
    assert "1 Holidays" in set(chunks["Section"]) and chunks["Page"].isna().all()  # Word has no pages

    at.text_input(key="docs.search_query").input("How much is paid per mile?").run()
    headers = [m for m in texts(at, "markdown") if "score" in m]
    assert headers and "policies.docx › 2 Expenses › Mileage" in headers[0]
    # The default collection is still empty: collections do not mix.
    at.selectbox(key="docs.collection").select("All documents").run()
    assert any("No documents indexed yet in this collection" in t for t in texts(at, "info"))


def test_reupload_shows_the_new_version_and_its_history(app, empty_dir: Path) -> None:
    at = app(empty_dir)
    for body in (
        b"# Leave\n\n25 days.\n\n# Pay\n\nMonthly.\n",
        b"# Leave\n\n27 days.\n\n# Pay\n\nMonthly.\n",
    ):
        at.file_uploader(key="docs.upload").upload("handbook.md", body, "text/markdown")
        at.run()
        index_and_wait(at)
    assert any(
        "handbook.md** — re-indexed (content changed) (v2)" in t and "sections changed: Leave" in t
        for t in texts(at, "success")
    )
    assert list(_documents_table(at)["Version"]) == [2]
    history = next(df.value for df in at.dataframe if "Sections changed" in df.value.columns)
    assert list(history["Version"]) == [2, 1]
    assert list(history["Sections changed"]) == ["Leave", "first version"]


def test_scanned_pdf_without_tesseract_says_what_to_install(app, empty_dir: Path, monkeypatch) -> None:
    from tests.fixtures.pdfs import scanned_pdf

    monkeypatch.setenv("RAG_TESSERACT_CMD", str(empty_dir / "no-tesseract"))  # the injection point
    at = app(empty_dir)
    install = "apt-get install tesseract-ocr tesseract-ocr-eng"
    assert any(install in t for t in texts(at, "caption"))  # warned before uploading
    at.file_uploader(key="docs.upload").upload("scan.pdf", scanned_pdf(["Leave policy"]), "application/pdf")
    at.run()
    index_and_wait(at)
    [error] = texts(at, "error")
    assert error.startswith("scan.pdf: page 1 has no text layer") and install in error
