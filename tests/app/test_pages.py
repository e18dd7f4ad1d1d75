"""Smoke tests: every page renders without an exception, empty and with history; the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import all_text, assert_plain_session_state, texts

PAGES = ["pages/documents.py", "pages/question_sets.py", "pages/run.py", "pages/history.py"]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_a_new_install(app, empty_dir: Path, page: str) -> None:
    at = app(empty_dir)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at, "error")
    assert_plain_session_state(at)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_documents_and_runs(app, history_dir: Path, page: str) -> None:
    at = app(history_dir)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at, "error")
    assert_plain_session_state(at)


def test_empty_states_say_what_to_do_next(app, empty_dir: Path) -> None:
    at = app(empty_dir)
    assert any("No documents indexed yet" in t for t in texts(at, "info"))
    at.switch_page("pages/history.py").run()
    assert any("No runs yet — start one on the Run page" in t for t in texts(at, "info"))
    at.switch_page("pages/run.py").run()
    assert any("No documents are indexed yet" in t for t in texts(at, "warning"))
    assert at.button(key="run.start").disabled


def test_sidebar_offline_mode_data_location_and_first_run_hint(app, empty_dir: Path) -> None:
    at = app(empty_dir)
    sidebar = [str(e.value) for e in at.sidebar.markdown] + [str(e.value) for e in at.sidebar.caption]
    assert any("Offline" in t for t in sidebar)
    assert any("API key: not set" in t for t in sidebar)
    assert any("Data:" in t and empty_dir.name in t for t in sidebar)
    assert any("First step" in t for t in (str(e.value) for e in at.sidebar.info))


def test_sidebar_with_a_key_shows_claude_and_never_the_key(
    app, empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    at = app(empty_dir)
    sidebar = [str(e.value) for e in at.sidebar.markdown] + [str(e.value) for e in at.sidebar.caption]
    assert any("Claude" in t and "claude" in t for t in sidebar)
    assert any("API key: configured" in t for t in sidebar)
    assert "Mode" in all_text(at)  # the walk sees the sidebar
    assert "sk-test-not-a-real-key" not in all_text(at)
    # (After the first run AppTest executes pages without app.py — Streamlit's legacy pages/ mode —
    # so the sidebar is checked once above; the main area of every page is checked here.)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert "sk-test-not-a-real-key" not in all_text(at)
        assert "sk-test-not-a-real-key" not in repr(at.session_state)


def test_sidebar_hint_moves_on_once_documents_exist(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    hints = [str(e.value) for e in at.sidebar.info]
    assert not any("First step" in t for t in hints)
    assert any("first evaluation" in t for t in hints)


def test_run_details_show_the_new_runs_question_after_switching_runs(app, history_dir: Path) -> None:
    """Issue 9: History → Run details kept the previous run's question label after switching
    runs. The selectbox keeps its value (a question number) across runs; the browser must be sent
    the new run's label (``set_value``), or it keeps showing — and later sends back — the old one."""
    from rag_core.models import QAItem
    from tests.app.conftest import _workspace

    other_set = [QAItem(f"Other set question {i}: may I carry over leave?", f"Answer {i}.") for i in range(3)]
    ws = _workspace(history_dir)
    try:
        ws.save_question_set("Other set", other_set)
        other = ws.start_run("Other set", mode="async", suite="none")
        assert ws.wait_run(other, timeout=120)
        first = [r.question for r in ws.results(1)]
    finally:
        ws.close()
    at = app(history_dir)
    at.switch_page("pages/history.py").run()
    at.session_state["history.tab"] = "Run details"
    at.run()
    at.selectbox(key="history.run").select(1).run()
    at.selectbox(key="history.question").select(2).run()
    assert first[2] in " ".join(texts(at, "markdown"))

    at.selectbox(key="history.run").select(other).run()
    assert not at.exception, [e.value for e in at.exception]
    question = at.selectbox(key="history.question")
    label = question.options[question.index]
    assert label.startswith(f"Q{question.index + 1} · Other set question")
    assert question.proto.set_value and question.proto.raw_value == label, (
        "the browser is not told the new run's question label"
    )
    md = " ".join(texts(at, "markdown"))
    assert other_set[question.value].question in md and first[2] not in md
