"""One evaluation run: phase 1 (retrieve, generate) and phase 2 (evaluate), stored as it goes.

A run is started with :func:`start_run`, which returns a :class:`RunHandle` at once. The run is
coordinated by one short-lived *coordinator* thread that only waits; every remote or slow call
(answers, judge calls) runs on the engine's single event-loop thread through
:meth:`Engine.submit`, which bounds concurrency and owns retries. (The coordinator is a thread,
not a task on the loop, because ``Engine.submit`` blocks on the portal and must not be called
from the loop thread itself.)

Everything finished is written to the history store the moment it finishes, so a crash or a
cancel loses nothing that was done; :func:`resume_run` re-runs only what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rag_core.engine.core import BatchHandle, BatchPolicy, Engine, ItemResult, Progress, get_engine
from rag_core.errors import GenerationError, InputError, RagError
from rag_core.models import Answer, MetricScore, QAItem, RequestTiming, ScoredChunk
from rag_core.settings import Settings
from rag_core.storage.store import HistoryStore, RunRecord

log = logging.getLogger(__name__)

Backend = Literal["offline", "claude"]
Mode = Literal["sequential", "async", "compare", "batch"]
BACKENDS: tuple[str, ...] = ("offline", "claude")
MODES: tuple[str, ...] = ("sequential", "async", "compare", "batch")
SUITES: tuple[str, ...] = ("offline", "judge", "none")


@dataclass(frozen=True)
class RunRequest:
    """What the analyst asked for. Validated by :meth:`check`."""

    items: tuple[QAItem, ...]
    """The questions, in order."""
    backend: str = "offline"
    """``"offline"`` (extractive, no key) or ``"claude"``."""
    mode: str = "async"
    """``"sequential"`` (concurrency 1), ``"async"`` (concurrency N), ``"compare"`` (both) or
    ``"batch"`` (Anthropic Message Batches, half price, Claude only: see :mod:`rag_core.runs.batch_mode`)."""
    concurrency: int = 8
    """Requests in flight at once in async mode."""
    top_k: int = 4
    """Chunks retrieved per question."""
    suite: str = "offline"
    """Metric suite: ``"offline"`` (non-LLM), ``"judge"`` (Claude as judge) or ``"none"``."""
    metrics: tuple[str, ...] | None = None
    """Subset of the suite's metrics; ``None`` means all of them."""
    question_set: str | None = None
    """Name of the saved question set, if the questions came from one."""
    fresh: bool = False
    """Bypass the judge cache (still writes to it)."""
    judge_repeats: int = 1
    """Judge each (question, metric) this many times and keep mean ± stdev."""

    def check(self, settings: Settings) -> None:
        """Raise :class:`InputError` naming the first problem."""
        if not self.items:
            raise InputError("The question set is empty: add at least one question.")
        if self.backend not in BACKENDS:
            raise InputError(f"Unknown backend {self.backend!r}: choose one of {', '.join(BACKENDS)}.")
        if self.mode not in MODES:
            raise InputError(f"Unknown mode {self.mode!r}: choose one of {', '.join(MODES)}.")
        if self.suite not in SUITES:
            raise InputError(f"Unknown metric suite {self.suite!r}: choose one of {', '.join(SUITES)}.")
        if self.mode == "batch" and self.backend != "claude":
            raise InputError(
                "Batch mode sends the questions to Anthropic's Message Batches API: choose "
                "the Claude backend, or another mode for the offline backend."
            )
        if not 1 <= self.concurrency <= 256:
            raise InputError("Concurrency must be between 1 and 256.")
        if not 1 <= self.top_k <= 50:
            raise InputError("Top-k must be between 1 and 50.")
        if not 1 <= self.judge_repeats <= 10:
            raise InputError("Judge repeats must be between 1 and 10.")
        needs_key = self.backend == "claude" or self.suite == "judge"
        if needs_key and not settings.has_key:
            raise InputError(
                "The Claude backend and the judge metrics need an Anthropic API key: set "
                "ANTHROPIC_API_KEY (or add it to .streamlit/secrets.toml), or choose the offline "
                "backend and offline metrics."
            )

    def config(self) -> dict[str, Any]:
        """The settings of this run as stored with it (never contains a secret)."""
        return {
            "backend": self.backend,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "top_k": self.top_k,
            "suite": self.suite,
            "metrics": list(self.metrics) if self.metrics else None,
            "fresh": self.fresh,
            "judge_repeats": self.judge_repeats,
        }


