"""The batch runner: one batch of jobs on the engine's loop thread, with limits, retries and AIMD.

A :class:`BatchHandle` is made by :meth:`rag_core.engine.Engine.submit` and runs as one task on the
engine's loop thread; its public methods are thread-safe and return snapshots: progress, results in
input order, ``cancel()``, ``wait()``. Several batches run side by side, each with its own limiter.

Rules
- At most ``policy.concurrency`` jobs run at once (an :class:`anyio.CapacityLimiter`). With
  ``policy.adaptive`` the limit follows AIMD: *repeated* :class:`~rag_core.errors.RateLimitError`
  s halve it — at least :data:`AIMD_MIN_429` and :data:`AIMD_429_RATE` of the last
  :data:`AIMD_OUTCOME_WINDOW` outcomes (a stray 429 is just retried; cutting on each one kept a
  5%-random-429 load at a quarter of its throughput) — never below 1, at most once per
  :data:`AIMD_DECREASE_WINDOW_S`, and not for a request sent before the last cut (it reflects
  the old limit); every ``limit`` successes
  raise it by one, back up to the cap. A server hint ``requests_remaining`` (an attribute of the
  job's value or error, or :func:`report_requests_remaining` called inside the job) caps it too.
- Each attempt runs under ``policy.timeout_s`` (→ :class:`~rag_core.errors.RequestTimeoutError`).
- Errors with ``.retryable`` are retried up to ``policy.max_retries`` times after the first attempt,
  with exponential backoff and full jitter (``uniform(0, min(backoff_max_s, base·2ⁿ))``), or the
  error's ``retry_after`` capped at ``policy.retry_after_cap_s``. A wait that would pass the
  batch deadline is not taken: the item fails with a message saying so. The slot is released
  while waiting, so backing-off items do not block others.
- An error with ``.fatal`` (e.g. a rejected API key) stops the whole batch at once: requests in
  flight are cancelled and unstarted items never start; both get status ``"error"`` with a
  "Stopped: …"/"Not run: …" message and the fatal error's kind.
- Any other exception from a job → status ``"error"``, ``error_kind`` = its type name, no retry.
- ``policy.deadline_s`` bounds the whole batch: when it passes, unfinished items fail with a
  message naming the deadline.
- Time in backoff / retry-after is recorded as ``throttled_s``, apart from ``latency_s`` (the sum
  of attempt durations). Time queued for a free slot counts as neither.
"""

from __future__ import annotations

import collections
import contextvars
import copy
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from rag_core.engine.policy import (
    _TERMINAL,
    AIMD_429_RATE,
    AIMD_DECREASE_WINDOW_S,
    AIMD_MIN_429,
    AIMD_OUTCOME_WINDOW,
    LOOP_THREAD_NAME,
    BatchPolicy,
    ItemResult,
    Progress,
)
from rag_core.errors import RagError, RateLimitError, RequestTimeoutError

