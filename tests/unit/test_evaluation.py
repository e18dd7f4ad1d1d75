"""Phase 2 scoring: offline suite, judge suite against the loopback stand-in (real anthropic SDK,
real instructor, real RAGAS code over HTTP), judge cache, repeats, failures and cancel."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rag_core.engine import BatchPolicy, Engine
from rag_core.errors import InputError
from rag_core.evaluation import (
    JUDGE_METRICS,
    OFFLINE_METRICS,
    Sample,
    make_suite,
    submit_scoring,
)
from rag_core.models import MetricScore
from rag_core.runs.summary import metric_stats
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore
from rag_core.summary import JudgeStats
from rag_core.vocab import Suite
from tests.support.anthropic_server import FakeAnthropic, FaultPlan
from tests.support.ragas_responder import RagasResponder

KEY = "sk-test-not-a-real-key"

LEAVE = Sample(
    question="How many days of annual leave do I get?",
    answer="Full-time staff get 25 days of annual leave. Staff also get free pizza every Friday.",
    contexts=[
        "Full-time employees receive 25 days of paid annual leave per year, plus public holidays.",
        "The canteen is open from 12:00 to 14:00 on working days.",
    ],
    ground_truth="Full-time staff receive 25 days of paid annual leave a year plus public holidays.",
)
REMOTE = Sample(
    question="How many days a week can I work from home?",
    answer="You can work from home for up to three days each week, with your manager's approval.",
    contexts=[
        "Employees may work remotely for up to three days per week with their line manager's approval."
    ],
    ground_truth="Up to three days a week of remote work, with the line manager's approval.",
)
NO_TRUTH = Sample(
    question="Is there a company car allowance?",
    answer="The policy documents provided do not cover this question.",
    contexts=["Benefits include a pension scheme and private health cover."],
    ground_truth="",
)
MISSED = Sample(  # the retrieved chunk is about something else: recall must be low
    question="How much notice must I give after three years?",
    answer="You must give one month of notice.",
    contexts=["The canteen is open from 12:00 to 14:00 on working days."],
    ground_truth="After three years of service you must give two months' notice in writing.",
)
FAST = BatchPolicy(concurrency=8, timeout_s=20.0, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine()
    yield eng
    eng.shutdown()


@pytest.fixture
def store(settings: Settings) -> HistoryStore:
    return HistoryStore(settings.db_path)


def judge_settings(settings: Settings, srv: FakeAnthropic) -> Settings:
    return settings.replace(base_url=srv.base_url, api_key=Secret(KEY), request_timeout_s=10.0)


def collect() -> tuple[list[tuple[int, MetricScore, str]], Any]:
    seen: list[tuple[int, MetricScore, str]] = []
    lock = threading.Lock()

    def on_score(i: int, s: MetricScore) -> None:
        with lock:
            seen.append((i, s, threading.current_thread().name))

    return seen, on_score


# --- offline ------------------------------------------------------------------------------------
def test_offline_suite_scores_in_unit_interval_and_fails_without_ground_truth(settings, engine):
    seen, on_score = collect()
    suite = make_suite("offline", settings)
    suite.warm()
    batch = submit_scoring(
        [LEAVE, MISSED, NO_TRUTH], suite=suite, engine=engine, policy=FAST, on_score=on_score
    )
    out = batch.wait(60)

    assert [list(row) for row in out.scores] == [list(OFFLINE_METRICS)] * 3
    for row in out.scores[:2]:
        for s in row.values():
            assert s.ok and 0.0 <= s.value <= 1.0, s
    for s in out.scores[2].values():  # no ground truth → failed with a reason, never 0
        assert s.value is None and "no ground truth" in (s.error or "")
    # the hand-written context recall tells a retrieved fact from an unrelated chunk
    assert out.scores[0]["context_recall"].value == 1.0
    assert out.scores[1]["context_recall"].value == 0.0
    detail = json.loads(out.scores[0]["context_recall"].reason)
    assert detail["sentences"][0]["attributed"] is True
    assert out.scores[0]["semantic_similarity"].value > out.scores[1]["semantic_similarity"].value

    summary = {
        m.name: m for m in metric_stats(Suite(suite.name), suite.metrics, out.scores, total=len(out.scores))
    }
    assert summary["rouge_l"].scored == 2 and summary["rouge_l"].failed == 1
    assert out.calls == 0 and out.cache_hits == 0
    assert len(seen) == 9 and all(not name.startswith("rag-engine") for _, _, name in seen)
    p = batch.progress()
    assert p.finished and p.total == p.done == 9 and p.errors == 3
    assert {t.phase for t in out.timings} == {"evaluation"} and len(out.timings) == 6


def test_offline_context_recall_is_zero_when_nothing_was_retrieved(settings, engine):
    empty = Sample(LEAVE.question, LEAVE.answer, [], LEAVE.ground_truth)
    out = submit_scoring(
        [empty], suite=make_suite("offline", settings, metrics=["context_recall"]), engine=engine, policy=FAST
    ).wait(30)
    s = out.scores[0]["context_recall"]
    assert s.value == 0.0 and s.reason == "nothing was retrieved"


# --- judge ----------------------------------------------------------------------------------------
def test_judge_suite_scores_all_four_metrics_with_reasons(settings, engine, store):
    bodies: list[dict[str, Any]] = []
    responder = RagasResponder()

    def spy(body: dict[str, Any]) -> Any:
        bodies.append(body)
        return responder(body)

    seen, on_score = collect()
    with FakeAnthropic(responder=spy) as srv:
        st = judge_settings(settings, srv)
        suite = make_suite("judge", st)
        out = submit_scoring(
            [LEAVE, REMOTE], suite=suite, engine=engine, policy=FAST, store=store, on_score=on_score
        ).wait(60)
        served = srv.count
        retry_headers = {r.retry_count for r in srv.requests}

    for row in out.scores:
        assert list(row) == list(JUDGE_METRICS)
        for s in row.values():
            assert s.ok and 0.0 <= s.value <= 1.0 and s.reason, s
            assert not s.cached
    faith = out.scores[0]["faithfulness"]
    verdicts = json.loads(faith.reason)["statements"]
    assert [v["verdict"] for v in verdicts] == [1, 0]  # the pizza claim is not in the context
    assert faith.value == pytest.approx(0.5)
    assert json.loads(out.scores[0]["context_precision"].reason)["chunks"][1]["verdict"] == 0
    assert len(json.loads(out.scores[0]["answer_relevancy"].reason)["generated_questions"]) == 3

    # calls per question: faithfulness 2 + answer relevancy 3 + precision k + recall 1
    assert out.calls == served == (2 + 3 + 2 + 1) + (2 + 3 + 1 + 1)
    assert retry_headers == {"0"}  # the SDK never retried on its own
    assert all("temperature" not in b and "top_p" not in b for b in bodies)
    assert {b["max_tokens"] for b in bodies} == {st.judge_max_tokens}
    assert all(b["tool_choice"]["type"] == "tool" for b in bodies)
    assert len(seen) == 8
    # one timeline row per Claude call, named after its metric and its place in the metric
    assert len(out.timings) == out.calls
    assert sorted(t.label for t in out.timings if t.index == 0) == sorted(
        [f"faithfulness · call {n}" for n in (1, 2)]
        + [f"answer_relevancy · call {n}" for n in (1, 2, 3)]
        + [f"context_precision · call {n}" for n in (1, 2)]
        + ["context_recall · call 1"]
    )
    assert suite.versions()["context_precision"].endswith("ContextPrecisionWithReference")
    assert suite.model == st.judge_model


def test_rescoring_hits_the_cache_and_fresh_bypasses_it(settings, engine, store):
    with FakeAnthropic(responder=RagasResponder()) as srv:
        suite = make_suite("judge", judge_settings(settings, srv))
        first = submit_scoring([LEAVE], suite=suite, engine=engine, policy=FAST, store=store).wait(60)
        n = srv.count
        assert n == first.calls == 8 and first.cache_hits == 0

        again = submit_scoring([LEAVE], suite=suite, engine=engine, policy=FAST, store=store).wait(30)
        assert srv.count == n  # zero requests reached the server
        assert again.calls == 0 and again.cache_hits == 4 and again.timings == []
        for m in JUDGE_METRICS:
            assert again.scores[0][m].cached
            assert again.scores[0][m].value == first.scores[0][m].value
            assert again.scores[0][m].reason == first.scores[0][m].reason

        fresh = submit_scoring(
            [LEAVE], suite=suite, engine=engine, policy=FAST, store=store, fresh=True
        ).wait(60)
        assert srv.count == 2 * n and fresh.cache_hits == 0 and fresh.calls == n
        assert not any(s.cached for s in fresh.scores[0].values())

        # a changed answer is a different key: it is judged again
        changed = Sample(
            LEAVE.question, LEAVE.answer + " Unused days expire.", LEAVE.contexts, LEAVE.ground_truth
        )
        out = submit_scoring(
            [changed],
            suite=make_suite("judge", judge_settings(settings, srv), metrics=["context_recall"]),
            engine=engine,
            policy=FAST,
            store=store,
        ).wait(30)
        assert out.cache_hits == 0 and out.calls == 1


def test_server_errors_become_failed_scores_with_reasons(settings, engine, store):
    with FakeAnthropic(responder=RagasResponder(), faults=FaultPlan(rate_500=1.0)) as srv:
        suite = make_suite("judge", judge_settings(settings, srv))
        seen, on_score = collect()
        batch = submit_scoring(
            [LEAVE, REMOTE], suite=suite, engine=engine, policy=FAST, store=store, on_score=on_score
        )
        out = batch.wait(60)
    for row in out.scores:
        for s in row.values():
            assert s.value is None and "500" in (s.error or ""), s
    summary = {
        m.name: m for m in metric_stats(Suite(suite.name), suite.metrics, out.scores, total=len(out.scores))
    }
    assert all(
        (summary[m].mean, summary[m].stdev, summary[m].scored, summary[m].failed) == (None, None, 0, 2)
        for m in JUDGE_METRICS
    )
    assert batch.progress().errors == 8 and batch.progress().retries == 8  # engine retried once each
    assert len(seen) == 8
    # failures are never cached
    assert store.judge_cache_get(suite.cache_key("faithfulness", LEAVE, 0)) is None


def test_repeats_report_mean_and_stdev_and_exclude_a_failed_repeat(settings, engine, store):
    verdicts = itertools.cycle([1, 1, 0])
    responder = RagasResponder(verdict=lambda s, c: next(verdicts))
    one = BatchPolicy(concurrency=1, timeout_s=20.0, max_retries=0)
    with FakeAnthropic(responder=responder) as srv:
        suite = make_suite("judge", judge_settings(settings, srv), metrics=["faithfulness"])
        out = submit_scoring([LEAVE], suite=suite, engine=engine, policy=one, store=store, repeats=3).wait(60)
        s = out.scores[0]["faithfulness"]
        # repeats judge (1,1), (0,1), (1,0) → 1.0, 0.5, 0.5
        assert s.value == pytest.approx(2 / 3) and s.stdev == pytest.approx(0.288675, abs=1e-5)
        assert out.calls == 6 and srv.count == 6

    verdicts2 = itertools.cycle([1, 1, 0])
    responder2 = RagasResponder(verdict=lambda s, c: next(verdicts2))
    with FakeAnthropic(responder=responder2, faults=FaultPlan(schedule={0: "400"})) as srv:
        suite = make_suite("judge", judge_settings(settings, srv), metrics=["faithfulness"])
        out = submit_scoring(
            [LEAVE], suite=suite, engine=engine, policy=one, store=store, repeats=3, fresh=True
        ).wait(60)
    s = out.scores[0]["faithfulness"]
    # repeat 0 fails (400, not retryable) and is excluded; the others judge (1,1) and (0,1)
    assert s.value == pytest.approx(0.75) and s.stdev == pytest.approx(math.sqrt(0.125))
    assert "2 of 3 judge repeats succeeded" in (s.reason or "")


def test_malformed_and_empty_judge_output_fail_with_reasons(settings, engine):
    with FakeAnthropic(responder=RagasResponder(text_only=True)) as srv:
        suite = make_suite("judge", judge_settings(settings, srv), metrics=["context_recall"])
        out = submit_scoring([LEAVE], suite=suite, engine=engine, policy=FAST).wait(30)
        s = out.scores[0]["context_recall"]
        assert s.value is None and "did not match the structure" in (s.error or "")
        assert out.calls == srv.count == 2  # first answer + one re-ask, no engine retry

    base = RagasResponder()

    def no_statements(body: dict[str, Any]) -> Any:
        if body["tool_choice"]["name"] == "StatementGeneratorOutput":
            return [
                {
                    "type": "tool_use",
                    "id": "toolu_x",
                    "name": "StatementGeneratorOutput",
                    "input": {"statements": []},
                }
            ]
        return base(body)

    with FakeAnthropic(responder=no_statements) as srv:
        suite = make_suite("judge", judge_settings(settings, srv), metrics=["faithfulness"])
        out = submit_scoring([LEAVE], suite=suite, engine=engine, policy=FAST).wait(30)
    s = out.scores[0]["faithfulness"]  # RAGAS returns NaN here: stored as failed, not 0
    assert s.value is None and "no factual statements" in (s.error or "")


def test_rejected_key_stops_the_batch(settings, engine):
    with FakeAnthropic(responder=RagasResponder(), api_key="sk-test-the-right-one") as srv:
        suite = make_suite("judge", judge_settings(settings, srv))
        out = submit_scoring(
            [LEAVE, REMOTE, MISSED],
            suite=suite,
            engine=engine,
            policy=BatchPolicy(concurrency=1, max_retries=3),
        ).wait(30)
        assert srv.count == 1
    errors = [s.error or "" for row in out.scores for s in row.values()]
    assert all(s.value is None for row in out.scores for s in row.values())
    assert all("ANTHROPIC_API_KEY" in e for e in errors)
    assert KEY not in " ".join(errors)


def test_cancel_stops_scoring_and_keeps_finished_scores(settings, engine):
    samples = [LEAVE, REMOTE, MISSED] * 4
    with FakeAnthropic(responder=RagasResponder(), latency=0.4) as srv:
        suite = make_suite("judge", judge_settings(settings, srv))
        seen, on_score = collect()
        batch = submit_scoring(
            samples,
            suite=suite,
            engine=engine,
            policy=BatchPolicy(concurrency=4, timeout_s=20.0),
            on_score=on_score,
        )
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        t = time.monotonic()
        batch.cancel()
        out = batch.wait(20)
        assert time.monotonic() - t < 5
        served = srv.count
    assert out.cancelled and batch.progress().cancelled
    flat = [s for row in out.scores for s in row.values()]
    assert len(flat) == 48
    assert any(s.ok for s in flat)
    cancelled = [s for s in flat if not s.ok]
    assert cancelled and all("cancelled" in (s.error or "").lower() for s in cancelled)
    assert served < 100  # the full batch would make 12 × 10 = 120 calls
    assert len(seen) == sum(1 for s in flat if s.ok)  # cancelled pairs are not reported


# --- suites and summaries -----------------------------------------------------------------------
def test_make_suite_validates_name_metrics_and_key(settings):
    with pytest.raises(InputError, match="API key"):
        make_suite("judge", settings)
    with pytest.raises(InputError, match="bleu"):
        make_suite("offline", settings, metrics=["bleu"])
    with pytest.raises(InputError, match="suite"):
        make_suite("llm", settings)
    suite = make_suite("offline", settings, metrics=["rouge_l", "semantic_similarity"])
    assert suite.metrics == ("semantic_similarity", "rouge_l")  # suite order, not caller order
    assert set(suite.versions()) == set(suite.metrics)
    with pytest.raises(InputError):
        submit_scoring([LEAVE], suite=suite, engine=Engine(), policy=FAST, repeats=0)


def test_metric_stats_exclude_failures_and_never_return_nan():
    rows = [
        {"m": MetricScore("m", 0.5), "n": MetricScore("n", None, error="x")},
        {"m": MetricScore("m", 1.0), "n": MetricScore("n", float("nan"))},
    ]
    m, n = metric_stats(Suite.OFFLINE, ["m", "n"], rows, total=2)
    assert (m.mean, m.stdev, m.scored, m.failed, m.judge_stdev) == (
        0.75,
        pytest.approx(math.sqrt(0.125)),
        2,
        0,
        None,
    )
    assert (n.mean, n.stdev, n.scored, n.failed, n.judge_stdev) == (None, None, 0, 2, None)
    assert metric_stats(Suite.OFFLINE, [], [], total=0) == ()
    # judge variance (between repeats) is reported apart from the spread across questions
    (rep,) = metric_stats(
        Suite.JUDGE,
        ["m"],
        [{"m": MetricScore("m", 0.5, stdev=0.1)}, {"m": MetricScore("m", 0.9, stdev=0.3)}],
        total=2,
    )
    assert rep.judge_stdev == pytest.approx(0.2)
    assert rep.stdev == pytest.approx(math.sqrt(0.08))


def test_judge_stats_mismatch_warns_about_incomparable_runs():
    a = JudgeStats(suite="judge", model="claude-a", versions={"faithfulness": "ragas-0.4.3:Faithfulness"})
    assert a.mismatch(a.model_copy()) is None
    assert "suites" in a.mismatch(JudgeStats(suite="offline"))
    assert "models" in a.mismatch(a.model_copy(update={"model": "claude-b"}))
    assert "faithfulness" in a.mismatch(
        a.model_copy(update={"versions": {"faithfulness": "ragas-0.5:Faithfulness"}})
    )
