"""Issue 14 pages: the Coverage page (heat map, untested sections, the "generate questions for
these" contract) and the stale-question section of the Question sets editor."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import _workspace, texts
from tests.conftest import ROOT, SAMPLE_PDF
from tests.support.handbook import STALE_EDITS, handbook_pdf

PAGE = "pages/coverage.py"
SAMPLE = "Sample: staff handbook"


def _open(app, data_dir: Path, page: str = PAGE) -> AppTest:
    at = app(data_dir)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _dataframe(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_coverage_page_shows_the_heat_map_and_the_untested_sections(app, indexed_dir: Path) -> None:
    at = _open(app, indexed_dir)
    at.selectbox(key="coverage.set").set_value(SAMPLE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="coverage.collection").value == "All documents"
    assert [m.value for m in at.metric][:1] == ["9 of 14"]
    assert len(at.get("plotly_chart")) == 1
    untested = _dataframe(at, "Section")
    assert list(untested["Section"]) == [
        "Northwind Civic Trust - Staff Handbook",
        "Preface",
        "7. Outside Employment and Interests",
        "10. Code of Conduct",
        "11. Grievances",
    ]
    questions = _dataframe(at, "Linked by")
    assert list(questions["Linked by"]).count("holds its key facts") == 9
    # without a key the action is still there (the Generate page explains and offers the template)
    assert [b.key for b in at.button if b.key == "coverage.generate"] == ["coverage.generate"]
    assert any("generating questions needs Claude" in c.value for c in at.caption)


def test_generate_questions_for_untested_sections_hands_them_to_the_generate_page(
    app, indexed_dir: Path, tmp_path: Path
) -> None:
    """The contract with the question-generation page, with a stand-in for it: the untested
    sections go to ``generate_collection`` / ``generate_sections`` and the page opens."""
    site = tmp_path / "site"
    (site / "pages").mkdir(parents=True)
    shutil.copy(ROOT / PAGE, site / PAGE)
    (site / "pages" / "generate.py").write_text(
        "import streamlit as st\nst.title('Generate (stand-in)')\n"
        "st.write(st.session_state.get('generate_collection'))\n"
    )
    (site / "router.py").write_text(
        "import streamlit as st\n"
        "st.navigation([st.Page('pages/coverage.py', default=True), st.Page('pages/generate.py')]).run()\n"
    )
    app(indexed_dir)  # the data dir and caches, as for the real app
    at = AppTest.from_file(str(site / "router.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="coverage.set").set_value(SAMPLE).run()
    at.button(key="coverage.generate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["generate_collection"] == "All documents"
    sections = at.session_state["generate_sections"]
    assert sections[0] == (SAMPLE_PDF.name, "Northwind Civic Trust - Staff Handbook")
    assert [s for _, s in sections][2:] == [
        "7. Outside Employment and Interests",
        "10. Code of Conduct",
        "11. Grievances",
    ]
    assert "Generate (stand-in)" in [t.value for t in at.title]


def test_the_editor_shows_stale_questions_side_by_side_and_confirm_clears_one(app, indexed_dir: Path) -> None:
    ws = _workspace(indexed_dir)
    try:
        out = ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(STALE_EDITS))])[0]
        assert out.stale_questions >= 2
        assert ws.stale_flags(SAMPLE, since="2000-01-01T00:00:00+00:00") == {}  # older runs: no marker
    finally:
        ws.close()
    at = _open(app, indexed_dir, "pages/question_sets.py")
    at.selectbox(key="qsets.selected").set_value(SAMPLE).run()
    shown = " ".join(texts(at, "markdown"))
    assert "**Q2** · :orange[review: the policy changed]" in shown and "**Q7** · " in shown
    assert "Old passage" in shown and "New passage" in shown
    passages = [t.value for t in at.text]
    assert any("up to five days of unused holiday" in p for p in passages)
    assert any("up to eight days of unused holiday" in p for p in passages)
    at.button(key="qsets.stale.confirm.2").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Q2: expected answer confirmed" in s for s in texts(at, "success"))
    shown = " ".join(texts(at, "markdown"))
    assert "**Q2** · " not in shown and "**Q7** · " in shown


def test_the_next_runs_results_carry_the_stale_marker(app, history_dir: Path) -> None:
    from tests.app.conftest import QUICK_SET

    ws = _workspace(history_dir)
    try:
        ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(STALE_EDITS))])
        old_run = ws.runs()[0].id  # answered before the change: no marker
        run_id = ws.start_run(QUICK_SET, concurrency=3)
        assert ws.wait_run(run_id, timeout=240)
    finally:
        ws.close()
    at = _open(app, history_dir, "pages/history.py")
    at.session_state["history.tab"] = "Run details"
    at.run()
    at.selectbox(key="history.run").set_value(run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "Policy" in df.value.columns)
    assert list(table["Policy"]) == ["", "⚠ review: the policy changed", ""]
    at.selectbox(key="history.run").set_value(old_run).run()
    assert not any("Policy" in df.value.columns for df in at.dataframe)
    # The Review page warns on that question of the new run, not on the others.
    at.switch_page("pages/review.py").run()
    at.selectbox(key="review.run").set_value(run_id).run()
    at.session_state[f"review.pos.{run_id}"] = 1
    at.run()
    assert any("Review: the policy changed" in w for w in texts(at, "warning"))
    at.session_state[f"review.pos.{run_id}"] = 0
    at.run()
    assert not any("the policy changed" in w for w in texts(at, "warning"))
