"""The engine: one event-loop thread per process and a resilient batch runner on it.

The loop thread is made by anyio's :func:`~anyio.from_thread.start_blocking_portal`, entered lazily
through a :class:`contextlib.ExitStack` and stopped by :meth:`Engine.shutdown` (also ``atexit`` for
the process-wide engine from :func:`get_engine`). Nothing here calls ``asyncio.run``.

Two ways in, both usable from any thread that is *not* the loop thread:

- :meth:`Engine.call` runs one coroutine function on the loop thread and blocks for its result.
  It works from plain sync code, from Streamlit's script thread and from a thread that already
  runs its own asyncio loop (a notebook, an ``async def`` test): that thread is simply blocked
  until the result arrives — its own loop does not run meanwhile, which is acceptable for the
  short request/response calls this is meant for. Calling it *from the loop thread itself*
  (i.e. from inside a job) raises ``RuntimeError``: await the coroutine directly there.
- :meth:`Engine.submit` starts a batch as a task on the loop (``portal.start_task_soon``) and
  returns a :class:`BatchHandle` at once: progress snapshots, results in input order, ``cancel()``,
  ``wait()``. Several batches (e.g. two browser sessions) run side by side, each with its own limiter.

The batch runner
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

import atexit
import collections
import contextlib
import contextvars
import copy
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal, start_blocking_portal

from rag_core.errors import InputError, RagError, RateLimitError, RequestTimeoutError

__all__ = [
    "AIMD_DECREASE_WINDOW_S",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_AFTER_CAP_S",
    "DEFAULT_TIMEOUT_S",
    "BatchHandle",
    "BatchPolicy",
    "Engine",
    "ItemResult",
    "Progress",
    "get_engine",
    "report_requests_remaining",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONCURRENCY = 8
"""Jobs in flight at once unless the policy says otherwise."""
DEFAULT_TIMEOUT_S = 60.0
"""Per-attempt timeout, seconds."""
DEFAULT_MAX_RETRIES = 4
"""Retries after the first attempt, for retryable errors."""
DEFAULT_BACKOFF_BASE_S = 0.5
"""First backoff ceiling; doubles per retry (full jitter below it)."""
DEFAULT_BACKOFF_MAX_S = 8.0
"""Largest backoff ceiling."""
DEFAULT_RETRY_AFTER_CAP_S = 20.0
"""Longest server-requested ``retry-after`` we honour."""
AIMD_DECREASE_WINDOW_S = 1.0
"""The concurrency limit is halved at most once per this many seconds."""
AIMD_OUTCOME_WINDOW = 100
"""How many recent outcomes (success or 429) decide whether 429s are "repeated"."""
AIMD_429_RATE = 0.10
"""Share of 429s among recent outcomes that counts as being rate limited."""
AIMD_MIN_429 = 3
"""Fewest 429s among recent outcomes before the limit is lowered."""
LOOP_THREAD_NAME = "rag-engine-loop"
"""Name of the engine's event-loop thread (handy in logs and debuggers)."""

