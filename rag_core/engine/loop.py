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
  ``wait()``. Several batches (e.g. two browser sessions) run side by side.

Shared limits: :meth:`Engine.gate` (a context manager) lends the :class:`~rag_core.engine.gate.Gate`
registered under a key — one per API key and endpoint — to the block it guards; every batch
submitted with that gate, by any thread, shares its adaptive limit, so a run's answer calls and
judge calls together never exceed it. The gate is dropped when the last block using it ends (a
later run starts from the full cap again).

The batch runner's rules are in :mod:`rag_core.engine.batch`, the per-call retry rules in
:mod:`rag_core.engine.calls`, the limiter's in :mod:`rag_core.engine.gate`.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from rag_core.engine.batch import BatchHandle
from rag_core.engine.gate import Gate
from rag_core.engine.policy import LOOP_THREAD_NAME, BatchPolicy, ItemResult
from rag_core.engine.registry import HandleRegistry

__all__ = ["Engine", "get_engine"]

T = TypeVar("T")


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
        self._gates: dict[str, tuple[Gate, list[int]]] = {}
        """key → (gate, the concurrency each current user asked for)."""
        #: Runs executing in this process, keyed by (database, run id); a run leaves when it ends.
        self.runs: HandleRegistry[Any] = HandleRegistry()

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

    @overload
    def call(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...
    @overload
    def call(self, async_fn: Callable[..., T], *args: Any) -> T: ...
    def call(self, async_fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``async_fn(*args)`` on the loop thread and return its result (or raise its error).

        Blocks the calling thread. Works from sync code, from a thread running its own asyncio
        loop (that loop is blocked meanwhile) and from many threads at once. Raises
        ``RuntimeError`` when called from the loop thread itself.
        """
        return self._portal().call(async_fn, *args)

    @contextlib.contextmanager
    def gate(self, key: str, *, concurrency: int, adaptive: bool = True) -> Iterator[Gate]:
        """The shared :class:`Gate` of ``key`` for the duration of the ``with`` block.

        ``key`` identifies what the limit protects (an API key's digest and the endpoint, never
        the secret itself; ``adaptive`` is part of the identity). The gate's cap is the largest
        ``concurrency`` asked for by the blocks currently using it; its AIMD state is shared by
        all of them. Thread-safe; usable from any thread but the loop thread (raises
        ``RuntimeError`` there).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        portal = self._portal()
        name = f"{key}|{'adaptive' if adaptive else 'fixed'}"
        with self._lock:
            entry = self._gates.get(name)
            if entry is None:
                entry = self._gates[name] = (Gate(key, concurrency, adaptive=adaptive), [])
            gate, users = entry
            users.append(int(concurrency))

        def apply_cap() -> None:  # on the loop; reads the users as they are when it runs
            with self._lock:
                cap = max(users) if users else 0
            if cap:
                gate.set_cap(cap)

        portal.call(apply_cap)
        try:
            yield gate
        finally:
            with self._lock:
                users.remove(int(concurrency))
                if not users and self._gates.get(name) is entry:
                    del self._gates[name]
            try:
                portal.call(apply_cap)
            except RuntimeError:  # the loop was shut down meanwhile: nothing left to limit
                pass

    def submit(
        self,
        jobs: Sequence[Callable[[], Awaitable[T]]],
        *,
        labels: Sequence[str] | None = None,
        policy: BatchPolicy | None = None,
        on_result: Callable[[ItemResult], None] | None = None,
        gate: Gate | None = None,
        window: int | None = None,
    ) -> BatchHandle[T]:
        """Start running ``jobs`` (zero-argument coroutine functions) and return a handle at once.

        ``labels`` (same length as ``jobs``) name the items; ``policy`` defaults to
        ``BatchPolicy()``. ``on_result(item)`` is called on the loop thread, exactly once per item,
        when it reaches a terminal status (including items swept by cancel/fatal/deadline); it
        must be quick and must not block; its exceptions are logged, not raised. An empty
        ``jobs`` gives a handle that is already finished.

        Without ``gate``/``window`` each job is one request, retried whole. With a ``gate``
        (from :meth:`gate`, or a private :class:`Gate`) and/or a ``window``, jobs make their
        calls through :func:`~rag_core.engine.remote_call`: each call holds a slot of the gate and
        owns its retries, and at most ``window`` jobs run at once (see :mod:`rag_core.engine.batch`).
        Raises ``ValueError`` when ``labels`` has the wrong length and ``RuntimeError`` when called
        from the loop thread.
        """
        jobs = list(jobs)
        if labels is None:
            labels = [""] * len(jobs)
        elif len(labels) != len(jobs):
            raise ValueError(f"{len(labels)} labels for {len(jobs)} jobs")
        handle: BatchHandle[T] = BatchHandle(
            jobs, labels, policy or BatchPolicy(), on_result, gate=gate, window=window
        )
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
