"""Batch policy, per-item and per-call results, progress snapshots: the engine's plain records.

Named constants for limits, retries and timeouts live here; a :class:`BatchPolicy` overrides them per
batch. An :class:`ItemResult`'s status is ``"pending"`` → ``"running"`` → one of the terminal
``"ok"`` | ``"error"`` | ``"cancelled"``; a :class:`CallRecord` is one remote call made by a job
(one row of the run's request timeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag_core.errors import InputError

__all__ = [
    "AIMD_429_RATE",
    "AIMD_CONFIDENCE_Z",
    "AIMD_DECREASE_WINDOW_S",
    "AIMD_MIN_429",
    "AIMD_OUTCOME_WINDOW",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_JOB_WINDOW_FACTOR",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_AFTER_CAP_S",
    "DEFAULT_TIMEOUT_S",
    "LOOP_THREAD_NAME",
    "BatchPolicy",
    "CallRecord",
    "ItemResult",
    "Progress",
]

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
DEFAULT_RETRY_AFTER_CAP_S = 600.0
"""Safety ceiling on a server-requested ``retry-after``: far above what the API normally asks
(seconds to a minute), so a real request is honoured in full; the run's deadline bounds it too."""
DEFAULT_JOB_WINDOW_FACTOR = 2
"""A batch whose calls share a gate runs up to this many times the gate's cap of jobs at once, so a
slot freed by one job's call is taken at once by another job's call (jobs hold no slot between calls)."""
AIMD_DECREASE_WINDOW_S = 1.0
"""The concurrency limit is halved at most once per this many seconds."""
AIMD_OUTCOME_WINDOW = 100
"""How many recent outcomes (success or 429) decide whether 429s are "repeated"."""
AIMD_429_RATE = 0.10
"""Share of 429s among recent outcomes that counts as being rate limited (judged with
:data:`AIMD_CONFIDENCE_Z`: the share must be above this with that confidence, not just by chance)."""
AIMD_CONFIDENCE_Z = 2.33
"""z of the one-sided Wilson lower bound on the recent 429 share (≈ 99 % confidence): 3 429s among
the first 10 outcomes can be chance at a 5 % fault rate (a 1.64 bound still cut 3 % of such runs in
simulation, this one none of 300); 5 in a row cannot."""
AIMD_MIN_429 = 3
"""Fewest 429s among recent outcomes before the limit is lowered."""
LOOP_THREAD_NAME = "rag-engine-loop"
"""Name of the engine's event-loop thread (handy in logs and debuggers)."""

_TERMINAL = frozenset({"ok", "error", "cancelled"})


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
    """Safety ceiling on ``retry-after``: longer requests are shortened to this (the deadline
    still applies: a wait that would pass it is not taken)."""
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
class CallRecord:
    """One remote call made by a job through :func:`~rag_core.engine.remote_call`: all its attempts."""

    label: str
    """What the call was, e.g. ``"answer"`` or ``"faithfulness · call 2"``."""
    start: float
    """Epoch seconds when the call was made (before waiting for a slot)."""
    end: float | None = None
    """Epoch seconds when it ended (None while running)."""
    status: str = "running"
    """``"running"``, ``"ok"``, ``"error"`` or ``"cancelled"``."""
    attempts: int = 0
    """Attempts sent (1 + retries)."""
    latency_s: float = 0.0
    """Sum of the attempts' durations, seconds (excludes waiting for a slot and backoff)."""
    throttled_s: float = 0.0
    """Seconds spent waiting out backoff / ``retry-after`` between attempts."""
    longest_wait_s: float = 0.0
    """The longest single wait between two attempts."""
    retried: dict[str, int] = field(default_factory=dict)
    """Error kind → retries it caused (e.g. ``{"RateLimitError": 2}``)."""
    error: str | None = None
    """The final error's message (status ``"error"``)."""
    error_kind: str | None = None

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


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
    calls: tuple[CallRecord, ...] = ()
    """The remote calls the job made, in order (jobs of a batch whose calls own their retries;
    empty for a batch that retries whole jobs)."""

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
    """Items (or calls) waiting out a backoff / retry-after right now."""
    waiting_s: float = 0.0
    """Longest server-requested ``retry-after`` wait still to go right now, seconds (0 = none)."""

    @property
    def eta_s(self) -> float | None:
        """Seconds until done at the rate so far; 0.0 when finished, None before the first result."""
        if self.finished:
            return 0.0
        if self.done == 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)
