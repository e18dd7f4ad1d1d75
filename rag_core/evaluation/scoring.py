"""Phase 2: score answers with a metric suite, through the engine, with a judge cache.

Every (sample, metric[, repeat]) is one engine job; jobs are submitted longest-first (by the
number of sequential judge calls they make) so the batch's critical path starts first.
:func:`make_suite` builds a suite by name, :func:`submit_scoring` starts the batch and returns a
:class:`ScoringBatch`; :meth:`ScoringBatch.wait` gives the :class:`ScoringOutcome`.

How judge jobs run: a job is the metric's coroutine; each Claude call it makes is one engine call
(:func:`~rag_core.engine.remote_call`) under the ``gate`` — the run's shared limit for its API key,
or a private one of ``policy.concurrency`` — with its own timeout, retry budget and timeline row
(:attr:`ScoringOutcome.timings` has one row per call). With ``batch`` options the calls go through
Message Batch rounds instead (:mod:`rag_core.evaluation.judge_batches`). Offline jobs are CPU work:
one job per metric, retried whole.

Contracts
- Failures are never zeros: a metric that cannot be computed (no ground truth, nothing to judge,
  NaN from RAGAS, an API error after the engine's retries, cancellation) is a
  ``MetricScore(value=None, error=<reason>)``. Values are finite and in [0, 1].
- The judge cache (``HistoryStore.judge_cache_get/put``) is keyed by the sha256 of metric, metric
  version, judge model, question, answer, contexts, ground truth and repeat index
  (:meth:`~rag_core.evaluation.base.Suite.cache_key`). A hit costs no API call; ``fresh=True``
  skips reads but still writes. Failures are never cached. The offline suite is not cached.
- A fatal judge error (rejected key, missing model) stops the whole batch at once:
  :attr:`ScoringOutcome.fatal` says why (the run then fails).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio

from rag_core.engine import BatchHandle, BatchPolicy, CallRecord, Engine, Gate, ItemResult, Progress
from rag_core.errors import InputError, RagError
from rag_core.evaluation.base import _TRACE, SUITES, Sample, Suite, _Embedder, _Judgement, _Trace
from rag_core.evaluation.declines import ClaudeDeclineCheck
from rag_core.evaluation.facts_suite import FactsSuite, WithFacts
from rag_core.evaluation.judge import JudgeSuite
from rag_core.evaluation.judge_batches import JudgeBatcher, JudgeBatchOptions
from rag_core.evaluation.offline import OfflineSuite
from rag_core.models import MetricScore, RequestTiming
from rag_core.settings import Settings
from rag_core.usage import AttemptLedger, charging

log = logging.getLogger(__name__)

__all__ = ["ScoringBatch", "ScoringOutcome", "make_suite", "submit_scoring"]


@dataclass
class ScoringOutcome:
    """Everything a finished (or cancelled) scoring batch produced."""

    scores: list[dict[str, MetricScore]]
    """Per sample, in input order: metric name → score (every metric of the suite is present)."""
    calls: int
    """API calls made (judge requests, including re-asks after malformed answers and engine retries)."""
    cache_hits: int
    """Judgements served from the judge cache (one per (sample, metric, repeat))."""
    timings: list[RequestTiming]
    """``phase="evaluation"``, ``index`` = sample position: one per Claude call for the judge
    suite (label ``"<metric> · call <n>"``), one per job that started for the offline suite."""
    elapsed_s: float = 0.0
    """Wall time from submission to the end of the batch, seconds."""
    input_tokens: int = 0
    """Judge prompt tokens billed (0 for the offline suite and for cache hits)."""
    output_tokens: int = 0
    """Judge completion tokens billed."""
    cancelled: bool = False
    """True when :meth:`ScoringBatch.cancel` was called before the batch finished."""
    call_records: list[tuple[str, CallRecord]] = dataclasses.field(default_factory=list)
    """Every judge call made online, as (metric, record): attempts, waits, retries by error kind."""
    fatal: str | None = None
    """Why scoring stopped at once (a rejected key, a missing model), or None."""
    interrupted: str | None = None
    """Batch mode: why scoring stopped waiting for a message batch that keeps processing (a
    resume collects it), or None."""
    batch: dict[str, Any] | None = None
    """Batch mode: ``{"ids", "rounds", "reused", "retries"}`` of the judge's message batches."""

    def retries_by_metric(self) -> dict[str, int]:
        """Metric → judge-call retries (online calls)."""
        out: dict[str, int] = {}
        for metric, rec in self.call_records:
            out[metric] = out.get(metric, 0) + rec.retries
        return out


