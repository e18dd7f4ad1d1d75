"""One evaluation run: retrieve, generate, score — stored as it goes, resumable.

Rules
- :func:`start_run` validates the request, creates the run record and returns a
  :class:`~rag_core.runs.handle.RunHandle` at once. The run is coordinated by one short-lived
  thread that only waits; every remote or slow call (answers, judge calls) runs on the engine's
  single event-loop thread through :meth:`Engine.submit`, which bounds concurrency and owns
  retries. (The coordinator is a thread, not a task on the loop, because ``Engine.submit`` blocks
  on the portal and must not be called from the loop thread itself.)
- A run that talks to Claude holds the engine's gate of its API key (:meth:`Engine.gate`,
  :func:`~rag_core.answer.claude.gate_key`) from start to end: the async answer pass and the judge
  calls each take one slot per call from it, so together they never exceed the run's concurrency
  and a 429 seen by either slows both (AIMD). Retries are counted per pass, per metric and per
  error kind into the attempt's notes (``RunSummary.retries``), not logged line by line.
- A fatal judge error (rejected key, missing model) stops scoring at once and fails the run with
  its message. In batch mode the judge calls go through Message Batch rounds too; their batch ids
  are stored in the run's config (``judge_batch_ids``) before any wait, so a resume reuses them.
- The handle is registered in ``engine.runs`` under ``(database, run id)`` while the run executes
  and dropped the moment it ends: afterwards the outcome is read from the history store.
- Everything finished is written to the store the moment it finishes: a crash or a cancel loses
  nothing that was done, and :func:`resume_run` redoes only what is missing or failed.
- Each execution of a run (the first and every resume) is an *attempt* with its own
  :class:`~rag_core.usage.AttemptLedger`: Claude requests are counted when sent and phase times
  as they pass, and the ledger is written to the store every :data:`HEARTBEAT_S` seconds and at
  the end. The run's :class:`~rag_core.summary.RunSummary` is then computed from the stored
  scores and every attempt's ledger (:mod:`rag_core.runs.summary`), so compare runs bill both
  passes and resumed or crashed runs report the sum of all their attempts.
- A write that fails stops the run: the first :class:`~rag_core.errors.RagError` from storing an
  answer, a score or the attempt ledger (disk full, read-only file, lost lock) is kept, the work in
  progress is cancelled, and the run ends ``failed`` with that reason. Each write is one
  transaction, so nothing is half-written; what was stored is kept and :func:`resume_run` redoes
  the rest. If even the final status cannot be written, the handle still ends ``failed`` with a
  message saying so (its summary is ``None``), so callers never report such a run as passed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterable
from typing import Any

from rag_core.engine import BatchPolicy, CallRecord, Engine, Gate, get_engine
from rag_core.errors import (
    GenerationError,
    InputError,
    RagError,
    RetrievalError,
    StorageError,
)
from rag_core.experiment import AssistantConfig
from rag_core.models import DEFAULT_COLLECTION, Answer, QAItem, ScoredChunk
from rag_core.runs.generation import GenerationPhase
from rag_core.runs.handle import RunHandle
from rag_core.runs.passes import RetryNotes
from rag_core.runs.request import RunOptions, RunRequest
from rag_core.runs.reuse import BuildProgress, ReuseCache, fetch_contexts
from rag_core.runs.scoring_phase import ScoringPhase
from rag_core.runs.summary import build_summary, with_quality
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.summary import RunSummary
from rag_core.usage import AttemptLedger
from rag_core.vocab import Backend, Mode, Phase, Retrieval, RunStatus, Suite

__all__ = [
    "HEARTBEAT_S",
    "documents_used",
    "live_handle",
    "live_runs",
    "make_answerer",
    "recover_interrupted",
    "resume_run",
    "retrieve_contexts",
    "start_run",
    "store_key",
    "summarize_run",
]

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
"""How often a running attempt's ledger (requests sent, phase times) is written to the store."""


# --------------------------------------------------------------------------------------------
# The registry of live runs (owned by the engine)
# --------------------------------------------------------------------------------------------
def store_key(store: HistoryStore) -> str:
    """The namespace of a store's runs in ``engine.runs`` (its database)."""
    return str(store.location)


def _alive(engine: Engine, ns: str, h: Any) -> bool:
    """A registered run is live unless it ended or its coordinator thread died without ending it
    (then it is dropped here: its record stays ``running`` until marked interrupted)."""
    if not isinstance(h, RunHandle) or h.done():
        return False
    if h.thread is not None and not h.thread.is_alive() and h.thread.ident is not None:
        engine.runs.drop(ns, h.run_id, h)
        return False
    return True


