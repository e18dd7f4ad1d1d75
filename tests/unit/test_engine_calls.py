"""The engine's shared gate and per-call retries (rag_core/engine/gate.py, calls.py, batch.py).

Assertions are on events, counts and ratios — never on absolute sub-second wall times: the machine
is shared. Requests that must be seen by a server go through the real SDK to the loopback stand-in.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from rag_core.answer.claude import ClaudeAnswerer
from rag_core.engine import (
    Aimd,
    BatchPolicy,
    Engine,
    Gate,
    remote_call,
)
from rag_core.engine.calls import delay_for
from rag_core.engine.gate import wilson_lower
from rag_core.errors import AuthError, OverloadedError, RateLimitError
from rag_core.models import Chunk, ScoredChunk
from rag_core.runs.handle import RunHandle
from rag_core.settings import Secret, Settings
from tests.support.anthropic_server import FakeAnthropic

FAKE_KEY = "sk-test-not-a-real-key"
CTX = [ScoredChunk(Chunk("d:0", "Employees get 25 days of annual leave.", "handbook.pdf", 4, 0, "d"), 0.9)]
FAST = BatchPolicy(concurrency=4, timeout_s=5.0, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.02)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine()
    yield eng
    eng.shutdown()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# --- Aimd: the pure rule ---------------------------------------------------------------------------
def test_aimd_ignores_stray_429s_and_halves_on_repeated_ones_once_per_window() -> None:
    clock = Clock()
    rng = random.Random(3)
    a = Aimd(32, clock=clock)
    for _ in range(3000):  # 5 % random 429s, in any order, early bunches included: never a cut
        clock.t += 0.01
        if rng.random() < 0.05:
            a.rate_limited(sent_at=clock.t)
        else:
            a.succeeded()
    assert a.decreases == 0 and a.limit == 32
    a = Aimd(32, clock=clock)
    early = [a.rate_limited(sent_at=clock.t) for _ in range(3)]  # 3 fast 429s of the first flight
    assert early == [False] * 3  # wait for the flight's successes before judging
    for _ in range(29):
        a.succeeded()
    assert a.limit == 32  # 3 of 32: chance
    a = Aimd(32, clock=clock)
    for _ in range(30):
        a.succeeded()
    cuts = [a.rate_limited(sent_at=clock.t) for _ in range(15)]  # a real limit: 429 after 429
    assert True in cuts and a.limit == 16  # cut…
    assert cuts.count(True) == 1  # …once per window
    clock.t += 5
    for _ in range(6):
        a.rate_limited(sent_at=clock.t - 10)  # sent before the last cut: reflects the old limit
    assert a.limit == 16
    for _ in range(16):
        a.succeeded()
    assert a.limit == 17  # additive increase: one per `limit` successes
    assert a.decreases == 1


def test_wilson_bound_separates_chance_from_a_limit() -> None:
    assert wilson_lower(3, 10) < 0.10 < wilson_lower(5, 5)
    assert wilson_lower(10, 100) < 0.10 < wilson_lower(30, 100)
    assert wilson_lower(0, 0) == 0.0


def test_aimd_follows_the_servers_remaining_hint_and_a_new_cap() -> None:
    a = Aimd(8, clock=Clock())
    assert a.remaining(3) and a.limit == 3
    for _ in range(50):
        a.succeeded()
    assert a.limit == 3  # the hint is a ceiling
    a.remaining(100)
    for _ in range(50):
        a.succeeded()
    assert a.limit == 8  # back up to the cap, not beyond
    a.set_cap(12)
    assert a.limit == 12  # a limit that was at the cap follows it
    assert Aimd(4, adaptive=False, clock=Clock()).rate_limited(0.0) is False


def test_retry_after_is_honoured_up_to_the_safety_ceiling_not_cut_to_20_s() -> None:
    policy = BatchPolicy()
    wait, server = delay_for(policy, 1, RateLimitError("429", retry_after=120))
    assert server and 120 <= wait <= 120.5  # a real 2-minute wait is honoured in full
    wait, _ = delay_for(policy, 1, RateLimitError("429", retry_after=10_000))
    assert wait <= policy.retry_after_cap_s + 0.5  # absurd values are still bounded
    wait, server = delay_for(policy, 3, OverloadedError("529"))
    assert not server and 0 <= wait <= min(policy.backoff_max_s, policy.backoff_base_s * 4)


# --- the gate ---------------------------------------------------------------------------------------
def test_gate_serves_retries_first_then_earlier_jobs_and_cancelled_waiters_hold_nothing(
    engine: Engine,
) -> None:
    async def scenario() -> tuple[list[str], int]:
        gate = Gate("t", 1)
        order: list[str] = []
        await gate.acquire(0)  # the only slot is taken

        async def wait(name: str, priority: float, retry: bool = False) -> None:
            await gate.acquire(priority, retry=retry)
            order.append(name)
            gate.release()

        scopes: list[anyio.CancelScope] = []

        async def cancellable() -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await wait("cancelled", 0.0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "job 5", 5.0)
            tg.start_soon(wait, "job 2", 2.0)
            tg.start_soon(wait, "retry of job 9", 9.0, True)
            tg.start_soon(cancellable)
            await anyio.sleep(0.05)
            scopes[0].cancel()
            await anyio.sleep(0.05)
            with anyio.move_on_after(0.05):
                await wait("never", -1.0)  # cancelled while waiting
            gate.release()
        return order, gate.in_flight

    order, in_flight = engine.call(scenario)
    assert order == ["retry of job 9", "job 2", "job 5"]  # the cancelled waiters never got a slot
    assert in_flight == 0


def test_a_job_holds_no_slot_between_its_calls(engine: Engine) -> None:
    """Gate of 1 slot: job 0 waits, between its two calls, for something only job 1's call does.
    If a job held a slot between calls this would deadlock."""
    ready = anyio.Event()

    async def send(value: str, after: Callable[[], None] | None = None) -> str:
        await anyio.sleep(0.01)
        if after is not None:
            after()
        return value

    async def job0() -> str:
        first = await remote_call(lambda: send("a"), label="job0 · call 1")
        await ready.wait()
        return first + await remote_call(lambda: send("b"), label="job0 · call 2")

    async def job1() -> str:
        return await remote_call(lambda: send("c", ready.set), label="job1 · call 1")

    gate = Gate("t", 1)
    results = engine.submit([job0, job1], policy=FAST, gate=gate).wait(10)
    assert [r.value for r in results] == ["ab", "c"]
    assert [c.label for c in results[0].calls] == ["job0 · call 1", "job0 · call 2"]
    assert gate.in_flight == 0


# --- per-call retries ---------------------------------------------------------------------------------
def test_only_the_failing_call_is_retried_and_the_job_succeeds(engine: Engine) -> None:
    sent: list[str] = []
    faults = {"call 3": 2}  # call 3 gets two 429s, then succeeds

    def send(name: str) -> Callable[[], Any]:
        async def attempt() -> str:
            sent.append(name)
            if faults.get(name, 0) > 0:
                faults[name] -= 1
                raise RateLimitError("429", retry_after=0.01)
            return name

        return attempt

    async def metric() -> list[str]:
        return [await remote_call(send(f"call {n}"), label=f"m · call {n}") for n in (1, 2, 3, 4)]

    h = engine.submit([metric], policy=FAST, gate=Gate("t", 4))
    (r,) = h.wait(10)
    assert r.status == "ok" and r.value == ["call 1", "call 2", "call 3", "call 4"]
    assert sent == ["call 1", "call 2", "call 3", "call 3", "call 3", "call 4"]  # nothing re-sent
    assert [c.attempts for c in r.calls] == [1, 1, 3, 1]
    assert r.calls[2].retried == {"RateLimitError": 2} and r.calls[2].throttled_s > 0
    assert r.attempts == 6 and h.progress().retries == 2


def test_a_job_fails_only_when_one_of_its_calls_exhausts_its_budget_and_names_it(engine: Engine) -> None:
    sent: list[str] = []

    async def metric() -> str:
        for n in (1, 2, 3):

            async def attempt(n: int = n) -> str:
                sent.append(f"call {n}")
                if n == 2:
                    raise OverloadedError("The Anthropic API is overloaded (HTTP 529).")
                return "ok"

            await remote_call(attempt, label=f"faithfulness · call {n}")
        return "done"

    (r,) = engine.submit([metric], policy=FAST, gate=Gate("t", 2)).wait(10)
    assert r.status == "error" and r.error_kind == "OverloadedError"
    assert "gave up after 4 attempts" in (r.error or "")  # max_retries=3 → 4 attempts
    assert sent == ["call 1"] + ["call 2"] * 4  # call 3 never made; call 1 never repeated
    assert [(c.label, c.status) for c in r.calls] == [
        ("faithfulness · call 1", "ok"),
        ("faithfulness · call 2", "error"),
    ]


def test_random_429s_per_call_do_not_collapse_the_shared_limit(engine: Engine) -> None:
    """5 % of calls get a 429: the limit must stay high (the old per-job AIMD fell to 2–4 of 32)."""
    rng = random.Random(7)
    injected = 0
    limits: list[int] = []
    gate = Gate("t", 16)

    async def attempt() -> int:
        nonlocal injected
        await anyio.sleep(0.002)
        limits.append(gate.limit)
        if rng.random() < 0.05:
            injected += 1
            raise RateLimitError("429", retry_after=0.01)
        return 1

    async def metric() -> int:
        return sum([await remote_call(attempt, label=f"call {n}") for n in range(4)])

    h = engine.submit([metric] * 100, policy=FAST, gate=gate)
    results = h.wait(60)
    assert all(r.status == "ok" and r.value == 4 for r in results)
    assert h.progress().retries == injected > 5
    assert min(limits) >= 8  # at most one halving, never a collapse
    assert sum(len(r.calls) for r in results) == 400


def test_answers_and_judge_batches_of_one_run_share_one_limit(engine: Engine, settings: Settings) -> None:
    """Two batches at once on one key's gate (cap 4): the server never sees more than 4 requests."""
    with FakeAnthropic(latency=0.15) as srv:
        s = settings.replace(api_key=Secret(FAKE_KEY), base_url=srv.base_url)
        answerer = ClaudeAnswerer(s)
        with engine.gate("anthropic:test", concurrency=4) as gate:
            with engine.gate("anthropic:test", concurrency=2) as same:
                assert same is gate and gate.cap == 4  # the largest user's concurrency
            answers = engine.submit(
                [lambda i=i: answerer.answer(f"Answer {i}?", CTX) for i in range(12)], policy=FAST, gate=gate
            )
            judge = engine.submit(
                [lambda i=i: answerer.answer(f"Judge {i}?", CTX) for i in range(12)], policy=FAST, gate=gate
            )
            ok = [r.status for r in answers.wait(30) + judge.wait(30)]
        assert ok == ["ok"] * 24
        assert srv.count == 24 and srv.peak_concurrency <= 4
    with engine.gate("anthropic:test", concurrency=3) as fresh:
        assert fresh is not gate and fresh.limit == 3  # dropped when its last user left