def make_suite(
    name: str,
    settings: Settings,
    *,
    metrics: Sequence[str] | None = None,
    embedder: _Embedder | None = None,
    with_facts: bool = False,
) -> Suite:
    """The suite called ``name`` (``"offline"`` or ``"judge"``), optionally limited to ``metrics``.

    ``with_facts=True`` (what runs use) adds the ``facts`` suite (key facts and declines,
    :class:`~rag_core.evaluation.facts_suite.WithFacts`); with the judge suite its decline check
    asks Claude. Raises :class:`InputError` for an unknown suite or metric, or ``"judge"`` without
    an API key. ``embedder`` overrides the local embedding model (tests, benchmarks).
    """
    suite: Suite
    if name == "offline":
        suite = OfflineSuite(metrics, embedder=embedder)
    elif name == "judge":
        suite = JudgeSuite(settings, metrics, embedder=embedder)
    else:
        raise InputError(f"Unknown metric suite {name!r}: choose one of {', '.join(SUITES)}.")
    if not with_facts:
        return suite
    check = ClaudeDeclineCheck(settings) if name == "judge" else None
    return WithFacts(suite, FactsSuite(decline_check=check))


@dataclass
class _Unit:
    sample: int
    metric: str
    repeat: int
    key: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _Pair:
    """All repeats of one (sample, metric): outcomes arrive in any order."""

    metric: str
    outcomes: list[tuple[float, str | None, bool] | str | None]
    """Per repeat: (value, reason, cached) on success, an error message, or None while pending."""
    final: MetricScore | None = None


