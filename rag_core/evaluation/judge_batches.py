"""Judging through Anthropic's Message Batches API (half price), round by round, resumable.

In batch mode every judge call of a scoring batch goes to a :class:`JudgeBatcher` instead of the
Messages API. RAGAS still runs each metric as a coroutine; a call simply waits until the batcher
has its answer. A metric whose second call depends on the first (faithfulness: statements, then
verdicts; context precision: one chunk after the other) therefore takes several *rounds*:

1. Every metric job runs until it waits for a judge call (or finishes).
2. When every unfinished job is waiting, the round starts: the waiting requests go into **one**
   Message Batch, the batch id is stored with the run (``on_created``) before any wait, the batch
   is polled until it ends (:class:`~rag_core.answer.batches_api.BatchPolling`) and its results
   are handed back; the jobs go on to their next call, which makes the next round.
3. ``errored`` results of a retryable type (overloaded, rate limited, server error) and ``expired``
   ones go into the next round, up to ``max_retries`` times per call; a rejected key or a
   missing model (fatal) fails every waiting call at once, which stops the scoring batch; other
   errors fail that call (and so its metric), naming the API's error type.

Resumable: each request's ``custom_id`` is a digest of the judged item (the judge-cache key of
sample, metric and repeat), the call's number within its metric and the request itself. A resumed
run gets the batch ids it stored (``stored_ids``); before its first round it polls any of them still
processing and reads their results, and every request whose ``custom_id`` already has a
``succeeded`` result is answered from it without being sent again — RAGAS replays the same
requests in the same order, so a run stopped in round 3 resumes with rounds 1–2 answered from
the stored batches.

Cost: each result's usage is charged to the ledger's ``"judge"`` pass with ``batch=True``
(:data:`~rag_core.summary.BATCH_DISCOUNT` of the price); prompt-cache writes and reads apply
inside batches too.

The batcher lives on the engine's loop thread; the sync batches client runs in worker threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from rag_core.answer.api_errors import ERROR_TYPES
from rag_core.answer.batches_api import BatchNotFoundError, BatchPolling, MessageBatchClient, errored_result
from rag_core.errors import GenerationError, RagError, RequestTimeoutError
from rag_core.usage import AttemptLedger

__all__ = ["JudgeBatchOptions", "JudgeBatcher", "judge_custom_id"]

log = logging.getLogger(__name__)

MAX_ROUND_POLLS = 100_000
"""Hard bound on status polls of one round (the run's deadline normally ends the wait first)."""


def judge_custom_id(item_key: str, call: int, request: dict[str, Any]) -> str:
    """The ``custom_id`` of one judge request: ``"j"`` + 40 hex digits (see the module docstring)."""
    body = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "j" + hashlib.sha256(f"{item_key}|{call}|{body}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class JudgeBatchOptions:
    """What a scoring batch needs to judge through Message Batches."""

    stored_ids: Sequence[str] = ()
    """Batch ids this run stored before (a resume): their results are reused."""
    on_created: Callable[[str], None] | None = None
    """Called (from a worker thread) with each new batch id, before the batch is waited for."""
    polling: BatchPolling = field(default_factory=BatchPolling)
    client: MessageBatchClient | None = None
    """A client to use (tests); None = one built from the settings (closed at the end)."""


class _Pending:
    __slots__ = ("attempts", "custom_id", "drive", "error", "event", "request", "result")

    def __init__(self, request: dict[str, Any], custom_id: str) -> None:
        self.request = request
        self.custom_id = custom_id
        self.event = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.drive = False
        self.attempts = 0


class JudgeBatcher:
    """Collects the judge calls of one scoring batch into Message Batch rounds (module docstring).

    ``n_jobs`` is how many metric jobs will run; each must call :meth:`job_ended` once when it
    ends (whatever the outcome). Loop thread only, except :meth:`note` and :meth:`cancel_remote`.
    """

    def __init__(
        self,
        *,
        client: MessageBatchClient,
        n_jobs: int,
        options: JudgeBatchOptions,
        model: str,
        max_retries: int,
        deadline_s: float | None,
        ledger: AttemptLedger | None = None,
        secret: str | None = None,
    ) -> None:
        self._client = client
        self._remaining = int(n_jobs)
        self._options = options
        self._model = model
        self._max_retries = int(max_retries)
        self._deadline = time.monotonic() + deadline_s if deadline_s else math.inf
        self._ledger = ledger
        self._secret = secret
        self._pending: list[_Pending] = []
        self._running = False
        self._loaded = False
        self._known: dict[str, Any] = {}
        self._cancel_remote = False
        self._current: str | None = None
        self.rounds = 0
        """Rounds sent so far."""
        self.batch_ids: list[str] = []
        """Batches created by this batcher, in order."""
        self.reused = 0
        """Requests answered from stored batches (a resume)."""
        self.retries = 0
        """Requests sent again after an errored or expired result."""
        self.interrupted: str | None = None
        """Why the batcher stopped waiting for a batch that keeps processing (resume collects it)."""
        self._note = ""

    # --- any thread -----------------------------------------------------------------------------
    def note(self) -> str:
        """A line for the progress view, e.g. ``"judge batch round 2: 340 requests at Anthropic"``."""
        return self._note

    def cancel_remote(self) -> None:
        """The user cancelled: cancel the batch being waited for at Anthropic (best effort; blocks
        for one API call). Its finished results stay collectable: a resume reuses them."""
        self._cancel_remote = True
        current = self._current
        if current is not None:
            try:
                self._client.cancel(current)
            except RagError as exc:
                log.warning("cancelling judge batch %s failed: %s", current, exc)

    # --- jobs (loop thread) ------------------------------------------------------------------
    def job_ended(self) -> None:
        self._remaining -= 1
        self._maybe_start()

    async def submit(self, request: dict[str, Any], *, custom_id: str) -> tuple[Any, int]:
        """Wait for the result of ``request`` (a Messages API ``create`` body). Returns the SDK
        ``Message`` and how many times the request was sent in this run's batches (0: answered from
        a batch stored by an earlier attempt). Raises a :class:`RagError` when it failed for good."""
        p = _Pending(request, custom_id)
        self._pending.append(p)
        self._maybe_start()
        while True:
            await p.event.wait()
            if not p.drive:
                break
            p.drive = False
            p.event = anyio.Event()
            await self._round()
        if p.error is not None:
            raise p.error
        return p.result, p.attempts

    def _maybe_start(self) -> None:
        """Start a round (by waking one waiting job to drive it) once every unfinished job waits."""
        if self._running or not self._pending or len(self._pending) < self._remaining:
            return
        self._running = True
        driver = self._pending[0]
        driver.drive = True
        driver.event.set()

    # --- rounds (run by a waiting job's task) ----------------------------------------------------
    async def _round(self) -> None:
        batch, self._pending = self._pending, []
        try:
            if not self._loaded and not await self._load_stored():
                err = RequestTimeoutError(
                    self.interrupted or "Stopped waiting for the judge's message batch."
                )
                for p in batch:
                    p.error = err
                    p.event.set()
                return
            send: dict[str, list[_Pending]] = {}
            for p in batch:
                hit = self._known.get(p.custom_id)
                if hit is not None:
                    self.reused += 1
                    self._settle(p, hit, reused=True)
                else:
                    send.setdefault(p.custom_id, []).append(p)
            if send:
                await self._send(send)
        except BaseException as exc:
            if isinstance(exc, RagError):  # e.g. the key was rejected: every waiting call fails with it
                requeued = set(map(id, self._pending))
                for p in batch:
                    if not p.event.is_set() and id(p) not in requeued:
                        p.error = exc
                        p.event.set()
            raise
        finally:
            self._running = False
            self._note = ""
            self._maybe_start()

    async def _send(self, send: dict[str, list[_Pending]]) -> None:
        requests = [{"custom_id": cid, "params": ps[0].request} for cid, ps in send.items()]
        self.rounds += 1
        batch_id = await self._create(requests)
        self.batch_ids.append(batch_id)
        self._current = batch_id
        if self._options.on_created is not None:
            await anyio.to_thread.run_sync(self._options.on_created, batch_id)
        log.info("judge round %d: message batch %s with %d requests", self.rounds, batch_id, len(requests))
        self._note = f"judge batch round {self.rounds}: {len(requests)} requests at Anthropic"
        ended = await self._wait(batch_id)
        self._current = None
        if not ended:
            err = RequestTimeoutError(self.interrupted or "Stopped waiting for the judge's message batch.")
            for ps in send.values():
                for p in ps:
                    p.error = err
                    p.event.set()
            return
        results = await self._read(batch_id)
        for cid, ps in send.items():
            result = results.get(cid)
            for p in ps:
                self._settle(p, result)

    def _settle(self, p: _Pending, result: Any, *, reused: bool = False) -> None:
        """Hand ``result`` (an SDK batch result, or None when absent) to the waiting call."""
        kind = str(getattr(result, "type", "")) if result is not None else "missing"
        if not reused:
            p.attempts += 1
        if kind == "succeeded":
            message = result.message
            if self._ledger is not None and not reused:
                self._ledger.add("judge", self._model, calls=1, usage=message.usage, batch=True)
            p.result = message
            p.event.set()
            return
        if self._ledger is not None and kind == "errored":
            self._ledger.add("judge", self._model, calls=1, batch=True)  # not billed
        err: RagError
        if kind == "errored":
            msg, ekind = errored_result(result, self._secret)
            cls = next((c for c in ERROR_TYPES.values() if c.__name__ == ekind), GenerationError)
            err = cls(msg.replace("Claude could not answer this question", "The judge call failed"))
        elif kind == "expired":
            err = RequestTimeoutError("The judge's message batch expired (Anthropic's 24 h limit).")
        elif kind == "canceled" and self._cancel_remote:
            err = GenerationError("Cancelled: the judge's message batch was cancelled.")
        else:  # canceled by someone else, or absent from the results: ask again
            err = RequestTimeoutError(f"The judge's message batch returned no result ({kind}).")
        if err.retryable and not err.fatal and p.attempts <= self._max_retries and not self._cancel_remote:
            self.retries += 1
            self._pending.append(p)  # into the next round
            return
        if p.attempts > 1:
            err.args = (f"{err} (gave up after {p.attempts} batch rounds)",)
        p.error = err
        p.event.set()
        if err.fatal:  # every other waiting call fails the same way: the scoring batch stops
            for q in self._pending:
                q.error = err
                q.event.set()
            self._pending.clear()

    # --- Message Batches calls -------------------------------------------------------------------
    async def _create(self, requests: list[dict[str, Any]]) -> str:
        """Create a batch; an error *response* saying "not now" (429/529/5xx: nothing was created)
        is retried with backoff, anything else raises (a timeout may have created it: no retry)."""
        polling = self._options.polling
        for attempt in range(1, polling.max_failures + 1):
            try:
                status = await anyio.to_thread.run_sync(self._client.create, requests)
                return str(status.id)
            except RagError as exc:
                if exc.fatal or not exc.retryable or attempt == polling.max_failures:
                    raise
                if isinstance(exc, RequestTimeoutError) or exc.kind == "ConnectionFailedError":
                    raise
                log.info("creating a judge batch failed (attempt %d), retrying: %s", attempt, exc)
                await anyio.sleep(min(polling.max_s, polling.initial_s * polling.factor ** (attempt - 1)))
        raise GenerationError("Could not create the judge's message batch.")  # not reached

    async def _load_stored(self) -> bool:
        """Read the results of the batches a previous attempt stored (False: stop waiting)."""
        self._loaded = True
        for batch_id in self._options.stored_ids:
            try:
                if not await self._wait(batch_id, resumed=True):
                    return False
                results = await self._read(batch_id)
            except BatchNotFoundError:
                log.warning("stored judge batch %s no longer exists; its requests are sent again", batch_id)
                continue
            for cid, result in results.items():
                if str(getattr(result, "type", "")) == "succeeded":
                    self._known[cid] = result
        return True

    async def _wait(self, batch_id: str, *, resumed: bool = False) -> bool:
        """Poll until ``batch_id`` has ended (True) or the run must stop waiting (False)."""
        polling = self._options.polling
        interval = polling.initial_s
        failures = 0
        for _ in range(MAX_ROUND_POLLS):
            try:
                st = await anyio.to_thread.run_sync(self._client.retrieve, batch_id)
                failures = 0
            except BatchNotFoundError:
                raise
            except RagError as exc:
                if exc.fatal:
                    raise
                failures += 1
                if failures >= polling.max_failures:
                    self.interrupted = (
                        f"Stopped waiting for the judge's message batch {batch_id}: the Anthropic API "
                        "could not be reached repeatedly. It keeps processing; resume the run to collect it."
                    )
                    return False
                st = None
            if st is not None and st.ended:
                return True
            if st is not None:
                what = "stored batch" if resumed else f"round {self.rounds}"
                self._note = f"judge {what}: {st.processing} requests processing at Anthropic"
            if time.monotonic() + interval > self._deadline:
                self.interrupted = (
                    f"Stopped waiting for the judge's message batch {batch_id}: the run's deadline "
                    "passed (RAG_RUN_DEADLINE). It keeps processing at Anthropic; resume the run to "
                    "collect it — nothing is sent twice."
                )
                return False
            await anyio.sleep(interval)
            interval = min(polling.max_s, interval * polling.factor)
        return False

    async def _read(self, batch_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            return dict(self._client.results(batch_id))

        return await anyio.to_thread.run_sync(read)
