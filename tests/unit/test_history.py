"""HistoryStore: round-trips, concurrency (threads and processes), NaN handling, resume, secrets.

Every test taking ``store`` or ``store_target`` runs twice: on a SQLite file and on a fresh
database of a real PostgreSQL server (tests/support/postgres_server.py). Tests of the SQLite file
itself (WAL, PRAGMA user_version, a file that is not a database, SQLite's lock) use a path.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rag_core.errors import InputError, StorageError
from rag_core.models import Chunk, DocumentInfo, MetricScore, QAItem, RequestTiming, ScoredChunk
from rag_core.settings import Secret
from rag_core.storage import HistoryStore, QuestionSetInfo, ResultRecord, RunRecord
from rag_core.storage.schema import NAN_ERROR, SCHEMA_VERSION
from rag_core.summary import GenerationStats, JudgeStats, MetricStats, RunSummary

ITEMS = [
    QAItem("How many days of annual leave do I get?", "25 days plus public holidays."),
    QAItem("Can I work from home?", "Up to two days a week with manager approval."),
    QAItem("Who approves expenses?", ""),
]


@pytest.fixture
def store(store_target: Path | str):
    s = HistoryStore(store_target)
    yield s
    s.close()


def _rows(store: HistoryStore, sql: str) -> list[tuple[Any, ...]]:
    """Rows as stored, read around the store's methods (on either database)."""
    with store._tx("inspect", write=False) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _dump(store: HistoryStore) -> str:
    """Every stored value of the run tables, as text."""
    return "\n".join(
        repr(row)
        for t in ("runs", "results", "scores", "requests", "run_attempts")
        for row in _rows(store, f"SELECT * FROM {t}")
    )


def _run(store: HistoryStore, items: list[QAItem] = ITEMS, **config: object) -> int:
    return store.create_run(
        question_set="handbook",
        backend="offline",
        mode="async",
        suite="offline",
        config={"top_k": 4, **config},
        items=items,
    )


def _chunk(text: str = "Employees get 25 days.", score: float = 0.81) -> ScoredChunk:
    return ScoredChunk(Chunk("abc:0", text, "handbook.pdf", 3, 0, "abc"), score)


def _summary(run_id: int, *, n: int = 3, **kw) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        status="completed",
        backend="offline",
        mode="async",
        suite="offline",
        n_questions=n,
        **kw,
    )


# --- opening ------------------------------------------------------------------------------------
def test_wal_is_on_and_schema_versioned(store: HistoryStore) -> None:
    assert store.schema_version == SCHEMA_VERSION >= 1
    if store.dialect == "postgresql":
        return
    assert store.journal_mode == "wal"
    with sqlite3.connect(store.db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reopening_keeps_data_and_does_not_remigrate(store_target: Path | str) -> None:
    path = store_target
    with HistoryStore(path) as s:
        run_id = _run(s)
    with HistoryStore(path) as s:
        assert s.get_run(run_id).n_questions == 3


def test_newer_schema_is_refused(data_dir: Path) -> None:
    path = data_dir / "h.sqlite3"
    HistoryStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StorageError, match="newer version"):
        HistoryStore(path)


def test_not_a_database_is_reported(data_dir: Path) -> None:
    path = data_dir / "h.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError, match="not a SQLite database"):
        HistoryStore(path)


def test_closed_store_refuses_use(data_dir: Path) -> None:
    s = HistoryStore(data_dir / "h.sqlite3")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        s.list_runs()