@dataclass
class RunProgress:
    """A snapshot of a run for the progress view. Plain data: safe to keep in session_state."""

    run_id: int
    phase: str
    """``"retrieval"``, ``"generation-sequential"``, ``"generation"``, ``"evaluation"``, ``"done"``;
    batch mode: ``"batch-submit"``, ``"batch-wait"``, ``"batch-collect"`` instead of generation."""
    status: str
    """``"running"``, ``"completed"``, ``"cancelled"``, ``"failed"`` or (batch mode) ``"interrupted"``."""
    done: int = 0
    total: int = 0
    in_flight: int = 0
    retries: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    phase_elapsed_s: float = 0.0
    eta_s: float | None = None
    concurrency_limit: int = 0
    message: str = ""
    """Error message when the run failed."""

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass
class _RunState:
    phase: str = "starting"
    status: str = "running"
    message: str = ""
    handle: BatchHandle | Any | None = None
    started: float = field(default_factory=time.monotonic)
    summary: dict[str, Any] | None = None


class RunHandle:
    """A run in progress. Thread-safe; its methods never block except :meth:`wait`."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._state = _RunState()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- used by the coordinator -------------------------------------------------------------
    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    # -- public ------------------------------------------------------------------------------
    def progress(self) -> RunProgress:
        with self._lock:
            st = self._state
            handle = st.handle
            p = RunProgress(
                run_id=self.run_id,
                phase=st.phase,
                status=st.status,
                elapsed_s=time.monotonic() - st.started,
                message=st.message,
            )
        if handle is not None:
            hp: Progress = handle.progress()
            p.done, p.total, p.in_flight = hp.done, hp.total, hp.in_flight
            p.retries, p.errors = hp.retries, hp.errors
            p.phase_elapsed_s, p.eta_s = hp.elapsed_s, hp.eta_s
            p.concurrency_limit = hp.concurrency_limit
        return p

    def cancel(self) -> None:
        """Stop the run: finished answers and scores are kept, unstarted work never starts."""
        self._cancel.set()
        with self._lock:
            handle = self._state.handle
        if handle is not None:
            handle.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the run ends; returns the stored summary (``None`` on timeout)."""
        if not self._done.wait(timeout):
            return None
        with self._lock:
            return self._state.summary


# --------------------------------------------------------------------------------------------
# Answerers and retrieval (imported lazily: the embedding model and SDK load only when needed)
# --------------------------------------------------------------------------------------------
def make_answerer(backend: str, settings: Settings) -> Any:
    """The answerer for ``backend``: the offline extractive one or Claude."""
    if backend == "claude":
        from rag_core.answer.claude import ClaudeAnswerer

        return ClaudeAnswerer(settings)
    from rag_core.answer.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer()


def default_suite(settings: Settings) -> str:
    """Judge metrics when a key is configured, else the offline suite."""
    return "judge" if settings.has_key else "offline"