class ScoringBatch:
    """A running scoring batch: :meth:`progress`, :meth:`cancel`, :meth:`wait`. Thread-safe."""

    def __init__(
        self,
        *,
        n_samples: int,
        suite: Suite,
        pairs: dict[tuple[int, str], _Pair],
        units: list[_Unit],
        on_score: Callable[[int, MetricScore], None] | None,
        cache_hits: int,
        pre_ok: int,
        pre_failed: int,
        batcher: JudgeBatcher | None = None,
    ) -> None:
        self._batcher = batcher
        self._n = n_samples
        self._suite = suite
        self._pairs = pairs
        self._units = units
        self._on_score = on_score
        self._cache_hits = cache_hits
        self._pre_ok, self._pre_failed = pre_ok, pre_failed
        self._lock = threading.Lock()
        self._handle: BatchHandle[Any] | None = None
        self._emitter = ThreadPoolExecutor(1, thread_name_prefix="rag-scores") if on_score else None
        self._outcome: ScoringOutcome | None = None
        self._t0 = time.perf_counter()

    # -- public -------------------------------------------------------------------------------
    def progress(self) -> Progress:
        """The engine's progress, with judgements settled up front (cache hits, "no ground
        truth" and the like) counted as done."""
        assert self._handle is not None
        p = self._handle.progress()
        if self._batcher is not None:  # rounds are scheduled by Anthropic: no local limit to show
            p = dataclasses.replace(p, concurrency_limit=0)
        pre = self._pre_ok + self._pre_failed
        return dataclasses.replace(
            p,
            total=p.total + pre,
            done=p.done + pre,
            ok=p.ok + self._pre_ok,
            errors=p.errors + self._pre_failed,
        )

    def note(self) -> str:
        """What scoring is waiting for, for the progress view (``""`` when nothing special):
        a long ``retry-after`` wait, or the judge's message batch round in batch mode."""
        if self._batcher is not None:
            return self._batcher.note()
        return ""

    def cancel(self) -> None:
        """Stop scoring: finished scores are kept; the rest fail with "cancelled". Returns at once
        (in batch mode after asking Anthropic to cancel the judge's message batch)."""
        if self._handle is not None:
            self._handle.cancel()
        if self._batcher is not None:
            self._batcher.cancel_remote()

    def done(self) -> bool:
        return self._handle is not None and self._handle.done()

    def wait(self, timeout: float | None = None) -> ScoringOutcome:
        """Block until the batch ends and return the outcome (also after :meth:`cancel`).

        Every ``on_score`` call has returned by then. Raises ``TimeoutError`` when still running
        after ``timeout`` seconds. Must not be called from the engine's loop thread.
        """
        assert self._handle is not None
        results = self._handle.wait(timeout)
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            for r in results:  # on_result already ran for each; this is a no-op safety net
                self._record(r)
            scores: list[dict[str, MetricScore]] = [{} for _ in range(self._n)]
            for (i, metric), pair in self._pairs.items():
                if pair.final is None:
                    pair.final = _aggregate(pair)
                scores[i][metric] = pair.final
            order = {m: k for k, m in enumerate(self._suite.metrics)}
            scores = [dict(sorted(d.items(), key=lambda kv: order.get(kv[0], 99))) for d in scores]
            timings = []
            records: list[tuple[str, CallRecord]] = []
            k = max((u.repeat for u in self._units), default=0) + 1
            for r in results:
                if r.started_at is None:
                    continue
                u = self._units[r.index]
                name = u.metric if k == 1 else f"{u.metric} #{u.repeat + 1}"
                if not self._suite.cacheable:  # offline: one row per job
                    timings.append(
                        RequestTiming(
                            index=u.sample,
                            phase="evaluation",
                            label=name,
                            start=r.started_at,
                            end=r.ended_at or r.started_at,
                            attempts=r.attempts,
                            status=r.status,
                            throttled_s=r.throttled_s,
                            extra={"metric": u.metric, "repeat": u.repeat, "calls": u.calls},
                        )
                    )
                for n, c in enumerate(r.calls, start=1):  # judge: one row per Claude call
                    records.append((u.metric, c))
                    timings.append(
                        RequestTiming(
                            index=u.sample,
                            phase="evaluation",
                            label=f"{name} · call {n}",
                            start=c.start,
                            end=c.end or c.start,
                            attempts=c.attempts,
                            status=c.status,
                            throttled_s=c.throttled_s,
                            extra={"metric": u.metric, "repeat": u.repeat, "call": n},
                        )
                    )
            p = self._handle.progress()
            stop = self._handle.stop_error()
            batch_info = None
            interrupted = None
            if self._batcher is not None:
                b = self._batcher
                batch_info = {
                    "ids": list(b.batch_ids),
                    "rounds": b.rounds,
                    "reused": b.reused,
                    "retries": b.retries,
                }
                interrupted = b.interrupted
                if (
                    interrupted is None
                    and any(
                        r.error_kind == "RequestTimeoutError" and "deadline" in (r.error or "")
                        for r in results
                    )
                    and b.batch_ids
                ):
                    interrupted = (
                        "The run's deadline passed while the judge's message batch was processing; "
                        "it keeps going at Anthropic. Resume the run to collect it."
                    )
            self._outcome = ScoringOutcome(
                scores=scores,
                calls=sum(u.calls for u in self._units),
                input_tokens=sum(u.input_tokens for u in self._units),
                output_tokens=sum(u.output_tokens for u in self._units),
                cache_hits=self._cache_hits,
                timings=timings,
                elapsed_s=p.elapsed_s if p.total else time.perf_counter() - self._t0,
                cancelled=p.cancelled,
                call_records=records,
                fatal=str(stop) if stop is not None else None,
                interrupted=interrupted,
                batch=batch_info,
            )
        if self._emitter is not None:
            self._emitter.shutdown(wait=True)
        return self._outcome

    # -- internals ----------------------------------------------------------------------------
    def _start(
        self,
        engine: Engine,
        jobs: list[Callable[[], Any]],
        labels: list[str],
        policy: BatchPolicy,
        *,
        gate: Gate | None = None,
        window: int | None = None,
    ) -> None:
        for pair_key, pair in self._pairs.items():  # settled up front: emit now
            if all(o is not None for o in pair.outcomes):
                if pair.final is None:  # a precheck's score (e.g. a skip) is kept as it is
                    pair.final = _aggregate(pair)
                self._emit(pair_key[0], pair.final)
        self._handle = engine.submit(
            jobs, labels=labels, policy=policy, on_result=self._on_result, gate=gate, window=window
        )

    def _on_result(self, r: ItemResult) -> None:  # engine loop thread: must be quick
        with self._lock:
            done = self._record(r)
        if done is not None:
            self._emit(*done)

    def _record(self, r: ItemResult) -> tuple[int, MetricScore] | None:
        u = self._units[r.index]
        pair = self._pairs[(u.sample, u.metric)]
        if pair.outcomes[u.repeat] is not None:
            return None
        if r.status == "ok" and isinstance(r.value, _Judgement):
            pair.outcomes[u.repeat] = (r.value.value, r.value.reason, False)
        elif r.status == "cancelled":
            pair.outcomes[u.repeat] = "cancelled before it was scored"
        else:
            pair.outcomes[u.repeat] = r.error or "failed"
        if pair.final is None and all(o is not None for o in pair.outcomes):
            cancelled_only = all(o == "cancelled before it was scored" for o in pair.outcomes)
            pair.final = _aggregate(pair)
            if not cancelled_only:
                return u.sample, pair.final
        return None

    def _emit(self, sample: int, score: MetricScore) -> None:
        if self._emitter is None or self._on_score is None:
            return
        cb = self._on_score

        def call() -> None:
            try:
                cb(sample, score)
            except Exception:
                log.exception("on_score failed for sample %d metric %s", sample, score.metric)

        self._emitter.submit(call)