__all__ = ["BatchHandle", "report_requests_remaining"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- server hints ------------------------------------------------------------------------------
class _Hint:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None


_HINT: contextvars.ContextVar[_Hint | None] = contextvars.ContextVar("rag_core_engine_hint", default=None)


def report_requests_remaining(remaining: int | None) -> None:
    """Tell the running batch how many requests the API still allows (a rate-limit header).

    Call from inside a job; a no-op outside a batch or with None. The batch never runs more jobs
    at once than the latest reported value (but at least one).
    """
    hint = _HINT.get()
    if hint is not None and remaining is not None:
        hint.value = int(remaining)


def _remaining_of(obj: Any) -> int | None:
    value = getattr(obj, "requests_remaining", None)
    if isinstance(value, bool):
        return None
    return int(value) if isinstance(value, (int, float)) else None


class _Slot:
    """Identity that borrows one limiter token on behalf of a job."""

    __slots__ = ()


# --- batch -----------------------------------------------------------------------------------------
class BatchHandle(Generic[T]):
    """A running (or finished) batch. All methods are thread-safe and return snapshots.

    Made by :meth:`Engine.submit`; never construct it directly.
    """

    def __init__(
        self,
        jobs: Sequence[Callable[[], Awaitable[T]]],
        labels: Sequence[str],
        policy: BatchPolicy,
        on_result: Callable[[ItemResult], None] | None,
    ) -> None:
        self._jobs = list(jobs)
        self._policy = policy
        self._on_result = on_result
        self._lock = threading.Lock()
        self._results = [ItemResult(index=i, label=str(lbl)) for i, lbl in enumerate(labels)]
        self._finished = threading.Event()
        self._future: Future[None] | None = None
        self._t_submit = time.perf_counter()
        self._t_end: float | None = None
        self._done = self._ok = self._errors = self._in_flight = self._retries = 0
        self._backing_off = 0
        self._throttled = 0.0
        self._limit = policy.concurrency
        self._cancel_requested = False
        self._stop_reason: str | None = None  # "cancelled" | "fatal" | "deadline"
        self._stop_error: RagError | None = None
        # loop-thread-only state
        self._tg: TaskGroup | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._deadline: float | None = None
        self._successes = 0
        self._last_decrease = -math.inf
        self._recent: collections.deque[bool] = collections.deque(maxlen=AIMD_OUTCOME_WINDOW)
        self._ceiling = policy.concurrency

    # --- public, any thread ------------------------------------------------------------------
    def progress(self) -> Progress:
        """Counters right now (a consistent copy taken under the handle's lock)."""
        with self._lock:
            end = self._t_end if self._t_end is not None else time.perf_counter()
            return Progress(
                total=len(self._results),
                done=self._done,
                ok=self._ok,
                errors=self._errors,
                in_flight=self._in_flight,
                retries=self._retries,
                elapsed_s=end - self._t_submit,
                throttled_s=self._throttled,
                concurrency_limit=self._limit,
                cancelled=self._cancel_requested,
                finished=self._finished.is_set(),
                backing_off=self._backing_off,
            )

    def results(self) -> list[ItemResult]:
        """Copies of every item's result, in input order (unfinished ones show their live status)."""
        with self._lock:
            return [copy.copy(r) for r in self._results]

    def done(self) -> bool:
        """True once every item is terminal and the batch task has ended."""
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop the batch: finished results are kept, in-flight jobs are cancelled (status
        ``"cancelled"``), unstarted ones never start. Returns at once; use :meth:`wait` to block
        until the batch has wound down. A no-op once finished. Callable from any thread,
        including the loop thread (e.g. from ``on_result``)."""
        with self._lock:
            if self._finished.is_set():
                return
            self._cancel_requested = True
            if self._stop_reason is None:
                self._stop_reason = "cancelled"
        future = self._future  # None only while submit() is storing it; submit re-checks the flag
        if future is not None:
            future.cancel()

    def wait(self, timeout: float | None = None) -> list[ItemResult]:
        """Block until the batch finishes, then return :meth:`results`.

        Raises ``TimeoutError`` if it is still running after ``timeout`` seconds (the batch keeps
        running; call :meth:`cancel` to stop it). Raises ``RuntimeError`` on the loop thread
        (waiting there would deadlock).
        """
        if threading.current_thread().name == LOOP_THREAD_NAME and not self._finished.is_set():
            raise RuntimeError("BatchHandle.wait() cannot be called from the engine's loop thread.")
        if not self._finished.wait(timeout):
            raise TimeoutError(f"The batch is still running after {timeout:g} s.")
        return self.results()

    def __repr__(self) -> str:
        p = self.progress()
        return f"<BatchHandle {p.done}/{p.total} done, {p.in_flight} in flight, finished={p.finished}>"

    # --- loop thread ----------------------------------------------------------------------------
    async def _run(self) -> None:
        policy = self._policy
        try:
            if policy.deadline_s is not None:
                self._deadline = (
                    anyio.current_time() + policy.deadline_s - (time.perf_counter() - self._t_submit)
                )
            limiter = anyio.CapacityLimiter(policy.concurrency)
            self._limiter = limiter
            with anyio.CancelScope(
                deadline=self._deadline if self._deadline is not None else math.inf
            ) as scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    for i in range(len(self._jobs)):
                        if self._stop_reason is not None:
                            break
                        slot = _Slot()
                        await limiter.acquire_on_behalf_of(slot)
                        if self._stop_reason is not None:
                            limiter.release_on_behalf_of(slot)
                            break
                        tg.start_soon(self._run_item, i, slot)
            if scope.cancelled_caught and self._stop_reason is None:
                with self._lock:
                    self._stop_reason = "deadline"
        finally:
            self._sweep()

    async def _run_item(self, i: int, slot: _Slot) -> None:
        policy = self._policy
        limiter = self._limiter
        assert limiter is not None
        r = self._results[i]
        job = self._jobs[i]
        hint = _Hint()
        _HINT.set(hint)
        holding = True
        attempt = 0
        try:
            while True:
                attempt += 1
                hint.value = None
                err: BaseException | None = None
                value: Any = None
                with self._lock:
                    r.status = "running"
                    r.attempts = attempt
                    if r.started_at is None:
                        r.started_at = time.time()
                    self._in_flight += 1
                t0 = time.perf_counter()
                try:
                    with anyio.fail_after(policy.timeout_s):
                        value = await job()
                except TimeoutError:
                    err = RequestTimeoutError(
                        f"No answer within the per-request timeout of {policy.timeout_s:g} s "
                        f"(attempt {attempt})."
                    )
                except Exception as exc:
                    err = exc
                finally:
                    dt = time.perf_counter() - t0
                    with self._lock:
                        r.latency_s += dt
                        self._in_flight -= 1

                self._note_remaining(
                    hint.value if hint.value is not None else _remaining_of(err if err else value)
                )
                if err is None:
                    self._finish(r, "ok", value=value)
                    self._aimd_success()
                    return
                if not isinstance(err, RagError):
                    log.warning("Job %d (%s) raised %s", i, r.label[:60], type(err).__name__, exc_info=err)
                    self._finish(
                        r,
                        "error",
                        error=f"Unexpected error: {type(err).__name__}: {err}",
                        kind=type(err).__name__,
                    )
                    return
                if err.fatal:
                    self._finish(r, "error", error=str(err), kind=err.kind)
                    self._stop_fatal(err)
                    return
                if isinstance(err, RateLimitError):
                    self._aimd_decrease(sent_at=t0)
                if not err.retryable or attempt > policy.max_retries:
                    msg = str(err) if attempt == 1 else f"{err} (gave up after {attempt} attempts)"
                    self._finish(r, "error", error=msg, kind=err.kind)
                    return
                delay = self._delay(attempt, err)
                if self._deadline is not None and anyio.current_time() + delay > self._deadline:
                    self._finish(
                        r,
                        "error",
                        kind=err.kind,
                        error=f"{err} (gave up after {attempt} attempts: waiting {delay:.1f} s more "
                        f"would pass the run's deadline of {policy.deadline_s:g} s)",
                    )
                    return
                limiter.release_on_behalf_of(slot)
                holding = False
                with self._lock:
                    self._retries += 1
                    self._backing_off += 1
                t1 = time.perf_counter()
                try:
                    await anyio.sleep(delay)
                finally:
                    waited = time.perf_counter() - t1
                    with self._lock:
                        r.throttled_s += waited
                        self._throttled += waited
                        self._backing_off -= 1
                await limiter.acquire_on_behalf_of(slot)
                holding = True
        finally:
            if holding:
                limiter.release_on_behalf_of(slot)

    def _delay(self, attempt: int, err: RagError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        policy = self._policy
        ra = err.retry_after
        if ra is not None and ra > 0:
            base = min(float(ra), policy.retry_after_cap_s)
            return base + random.uniform(0.0, min(0.1 * base, 0.5))  # de-synchronise the herd
        ceiling = min(policy.backoff_max_s, policy.backoff_base_s * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling)

    def _finish(
        self,
        r: ItemResult,
        status: str,
        *,
        value: Any = None,
        error: str | None = None,
        kind: str | None = None,
    ) -> None:
        with self._lock:
            if r.status in _TERMINAL:
                return
            r.status = status
            r.value = value
            r.error = error
            r.error_kind = kind
            r.ended_at = time.time()
            self._done += 1
            if status == "ok":
                self._ok += 1
            elif status == "error":
                self._errors += 1
            snap = copy.copy(r) if self._on_result is not None else None
        if snap is not None and self._on_result is not None:
            try:
                self._on_result(snap)
            except Exception:
                log.exception("on_result callback failed for item %d", r.index)

    def _stop_fatal(self, err: RagError) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = "fatal"
                self._stop_error = err
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def _sweep(self) -> None:
        """Give every unfinished item its terminal status (runs once, on the loop thread)."""
        reason = self._stop_reason or "cancelled"
        err = self._stop_error
        for r in self._results:
            if r.status in _TERMINAL:
                continue
            started = r.attempts > 0
            if reason == "fatal" and err is not None:
                self._finish(r, "error", kind=err.kind, error=f"{'Stopped' if started else 'Not run'}: {err}")
            elif reason == "deadline":
                what = "Stopped before an answer arrived" if started else "Not run"
                self._finish(
                    r,
                    "error",
                    kind="RequestTimeoutError",
                    error=f"{what}: the run's deadline of {self._policy.deadline_s:g} s passed.",
                )
            else:
                self._finish(
                    r,
                    "cancelled",
                    kind="CancelledError",
                    error="Cancelled while running." if started else "Cancelled before it started.",
                )
        with self._lock:
            self._t_end = time.perf_counter()
            self._finished.set()

    # --- AIMD (loop thread only) --------------------------------------------------------------
    def _set_limit(self, value: int) -> None:
        value = max(1, min(self._policy.concurrency, value))
        if self._limiter is not None and value != self._limit:
            self._limiter.total_tokens = value
            with self._lock:
                self._limit = value

    def _aimd_decrease(self, sent_at: float) -> None:
        """Halve the limit for a 429 — unless the limit was already lowered in the last window
        or after this request was sent (it reflects the old limit; like TCP, one cut per flight)."""
        if not self._policy.adaptive:
            return
        self._recent.append(True)
        n429 = sum(self._recent)
        if n429 < max(AIMD_MIN_429, AIMD_429_RATE * len(self._recent)):
            return  # a stray 429: the retry handles it
        now = time.perf_counter()
        if now - self._last_decrease < AIMD_DECREASE_WINDOW_S or sent_at < self._last_decrease:
            return
        self._last_decrease = now
        self._successes = 0
        self._recent.clear()  # the next cut needs fresh evidence at the new limit
        self._set_limit(self._limit // 2)

    def _aimd_success(self) -> None:
        if not self._policy.adaptive:
            return
        self._recent.append(False)
        self._successes += 1
        if self._limit < self._ceiling and self._successes >= self._limit:
            self._successes = 0
            self._set_limit(self._limit + 1)

    def _note_remaining(self, remaining: int | None) -> None:
        if remaining is None:
            return
        self._ceiling = max(1, min(self._policy.concurrency, remaining))
        if self._limit > self._ceiling:
            self._set_limit(self._ceiling)