def test_locked_database_names_the_other_process(data_dir: Path) -> None:
    path = data_dir / "h.sqlite3"
    s = HistoryStore(path, busy_timeout_s=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(StorageError, match="locked by another process"):
            _run(s)
    finally:
        other.execute("ROLLBACK")
        other.close()
        s.close()


# --- question sets & documents ------------------------------------------------------------------
def test_question_set_round_trip(store: HistoryStore) -> None:
    assert store.list_question_sets() == []
    info = store.save_question_set("  Handbook  ", [QAItem("  Q one? ", " A "), QAItem("Q two?", "")])
    assert info == QuestionSetInfo("Handbook", 2, info.updated_at)
    assert store.get_question_set("Handbook") == [QAItem("Q one?", "A"), QAItem("Q two?", "")]
    store.save_question_set("Handbook", [QAItem("Replaced?", "yes")])  # replaces, not appends
    store.save_question_set("another", ITEMS)
    listed = store.list_question_sets()
    assert [(i.name, i.n_items) for i in listed] == [("another", 3), ("Handbook", 1)]
    assert store.get_question_set("Handbook") == [QAItem("Replaced?", "yes")]
    assert store.delete_question_set("Handbook") is True
    assert store.delete_question_set("Handbook") is False
    with pytest.raises(InputError, match=r"no question set named 'Handbook'.*'another'"):
        store.get_question_set("Handbook")


def test_question_set_is_validated(store: HistoryStore) -> None:
    with pytest.raises(InputError, match="row 2 and row 3"):
        store.save_question_set("dupes", [QAItem("A?", ""), QAItem("B?", ""), QAItem(" b? ", "")])
    with pytest.raises(InputError, match="no questions"):
        store.save_question_set("empty", [])
    with pytest.raises(InputError, match="needs a name"):
        store.save_question_set("   ", ITEMS)
    assert store.list_question_sets() == []


def test_documents_round_trip(store: HistoryStore) -> None:
    assert store.list_documents() == []
    a = DocumentInfo("b.pdf", "f" * 64, 12, 40, 123456, "2026-11-22T01:00:00+00:00")
    b = DocumentInfo("a.md", "e" * 64, 1, 3, 900, "2026-11-22T02:00:00+00:00")
    store.record_document(a)
    store.record_document(b)
    store.record_document(DocumentInfo("b.pdf", "0" * 64, 13, 41, 1, "2026-11-23T00:00:00+00:00"))
    docs = store.list_documents()
    assert [d.name for d in docs] == ["a.md", "b.pdf"]
    assert docs[1].sha256 == "0" * 64 and docs[1].pages == 13
    assert store.forget_document("a.md") is True
    assert store.forget_document("a.md") is False
    assert [d.name for d in store.list_documents()] == ["b.pdf"]


# --- runs, answers, scores ----------------------------------------------------------------------
def test_run_round_trip(store: HistoryStore) -> None:
    run_id = _run(store, model="claude-sonnet-4-5")
    run = store.get_run(run_id)
    assert isinstance(run, RunRecord)
    assert (run.status, run.finished_at, run.n_questions, run.question_set) == (
        "running",
        None,
        3,
        "handbook",
    )
    assert run.config == {"top_k": 4, "model": "claude-sonnet-4-5"}
    assert run.timings == {} and run.summary is None

    timings = {"retrieval_s": 0.5, "generation_s": 3.25, "evaluation_s": 1.0, "total_s": 4.75}
    summary = _summary(
        run_id, errors=1, metrics=(MetricStats(suite="offline", name="rouge_l", mean=0.5, scored=2, total=3),)
    )
    store.update_run(run_id, status="completed", timings=timings, summary=summary, finished=True)
    run = store.get_run(run_id)
    assert run.status == "completed" and run.finished_at is not None
    assert run.timings == timings and run.summary == summary  # typed record in, typed record out

    with pytest.raises(StorageError, match="Unknown run status"):
        store.update_run(run_id, status="exploded")
    with pytest.raises(InputError, match="no run #999"):
        store.get_run(999)
    with pytest.raises(StorageError, match="Run #999 no longer exists"):
        store.update_run(999, status="failed")


def test_create_run_writes_pending_results(store: HistoryStore) -> None:
    run_id = _run(store)
    results = store.get_results(run_id)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.question for r in results] == [i.question for i in ITEMS]
    assert all(r.status == "pending" and r.answer is None and r.scores == {} for r in results)
    assert all(r.contexts == [] for r in results)
    with pytest.raises(InputError, match="at least one question"):
        _run(store, items=[])


