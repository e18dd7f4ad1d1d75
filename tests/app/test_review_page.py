"""The Review page (pages/review.py): one answer at a time, verdicts saved at once, resumable,
inherited verdicts marked, and the agreement table once a run has enough verdicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.app.conftest import _workspace, assert_plain_session_state, texts

SAMPLE = "Sample: staff handbook"
PAGE = "pages/review.py"


@pytest.fixture(scope="session")
def sample_run_template(indexed_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``indexed_template`` plus one finished offline run (#1) of the 10-question sample set."""
    d = tmp_path_factory.mktemp("review") / "data"
    shutil.copytree(indexed_template, d)
    ws = _workspace(d)
    try:
        run_id = ws.start_run(SAMPLE, concurrency=4, suite="offline")
        assert ws.wait_run(run_id, timeout=240) and ws.run(run_id).status == "completed"
    finally:
        ws.close()
    return d


@pytest.fixture
def sample_run_dir(sample_run_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(sample_run_template, d)
    return d


def _stored_verdicts(data_dir: Path, run_id: int = 1) -> dict:
    ws = _workspace(data_dir)
    try:
        return ws.verdicts(run_id)
    finally:
        ws.close()


def _open(app, data_dir: Path):
    at = app(data_dir)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _table(at, column: str):
    """The first dataframe with ``column`` (AppTest does not expose dataframe keys)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _heading(at) -> str:
    return next(str(m.value) for m in at.markdown if str(m.value).startswith("#### Q"))


def test_empty_history_says_what_to_do(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    assert any("No finished runs yet" in t for t in texts(at, "info"))


def test_one_answer_at_a_time_with_question_expected_answer_passages_and_scores(
    app, sample_run_dir: Path
) -> None:
    at = _open(app, sample_run_dir)
    assert at.selectbox(key="review.run").value == 1
    assert _heading(at) == "#### Q1 of 10"
    md = "\n".join(texts(at, "markdown"))
    assert "**Question**" in md and "**Expected answer**" in md and "**Answer**" in md
    assert "Your verdict:** none yet" in md
    assert any("Passages** (4 retrieved" in t for t in texts(at, "markdown"))
    assert len(at.expander) == 4  # the retrieved passages, cited ones first and open
    scores = _table(at, "Metric")
    assert {"Answer key facts", "Decline behaviour", "ROUGE-L"} <= set(scores["Metric"])
    assert any("Automatic check: correct (key facts)" in t for t in texts(at, "caption"))
    assert any("Reviewed 0 of 10 answers" in str(p.proto.text) for p in at.get("progress"))
    for key in ("review.verdict.correct", "review.verdict.partly", "review.verdict.wrong", "review.prev"):
        assert at.button(key=key).proto.shortcut  # keyboard-friendly
    assert_plain_session_state(at)


def test_verdict_is_saved_at_once_and_the_next_answer_opens(app, sample_run_dir: Path) -> None:
    at = _open(app, sample_run_dir)
    at.button(key="review.verdict.correct").click().run()
    assert not at.exception
    assert _heading(at) == "#### Q2 of 10"
    saved = _stored_verdicts(sample_run_dir)
    assert list(saved) == [0] and saved[0].verdict == "correct" and saved[0].comment == ""
    at.text_input(key="review.comment.1.1").input("misses the Director's discretion").run()
    at.button(key="review.verdict.partly").click().run()
    saved = _stored_verdicts(sample_run_dir)
    assert saved[1].verdict == "partly" and saved[1].comment == "misses the Director's discretion"
    assert saved[1].labelled_at and not saved[1].inherited
    assert _heading(at) == "#### Q3 of 10"
    # back to Q2: its verdict and comment are shown; changing the comment saves it at once
    at.button(key="review.prev").click().run()
    assert _heading(at) == "#### Q2 of 10"
    assert any("Your verdict:** partly" in t for t in texts(at, "markdown"))
    at.text_input(key="review.comment.1.1").input("fine after all").run()
    assert _stored_verdicts(sample_run_dir)[1].comment == "fine after all"
    assert _heading(at) == "#### Q2 of 10"


def test_review_resumes_at_the_first_answer_without_a_verdict(app, sample_run_dir: Path) -> None:
    ws = _workspace(sample_run_dir)
    try:
        for i in (0, 1, 2):
            ws.label(1, i, "correct")
    finally:
        ws.close()
    at = _open(app, sample_run_dir)
    assert _heading(at) == "#### Q4 of 10"
    assert any("Reviewed 3 of 10 answers" in str(p.proto.text) for p in at.get("progress"))


def test_identical_answers_in_a_later_run_inherit_the_verdict(app, sample_run_dir: Path) -> None:
    ws = _workspace(sample_run_dir)
    try:
        ws.label(1, 0, "wrong", "the earliest start is missing")
        second = ws.start_run(SAMPLE, concurrency=4, suite="offline")
        assert ws.wait_run(second, timeout=240)
    finally:
        ws.close()
    at = _open(app, sample_run_dir)
    at.selectbox(key="review.run").select(second).run()
    # the offline answerer is deterministic: Q1's answer is identical, so run 2 inherits its verdict
    assert _heading(at) == "#### Q2 of 10"
    at.button(key="review.prev").click().run()
    md = "\n".join(texts(at, "markdown"))
    assert "inherited from run #1" in md and "the earliest start is missing" in md
    inherited = _stored_verdicts(sample_run_dir, second)[0]
    assert inherited.inherited_from == 1 and inherited.verdict == "wrong"


def test_agreement_table_appears_after_ten_verdicts(app, sample_run_dir: Path) -> None:
    at = _open(app, sample_run_dir)
    assert any("once this run has 10 verdicts (0 so far)" in t for t in texts(at, "caption"))
    for verdict in ["correct"] * 4 + ["partly", "correct", "correct", "correct", "correct", "correct"]:
        at.button(key=f"review.verdict.{verdict}").click().run()
        assert not at.exception, [e.value for e in at.exception]
    assert any("Every answer of this run has a verdict" in t for t in texts(at, "success"))
    table = _table(at, "κ (best cut-off)")
    assert "κ (best cut-off)" in table.columns and len(table) >= 6
    facts = table[table["Metric"].str.contains("Answer key facts")].iloc[0]
    assert facts["Answers"] == 9  # the declined question has no key facts to score
