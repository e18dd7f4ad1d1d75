"""The ``batch`` execution mode: answers through Anthropic's Message Batches API (half price).

One run in batch mode sends **one** Message Batch holding a request per question still to answer
(built by :func:`rag_core.answer.batches_api.batch_requests`, so the prompts are identical to the
sequential/async modes), stores the batch id in the run's config
(``config["batch_id"]``, every id it ever used in ``config["batch_ids"]``) *before* it waits, polls
the batch with a bounded backoff until it has ended, then streams the results and saves each
answer the moment it is read. Because the id is stored first, a run whose process died (or whose
deadline passed) is resumed by polling **the same batch** again: :func:`run_batch_generation`
never creates a second batch while the stored one can still deliver.

Where it runs — the run's coordinator thread, with the **sync** ``anthropic.Anthropic`` client.
Batch mode makes a handful of short HTTP calls spaced seconds to minutes apart, then reads one
JSONL stream; the coordinator thread (one per run, see :mod:`rag_core.runs.executor`) has nothing else
to do meanwhile. Sleeping there is a ``threading.Event.wait`` on the run's cancel event, so a
cancel wakes it at once, and the SQLite writes per result stay off the engine's loop thread. Doing
it on the loop thread instead would need the async client, a cancellable task and a bridge back to
the run handle, for no gain: nothing here benefits from concurrency.

Outcomes per question (what is stored with :meth:`HistoryStore.save_answer`):

- ``succeeded`` → the answer with its tokens (``latency_s`` None: a batch has no per-request timing;
  ``attempts`` 1).
- ``errored`` → an error naming the API's error type, ``error_kind`` the matching
  :mod:`rag_core.errors` class name (e.g. ``"BadRequestError"``).
- ``expired`` → an error saying the batch hit Anthropic's 24 h limit (``"RequestTimeoutError"``).
- ``canceled`` → nothing is stored: the question stays pending, so a resume asks for it again (the
  same rule as cancelled items of the async mode). On a resume, questions the stored batch did not
  answer (cancelled, or missing from it) go into one new batch.

Run outcomes (:attr:`BatchRunOutcome.status`): ``"ok"``; ``"cancelled"`` (the user cancelled:
the batch is cancelled at Anthropic, and whatever it had finished by then is collected if it ends
within :attr:`~rag_core.answer.batches_api.BatchPolling.cancel_wait_s`); ``"interrupted"`` (the run deadline passed or the API
stayed unreachable while the batch was still processing: it keeps going at Anthropic and a resume
collects it). Fatal errors (rejected key, endpoint missing, batch refused) raise
:class:`~rag_core.errors.RagError` subclasses; SDK errors are mapped by
:func:`rag_core.answer.api_errors.map_api_error`.

Cost: batch requests cost half the normal price (:data:`BATCH_DISCOUNT`); the executor's summary
applies it to runs whose mode is ``"batch"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag_core.answer.batches_api import (
    BatchNotFoundError,
    BatchPolling,
    BatchStatus,
    MessageBatchClient,
    batch_requests,
    errored_result,
    index_of,
)
from rag_core.engine import Progress
from rag_core.errors import RagError
from rag_core.models import Answer, ScoredChunk
from rag_core.summary import BATCH_DISCOUNT

if TYPE_CHECKING:
    from rag_core.settings import Settings
    from rag_core.storage import HistoryStore

__all__ = [
    "BATCH_DISCOUNT",
    "BatchProgress",
    "BatchRunOutcome",
    "remember_batch",
    "run_batch_generation",
]

log = logging.getLogger(__name__)

MAX_POLLS = 100_000
"""Hard bound on status polls of one batch (the run deadline normally ends the wait first)."""
RESULT_STREAM_ATTEMPTS = 3
"""Times the results stream is (re)read when it breaks off; saved answers are not read twice."""
PHASES = ("batch-submit", "batch-wait", "batch-collect")
"""The run phases of batch mode, in order (shown by :class:`~rag_core.runs.request.RunProgress`)."""


@dataclass
class BatchRunOutcome:
    """What :func:`run_batch_generation` did."""

    status: str
    """``"ok"``, ``"cancelled"`` or ``"interrupted"``."""
    batch_ids: list[str] = field(default_factory=list)
    """Batches polled or created by this call, in order."""
    created: int = 0
    """Batches created by this call (0 when a resume found its stored batch)."""
    saved: dict[str, int] = field(default_factory=dict)
    """Questions stored per outcome: ``succeeded``/``errored``/``expired``/``missing``; plus
    ``canceled`` (left pending)."""
    wait_s: float = 0.0
    """Seconds spent waiting for batches to end."""
    message: str = ""
    """Why the run stopped early (``"interrupted"``/``"cancelled"``); ``""`` when it did not."""

    def generation_info(self) -> dict[str, Any]:
        """Keys merged into ``summary["generation"]`` of the run."""
        return {
            "batch": {
                "ids": list(self.batch_ids),
                "created": self.created,
                "wait_s": self.wait_s,
                "results": dict(self.saved),
                "status": self.status,
                "message": self.message,
            }
        }


# --- progress for the run page -----------------------------------------------------------------
class BatchProgress:
    """Progress of a batch-mode generation, in the engine's :class:`Progress` shape.

    The run handle shows it like an engine batch: ``total`` questions, ``done`` = results stored,
    ``in_flight`` = requests Anthropic reports as still processing, ``concurrency_limit`` 0
    (Anthropic schedules a batch itself). Thread-safe.
    """

    def __init__(self, total: int) -> None:
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self.total = int(total)
        self.ok = 0
        self.errors = 0
        self.in_flight = 0
        self.retries = 0
        self.cancelled = False
        self.batch_status: BatchStatus | None = None

    def progress(self) -> Progress:
        with self._lock:
            end = self._t_end if self._t_end is not None else time.perf_counter()
            return Progress(
                total=self.total,
                done=self.ok + self.errors,
                ok=self.ok,
                errors=self.errors,
                in_flight=self.in_flight,
                retries=self.retries,
                elapsed_s=end - self._t0,
                throttled_s=0.0,
                concurrency_limit=0,
                cancelled=self.cancelled,
                finished=self._t_end is not None,
            )

    def cancel(self) -> None:
        """Mark cancelled (the coordinator sees the run's cancel event and cancels the batch)."""
        with self._lock:
            self.cancelled = True

    def done(self) -> bool:
        return self._t_end is not None

    # -- updates (coordinator thread) --------------------------------------------------------
    def _status(self, st: BatchStatus) -> None:
        with self._lock:
            self.batch_status = st
            self.in_flight = st.processing

    def _count(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.ok += 1
            else:
                self.errors += 1

    def _retry(self) -> None:
        with self._lock:
            self.retries += 1

    def _finish(self) -> None:
        with self._lock:
            self.in_flight = 0
            if self._t_end is None:
                self._t_end = time.perf_counter()


# --- the run ---------------------------------------------------------------------------------------
def run_batch_generation(
    *,
    run_id: int,
    store: HistoryStore,
    settings: Settings,
    answerer: Any,
    questions: Sequence[str],
    todo: Sequence[int],
    contexts: Sequence[Sequence[ScoredChunk]],
    answers: dict[int, Answer],
    stop: threading.Event,
    tracker: BatchProgress | None = None,
    on_phase: Callable[[str], None] | None = None,
    polling: BatchPolling | None = None,
    client: MessageBatchClient | None = None,
    on_created: Callable[[int, str], None] | None = None,
) -> BatchRunOutcome:
    """Answer questions ``todo`` (indices into ``questions``/``contexts``) through Message Batches.

    ``answerer`` is the run's :class:`~rag_core.answer.claude.ClaudeAnswerer` (its ``model`` and
    ``max_tokens`` are used, and its message→answer conversion). Answers are saved to ``store`` as
    they are read and added to ``answers``; ``stop`` is the run's cancel event. Blocks the calling
    thread until the batch has ended and is collected, ``stop`` is set (then the batch is cancelled
    at Anthropic), or the run deadline (``settings.run_deadline_s``) passes.

    When the run's config already holds a ``batch_id`` (a resume) that batch is polled and
    collected instead of creating one; a new batch is created only for questions it did not answer
    (cancelled or absent), or when it no longer exists. Raises :class:`RagError` subclasses for
    fatal problems (rejected key, batches API missing, batch refused); the batch id is stored
    before any wait, so nothing is lost. ``polling`` defaults to :class:`BatchPolling`'s defaults;
    ``on_created(run_id, batch_id)`` is called right after a new batch id is stored.
    """
    polling = polling or BatchPolling()
    tracker = tracker or BatchProgress(len(todo))
    phase = on_phase or (lambda _p: None)
    deadline = time.monotonic() + float(settings.run_deadline_s)
    own_client = client is None
    client = client or MessageBatchClient(settings, model=answerer.model)
    out = BatchRunOutcome(status="ok")
    pending = list(todo)  # questions without a stored outcome
    try:
        batch_id: str | None = str(store.get_run(run_id).config.get("batch_id") or "") or None
        created_here = False
        for _round in range(2):  # the stored batch (if any), then at most one new batch
            if batch_id is None:
                if not pending:
                    break
                phase("batch-submit")
                requests = batch_requests(
                    [(i, questions[i], contexts[i]) for i in pending],
                    model=answerer.model,
                    max_tokens=answerer.max_tokens,
                    system_prompt=getattr(answerer, "system_prompt", None),
                    instructions=getattr(answerer, "instructions", ""),
                    temperature=getattr(answerer, "temperature", None),
                    cache=settings.prompt_cache,
                )
                st = client.create(requests)
                batch_id, created_here = st.id, True
                out.created += 1
                remember_batch(store, run_id, batch_id)
                tracker._status(st)
                log.info("run %s: created message batch %s with %d requests", run_id, batch_id, len(requests))
                if on_created is not None:
                    on_created(run_id, batch_id)
            out.batch_ids.append(batch_id)

            phase("batch-wait")
            t_wait = time.monotonic()
            try:
                st_or_reason = _wait(client, batch_id, tracker, stop, deadline, polling)
            except BatchNotFoundError:
                if created_here:
                    raise
                log.warning(
                    "run %s: stored batch %s no longer exists; submitting a new one", run_id, batch_id
                )
                batch_id = None
                continue
            finally:
                out.wait_s += time.monotonic() - t_wait
            if isinstance(st_or_reason, str):  # "cancel" | "deadline" | "unreachable"
                if st_or_reason != "cancel":
                    out.status = "interrupted"
                    out.message = _interrupted_message(batch_id, st_or_reason, settings)
                    return out
                out.status = "cancelled"
                out.message = (
                    "Cancelled: the message batch was cancelled at Anthropic; finished answers are kept."
                )
                ended = _cancel_and_settle(client, batch_id, tracker, polling)
                if ended is None:
                    out.message += (
                        " It had not ended within "
                        f"{polling.cancel_wait_s:g} s; resume the run to collect what it finished."
                    )
                    return out
            phase("batch-collect")
            pending = _collect(
                client, batch_id, run_id, store, settings, answerer, pending, contexts, answers, tracker, out
            )
            if out.status == "cancelled" or not pending:
                break
            if created_here:
                # Our own fresh batch did not cover these questions: do not loop on it.
                for i in pending:
                    store.save_answer(
                        run_id,
                        i,
                        answer=None,
                        contexts=[c.to_dict() for c in contexts[i]],
                        error=(
                            "The message batch returned no result for this question. "
                            "Resume the run to ask again."
                        ),
                        error_kind="GenerationError",
                        attempts=1,
                        model=answerer.model,
                    )
                    tracker._count(ok=False)
                out.saved["missing"] = out.saved.get("missing", 0) + len(pending)
                pending = []
                break
            batch_id = None  # the stored batch left questions unanswered: one new batch for them
        return out
    finally:
        tracker._finish()
        if own_client:
            client.close()


def remember_batch(store: HistoryStore, run_id: int, batch_id: str, *, key: str = "batch_ids") -> None:
    """Store a batch id in the run's config list ``key`` (``update_run`` replaces the dict, so merge
    first). For the answers' batch (``key="batch_ids"``) it also becomes ``config["batch_id"]``,
    the one a resume polls; the judge's round batches go to ``"judge_batch_ids"``."""
    with _REMEMBER_LOCK:
        cfg = dict(store.get_run(run_id).config)
        ids = [str(x) for x in cfg.get(key) or []]
        if batch_id not in ids:
            ids.append(batch_id)
        extra = {"batch_id": batch_id} if key == "batch_ids" else {}
        store.update_run(run_id, config=cfg | extra | {key: ids})


_REMEMBER_LOCK = threading.Lock()


def _interrupted_message(batch_id: str, reason: str, settings: Settings) -> str:
    why = (
        f"the run's deadline of {float(settings.run_deadline_s):g} s passed (RAG_RUN_DEADLINE)"
        if reason == "deadline"
        else "the Anthropic API could not be reached repeatedly"
    )
    return (
        f"Stopped waiting for message batch {batch_id}: {why}. The batch keeps processing at "
        "Anthropic (up to 24 h); resume the run later to collect its answers — no new batch is sent."
    )


def _wait(
    client: MessageBatchClient,
    batch_id: str,
    tracker: BatchProgress,
    stop: threading.Event,
    deadline: float,
    polling: BatchPolling,
) -> BatchStatus | str:
    """Poll until the batch ends (→ its status) or ``"cancel"``/``"deadline"``/``"unreachable"``.

    Retryable poll failures are retried within the same backoff; ``polling.max_failures``
    consecutive ones give ``"unreachable"``. Fatal/non-retryable errors are raised.
    """
    delay = polling.initial_s
    failures = 0
    for _ in range(MAX_POLLS):
        if stop.is_set():
            return "cancel"
        try:
            st = client.retrieve(batch_id)
        except RagError as exc:
            if isinstance(exc, BatchNotFoundError) or exc.fatal or not exc.retryable:
                raise
            failures += 1
            tracker._retry()
            log.warning("polling batch %s failed (%d in a row): %s", batch_id, failures, exc)
            if failures >= polling.max_failures:
                return "unreachable"
        else:
            failures = 0
            tracker._status(st)
            if st.ended:
                return st
        left = deadline - time.monotonic()
        if left <= 0:
            return "deadline"
        if stop.wait(min(delay, left)):
            return "cancel"
        delay = min(polling.max_s, delay * polling.factor)
    return "deadline"


def _cancel_and_settle(
    client: MessageBatchClient, batch_id: str, tracker: BatchProgress, polling: BatchPolling
) -> BatchStatus | None:
    """Cancel the batch and wait up to ``cancel_wait_s`` for it to end; its status, or None."""
    try:
        st = client.cancel(batch_id)
    except RagError as exc:
        log.warning("cancelling batch %s failed: %s", batch_id, exc)
        st = None
    until = time.monotonic() + polling.cancel_wait_s
    delay = min(polling.initial_s, 1.0)
    for _ in range(MAX_POLLS):
        if st is not None:
            tracker._status(st)
            if st.ended:
                return st
        left = until - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(polling.max_s, delay * polling.factor)
        try:
            st = client.retrieve(batch_id)
        except RagError as exc:
            log.warning("checking cancelled batch %s failed: %s", batch_id, exc)
            st = None
    return None


def _collect(
    client: MessageBatchClient,
    batch_id: str,
    run_id: int,
    store: HistoryStore,
    settings: Settings,
    answerer: Any,
    pending: list[int],
    contexts: Sequence[Sequence[ScoredChunk]],
    answers: dict[int, Answer],
    tracker: BatchProgress,
    out: BatchRunOutcome,
) -> list[int]:
    """Save the results of an ended batch for the ``pending`` questions; return those still pending
    (cancelled at Anthropic, or absent from the batch)."""
    wanted = set(pending)
    handled: set[int] = set()
    secret = settings.api_key.get()
    for attempt in range(1, RESULT_STREAM_ATTEMPTS + 1):
        try:
            for cid, result in client.results(batch_id):
                i = index_of(cid)
                if i is None or i not in wanted or i in handled:
                    continue
                handled.add(i)
                kind = str(getattr(result, "type", ""))
                ctx = [c.to_dict() for c in contexts[i]]
                if kind == "canceled":
                    out.saved["canceled"] = out.saved.get("canceled", 0) + 1
                    handled.discard(i)  # stays pending
                    wanted.discard(i)
                    continue
                if kind == "succeeded":
                    try:
                        ans: Answer = answerer._to_answer(result.message, None)
                    except RagError as exc:
                        _save_error(store, run_id, i, ctx, str(exc), exc.kind, answerer.model)
                        tracker._count(ok=False)
                        out.saved["errored"] = out.saved.get("errored", 0) + 1
                        continue
                    store.save_answer(
                        run_id,
                        i,
                        answer=ans.text,
                        contexts=ctx,
                        error=None,
                        error_kind=None,
                        latency_s=None,
                        attempts=1,
                        input_tokens=ans.input_tokens,
                        output_tokens=ans.output_tokens,
                        model=ans.model,
                    )
                    answers[i] = ans
                    tracker._count(ok=True)
                    out.saved["succeeded"] = out.saved.get("succeeded", 0) + 1
                elif kind == "expired":
                    _save_error(
                        store,
                        run_id,
                        i,
                        ctx,
                        "The message batch expired (Anthropic's 24 h limit) before this question "
                        "was processed. Run it again.",
                        "RequestTimeoutError",
                        answerer.model,
                    )
                    tracker._count(ok=False)
                    out.saved["expired"] = out.saved.get("expired", 0) + 1
                else:  # errored (or a result type this code does not know)
                    msg, ekind = errored_result(result, secret)
                    _save_error(store, run_id, i, ctx, msg, ekind, answerer.model)
                    tracker._count(ok=False)
                    out.saved["errored"] = out.saved.get("errored", 0) + 1
            break
        except RagError as exc:
            if exc.fatal or not exc.retryable or attempt == RESULT_STREAM_ATTEMPTS:
                raise
            log.warning("reading batch %s results broke off (attempt %d): %s", batch_id, attempt, exc)
            tracker._retry()
            time.sleep(min(2.0**attempt * 0.25, 5.0))
    return [i for i in pending if i not in handled]


def _save_error(
    store: HistoryStore, run_id: int, i: int, ctx: list[dict[str, Any]], message: str, kind: str, model: str
) -> None:
    store.save_answer(
        run_id,
        i,
        answer=None,
        contexts=ctx,
        error=message,
        error_kind=kind,
        latency_s=None,
        attempts=1,
        model=model,
    )