def test_answers_and_scores_round_trip(store: HistoryStore) -> None:
    run_id = _run(store)
    store.save_answer(
        run_id,
        1,
        answer="Two days a week.",
        contexts=[_chunk()],
        latency_s=1.5,
        attempts=2,
        input_tokens=120,
        output_tokens=30,
        model="offline-extractive",
    )
    store.save_answer(
        run_id, 2, error="Rate limited after 4 retries", error_kind="RateLimitError", attempts=5
    )
    store.save_scores(
        run_id,
        1,
        {
            "rouge_l": MetricScore("rouge_l", 0.42),
            "faithfulness": MetricScore(
                "faithfulness", 0.9, reason="2/2 claims supported", stdev=0.05, cached=True
            ),
        },
    )
    results = store.get_results(run_id)
    assert isinstance(results[1], ResultRecord)
    r1 = results[1]
    assert (r1.answer, r1.latency_s, r1.attempts, r1.input_tokens, r1.output_tokens, r1.model) == (
        "Two days a week.",
        1.5,
        2,
        120,
        30,
        "offline-extractive",
    )
    assert r1.status == "ok"
    assert r1.contexts == [_chunk().to_dict()]
    assert ScoredChunk.from_dict(r1.contexts[0]).chunk.source == "handbook.pdf"
    assert r1.scores["rouge_l"] == MetricScore("rouge_l", 0.42)
    assert r1.scores["faithfulness"] == MetricScore(
        "faithfulness", 0.9, reason="2/2 claims supported", stdev=0.05, cached=True
    )
    r2 = results[2]
    assert (r2.status, r2.answer, r2.error, r2.error_kind, r2.attempts) == (
        "error",
        None,
        "Rate limited after 4 retries",
        "RateLimitError",
        5,
    )
    # re-scoring replaces the metric's row
    store.save_scores(run_id, 1, [MetricScore("rouge_l", 0.5)])
    assert store.get_results(run_id)[1].scores["rouge_l"].value == 0.5
    assert len(store.get_results(run_id)[1].scores) == 2


def test_save_to_missing_run_or_item_raises_storage_error(store: HistoryStore) -> None:
    run_id = _run(store)
    with pytest.raises(StorageError, match=f"Run #{run_id} has no item 7"):
        store.save_answer(run_id, 7, answer="x")
    with pytest.raises(StorageError, match="Run #404 no longer exists"):
        store.save_scores(404, 0, [MetricScore("rouge_l", 1.0)])
    with pytest.raises(StorageError, match="nothing to save"):
        store.save_answer(run_id, 0)
    with pytest.raises(InputError, match="no run #404"):
        store.get_results(404)


def test_nan_and_inf_scores_are_stored_as_failures(store: HistoryStore) -> None:
    run_id = _run(store)
    store.save_answer(run_id, 0, answer="25 days.")
    store.save_scores(
        run_id,
        0,
        [
            MetricScore("semantic_similarity", float("nan")),
            MetricScore("rouge_l", float("inf"), stdev=float("nan")),
            MetricScore("context_recall", None),
            MetricScore("faithfulness", None, error="judge returned invalid JSON"),
        ],
    )
    scores = store.get_results(run_id)[0].scores
    assert scores["semantic_similarity"].value is None
    assert scores["semantic_similarity"].error == NAN_ERROR == "metric returned NaN"
    assert not scores["semantic_similarity"].ok
    assert scores["rouge_l"].value is None and scores["rouge_l"].stdev is None
    assert "infinite" in (scores["rouge_l"].error or "")
    assert scores["context_recall"].error == "metric returned no value"
    assert scores["faithfulness"].error == "judge returned invalid JSON"
    values = [r[0] for r in _rows(store, "SELECT value FROM scores")]
    assert values == [None, None, None, None]


def test_json_with_nan_is_never_written(store: HistoryStore) -> None:
    run_id = _run(store, weird=float("nan"))
    summary = _summary(
        run_id,
        generation=GenerationStats(speedup_measured=float("inf"), async_s=2.0),
        metrics=(
            MetricStats(suite="offline", name="rouge_l", mean=float("nan"), stdev=float("-inf"), total=3),
        ),
    )
    store.update_run(run_id, summary=summary, timings={"total_s": float("nan")})
    texts = _rows(store, "SELECT config, timings, summary FROM runs")[0]
    for text in texts:
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    run = store.get_run(run_id)
    stats = run.summary.metric("rouge_l")
    assert (stats.mean, stats.stdev, stats.scored) == (None, None, 0)
    assert (run.summary.generation.speedup_measured, run.summary.generation.async_s) == (None, 2.0)
    assert run.timings == {"total_s": None}
    assert run.config["weird"] is None


