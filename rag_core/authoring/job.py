"""One generation: the Claude calls on the engine, then the local checks, then the review queue.

Rules
- Nothing is sent before :func:`estimate` has priced the plan's real prompts (characters / 4 for
  input, :data:`~rag_core.authoring.prompt.OUTPUT_TOKENS` per kind for output); requests whose
  response is in the generation cache (:mod:`rag_core.storage.authoring`) cost nothing and are
  counted apart. Closed-book checks of pairs that are not cached yet are estimated too.
- :class:`GenerationJob` runs on a coordinator thread. Phase ``writing``: one engine batch
  (:meth:`~rag_core.engine.Engine.submit` with the API key's shared gate, the settings'
  :class:`~rag_core.engine.BatchPolicy`), one job per pair; each Claude request is one
  :func:`~rag_core.engine.remote_call` (its own gate slot, per-request timeout, retry budget,
  ``retry-after``), the SDK's own retries off. A cache hit sends nothing; a fresh response is cached
  at once, so a cancelled or failed generation is not paid for again. Phase ``checking``: the local
  checks of :mod:`rag_core.authoring.checks` (declines verified by retrieval, general-knowledge
  flag, near-duplicates) and the pairs are stored as ``pending`` in the review queue (or accepted
  into a question set at once with ``accept_all``).
- ``cancel()`` stops the batch: pairs already written are still checked and queued (they were paid
  for); unstarted ones are not sent. A fatal error (rejected key) stops the batch the same way and
  is in the report.
- Progress and the final :class:`GenerationReport` are plain snapshots, safe from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag_core.answer.claude import gate_key
from rag_core.authoring.checks import (
    GENERAL_KNOWLEDGE,
    decline_is_covered,
    drop_duplicates,
    general_knowledge,
)
from rag_core.authoring.client import GenerationClient, Usage
from rag_core.authoring.plan import GenerationPlan, QuestionKind, Target
from rag_core.authoring.prompt import (
    CLOSED_BOOK_OUTPUT_TOKENS,
    OUTPUT_TOKENS,
    ParsedPair,
    closed_book_request,
    parse_closed_book,
    parse_pair,
    request_key,
    tool_input,
    write_request,
)
from rag_core.engine import BatchPolicy, ItemResult
from rag_core.errors import RagError
from rag_core.models import GeneratedPair, SourceLink
from rag_core.text import passage_fingerprint
from rag_core.usage import estimate_tokens
from rag_core.vocab import Expected

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.settings import Settings
    from rag_core.storage import HistoryStore

__all__ = [
    "MAX_TOKENS",
    "GenerationEstimate",
    "GenerationJob",
    "GenerationProgress",
    "GenerationReport",
    "estimate",
]

log = logging.getLogger(__name__)

#: max_tokens of a write request.
MAX_TOKENS = 1024
#: Top-k retrieved to verify a decline question.
DECLINE_TOP_K = 4


@dataclass(frozen=True)
class GenerationEstimate:
    """What a plan would cost, before it starts (an upper estimate)."""

    calls: int
    """Claude requests to send (writes + closed-book checks), cache hits excluded."""
    cached: int
    """Write requests answered from the generation cache (free)."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str


@dataclass(frozen=True)
class GenerationReport:
    """How a generation went (the numbers the page, the CLI and the benchmark show)."""

    job: str
    collection: str
    requested: int
    written: int = 0
    """Pairs Claude wrote (or the cache had) that parsed."""
    failed: int = 0
    not_run: int = 0
    """Pairs never written (cancelled or stopped)."""
    duplicates_dropped: int = 0
    declines_dropped: int = 0
    """Decline questions dropped because retrieval found the documents cover them."""
    flagged_general: int = 0
    queued: tuple[int, ...] = ()
    """Review-queue ids of the pairs stored."""
    accepted_into: str | None = None
    calls_sent: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    """Actual cost of the requests sent, from the usage Claude reported."""
    estimate: GenerationEstimate | None = None
    wall_s: float = 0.0
    cancelled: bool = False
    errors: tuple[str, ...] = ()
    """Distinct error messages (at most 5)."""

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class GenerationProgress:
    phase: str
    """``writing`` | ``checking`` | ``done``."""
    done: int
    total: int
    ok: int
    errors: int
    cancelled: bool
    finished: bool
    report: GenerationReport | None = None


@dataclass
class _Draft:
    target: Target
    pair: ParsedPair
    closed_book: str | None = None


