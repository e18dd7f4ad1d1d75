"""The typed run summary: each symptom of the untyped dict is fixed by construction.

Runs go through the real executor and store, and Claude answers come from the loopback stand-in
through the real SDK; retrieval is replaced by fixed contexts so no embedding model loads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from rag_core.models import Chunk, MetricScore, QAItem, ScoredChunk
from rag_core.reporting.compare import runs_table
from rag_core.runs import executor
from rag_core.runs.executor import resume_run, start_run, summarize_run
from rag_core.runs.request import RunRequest
from rag_core.runs.summary import metric_stats
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore
from rag_core.summary import JudgeStats, RunSummary, ideal_speedup
from rag_core.usage import AttemptLedger, charging, request_done, request_sent
from rag_core.vocab import Suite

FAKE_KEY = "sk-test-not-a-real-key-summary"


def _items(n: int) -> tuple[QAItem, ...]:
    return tuple(
        QAItem(f"How many days does rule {i} give?", f"Rule {i} gives {i + 10} days.") for i in range(n)
    )


def _context(i: int) -> list[ScoredChunk]:
    chunk = Chunk(f"h:{i}", f"Rule {i} gives {i + 10} days of leave.", "handbook.pdf", 1, i, "h")
    return [ScoredChunk(chunk, 0.9)]


@pytest.fixture(autouse=True)
def _fixed_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_retrieve(
        settings: Settings, questions: list[str], top_k: int, collection: str = ""
    ) -> list[list[ScoredChunk]]:
        return [_context(int(q.split("rule ")[1].split()[0])) for q in questions]

    monkeypatch.setattr(executor, "retrieve_contexts", fake_retrieve)


@pytest.fixture
def store(settings: Settings) -> Iterator[HistoryStore]:
    s = HistoryStore(settings.db_path)
    yield s
    s.close()


@pytest.fixture
def srv() -> Iterator[Any]:
    from tests.support.anthropic_server import FakeAnthropic

    with FakeAnthropic(latency=0.3) as server:
        yield server


def _claude(settings: Settings, srv: Any) -> Settings:
    return settings.replace(api_key=Secret(FAKE_KEY), base_url=srv.base_url)


def _wait_answers(store: HistoryStore, run_id: int, k: int, timeout: float = 30.0) -> None:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if sum(r.answer is not None for r in store.get_results(run_id)) >= k:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {k} answers within {timeout} s")


# --- compare mode: both passes are billed ------------------------------------------------------
def test_compare_run_bills_both_passes_and_knows_its_ideal(
    settings: Settings, store: HistoryStore, srv
) -> None:
    s = _claude(settings, srv)
    req = RunRequest(items=_items(12), backend="claude", mode="compare", suite="none", concurrency=8)
    summary = start_run(req, settings=s, store=store).wait(60)
    assert summary is not None and summary.status == "completed"
    u = summary.usage
    assert sorted(p.kind for p in u.passes) == ["answers", "answers-sequential"]
    assert u.answer_calls == 24 == srv.count  # every request the server saw is billed
    seq, asy = (next(p for p in u.passes if p.kind == k) for k in ("answers-sequential", "answers"))
    assert seq.calls == asy.calls == 12
    assert seq.cost_usd == pytest.approx(asy.cost_usd, rel=0.2) and u.cost_usd == pytest.approx(
        seq.cost_usd + asy.cost_usd
    )
    priced = s.cost_usd(
        s.answer_model, sum(p.input_tokens for p in u.passes), sum(p.output_tokens for p in u.passes)
    )
    assert u.cost_usd == pytest.approx(priced)
    # 12 requests at concurrency 8 go out in two waves: 6x is the ceiling, not 8x.
    assert summary.generation.ideal_speedup == 6.0
    assert summary.generation.speedup_measured is not None and summary.generation.speedup_measured > 2.0
    stored = store.get_run(summary.run_id).summary
    assert stored == summary  # the same record survives the storage boundary


def test_ideal_speedup_counts_waves() -> None:
    assert ideal_speedup(12, 8) == 6.0
    assert ideal_speedup(16, 8) == 8.0
    assert ideal_speedup(100, 16) == pytest.approx(100 / 7)
    assert ideal_speedup(3, 8) == 3.0
    assert ideal_speedup(0, 8) == 1.0


# --- resume: time, calls and cost are summed over every attempt ----------------------------------
def test_resumed_run_reports_every_attempt(settings: Settings, store: HistoryStore, srv) -> None:
    s = _claude(settings, srv)
    req = RunRequest(items=_items(8), backend="claude", mode="async", suite="none", concurrency=2)
    first = start_run(req, settings=s, store=store)
    _wait_answers(store, first.run_id, 2)
    first.cancel()
    assert first.wait(30) is not None and first.done()
    sent_before = srv.count
    answered_before = sum(r.answer is not None for r in store.get_results(first.run_id))
    assert answered_before < 8

    summary = resume_run(first.run_id, settings=s, store=store).wait(60)
    assert summary is not None and summary.status == "completed"
    assert summary.timings.attempts == 2
    # Every request the server saw is counted; requests cancelled in flight are counted too (at
    # most the 2 in flight: they may or may not have reached the server before the cancel).
    assert srv.count > sent_before
    assert srv.count <= summary.usage.answer_calls <= srv.count + 2
    # 8 requests at concurrency 2 are 4 waves of 0.3 s: only both attempts together took that long.
    assert summary.generation.async_s is not None and summary.generation.async_s >= 4 * 0.3 * 0.9
    assert summary.timings.generation_s >= summary.generation.async_s * 0.99
    assert summary.timings.total_s >= summary.timings.generation_s
    resumed_only = store.get_attempts(first.run_id)[-1]
    assert resumed_only["elapsed_s"] < summary.timings.total_s


def test_requests_are_recorded_before_they_are_sent() -> None:
    """A process killed with requests in flight has already stored them (they may be billed)."""
    written: list[dict] = []
    ledger = AttemptLedger()
    ledger.attach(written.append)

    async def send() -> None:
        with charging(ledger, "judge"):
            await request_sent("claude-sonnet-4-5", 1000)
            assert written and written[-1]["passes"][0]["calls"] == 1  # stored before it leaves
            request_done("claude-sonnet-4-5", 1000, responded=False)  # killed / timed out in flight

    anyio.run(send)
    snap = ledger.snapshot()["passes"][0]
    assert (snap["calls"], snap["input_tokens"], snap["estimated_input_tokens"]) == (1, 0, 1000)


# --- cancelled runs: "k of N scored" counts every question ---------------------------------------
def test_cancelled_run_counts_every_question(settings: Settings, store: HistoryStore, srv) -> None:
    s = _claude(settings, srv)
    req = RunRequest(
        items=_items(12), backend="claude", mode="async", suite="offline", metrics=("rouge_l",), concurrency=2
    )
    h = start_run(req, settings=s, store=store)
    _wait_answers(store, h.run_id, 2)
    h.cancel()
    summary = h.wait(30)
    assert summary is not None and summary.status == "cancelled"
    m = summary.metric("rouge_l")
    assert m is not None and m.total == 12 and m.scored + m.failed < 12 and m.missing > 0


def test_metric_stats_total_is_the_run_not_the_scored_rows() -> None:
    rows = [{"rouge_l": MetricScore("rouge_l", 0.5)} for _ in range(6)] + [{} for _ in range(6)]
    (m,) = metric_stats(Suite.OFFLINE, ["rouge_l"], rows, total=12)
    assert (m.scored, m.failed, m.total, m.missing) == (6, 0, 12, 6)


# --- metric identity: offline and judged recall never share a column ---------------------------
def test_offline_and_judged_recall_are_two_metrics(store: HistoryStore) -> None:
    ids = []
    for suite in ("offline", "judge"):
        run_id = store.create_run(
            question_set="s", backend="offline", mode="async", suite=suite, config={}, items=_items(2)
        )
        for i in range(2):
            store.save_answer(run_id, i, answer="a", contexts=[])
            store.save_scores(run_id, i, [MetricScore("context_recall", 0.5 if suite == "offline" else 1.0)])
        summary = RunSummary(
            run_id=run_id,
            status="completed",
            backend="offline",
            mode="async",
            suite=suite,
            n_questions=2,
            metrics=metric_stats(
                Suite(suite), ["context_recall"], [r.scores for r in store.get_results(run_id)], total=2
            ),
            judge=JudgeStats(suite=suite),
        )
        store.update_run(run_id, status="completed", summary=summary, finished=True)
        ids.append(summary.metrics[0].id)
    assert ids == ["offline.context_recall", "judge.context_recall"]
    table = runs_table(store.list_runs())
    assert {"Context recall (offline)", "Context recall (judge)"} <= set(table.columns)
    assert table["Context recall (offline)"].notna().sum() == 1
    assert table["Context recall (judge)"].notna().sum() == 1


def test_summary_of_a_run_from_before_attempts_is_what_it_stored(
    store: HistoryStore, settings: Settings
) -> None:
    """History written by the previous version (untyped summary dict, no attempt rows) still reads."""
    run_id = store.create_run(
        question_set="s", backend="claude", mode="compare", suite="judge", config={}, items=_items(2)
    )
    legacy = {
        "n_questions": 2,
        "errors": 0,
        "generation": {"sequential_s": 2.0, "async_s": 1.0, "speedup_measured": 2.0, "ideal_speedup": 2.0},
        "metrics": {"faithfulness": {"mean": 0.9, "stdev": None, "scored": 2, "failed": 0}},
        "usage": {"input_tokens": 100, "output_tokens": 10, "judge_input_tokens": 500, "cost_usd": 0.01},
        "judge": {
            "suite": "judge",
            "model": "claude-sonnet-4-5",
            "calls": 8,
            "cache_hits": 0,
            "versions": {},
        },
    }
    with store._tx("write a legacy summary", write=True) as conn:
        conn.execute(
            "UPDATE runs SET status='completed', summary=?, timings=? WHERE id=?",
            (__import__("json").dumps(legacy), '{"total_s": 3.5}', run_id),
        )
    s = summarize_run(store, run_id, settings)
    assert s.metric("faithfulness").id == "judge.faithfulness" and s.metric("faithfulness").total == 2
    assert s.timings.total_s == 3.5 and s.generation.speedup_measured == 2.0 and s.judge.calls == 8


def test_retries_are_summed_over_attempts_per_pass_metric_and_error() -> None:
    from rag_core.engine import CallRecord
    from rag_core.runs.passes import RetryNotes
    from rag_core.summary import RetryStats

    first, second = RetryNotes(), RetryNotes()
    first.add(
        "answers",
        [
            (
                None,
                CallRecord(
                    "answer",
                    0.0,
                    attempts=3,
                    throttled_s=2.0,
                    longest_wait_s=1.5,
                    retried={"RateLimitError": 2},
                    status="ok",
                ),
            )
        ],
    )
    first.add(
        "judge",
        [
            (
                "faithfulness",
                CallRecord(
                    "faithfulness · call 2",
                    0.0,
                    attempts=2,
                    throttled_s=0.5,
                    longest_wait_s=0.5,
                    retried={"OverloadedError": 1},
                    status="error",
                ),
            )
        ],
    )
    second.add("judge", [("faithfulness", CallRecord("faithfulness · call 1", 0.0, attempts=1, status="ok"))])
    second.add_retries("judge", 4)  # requests sent again in a later Message Batch round
    stats = RetryStats.from_notes([first.to_json(), second.to_json(), None])
    assert (stats.calls, stats.retries, stats.calls_retried, stats.failed_calls) == (3, 7, 2, 1)
    assert stats.by_pass == {"answers": 2, "judge": 5}
    assert stats.by_metric == {"faithfulness": 1}
    assert stats.by_error == {"RateLimitError": 2, "OverloadedError": 1}
    assert (stats.throttled_s, stats.longest_wait_s) == (2.5, 1.5)
    again = RunSummary.from_json({"run_id": 1, "retries": stats.to_json()})
    assert again.retries == stats
