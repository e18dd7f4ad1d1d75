"""Sweeps: one question set × several assistant configurations, run as one job.

Rules
- A :class:`SweepPlan` names the questions, the configuration versions (picked by the analyst, or
  a grid expanded by :func:`rag_core.runs.configs.expand_grid`) and the run options shared by all
  (backend, mode, concurrency, metric suite, judge repeats). :meth:`SweepPlan.check` validates
  everything before anything runs.
- :func:`estimate_sweep` prices it first: per configuration (as if run alone) and for the sweep,
  where configurations that would send identical requests are counted once; it lists the chunked
  index collections that will be built.
- :func:`start_sweep` creates the sweep record and runs the configurations one after another on a
  coordinator thread (each run on the engine, with its usual concurrency), all sharing one
  :class:`~rag_core.runs.reuse.ReuseCache`: identical retrievals, answers and scores are done once
  (:mod:`rag_core.runs.reuse`). Configurations sharing a chunking and retrieval method run
  largest-top-k first, so one query serves the smaller ones. Each run is a normal run (named
  ``"<sweep> · <configuration>"``, with its identity and the sweep id) and shows in History.
- The sweep record keeps the run ids (in the plan's order) and the reuse counters, wall time and
  index build time: :meth:`HistoryStore.get_sweep`. A cancel stops the current run (its finished work
  is kept) and starts no more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.engine import Engine, get_engine
from rag_core.errors import InputError, RagError
from rag_core.experiment import ConfigVersion
from rag_core.models import QAItem
from rag_core.runs.cost import CostEstimate, estimate_run
from rag_core.runs.executor import start_run, store_key
from rag_core.runs.handle import RunHandle
from rag_core.runs.request import RunProgress, RunRequest
from rag_core.runs.reuse import ReuseCache
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.vocab import Backend, Mode, RunStatus, Suite, choice

__all__ = [
    "MAX_SWEEP_CONFIGS",
    "SweepEstimate",
    "SweepHandle",
    "SweepPlan",
    "SweepProgress",
    "estimate_sweep",
    "execution_order",
    "live_sweep",
    "live_sweeps",
    "start_sweep",
]

MAX_SWEEP_CONFIGS = 24
"""Most configurations one sweep may run."""


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs (see the module rules)."""

    items: tuple[QAItem, ...]
    """The questions, shared by every configuration."""
    configs: tuple[ConfigVersion, ...]
    """The configuration versions, in the order the leaderboard lists them before ranking."""
    question_set: str | None = None
    """The saved set (or file) the questions came from."""
    name: str = ""
    """The analyst's name for the sweep ('' = generated)."""
    backend: Backend = Backend.OFFLINE
    mode: Mode = Mode.ASYNC
    """``async`` or ``sequential`` (compare and batch modes are for single runs)."""
    concurrency: int = 8
    suite: Suite = Suite.OFFLINE
    metrics: tuple[str, ...] | None = None
    judge_repeats: int = 1
    fresh: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", choice(Backend, self.backend, "backend"))
        object.__setattr__(self, "mode", choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "suite", choice(Suite, self.suite, "metric suite"))
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "configs", tuple(self.configs))

    @property
    def title(self) -> str:
        return self.name or f"Sweep of {len(self.configs)} configurations"

    def request(self, cv: ConfigVersion) -> RunRequest:
        """The run of one configuration."""
        return RunRequest(
            items=self.items,
            backend=self.backend,
            mode=self.mode,
            concurrency=self.concurrency,
            top_k=cv.config.top_k,
            suite=self.suite,
            metrics=self.metrics,
            question_set=self.question_set,
            fresh=self.fresh,
            judge_repeats=self.judge_repeats,
            assistant=cv,
            run_name=f"{self.title} · {cv.label}",
        )

    def check(self, settings: Settings) -> None:
        """Raise :class:`InputError` naming the first problem (nothing has run then)."""
        if not self.configs:
            raise InputError("A sweep needs at least one configuration: pick some, or give a grid.")
        if len(self.configs) > MAX_SWEEP_CONFIGS:
            raise InputError(
                f"A sweep runs at most {MAX_SWEEP_CONFIGS} configurations ({len(self.configs)} asked): "
                "make the grid smaller."
            )
        labels = [c.label for c in self.configs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise InputError(f"The sweep lists {', '.join(dupes)} more than once.")
        if self.mode not in (Mode.ASYNC, Mode.SEQUENTIAL):
            raise InputError(
                "A sweep runs in async or sequential mode (compare and batch are for single runs)."
            )
        for cv in self.configs:
            self.request(cv).check(settings)

    def to_json(self) -> dict[str, Any]:
        return {
            "configs": [{"name": c.name, "version": c.version, "label": c.label} for c in self.configs],
            "backend": str(self.backend),
            "mode": str(self.mode),
            "concurrency": self.concurrency,
            "suite": str(self.suite),
            "metrics": list(self.metrics) if self.metrics else None,
            "judge_repeats": self.judge_repeats,
            "fresh": self.fresh,
            "n_questions": len(self.items),
        }


def execution_order(configs: Sequence[ConfigVersion]) -> list[int]:
    """Indices of ``configs`` in the order they run: grouped by chunking and retrieval method,
    largest top-k first (so smaller top-k retrievals are prefixes of one already made), otherwise
    as given."""

    def key(i: int) -> tuple[int, int, str, int, int]:
        c = configs[i].config
        return (c.chunk_size, c.chunk_overlap, str(c.retrieval), -c.top_k, i)

    return sorted(range(len(configs)), key=key)


@dataclass(frozen=True)
class SweepEstimate:
    """What a sweep would cost with Claude, before it starts."""

    per_config: tuple[tuple[str, CostEstimate], ...]
    """Per configuration label: its cost if run alone."""
    cost_usd: float
    """The sweep's estimate: configurations that would send identical requests count once."""
    alone_usd: float
    """The sum of the per-configuration estimates (what separate runs would cost)."""
    calls: int
    """Claude calls of the sweep estimate."""
    builds: tuple[str, ...] = ()
    """Chunked index collections that will be built or updated first."""

    @property
    def uses_claude(self) -> bool:
        return self.calls > 0


def estimate_sweep(plan: SweepPlan, settings: Settings, *, check_index: bool = True) -> SweepEstimate:
    """Price ``plan`` before it runs (see :class:`SweepEstimate`). ``check_index`` also opens the
    index to list the chunked collections that still need building."""
    per: list[tuple[str, CostEstimate]] = []
    seen: set[tuple[Any, ...]] = set()
    calls = 0
    cost = 0.0
    for cv in plan.configs:
        c = cv.config
        s = settings.replace(answer_model=c.answer_model, chunk_size=c.chunk_size)
        est = estimate_run(
            s,
            n_questions=len(plan.items),
            backend=plan.backend,
            mode=plan.mode,
            suite=plan.suite,
            metrics=plan.metrics,
            top_k=c.top_k,
            judge_repeats=plan.judge_repeats,
        )
        per.append((cv.label, est))
        # Same contexts and same answer-shaping fields → the same requests: answered and judged once.
        key = (
            c.chunk_size,
            c.chunk_overlap,
            str(c.retrieval),
            c.top_k,
            c.answer_fingerprint() if plan.backend == Backend.CLAUDE else "",
        )
        if key not in seen:
            seen.add(key)
            calls += est.calls
            cost += est.cost_usd
    builds: list[str] = []
    if check_index:
        from rag_core.ingest.variants import collection_for, pending_documents

        for size, overlap in sorted({(cv.config.chunk_size, cv.config.chunk_overlap) for cv in plan.configs}):
            try:
                if pending_documents(settings, size, overlap):
                    builds.append(collection_for(settings, size, overlap))
            except RagError:
                builds.append(collection_for(settings, size, overlap))
    return SweepEstimate(
        per_config=tuple(per),
        cost_usd=round(cost, 4),
        alone_usd=round(sum(e.cost_usd for _, e in per), 4),
        calls=calls,
        builds=tuple(sorted(builds)),
    )


@dataclass
class SweepProgress:
    """A snapshot of a sweep for the progress view (plain data)."""

    sweep_id: int
    status: RunStatus
    done: int
    """Configurations finished."""
    total: int
    current_run_id: int | None = None
    current_label: str = ""
    run: RunProgress | None = None
    """The current run's progress."""
    elapsed_s: float = 0.0
    run_ids: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status != RunStatus.RUNNING


class SweepHandle:
    """A sweep executing in this process: :meth:`progress`, :meth:`cancel`, :meth:`wait`."""

    def __init__(self, sweep_id: int, plan: SweepPlan) -> None:
        self.sweep_id = sweep_id
        self.plan = plan
        self.reuse = ReuseCache()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._status = RunStatus.RUNNING
        self._current: tuple[int, RunHandle] | None = None
        self._run_ids: dict[int, int] = {}
        self._finished = 0
        self._started = time.monotonic()
        self.thread: threading.Thread | None = None
        self.message = ""
        self.started_by = ""
        """Who started the sweep (:attr:`~rag_core.access.Principal.owner_key`): only they or an
        admin may cancel it."""
        self.on_run_start: Callable[[int, int], None] | None = None
        """Called with ``(sweep_id, run_id)`` as the sweep starts each run (the workspace records
        who started it)."""

    def progress(self) -> SweepProgress:
        with self._lock:
            cur = self._current
            p = SweepProgress(
                sweep_id=self.sweep_id,
                status=self._status,
                done=self._finished,
                total=len(self.plan.configs),
                elapsed_s=time.monotonic() - self._started,
                run_ids=[self._run_ids[i] for i in sorted(self._run_ids)],
            )
        if cur is not None and self._status == RunStatus.RUNNING:
            i, h = cur
            p.current_run_id = h.run_id
            p.current_label = self.plan.configs[i].label
            p.run = h.progress()
        return p

    def cancel(self) -> None:
        """Stop the current run (finished work is kept) and start no more."""
        self._cancel.set()
        with self._lock:
            cur = self._current
        if cur is not None:
            cur[1].cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sweep ends; True when it has."""
        return self._done.wait(timeout)

    @property
    def run_ids(self) -> list[int]:
        """Run ids in the plan's order (only the configurations started so far)."""
        with self._lock:
            return [self._run_ids[i] for i in sorted(self._run_ids)]

    @property
    def status(self) -> RunStatus:
        with self._lock:
            return self._status

    # -- the coordinator ----------------------------------------------------------------------------
    def _run(self, settings: Settings, store: HistoryStore, engine: Engine) -> None:
        statuses: list[RunStatus] = []
        t0 = time.perf_counter()
        try:
            for i in execution_order(self.plan.configs):
                if self._cancel.is_set():
                    break
                handle = start_run(
                    self.plan.request(self.plan.configs[i]),
                    settings=settings,
                    store=store,
                    engine=engine,
                    reuse=self.reuse,
                    sweep_id=self.sweep_id,
                )
                if self.on_run_start is not None:
                    try:
                        self.on_run_start(self.sweep_id, handle.run_id)
                    except Exception:  # not recorded: stop this run rather than run it unowned
                        handle.cancel()
                        handle.wait()
                        raise
                with self._lock:
                    self._current = (i, handle)
                    self._run_ids[i] = handle.run_id
                if self._cancel.is_set():  # cancelled while this run was starting
                    handle.cancel()
                store.update_sweep(self.sweep_id, run_ids=self.run_ids)
                handle.wait()
                statuses.append(RunStatus(store.get_run(handle.run_id).status))
                with self._lock:
                    self._finished += 1
                store.update_sweep(self.sweep_id, counters=self._counters(store, time.perf_counter() - t0))
            status = _overall(statuses, cancelled=self._cancel.is_set(), total=len(self.plan.configs))
        except RagError as exc:
            self.message = str(exc)
            status = RunStatus.FAILED
        except Exception as exc:  # a bug: keep the sweep visible as failed, with the reason
            self.message = f"Unexpected error: {type(exc).__name__}: {exc}"
            status = RunStatus.FAILED
        try:
            counters = self._counters(store, time.perf_counter() - t0)
            if self.message:
                counters["failure"] = self.message
            store.update_sweep(
                self.sweep_id, status=status, run_ids=self.run_ids, counters=counters, finished=True
            )
        except RagError as exc:
            self.message = self.message or str(exc)
        with self._lock:
            self._status = status
            self._current = None
        self._done.set()

    def _counters(self, store: HistoryStore, wall_s: float) -> dict[str, Any]:
        c = self.reuse.snapshot()
        hits = 0
        for rid in self.run_ids:
            s = store.get_run(rid).summary
            hits += s.judge.cache_hits if s is not None else 0
        c.judge_cache_hits = hits
        return {**c.to_json(), "wall_s": round(wall_s, 3)}


def _overall(statuses: list[RunStatus], *, cancelled: bool, total: int) -> RunStatus:
    if cancelled or len(statuses) < total:
        return RunStatus.CANCELLED
    if all(s == RunStatus.COMPLETED for s in statuses):
        return RunStatus.COMPLETED
    if all(s == RunStatus.FAILED for s in statuses):
        return RunStatus.FAILED
    return next(s for s in statuses if s != RunStatus.COMPLETED)


def _namespace(store: HistoryStore) -> str:
    return store_key(store) + "#sweeps"


def start_sweep(
    plan: SweepPlan,
    *,
    settings: Settings,
    store: HistoryStore,
    engine: Engine | None = None,
    started_by: str = "",
    on_created: Callable[[int], None] | None = None,
    on_run_start: Callable[[int, int], None] | None = None,
) -> SweepHandle:
    """Check the plan, record the sweep and start it in the background; returns its handle at once.
    ``on_created(sweep_id)`` is called before anything runs (the audit entry of the sweep); an
    error from it ends the sweep as failed before it starts and is raised.
    ``on_run_start(sweep_id, run_id)`` is called as each of its runs starts; an error from it
    stops that run and ends the sweep as failed.

    Raises :class:`InputError` (nothing stored) for a plan that cannot run.
    """
    plan.check(settings)
    engine = engine or get_engine()
    sweep_id = store.create_sweep(name=plan.title, question_set=plan.question_set, plan=plan.to_json())
    if on_created is not None:
        try:
            on_created(sweep_id)
        except RagError as exc:
            store.update_sweep(
                sweep_id, status=RunStatus.FAILED, counters={"failure": str(exc)}, finished=True
            )
            raise
    handle = SweepHandle(sweep_id, plan)
    handle.started_by, handle.on_run_start = started_by, on_run_start
    ns = _namespace(store)
    engine.runs.add(ns, sweep_id, handle)

    def run() -> None:
        try:
            handle._run(settings, store, engine)
        finally:
            engine.runs.drop(ns, sweep_id, handle)

    handle.thread = threading.Thread(target=run, name=f"sweep-{sweep_id}", daemon=True)
    handle.thread.start()
    return handle


def live_sweep(engine: Engine, store: HistoryStore, sweep_id: int) -> SweepHandle | None:
    """The handle of a sweep of ``store`` executing in this process, or None."""
    h = engine.runs.get(_namespace(store), sweep_id)
    return h if isinstance(h, SweepHandle) and not h.done() else None


def live_sweeps(engine: Engine, store: HistoryStore) -> list[SweepHandle]:
    """Sweeps of ``store`` executing in this process."""
    return [h for _, h in engine.runs.live(_namespace(store)) if isinstance(h, SweepHandle) and not h.done()]