def estimate(
    settings: Settings,
    store: HistoryStore,
    plan: GenerationPlan,
    *,
    model: str,
    closed_book: bool = True,
    avoid: list[str] | None = None,
) -> GenerationEstimate:
    """Price ``plan``'s requests (see the module docstring)."""
    requests = [write_request(t, model=model, max_tokens=MAX_TOKENS, avoid=avoid or []) for t in plan.targets]
    keys = [request_key(r) for r in requests]
    cached = store.generation_cache_has(keys)
    calls = in_tok = out_tok = hits = 0
    for t, r, k in zip(plan.targets, requests, keys, strict=True):
        if k in cached:
            hits += 1
            continue
        calls += 1
        in_tok += estimate_tokens(r["system"], r["tools"], r["messages"])
        out_tok += OUTPUT_TOKENS[t.kind]
        if closed_book and t.kind != QuestionKind.DECLINE:
            calls += 1
            in_tok += 80
            out_tok += CLOSED_BOOK_OUTPUT_TOKENS
    return GenerationEstimate(
        calls=calls,
        cached=hits,
        input_tokens=in_tok,
        output_tokens=out_tok,
        cost_usd=settings.cost_usd(model, in_tok, out_tok),
        model=model,
    )


class GenerationJob:
    """A generation running on a coordinator thread (see the module docstring)."""

    def __init__(
        self,
        plan: GenerationPlan,
        *,
        settings: Settings,
        store: HistoryStore,
        engine: Engine,
        model: str,
        search: Callable[[list[str]], list[list[Any]]],
        existing: list[str],
        closed_book: bool = True,
        accept: Callable[[list[GeneratedPair]], str | None] | None = None,
        embedder: Any = None,
        answerer: Any = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.started_by = ""
        """Who started it (:attr:`~rag_core.access.Principal.owner_key`): only they or an admin may cancel it."""
        self.plan, self.settings, self.store, self.engine = plan, settings, store, engine
        self.model = model
        self.search = search
        self.existing = list(existing)
        self.closed_book = closed_book
        self.accept = accept
        self._embedder = embedder
        self._answerer = answerer
        self.usage = Usage()
        self.client = GenerationClient(settings, store, model, self.usage)  # raises AuthError without a key
        avoid = [q for q in existing]
        self.requests = [
            write_request(t, model=model, max_tokens=MAX_TOKENS, avoid=avoid) for t in plan.targets
        ]
        self.estimate = estimate(settings, store, plan, model=model, closed_book=closed_book, avoid=avoid)
        self._lock = threading.Lock()
        self._phase = "writing"
        self._handle: Any = None
        self._cancel = threading.Event()
        self._report: GenerationReport | None = None
        self._done = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"generation-{self.id}", daemon=True)

    # --- public ----------------------------------------------------------------------------------
    def start(self) -> GenerationJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()
        with self._lock:
            h = self._handle
        if h is not None:
            h.cancel()

    def wait(self, timeout: float | None = None) -> GenerationReport | None:
        self._done.wait(timeout)
        return self._report

    def done(self) -> bool:
        return self._done.is_set()

    def progress(self) -> GenerationProgress:
        with self._lock:
            h, phase, report = self._handle, self._phase, self._report
        total = len(self.plan.targets)
        if h is None:
            return GenerationProgress(
                phase, 0, total, 0, 0, self._cancel.is_set(), report is not None, report
            )
        p = h.progress()
        return GenerationProgress(
            phase, p.done, total, p.ok, p.errors, self._cancel.is_set(), report is not None, report
        )

    # --- coordinator thread -------------------------------------------------------------------
    def _job(self, i: int) -> Callable[[], Any]:
        target = self.plan.targets[i]

        async def run() -> _Draft:
            label = f"{target.kind.value} {i + 1}"
            message = await self.client.call(
                self.requests[i], label, validate=lambda m: parse_pair(tool_input(m), target)
            )
            pair = parse_pair(tool_input(message), target)
            draft = _Draft(target, pair)
            if self.closed_book and target.kind != QuestionKind.DECLINE:
                reply = await self.client.call(
                    closed_book_request(pair.question, model=self.model), f"{label} · closed book"
                )
                draft.closed_book = parse_closed_book(reply)
            return draft

        return run

    def _run(self) -> None:
        results: list[ItemResult] = []
        error: str | None = None
        try:
            n = len(self.plan.targets)
            labels = [f"{t.kind.value} {i + 1}" for i, t in enumerate(self.plan.targets)]
            policy = BatchPolicy.from_settings(self.settings)
            with self.engine.gate(gate_key(self.settings), concurrency=policy.concurrency) as gate:
                h = self.engine.submit(
                    [self._job(i) for i in range(n)], labels=labels, policy=policy, gate=gate
                )
                with self._lock:
                    self._handle = h
                if self._cancel.is_set():
                    h.cancel()
                results = h.wait()
            with self._lock:
                self._phase = "checking"
            report = self._finish(results)
        except Exception as exc:  # never leave a page polling a dead job
            log.exception("generation %s failed", self.id)
            error = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
            report = self._report_of(results, [], {}, 0, 0, None, [error])
        with self._lock:
            self._report = report
            self._phase = "done"
        self._done.set()

    def _finish(self, results: list[ItemResult]) -> GenerationReport:
        drafts: list[_Draft] = [r.value for r in results if r.status == "ok" and r.value is not None]
        errors = [r.error for r in results if r.status == "error" and r.error]
        # 1. Declines: kept only when retrieval finds nothing relevant (checks.decline_is_covered).
        declines = [d for d in drafts if d.target.kind == QuestionKind.DECLINE]
        covered = 0
        if declines:
            hits = self.search([d.pair.question for d in declines])
            answerer = self._answerer
            if answerer is None:
                from rag_core.answer.extractive import ExtractiveAnswerer

                answerer = ExtractiveAnswerer(self._embedder)
            for d, ctx in zip(declines, hits, strict=True):
                if decline_is_covered(d.pair.question, ctx, answerer):
                    drafts.remove(d)
                    covered += 1
        # 2. Near-duplicates (among the new pairs and against the set + queue).
        embedder = self._embedder
        if embedder is None and drafts:
            from rag_core.ingest.embeddings import get_embedder

            embedder = get_embedder()
        kept, dropped = drop_duplicates([d.pair.question for d in drafts], self.existing, embedder)
        drafts = [drafts[i] for i in kept]
        # 3. General knowledge (closed book) and the records.
        pairs = []
        flagged = 0
        for d in drafts:
            flags: tuple[str, ...] = ()
            if d.closed_book is not None and general_knowledge(
                d.pair.question, d.pair.expected_answer, d.closed_book, embedder
            ):
                flags = (GENERAL_KNOWLEDGE,)
                flagged += 1
            pairs.append(self._record(d, flags))
        stored = self.store.add_generated_pairs(pairs)
        into = self.accept(stored) if self.accept is not None and stored else None
        return self._report_of(results, stored, dropped, covered, flagged, into, errors)

    def _record(self, d: _Draft, flags: tuple[str, ...]) -> GeneratedPair:
        links = tuple(
            SourceLink(
                collection=self.plan.collection,
                document=c.source,
                version=int(self.plan.versions.get(c.source, 1)),
                section=c.section,
                page=c.page or None,
                chunk_id=c.id,
                passage=c.text,
                fingerprint=passage_fingerprint(c.text),
                origin="generated",
            )
            for c in (d.target.passages[i] for i in d.pair.passage_ids)
        )
        decline = d.target.kind == QuestionKind.DECLINE
        return GeneratedPair(
            id=0,
            job=self.id,
            collection=self.plan.collection,
            kind=d.target.kind.value,
            question=d.pair.question,
            expected_answer=d.pair.expected_answer,
            expected=Expected.DECLINE if decline else Expected.ANSWER,
            sources=links,
            flags=flags,
            model=self.model,
        )

    def _report_of(
        self,
        results: list[ItemResult],
        stored: list[GeneratedPair],
        dropped: dict[int, str],
        covered: int,
        flagged: int,
        into: str | None,
        errors: list[str],
    ) -> GenerationReport:
        u = self.usage
        return GenerationReport(
            job=self.id,
            collection=self.plan.collection,
            requested=len(self.plan.targets),
            written=sum(1 for r in results if r.status == "ok"),
            failed=sum(1 for r in results if r.status == "error"),
            not_run=len(self.plan.targets) - sum(1 for r in results if r.status in ("ok", "error")),
            duplicates_dropped=len(dropped),
            declines_dropped=covered,
            flagged_general=flagged,
            queued=tuple(p.id for p in stored),
            accepted_into=into,
            calls_sent=u.calls,
            cache_hits=u.hits,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cost_usd=self.settings.cost_usd(self.model, u.input_tokens, u.output_tokens),
            estimate=self.estimate,
            wall_s=time.perf_counter() - self._t0,
            cancelled=self._cancel.is_set(),
            errors=tuple(dict.fromkeys(errors))[:5],
        )


# --- the generations running in this process ----------------------------------------------------
_JOBS: dict[str, GenerationJob] = {}
_JOBS_LOCK = threading.Lock()
_KEEP = 32


def register(job: GenerationJob) -> None:
    with _JOBS_LOCK:
        _JOBS[job.id] = job
        finished = [k for k, j in _JOBS.items() if j.done()]
        for k in finished[: max(0, len(_JOBS) - _KEEP)]:
            del _JOBS[k]


def find(job_id: str) -> GenerationJob | None:
    with _JOBS_LOCK:
        return _JOBS.get(job_id)
