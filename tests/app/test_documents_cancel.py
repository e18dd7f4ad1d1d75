"""Documents page (issue 15 item 7): an upload in progress shows its step and a Cancel button that
stops it with nothing indexed; an oversized text file is refused from its size before it is read."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import assert_plain_session_state, texts
from tests.app.test_documents_page import _documents_table, index_and_wait
from tests.unit.test_ingest_limits import policy_text


def _wait(at: AppTest, timeout: float = 120) -> None:
    """Rerun until the background ingest has ended (bounded in count and time)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout * 10)):
        if "docs.ingest_job" not in at.session_state:
            return
        assert time.monotonic() < deadline, "the ingest did not stop"
        time.sleep(0.1)
        at.run()


def test_cancel_stops_the_upload_and_nothing_is_indexed(
    app, indexed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_EMBED_BATCH", "2")  # test hooks: many small, slow batches
    monkeypatch.setenv("RAG_TEST_EMBED_DELAY_S", "0.5")
    at = app(indexed_dir)
    before = sorted(_documents_table(at)["Document"])
    at.file_uploader(key="docs.upload").upload("big.txt", policy_text(120), "text/plain")
    at.run()
    at.button(key="docs.index").click().run()
    assert not at.exception, [e.value for e in at.exception]

    # the live view: which file and step, and a Cancel button; the index buttons wait
    [bar] = at.get("progress")
    step = re.sub(r"\\(.)", r"\1", str(bar.proto.text))
    assert step.startswith("big.txt: ") and step.endswith("(1 of 1)"), step
    assert at.button(key="docs.index").disabled and at.button(key="docs.sample").disabled
    at.button(key="docs.cancel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _wait(at)

    warnings = texts(at, "warning")
    assert any(w.startswith("Indexing cancelled — nothing indexed") for w in warnings), warnings
    assert any(w.startswith("big.txt: cancelled") and "nothing of it was indexed" in w for w in warnings)
    assert sorted(_documents_table(at)["Document"]) == before
    assert not any(b.key == "docs.cancel" for b in at.button)
    assert_plain_session_state(at)


def test_oversized_text_is_refused_before_it_is_read(
    app, empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_MAX_TEXT_MB", "1")
    at = app(empty_dir)
    uploader = at.file_uploader(key="docs.upload")
    uploader.upload("dump.txt", b"Leave is 25 days.\n" * 90_000, "text/plain")  # 1.5 MB
    uploader.upload("notes.md", b"# Remote work\n\nTwo days a week from home.\n", "text/markdown")
    at.run()
    index_and_wait(at)
    [error] = texts(at, "error")
    assert error.startswith("dump.txt: the file is 1.5 MB of text, above the 1 MB limit for .txt files")
    assert "Split it into at least 2 smaller files" in error
    assert sorted(_documents_table(at)["Document"]) == ["notes.md"]