def _aggregate(pair: _Pair) -> MetricScore:
    """Mean ± stdev over successful repeats; failed repeats are excluded; all failed → failed."""
    ok = [o for o in pair.outcomes if isinstance(o, tuple)]
    if not ok:
        errors = [o for o in pair.outcomes if isinstance(o, str)]
        msg = errors[0] if errors else "cancelled before it was scored"
        if len(pair.outcomes) > 1:
            msg = f"{msg} (all {len(pair.outcomes)} judge repeats failed)"
        return MetricScore(metric=pair.metric, value=None, error=msg)
    values = [v for v, _, _ in ok]
    mean = sum(values) / len(values)
    stdev = statistics.stdev(values) if len(values) >= 2 else None
    reason = ok[0][1]
    if len(pair.outcomes) > 1 and len(ok) < len(pair.outcomes):
        failed = len(pair.outcomes) - len(ok)
        note = (
            f"{len(ok)} of {len(pair.outcomes)} judge repeats succeeded ({failed} failed and were excluded)"
        )
        reason = f"{note}; {reason}" if reason else note
    return MetricScore(
        metric=pair.metric, value=mean, reason=reason, stdev=stdev, cached=all(c for _, _, c in ok)
    )


def submit_scoring(
    samples: Sequence[Sample],
    *,
    suite: Suite,
    engine: Engine,
    policy: BatchPolicy,
    store: Any | None = None,
    fresh: bool = False,
    repeats: int = 1,
    on_score: Callable[[int, MetricScore], None] | None = None,
    ledger: AttemptLedger | None = None,
    gate: Gate | None = None,
    batch: JudgeBatchOptions | None = None,
) -> ScoringBatch:
    """Start scoring ``samples`` with ``suite`` on ``engine``; returns a :class:`ScoringBatch` at once.

    - Judge cache lookups (``store.judge_cache_get``) happen here, before submission: a hit is
      settled without a job. ``fresh=True`` skips lookups; successful judgements are written
      back (``store.judge_cache_put``) from a worker thread in either case. A store error on
      read or write is logged and treated as a miss (scoring never fails because of the cache).
    - ``repeats`` (≥ 1) judges each (sample, metric) K times (cache keys differ per repeat) and
      reports mean and stdev; deterministic metrics (the offline suite, key facts) run once
      (:meth:`Suite.repeats`).
    - ``on_score(sample_index, score)`` is called once per finished (sample, metric), from one
      dedicated worker thread (never the loop thread), in completion order; its exceptions are
      logged. (sample, metric) pairs stopped by :meth:`ScoringBatch.cancel` are not reported.
    - ``ledger``: judge requests are charged to its ``"judge"`` pass as they are sent
      (:mod:`rag_core.usage`); None = not counted.
    - Judge calls: ``policy.timeout_s``, ``max_retries``, backoff and ``retry_after_cap_s`` apply
      per call; ``gate`` is the limit they share (e.g. the run's, shared with its answer calls);
      None = a private adaptive gate of ``policy.concurrency`` slots. ``policy.deadline_s`` bounds
      the whole batch.
    - ``batch``: judge through Message Batch rounds (see :mod:`rag_core.evaluation.judge_batches`);
      the gate is then not used. Ignored for the offline suite.

    Raises :class:`InputError` for ``repeats`` < 1; scoring failures never raise (see
    :class:`ScoringOutcome`).
    """
    if repeats < 1:
        raise InputError("Judge repeats must be at least 1.")
    pairs: dict[tuple[int, str], _Pair] = {}
    units: list[_Unit] = []
    weights: list[int] = []
    hits = pre_ok = pre_failed = 0
    for i, sample in enumerate(samples):
        for metric in suite.metrics:
            k = suite.repeats(metric, repeats)
            pair = pairs[(i, metric)] = _Pair(metric=metric, outcomes=[None] * k)
            early = suite.precheck(metric, sample)
            if early is not None:
                pair.outcomes = [None]
                pair.final = early
                pair.outcomes[0] = (
                    (early.value, early.reason, False)
                    if early.value is not None
                    else (early.error or "failed")
                )
                if early.ok or early.skipped:
                    pre_ok += 1
                else:
                    pre_failed += 1
                continue
            for r in range(k):
                key = (
                    suite.cache_key(metric, sample, r)
                    if (store is not None and suite.caches(metric))
                    else None
                )
                if key is not None and not fresh:
                    hit = _cache_get(store, key)
                    if hit is not None:
                        pair.outcomes[r] = (hit[0], hit[1], True)
                        hits += 1
                        pre_ok += 1
                        continue
                units.append(_Unit(sample=i, metric=metric, repeat=r, key=key))
                weights.append(suite.expected_calls(metric, sample))
    # Longest jobs first: the batch's critical path starts at once (stable for equal weights).
    order = sorted(range(len(units)), key=lambda j: -weights[j])
    units = [units[j] for j in order]

    batcher: JudgeBatcher | None = None
    if batch is not None and suite.cacheable and units:
        batcher = _make_batcher(suite, batch, n_jobs=len(units), policy=policy, ledger=ledger)
    scoring = ScoringBatch(
        n_samples=len(samples),
        suite=suite,
        pairs=pairs,
        units=units,
        on_score=on_score,
        cache_hits=hits,
        pre_ok=pre_ok,
        pre_failed=pre_failed,
        batcher=batcher,
    )
    jobs = [_make_job(suite, samples[u.sample], u, store, ledger, batcher) for u in units]
    labels = [f"{u.metric} · {samples[u.sample].question[:60]}" for u in units]
    if not suite.cacheable:  # offline: CPU jobs, each retried whole under its own limit
        scoring._start(engine, jobs, labels, policy)
    elif batcher is not None:  # every job waits on the batcher at once; no gate slots
        scoring._start(engine, jobs, labels, policy, window=max(1, len(jobs)))
    else:
        own = gate or Gate("judge", policy.concurrency, adaptive=policy.adaptive)
        scoring._start(engine, jobs, labels, policy, gate=own)
    return scoring


