"""One remote call with the policy's timeout and retry budget: :func:`remote_call` and its core.

Code that talks to a remote API (the Claude answerer, the judge's LLM client) wraps each request in
``await remote_call(send, label=...)``, where ``send`` is a zero-argument coroutine function that
makes the request once and raises :class:`~rag_core.errors.RagError` subclasses for API errors.
What happens then depends on where the call is made:

- **In a job of a batch submitted with a gate (or a window)** (:meth:`Engine.submit`): the call is
  the unit of work. Each attempt holds one slot of the batch's :class:`~rag_core.engine.gate.Gate`
  (when it has one; a window-only batch bounds jobs, not calls) for as long as it runs, under
  ``policy.timeout_s`` — the timeout covers the request, not the wait for a slot; retryable errors
  are retried up to
  ``policy.max_retries`` times with the backoff below; a 429 feeds the gate's AIMD; the call is
  recorded as a :class:`~rag_core.engine.policy.CallRecord` (a timeline row) on the job's
  :class:`~rag_core.engine.policy.ItemResult`. A job that makes several calls holds no slot
  between them, and only the call that exhausts its budget fails (the job decides what that means).
- **Anywhere else** (a job of a batch that retries whole jobs, or outside the engine): ``send`` is
  awaited once; the caller owns retries.

Retry rules (shared with batches that retry whole jobs, :mod:`rag_core.engine.batch`)
- Backoff: full jitter, ``uniform(0, min(backoff_max_s, backoff_base_s·2ⁿ))``; an error's
  ``retry_after`` (the server's ``retry-after``) is honoured instead, up to the safety ceiling
  ``policy.retry_after_cap_s`` (plus ≤ 10 % jitter, at most 0.5 s). A wait that would pass the
  batch's deadline is not taken: the call fails at once, saying so.
- The slot is released while waiting; a retry waits for a slot ahead of first attempts.
- Errors with ``.fatal`` are never retried (the batch then stops, see :mod:`rag_core.engine.batch`);
  exceptions that are not :class:`RagError` propagate unchanged, without retry.
- Each retry is logged at INFO on ``rag_core.engine.calls`` (quiet unless a handler shows INFO,
  e.g. the CLI's ``--verbose``); the counts are on the records. A server hint
  (:func:`report_requests_remaining` inside ``send``, or ``requests_remaining`` on its value or error)
  caps the gate's limit.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio

from rag_core.engine.gate import Gate
from rag_core.engine.policy import BatchPolicy, CallRecord
from rag_core.errors import RagError, RateLimitError, RequestTimeoutError

__all__ = ["CallScope", "remote_call", "report_requests_remaining"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- server hints ------------------------------------------------------------------------------
class _Hint:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None


_HINT: contextvars.ContextVar[_Hint | None] = contextvars.ContextVar("rag_core_engine_hint", default=None)


def report_requests_remaining(remaining: int | None) -> None:
    """Tell the engine how many requests the API still allows (a rate-limit response header).

    Call from inside ``send`` (or a job); a no-op outside the engine or with None. The limit of
    the gate the attempt runs under never exceeds the latest reported value (but is at least one).
    """
    hint = _HINT.get()
    if hint is not None and remaining is not None:
        hint.value = int(remaining)


def _remaining_of(obj: Any) -> int | None:
    value = getattr(obj, "requests_remaining", None)
    if isinstance(value, bool):
        return None
    return int(value) if isinstance(value, (int, float)) else None


# --- what a batch gives the calls of its jobs ------------------------------------------------------
class CallEvents(Protocol):
    """What the attempt loop reports (a batch's counters; every method is quick and sync)."""

    def attempt_started(self) -> None: ...
    def attempt_ended(self, seconds: float) -> None: ...
    def wait_started(self, seconds: float, server: bool) -> object: ...
    def wait_ended(self, token: object, seconds: float) -> None: ...


class _NoEvents:
    def attempt_started(self) -> None:
        pass

    def attempt_ended(self, seconds: float) -> None:
        pass

    def wait_started(self, seconds: float, server: bool) -> object:
        return None

    def wait_ended(self, token: object, seconds: float) -> None:
        pass


@dataclass
class CallScope:
    """The context the calls of one job run in (set by the batch for each job)."""

    policy: BatchPolicy
    gate: Gate | None = None
    deadline: float | None = None
    """Absolute deadline on the event loop's clock (``anyio.current_time()``), or None."""
    priority: float = 0.0
    """The job's position: earlier jobs' calls are served first."""
    events: CallEvents = field(default_factory=_NoEvents)
    on_call: Callable[[CallRecord], None] | None = None
    """Called with each call's record when the call starts (the record is then updated in place)."""
    direct: bool = False
    """True inside a job of a batch that retries whole jobs: calls are made once, unguarded."""


_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("rag_core_call_scope", default=None)


async def remote_call(send: Callable[[], Awaitable[T]], *, label: str = "") -> T:
    """Make one remote call the way the current job's batch says (see the module docstring).

    Returns what ``send`` returns. Raises the final :class:`RagError` when the call failed (its
    message says after how many attempts, or that the deadline would have passed) — fatal errors at
    once — and any other exception from ``send`` unchanged.
    """
    scope = _SCOPE.get()
    if scope is None or scope.direct:
        return await send()
    record = CallRecord(label=label, start=time.time())
    if scope.on_call is not None:
        scope.on_call(record)
    outcome = await attempt_loop(send, scope, record=record, label=label)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


# --- the attempt loop (calls and whole jobs) -------------------------------------------------------
@dataclass
class Outcome:
    """How an attempt loop ended: a value, or an error (``message`` already set on RagErrors)."""

    value: Any = None
    error: BaseException | None = None
    attempts: int = 0


def delay_for(policy: BatchPolicy, attempt: int, err: RagError) -> tuple[float, bool]:
    """Seconds to wait before retry number ``attempt`` (1-based), and whether the server asked."""
    ra = err.retry_after
    if ra is not None and ra > 0:
        base = min(float(ra), policy.retry_after_cap_s)
        return base + random.uniform(0.0, min(0.1 * base, 0.5)), True  # de-synchronise the herd
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * (2 ** (attempt - 1)))
    return random.uniform(0.0, ceiling), False


