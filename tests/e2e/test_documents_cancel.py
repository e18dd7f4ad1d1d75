"""Issue 15 item 7 in a real browser: an upload in progress can be cancelled, and nothing of it is
indexed.

The server runs with the documented test hooks ``RAG_EMBED_BATCH=2`` and
``RAG_TEST_EMBED_DELAY_S=0.5`` (rag_core/ingest/control.py), so embedding a generated policy text
takes long enough, deterministically, to click Cancel while it runs. The user first indexes a short
note, then uploads the long file, watches "embedding chunk k of N", clicks Cancel and sees
"Indexing cancelled — nothing indexed" with the document list unchanged (still 1 document).

Screenshot: ``tests/e2e/artifacts/documents-cancel.png``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import APP_PATH, save_screenshot, wait_for_app
from tests.e2e.test_user_journey import INDEX_TIMEOUT_MS, assert_no_exception, index_uploaded, nav, upload
from tests.unit.test_ingest_limits import policy_text

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_server(browser, start_server):
    """The real app with its own empty data dir and slow, small embedding batches."""
    return start_server(APP_PATH, env={"RAG_EMBED_BATCH": "2", "RAG_TEST_EMBED_DELAY_S": "0.5"})


def test_cancel_an_upload_in_progress(page: Any, slow_server: Any, tmp_path: Path) -> None:
    note, big = tmp_path / "remote_work.md", tmp_path / "long_policy.txt"
    note.write_text("# Remote work\n\nStaff may work from home two days a week.\n")
    big.write_bytes(policy_text(200))

    page.goto(slow_server.url)
    wait_for_app(page)
    nav(page, "Documents")
    upload(page, [note])
    index_uploaded(page, "Indexed 1 of 1 files")
    listed = page.get_by_text(re.compile(r"^1 document · \d+ chunks$"))
    expect(listed).to_be_visible(timeout=INDEX_TIMEOUT_MS)
    before = listed.inner_text()

    page.get_by_role("button", name="Remove remote_work.md").click()  # a fresh upload: only the long file
    wait_for_app(page)
    upload(page, [big])
    page.locator(".st-key-docs-index").get_by_role("button", name="Index files").click()
    live = page.locator(".st-key-docs-live")
    expect(live.get_by_text(re.compile(r"long_policy\.txt: embedding chunk \d+ of \d+"))).to_be_visible(
        timeout=INDEX_TIMEOUT_MS
    )
    live.get_by_role("button", name="Cancel").click()

    expect(page.get_by_text("Indexing cancelled — nothing indexed")).to_be_visible(timeout=INDEX_TIMEOUT_MS)
    expect(page.get_by_text(re.compile(r"long_policy\.txt: cancelled while embedding chunk"))).to_be_visible()
    expect(live).to_have_count(0)
    expect(page.get_by_text(before, exact=True)).to_be_visible()  # the same document, the same chunks
    expect(page.get_by_text("remote_work.md", exact=True).first).to_be_attached()
    wait_for_app(page)
    assert_no_exception(page)
    save_screenshot(page, "documents-cancel")