STATUSES = ("pending", "running", "ok", "error", "cancelled")
"""Item statuses; ``ok``/``error``/``cancelled`` are terminal."""
_TERMINAL = frozenset({"ok", "error", "cancelled"})


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchPolicy:
    """How a batch runs. Build from settings with :meth:`from_settings`.

    Raises :class:`~rag_core.errors.InputError` naming the field when a value is out of range.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    """Most jobs in flight at once (the AIMD cap)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Per-attempt timeout, seconds."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """Retries after the first attempt for retryable errors (0 = no retry)."""
    backoff_base_s: float = DEFAULT_BACKOFF_BASE_S
    """Backoff ceiling for the first retry; doubles per retry."""
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    """Largest backoff ceiling."""
    retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S
    """Longest ``retry-after`` honoured; longer requests are shortened to this."""
    deadline_s: float | None = None
    """Whole-batch deadline from submission, seconds; None = no deadline."""
    adaptive: bool = True
    """Lower the concurrency on 429s and raise it back (AIMD)."""

    def __post_init__(self) -> None:
        checks = [
            (self.concurrency >= 1, "concurrency must be at least 1"),
            (self.timeout_s > 0, "timeout_s must be positive"),
            (self.max_retries >= 0, "max_retries must be 0 or more"),
            (self.backoff_base_s >= 0 and self.backoff_max_s >= 0, "backoff times must be 0 or more"),
            (self.retry_after_cap_s >= 0, "retry_after_cap_s must be 0 or more"),
            (self.deadline_s is None or self.deadline_s > 0, "deadline_s must be positive or None"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(f"Batch policy: {msg}.")

    @classmethod
    def from_settings(cls, settings: Any, concurrency: int | None = None) -> BatchPolicy:
        """Policy from :class:`~rag_core.settings.Settings` (``concurrency`` overrides the setting)."""
        return cls(
            concurrency=int(concurrency if concurrency is not None else settings.concurrency),
            timeout_s=float(settings.request_timeout_s),
            max_retries=int(settings.max_retries),
            retry_after_cap_s=float(settings.retry_after_cap_s),
            deadline_s=float(settings.run_deadline_s) if settings.run_deadline_s else None,
        )


@dataclass
class ItemResult:
    """The outcome of one job of a batch (snapshots are copies; mutate freely)."""

    index: int
    """Position of the job in the submitted sequence."""
    label: str
    """Caller's label (e.g. the question), ``""`` when none was given."""
    status: str = "pending"
    """``"pending"`` | ``"running"`` | ``"ok"`` | ``"error"`` | ``"cancelled"``."""
    value: Any = None
    """What the job returned (None unless status is ``"ok"``)."""
    error: str | None = None
    """Message for the analyst when status is ``"error"``/``"cancelled"``."""
    error_kind: str | None = None
    """Machine-readable error name, e.g. ``"RateLimitError"``, ``"AuthError"``, ``"ValueError"``."""
    attempts: int = 0
    """Attempts started (0 = never started)."""
    started_at: float | None = None
    """Epoch seconds when the first attempt started (None = never started)."""
    ended_at: float | None = None
    """Epoch seconds when the item reached a terminal status."""
    latency_s: float = 0.0
    """Sum of the attempts' durations, seconds (excludes backoff and queueing)."""
    throttled_s: float = 0.0
    """Seconds spent in backoff / retry-after waits."""

    @property
    def done(self) -> bool:
        return self.status in _TERMINAL


@dataclass(frozen=True)
class Progress:
    """A consistent snapshot of a batch's counters."""

    total: int
    done: int
    """Items in a terminal status (ok + errors + cancelled)."""
    ok: int
    errors: int
    in_flight: int
    """Attempts underway right now (items waiting in backoff are not counted)."""
    retries: int
    """Retry attempts scheduled so far."""
    elapsed_s: float
    """Seconds since submission (frozen once finished)."""
    throttled_s: float
    """Sum of all items' backoff / retry-after waits."""
    concurrency_limit: int
    """Current limit (lower than the policy's cap while AIMD is backing off)."""
    cancelled: bool
    """``cancel()`` was called before the batch finished."""
    finished: bool
    """Every item is in a terminal status and the batch task has ended."""
    backing_off: int = 0
    """Items waiting out a backoff / retry-after right now."""

    @property
    def eta_s(self) -> float | None:
        """Seconds until done at the rate so far; 0.0 when finished, None before the first result."""
        if self.finished:
            return 0.0
        if self.done == 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


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

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

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