def test_fatal_call_stops_the_whole_gated_batch(engine: Engine) -> None:
    async def slow() -> str:
        async def attempt() -> str:
            await anyio.sleep(2.0)
            return "late"

        return await remote_call(attempt, label="slow")

    async def rejected() -> str:
        async def attempt() -> str:
            await anyio.sleep(0.05)
            raise AuthError("The Anthropic API key was rejected (HTTP 401).")

        return await remote_call(attempt, label="judge call 1")

    jobs = [slow] * 3 + [rejected] + [slow] * 10
    h = engine.submit(jobs, policy=FAST, gate=Gate("t", 4), window=4)
    results = h.wait(10)
    assert isinstance(h.stop_error(), AuthError)
    assert results[3].error_kind == "AuthError" and results[3].calls[0].attempts == 1  # never retried
    assert sum((r.error or "").startswith("Stopped:") for r in results) == 3
    assert sum((r.error or "").startswith("Not run:") for r in results) == 10


def test_a_long_server_wait_shows_in_progress(engine: Engine) -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimitError("429", retry_after=1.0)
        return "ok"

    async def job() -> str:
        return await remote_call(attempt, label="x")

    h = engine.submit([job], policy=FAST, gate=Gate("t", 2))
    seen = 0.0
    limit = time.monotonic() + 10
    while not h.done() and time.monotonic() < limit:
        seen = max(seen, h.progress().waiting_s)
        time.sleep(0.02)
    (r,) = h.wait(5)
    assert r.status == "ok" and 0.5 < seen <= 1.2
    assert h.progress().waiting_s == 0.0 and h.progress().throttled_s >= 0.9

    class Inner:  # what a run's handle shows for a long wait
        def progress(self) -> Any:
            return h.progress().__class__(**{**h.progress().__dict__, "waiting_s": 29.2, "finished": False})

        def cancel(self) -> None:
            pass

    run = RunHandle(1)
    run.set(handle=Inner())
    assert run.progress().note == "rate limited: waiting 30 s"


def test_remote_call_outside_a_gated_batch_is_made_once(engine: Engine) -> None:
    n = 0

    async def attempt() -> str:
        nonlocal n
        n += 1
        raise RateLimitError("429", retry_after=0.01)

    async def direct() -> None:
        await remote_call(attempt, label="x")

    with pytest.raises(RateLimitError):
        engine.call(direct)
    assert n == 1  # outside a gated batch the caller owns retries
    (r,) = engine.submit([direct], policy=FAST).wait(10)  # a batch retrying whole jobs
    assert r.attempts == 4 and n == 5  # retried by the batch, once per job attempt


def test_engine_gate_is_thread_safe(engine: Engine) -> None:
    got: list[Gate] = []
    caps: list[int] = []
    barrier = threading.Barrier(4)

    def user(c: int) -> None:
        with engine.gate("shared", concurrency=c) as g:
            got.append(g)
            barrier.wait(5)  # all four inside
            caps.append(g.cap)
            barrier.wait(5)

    threads = [threading.Thread(target=user, args=(c,)) for c in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 4 and all(g is got[0] for g in got)
    assert caps == [4, 4, 4, 4]  # the largest concurrency among the blocks using it
