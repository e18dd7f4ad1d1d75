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
from rag_core.settings import Settings
from rag_core.storage.store import HistoryStore
from rag_core.workspace import (
    SAMPLE_SET_NAME,
    Workspace,
    duration,
    estimate_run,
    judge_calls_per_question,
    metric_line,
    rows_to_items,
    speedup_line,
    suite_metrics,
)

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
    scored = [v for v in values if v is not None]
    summary = {
        "n_questions": len(values),
        "errors": 0,
        "generation": {
            "sequential_s": 3.0,
            "async_s": 1.0,
            "speedup_measured": 3.0,
            "speedup_estimated": 2.8,
            "ideal_speedup": 3.0,
            "concurrency": 4,
        },
        "metrics": {
            "rouge_l": {
                "mean": sum(scored) / len(scored),
                "stdev": None,
                "scored": len(scored),
                "failed": len(values) - len(scored),
            }
        },
        "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        "judge": {"suite": suite, "model": None, "calls": 0, "cache_hits": 0, "versions": {}},
    }
    store.update_run(
        run_id,
        status=status,
        summary=summary,
        timings={"retrieval_s": 0.1, "generation_s": 1.0, "evaluation_s": 0.5, "total_s": 1.6},
        finished=True,
    )
    return run_id


# --- estimates ------------------------------------------------------------------------------
def test_offline_run_costs_nothing(settings: Settings) -> None:
    est = estimate_run(
        settings, n_questions=10, backend="offline", mode="async", suite="offline", metrics=None, top_k=4
    )
    assert (est.calls, est.input_tokens, est.cost_usd) == (0, 0, 0.0)
    assert not est.uses_claude


def test_claude_answers_one_call_per_question_two_in_compare(settings: Settings) -> None:
    kw = dict(n_questions=10, backend="claude", suite="none", metrics=None, top_k=4)
    assert estimate_run(settings, mode="async", **kw).answer_calls == 10
    assert estimate_run(settings, mode="sequential", **kw).answer_calls == 10
    compare = estimate_run(settings, mode="compare", **kw)
    assert compare.answer_calls == 20 and compare.judge_calls == 0
    # tokens ≈ chars / 4: 4 chunks of chunk_size chars dominate the prompt
    assert compare.input_tokens >= 20 * 4 * settings.chunk_size / 4
    expected = settings.cost_usd(settings.answer_model, compare.input_tokens, compare.output_tokens)
    assert compare.cost_usd == pytest.approx(expected, abs=1e-4)


def test_batch_mode_answers_cost_half(settings: Settings) -> None:
    kw = dict(n_questions=10, backend="claude", suite="none", metrics=None, top_k=4)
    normal = estimate_run(settings, mode="async", **kw)
    batch = estimate_run(settings, mode="batch", **kw)
    assert batch.answer_calls == normal.answer_calls == 10
    assert batch.cost_usd == pytest.approx(normal.cost_usd / 2, abs=1e-4)


def test_judge_calls_follow_the_metric_recipe(settings: Settings) -> None:
    assert [judge_calls_per_question(m, 5) for m in suite_metrics("judge")] == [2, 3, 5, 1]
    est = estimate_run(
        settings,
        n_questions=10,
        backend="offline",
        mode="async",
        suite="judge",
        metrics=None,
        top_k=5,
        judge_repeats=2,
    )
    assert est.answer_calls == 0
    assert est.judge_calls == 10 * 2 * (2 + 3 + 5 + 1)
    only = estimate_run(
        settings,
        n_questions=10,
        backend="offline",
        mode="async",
        suite="judge",
        metrics=["faithfulness"],
        top_k=5,
    )
    assert only.judge_calls == 20
    assert 0 < only.cost_usd < est.cost_usd


def test_suite_metrics() -> None:
    assert suite_metrics("offline") == ("semantic_similarity", "rouge_l", "context_recall")
    assert suite_metrics("none") == ()
    with pytest.raises(InputError, match="Unknown metric suite"):
        suite_metrics("vibes")


# --- formatting -----------------------------------------------------------------------------
def test_formatting_helpers() -> None:
    assert metric_line({"mean": 0.8612, "stdev": None, "scored": 9, "failed": 1}) == "0.86 · 9 of 10 scored"
    assert metric_line({"mean": None, "scored": 0, "failed": 3}) == "— · 0 of 3 scored"
    assert "± 0.05" in metric_line({"mean": 0.5, "stdev": 0.05, "scored": 2, "failed": 0})
    assert speedup_line({"speedup_measured": 3.42, "ideal_speedup": 8}) == "3.4× measured (ideal 8×)"
    assert speedup_line({"speedup_estimated": 2.9, "ideal_speedup": 4}) == "2.9× estimated (ideal 4×)"
    assert speedup_line({}) is None
    assert duration(None) == "—" and duration(0.84) == "0.8 s" and duration(185) == "3 min 05 s"


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
    assert [c.page for c in ws.chunks("policy.md")] == [1]
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
    assert table.loc[0, "rouge_l"] == pytest.approx((0.2 + 0.5 + 0.4) / 3)
    assert table.loc[1, "rouge_l"] == pytest.approx(0.7)
    assert list(table["Speedup"]) == [3.0, 3.0]
    assert {"Date", "Question set", "Backend", "Mode", "Suite", "Status", "Cost ($)"} <= set(table.columns)
    assert Workspace.runs_table([]).empty


def test_compare_flags_regressions_and_different_suites(ws: Workspace) -> None:
    base = _fake_run(ws.store, values=(0.9, 0.5, None))
    cand = _fake_run(ws.store, values=(0.3, 0.55, 0.8))
    cmp = ws.compare(base, cand)
    assert cmp.regressions == 1
    assert bool(cmp.deltas.loc[0, "regression"]) and not bool(cmp.deltas.loc[1, "regression"])
    assert math.isnan(cmp.deltas.loc[2, "delta:rouge_l"])  # a failed score is not a 0
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
    assert rows[0][:3] == ["index", "question", "ground_truth"]
    assert rows[3][1].startswith("'=HYPERLINK") and rows[3][2] == "'-1"  # no formula runs in Excel
    assert rows[3][rows[0].index("rouge_l")] == ""  # failed metric: empty, not 0
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
