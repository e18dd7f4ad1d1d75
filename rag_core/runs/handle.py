"""The handle of a run executing in this process: progress, cancel, wait. Thread-safe."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rag_core.runs.request import LONG_WAIT_NOTE_S, RunProgress
from rag_core.summary import RunSummary
from rag_core.vocab import Phase, RunStatus

__all__ = ["RunHandle"]


@dataclass
class _RunState:
    phase: Phase = Phase.STARTING
    status: RunStatus = RunStatus.RUNNING
    message: str = ""
    handle: Any = None
    """The engine batch (or batch-mode tracker) of the current phase: has progress() and cancel()."""
    started: float = field(default_factory=time.monotonic)
    summary: RunSummary | None = None


class RunHandle:
    """A run in progress. Its methods never block except :meth:`wait`.

    Made by :func:`rag_core.runs.executor.start_run`; the engine's run registry holds it while
    the run executes and drops it when the run ends (the outcome is then in the history store).
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._state = _RunState()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._on_done: list[Callable[[RunHandle], None]] = []
        #: The coordinator thread executing the run (set by ``start_run``).
        self.thread: threading.Thread | None = None
        #: Owner key of the principal who started (or resumed) it: only their sessions adopt it
        #: (see :meth:`rag_core.workspace.Workspace.active_run_ids`); ``""`` = nobody's (CLI, sweeps).
        self.started_by = ""

    # -- used by the coordinator ----------------------------------------------------------------
    def set(self, **kw: Any) -> None:
        """Update the state shown by :meth:`progress` (coordinator only)."""
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    def finish(self, status: RunStatus, summary: RunSummary | None) -> None:
        """Mark the run ended (coordinator only): wakes :meth:`wait`, runs done callbacks."""
        with self._lock:
            self._state.phase = Phase.DONE
            self._state.status = status
            self._state.summary = summary
            self._state.handle = None
            callbacks = list(self._on_done)
        self._done.set()
        for cb in callbacks:
            cb(self)

    def add_done_callback(self, fn: Callable[[RunHandle], None]) -> None:
        """Call ``fn(handle)`` when the run ends (at once if it already has)."""
        with self._lock:
            if not self._done.is_set():
                self._on_done.append(fn)
                return
        fn(self)

    @property
    def stop_event(self) -> threading.Event:
        """Set when the run is cancelled (batch mode sleeps on it)."""
        return self._cancel

    # -- public ------------------------------------------------------------------------------------
    def progress(self) -> RunProgress:
        with self._lock:
            st = self._state
            inner = st.handle
            p = RunProgress(
                run_id=self.run_id,
                phase=st.phase,
                status=st.status,
                elapsed_s=time.monotonic() - st.started,
                message=st.message,
            )
        if inner is not None:
            hp = inner.progress()
            p.done, p.total, p.in_flight = hp.done, hp.total, hp.in_flight
            p.retries, p.errors = hp.retries, hp.errors
            p.phase_elapsed_s, p.eta_s = hp.elapsed_s, hp.eta_s
            p.concurrency_limit = hp.concurrency_limit
            p.throttled_s = hp.throttled_s
            note = getattr(inner, "note", None)
            p.note = note() if callable(note) else ""
            if hp.waiting_s >= LONG_WAIT_NOTE_S:
                p.note = f"rate limited: waiting {math.ceil(hp.waiting_s)} s"
        return p

    @property
    def message(self) -> str:
        with self._lock:
            return self._state.message

    def cancel(self) -> None:
        """Stop the run: finished answers and scores are kept, unstarted work never starts."""
        self._cancel.set()
        with self._lock:
            inner = self._state.handle
        if inner is not None:
            inner.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> RunSummary | None:
        """Block until the run ends; returns its summary (``None`` on timeout or if it could not
        be written)."""
        if not self._done.wait(timeout):
            return None
        with self._lock:
            return self._state.summary
