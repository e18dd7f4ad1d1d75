"""The batch runner: one batch of jobs on the engine's loop thread, with limits, retries and AIMD.

A :class:`BatchHandle` is made by :meth:`rag_core.engine.Engine.submit` and runs as one task on the
engine's loop thread; its public methods are thread-safe and return snapshots: progress, results in
input order, ``cancel()``, ``wait()``. Several batches run side by side.

A batch runs in one of two ways:

- **Whole jobs** (no ``gate``, no ``window``): each job is one remote request. The batch has its
  own :class:`~rag_core.engine.gate.Gate` of ``policy.concurrency`` slots (adaptive when
  ``policy.adaptive``); each *attempt* of a job holds one slot, runs under ``policy.timeout_s`` and
  is retried by the rules of :mod:`rag_core.engine.calls` (a 429 feeds AIMD; a server hint
  ``requests_remaining`` — an attribute of the job's value or error, or
  :func:`~rag_core.engine.calls.report_requests_remaining` called inside the job — caps the limit).
  ``remote_call`` inside such a job makes its request once: the batch owns retries.
- **Jobs that make calls** (``gate`` and/or ``window`` given): a job is a coordinator that may make
  several remote calls through :func:`~rag_core.engine.calls.remote_call`; *each call* holds a slot
  of ``gate`` (shared, e.g. by every call made with one API key), has its own timeout and retry
  budget and becomes a :class:`~rag_core.engine.policy.CallRecord` on the job's result. The batch
  runs at most ``window`` jobs at once (default
  :data:`~rag_core.engine.policy.DEFAULT_JOB_WINDOW_FACTOR` × the gate's cap, or × ``policy.concurrency``
  without a gate); a job holds no slot
  itself, is never retried or timed out as a whole (its calls are), and fails with its first
  unrecovered error (the failing call names itself in the message).

Rules common to both
- An error with ``.fatal`` (e.g. a rejected API key) stops the whole batch at once: requests in
  flight are cancelled and unstarted items never start; both get status ``"error"`` with a
  "Stopped: …"/"Not run: …" message and the fatal error's kind (:meth:`BatchHandle.stop_error`).
- Any other exception that is not a :class:`~rag_core.errors.RagError` → status ``"error"``,
  ``error_kind`` = its type name, no retry.
- ``policy.deadline_s`` bounds the whole batch: when it passes, unfinished items fail with a
  message naming the deadline; a retry wait that would pass it is not taken.
- Time in backoff / retry-after is recorded as ``throttled_s``, apart from ``latency_s`` (the sum
  of attempt durations). Time queued for a free slot counts as neither. Progress counts attempts
  in flight, retries scheduled, calls waiting and the longest server-requested wait still to go.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from rag_core.engine.calls import _SCOPE, CallScope, attempt_loop
from rag_core.engine.gate import Gate
from rag_core.engine.policy import (
    _TERMINAL,
    DEFAULT_JOB_WINDOW_FACTOR,
    LOOP_THREAD_NAME,
    BatchPolicy,
    CallRecord,
    ItemResult,
    Progress,
)
from rag_core.errors import RagError
from rag_core.redaction import redact

__all__ = ["BatchHandle"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Events:
    """Counts attempts, retries and waits of one item into its batch (loop thread)."""

    __slots__ = ("handle", "item")

    def __init__(self, handle: BatchHandle[Any], item: ItemResult) -> None:
        self.handle, self.item = handle, item

    def attempt_started(self) -> None:
        h = self.handle
        with h._lock:
            h._in_flight += 1
            self.item.status = "running"
            self.item.attempts += 1

    def attempt_ended(self, seconds: float) -> None:
        h = self.handle
        with h._lock:
            h._in_flight -= 1
            self.item.latency_s += seconds

    def wait_started(self, seconds: float, server: bool) -> object:
        h = self.handle
        token = object()
        with h._lock:
            h._retries += 1
            h._backing_off += 1
            if server:
                h._waits[token] = time.perf_counter() + seconds
        return token

    def wait_ended(self, token: object, seconds: float) -> None:
        h = self.handle
        with h._lock:
            h._backing_off -= 1
            h._throttled += seconds
            h._waits.pop(token, None)
            self.item.throttled_s += seconds


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
        *,
        gate: Gate | None = None,
        window: int | None = None,
    ) -> None:
        self._jobs = list(jobs)
        self._policy = policy
        self._on_result = on_result
        self._gated = gate is not None or window is not None
        if self._gated:
            self._gate = gate
            cap = gate.cap if gate is not None else policy.concurrency
            self._window = max(1, int(window if window is not None else DEFAULT_JOB_WINDOW_FACTOR * cap))
        else:
            self._gate = Gate("batch", policy.concurrency, adaptive=policy.adaptive)
            self._window = policy.concurrency
        self._lock = threading.Lock()
        self._results = [ItemResult(index=i, label=str(lbl)) for i, lbl in enumerate(labels)]
        self._finished = threading.Event()
        self._future: Future[None] | None = None
        self._t_submit = time.perf_counter()
        self._t_end: float | None = None
        self._done = self._ok = self._errors = self._in_flight = self._retries = 0
        self._backing_off = 0
        self._throttled = 0.0
        self._waits: dict[object, float] = {}
        self._cancel_requested = False
        self._stop_reason: str | None = None  # "cancelled" | "fatal" | "deadline"
        self._stop_error: RagError | None = None
        # loop-thread-only state
        self._tg: TaskGroup | None = None
        self._deadline: float | None = None

    # --- public, any thread ------------------------------------------------------------------
    def progress(self) -> Progress:
        """Counters right now (a consistent copy taken under the handle's lock)."""
        with self._lock:
            now = time.perf_counter()
            end = self._t_end if self._t_end is not None else now
            finished = self._finished.is_set()
            return Progress(
                total=len(self._results),
                done=self._done,
                ok=self._ok,
                errors=self._errors,
                in_flight=self._in_flight,
                retries=self._retries,
                elapsed_s=end - self._t_submit,
                throttled_s=self._throttled,
                concurrency_limit=self._gate.limit if self._gate is not None else self._window,
                cancelled=self._cancel_requested,
                finished=finished,
                backing_off=self._backing_off,
                waiting_s=0.0 if finished else max([t - now for t in self._waits.values()] + [0.0]),
            )

    def results(self) -> list[ItemResult]:
        """Copies of every item's result, in input order (unfinished ones show their live status)."""
        with self._lock:
            return [copy.copy(r) for r in self._results]

    def stop_error(self) -> RagError | None:
        """The fatal error that stopped the batch, or None."""
        with self._lock:
            return self._stop_error

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
            window = anyio.Semaphore(self._window) if self._gated else None
            with anyio.CancelScope(
                deadline=self._deadline if self._deadline is not None else math.inf
            ) as scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    for i in range(len(self._jobs)):
                        if self._stop_reason is not None:
                            break
                        if window is not None:
                            await window.acquire()
                        else:
                            assert self._gate is not None
                            await self._gate.acquire(i)
                        if self._stop_reason is not None:
                            if window is not None:
                                window.release()
                            elif self._gate is not None:
                                self._gate.release()
                            break
                        if window is not None:
                            tg.start_soon(self._run_job, i, window)
                        else:
                            tg.start_soon(self._run_item, i)
            if scope.cancelled_caught and self._stop_reason is None:
                with self._lock:
                    self._stop_reason = "deadline"
        finally:
            self._sweep()

    def _begin(self, r: ItemResult) -> None:
        with self._lock:
            r.status = "running"
            if r.started_at is None:
                r.started_at = time.time()

    async def _run_item(self, i: int) -> None:
        """A whole job, retried as one request; the first slot is already held."""
        r = self._results[i]
        self._begin(r)
        _SCOPE.set(CallScope(self._policy, direct=True))  # calls inside the job are made once
        record = CallRecord(label=r.label, start=time.time())
        scope = CallScope(
            self._policy, gate=self._gate, deadline=self._deadline, priority=i, events=_Events(self, r)
        )
        outcome = await attempt_loop(self._jobs[i], scope, record=record, label=r.label, holding=True)
        self._settle(r, outcome.value, outcome.error)

    async def _run_job(self, i: int, window: anyio.Semaphore) -> None:
        """A job whose calls own their retries (see the module docstring)."""
        r = self._results[i]
        try:
            self._begin(r)
            _SCOPE.set(
                CallScope(
                    self._policy,
                    gate=self._gate,
                    deadline=self._deadline,
                    priority=i,
                    events=_Events(self, r),
                    on_call=lambda rec: self._add_call(r, rec),
                )
            )
            value: Any = None
            err: BaseException | None = None
            try:
                value = await self._jobs[i]()
            except Exception as exc:
                err = exc
            self._settle(r, value, err)
        finally:
            window.release()

    def _add_call(self, r: ItemResult, record: CallRecord) -> None:
        with self._lock:
            r.calls = (*r.calls, record)

    def _settle(self, r: ItemResult, value: Any, err: BaseException | None) -> None:
        if err is None:
            self._finish(r, "ok", value=value)
        elif not isinstance(err, RagError):
            log.warning("Job %d (%s) raised %s", r.index, r.label[:60], type(err).__name__, exc_info=err)
            self._finish(
                r,
                "error",
                error=redact(f"Unexpected error: {type(err).__name__}: {err}"),
                kind=type(err).__name__,
            )
        else:
            self._finish(r, "error", error=redact(str(err)), kind=err.kind)
            if err.fatal:
                self._stop_fatal(err)

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
            started = r.started_at is not None
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
            self._waits.clear()
            self._finished.set()
