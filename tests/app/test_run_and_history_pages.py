"""Run page (start, live progress, cancel/resume, summary) and History (table, compare, charts,
drill-down, export, delete). Fragments with run_every do not tick in AppTest: tests wait on the
run handles themselves, then rerun the script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import QUICK_SET, _workspace, texts, wait_for_runs

RUN, HISTORY = "pages/run.py", "pages/history.py"


def _start(at: AppTest, *, mode: str = "async", question_set: str = QUICK_SET) -> int:
    at.switch_page(RUN).run()
    at.selectbox(key="run.set").select(question_set).run()
    at.radio(key="run.mode").set_value(mode).run()
    assert not at.button(key="run.start").disabled
    at.button(key="run.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.session_state["run.active_id"]
    assert isinstance(run_id, int)
    return run_id


def _open_tab(at: AppTest, label: str) -> None:
    """Select a History tab the way a click does (the tabs track state: only the open one renders)."""
    at.session_state["history.tab"] = label
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_offline_run_shows_progress_then_summary(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    run_id = _start(at)
    # right after the start the live view is drawn (progress bar + cancel button) or, on a very
    # fast machine, the run is already over and its summary is shown
    live = bool(at.get("progress")) and any(b.key == "run.cancel" for b in at.button)
    assert live or any("completed" in s for s in texts(at, "success"))
    assert at.button(key="run.start").disabled or not live

    # progress is still there after visiting another page
    at.switch_page(HISTORY).run()
    at.switch_page(RUN).run()
    assert at.session_state["run.active_id"] == run_id
    assert any(f"Run #{run_id}" in h for h in texts(at, "subheader"))

    wait_for_runs(indexed_dir)
    at.run()
    assert not at.exception
    assert any(f"Run #{run_id} completed: 3 questions" in s for s in texts(at, "success"))
    captions = " ".join(texts(at, "caption"))
    assert "3 of 3 scored" in captions
    labels = [m.label for m in at.metric]
    assert {"Semantic similarity", "ROUGE-L", "Context recall (offline)"} <= set(labels)
    # offline answers are CPU-bound: no (misleading) estimated speedup is claimed for them
    assert not any("Speedup" in m and "estimated" in m for m in texts(at, "markdown"))

    # "Open in History" lands on that run's details
    at.button(key="run.open_history").click().run()
    assert not at.exception
    assert at.selectbox(key="history.run").value == run_id
    assert any("Question drill-down" in h for h in texts(at, "markdown"))


def test_claude_is_disabled_without_a_key_and_the_estimate_shows_with_one(
    app, indexed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app(indexed_dir)
    at.switch_page(RUN).run()
    assert at.radio(key="run.backend").disabled
    assert at.radio(key="run.backend").value == "offline"
    assert "judge" not in at.selectbox(key="run.suite").options
    assert not any(o.startswith("Batch") for o in at.radio(key="run.mode").options)  # Claude only
    assert any("API key" in c for c in texts(at, "caption"))

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    at = app(indexed_dir)
    at.switch_page(RUN).run()
    at.selectbox(key="run.set").select(QUICK_SET).run()
    at.radio(key="run.backend").set_value("claude").run()
    assert any(o.startswith("Batch") for o in at.radio(key="run.mode").options)
    at.selectbox(key="run.suite").select("judge").run()
    estimate = " ".join(texts(at, "info"))
    # 3 questions: 3 answer calls + 3 × (2 + 3 + top_k 4 + 1) = 30 judge calls + 3 decline checks
    assert "36 calls" in estimate and "3 answers + 33 judge" in estimate and "$" in estimate


def test_cancel_keeps_finished_work_and_resume_completes(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    run_id = _start(at, mode="sequential", question_set="Sample: staff handbook")
    cancel = [b for b in at.button if b.key == "run.cancel"]
    if cancel:  # still running: cancel through the UI
        cancel[0].click().run()
    else:  # pragma: no cover - extremely fast machine: cancel through the workspace
        _workspace(indexed_dir).cancel_run(run_id)
    wait_for_runs(indexed_dir)
    at.run()
    status = _workspace(indexed_dir).run(run_id).status
    if status == "completed":  # pragma: no cover - finished before the cancel landed
        return
    assert status == "cancelled"
    assert any("cancelled" in w for w in texts(at, "warning"))
    at.button(key="run.resume").click().run()
    wait_for_runs(indexed_dir)
    at.run()
    assert any(f"Run #{run_id} completed" in s for s in texts(at, "success"))


def test_history_table_compare_and_charts(app, history_dir: Path) -> None:
    at = app(history_dir)
    at.switch_page(HISTORY).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "Run" in df.value.columns)
    assert list(table["Run"]) == [2, 1]  # newest first
    assert {
        "Date",
        "Question set",
        "Backend",
        "Mode",
        "Suite",
        "Status",
        "Speedup",
        "Cost ($)",
        "Semantic similarity",
    } <= set(table.columns)
    assert at.selectbox(key="history.baseline").value == 1
    assert at.selectbox(key="history.candidate").value == 2

    # the Compare tab is open: its chart and the per-question deltas, and no other chart
    assert [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")] == ["history.fig_compare"]
    deltas = next(df.value for df in at.dataframe if "Flag" in df.value.columns)
    assert len(deltas) == 3
    assert not any("different metric suites" in w for w in texts(at, "warning"))

    _open_tab(at, "Charts")
    charts = at.get("plotly_chart")
    keys = {c.proto.id for c in charts}
    for name in ("fig_speedup", "fig_phases", "fig_trend", "fig_timeline", "fig_heatmap"):
        assert any(name in k for k in keys), (name, keys)
    timeline = next(c for c in charts if "fig_timeline" in c.proto.id)
    spec = json.loads(timeline.proto.spec)
    assert len(spec["data"]) >= 1 and "No data yet" not in timeline.proto.spec
    assert at.selectbox(key="history.timeline_run").value == 2


def test_compare_warns_about_different_suites_and_flags_regressions(app, history_dir: Path) -> None:
    ws = _workspace(history_dir)
    try:
        other = ws.start_run(QUICK_SET, mode="async", suite="none")
        ws.wait_run(other, timeout=120)
    finally:
        ws.close()
    at = app(history_dir)
    at.switch_page(HISTORY).run()
    at.selectbox(key="history.candidate").select(other).run()
    assert any("different metric suites" in w for w in texts(at, "warning"))


def test_drill_down_export_and_delete(app, history_dir: Path) -> None:
    at = app(history_dir)
    at.switch_page(HISTORY).run()
    _open_tab(at, "Run details")
    at.selectbox(key="history.run").select(1).run()
    at.selectbox(key="history.question").select(2).run()
    questions = [q.question for q in _workspace(history_dir).results(1)]
    md = " ".join(texts(at, "markdown"))
    assert questions[2] in md and "Ground truth" in md and "Answer" in md
    assert any("Retrieved chunks** (4)" in m for m in texts(at, "markdown"))
    labels = [re.sub(r"\\(.)", r"\1", e.proto.label) for e in at.get("expander")]
    assert len([x for x in labels if "page " in x and "score" in x and x.endswith(" · v1")]) == 4  # + version
    assert any(x.startswith("Why ROUGE-L") for x in labels)  # metric reasons are one click away
    scores = next(df.value for df in at.dataframe if "Metric" in df.value.columns)
    assert set(scores["Metric"]) == {
        "Answer key facts",
        "Context key facts",
        "Decline behaviour",
        "Semantic similarity",
        "ROUGE-L",
        "Context recall (offline)",
    }

    downloads = {b.key for b in at.get("download_button")}
    assert {"history.export_csv", "history.export_json"} <= downloads

    at.button(key="history.delete").click().run()
    assert any("Delete run #1" in w for w in texts(at, "warning"))
    at.button(key="history.delete_confirm").click().run()
    assert not at.exception
    assert any("Deleted run #1" in s for s in texts(at, "success"))
    table = next(df.value for df in at.dataframe if "Run" in df.value.columns)
    assert list(table["Run"]) == [2]