def retrieve_contexts(settings: Settings, questions: list[str], top_k: int) -> list[list[ScoredChunk]]:
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.retrieval import retrieve

    index = PolicyIndex(settings)
    try:
        return retrieve(index, questions, top_k)
    finally:
        close = getattr(index, "close", None)
        if close:
            close()


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
) -> RunHandle:
    """Validate, create the run record, and start it in the background. Returns at once.

    Raises :class:`InputError` for a request that cannot run (nothing is stored then).
    """
    request.check(settings)
    engine = engine or get_engine()
    if resume_of is None:
        config = request.config()
        run_id = store.create_run(
            question_set=request.question_set,
            backend=request.backend,
            mode=request.mode,
            suite=request.suite,
            config=config,
            items=list(request.items),
        )
    else:
        run_id = resume_of
        store.update_run(run_id, status="running")
    handle = RunHandle(run_id)
    with _ACTIVE_LOCK:
        _ACTIVE[run_id] = handle
    t = threading.Thread(
        target=_coordinate,
        args=(handle, request, settings, store, engine, resume_of is not None),
        name=f"run-{run_id}",
        daemon=True,
    )
    handle._thread = t
    t.start()
    return handle


# Runs started by this process, by id: a page keeps only the id in session_state and finds the
# handle here again after the user navigated away and back (handles are not serialisable).
_ACTIVE: dict[int, RunHandle] = {}
_ACTIVE_LOCK = threading.Lock()


def get_handle(run_id: int) -> RunHandle | None:
    """The handle of a run started by this process (running or finished), or ``None``."""
    with _ACTIVE_LOCK:
        return _ACTIVE.get(run_id)


def active_runs() -> list[RunHandle]:
    """Handles of runs of this process that have not finished yet."""
    with _ACTIVE_LOCK:
        return [h for h in _ACTIVE.values() if not h.done()]


def _coordinate(
    handle: RunHandle,
    req: RunRequest,
    settings: Settings,
    store: HistoryStore,
    engine: Engine,
    resuming: bool,
) -> None:
    run_id = handle.run_id
    t0 = time.perf_counter()
    timings: dict[str, float] = {"retrieval_s": 0.0, "generation_s": 0.0, "evaluation_s": 0.0}
    gen_info: dict[str, Any] = {
        "sequential_s": None,
        "async_s": None,
        "speedup_measured": None,
        "speedup_estimated": None,
        "ideal_speedup": 1.0,
        "concurrency": req.concurrency,
    }
    status = "completed"
    try:
        prior = store.get_results(run_id) if resuming else []
        # Resuming redoes every question without an answer: unfinished ones and failed ones.
        todo_answers = [i for i in range(len(req.items)) if not resuming or prior[i].answer is None]
        # ---- phase 1a: retrieval (one batched embed + query) -----------------------------
        handle._set(phase="retrieval")
        t = time.perf_counter()
        contexts: list[list[ScoredChunk]] = [[] for _ in req.items]
        if todo_answers:
            got = retrieve_contexts(settings, [req.items[i].question for i in todo_answers], req.top_k)
            for i, ctx in zip(todo_answers, got, strict=True):
                contexts[i] = ctx
        timings["retrieval_s"] = time.perf_counter() - t

        # ---- phase 1b: generation ---------------------------------------------------------
        answers: dict[int, Answer] = {}
        if resuming:
            for r in prior:
                if r.answer is not None:
                    answers[r.index] = Answer(
                        text=r.answer,
                        model=r.model or "",
                        input_tokens=r.input_tokens,
                        output_tokens=r.output_tokens,
                    )
                    contexts[r.index] = [ScoredChunk.from_dict(c) for c in r.contexts]
        if todo_answers and not handle.cancelled:
            answerer = make_answerer(req.backend, settings)
            t = time.perf_counter()
            gen = _generate(
                handle, req, settings, store, engine, answerer, todo_answers, contexts, answers, gen_info
            )
            timings["generation_s"] = time.perf_counter() - t
            if gen == "cancelled":
                status = "cancelled"
            elif gen == "interrupted":  # batch mode: stopped waiting, the batch goes on at Anthropic
                status = "interrupted"
            elif not answers:
                # Nothing was answered (e.g. the key was rejected): a "completed" run with every
                # score missing would let CI pass; fail with the first error instead.
                first = next((r.error for r in store.get_results(run_id) if r.error), "no answers")
                raise GenerationError(f"No question could be answered: {first}")

        # ---- phase 2: evaluation ----------------------------------------------------------
        judge: dict[str, Any] = {
            "suite": req.suite,
            "model": None,
            "calls": 0,
            "cache_hits": 0,
            "versions": {},
        }
        if req.suite != "none" and status == "completed" and not handle.cancelled:
            t = time.perf_counter()
            judge = _evaluate(handle, req, settings, store, engine, answers, contexts, resuming)
            timings["evaluation_s"] = time.perf_counter() - t
            if handle.cancelled:
                status = "cancelled"
        elif handle.cancelled:
            status = "cancelled"
    except RagError as exc:
        log.warning("run %s failed: %s", run_id, exc)
        status = "failed"
        handle._set(message=str(exc))
        judge = {"suite": req.suite, "model": None, "calls": 0, "cache_hits": 0, "versions": {}}
    except Exception as exc:  # a bug: keep the run visible as failed, with the reason
        log.exception("run %s crashed", run_id)
        status = "failed"
        handle._set(message=f"Unexpected error: {type(exc).__name__}: {exc}")
        judge = {"suite": req.suite, "model": None, "calls": 0, "cache_hits": 0, "versions": {}}

    timings["total_s"] = time.perf_counter() - t0
    try:
        summary = build_summary(store, run_id, settings, gen_info, judge)
        if status == "failed":
            summary["failure"] = handle.progress().message
        store.update_run(run_id, status=status, timings=timings, summary=summary, finished=True)
    except RagError as exc:  # storage failed at the very end: report, keep what was written
        log.error("could not finalise run %s: %s", run_id, exc)
        summary = {"failure": str(exc)}
        status = "failed"
    handle._set(
        phase="done",
        status=status,
        summary=summary | {"run_id": run_id, "status": status, "timings": timings},
    )
    handle._done.set()


