"""Workspace: the dashboard's facade — estimates, question sets, ingestion, runs, compare, export."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from rag_core.errors import InputError
from rag_core.models import MetricScore, QAItem
from rag_core.runs.summary import metric_stats
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.summary import GenerationStats, JudgeStats, RunSummary, Timings
from rag_core.vocab import Suite
from rag_core.workspace import SAMPLE_SET_NAME, Workspace, rows_to_items

ITEMS = [
    QAItem("How many days of annual leave do I get?", "25 days plus public holidays."),
    QAItem("Can I work from home?", "Up to two days a week with manager approval."),
    QAItem('=HYPERLINK("http://x")', "-1"),
]


@pytest.fixture
def ws(settings: Settings):
    w = Workspace(settings)
    yield w
    w.close()


def _fake_run(
    store: HistoryStore,
    *,
    suite: str = "offline",
    question_set: str = "handbook",
    values: tuple[float | None, ...] = (0.9, 0.5, None),
    status: str = "completed",
    mode: str = "async",
) -> int:
    """A finished run written straight into the store (no engine, no model)."""
    run_id = store.create_run(
        question_set=question_set, backend="offline", mode=mode, suite=suite, config={"top_k": 4}, items=ITEMS
    )
    for i, v in enumerate(values):
        store.save_answer(run_id, i, answer=f"answer {i}", contexts=[], latency_s=0.1, attempts=1)
        err = None if v is not None else "no ground truth"
        store.save_scores(run_id, i, [MetricScore("rouge_l", v, error=err)])
    summary = RunSummary(
        run_id=run_id,
        status=status,
        backend="offline",
        mode=mode,
        suite=suite,
        n_questions=len(values),
        answered=len(values),
        timings=Timings(retrieval_s=0.1, generation_s=1.0, evaluation_s=0.5, total_s=1.6),
        generation=GenerationStats(
            concurrency=4,
            sequential_s=3.0,
            async_s=1.0,
            speedup_measured=3.0,
            speedup_estimated=2.8,
            ideal_speedup=3.0,
        ),
        metrics=metric_stats(
            Suite(suite), ["rouge_l"], [r.scores for r in store.get_results(run_id)], total=len(values)
        ),
        judge=JudgeStats(suite=suite),
    )
    store.update_run(
        run_id,
        status=status,
        summary=summary,
        timings=summary.timings.to_json(),
        finished=True,
    )
    return run_id


def test_editor_rows_become_items_with_blanks_for_missing_cells() -> None:
    items = rows_to_items([{"question": "Q1", "ground_truth": None}, {"question": float("nan")}])
    assert items == [QAItem("Q1", ""), QAItem("", "")]


# --- question sets --------------------------------------------------------------------------
def test_sample_set_is_created_once(ws: Workspace) -> None:
    assert ws.ensure_sample_set() is True
    assert [s.name for s in ws.question_sets()] == [SAMPLE_SET_NAME]
    assert len(ws.question_set(SAMPLE_SET_NAME)) == 10
    ws.delete_question_set(SAMPLE_SET_NAME)
    ws.save_question_set("mine", ITEMS[:1])
    assert ws.ensure_sample_set() is False  # the store has a set: nothing is added
    assert [s.name for s in ws.question_sets()] == ["mine"]


def test_save_validates_and_names_rows(ws: Workspace) -> None:
    rows = [
        {"question": "Same?", "ground_truth": "a"},
        {"question": "", "ground_truth": "b"},
        {"question": " same? ", "ground_truth": "c"},
    ]
    with pytest.raises(InputError) as err:
        ws.save_question_set("bad", rows)
    assert "row 2" in str(err.value) and "row 1 and row 3" in str(err.value)
    assert ws.question_sets() == []
    info = ws.save_question_set("good", [{"question": " Fine? ", "ground_truth": None}])
    assert info.n_items == 1 and ws.question_set("good") == [QAItem("Fine?", "")]


def test_rename_and_delete_sets(ws: Workspace) -> None:
    ws.save_question_set("a", ITEMS)
    ws.save_question_set("b", ITEMS[:1])
    with pytest.raises(InputError, match="already exists"):
        ws.rename_question_set("a", "b")
    with pytest.raises(InputError, match="no question set named"):
        ws.rename_question_set("missing", "c")
    ws.rename_question_set("a", "c")
    assert [s.name for s in ws.question_sets()] == ["b", "c"]
    assert ws.question_set("c") == ITEMS
    assert ws.delete_question_set("b") is True and ws.delete_question_set("b") is False


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_question_export_round_trips(fmt: str) -> None:
    text = Workspace.export_questions(ITEMS, fmt)
    assert Workspace.import_questions(f"set.{fmt}", text.encode()) == ITEMS


def test_import_names_the_file_and_row() -> None:
    with pytest.raises(InputError, match=r"bad\.csv.*row 2"):
        Workspace.import_questions("bad.csv", b"question,ground_truth\nok?,yes\n,empty\n")


# --- documents ------------------------------------------------------------------------------
def test_ingest_reports_each_file_and_bad_files_do_not_stop_the_others(ws: Workspace) -> None:
    started: list[str] = []
    done: list[tuple[int, str]] = []
    outcomes = ws.ingest_files(
        [
            ("empty.txt", b""),
            ("policy.md", b"# Leave\n\nEveryone gets 25 days of annual leave.\n"),
            ("virus.exe", b"MZ"),
        ],
        on_start=lambda i, name: started.append(name),
        on_done=lambda i, o: done.append((i, o.status)),
    )
    assert started == ["empty.txt", "policy.md", "virus.exe"]
    assert done == [(0, "error"), (1, "added"), (2, "error")]
    assert "empty.txt" in (outcomes[0].error or "") and "virus.exe" in (outcomes[2].error or "")
    assert [d.name for d in ws.documents()] == ["policy.md"]
    hits = ws.search("How much annual leave?", 3)
    assert hits and hits[0].chunk.source == "policy.md" and 0 < hits[0].score <= 1
    assert [(c.page, c.section) for c in ws.chunks("policy.md")] == [(0, "Leave")]  # MD: no pages
    assert ws.reindex_document("policy.md").status in ("replaced", "added", "unchanged")
    assert ws.delete_document("policy.md") >= 1
    assert ws.documents() == [] and ws.search("leave?") == []


def test_search_needs_a_query(ws: Workspace) -> None:
    with pytest.raises(InputError, match="Type a question"):
        ws.search("   ")


# --- runs -----------------------------------------------------------------------------------
def test_start_run_needs_documents_and_an_existing_set(ws: Workspace) -> None:
    ws.save_question_set("set", ITEMS)
    with pytest.raises(InputError, match="Documents page"):
        ws.start_run("set")
    assert ws.runs() == []  # nothing stored


def test_version_changes_on_writes_from_here_and_from_another_connection(ws: Workspace) -> None:
    v0 = ws.version()
    assert ws.version() == v0  # stable while nothing changes
    ws.save_question_set("set", ITEMS)
    v1 = ws.version()
    assert v1 != v0
    other = HistoryStore(ws.settings.db_path)  # e.g. the CLI in another process
    try:
        other.save_question_set("other", ITEMS[:1])
    finally:
        other.close()
    assert ws.version() != v1


def test_recover_marks_dead_runs_interrupted_and_resume_is_offered(ws: Workspace) -> None:
    run_id = ws.store.create_run(
        question_set="s", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    assert ws.recover_interrupted() == [run_id]
    assert ws.run(run_id).status == "interrupted"
    assert ws.progress(run_id) is None and ws.active_run_ids() == []
    assert ws.cancel_run(run_id) is False


def test_runs_table_newest_first_with_metrics_speedup_and_cost(ws: Workspace) -> None:
    a = _fake_run(ws.store)
    b = _fake_run(ws.store, values=(0.2, 0.5, 0.4))
    table = Workspace.runs_table(ws.runs())
    assert list(table["Run"]) == [b, a]
    assert table.loc[0, "ROUGE-L"] == pytest.approx((0.2 + 0.5 + 0.4) / 3)
    assert table.loc[1, "ROUGE-L"] == pytest.approx(0.7)
    assert list(table["Speedup"]) == [3.0, 3.0]
    assert {"Date", "Question set", "Backend", "Mode", "Suite", "Status", "Cost ($)"} <= set(table.columns)
    assert Workspace.runs_table([]).empty


def test_compare_flags_regressions_and_different_suites(ws: Workspace) -> None:
    base = _fake_run(ws.store, values=(0.9, 0.5, None))
    cand = _fake_run(ws.store, values=(0.3, 0.55, 0.8))
    cmp = ws.compare(base, cand)
    assert cmp.regressions == 1
    assert bool(cmp.deltas.loc[0, "regression"]) and not bool(cmp.deltas.loc[1, "regression"])
    assert math.isnan(cmp.deltas.loc[2, "delta:offline.rouge_l"])  # a failed score is not a 0
    assert cmp.warnings == []
    judged = _fake_run(ws.store, suite="judge", question_set="other")
    warnings = " ".join(ws.compare(base, judged).warnings)
    assert "different metric suites" in warnings and "different question sets" in warnings
    assert "same run" in " ".join(ws.compare(base, base).warnings)
    with pytest.raises(InputError):
        ws.compare(base, 999)


def test_export_run_json_and_csv_are_safe(ws: Workspace) -> None:
    run_id = _fake_run(ws.store)
    data = json.loads(ws.export_run(run_id, "json"))
    assert data["run_id"] == run_id and len(data["results"]) == 3
    assert data["results"][2]["scores"]["rouge_l"] is None
    rows = list(csv.reader(io.StringIO(ws.export_run(run_id, "csv"))))
    # each row leads with whether the answer counts as correct, and what decided it (issue 12)
    assert rows[0][:3] == ["index", "correct", "correct_by"]
    q, gt = rows[0].index("question"), rows[0].index("ground_truth")
    assert rows[0][q - 1 : gt + 1] == ["declined", "question", "ground_truth"]
    assert rows[3][q].startswith("'=HYPERLINK") and rows[3][gt] == "'-1"  # no formula runs in Excel
    assert rows[3][rows[0].index("offline.rouge_l")] == ""  # failed metric: empty, not 0
    with pytest.raises(InputError):
        ws.export_run(run_id, "xlsx")


def test_delete_run(ws: Workspace) -> None:
    run_id = _fake_run(ws.store)
    assert ws.delete_run(run_id) is True
    assert ws.delete_run(run_id) is False
    assert ws.runs() == []


def test_close_is_idempotent_and_keeps_nothing_open(settings: Settings) -> None:
    w = Workspace(settings)
    w.save_question_set("s", ITEMS)
    w.close()
    w.close()
    reopened = Workspace(settings)
    try:
        assert [s.name for s in reopened.question_sets()] == ["s"]
    finally:
        reopened.close()


def test_workspace_never_imports_streamlit() -> None:
    import rag_core.workspace as mod

    source = Path(mod.__file__).read_text()
    assert "import streamlit" not in source and "from streamlit" not in source
