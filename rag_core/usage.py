"""What one attempt of a run spends: Claude requests (counted when sent) and wall time per phase.

An :class:`AttemptLedger` belongs to one execution of a run (the first try, or one resume). The
run's coordinator writes its :meth:`~AttemptLedger.snapshot` to the history store every second
and at the end, so a process killed mid-run loses at most a second of counting; the run summary
adds up the snapshots of every attempt.

How a request reaches the ledger without being passed around: the code that sends a Claude
request (the answerer, the judge's client) awaits :func:`request_sent` just before sending and
calls :func:`request_done` when the response (or an error) arrives. Both find the ledger and the pass
("answers", "answers-sequential", "judge") through a context variable that the run's job wrappers
set with :func:`charging` — outside a run (tests, the CLI's search) they are no-ops.

Counting rules
- A request is counted (``calls`` + 1, its prompt tokens at an estimate) before it is sent, and
  the ledger is written to the store before the request leaves (:meth:`AttemptLedger.persist`,
  coalesced: one write covers every request sent meanwhile), so a process killed with requests
  in flight has already recorded them.
- Its response replaces the estimate by the billed tokens (input, output, cache writes/reads).
- A request that fails with an error response is not billed by the API: its estimate is dropped.
- A request that never got a response (timeout, cancelled in flight, process killed) keeps its
  estimate in ``estimated_input_tokens``: the API may have billed it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio

log = logging.getLogger(__name__)

__all__ = [
    "CHARS_PER_TOKEN",
    "AttemptLedger",
    "charging",
    "estimate_tokens",
    "request_done",
    "request_sent",
]

CHARS_PER_TOKEN = 4.0
"""Characters per token for estimates (English prose with Claude's tokenizer: ≈ 3.5–4.5)."""


def estimate_tokens(*texts: Any) -> int:
    """A rough token count of some texts (characters / :data:`CHARS_PER_TOKEN`)."""
    return int(sum(len(str(t)) for t in texts if t) / CHARS_PER_TOKEN) + 1


@dataclass
class _Pass:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    unconfirmed: int = 0
    """Estimated prompt tokens of requests sent and not answered (yet)."""
    lost: int = 0
    """Estimated prompt tokens of requests that never got a response."""


class AttemptLedger:
    """Counters of one run attempt. Thread-safe; every method is quick and never raises."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._passes: dict[tuple[str, str, bool], _Pass] = {}
        self._phase_s: dict[str, float] = {}
        self._phase: str | None = None
        self._phase_t0 = 0.0
        self._t0 = clock()
        self._extra: dict[str, Any] = {}
        self._sink: Callable[[dict[str, Any]], None] | None = None
        self._flush_lock = threading.Lock()
        self._sent_gen = 0
        self._persisted_gen = 0

    # --- persistence -------------------------------------------------------------------------
    def attach(self, sink: Callable[[dict[str, Any]], None] | None) -> None:
        """Write snapshots with ``sink(snapshot)`` (the run's attempt row in the store); None
        stops writing."""
        self._sink = sink

    def persist(self) -> None:
        """Write a snapshot now unless one already covers every request sent so far (blocking;
        coalesced across threads; a failing sink is logged, never raised)."""
        sink = self._sink
        if sink is None:
            return
        with self._lock:
            wanted = self._sent_gen
        with self._flush_lock:
            if self._persisted_gen >= wanted and wanted:
                return
            with self._lock:
                gen = self._sent_gen
            try:
                sink(self.snapshot())
            except Exception as exc:  # the bill must not break the run; the heartbeat retries
                log.warning("could not record the run's requests: %s", exc)
                return
            self._persisted_gen = max(self._persisted_gen, gen)

    # --- requests ------------------------------------------------------------------------------
    def sent(self, kind: str, model: str, est_input_tokens: int, *, batch: bool = False) -> None:
        with self._lock:
            p = self._passes.setdefault((kind, model, batch), _Pass())
            p.calls += 1
            p.unconfirmed += max(0, int(est_input_tokens))
            self._sent_gen += 1

    def unsend(self, kind: str, model: str, est_input_tokens: int, *, batch: bool = False) -> None:
        """Take back a :meth:`sent` whose request never left (cancelled before sending)."""
        with self._lock:
            p = self._passes.setdefault((kind, model, batch), _Pass())
            p.calls = max(0, p.calls - 1)
            p.unconfirmed = max(0, p.unconfirmed - max(0, int(est_input_tokens)))

    def done(
        self,
        kind: str,
        model: str,
        est_input_tokens: int,
        *,
        usage: Any = None,
        responded: bool = True,
        batch: bool = False,
    ) -> None:
        """A response arrived (``usage`` = its usage object/dict) or the request ended without one
        (``responded=False``: timeout, cancelled, connection lost)."""
        with self._lock:
            p = self._passes.setdefault((kind, model, batch), _Pass())
            p.unconfirmed = max(0, p.unconfirmed - max(0, int(est_input_tokens)))
            if not responded:
                p.lost += max(0, int(est_input_tokens))
                return
            if usage is None:
                return
            p.input_tokens += _int(usage, "input_tokens")
            p.output_tokens += _int(usage, "output_tokens")
            p.cache_write_tokens += _int(usage, "cache_creation_input_tokens")
            p.cache_read_tokens += _int(usage, "cache_read_input_tokens")

    def add(self, kind: str, model: str, *, calls: int = 0, usage: Any = None, batch: bool = False) -> None:
        """Count requests made outside :func:`request_sent` (e.g. a Message Batch's results)."""
        with self._lock:
            p = self._passes.setdefault((kind, model, batch), _Pass())
            p.calls += int(calls)
            if usage is not None:
                p.input_tokens += _int(usage, "input_tokens")
                p.output_tokens += _int(usage, "output_tokens")
                p.cache_write_tokens += _int(usage, "cache_creation_input_tokens")
                p.cache_read_tokens += _int(usage, "cache_read_input_tokens")

    # --- phases ----------------------------------------------------------------------------------
    def phase(self, name: str | None) -> None:
        """Enter phase ``name`` (``None`` = between phases): the previous one stops counting."""
        with self._lock:
            now = self._clock()
            if self._phase is not None:
                self._phase_s[self._phase] = self._phase_s.get(self._phase, 0.0) + now - self._phase_t0
            self._phase, self._phase_t0 = name, now

    def note(self, **values: Any) -> None:
        """Record plain JSON values with this attempt (generation stats, judge counters…)."""
        with self._lock:
            self._extra.update(values)

    def bump(self, key: str, by: float = 1) -> None:
        """Add ``by`` to a numeric note."""
        with self._lock:
            self._extra[key] = self._extra.get(key, 0) + by

    # --- snapshot -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: ``{"elapsed_s", "phases": {name: s}, "passes": [...], "notes": {...}}``.

        Requests still unanswered count with their estimate in ``estimated_input_tokens`` (if the
        process dies now, that is what they may have cost).
        """
        with self._lock:
            now = self._clock()
            phases = dict(self._phase_s)
            if self._phase is not None:
                phases[self._phase] = phases.get(self._phase, 0.0) + now - self._phase_t0
            passes = [
                {
                    "kind": kind,
                    "model": model,
                    "batch": batch,
                    "calls": p.calls,
                    "input_tokens": p.input_tokens,
                    "output_tokens": p.output_tokens,
                    "cache_write_tokens": p.cache_write_tokens,
                    "cache_read_tokens": p.cache_read_tokens,
                    "estimated_input_tokens": p.lost + p.unconfirmed,
                }
                for (kind, model, batch), p in sorted(self._passes.items())
            ]
            return {
                "elapsed_s": now - self._t0,
                "phases": phases,
                "passes": passes,
                "notes": dict(self._extra),
            }


def _int(obj: Any, name: str) -> int:
    v = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


# --- the context a request is charged to ---------------------------------------------------------
_CHARGE: contextvars.ContextVar[tuple[AttemptLedger, str] | None] = contextvars.ContextVar(
    "rag_core_usage_charge", default=None
)


@contextlib.contextmanager
def charging(ledger: AttemptLedger | None, kind: str) -> Iterator[None]:
    """Charge the Claude requests made inside this block to ``ledger``'s pass ``kind``.

    Use inside a job coroutine (the context variable is per task). ``ledger=None`` is a no-op.
    """
    if ledger is None:
        yield
        return
    token = _CHARGE.set((ledger, kind))
    try:
        yield
    finally:
        _CHARGE.reset(token)


async def request_sent(model: str, est_input_tokens: int) -> None:
    """Count a request about to be sent to ``model`` and make sure the count is stored before it
    leaves (no-op outside :func:`charging`). Await it right before sending."""
    charge = _CHARGE.get()
    if charge is None:
        return
    ledger, kind = charge
    ledger.sent(kind, model, est_input_tokens)
    if ledger._sink is None:
        return
    try:
        await anyio.to_thread.run_sync(ledger.persist)
    except BaseException:  # cancelled before it left: it was never sent
        ledger.unsend(kind, model, est_input_tokens)
        raise


def request_done(model: str, est_input_tokens: int, *, usage: Any = None, responded: bool = True) -> None:
    """Settle a request counted by :func:`request_sent` (no-op outside :func:`charging`)."""
    charge = _CHARGE.get()
    if charge is not None:
        charge[0].done(charge[1], model, est_input_tokens, usage=usage, responded=responded)
