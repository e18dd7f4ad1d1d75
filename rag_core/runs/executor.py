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
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from rag_core.engine import BatchPolicy, CallRecord, Engine, Gate, ItemResult, get_engine
from rag_core.errors import EvaluationError, GenerationError, InputError, RagError
from rag_core.models import Answer, MetricScore, QAItem, ScoredChunk
from rag_core.runs.handle import RunHandle
from rag_core.runs.passes import RetryNotes, calls_of, pass_timings
from rag_core.runs.request import RunRequest
from rag_core.runs.summary import build_summary
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.summary import RunSummary
from rag_core.usage import AttemptLedger, charging
from rag_core.vocab import Backend, Mode, Phase, RunStatus, Suite

__all__ = [
    "HEARTBEAT_S",
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
def make_answerer(backend: Backend, settings: Settings) -> Any:
    """The answerer for ``backend``: the offline extractive one or Claude."""
    if backend == Backend.CLAUDE:
        from rag_core.answer.claude import ClaudeAnswerer

        return ClaudeAnswerer(settings)
    from rag_core.answer.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer()


def retrieve_contexts(settings: Settings, questions: list[str], top_k: int) -> list[list[ScoredChunk]]:
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.retrieval import retrieve

    with PolicyIndex(settings) as index:
        return retrieve(index, questions, top_k)


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
    adaptive: bool = True,
) -> RunHandle:
    """Validate, create the run record, and start it in the background. Returns at once.

    ``adaptive=False`` keeps the concurrency fixed (no AIMD): benchmarks compare the two.
    Raises :class:`InputError` for a request that cannot run (nothing is stored then).
    """
    request.check(settings)
    engine = engine or get_engine()
    if resume_of is None:
        run_id = store.create_run(
            question_set=request.question_set,
            backend=str(request.backend),
            mode=str(request.mode),
            suite=str(request.suite),
            config=request.config(),
            items=list(request.items),
        )
    else:
        run_id = resume_of
        store.update_run(run_id, status=RunStatus.RUNNING)
    handle = RunHandle(run_id)
    ns = store_key(store)
    engine.runs.add(ns, run_id, handle)
    handle.add_done_callback(lambda h: engine.runs.drop(ns, run_id, h))
    handle.thread = threading.Thread(
        target=_Coordinator(handle, request, settings, store, engine, resume_of is not None, adaptive).run,
        name=f"run-{run_id}",
        daemon=True,
    )
    handle.thread.start()
    return handle


