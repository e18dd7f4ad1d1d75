"""Generation phase of a run attempt: answers in the requested mode (sequential, async, compare,
batch), stored as they arrive, reused across a sweep. Mixed into the coordinator of
:mod:`rag_core.runs.executor` (whose module docstring states the rules)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from rag_core.engine import BatchPolicy, CallRecord, Engine, Gate, ItemResult
from rag_core.experiment import AssistantConfig
from rag_core.models import Answer, ScoredChunk
from rag_core.runs.handle import RunHandle
from rag_core.runs.passes import RetryNotes, calls_of, pass_timings
from rag_core.runs.request import RunOptions, RunRequest
from rag_core.runs.reuse import ReuseCache
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.usage import AttemptLedger, charging
from rag_core.vocab import Backend, Mode, Phase, RunStatus

log = logging.getLogger(__name__)


class GenerationPhase:
    """Answer generation of one attempt."""

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

    def _answer_key(self, i: int, contexts: list[list[ScoredChunk]]) -> str:
        return ReuseCache.answer_key(
            self.req.backend, self.assistant, self.req.items[i].question, contexts[i]
        )

    def _reuse_answers(
        self, todo: list[int], contexts: list[list[ScoredChunk]], answers: dict[int, Answer]
    ) -> list[int]:
        """Store the answers an earlier run of the sweep already gave; return what is left to do."""
        assert self.reuse is not None
        left = []
        for i in todo:
            got = self.reuse.answer(self._answer_key(i, contexts))
            if got is None:
                left.append(i)
                continue
            ans, latency = got
            answers[i] = ans
            self.store.save_answer(
                self.run_id,
                i,
                answer=ans.text,
                contexts=[c.to_dict() for c in contexts[i]],
                error=None,
                error_kind=None,
                latency_s=latency,
                attempts=0,  # nothing was sent: the answer is an earlier run's
                input_tokens=ans.input_tokens,
                output_tokens=ans.output_tokens,
                model=ans.model,
            )
        return left

    def _remember_answers(
        self, todo: list[int], contexts: list[list[ScoredChunk]], answers: dict[int, Answer]
    ) -> None:
        assert self.reuse is not None
        latency = {r.index: r.latency_s for r in self.store.get_results(self.run_id)}
        for i in todo:
            if i in answers:
                self.reuse.put_answer(self._answer_key(i, contexts), answers[i], latency.get(i))

    # -- generation --------------------------------------------------------------------------------
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
            try:
                save_answer(r)
            except Exception as exc:  # on the loop thread: stop the run instead of logging and going on
                self._write_failed(exc, f"the answer to question {todo[r.index] + 1}")

        def save_answer(r: ItemResult) -> None:
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
            polling=self.options.batch_polling,
            on_created=self.options.on_batch_created,
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