@pytest.mark.parametrize(
    "config",
    [
        {"api_key": "sk-test-not-a-real-key"},
        {"ANTHROPIC_API_KEY": "sk-test-not-a-real-key"},
        {"judge": {"x-api-key": "sk-test-not-a-real-key"}},
        {"client": [{"apiKey": None}]},
        {"key": Secret("sk-test-not-a-real-key")},
        {"note": "sk-" + "ant-api03-" + "x" * 6},  # key-shaped, built at run time
    ],
)
def test_secrets_are_refused(store: HistoryStore, config: dict) -> None:
    with pytest.raises(StorageError, match="never written") as info:
        store.create_run(
            question_set=None, backend="claude", mode="async", suite="judge", config=config, items=ITEMS
        )
    assert "sk-test-not-a-real-key" not in str(info.value)
    assert store.list_runs() == []
    run_id = _run(store)
    with pytest.raises(StorageError, match="never written"):
        store.update_run(run_id, config=config)
    with pytest.raises(StorageError, match="never written"):
        store.update_run(
            run_id,
            summary=_summary(run_id, judge=JudgeStats(versions={"x-api-key": "sk-test-not-a-real-key"})),
        )
    dump = _dump(store)
    assert "sk-test-not-a-real-key" not in dump and "sk-ant-" not in dump


def test_harmless_keys_that_mention_tokens_are_allowed(store: HistoryStore) -> None:
    run_id = _run(store, max_tokens=1024, input_tokens=5, has_key=True, judge_max_tokens=4096)
    assert store.get_run(run_id).config["max_tokens"] == 1024


def test_list_runs_newest_first_with_limit(store: HistoryStore) -> None:
    assert store.list_runs() == []
    ids = [_run(store) for _ in range(5)]
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs(limit=2)] == ids[:-3:-1]
    assert store.list_runs(limit=0) == []


def test_delete_run_cascades(store: HistoryStore) -> None:
    keep, gone = _run(store), _run(store)
    for run_id in (keep, gone):
        store.save_answer(run_id, 0, answer="a")
        store.save_scores(run_id, 0, [MetricScore("rouge_l", 0.3)])
        store.save_requests(run_id, [RequestTiming(0, "generation", "q", 1.0, 2.0, 1, "ok")])
        store.update_run(run_id, status="completed", finished=True)
    assert store.delete_run(gone) is True
    assert store.delete_run(gone) is False
    for table in ("results", "scores", "requests"):
        runs = {r[0] for r in _rows(store, f"SELECT run_id FROM {table}")}
        assert runs == {keep}, table
    assert [r.id for r in store.list_runs()] == [keep]


def test_delete_refuses_a_live_running_run(store: HistoryStore) -> None:
    run_id = _run(store)
    with pytest.raises(StorageError, match="still running"):
        store.delete_run(run_id)
    assert store.delete_run(run_id, force=True) is True


# --- timeline -----------------------------------------------------------------------------------
def test_requests_round_trip(store: HistoryStore) -> None:
    run_id = _run(store)
    assert store.get_requests(run_id) == []
    assert store.save_requests(run_id, []) == 0
    rows = [
        RequestTiming(
            1,
            "generation",
            "Can I work from home?",
            10.5,
            12.0,
            2,
            "ok",
            throttled_s=0.5,
            input_tokens=100,
            output_tokens=20,
            extra={"retry_after": 0.5},
        ),
        RequestTiming(0, "generation-sequential", "How many days?", 10.0, 11.0, 1, "error"),
        RequestTiming(0, "evaluation", "faithfulness", 13.0, 14.0, 1, "ok", extra={"x": float("nan")}),
    ]
    assert store.save_requests(run_id, rows) == 3
    got = store.get_requests(run_id)
    assert [(t.index, t.phase) for t in got] == [
        (0, "generation-sequential"),
        (1, "generation"),
        (0, "evaluation"),
    ]
    assert got[1] == rows[0]
    assert got[2].extra == {"x": None}
    with pytest.raises(StorageError, match="non-finite"):
        store.save_requests(run_id, [RequestTiming(0, "generation", "q", float("nan"), 1.0, 1, "ok")])
    with pytest.raises(StorageError, match="Run #77 no longer exists"):
        store.save_requests(77, rows)
    with pytest.raises(InputError, match="no run #77"):
        store.get_requests(77)


