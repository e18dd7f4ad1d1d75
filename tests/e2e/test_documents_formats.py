"""Issue 10 in a real browser: a Word file and a scanned PDF uploaded through the Documents page.

A new user creates a collection, uploads a .docx and an image-only PDF (a scan without a text
layer) together, and sees both indexed: the Word file with its sections, the scan read by OCR
(its "OCR pages" column), and a search that quotes the scanned text. OCR needs Debian's
``tesseract-ocr`` + ``tesseract-ocr-eng`` (``.ci/run`` installs them): without Tesseract the test
is skipped locally and fails in CI.

Screenshot: ``tests/e2e/artifacts/documents-formats.png``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import APP_PATH, skip_or_fail, wait_for_app
from tests.e2e.test_user_journey import (
    INDEX_TIMEOUT_MS,
    assert_no_exception,
    click_button,
    index_uploaded,
    nav,
    shot,
    upload,
)
from tests.fixtures.pdfs import scanned_pdf
from tests.unit.test_formats import docx_bytes

pytestmark = pytest.mark.e2e

SCAN_TEXT = (
    "Parental Leave\n\nEvery parent may take eighteen weeks of unpaid parental leave for each child "
    "before the child turns eighteen."
)


@pytest.fixture(scope="module")
def formats_server(browser, start_server):
    """The real app with its own empty data dir (``browser`` first: no Chromium, no server)."""
    if shutil.which("tesseract") is None:
        skip_or_fail("tesseract is not installed: apt-get install tesseract-ocr tesseract-ocr-eng")
    return start_server(APP_PATH)


def test_upload_a_word_file_and_a_scanned_pdf(page: Any, formats_server: Any, tmp_path: Path) -> None:
    app_url = formats_server.url
    word, scan = tmp_path / "staff_policies.docx", tmp_path / "parental_leave_scan.pdf"
    word.write_bytes(docx_bytes())
    scan.write_bytes(scanned_pdf([SCAN_TEXT]))

    page.goto(app_url)
    wait_for_app(page)
    nav(page, "Documents")

    # A collection for this organisation.
    page.get_by_role("button", name=re.compile("New collection")).click()
    page.locator(".st-key-docs-new_collection input").fill("Harbour Lane")
    click_button(page, "docs-create_collection", "Create")
    wait_for_app(page)
    page.get_by_text("Collection Harbour Lane is ready").first.wait_for(state="visible")
    page.keyboard.press("Escape")

    upload(page, [word, scan])
    index_uploaded(page, "Indexed 2 of 2 files")
    main = page.locator("[data-testid='stMain']")
    text = main.inner_text()
    assert "could not be read" not in text, text[:2000]
    assert re.search(r"staff_policies\.docx — indexed \(v1\)", text), text[:2000]
    assert re.search(
        r"parental_leave_scan\.pdf — indexed \(v1\): \d+ chunks from 1 page, 1 read by OCR", text
    ), text[:2000]

    # The collection's table lists both (a canvas grid: checked through its caption).
    page.get_by_role("heading", name="Documents in Harbour Lane").wait_for(state="visible")
    assert "2 documents" in main.inner_text()

    # Search finds the scanned text, cited with its file and page.
    page.get_by_role("tab", name="Search the index", exact=True).click()
    wait_for_app(page)
    query = page.locator(".st-key-docs-search_query input")
    query.fill("How many weeks of parental leave can a parent take?")
    query.press("Enter")
    wait_for_app(page, timeout_ms=INDEX_TIMEOUT_MS)
    hit = page.get_by_text(re.compile(r"1\. parental_leave_scan\.pdf.*p\. 1.*OCR")).first
    hit.wait_for(state="visible")
    assert "eighteen weeks" in main.inner_text().lower()
    assert_no_exception(page)
    shot(page, "documents-formats")