# --- engine --------------------------------------------------------------------------------------
class Engine:
    """Owns one event-loop thread (started lazily) and runs calls and batches on it.

    Thread-safe. After :meth:`shutdown` the engine may be used again: the loop thread restarts.
    """

    def __init__(self, *, backend: str = "asyncio", backend_options: dict[str, Any] | None = None) -> None:
        self._backend = backend
        self._backend_options = backend_options
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._portal_obj: BlockingPortal | None = None
        self._handles: set[BatchHandle[Any]] = set()

    def _portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal_obj is None:
                stack = contextlib.ExitStack()
                self._portal_obj = stack.enter_context(
                    start_blocking_portal(self._backend, self._backend_options, name=LOOP_THREAD_NAME)
                )
                self._stack = stack
            return self._portal_obj

    @property
    def running(self) -> bool:
        """Whether the loop thread is currently up."""
        return self._portal_obj is not None

    def call(self, async_fn: Callable[..., Awaitable[T]] | Callable[..., T], *args: Any) -> T:
        """Run ``async_fn(*args)`` on the loop thread and return its result (or raise its error).

        Blocks the calling thread. Works from sync code, from a thread running its own asyncio
        loop (that loop is blocked meanwhile) and from many threads at once. Raises
        ``RuntimeError`` when called from the loop thread itself.
        """
        return self._portal().call(async_fn, *args)  # type: ignore[arg-type]

    def submit(
        self,
        jobs: Sequence[Callable[[], Awaitable[T]]],
        *,
        labels: Sequence[str] | None = None,
        policy: BatchPolicy | None = None,
        on_result: Callable[[ItemResult], None] | None = None,
    ) -> BatchHandle[T]:
        """Start running ``jobs`` (zero-argument coroutine functions) and return a handle at once.

        ``labels`` (same length as ``jobs``) name the items; ``policy`` defaults to
        ``BatchPolicy()``. ``on_result(item)`` is called on the loop thread, exactly once per item,
        when it reaches a terminal status (including items swept by cancel/fatal/deadline); it
        must be quick and must not block; its exceptions are logged, not raised. An empty
        ``jobs`` gives a handle that is already finished. Raises ``ValueError`` when ``labels``
        has the wrong length and ``RuntimeError`` when called from the loop thread.
        """
        jobs = list(jobs)
        if labels is None:
            labels = [""] * len(jobs)
        elif len(labels) != len(jobs):
            raise ValueError(f"{len(labels)} labels for {len(jobs)} jobs")
        handle: BatchHandle[T] = BatchHandle(jobs, labels, policy or BatchPolicy(), on_result)
        if not jobs:
            with handle._lock:
                handle._t_end = time.perf_counter()
                handle._finished.set()
            return handle
        portal = self._portal()
        with self._lock:
            self._handles.add(handle)
        future = portal.start_task_soon(handle._run, name="rag-engine-batch")
        handle._future = future
        if handle._cancel_requested:  # cancelled (from on_result) before the future was stored
            future.cancel()
        future.add_done_callback(lambda _f: self._forget(handle))
        return handle

    def _forget(self, handle: BatchHandle[Any]) -> None:
        with self._lock:
            self._handles.discard(handle)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running batches, stop the loop thread and join it. Idempotent.

        Waits up to ``timeout`` seconds for batches to wind down. Must not be called from the
        loop thread (raises ``RuntimeError``).
        """
        with self._lock:
            portal, stack = self._portal_obj, self._stack
            handles = list(self._handles)
        if portal is None or stack is None:
            return
        if threading.current_thread().name == LOOP_THREAD_NAME:
            raise RuntimeError("Engine.shutdown() cannot be called from the engine's loop thread.")
        for h in handles:
            h.cancel()
        limit = time.monotonic() + timeout
        for h in handles:
            h._finished.wait(max(0.0, limit - time.monotonic()))
        try:
            portal.call(portal.stop, True)
        except RuntimeError:
            pass
        with self._lock:
            if self._portal_obj is portal:
                self._portal_obj = None
                self._stack = None
                self._handles.clear()
        stack.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (created on first use, thread-safe; shut down ``atexit``)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
            atexit.register(_ENGINE.shutdown)
        return _ENGINE