# --- crash recovery & resume --------------------------------------------------------------------
def test_mark_interrupted_respects_exclude(store: HistoryStore) -> None:
    live, crashed, done = _run(store), _run(store), _run(store)
    store.save_answer(crashed, 0, answer="a")
    store.update_run(done, status="completed", finished=True)
    assert store.mark_interrupted(exclude={live}) == [crashed]
    assert store.get_run(crashed).status == "interrupted"
    assert store.get_run(crashed).finished_at is not None
    assert store.get_run(live).status == "running"
    assert store.get_run(done).status == "completed"
    assert store.mark_interrupted(exclude={live}) == []
    assert store.mark_interrupted() == [live]


def test_missing_items_for_resume(store: HistoryStore) -> None:
    items = [QAItem(f"Question {i}?", "gt") for i in range(6)]
    run_id = _run(store, items=items)
    assert store.missing_items(run_id) == {"answers": [0, 1, 2, 3, 4, 5], "scores": []}
    store.save_answer(run_id, 0, answer="a0")
    store.save_answer(run_id, 1, answer="a1")
    store.save_answer(run_id, 2, error="boom", error_kind="OverloadedError")
    store.save_answer(run_id, 3, error="cancelled by user", error_kind="CancelledError")
    store.save_answer(run_id, 4, answer="a4")
    store.save_scores(run_id, 0, [MetricScore("rouge_l", 0.1), MetricScore("context_recall", 0.2)])
    store.save_scores(run_id, 4, [MetricScore("rouge_l", float("nan"))])  # failed counts as scored
    assert store.missing_items(run_id) == {"answers": [3, 5], "scores": [1]}
    assert store.missing_items(run_id, retry_errors=True)["answers"] == [2, 3, 5]
    assert store.missing_items(run_id, metrics=["rouge_l", "context_recall"])["scores"] == [1, 4]
    with pytest.raises(InputError, match="no run #31"):
        store.missing_items(31)


# --- judge cache --------------------------------------------------------------------------------
def test_judge_cache_hit_and_miss(store: HistoryStore) -> None:
    assert store.judge_cache_get("k1") is None
    assert store.judge_cache_put("k1", 0.75, "3/4 statements supported") is True
    assert store.judge_cache_get("k1") == (0.75, "3/4 statements supported")
    assert store.judge_cache_put("k1", 1.0, None) is True
    assert store.judge_cache_get("k1") == (1.0, None)
    assert store.judge_cache_put("k2", float("nan"), "x") is False
    assert store.judge_cache_put("k3", None, "x") is False
    assert store.judge_cache_get("k2") is None and store.judge_cache_get("k3") is None


# --- concurrency --------------------------------------------------------------------------------
def test_two_threads_write_concurrently(store: HistoryStore) -> None:
    n = 60
    run_a = _run(store, items=[QAItem(f"A{i}?", "") for i in range(n)])
    run_b = _run(store, items=[QAItem(f"B{i}?", "") for i in range(n)])
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=10)

    def work(run_id: int) -> None:
        try:
            barrier.wait()
            for i in range(n):
                store.save_answer(run_id, i, answer=f"answer {i}", attempts=1)
                store.save_scores(run_id, i, [MetricScore("rouge_l", i / n)])
                store.judge_cache_put(f"{run_id}:{i}", 0.5, None)
                store.list_runs(limit=5)
        except BaseException as exc:  # collected and re-raised by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in (run_a, run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for run_id in (run_a, run_b):
        results = store.get_results(run_id)
        assert all(r.status == "ok" and "rouge_l" in r.scores for r in results)
        assert store.missing_items(run_id) == {"answers": [], "scores": []}