def live_handle(engine: Engine, store: HistoryStore, run_id: int) -> RunHandle | None:
    """The handle of a run of ``store`` executing in this process, or None."""
    ns = store_key(store)
    h = engine.runs.get(ns, run_id)
    return h if _alive(engine, ns, h) else None


def live_runs(engine: Engine, store: HistoryStore) -> list[RunHandle]:
    """Handles of ``store``'s runs executing in this process."""
    ns = store_key(store)
    return [h for _, h in engine.runs.live(ns) if _alive(engine, ns, h)]


# --------------------------------------------------------------------------------------------
# Answerers and retrieval (imported lazily: the embedding model and SDK load only when needed)
# --------------------------------------------------------------------------------------------
def make_answerer(
    backend: Backend, settings: Settings, config: AssistantConfig | None = None, *, embedder: Any = None
) -> Any:
    """The answerer for ``backend``: the offline extractive one or Claude (with ``config``'s model,
    prompts, temperature and max tokens; the settings' when None). The offline answerer uses none of
    them (``embedder`` is its sentence embedder; the shared one when None)."""
    if backend == Backend.CLAUDE:
        from rag_core.answer.claude import ClaudeAnswerer

        if config is None:
            return ClaudeAnswerer(settings)
        return ClaudeAnswerer(
            settings,
            model=config.answer_model,
            max_tokens=config.max_tokens,
            system_prompt=config.system_prompt,
            instructions=config.instructions,
            temperature=config.temperature,
        )
    from rag_core.answer.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer(embedder)


def retrieve_contexts(
    settings: Settings, questions: list[str], top_k: int, collection: str = DEFAULT_COLLECTION
) -> list[list[ScoredChunk]]:
    """The ``top_k`` chunks of ``collection`` for each question. Raises :class:`RetrievalError` when
    the embedded index's folder is missing (opening it would create an empty one and every question
    would be answered from nothing) or was replaced while open (see :mod:`rag_core.ingest.index`)."""
    from rag_core.ingest.index import PolicyIndex, index_folder_problem, index_identity
    from rag_core.ingest.retrieval import retrieve

    if not settings.chroma_host and index_identity(settings) is None:
        raise RetrievalError(index_folder_problem(settings, missing=True))
    with PolicyIndex(settings) as index:
        return retrieve(index, questions, top_k, collection)


def documents_used(store: HistoryStore, collection: str) -> list[dict[str, Any]]:
    """The exact documents a run of ``collection`` retrieves from, as stored with the run:
    ``[{"name", "version", "sha256"}]`` sorted by name."""
    return [
        {"name": d.name, "version": d.version, "sha256": d.sha256} for d in store.list_documents(collection)
    ]


# --------------------------------------------------------------------------------------------
# Starting and running
# --------------------------------------------------------------------------------------------
def start_run(
    request: RunRequest,
    *,
    settings: Settings,
    store: HistoryStore,
    engine: Engine | None = None,
    resume_of: int | None = None,
    options: RunOptions | None = None,
    reuse: ReuseCache | None = None,
    sweep_id: int | None = None,
) -> RunHandle:
    """Validate, create the run record, and start it in the background. Returns at once.

    ``options`` (:class:`~rag_core.runs.request.RunOptions`) tune how it executes (fixed
    concurrency for benchmarks, batch polling). ``reuse`` shares retrievals, answers and scores
    with the other runs of a sweep (``sweep_id``). The run's identity (configuration version,
    question-set version, documents, code) is stored with it when it is created. Raises
    :class:`InputError` for a request that cannot run (nothing is stored then).
    """
    request.check(settings)
    engine = engine or get_engine()
    # Callers (Workspace, CLI) refuse an empty collection before getting here.
    documents = documents_used(store, request.collection)
    if resume_of is None:
        from rag_core.runs.identity import capture_identity

        identity = capture_identity(store, settings, request, sweep_id=sweep_id)
        run_id = store.create_run(
            question_set=request.question_set,
            backend=str(request.backend),
            mode=str(request.mode),
            suite=str(request.suite),
            config={**request.config(), "documents": documents},
            items=list(request.items),
        )
        store.set_run_identity(run_id, identity)
        if request.run_name or request.note:
            store.label_run(run_id, name=request.run_name, note=request.note)
    else:
        run_id = resume_of
        store.update_run(run_id, status=RunStatus.RUNNING)
        config = store.get_run(run_id).config
        if config.get("documents") != documents:  # answers of this attempt come from these versions
            store.update_run(
                run_id,
                config={
                    **config,
                    "documents": documents,
                    "documents_before_resume": config.get("documents"),
                },
            )
    handle = RunHandle(run_id)
    ns = store_key(store)
    engine.runs.add(ns, run_id, handle)
    handle.add_done_callback(lambda h: engine.runs.drop(ns, run_id, h))
    handle.thread = threading.Thread(
        target=_Coordinator(
            handle, request, settings, store, engine, resume_of is not None, options, reuse
        ).run,
        name=f"run-{run_id}",
        daemon=True,
    )
    handle.thread.start()
    return handle


