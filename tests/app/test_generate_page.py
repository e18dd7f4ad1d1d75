"""Generate page (issue 14): without a key it explains and offers the template; with a key (the
loopback stand-in through the real SDK) it estimates, generates, and the review queue accepts,
edits and rejects pairs into a question set with their source links; coverage's preselection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import _workspace, texts
from tests.support.anthropic_server import FakeAnthropic

PAGE = "pages/generate.py"
DOC = "northwind_staff_handbook.pdf"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as srv:
        yield srv


def _open(app, data_dir: Path, monkeypatch=None, api: FakeAnthropic | None = None, before=None) -> AppTest:
    at = app(data_dir)
    if api is not None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-" + "test-not-a-real-key-0123456789")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        import streamlit as st

        st.cache_resource.clear()
        st.cache_data.clear()
    if before:
        before(at)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_without_a_key_the_page_explains_and_offers_the_template(app, indexed_dir: Path) -> None:
    at = _open(app, indexed_dir)
    assert any("needs Claude" in t for t in texts(at, "info"))
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the template CSV" in labels
    assert not [b for b in at.button if b.key == "gen.start"]  # nothing to start, nothing fails
    assert any("Nothing waiting for review" in c for c in texts(at, "caption"))


def test_generate_review_and_accept_into_a_new_set(app, indexed_dir: Path, monkeypatch, api) -> None:
    from rag_core.authoring.job import find

    at = _open(app, indexed_dir, monkeypatch, api)
    at.number_input(key="gen.n").set_value(4)
    at.multiselect(key="gen.kinds").set_value(["factual", "decline"])
    at.run()
    assert any("Estimated Claude usage" in m for m in texts(at, "markdown"))
    assert api.count == 0  # nothing sent before Start
    at.button(key="gen.start").click().run()
    job = at.session_state["gen.job"]
    report = find(job).wait(120)
    assert report is not None and report.written == 4
    at.run()  # the progress fragment sees the end and refreshes the page
    assert not at.exception
    assert any("waiting for review" in s for s in texts(at, "success"))
    queue = [c for c in at.text_area if c.key.startswith("gen.q.")]
    assert len(queue) == len(report.queued) >= 3
    ids = [int(k.key.rsplit(".", 1)[1]) for k in queue]
    assert any(m.startswith("Source:") for m in texts(at, "markdown"))

    at.text_input(key="gen.new_set").set_value("Generated")
    at.text_area(key=f"gen.q.{ids[0]}").set_value("How many days of holiday can I carry over?")
    at.button(key=f"gen.accept.{ids[0]}").click().run()
    at.button(key=f"gen.reject.{ids[1]}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ws = _workspace(indexed_dir)
    try:
        items = ws.question_set("Generated")
        assert [i.question for i in items] == ["How many days of holiday can I carry over?"]
        links = ws.store.question_sources("Generated")[items[0].question]
        assert links and links[0].document == DOC and links[0].origin == "generated"
        assert {p.id for p in ws.review_queue()} == set(ids[2:])
        assert ws.store.generated_pair(ids[1]).status == "rejected"
    finally:
        ws.close()
    at.button(key="gen.accept_all").click().run()
    assert not at.exception
    ws = _workspace(indexed_dir)
    try:
        assert len(ws.question_set("Generated")) == len(ids) - 1
        assert ws.review_queue() == []
    finally:
        ws.close()


def test_coverage_preselects_sections(app, indexed_dir: Path, monkeypatch, api) -> None:
    ws = _workspace(indexed_dir)
    try:
        doc, section = next((d, s) for d, s in ws.generation_sections("All documents") if "Annual Leave" in s)
    finally:
        ws.close()

    def preselect(at: AppTest) -> None:
        at.session_state["generate_collection"] = "All documents"
        at.session_state["generate_sections"] = [(doc, section)]

    at = _open(app, indexed_dir, monkeypatch, api, before=preselect)
    assert at.multiselect(key="gen.sections").value == [f"{doc} › {section}"]
    assert "generate_sections" not in at.session_state and "generate_collection" not in at.session_state


def test_cancel_keeps_what_was_written(app, indexed_dir: Path, monkeypatch) -> None:
    from rag_core.authoring.job import find

    monkeypatch.setenv("RAG_CONCURRENCY", "1")
    with FakeAnthropic(latency=0.3) as slow:
        at = _open(app, indexed_dir, monkeypatch, slow)
        at.number_input(key="gen.n").set_value(10)
        at.multiselect(key="gen.kinds").set_value(["decline"])
        at.run()
        at.button(key="gen.start").click().run()
        assert any("Writing pairs" in str(p.proto.text) for p in at.get("progress"))
        job = find(at.session_state["gen.job"])
        at.button(key="gen.cancel").click().run()
        report = job.wait(60)
        assert report is not None and report.cancelled and report.not_run > 0
        at.run()
        assert not at.exception
        assert any("cancelled" in s for s in texts(at, "success") + texts(at, "warning"))
        assert at.number_input(key="gen.n").value == 10  # the form kept its values
