"""The adaptive concurrency limit: :class:`Aimd` (the pure rule) and :class:`Gate` (the limiter).

A :class:`Gate` bounds how many remote calls are in flight at once and adapts that bound to rate
limits. One gate is shared by every call made with one API key at one endpoint
(:meth:`rag_core.engine.Engine.gate`), so a run's answer calls and judge calls together never exceed
it; a batch that owns its retries (:meth:`~rag_core.engine.Engine.submit` without a gate) makes a
private one.

Rules
- At most ``limit`` slots are held at once; ``limit`` starts at ``cap`` and never leaves ``[1, cap]``.
- Waiters are served lowest ``priority`` first, then in arrival order. Callers use the job's
  position (earlier jobs finish first, so the batch's critical path is not starved) and put
  retries ahead of first attempts.
- AIMD (:class:`Aimd`, when ``adaptive``): a 429 halves the limit only when 429s are *repeated* —
  at least :data:`~rag_core.engine.policy.AIMD_MIN_429` of the last
  :data:`~rag_core.engine.policy.AIMD_OUTCOME_WINDOW` outcomes, and a share of them above
  :data:`~rag_core.engine.policy.AIMD_429_RATE` with confidence (the one-sided Wilson lower bound at
  :data:`~rag_core.engine.policy.AIMD_CONFIDENCE_Z`) among at least one flight of outcomes
  (``limit`` of them: a 429 comes back at once, a success only after the request's latency, so
  the first outcomes of a flight are all 429s) — so stray 429s, a few percent, are just retried
  while a real limit (most requests refused) cuts within one flight — at
  most once per :data:`~rag_core.engine.policy.AIMD_DECREASE_WINDOW_S`, and not for a request sent
  before the last cut (it reflects the old limit; like TCP, one cut per flight). Every ``limit``
  successes raise it by one, back up to the ceiling. A server hint ``requests_remaining`` lowers the
  ceiling (never below 1) until a later hint raises it.
- Everything except the read-only properties runs on the engine's loop thread.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import time
from collections.abc import Callable

import anyio

from rag_core.engine.policy import (
    AIMD_429_RATE,
    AIMD_CONFIDENCE_Z,
    AIMD_DECREASE_WINDOW_S,
    AIMD_MIN_429,
    AIMD_OUTCOME_WINDOW,
)

__all__ = ["Aimd", "Gate", "wilson_lower"]


def wilson_lower(k: int, n: int, z: float = AIMD_CONFIDENCE_Z) -> float:
    """One-sided Wilson lower bound of a share ``k / n`` (0 when ``n`` is 0)."""
    if n <= 0:
        return 0.0
    p = k / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


class Aimd:
    """Additive-increase / multiplicative-decrease of a concurrency limit (see the module rules).

    Pure: no I/O, no event loop; ``clock`` (seconds, monotonic) is injected for tests. Methods return
    True when the limit changed.
    """

    def __init__(self, cap: int, *, adaptive: bool = True, clock: Callable[[], float] = time.perf_counter):
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = int(cap)
        self.limit = int(cap)
        self.adaptive = adaptive
        self.clock = clock
        self.ceiling = int(cap)
        """The cap, lowered by a ``requests_remaining`` hint."""
        self.decreases = 0
        """How many times the limit was halved."""
        self._recent: collections.deque[bool] = collections.deque(maxlen=AIMD_OUTCOME_WINDOW)
        self._successes = 0
        self._last_decrease = -math.inf

    def _set(self, value: int) -> bool:
        value = max(1, min(self.ceiling, self.cap, value))
        changed = value != self.limit
        self.limit = value
        return changed

    def rate_limited(self, sent_at: float) -> bool:
        """A 429 for a request sent at ``sent_at`` (the same clock)."""
        if not self.adaptive:
            return False
        self._recent.append(True)
        n429, n = sum(self._recent), len(self._recent)
        if n < min(self.limit, AIMD_OUTCOME_WINDOW):
            return False  # not a flight of outcomes yet: 429s come back before successes do
        if n429 < AIMD_MIN_429 or wilson_lower(n429, n) < AIMD_429_RATE:
            return False  # stray 429s: the retries handle them
        now = self.clock()
        if now - self._last_decrease < AIMD_DECREASE_WINDOW_S or sent_at < self._last_decrease:
            return False
        self._last_decrease = now
        self._successes = 0
        self._recent.clear()  # the next cut needs fresh evidence at the new limit
        self.decreases += 1
        return self._set(self.limit // 2)

    def succeeded(self) -> bool:
        """A call succeeded."""
        if not self.adaptive:
            return False
        self._recent.append(False)
        self._successes += 1
        if self.limit < min(self.cap, self.ceiling) and self._successes >= self.limit:
            self._successes = 0
            return self._set(self.limit + 1)
        return False

    def remaining(self, value: int | None) -> bool:
        """The server says ``value`` more requests are allowed now (None: no hint)."""
        if value is None:
            return False
        self.ceiling = max(1, min(self.cap, int(value)))
        return self._set(min(self.limit, self.ceiling))

    def set_cap(self, cap: int) -> bool:
        """A new cap (a user of a shared gate asked for more or less concurrency)."""
        cap, old = max(1, int(cap)), self.cap
        self.cap = cap
        # A ceiling or limit that was not lowered follows the cap; a lowered one stays lowered.
        self.ceiling = cap if self.ceiling >= old else min(self.ceiling, cap)
        return self._set(cap if self.limit >= old else self.limit)


class _Waiter:
    __slots__ = ("event", "gone", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False
        self.gone = False


class Gate:
    """An adaptive, priority-ordered concurrency limiter for remote calls (see the module rules).

    ``key`` names what the limit protects (e.g. an API key's digest and the endpoint); it is
    shown in logs, never a secret. Build shared gates with :meth:`Engine.gate`.
    """

    def __init__(
        self,
        key: str = "",
        cap: int = 8,
        *,
        adaptive: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.key = key
        self.aimd = Aimd(cap, adaptive=adaptive, clock=clock)
        self._in_flight = 0
        self._heap: list[tuple[int, float, int, _Waiter]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"<Gate {self.key!r} {self._in_flight}/{self.limit} in flight, {self.waiting} waiting>"

    # --- read anywhere -----------------------------------------------------------------------------
    @property
    def limit(self) -> int:
        """Slots that may be held at once right now."""
        return self.aimd.limit

    @property
    def cap(self) -> int:
        return self.aimd.cap

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return sum(1 for *_, w in self._heap if not w.gone)

    def clock(self) -> float:
        return self.aimd.clock()

    # --- loop thread ---------------------------------------------------------------------------
    async def acquire(self, priority: float = 0.0, *, retry: bool = False) -> None:
        """Wait for a slot (lowest ``priority`` first; ``retry=True`` goes ahead of first attempts).

        Cancellation while waiting leaves no slot held.
        """
        if not self._heap and self._in_flight < self.limit:
            self._in_flight += 1
            return
        w = _Waiter()
        heapq.heappush(self._heap, (0 if retry else 1, float(priority), next(self._seq), w))
        self._wake()
        try:
            await w.event.wait()
        except BaseException:
            if w.granted:
                self.release()
            else:
                w.gone = True
            raise

    def release(self) -> None:
        """Give a slot back (exactly once per :meth:`acquire`)."""
        self._in_flight = max(0, self._in_flight - 1)
        self._wake()

    def _wake(self) -> None:
        while self._heap and self._in_flight < self.limit:
            *_, w = heapq.heappop(self._heap)
            if w.gone:
                continue
            self._in_flight += 1
            w.granted = True
            w.event.set()

    def rate_limited(self, sent_at: float) -> None:
        """Report a 429 for a call sent at ``sent_at`` (:meth:`clock` time)."""
        self.aimd.rate_limited(sent_at)

    def succeeded(self) -> None:
        if self.aimd.succeeded():
            self._wake()

    def remaining(self, value: int | None) -> None:
        if self.aimd.remaining(value):
            self._wake()

    def set_cap(self, cap: int) -> None:
        if self.aimd.set_cap(cap):
            self._wake()