class _Coordinator(GenerationPhase, ScoringPhase):
    """Runs the phases of one attempt of a run on its own thread (see the module rules)."""

    def __init__(
        self,
        handle: RunHandle,
        req: RunRequest,
        settings: Settings,
        store: HistoryStore,
        engine: Engine,
        resuming: bool,
        options: RunOptions | None = None,
        reuse: ReuseCache | None = None,
    ) -> None:
        self.handle, self.req, self.settings = handle, req, settings
        self.options = options or RunOptions()
        self.reuse = reuse
        self.assistant = req.pinned_assistant(settings).config
        self.store, self.engine, self.resuming = store, engine, resuming
        self.run_id = handle.run_id
        self.ledger = AttemptLedger()
        self.attempt = 0
        self.gate: Gate | None = None
        self.retries = RetryNotes()
        self._fault: RagError | None = None  # the first write that failed (see the module rules)
        self._fault_lock = threading.Lock()

    # -- failed writes -----------------------------------------------------------------------------
    def _write_failed(self, exc: Exception, what: str) -> None:
        """Keep the first failed write and stop the run (any thread, including the loop thread)."""
        fault = (
            exc
            if isinstance(exc, RagError)
            else StorageError(f"Unexpected error: {type(exc).__name__}: {exc}")
        )
        with self._fault_lock:
            if self._fault is not None:
                return
            self._fault = fault
        log.error("run %s: could not store %s; stopping the run: %s", self.run_id, what, fault)
        self.handle.cancel()  # stops the current batch; the run then ends as failed, not cancelled

    def _failure_text(self) -> str:
        assert self._fault is not None
        return (
            f"The run was stopped because a result could not be stored: {self._fault} "
            "Everything stored before that is kept; resume the run once the problem is fixed."
        )

    def _save_ledger(self, snap: dict[str, Any]) -> None:
        try:
            self.store.save_attempt(self.run_id, self.attempt, snap)
        except RagError as exc:
            self._write_failed(exc, "the run's progress")
            raise

    # -- the attempt -------------------------------------------------------------------------------
    def run(self) -> None:
        status, failure = RunStatus.COMPLETED, None
        stop_heartbeat = threading.Event()
        try:
            self.attempt = self.store.start_attempt(self.run_id)
            self.ledger.attach(self._save_ledger)
            threading.Thread(
                target=self._heartbeat, args=(stop_heartbeat,), name=f"run-{self.run_id}-ledger", daemon=True
            ).start()
            with self._run_gate() as gate:
                self.gate = gate
                status = self._phases()
        except RagError as exc:
            log.warning("run %s failed: %s", self.run_id, exc)
            status, failure = RunStatus.FAILED, str(exc)
        except Exception as exc:  # a bug: keep the run visible as failed, with the reason
            log.exception("run %s crashed", self.run_id)
            status, failure = RunStatus.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}"
        finally:
            stop_heartbeat.set()
        if self._fault is not None:  # a failed write stopped the run: that is the reason, not "cancelled"
            status, failure = RunStatus.FAILED, self._failure_text()
        self.ledger.phase(None)
        if failure:
            self.handle.set(message=failure)
            self.ledger.note(failure=failure)
        summary: RunSummary | None = None
        try:
            if self.attempt:
                self.store.save_attempt(self.run_id, self.attempt, self.ledger.snapshot(), ended=True)
            summary = summarize_run(self.store, self.run_id, self.settings, status=status, failure=failure)
            self.store.update_run(
                self.run_id, status=status, timings=summary.timings.to_json(), summary=summary, finished=True
            )
        except RagError as exc:  # storage failed at the very end: say so; never look like a pass
            log.error("could not finalise run %s: %s", self.run_id, exc)
            status, summary = RunStatus.FAILED, None
            try:  # a smaller write may still fit (e.g. the disk is full but the row is not growing)
                self.store.update_run(self.run_id, status=RunStatus.FAILED, finished=True)
            except RagError:
                log.error("run %s: its status could not be saved either", self.run_id)
            lead = f"{failure} " if failure else ""
            self.handle.set(message=f"{lead}The run's final result could not be saved: {exc}")
        self.handle.finish(status, summary)

    def _run_gate(self) -> contextlib.AbstractContextManager[Gate | None]:
        """The engine gate of the run's API key, when the run talks to Claude (else no gate)."""
        req = self.req
        if not self.settings.has_key or (req.backend != Backend.CLAUDE and req.suite != Suite.JUDGE):
            return contextlib.nullcontext(None)
        from rag_core.answer.claude import gate_key

        return self.engine.gate(
            gate_key(self.settings), concurrency=req.concurrency, adaptive=self.options.adaptive
        )

    def _note_retries(self, kind: str, calls: Iterable[tuple[str | None, CallRecord]]) -> None:
        """Count a pass's calls into the attempt's ``retries`` note (summed by the run summary)."""
        self.retries.add(kind, calls)
        self.ledger.note(retries=self.retries.to_json())

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self._save_ledger(self.ledger.snapshot())
            except RagError:
                break  # the run is being stopped (see _write_failed)
        self.ledger.attach(None)  # the final snapshot is written by run()

    def _phases(self) -> RunStatus:
        req, store, handle = self.req, self.store, self.handle
        prior = store.get_results(self.run_id) if self.resuming else []
        # Resuming redoes every question without an answer: unfinished ones and failed ones.
        todo = [i for i in range(len(req.items)) if not self.resuming or prior[i].answer is None]

        # ---- retrieval (one batched embed + query) ---------------------------------------------
        handle.set(phase=Phase.RETRIEVAL)
        self.ledger.phase(Phase.RETRIEVAL)
        contexts: list[list[ScoredChunk]] = [[] for _ in req.items]
        if todo:
            got = self._retrieve([req.items[i].question for i in todo])
            for i, ctx in zip(todo, got, strict=True):
                contexts[i] = ctx
        self.ledger.phase(None)

        # ---- generation ------------------------------------------------------------------------
        answers: dict[int, Answer] = {}
        for r in prior:
            if r.answer is not None:
                answers[r.index] = Answer(
                    text=r.answer,
                    model=r.model or "",
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                )
                contexts[r.index] = [ScoredChunk.from_dict(c) for c in r.contexts]
        if self.reuse is not None and not handle.cancelled:
            todo = self._reuse_answers(todo, contexts, answers)
        if todo and not handle.cancelled:
            answerer = make_answerer(
                req.backend,
                self.settings,
                self.assistant,
                embedder=self.reuse.embedder if self.reuse else None,
            )
            outcome = self._generate(answerer, todo, contexts, answers)
            self.ledger.phase(None)
            if self.reuse is not None:
                self._remember_answers(todo, contexts, answers)
            if outcome != RunStatus.COMPLETED:
                return outcome
            if not answers:
                # Nothing was answered (e.g. the key was rejected): a "completed" run with every
                # score missing would let CI pass; fail with the first error instead.
                first = next((r.error for r in store.get_results(self.run_id) if r.error), "no answers")
                raise GenerationError(f"No question could be answered: {first}")

        # ---- evaluation ------------------------------------------------------------------------
        if handle.cancelled:
            return RunStatus.CANCELLED
        if req.suite != Suite.NONE:
            self.ledger.phase(Phase.EVALUATION)
            try:
                stopped = self._evaluate(answers, contexts)
            finally:
                self.ledger.phase(None)
            if stopped is not None:
                return stopped
        return RunStatus.CANCELLED if handle.cancelled else RunStatus.COMPLETED

    # -- retrieval and reuse (assistant configurations, sweeps) --------------------------------------
    def _retrieve(self, questions: list[str]) -> list[list[ScoredChunk]]:
        """The configuration's retrieval; its chunked index is built first when it does not exist
        yet (phase ``indexing``, with progress)."""
        cfg = self.assistant
        plain = (cfg.chunk_size, cfg.chunk_overlap) == (self.settings.chunk_size, self.settings.chunk_overlap)
        collection = self.req.collection
        if self.reuse is None and plain and cfg.retrieval == Retrieval.SIMILARITY:
            # the app's own index, as ever
            return retrieve_contexts(self.settings, questions, cfg.top_k, collection)
        if collection != DEFAULT_COLLECTION:
            raise InputError(
                "Configurations with their own chunking or MMR retrieval, and sweeps, search the "
                f"default collection only for now; the question set is bound to '{collection}'. "
                "Use a configuration with the app's chunk size and similarity retrieval."
            )
        tracker = BuildProgress()

        def on_build(done: int, total: int, name: str) -> None:
            if done == 0:
                self.handle.set(phase=Phase.INDEXING, handle=tracker)
                self.ledger.phase(Phase.INDEXING)
            tracker.update(done, total, name)
            if done >= total:
                self.handle.set(phase=Phase.RETRIEVAL, handle=None)
                self.ledger.phase(Phase.RETRIEVAL)

        return fetch_contexts(
            self.settings,
            self.assistant,
            questions,
            reuse=self.reuse,
            embedder=self.reuse.embedder if self.reuse else None,
            on_build=on_build,
        )

    def _policy(self, concurrency: int) -> BatchPolicy:
        policy = BatchPolicy.from_settings(self.settings, concurrency=concurrency)
        return policy if self.options.adaptive else dataclasses.replace(policy, adaptive=False)


