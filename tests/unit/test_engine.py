"""The engine: loop thread, batch runner (order, cap, retries, timeouts, cancel, fatal, AIMD).

Requests that must be *seen by a server* go through the real anthropic SDK (ClaudeAnswerer) to the
loopback stand-in in tests/support/anthropic_server.py. Time bounds are generous: the machine is shared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from rag_core.answer.claude import ClaudeAnswerer
from rag_core.engine import BatchPolicy, Engine, ItemResult, get_engine, report_requests_remaining
from rag_core.errors import AuthError, OverloadedError, RateLimitError
from rag_core.models import Chunk, ScoredChunk
from rag_core.settings import Secret, Settings
from tests.support.anthropic_server import FakeAnthropic, FaultPlan

FAKE_KEY = "sk-test-not-a-real-key"
CTX = [
    ScoredChunk(
        Chunk("d:0", "Employees get 25 days of annual leave. More text.", "handbook.pdf", 4, 0, "d"), 0.9
    )
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine()
    yield eng
    eng.shutdown()


def claude(settings: Settings, srv: FakeAnthropic, **changes: Any) -> ClaudeAnswerer:
    s = settings.replace(api_key=Secret(changes.pop("key", FAKE_KEY)), base_url=srv.base_url, **changes)
    return ClaudeAnswerer(s)


def ask_jobs(answerer: ClaudeAnswerer, n: int) -> list[Callable[[], Any]]:
    return [lambda i=i: answerer.answer(f"Question {i}?", CTX) for i in range(n)]


def sleeper(value: Any, delay: float) -> Callable[[], Any]:
    async def job() -> Any:
        await anyio.sleep(delay)
        return value

    return job


def raiser(exc: BaseException, delay: float = 0.0) -> Callable[[], Any]:
    async def job() -> Any:
        await anyio.sleep(delay)
        raise exc

    return job


FAST = BatchPolicy(concurrency=8, timeout_s=5.0, max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05)


# --- order, values, timestamps ---------------------------------------------------------------------
def test_results_come_back_in_input_order(engine: Engine) -> None:
    delays = [0.05 * ((7 * i) % 5) for i in range(30)]  # later items often finish first
    h = engine.submit(
        [sleeper(i, d) for i, d in enumerate(delays)], labels=[f"q{i}" for i in range(30)], policy=FAST
    )
    results = h.wait(20)
    assert [r.index for r in results] == list(range(30))
    assert [r.value for r in results] == list(range(30))
    assert [r.label for r in results] == [f"q{i}" for i in range(30)]
    assert all(r.status == "ok" and r.attempts == 1 for r in results)
    for r in results:
        assert r.started_at is not None and r.ended_at is not None and r.started_at <= r.ended_at
        assert r.latency_s >= delays[r.index] * 0.9
        assert r.throttled_s == 0.0
    p = h.progress()
    assert (p.total, p.done, p.ok, p.errors, p.in_flight, p.finished, p.eta_s) == (
        30,
        30,
        30,
        0,
        0,
        True,
        0.0,
    )


def test_empty_batch_is_finished_at_once(engine: Engine) -> None:
    h = engine.submit([], policy=FAST)
    assert h.done() and h.wait(1) == [] and h.progress().total == 0


def test_labels_must_match_jobs(engine: Engine) -> None:
    with pytest.raises(ValueError, match="2 labels for 1 jobs"):
        engine.submit([sleeper(1, 0)], labels=["a", "b"], policy=FAST)


def test_unexpected_exception_is_an_error_without_retry(engine: Engine) -> None:
    results = engine.submit([sleeper("fine", 0), raiser(ValueError("bad row"))], policy=FAST).wait(10)
    assert results[0].status == "ok"
    assert results[1].status == "error" and results[1].error_kind == "ValueError"
    assert results[1].attempts == 1 and "bad row" in (results[1].error or "")


def test_on_result_called_once_per_item_and_its_errors_are_contained(engine: Engine) -> None:
    seen: list[ItemResult] = []
    threads: set[str] = set()

    def on_result(r: ItemResult) -> None:
        seen.append(r)
        threads.add(threading.current_thread().name)
        raise RuntimeError("callback bug")  # must not break the batch

    results = engine.submit([sleeper(i, 0.01) for i in range(10)], policy=FAST, on_result=on_result).wait(10)
    assert sorted(r.index for r in seen) == list(range(10))
    assert all(r.status == "ok" for r in results)
    assert threads == {"rag-engine-loop"}


# --- concurrency cap, seen by the server --------------------------------------------------------
def test_peak_concurrency_never_above_the_cap(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(latency=0.25) as srv:
        answerer = claude(settings, srv)
        h = engine.submit(ask_jobs(answerer, 24), policy=BatchPolicy(concurrency=5, timeout_s=10))
        results = h.wait(30)
        assert all(r.status == "ok" for r in results), [r.error for r in results]
        assert srv.peak_concurrency == 5  # reaches the cap, never exceeds it
        assert srv.count == 24
        assert [r.value.text.startswith("Employees get 25 days") for r in results] == [True] * 24
        assert {r.retry_count for r in srv.requests} == {"0"}  # the SDK itself never retries


# --- fatal errors -----------------------------------------------------------------------------------
def test_invalid_key_fails_fast_with_a_clear_message(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(latency=0.2, api_key="sk-the-right-key") as srv:
        answerer = claude(settings, srv, key="sk-test-wrong-key")
        t0 = time.monotonic()
        h = engine.submit(
            ask_jobs(answerer, 40), policy=BatchPolicy(concurrency=4, timeout_s=10, max_retries=4)
        )
        results = h.wait(20)
        assert time.monotonic() - t0 < 5
        assert srv.count <= 4  # no retries, no unstarted item reached the server
        assert all(r.status == "error" and r.error_kind == "AuthError" for r in results)
        first = [r for r in results if r.error and not r.error.startswith(("Not run", "Stopped"))]
        assert first and "API key was rejected" in (first[0].error or "")
        assert "ANTHROPIC_API_KEY" in (first[0].error or "")
        assert sum(1 for r in results if (r.error or "").startswith("Not run:")) >= 36
        assert all("sk-test-wrong-key" not in repr(r) for r in results)


def test_fatal_error_stops_the_whole_batch_at_once(engine: Engine) -> None:
    jobs = [sleeper(i, 2.0) for i in range(12)]
    jobs[2] = raiser(AuthError("The Anthropic API key was rejected."), delay=0.05)
    t0 = time.monotonic()
    results = engine.submit(jobs, policy=BatchPolicy(concurrency=4)).wait(10)
    assert time.monotonic() - t0 < 0.75 * 2.0  # the in-flight 2 s jobs were cancelled, not awaited
    assert all(r.status == "error" and r.error_kind == "AuthError" for r in results)
    assert results[2].error == "The Anthropic API key was rejected."
    stopped = [r for r in results if (r.error or "").startswith("Stopped:")]
    not_run = [r for r in results if (r.error or "").startswith("Not run:")]
    assert len(stopped) == 3 and all(r.attempts == 1 for r in stopped)
    assert len(not_run) == 8 and all(r.attempts == 0 and r.started_at is None for r in not_run)


# --- retries ------------------------------------------------------------------------------------------
def test_retry_after_is_honoured(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(faults=FaultPlan(schedule={0: "429"}, retry_after=1.0)) as srv:
        answerer = claude(settings, srv)
        policy = BatchPolicy(concurrency=1, timeout_s=10, retry_after_cap_s=20)
        (r,) = engine.submit(ask_jobs(answerer, 1), policy=policy).wait(20)
        assert r.status == "ok" and r.attempts == 2
        assert 1.0 <= r.throttled_s < 3.0
        log = srv.requests
        assert [x.status for x in log] == [429, 200]
        assert log[1].start - log[0].start >= 0.95
        assert r.latency_s < r.throttled_s  # waiting is not counted as request latency


def test_retry_after_is_capped(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(faults=FaultPlan(schedule={0: "429", 1: "429"}, retry_after=60)) as srv:
        answerer = claude(settings, srv)
        policy = BatchPolicy(concurrency=1, timeout_s=10, retry_after_cap_s=0.3)
        t0 = time.monotonic()
        (r,) = engine.submit(ask_jobs(answerer, 1), policy=policy).wait(20)
        assert time.monotonic() - t0 < 4  # not 60 s, not 120 s
        assert r.status == "ok" and r.attempts == 3
        assert 0.6 <= r.throttled_s < 2.5


def test_retry_after_never_passes_the_deadline(engine: Engine) -> None:
    policy = BatchPolicy(concurrency=2, retry_after_cap_s=30, deadline_s=1.0)
    t0 = time.monotonic()
    (r,) = engine.submit([raiser(RateLimitError("429", retry_after=10))], policy=policy).wait(10)
    # gave up at once: a small fraction of the 10 s retry-after it would have slept
    assert time.monotonic() - t0 < 0.1 * 10
    assert r.status == "error" and r.error_kind == "RateLimitError"
    assert "deadline" in (r.error or "") and r.attempts == 1


def test_deadline_bounds_the_whole_batch(engine: Engine) -> None:
    t0 = time.monotonic()
    results = engine.submit(
        [sleeper(i, 3.0) for i in range(6)], policy=BatchPolicy(concurrency=2, deadline_s=0.5)
    ).wait(10)
    assert time.monotonic() - t0 < 2.0
    assert all(r.status == "error" and "deadline of 0.5 s" in (r.error or "") for r in results)
    assert sum(r.attempts == 0 for r in results) == 4


def test_retry_budget_is_bounded_and_backoff_is_recorded(engine: Engine) -> None:
    calls = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        raise OverloadedError("The Anthropic API is overloaded (HTTP 529).")

    policy = BatchPolicy(concurrency=2, max_retries=3, backoff_base_s=0.05, backoff_max_s=0.1)
    (r,) = engine.submit([flaky], policy=policy).wait(10)
    assert len(calls) == 4 and r.attempts == 4
    assert r.status == "error" and r.error_kind == "OverloadedError"
    assert "gave up after 4 attempts" in (r.error or "")
    assert 0.0 < r.throttled_s < 1.0


def test_hang_times_out_and_is_retried(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(faults=FaultPlan(schedule={0: "hang"}), hang_s=20) as srv:
        answerer = claude(settings, srv)
        policy = BatchPolicy(concurrency=1, timeout_s=0.6, max_retries=2, backoff_base_s=0.05)
        t0 = time.monotonic()
        (r,) = engine.submit(ask_jobs(answerer, 1), policy=policy).wait(15)
        assert time.monotonic() - t0 < 5
        assert r.status == "ok" and r.attempts == 2
        assert r.latency_s >= 0.55
        assert [x.fault for x in srv.requests] == ["hang", "ok"]


def test_a_question_that_keeps_failing_is_stored_and_the_rest_completes(
    engine: Engine, settings: Settings
) -> None:
    with FakeAnthropic(faults=FaultPlan(by_question={"Question 2?": "500"})) as srv:
        answerer = claude(settings, srv)
        jobs = ask_jobs(answerer, 6)
        policy = BatchPolicy(concurrency=2, max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02)
        results = engine.submit(jobs, policy=policy).wait(20)
        assert results[2].status == "error" and results[2].error_kind == "OverloadedError"
        assert results[2].attempts == 3 and "HTTP 500" in (results[2].error or "")
        assert [r.status for r in results] == ["ok", "ok", "error", "ok", "ok", "ok"]
        assert srv.count == 8


# --- cancel --------------------------------------------------------------------------------------------
def test_cancel_keeps_finished_results_and_unstarted_never_start(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(latency=0.3) as srv:
        answerer = claude(settings, srv)
        h = engine.submit(ask_jobs(answerer, 30), policy=BatchPolicy(concurrency=4, timeout_s=10))
        limit = time.monotonic() + 10
        while h.progress().ok < 4 and time.monotonic() < limit:
            time.sleep(0.02)
        h.cancel()
        results = h.wait(10)
        time.sleep(0.5)  # a request already on the wire when cancel came may still land on a busy server
        p = h.progress()
        assert p.cancelled and p.finished and p.in_flight == 0
        ok = [r for r in results if r.status == "ok"]
        cancelled = [r for r in results if r.status == "cancelled"]
        assert len(ok) >= 4 and all(r.value is not None for r in ok)
        assert len(ok) + len(cancelled) == 30
        unstarted = [r for r in cancelled if r.attempts == 0]
        assert len(unstarted) >= 15 and all(r.started_at is None for r in unstarted)
        assert all(r.error == "Cancelled before it started." for r in unstarted)
        started = sum(1 for r in results if r.attempts > 0)
        # only started attempts ever reach the server: the unstarted ones never send anything
        assert srv.count <= started < 30
        assert h.results() == results  # finished results are kept


def test_cancel_from_on_result_on_the_loop_thread(engine: Engine) -> None:
    holder: dict[str, Any] = {}

    def on_result(r: ItemResult) -> None:
        if r.index == 0:
            holder["h"].cancel()

    gate = threading.Event()

    async def first() -> int:  # finishes only once the handle is stored in holder
        with anyio.fail_after(5):
            while not gate.is_set():
                await anyio.sleep(0.005)
        return 0

    jobs = [sleeper(i, 1.0) for i in range(10)]
    jobs[0] = first
    holder["h"] = engine.submit(jobs, policy=BatchPolicy(concurrency=2), on_result=on_result)
    gate.set()
    t0 = time.monotonic()
    results = holder["h"].wait(5)
    assert time.monotonic() - t0 < 0.9 * 1.0  # the 1 s jobs were cancelled, not awaited
    assert results[0].status == "ok"
    assert all(r.status == "cancelled" for r in results[1:])


# --- AIMD and server hints --------------------------------------------------------------------------
def test_aimd_lowers_concurrency_under_429s_and_recovers(engine: Engine, settings: Settings) -> None:
    plan = FaultPlan(schedule={i: "429" for i in range(8)}, retry_after=0.2)
    with FakeAnthropic(latency=0.15, faults=plan) as srv:
        answerer = claude(settings, srv)
        h = engine.submit(ask_jobs(answerer, 40), policy=BatchPolicy(concurrency=8, timeout_s=10))
        limits: list[int] = []
        limit = time.monotonic() + 20
        while not h.done() and time.monotonic() < limit:
            limits.append(h.progress().concurrency_limit)
            time.sleep(0.01)
        results = h.wait(5)
        assert all(r.status == "ok" for r in results)
        assert min(limits) == 4  # halved once (one decrease per 1 s window), not to 1
        assert h.progress().concurrency_limit > 4  # additive increase after successes
        assert h.progress().retries == 8 and h.progress().throttled_s > 0


def test_requests_remaining_header_caps_concurrency(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(latency=0.1, requests_remaining=2) as srv:
        answerer = claude(settings, srv)
        h = engine.submit(ask_jobs(answerer, 16), policy=BatchPolicy(concurrency=8, timeout_s=10))
        results = h.wait(20)
        assert all(r.status == "ok" for r in results)
        assert h.progress().concurrency_limit == 2
        late = [x for x in srv.requests if x.n >= 12]
        assert late and all(
            sum(1 for y in srv.requests if y.start <= x.start < (y.end or 0)) <= 2 for x in late
        )


def test_report_requests_remaining_from_inside_a_job(engine: Engine) -> None:
    async def job() -> int:
        report_requests_remaining(3)
        await anyio.sleep(0.01)
        return 1

    h = engine.submit([job] * 6, policy=BatchPolicy(concurrency=8))
    h.wait(5)
    assert h.progress().concurrency_limit == 3
    report_requests_remaining(1)  # outside a batch: a no-op


# --- where the engine can be used from -----------------------------------------------------------------
async def _double(x: int) -> int:
    await anyio.sleep(0.01)
    return 2 * x


def test_call_from_plain_sync_code(engine: Engine) -> None:
    assert engine.call(_double, 21) == 42
    assert engine.call(lambda: threading.current_thread().name) == "rag-engine-loop"


def test_call_and_submit_from_a_thread_with_a_running_event_loop(engine: Engine) -> None:
    async def notebook_cell() -> tuple[int, list[Any]]:
        # What failed for the user: asyncio.run() inside an already running loop.
        value = engine.call(_double, 5)
        results = engine.submit([sleeper(i, 0.01) for i in range(5)], policy=FAST).wait(5)
        return value, [r.value for r in results]

    assert asyncio.run(notebook_cell()) == (10, [0, 1, 2, 3, 4])  # this test thread runs a loop

    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(notebook_cell())))
    t.start()
    t.join(10)
    assert out == [(10, [0, 1, 2, 3, 4])]


def test_call_from_the_loop_thread_is_refused(engine: Engine) -> None:
    async def nested() -> int:
        return engine.call(_double, 1)

    with pytest.raises(RuntimeError, match="event loop thread"):
        engine.call(nested)


def test_two_batches_at_once_from_two_threads(engine: Engine, settings: Settings) -> None:
    with FakeAnthropic(latency=0.2) as srv:
        answerer = claude(settings, srv)
        out: dict[str, list[ItemResult]] = {}

        def session(name: str) -> None:
            jobs = [lambda i=i: answerer.answer(f"{name} question {i}?", CTX) for i in range(10)]
            out[name] = engine.submit(jobs, policy=BatchPolicy(concurrency=5, timeout_s=10)).wait(20)

        threads = [threading.Thread(target=session, args=(n,)) for n in ("alice", "bob")]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert time.monotonic() - t0 < 3  # they ran side by side (sequential would be 4 s)
        assert sorted(out) == ["alice", "bob"]
        for res in out.values():
            assert [r.status for r in res] == ["ok"] * 10
        questions = {x.question for x in srv.requests}
        assert {f"alice question {i}?" for i in range(10)} <= questions
        assert {f"bob question {i}?" for i in range(10)} <= questions


def test_many_threads_calling_at_once(engine: Engine) -> None:
    out: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        v = engine.call(_double, i)
        with lock:
            out.append(v)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(out) == [2 * i for i in range(16)]


def test_shutdown_is_clean_and_the_engine_restarts() -> None:
    eng = Engine()
    h = eng.submit([sleeper(i, 5.0) for i in range(4)], policy=FAST)
    assert eng.call(_double, 1) == 2
    t0 = time.monotonic()
    eng.shutdown()
    assert time.monotonic() - t0 < 3
    assert h.done() and all(r.status == "cancelled" for r in h.results())
    assert not eng.running
    assert eng.call(_double, 2) == 4  # lazily restarted
    eng.shutdown()
    eng.shutdown()  # idempotent


def test_get_engine_is_one_per_process() -> None:
    got: list[Engine] = []
    threads = [threading.Thread(target=lambda: got.append(get_engine())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(got) == 8 and all(e is got[0] for e in got)


def test_policy_from_settings_and_validation(settings: Settings) -> None:
    p = BatchPolicy.from_settings(settings.replace(concurrency=3, request_timeout_s=7, max_retries=1))
    assert (p.concurrency, p.timeout_s, p.max_retries) == (3, 7.0, 1)
    assert p.deadline_s == settings.run_deadline_s
    assert BatchPolicy.from_settings(settings, concurrency=1).concurrency == 1
    from rag_core.errors import InputError

    with pytest.raises(InputError, match="concurrency"):
        BatchPolicy(concurrency=0)