class _Coordinator:
    """Runs the phases of one attempt of a run on its own thread (see the module rules)."""

    def __init__(
        self,
        handle: RunHandle,
        req: RunRequest,
        settings: Settings,
        store: HistoryStore,
        engine: Engine,
        resuming: bool,
        adaptive: bool = True,
    ) -> None:
        self.handle, self.req, self.settings = handle, req, settings
        self.adaptive = adaptive
        self.store, self.engine, self.resuming = store, engine, resuming
        self.run_id = handle.run_id
        self.ledger = AttemptLedger()
        self.attempt = 0
        self.gate: Gate | None = None
        self.retries = RetryNotes()

    # -- the attempt -------------------------------------------------------------------------------
    def run(self) -> None:
        status, failure = RunStatus.COMPLETED, None
        stop_heartbeat = threading.Event()
        try:
            self.attempt = self.store.start_attempt(self.run_id)
            self.ledger.attach(lambda snap: self.store.save_attempt(self.run_id, self.attempt, snap))
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
        except RagError as exc:  # storage failed at the very end: report, keep what was written
            log.error("could not finalise run %s: %s", self.run_id, exc)
            status = RunStatus.FAILED
            self.handle.set(message=str(exc))
        self.handle.finish(status, summary)

    def _run_gate(self) -> contextlib.AbstractContextManager[Gate | None]:
        """The engine gate of the run's API key, when the run talks to Claude (else no gate)."""
        req = self.req
        if not self.settings.has_key or (req.backend != Backend.CLAUDE and req.suite != Suite.JUDGE):
            return contextlib.nullcontext(None)
        from rag_core.answer.claude import gate_key

        return self.engine.gate(gate_key(self.settings), concurrency=req.concurrency, adaptive=self.adaptive)

    def _note_retries(self, kind: str, calls: Iterable[tuple[str | None, CallRecord]]) -> None:
        """Count a pass's calls into the attempt's ``retries`` note (summed by the run summary)."""
        self.retries.add(kind, calls)
        self.ledger.note(retries=self.retries.to_json())

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self.store.save_attempt(self.run_id, self.attempt, self.ledger.snapshot())
            except RagError as exc:
                log.warning("run %s: could not record progress: %s", self.run_id, exc)
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
            got = retrieve_contexts(self.settings, [req.items[i].question for i in todo], req.top_k)
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
        if todo and not handle.cancelled:
            answerer = make_answerer(req.backend, self.settings)
            outcome = self._generate(answerer, todo, contexts, answers)
            self.ledger.phase(None)
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

    # -- generation --------------------------------------------------------------------------------
    def _policy(self, concurrency: int) -> BatchPolicy:
        policy = BatchPolicy.from_settings(self.settings, concurrency=concurrency)
        return policy if self.adaptive else dataclasses.replace(policy, adaptive=False)

    def _generate(
        self, answerer: Any, todo: list[int], contexts: list[list[ScoredChunk]], answers: dict[int, Answer]
    ) -> RunStatus:
        """Run generation in the requested mode; store each answer as it arrives."""
        req, store, handle, ledger = self.req, self.store, self.handle, self.ledger
        if req.mode == Mode.BATCH:
            return self._generate_batch(answerer, todo, contexts, answers)
        labels = [req.items[i].question[:80] for i in todo]

        def jobs(kind: str) -> list[Callable[[], Any]]:
            def job(i: int) -> Callable[[], Any]:
                async def run() -> Answer:
                    with charging(ledger, kind):
                        return await answerer.answer(req.items[i].question, contexts[i])

                return run

            return [job(i) for i in todo]

        def store_answer(r: ItemResult) -> None:
            i = todo[r.index]
            ans: Answer | None = r.value if r.status == "ok" else None
            if r.status == "cancelled":
                return  # unfinished: stays pending, resume will redo it
            if ans is not None:
                answers[i] = ans
                ledger.bump("busy_s", r.latency_s)  # Σ request latency, for the overlap estimate
            store.save_answer(
                self.run_id,
                i,
                answer=ans.text if ans else None,
                contexts=[c.to_dict() for c in contexts[i]],
                error=None if ans else (r.error or "failed"),
                error_kind=None if ans else r.error_kind,
                latency_s=r.latency_s,
                attempts=r.attempts,
                input_tokens=ans.input_tokens if ans else 0,
                output_tokens=ans.output_tokens if ans else 0,
                model=ans.model if ans else getattr(answerer, "model", None),
            )

        def run_pass(
            phase: Phase, kind: str, concurrency: int, on_result: Callable[[ItemResult], None] | None
        ) -> tuple[list[ItemResult], float]:
            ledger.phase(phase)
            # Claude's async pass takes its slots from the run's gate, one per call (shared with the
            # judge); the sequential pass and the offline answerer retry whole jobs one by one.
            gate = self.gate if concurrency > 1 and req.backend == Backend.CLAUDE else None
            h = self.engine.submit(
                jobs(kind), labels=labels, policy=self._policy(concurrency), on_result=on_result, gate=gate
            )
            handle.set(phase=phase, handle=h)
            if handle.cancelled:
                h.cancel()
            results = h.wait()
            ledger.phase(None)
            wall = h.progress().elapsed_s
            store.save_requests(self.run_id, pass_timings(results, todo, phase, labels))
            if req.backend == Backend.CLAUDE:
                self._note_retries(kind, ((None, c) for r in results for c in calls_of(r)))
            return results, wall

        notes: dict[str, Any] = {"n_requests": len(todo)}
        if req.mode in (Mode.SEQUENTIAL, Mode.COMPARE):
            # In compare mode the sequential pass is timing only; the async pass's answers are stored.
            sequential = req.mode == Mode.SEQUENTIAL
            _, wall = run_pass(
                Phase.GENERATION_SEQUENTIAL,
                "answers" if sequential else "answers-sequential",
                1,
                store_answer if sequential else None,
            )
            notes["sequential_s"] = wall
            ledger.note(**notes)
            if handle.cancelled:
                return RunStatus.CANCELLED
        if req.mode in (Mode.ASYNC, Mode.COMPARE):
            _, wall = run_pass(Phase.GENERATION, "answers", req.concurrency, store_answer)
            notes["async_s"] = wall
            notes["compare_complete"] = req.mode == Mode.COMPARE and not handle.cancelled
            ledger.note(**notes)
        return RunStatus.CANCELLED if handle.cancelled else RunStatus.COMPLETED

    def _generate_batch(
        self, answerer: Any, todo: list[int], contexts: list[list[ScoredChunk]], answers: dict[int, Answer]
    ) -> RunStatus:
        """Batch mode: one Message Batch, polled from this coordinator thread with the sync client
        (see :mod:`rag_core.runs.batch_mode` for why)."""
        from rag_core.runs.batch_mode import BatchProgress, run_batch_generation

        before = set(answers)
        tracker = BatchProgress(len(todo))
        self.handle.set(phase=Phase.BATCH_SUBMIT, handle=tracker)

        def on_phase(p: str) -> None:
            self.handle.set(phase=Phase(p))
            self.ledger.phase(Phase(p))

        on_phase(Phase.BATCH_SUBMIT)
        out = run_batch_generation(
            run_id=self.run_id,
            store=self.store,
            settings=self.settings,
            answerer=answerer,
            questions=[it.question for it in self.req.items],
            todo=todo,
            contexts=contexts,
            answers=answers,
            stop=self.handle.stop_event,
            tracker=tracker,
            on_phase=on_phase,
        )
        # A Message Batch bills each request that produced a message, at half price.
        model = getattr(answerer, "model", "unknown")
        new = [answers[i] for i in answers if i not in before]
        self.ledger.add("answers", model, calls=len(new), batch=True)
        for a in new:
            self.ledger.add(
                "answers",
                model,
                usage={"input_tokens": a.input_tokens, "output_tokens": a.output_tokens},
                batch=True,
            )
        self.ledger.note(n_requests=len(todo), **out.generation_info())
        if out.message:
            self.handle.set(message=out.message)
        return {
            "ok": RunStatus.COMPLETED,
            "cancelled": RunStatus.CANCELLED,
            "interrupted": RunStatus.INTERRUPTED,
        }.get(out.status, RunStatus.FAILED)

    # -- evaluation --------------------------------------------------------------------------------
    def _evaluate(self, answers: dict[int, Answer], contexts: list[list[ScoredChunk]]) -> RunStatus | None:
        """Score the answers; returns a status when scoring ended the run early (interrupted
        batch judging), raises when a fatal judge error stopped it, else None."""
        from rag_core.evaluation import Sample, make_suite, submit_scoring

        req, store, run_id = self.req, self.store, self.run_id
        suite = make_suite(req.suite, self.settings, metrics=req.metrics)
        self.ledger.note(judge_model=suite.model, versions=suite.versions())
        already: set[int] = set()
        if self.resuming:
            for r in store.get_results(run_id):
                if r.scores and all(m in r.scores and r.scores[m].ok for m in suite.metrics):
                    already.add(r.index)
        order = [i for i in sorted(answers) if i not in already]
        # Questions without an answer cannot be scored: say so per metric instead of storing zeros.
        for i in range(len(req.items)):
            if i not in answers and i not in already:
                store.save_scores(
                    run_id,
                    i,
                    [MetricScore(metric=m, value=None, error="no answer to score") for m in suite.metrics],
                )
        samples = [
            Sample(
                question=req.items[i].question,
                answer=answers[i].text,
                contexts=[c.chunk.text for c in contexts[i]],
                ground_truth=req.items[i].ground_truth,
            )
            for i in order
        ]
        if not samples:
            return None

        def on_score(k: int, score: MetricScore) -> None:
            store.save_scores(run_id, order[k], [score])

        batch = submit_scoring(
            samples,
            suite=suite,
            engine=self.engine,
            policy=self._policy(req.concurrency),
            store=store,
            fresh=req.fresh,
            repeats=req.judge_repeats,
            on_score=on_score,
            ledger=self.ledger,
            gate=self.gate,
            batch=self._judge_batches() if req.mode == Mode.BATCH and suite.cacheable else None,
        )
        self.handle.set(phase=Phase.EVALUATION, handle=batch)
        if self.handle.cancelled:
            batch.cancel()
        outcome = batch.wait()
        for t in outcome.timings:
            t.index = order[t.index] if t.index < len(order) else t.index
        store.save_requests(run_id, list(outcome.timings))
        self.ledger.bump("cache_hits", outcome.cache_hits)
        if suite.cacheable:
            self._note_retries("judge", outcome.call_records)
        if outcome.batch is not None:
            self.ledger.note(judge_batch=outcome.batch)
            if outcome.batch.get("retries"):
                self.retries.add_retries("judge", int(outcome.batch["retries"]))
                self.ledger.note(retries=self.retries.to_json())
        if outcome.fatal and not self.handle.cancelled:
            raise EvaluationError(f"Scoring stopped: {outcome.fatal}")
        if outcome.interrupted and not self.handle.cancelled:
            self.handle.set(message=outcome.interrupted)
            self.ledger.note(failure=outcome.interrupted)
            return RunStatus.INTERRUPTED
        return None

    def _judge_batches(self) -> Any:
        """Batch mode's options for the judge: the batch ids stored by earlier attempts, and a
        callback that stores each new one before it is waited for."""
        from rag_core.evaluation.judge_batches import JudgeBatchOptions
        from rag_core.runs import batch_mode

        stored = [str(x) for x in self.store.get_run(self.run_id).config.get("judge_batch_ids") or []]

        def remember(batch_id: str) -> None:
            batch_mode.remember_batch(self.store, self.run_id, batch_id, key="judge_batch_ids")

        return JudgeBatchOptions(stored_ids=stored, on_created=remember, polling=batch_mode.DEFAULT_POLLING)


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

    Runs recorded before attempt ledgers existed return the summary they stored.
    Raises :class:`InputError` when there is no such run.
    """
    run = store.get_run(run_id)
    attempts = store.get_attempts(run_id)
    if not attempts and run.summary is not None and status is None:
        return run.summary
    return build_summary(run, store.get_results(run_id), attempts, settings, status=status, failure=failure)


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
    run_id: int, *, settings: Settings, store: HistoryStore, engine: Engine | None = None
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
        items=tuple(QAItem(r.question, r.ground_truth) for r in results),
        backend=cfg.get("backend", run.backend),
        mode=cfg.get("mode", run.mode),
        concurrency=int(cfg.get("concurrency", 8)),
        top_k=int(cfg.get("top_k", 4)),
        suite=cfg.get("suite", run.suite),
        metrics=tuple(cfg["metrics"]) if cfg.get("metrics") else None,
        question_set=run.question_set,
        fresh=bool(cfg.get("fresh", False)),
        judge_repeats=int(cfg.get("judge_repeats", 1)),
    )
    if req.mode == Mode.COMPARE:  # the timing comparison cannot be resumed meaningfully
        req = req.replace(mode=Mode.ASYNC)
    return start_run(req, settings=settings, store=store, engine=engine, resume_of=run_id)