# --------------------------------------------------------------------------------------------
# Summary, crash recovery, resume
# --------------------------------------------------------------------------------------------
def summarize_run(
    store: HistoryStore,
    run_id: int,
    settings: Settings,
    *,
    status: RunStatus | None = None,
    failure: str | None = None,
) -> RunSummary:
    """The run's summary computed from the store now (works for running and interrupted runs).

    Runs recorded before attempt ledgers existed return the summary they stored (with the
    headline and declines computed now). The headline reflects the analyst's verdicts as stored now.
    Raises :class:`InputError` when there is no such run.
    """
    run = store.get_run(run_id)
    attempts = store.get_attempts(run_id)
    results = store.get_results(run_id)
    verdicts = store.get_verdicts(run_id)
    if not attempts and run.summary is not None and status is None:
        return with_quality(run.summary, results, verdicts)
    return build_summary(run, results, attempts, settings, status=status, failure=failure, verdicts=verdicts)


def recover_interrupted(store: HistoryStore, settings: Settings, engine: Engine | None = None) -> list[int]:
    """Mark runs whose process died mid-run as ``interrupted`` and store their summaries (what
    they did and spent until then); returns their ids.

    The store knows which process owns each run: runs of another live process (a second app
    server, a CLI run) are left alone, and so are this process's runs that are still going.
    """
    engine = engine or get_engine()
    ids = store.mark_interrupted(exclude={h.run_id for h in live_runs(engine, store)})
    for run_id in ids:
        try:
            summary = summarize_run(store, run_id, settings, status=RunStatus.INTERRUPTED)
            store.update_run(run_id, timings=summary.timings.to_json(), summary=summary)
        except RagError as exc:
            log.warning("run %s: could not summarise the interrupted run: %s", run_id, exc)
    return ids