def _policy(settings: Settings, concurrency: int) -> BatchPolicy:
    return BatchPolicy.from_settings(settings, concurrency=concurrency)


def _generate(
    handle: RunHandle,
    req: RunRequest,
    settings: Settings,
    store: HistoryStore,
    engine: Engine,
    answerer: Any,
    todo: list[int],
    contexts: list[list[ScoredChunk]],
    answers: dict[int, Answer],
    gen_info: dict[str, Any],
) -> str:
    """Run generation in the requested mode; store each answer as it arrives."""
    if req.mode == "batch":
        return _generate_batch(handle, req, settings, store, answerer, todo, contexts, answers, gen_info)
    run_id = handle.run_id

    def jobs() -> list[Callable[[], Any]]:
        return [
            (lambda i=i: answerer.answer(req.items[i].question, contexts[i]))  # type: ignore[misc]
            for i in todo
        ]

    labels = [req.items[i].question[:80] for i in todo]

    def store_answer(r: ItemResult) -> None:
        i = todo[r.index]
        ans: Answer | None = r.value if r.status == "ok" else None
        if r.status == "cancelled":
            return  # unfinished: stays pending, resume will redo it
        if ans is not None:
            answers[i] = ans
        store.save_answer(
            run_id,
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

    def run_batch(
        phase: str, concurrency: int, on_result: Callable[[ItemResult], None] | None
    ) -> tuple[list[ItemResult], float]:
        policy = _policy(settings, concurrency)
        h = engine.submit(jobs(), labels=labels, policy=policy, on_result=on_result)
        handle._set(phase=phase, handle=h)
        if handle.cancelled:
            h.cancel()
        results = h.wait()
        wall = h.progress().elapsed_s
        store.save_requests(run_id, _timings(results, todo, phase, labels))
        return results, wall

    n = len(todo)
    if req.mode in ("sequential", "compare"):
        # In compare mode the sequential pass is timing only; the async pass's answers are stored.
        results, wall = run_batch(
            "generation-sequential", 1, store_answer if req.mode == "sequential" else None
        )
        gen_info["sequential_s"] = wall
        gen_info["ideal_speedup"] = 1.0
        if handle.cancelled:
            return "cancelled"
    if req.mode in ("async", "compare"):
        conc = req.concurrency
        results, wall = run_batch("generation", conc, store_answer)
        gen_info["async_s"] = wall
        gen_info["ideal_speedup"] = float(min(n, conc))
        busy = sum(r.latency_s for r in results if r.latency_s and r.status == "ok")
        # Σ latency ÷ wall measures overlap of I/O-bound requests. Offline answers are CPU work
        # sharing the same cores, so their "latency" grows with concurrency and the ratio would
        # claim a speedup that does not exist: report none.
        if req.backend != "offline" and busy > 0:
            gen_info["speedup_estimated"] = busy / wall if wall > 0 else None
        if gen_info["sequential_s"]:
            gen_info["speedup_measured"] = gen_info["sequential_s"] / wall if wall > 0 else None
    return "cancelled" if handle.cancelled else "ok"


def _generate_batch(
    handle: RunHandle,
    req: RunRequest,
    settings: Settings,
    store: HistoryStore,
    answerer: Any,
    todo: list[int],
    contexts: list[list[ScoredChunk]],
    answers: dict[int, Answer],
    gen_info: dict[str, Any],
) -> str:
    """Batch mode (issue 6): one Message Batch, polled from this coordinator thread with the sync
    client (see :mod:`rag_core.runs.batch_mode` for why). Returns ``"ok"``, ``"cancelled"`` or
    ``"interrupted"`` (deadline passed / API unreachable: the batch goes on, resume collects it)."""
    from rag_core.runs.batch_mode import BatchProgress, run_batch_generation

    tracker = BatchProgress(len(todo))
    handle._set(phase="batch-submit", handle=tracker)
    out = run_batch_generation(
        run_id=handle.run_id,
        store=store,
        settings=settings,
        answerer=answerer,
        questions=[it.question for it in req.items],
        todo=todo,
        contexts=contexts,
        answers=answers,
        stop=handle._cancel,
        tracker=tracker,
        on_phase=lambda p: handle._set(phase=p),
    )
    gen_info.update(out.generation_info())
    if out.message:
        handle._set(message=out.message)
    return out.status


def _timings(
    results: Sequence[ItemResult], todo: list[int], phase: str, labels: list[str]
) -> list[RequestTiming]:
    out = []
    for r in results:
        if r.started_at is None:
            continue
        v = r.value if r.status == "ok" else None
        out.append(
            RequestTiming(
                index=todo[r.index],
                phase=phase,
                label=labels[r.index],
                start=r.started_at,
                end=r.ended_at or r.started_at,
                attempts=r.attempts,
                status=r.status,
                throttled_s=r.throttled_s,
                input_tokens=getattr(v, "input_tokens", 0) or 0,
                output_tokens=getattr(v, "output_tokens", 0) or 0,
            )
        )
    return out


def _evaluate(
    handle: RunHandle,
    req: RunRequest,
    settings: Settings,
    store: HistoryStore,
    engine: Engine,
    answers: dict[int, Answer],
    contexts: list[list[ScoredChunk]],
    resuming: bool,
) -> dict[str, Any]:
    from rag_core.evaluation.core import Sample, make_suite, submit_scoring

    run_id = handle.run_id
    suite = make_suite(req.suite, settings, metrics=req.metrics)
    already: set[int] = set()
    if resuming:
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
    info: dict[str, Any] = {
        "suite": suite.name,
        "model": getattr(suite, "model", None),
        "calls": 0,
        "cache_hits": 0,
        "versions": suite.versions(),
    }
    if not samples:
        return info

    def on_score(k: int, score: MetricScore) -> None:
        store.save_scores(run_id, order[k], [score])

    batch = submit_scoring(
        samples,
        suite=suite,
        engine=engine,
        policy=_policy(settings, req.concurrency),
        store=store,
        fresh=req.fresh,
        repeats=req.judge_repeats,
        on_score=on_score,
    )
    handle._set(phase="evaluation", handle=batch)
    if handle.cancelled:
        batch.cancel()
    outcome = batch.wait()
    for t in outcome.timings:
        t.index = order[t.index] if t.index < len(order) else t.index
    store.save_requests(run_id, list(outcome.timings))
    info["calls"], info["cache_hits"] = outcome.calls, outcome.cache_hits
    info["input_tokens"], info["output_tokens"] = outcome.input_tokens, outcome.output_tokens
    return info


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------
def build_summary(
    store: HistoryStore, run_id: int, settings: Settings, generation: dict[str, Any], judge: dict[str, Any]
) -> dict[str, Any]:
    """The run summary stored with the run (shape in the team brief / README)."""
    from rag_core.evaluation.core import summarize

    results = store.get_results(run_id)
    tokens_in = sum(r.input_tokens for r in results)
    tokens_out = sum(r.output_tokens for r in results)
    cost = sum(
        settings.cost_usd(r.model, r.input_tokens, r.output_tokens)
        for r in results
        if r.model and r.model.startswith("claude")
    )
    usage: dict[str, Any] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    if store.get_run(run_id).mode == "batch":  # Message Batches cost half (rag_core.runs.batch_mode)
        from rag_core.runs.batch_mode import BATCH_DISCOUNT

        cost *= BATCH_DISCOUNT
        usage["batch_discount"] = BATCH_DISCOUNT
    # The judge's own calls are billed too (tokens counted by the judge client's wrapper).
    j_in, j_out = int(judge.get("input_tokens") or 0), int(judge.get("output_tokens") or 0)
    judge_cost = settings.cost_usd(judge["model"], j_in, j_out) if judge.get("model") else 0.0
    usage.update(
        judge_input_tokens=j_in,
        judge_output_tokens=j_out,
        answer_cost_usd=round(cost, 6),
        judge_cost_usd=round(judge_cost, 6),
        cost_usd=round(cost + judge_cost, 6),
    )
    return {
        "n_questions": len(results),
        "errors": sum(1 for r in results if r.error is not None),
        "generation": generation,
        "metrics": summarize([r.scores for r in results]),
        "usage": usage,
        "judge": judge,
    }


# --------------------------------------------------------------------------------------------
# Crash recovery
# --------------------------------------------------------------------------------------------
def recover_interrupted(store: HistoryStore) -> list[int]:
    """Mark runs whose process died mid-run as ``interrupted``; returns their ids.

    The store knows which process owns each run: runs of another live process (a second app
    server, a CLI run) are left alone, and so are this process's runs that are still going.
    """
    return store.mark_interrupted(exclude={h.run_id for h in active_runs()})


def resume_run(
    run_id: int, *, settings: Settings, store: HistoryStore, engine: Engine | None = None
) -> RunHandle:
    """Finish an interrupted, cancelled or failed run: redo only the answers it lacks (unfinished or
    failed) and the scores it lacks (missing or failed); finished work is kept as it is."""
    run: RunRecord = store.get_run(run_id)
    if run.status == "running":
        raise InputError(f"Run {run_id} is still running; wait for it or cancel it first.")
    if run.status not in ("interrupted", "cancelled", "failed"):
        raise InputError(
            f"Run {run_id} is {run.status}: only interrupted, cancelled or failed runs "
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
    if req.mode == "compare":  # the timing comparison cannot be resumed meaningfully
        req = RunRequest(**{**req.__dict__, "mode": "async"})
    return start_run(req, settings=settings, store=store, engine=engine, resume_of=run_id)