async def attempt_loop(
    send: Callable[[], Awaitable[Any]],
    scope: CallScope,
    *,
    record: CallRecord,
    label: str = "",
    holding: bool = False,
) -> Outcome:
    """Attempt ``send`` under ``scope`` until it succeeds, fails for good or the budget is spent.

    ``holding=True``: the caller already holds one slot of ``scope.gate`` for the first attempt.
    Updates ``record`` as it goes and finishes it (status, end, error). Never raises except for
    cancellation (the slot is released and the record marked ``"cancelled"``).
    """
    policy, gate, ev = scope.policy, scope.gate, scope.events
    attempt = 0
    try:
        while True:
            attempt += 1
            if gate is not None and not holding:
                await gate.acquire(scope.priority, retry=attempt > 1)
            holding = gate is not None
            hint = _Hint()
            token = _HINT.set(hint)
            err: BaseException | None = None
            value: Any = None
            record.attempts = attempt
            sent_at = gate.clock() if gate is not None else 0.0
            ev.attempt_started()
            t0 = time.perf_counter()
            try:
                with anyio.fail_after(policy.timeout_s):
                    value = await send()
            except TimeoutError:
                err = RequestTimeoutError(
                    f"No answer within the per-request timeout of {policy.timeout_s:g} s (attempt {attempt})."
                )
            except Exception as exc:
                err = exc
            finally:
                dt = time.perf_counter() - t0
                record.latency_s += dt
                ev.attempt_ended(dt)
                _HINT.reset(token)
                if gate is not None:
                    holding = False
                    gate.release()
            if gate is not None:
                gate.remaining(hint.value if hint.value is not None else _remaining_of(err or value))
            if err is None:
                if gate is not None:
                    gate.succeeded()
                _end(record, "ok")
                return Outcome(value=value, attempts=attempt)
            if not isinstance(err, RagError):
                _end(record, "error", f"{type(err).__name__}: {err}", type(err).__name__)
                return Outcome(error=err, attempts=attempt)
            if err.fatal:
                _end(record, "error", str(err), err.kind)
                return Outcome(error=err, attempts=attempt)
            if isinstance(err, RateLimitError) and gate is not None:
                gate.rate_limited(sent_at)
            if not err.retryable or attempt > policy.max_retries:
                if attempt > 1:
                    err.args = (f"{err} (gave up after {attempt} attempts)",)
                _end(record, "error", str(err), err.kind)
                return Outcome(error=err, attempts=attempt)
            delay, server = delay_for(policy, attempt, err)
            if scope.deadline is not None and anyio.current_time() + delay > scope.deadline:
                err.args = (
                    f"{err} (gave up after {attempt} attempts: waiting {delay:.1f} s more would pass "
                    f"the run's deadline of {policy.deadline_s:g} s)",
                )
                _end(record, "error", str(err), err.kind)
                return Outcome(error=err, attempts=attempt)
            record.retried[err.kind] = record.retried.get(err.kind, 0) + 1
            log.info(
                "retry %d of %s in %.1f s: %s",
                attempt,
                label or "a request",
                delay,
                err,
            )
            wait_token = ev.wait_started(delay, server)
            t1 = time.perf_counter()
            try:
                await anyio.sleep(delay)
            finally:
                waited = time.perf_counter() - t1
                record.throttled_s += waited
                record.longest_wait_s = max(record.longest_wait_s, waited)
                ev.wait_ended(wait_token, waited)
    except BaseException:
        if holding and gate is not None:
            gate.release()
        _end(record, "cancelled", "cancelled", "CancelledError")
        raise


def _end(record: CallRecord, status: str, error: str | None = None, kind: str | None = None) -> None:
    if record.end is None:
        record.status, record.error, record.error_kind = status, error, kind
        record.end = time.time()