def resume_run(
    run_id: int,
    *,
    settings: Settings,
    store: HistoryStore,
    engine: Engine | None = None,
    options: RunOptions | None = None,
) -> RunHandle:
    """Finish an interrupted, cancelled or failed run: redo only the answers it lacks (unfinished or
    failed) and the scores it lacks (missing or failed); finished work is kept as it is."""
    engine = engine or get_engine()
    if live_handle(engine, store, run_id) is not None:
        raise InputError(f"Run #{run_id} is still running; wait for it or cancel it first.")
    run = store.get_run(run_id)
    status = RunStatus(run.status)
    if status == RunStatus.RUNNING:
        raise InputError(f"Run {run_id} is still running; wait for it or cancel it first.")
    if not status.resumable:
        raise InputError(
            f"Run {run_id} is {status}: only interrupted, cancelled or failed runs "
            "can be resumed. Start a new run to evaluate again."
        )
    results = store.get_results(run_id)
    cfg = run.config
    req = RunRequest(
        items=tuple(QAItem(r.question, r.ground_truth, r.expected) for r in results),
        backend=cfg.get("backend", run.backend),
        mode=cfg.get("mode", run.mode),
        concurrency=int(cfg.get("concurrency", 8)),
        top_k=int(cfg.get("top_k", 4)),
        suite=cfg.get("suite", run.suite),
        metrics=tuple(cfg["metrics"]) if cfg.get("metrics") else None,
        question_set=run.question_set,
        fresh=bool(cfg.get("fresh", False)),
        judge_repeats=int(cfg.get("judge_repeats", 1)),
        collection=str(cfg.get("collection") or DEFAULT_COLLECTION),
        assistant=run.identity.config if run.identity is not None else None,
    )
    if req.mode == Mode.COMPARE:  # the timing comparison cannot be resumed meaningfully
        req = req.replace(mode=Mode.ASYNC)
    return start_run(req, settings=settings, store=store, engine=engine, resume_of=run_id, options=options)