def _make_batcher(
    suite: Suite,
    options: JudgeBatchOptions,
    *,
    n_jobs: int,
    policy: BatchPolicy,
    ledger: AttemptLedger | None,
) -> JudgeBatcher:
    from rag_core.answer.batches_api import MessageBatchClient

    judge = getattr(suite, "primary", suite)  # WithFacts wraps the judge suite
    settings: Settings = judge.settings  # type: ignore[union-attr]  # the judge suite's
    client = options.client or MessageBatchClient(settings, model=settings.judge_model)
    return JudgeBatcher(
        client=client,
        n_jobs=n_jobs,
        options=options,
        model=settings.judge_model,
        max_retries=policy.max_retries,
        deadline_s=policy.deadline_s,
        ledger=ledger,
        secret=settings.api_key.get(),
    )


def _make_job(
    suite: Suite,
    sample: Sample,
    unit: _Unit,
    store: Any | None,
    ledger: AttemptLedger | None,
    batcher: JudgeBatcher | None,
) -> Callable[[], Any]:
    item_key = unit.key or (suite.cache_key(unit.metric, sample, unit.repeat) if suite.cacheable else "")

    async def job() -> _Judgement:
        trace = _Trace(metric=unit.metric, item_key=item_key, batcher=batcher)
        token = _TRACE.set(trace)
        try:
            with charging(ledger, "judge"):
                result = await suite.score(unit.metric, sample)
        finally:
            _TRACE.reset(token)
            unit.calls += trace.calls
            unit.input_tokens += trace.input_tokens
            unit.output_tokens += trace.output_tokens
            if batcher is not None:
                batcher.job_ended()
        if unit.key is not None and store is not None:
            await anyio.to_thread.run_sync(_cache_put, store, unit.key, result)
        return result

    return job


def _cache_get(store: Any, key: str) -> tuple[float, str | None] | None:
    try:
        hit = store.judge_cache_get(key)
    except RagError as exc:
        log.warning("judge cache read failed (treated as a miss): %s", exc)
        return None
    if hit is None:
        return None
    value, reason = hit
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value), reason


def _cache_put(store: Any, key: str, result: _Judgement) -> None:
    try:
        store.judge_cache_put(key, result.value, result.reason)
    except RagError as exc:
        log.warning("judge cache write failed (score kept): %s", exc)
