"""Scanned PDF pages are OCR'd with Tesseract; without it the message says exactly what to install.

The OCR test needs Debian's ``tesseract-ocr`` + ``tesseract-ocr-eng`` (``.ci/run`` installs them). It
is skipped only on a developer machine without Tesseract; with ``CI`` set a missing Tesseract fails.
Its absence is simulated through the injection point (``settings.tesseract_cmd`` /
``RAG_TESSERACT_CMD``, or an :class:`OcrEngine` passed in), never by patching private names.
"""

from __future__ import annotations

import os
import shutil

import pytest

from rag_core.errors import IngestError
from rag_core.ingest.documents import parse_document
from rag_core.ingest.ocr import INSTALL_HINT, TesseractOcr, page_ranges
from tests.fixtures.pdfs import scanned_pdf, text_pdf

INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"
SCAN_TEXT = (
    "Annual Leave\n\nFull-time employees receive twenty seven days of paid holiday a year. "
    "Requests are made through the staff portal at least two weeks in advance."
)


def require_tesseract() -> None:
    if shutil.which("tesseract") is None:
        if os.environ.get("CI"):
            pytest.fail("tesseract is not installed but CI is set: .ci/run must install tesseract-ocr")
        pytest.skip("tesseract is not installed here (apt-get install tesseract-ocr tesseract-ocr-eng)")


def test_scanned_pages_are_ocrd_and_marked(settings) -> None:
    require_tesseract()
    data = scanned_pdf([SCAN_TEXT])
    stages: list[tuple[str, int, int]] = []
    doc = parse_document("scan.pdf", data, settings, on_progress=lambda *a: stages.append(a))
    text = " ".join(c.text for c in doc.chunks).lower()
    assert doc.ocr_pages == 1 and doc.pages == 1
    assert "twenty seven days of paid holiday" in text and "staff portal" in text
    assert all(c.ocr for c in doc.chunks) and all(c.page == 1 for c in doc.chunks)
    assert ("ocr", 0, 1) in stages and ("ocr", 1, 1) in stages  # progress per scanned page


def test_only_pages_without_text_are_ocrd(settings) -> None:
    require_tesseract()
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(
        PdfReader(io.BytesIO(text_pdf(["Page one has a real text layer about overtime pay rules."])))
    )
    writer.append(PdfReader(io.BytesIO(scanned_pdf([SCAN_TEXT]))))
    buf = io.BytesIO()
    writer.write(buf)
    doc = parse_document("mixed.pdf", buf.getvalue(), settings.replace(chunk_size=200, chunk_overlap=0))
    assert doc.pages == 2 and doc.ocr_pages == 1
    assert {(c.page, c.ocr) for c in doc.chunks} == {(1, False), (2, True)}


def test_missing_tesseract_says_exactly_what_to_install(settings) -> None:
    missing = settings.replace(tesseract_cmd="/nonexistent/bin/tesseract")
    with pytest.raises(IngestError) as err:
        parse_document("scan.pdf", scanned_pdf(["Leave policy", "Sick pay"]), missing)
    message = str(err.value)
    assert message.startswith("scan.pdf: pages 1–2 have no text layer")
    assert INSTALL in message and INSTALL in INSTALL_HINT and "RAG_TESSERACT_CMD" in message
    assert not TesseractOcr("/nonexistent/bin/tesseract").available()


def test_an_ocr_engine_can_be_injected(settings) -> None:
    class Fake:
        name = "fake"
        calls = 0

        def available(self) -> bool:
            return True

        def image_to_text(self, image, timeout_s: float) -> str:
            Fake.calls += 1
            assert image.size[0] > 1000  # rendered at OCR resolution
            return "Fake OCR text: parental leave is 26 weeks for every employee."

    doc = parse_document("scan.pdf", scanned_pdf(["x"]), settings, ocr=Fake())
    assert Fake.calls == 1 and "26 weeks" in doc.chunks[0].text and doc.chunks[0].ocr


def test_page_ranges_read_well() -> None:
    assert page_ranges([1, 2, 3, 7, 9, 10]) == "1–3, 7, 9–10"
