"""Scoring phase of a run attempt: the metric suite (with key facts and declines) through the
engine, scores stored as they arrive, fatal judge errors stop it. Mixed into the coordinator of
:mod:`rag_core.runs.executor` (whose module docstring states the rules)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from rag_core.engine import BatchPolicy, CallRecord, Engine, Gate
from rag_core.errors import (
    EvaluationError,
)
from rag_core.experiment import AssistantConfig
from rag_core.models import Answer, MetricScore, ScoredChunk
from rag_core.runs.handle import RunHandle
from rag_core.runs.passes import RetryNotes
from rag_core.runs.request import RunOptions, RunRequest
from rag_core.runs.reuse import ReuseCache
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.usage import AttemptLedger
from rag_core.vocab import Mode, Phase, RunStatus

log = logging.getLogger(__name__)


class ScoringPhase:
    """Scoring of one attempt."""

    # Set by the coordinator (rag_core.runs.executor._Coordinator), which mixes this class in.
    handle: RunHandle
    req: RunRequest
    settings: Settings
    store: HistoryStore
    engine: Engine
    ledger: AttemptLedger
    options: RunOptions
    reuse: ReuseCache | None
    retries: RetryNotes
    gate: Gate | None
    resuming: bool
    run_id: int
    assistant: AssistantConfig

    def _policy(self, concurrency: int) -> BatchPolicy:
        raise NotImplementedError

    def _write_failed(self, exc: Exception, what: str) -> None:
        raise NotImplementedError

    def _note_retries(self, kind: str, calls: Iterable[tuple[str | None, CallRecord]]) -> None:
        raise NotImplementedError

    def _evaluate(self, answers: dict[int, Answer], contexts: list[list[ScoredChunk]]) -> RunStatus | None:
        """Score the answers; returns a status when scoring ended the run early (interrupted
        batch judging), raises when a fatal judge error stopped it, else None."""
        from rag_core.evaluation import Sample, WithFacts, make_suite, submit_scoring

        req, store, run_id = self.req, self.store, self.run_id
        suite = make_suite(
            req.suite,
            self.settings,
            metrics=req.metrics,
            embedder=self.reuse.embedder if self.reuse else None,
            with_facts=True,
        )
        assert isinstance(suite, WithFacts)
        self.ledger.note(judge_model=suite.model, versions=suite.versions())
        already: set[int] = set()
        if self.resuming:
            for r in store.get_results(run_id):
                if r.scores and all(m in r.scores and r.scores[m].settled for m in suite.metrics):
                    already.add(r.index)
        order = [i for i in sorted(answers) if i not in already]
        # Questions without an answer cannot be scored: say so per metric instead of storing zeros.
        for i in range(len(req.items)):
            if i not in answers and i not in already:
                store.save_scores(
                    run_id, i, [suite.unanswered(m, req.items[i].expected) for m in suite.metrics]
                )
        samples = [
            Sample(
                question=req.items[i].question,
                answer=answers[i].text,
                contexts=[c.chunk.text for c in contexts[i]],
                ground_truth=req.items[i].ground_truth,
                expected=str(req.items[i].expected),
            )
            for i in order
        ]
        keys: list[str] = []
        if self.reuse is not None:  # scores an earlier run of the sweep computed for the same sample
            keep = []
            for i, sample in zip(order, samples, strict=True):
                key = ReuseCache.score_key(
                    suite=str(req.suite),
                    metrics=list(suite.metrics),
                    judge_model=suite.model,
                    repeats=req.judge_repeats,
                    question=sample.question,
                    answer=sample.answer,
                    contexts=sample.contexts,
                    ground_truth=sample.ground_truth,
                )
                got = self.reuse.scores(key)
                if got is None:
                    keep.append((i, sample, key))
                else:
                    store.save_scores(run_id, i, [dataclasses.replace(s, cached=True) for s in got.values()])
            order = [i for i, _, _ in keep]
            samples = [s for _, s, _ in keep]
            keys = [k for _, _, k in keep]
        if not samples:
            return None

        def on_score(k: int, score: MetricScore) -> None:
            try:
                store.save_scores(run_id, order[k], [score])
            except Exception as exc:
                self._write_failed(exc, f"a score of question {order[k] + 1}")

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
        if self.reuse is not None and not outcome.cancelled:
            for key, scores in zip(keys, outcome.scores, strict=True):
                self.reuse.put_scores(key, scores)
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
        from rag_core.answer.batches_api import BatchPolling
        from rag_core.evaluation.judge_batches import JudgeBatchOptions
        from rag_core.runs import batch_mode

        stored = [str(x) for x in self.store.get_run(self.run_id).config.get("judge_batch_ids") or []]

        def remember(batch_id: str) -> None:
            batch_mode.remember_batch(self.store, self.run_id, batch_id, key="judge_batch_ids")

        polling = self.options.batch_polling or BatchPolling()
        return JudgeBatchOptions(stored_ids=stored, on_created=remember, polling=polling)