def _process_writer(db_path: str, run_id: int, parity: int, n: int, barrier: Any) -> None:
    store = HistoryStore(db_path)
    try:
        barrier.wait(30)  # both processes open the db, then write at the same time
        for i in range(parity, n, 2):
            store.save_answer(run_id, i, answer=f"from process {parity}", attempts=1)
            store.save_scores(run_id, i, [MetricScore("rouge_l", 0.5)])
        store.create_run(
            question_set=None,
            backend="offline",
            mode="async",
            suite="offline",
            config={"writer": parity},
            items=[QAItem("Q?", "")],
        )
    finally:
        store.close()


def test_two_processes_write_concurrently(store_target: Path | str) -> None:
    path = store_target
    n = 300
    with HistoryStore(path) as store:
        run_id = _run(store, items=[QAItem(f"Q{i}?", "") for i in range(n)])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_process_writer, args=(str(path), run_id, p, n, barrier)) for p in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=40)
    assert [p.exitcode for p in procs] == [0, 0]
    with HistoryStore(path) as store:
        results = store.get_results(run_id)
        assert [r.answer for r in results] == [f"from process {i % 2}" for i in range(n)]
        assert all(r.scores["rouge_l"].value == 0.5 for r in results)
        assert sorted(r.config.get("writer", -1) for r in store.list_runs()) == [-1, 0, 1]


def _hold_a_run(db_path: str, created: Any, release: Any) -> None:
    store = HistoryStore(db_path)
    store.create_run(
        question_set=None, backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    created.set()
    release.wait(30)
    store.close()


def test_mark_interrupted_spares_other_live_processes(store_target: Path | str) -> None:
    path = store_target
    HistoryStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    created, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_a_run, args=(str(path), created, release))
    proc.start()
    try:
        assert created.wait(30)
        with HistoryStore(path) as store:
            (other_run,) = store.list_runs()
            assert store.mark_interrupted() == []  # the CLI-like process is alive: not ours to mark
            with pytest.raises(StorageError, match="still running"):
                store.delete_run(other_run.id)
            release.set()
            proc.join(timeout=30)
            assert proc.exitcode == 0
            assert store.mark_interrupted() == [other_run.id]  # its process died without finishing
            assert store.get_run(other_run.id).status == "interrupted"
    finally:
        release.set()
        proc.join(timeout=30)


# --- performance --------------------------------------------------------------------------------
def test_list_runs_is_fast_with_100_runs_of_100_results(store: HistoryStore) -> None:
    items = [QAItem(f"Question number {i} about leave policy?", "Some ground truth " * 5) for i in range(100)]
    for _ in range(100):
        run_id = _run(store, items=items)
        with store._tx("bulk fill", write=True) as conn:  # fast fill; the API path is tested above
            conn.executemany(
                "UPDATE results SET status='ok', answer=?, contexts=? WHERE run_id=? AND idx=?",
                [
                    ("An answer " * 20, json.dumps([_chunk("x" * 900).to_dict()] * 4), run_id, i)
                    for i in range(100)
                ],
            )
        summary = _summary(
            run_id,
            n=100,
            metrics=tuple(
                MetricStats(suite="offline", name=m, mean=0.5, stdev=0.1, scored=100, total=100)
                for m in ("rouge_l", "context_recall")
            ),
        )
        store.update_run(run_id, status="completed", summary=summary, finished=True)
    statements: list[str] = []

    def trace(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store._engine, "before_cursor_execute", trace)
    t0 = time.perf_counter()
    runs = store.list_runs()
    elapsed = time.perf_counter() - t0
    sa.event.remove(store._engine, "before_cursor_execute", trace)
    assert len(runs) == 100 and runs[0].summary.n_questions == 100
    # Listing never reads per-question rows (the History page lists runs on every render).
    assert statements and not [q for q in statements if "results" in q or "scores" in q]
    t0 = time.perf_counter()
    results = store.get_results(runs[0].id)
    fetch_s = time.perf_counter() - t0
    assert len(results) == 100
    print(
        f"list_runs(100 runs x 100 results): {elapsed * 1000:.1f} ms; get_results(100): {fetch_s * 1000:.1f} ms"
    )
