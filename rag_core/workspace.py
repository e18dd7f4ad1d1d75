"""The dashboard's one entry into ``rag_core``: a facade so that pages stay thin.

A :class:`Workspace` bundles what the pages need for one data directory — the
:class:`~rag_core.storage.store.HistoryStore`, the :class:`~rag_core.ingest.index.PolicyIndex` (opened lazily)
and the process-wide :class:`~rag_core.engine.core.Engine` — behind plain methods: documents, question
sets, cost estimates, runs, comparison and export. It never imports streamlit; the app caches one
``Workspace`` per data directory with ``st.cache_resource(on_release=Workspace.close)``.

Contracts
- "Empty" is ``[]`` / an empty DataFrame, never ``None``.
- Methods raise only :class:`~rag_core.errors.RagError` subclasses, with messages an HR analyst can
  act on: :class:`InputError` for something the user picked or typed (unknown run or set, bad
  rows, no documents yet), :class:`StorageError` when the history database fails.
- Ingestion never raises for a bad file: each file gets an
  :class:`~rag_core.ingest.service.IngestOutcome` (``status == "error"`` with a message naming it) and the
  other files still index.
- :meth:`Workspace.version` changes whenever the history database or the index on disk changes
  (from this process or another one, e.g. a CLI run): pages key their cached reads on it.
- Thread-safety: methods may be called from several Streamlit script threads at once. Runs execute
  on the engine's loop thread; their handles are found again by run id (:meth:`progress`), so a
  page keeps only the id.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rag_core.errors import InputError, RagError
from rag_core.models import Chunk, DocumentInfo, QAItem, RequestTiming, ScoredChunk
from rag_core.reporting import charts
from rag_core.reporting.export import (
    questions_csv,
    questions_json,
    results_csv,
    run_json_text,
    run_summary_json,
)
from rag_core.runs.executor import (
    RunProgress,
    RunRequest,
    active_runs,
    get_handle,
    recover_interrupted,
    resume_run,
    start_run,
)
from rag_core.settings import PROJECT_ROOT, Settings
from rag_core.storage.store import HistoryStore, QuestionSetInfo, ResultRecord, RunRecord

if TYPE_CHECKING:  # heavy modules (chromadb, the embedding model) load only when needed
    from rag_core.engine.core import Engine
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.service import IngestOutcome

log = logging.getLogger(__name__)

#: Name of the question set created from :data:`SAMPLE_QUESTIONS` when the store has none.
SAMPLE_SET_NAME = "Sample: staff handbook"
SAMPLE_QUESTIONS = PROJECT_ROOT / "data" / "sample" / "questions.json"
SAMPLE_PDF = PROJECT_ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"

#: Metric names per suite (the evaluation module is the source of truth; see :func:`suite_metrics`).
_FALLBACK_SUITES: dict[str, tuple[str, ...]] = {
    "offline": ("semantic_similarity", "rouge_l", "context_recall"),
    "judge": ("faithfulness", "answer_relevancy", "context_precision", "context_recall"),
    "none": (),
}

# --- cost estimate assumptions (tokens ≈ characters / 4) -----------------------------------------
#: Characters per token used for estimates.
CHARS_PER_TOKEN = 4.0
#: Prompt tokens of the answer prompt around the question and the context.
ANSWER_PROMPT_TOKENS = 350
#: Tokens of a typical question.
QUESTION_TOKENS = 30
#: Tokens of a typical answer (also the answer's share of judge prompts).
ANSWER_TOKENS = 250
#: Prompt tokens of a RAGAS judge template (instructions + few-shot examples).
JUDGE_PROMPT_TOKENS = 700
#: Output tokens of a judge call (verdict JSON); faithfulness writes more.
JUDGE_OUTPUT_TOKENS = 200
FAITHFULNESS_OUTPUT_TOKENS = 500

#: Runs started by any Workspace of this process: run id → data dir (handles are process-wide,
#: and a new Workspace for the same data dir, e.g. after a cache clear, must find them again).
_STARTED: dict[int, str] = {}
_STARTED_LOCK = threading.Lock()


def suite_metrics(suite: str) -> tuple[str, ...]:
    """The metric names of a suite (``"offline"``, ``"judge"``, ``"none"``); ``()`` for ``"none"``.

    Raises :class:`InputError` for an unknown suite.
    """
    names = dict(_FALLBACK_SUITES)
    try:
        from rag_core.evaluation import core as evaluation

        names["offline"] = tuple(evaluation.OFFLINE_METRICS)
        names["judge"] = tuple(evaluation.JUDGE_METRICS)
    except (ImportError, AttributeError):  # pragma: no cover - evaluation always ships these
        pass
    if suite not in names:
        raise InputError(f"Unknown metric suite {suite!r}: choose one of {', '.join(names)}.")
    return names[suite]


def batch_discount() -> float:
    """Price factor of the ``batch`` mode's answers (Message Batches cost half)."""
    try:
        from rag_core.runs.batch_mode import BATCH_DISCOUNT

        return float(BATCH_DISCOUNT)
    except (ImportError, AttributeError):  # pragma: no cover - batches always ships it
        return 0.5


def judge_calls_per_question(metric: str, top_k: int) -> int:
    """Claude calls one judged answer costs for ``metric`` with ``top_k`` chunks (owned by
    :func:`rag_core.evaluation.core.judge_calls`, so the estimate and the scoring agree)."""
    from rag_core.evaluation.core import judge_calls

    return judge_calls(metric, top_k)


@dataclass(frozen=True)
class CostEstimate:
    """What a run would cost with Claude, before it starts. An upper estimate: cache hits are free."""

    answer_calls: int
    """Claude calls that write answers (twice the questions in compare mode)."""
    judge_calls: int
    """Claude calls that judge answers (metric calls × questions × repeats)."""
    input_tokens: int
    """Estimated prompt tokens over all calls."""
    output_tokens: int
    """Estimated completion tokens over all calls."""
    cost_usd: float
    """Estimated price in USD from ``settings.cost_usd`` (answer model + judge model)."""

    @property
    def calls(self) -> int:
        return self.answer_calls + self.judge_calls

    @property
    def uses_claude(self) -> bool:
        return self.calls > 0


def estimate_run(
    settings: Settings,
    *,
    n_questions: int,
    backend: str,
    mode: str,
    suite: str,
    metrics: Sequence[str] | None,
    top_k: int,
    judge_repeats: int = 1,
    context_chars: int | None = None,
) -> CostEstimate:
    """Estimate Claude calls, tokens and cost for a run.

    Answers: one call per question (two in ``compare`` mode: a sequential and an async pass) when
    ``backend == "claude"``; in ``batch`` mode they cost :func:`batch_discount` of the price. Judge (``suite == "judge"``): per question and repeat, faithfulness 2 +
    answer relevancy 3 + context precision ``top_k`` + context recall 1 calls (only the chosen
    ``metrics``). Tokens are estimated as characters / 4, with ``context_chars`` per retrieved
    chunk (default: ``settings.chunk_size``, the largest a chunk can be).
    """
    n = max(0, int(n_questions))
    k = max(1, int(top_k))
    repeats = max(1, int(judge_repeats))
    chunk_tokens = math.ceil((context_chars or settings.chunk_size) / CHARS_PER_TOKEN)
    context_tokens = k * chunk_tokens

    answer_calls = 0
    a_in = a_out = 0
    if backend == "claude":  # compare: a sequential and an async pass; batch: one request each
        answer_calls = n * (2 if mode == "compare" else 1)
        a_in = answer_calls * (ANSWER_PROMPT_TOKENS + QUESTION_TOKENS + context_tokens)
        a_out = answer_calls * ANSWER_TOKENS

    judge_calls = 0
    j_in = j_out = 0
    if suite == "judge":
        chosen = list(metrics) if metrics else list(suite_metrics("judge"))
        per_q_in = per_q_out = per_q_calls = 0
        for m in chosen:
            calls = judge_calls_per_question(m, k)
            per_q_calls += calls
            if m == "faithfulness":  # statements from the answer, then verdicts against the context
                per_q_in += 2 * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS) + context_tokens
                per_q_out += 2 * FAITHFULNESS_OUTPUT_TOKENS
            elif m == "answer_relevancy":  # generated questions from the answer
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + ANSWER_TOKENS)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
            elif m == "context_precision":  # one chunk per call
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS + chunk_tokens)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
            elif m == "context_recall":
                per_q_in += calls * (JUDGE_PROMPT_TOKENS + QUESTION_TOKENS + ANSWER_TOKENS + context_tokens)
                per_q_out += calls * JUDGE_OUTPUT_TOKENS
        judge_calls = n * repeats * per_q_calls
        j_in = n * repeats * per_q_in
        j_out = n * repeats * per_q_out

    cost = 0.0
    if answer_calls:
        answer_cost = settings.cost_usd(settings.answer_model, a_in, a_out)
        cost += answer_cost * (batch_discount() if mode == "batch" else 1.0)
    if judge_calls:
        cost += settings.cost_usd(settings.judge_model, j_in, j_out)
    return CostEstimate(
        answer_calls=answer_calls,
        judge_calls=judge_calls,
        input_tokens=a_in + j_in,
        output_tokens=a_out + j_out,
        cost_usd=round(cost, 4),
    )


# --------------------------------------------------------------------------------------------
# Small formatting helpers shared by pages (pure)
# --------------------------------------------------------------------------------------------
def metric_line(stats: Mapping[str, Any] | None) -> str:
    """``"0.86 · 9 of 10 scored"`` from a summary's metric stats; ``"— · 0 of 10 scored"`` if none."""
    stats = stats or {}
    scored = int(stats.get("scored") or 0)
    total = scored + int(stats.get("failed") or 0)
    mean = stats.get("mean")
    value = "—" if mean is None or not math.isfinite(float(mean)) else f"{float(mean):.2f}"
    sd = stats.get("stdev")
    spread = f" ± {float(sd):.2f}" if sd is not None and math.isfinite(float(sd)) and sd > 0 else ""
    return f"{value}{spread} · {scored} of {total} scored"


def speedup_line(generation: Mapping[str, Any] | None) -> str | None:
    """``"3.4× measured (ideal 8×)"`` / ``"2.9× estimated (ideal 8×)"``; ``None`` when unknown."""
    g = generation or {}
    ideal = g.get("ideal_speedup")
    ideal_txt = f" (ideal {float(ideal):.0f}×)" if ideal else ""
    if g.get("speedup_measured") is not None:
        return f"{float(g['speedup_measured']):.1f}× measured{ideal_txt}"
    if g.get("speedup_estimated") is not None:
        return f"{float(g['speedup_estimated']):.1f}× estimated{ideal_txt}"
    return None


def duration(seconds: float | None) -> str:
    """``"—"``, ``"0.8 s"``, ``"42 s"`` or ``"3 min 05 s"``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


#: Display names of the known metrics (others: the name with spaces, capitalised).
METRIC_LABELS: dict[str, str] = {
    "faithfulness": "Faithfulness",
    "answer_relevancy": "Answer relevancy",
    "context_precision": "Context precision",
    "context_recall": "Context recall",
    "semantic_similarity": "Semantic similarity",
    "rouge_l": "ROUGE-L",
}


def metric_label(name: str) -> str:
    """``"rouge_l"`` → ``"ROUGE-L"``, ``"my_metric"`` → ``"My metric"``."""
    return METRIC_LABELS.get(name) or name.replace("_", " ").capitalize()


def rows_to_items(rows: Iterable[Mapping[str, Any]]) -> list[QAItem]:
    """Editor rows (dicts with ``question``/``ground_truth``; missing or None = ``''``) → items,
    unvalidated and in order (validation names rows by this order)."""
    out: list[QAItem] = []
    for r in rows:
        q, gt = r.get("question"), r.get("ground_truth")
        out.append(QAItem(question=_text(q), ground_truth=_text(gt)))
    return out


def items_to_rows(items: Iterable[QAItem]) -> list[dict[str, str]]:
    """Items → plain dict rows (safe to keep in ``st.session_state``)."""
    return [{"question": it.question, "ground_truth": it.ground_truth} for it in items]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """A baseline run next to a candidate run."""

    baseline: RunRecord
    candidate: RunRecord
    baseline_row: pd.Series
    """The baseline's row of :func:`charts.runs_frame` (input of ``metric_compare_figure``)."""
    candidate_row: pd.Series
    deltas: pd.DataFrame
    """:func:`charts.per_question_deltas` (``regression`` column flags drops > threshold)."""
    warnings: list[str] = field(default_factory=list)
    """Why the numbers may not be comparable (different suites, judge models, question sets…)."""

    @property
    def regressions(self) -> int:
        return int(self.deltas["regression"].sum()) if "regression" in self.deltas else 0


# --------------------------------------------------------------------------------------------
# The facade
# --------------------------------------------------------------------------------------------
class Workspace:
    """Everything the dashboard does with one data directory. See the module docstring."""

    def __init__(
        self, settings: Settings, *, store: HistoryStore | None = None, engine: Engine | None = None
    ) -> None:
        self.settings = settings
        self.store = store or HistoryStore(settings.db_path)
        self._engine = engine
        self._index: PolicyIndex | None = None
        self._lock = threading.RLock()
        self._writes = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"Workspace({str(self.settings.data_dir)!r})"

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The process-wide engine (started on first use; shut down at exit, not by :meth:`close`)."""
        if self._engine is None:
            from rag_core.engine.core import get_engine

            self._engine = get_engine()
        return self._engine

    def close(self) -> None:
        """Release the index and the store. Idempotent.

        The engine is process-wide and shut down at exit, so it is left running. While a run of
        this workspace is still executing, the store stays open (the run writes to it) and is
        closed by the garbage collector later.
        """
        if self._closed:
            return
        self._closed = True
        index, self._index = self._index, None
        close = getattr(index, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # closing must never raise into Streamlit's cache release
                log.debug("closing the index failed", exc_info=True)
        if self.active_run_ids():
            log.info("workspace closed while a run is active; the history store stays open for it")
            return
        self.store.close()

    def recover_interrupted(self) -> list[int]:
        """Mark runs left ``running`` by a process that died as ``interrupted``; returns their ids.

        Runs still executing in this process (started by another session or an earlier
        workspace) are left alone.
        """
        active = self.active_run_ids()
        if not active:
            return recover_interrupted(self.store)
        return self.store.mark_interrupted(exclude=active)

    def version(self) -> str:
        """A token that changes whenever stored data may have changed (cache key for reads).

        Combines a counter of this workspace's writes with the size and modification time of the
        history database (and its WAL) and of the index's files, so writes by a run in progress or
        by another process (the CLI) are noticed too. Costs a few ``stat`` calls.
        """
        parts = [str(self._writes)]
        db = self.settings.db_path
        chroma = self.settings.chroma_dir / "chroma.sqlite3"
        for p in (db, Path(f"{db}-wal"), chroma, Path(f"{chroma}-wal")):
            try:
                st = os.stat(p)
                parts.append(f"{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append("-")
        return "|".join(parts)

    def _touch(self) -> None:
        with self._lock:
            self._writes += 1

    # --- documents --------------------------------------------------------------------------
    def _get_index(self) -> PolicyIndex:
        with self._lock:
            if self._index is None:
                from rag_core.ingest.index import PolicyIndex

                self._index = PolicyIndex(self.settings)
            return self._index

    def documents(self) -> list[DocumentInfo]:
        """Indexed documents sorted by name (from the history store, kept in step by ingestion);
        ``[]`` when none."""
        return self.store.list_documents()

    def has_documents(self) -> bool:
        return bool(self.documents())

    def ingest_files(
        self,
        files: Iterable[tuple[str, bytes]],
        *,
        on_start: Callable[[int, str], None] | None = None,
        on_done: Callable[[int, IngestOutcome], None] | None = None,
    ) -> list[IngestOutcome]:
        """Index several files, one after another, in the calling thread.

        ``files`` are ``(file name, bytes)``. ``on_start(i, name)`` is called before file ``i``
        (0-based) and ``on_done(i, outcome)`` after it, so a page can show per-file progress. A bad
        file never stops the others: its outcome has ``status == "error"`` and a message naming it.
        """
        from rag_core.ingest.service import IngestOutcome, ingest_bytes

        outcomes: list[IngestOutcome] = []
        for i, (name, data) in enumerate(files):
            if on_start is not None:
                on_start(i, name)
            try:
                with self._lock:
                    index = self._get_index()
                outcome = ingest_bytes(name, data, settings=self.settings, store=self.store, index=index)
            except RagError as exc:  # e.g. the index itself cannot be opened
                outcome = IngestOutcome(name=name[:120], status="error", error=str(exc))
            self._touch()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(i, outcome)
        return outcomes

    def ingest_sample(self) -> IngestOutcome:
        """Index the bundled sample handbook (a quick start for a new user)."""
        return self.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())])[0]

    def delete_document(self, name: str) -> int:
        """Remove a document from the index, the kept copy and the store; returns chunks removed
        (0 when it was not indexed)."""
        from rag_core.ingest.service import delete_document

        try:
            return delete_document(name, settings=self.settings, store=self.store)
        finally:
            self._touch()

    def reindex_document(self, name: str) -> IngestOutcome:
        """Parse the kept copy of ``name`` again and replace its chunks (an ``"error"`` outcome
        when the original file is no longer stored)."""
        from rag_core.ingest.service import reindex_document

        try:
            return reindex_document(name, settings=self.settings, store=self.store)
        finally:
            self._touch()

    def chunks(self, name: str) -> list[Chunk]:
        """A document's chunks in position order (with page numbers); ``[]`` if not indexed."""
        return list(self._get_index().chunks_of(name))

    def search(self, query: str, top_k: int = 4) -> list[ScoredChunk]:
        """The ``top_k`` chunks closest to ``query``, best first; ``[]`` when nothing is indexed.

        Raises :class:`InputError` for an empty query.
        """
        query = (query or "").strip()
        if not query:
            raise InputError("Type a question to search the index.")
        if not self.has_documents():
            return []
        got = self._get_index().query([query], max(1, min(int(top_k), 50)))
        return list(got[0]) if got else []

    # --- question sets ----------------------------------------------------------------------
    def question_sets(self) -> list[QuestionSetInfo]:
        """Saved sets sorted by name; ``[]`` when none."""
        return self.store.list_question_sets()

    def question_set(self, name: str) -> list[QAItem]:
        """A set's items. Raises :class:`InputError` if there is no such set."""
        return self.store.get_question_set(name)

    def ensure_sample_set(self) -> bool:
        """Create :data:`SAMPLE_SET_NAME` from the bundled questions when the store has no set.

        Returns True when it was created. A missing sample file is not an error (returns False).
        """
        if self.store.list_question_sets() or not SAMPLE_QUESTIONS.is_file():
            return False
        from rag_core.ingest.questions import load_questions

        self.store.save_question_set(SAMPLE_SET_NAME, load_questions(SAMPLE_QUESTIONS))
        self._touch()
        return True

    def save_question_set(self, name: str, rows: Iterable[QAItem | Mapping[str, Any]]) -> QuestionSetInfo:
        """Validate and save ``rows`` (items or editor dicts) as the set ``name`` (created or replaced).

        Raises :class:`InputError` naming every bad row (1-based, in the given order): empty
        question, duplicate, too long; or an empty set / bad name.
        """
        items = [r if isinstance(r, QAItem) else rows_to_items([r])[0] for r in rows]
        info = self.store.save_question_set(name, items)
        self._touch()
        return info

    def rename_question_set(self, old: str, new: str) -> QuestionSetInfo:
        """Rename a set. Raises :class:`InputError` if ``old`` does not exist or ``new`` is taken
        or empty. Runs keep the name they were started with."""
        new = (new or "").strip()
        if not new:
            raise InputError("Type a new name for the question set.")
        if new == old:
            items = self.question_set(old)
            return QuestionSetInfo(name=old, n_items=len(items), updated_at="")
        if any(s.name == new for s in self.question_sets()):
            raise InputError(f"A question set named '{new}' already exists; pick another name.")
        items = self.question_set(old)
        info = self.store.save_question_set(new, items)
        self.store.delete_question_set(old)
        self._touch()
        return info

    def delete_question_set(self, name: str) -> bool:
        """Delete a set (runs that used it are kept). False when it did not exist."""
        try:
            return self.store.delete_question_set(name)
        finally:
            self._touch()

    @staticmethod
    def import_questions(filename: str, data: bytes) -> list[QAItem]:
        """Parse an uploaded CSV/JSON question file. Raises :class:`InputError` naming the file and
        the rows at fault."""
        from rag_core.ingest.questions import parse_questions

        return parse_questions(filename, data)

    @staticmethod
    def export_questions(items: Iterable[QAItem], fmt: str) -> str:
        """A question set as ``"csv"`` or ``"json"`` text that :meth:`import_questions` reads back."""
        items = list(items)
        if fmt == "csv":
            return questions_csv(items)
        if fmt == "json":
            return questions_json(items)
        raise InputError(f"Unknown export format {fmt!r}: choose csv or json.")

    # --- runs -------------------------------------------------------------------------------
    def estimate(
        self,
        *,
        n_questions: int,
        backend: str,
        mode: str,
        suite: str,
        metrics: Sequence[str] | None,
        top_k: int,
        judge_repeats: int = 1,
    ) -> CostEstimate:
        """:func:`estimate_run` with this workspace's settings."""
        return estimate_run(
            self.settings,
            n_questions=n_questions,
            backend=backend,
            mode=mode,
            suite=suite,
            metrics=metrics,
            top_k=top_k,
            judge_repeats=judge_repeats,
        )

    def start_run(
        self,
        question_set: str,
        *,
        backend: str = "offline",
        mode: str = "async",
        concurrency: int | None = None,
        top_k: int | None = None,
        suite: str = "offline",
        metrics: Sequence[str] | None = None,
        judge_repeats: int = 1,
        fresh: bool = False,
    ) -> int:
        """Start a run of the saved set ``question_set`` in the background; returns its id at once.

        Raises :class:`InputError` (nothing stored) when no document is indexed, the set does not
        exist or is empty, an option is out of range, or Claude is chosen without an API key.
        ``metrics`` empty or None means all of the suite's metrics.
        """
        if not self.has_documents():
            raise InputError(
                "No documents are indexed yet: upload policy documents on the Documents page first."
            )
        items = self.question_set(question_set)
        request = RunRequest(
            items=tuple(items),
            backend=backend,
            mode=mode,
            concurrency=int(concurrency or self.settings.concurrency),
            top_k=int(top_k or self.settings.top_k),
            suite=suite,
            metrics=tuple(metrics) if metrics else None,
            question_set=question_set,
            fresh=fresh,
            judge_repeats=int(judge_repeats),
        )
        handle = start_run(request, settings=self.settings, store=self.store, engine=self.engine)
        self._remember(handle.run_id)
        return handle.run_id

    def resume_run(self, run_id: int) -> int:
        """Finish an interrupted or cancelled run (only what is missing); returns its id.

        Raises :class:`InputError` for an unknown run or one that is still running.
        """
        if run_id in self.active_run_ids():
            raise InputError(f"Run #{run_id} is still running; wait for it or cancel it first.")
        handle = resume_run(run_id, settings=self.settings, store=self.store, engine=self.engine)
        self._remember(handle.run_id)
        return handle.run_id

    def _remember(self, run_id: int) -> None:
        with _STARTED_LOCK:
            _STARTED[run_id] = str(self.settings.data_dir)
        self._touch()

    def _mine(self, run_id: int) -> bool:
        with _STARTED_LOCK:
            return _STARTED.get(run_id) == str(self.settings.data_dir)

    def progress(self, run_id: int) -> RunProgress | None:
        """Live progress of a run started by this process for this data dir; ``None`` otherwise
        (e.g. a run of another process: read :meth:`run` instead)."""
        if not self._mine(run_id):
            return None
        handle = get_handle(run_id)
        return handle.progress() if handle is not None else None

    def cancel_run(self, run_id: int) -> bool:
        """Ask a run to stop (finished answers and scores are kept). False if it is not running here."""
        handle = get_handle(run_id) if self._mine(run_id) else None
        if handle is None or handle.done():
            return False
        handle.cancel()
        self._touch()
        return True

    def wait_run(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until a run of this process ends (tests, scripts). True when it has ended."""
        handle = get_handle(run_id) if self._mine(run_id) else None
        if handle is None:
            return True
        handle.wait(timeout)
        self._touch()
        return handle.done()

    def active_run_ids(self) -> list[int]:
        """Ids of this data dir's runs still executing in this process, newest first."""
        return sorted((h.run_id for h in active_runs() if self._mine(h.run_id)), reverse=True)

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs newest first (at most ``limit``); ``[]`` when none."""
        return self.store.list_runs(limit)

    def run(self, run_id: int) -> RunRecord:
        """One run. Raises :class:`InputError` naming the run when it does not exist."""
        return self.store.get_run(run_id)

    def results(self, run_id: int) -> list[ResultRecord]:
        """A run's per-question results in input order. Raises :class:`InputError` if no such run."""
        return self.store.get_results(run_id)

    def requests(self, run_id: int) -> list[RequestTiming]:
        """A run's request timeline (for the Gantt chart); ``[]`` when none were recorded."""
        return self.store.get_requests(run_id)

    def delete_run(self, run_id: int) -> bool:
        """Delete a run and everything recorded for it. False when it did not exist.

        Raises :class:`InputError` when it is still running in this process (cancel it first) and
        :class:`StorageError` when another live process is still running it.
        """
        if run_id in self.active_run_ids():
            raise InputError(f"Run #{run_id} is still running; cancel it before deleting it.")
        try:
            return self.store.delete_run(run_id)
        finally:
            self._touch()

    def export_run(self, run_id: int, fmt: str) -> str:
        """A run as ``"json"`` (summary + results) or ``"csv"`` (one row per question).

        Raises :class:`InputError` for an unknown run or format.
        """
        summary = run_summary_json(self.store, run_id)
        if fmt == "json":
            return run_json_text(summary)
        if fmt == "csv":
            return results_csv(summary)
        raise InputError(f"Unknown export format {fmt!r}: choose csv or json.")

    # --- tables and comparison (pure pandas over stored records) -----------------------------
    @staticmethod
    def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
        """The History table: one row per run, newest first.

        Columns: ``Run`` (id), ``Date`` (UTC datetime), ``Question set``, ``Backend``, ``Mode``,
        ``Suite``, ``Status``, one column per metric named by the metric (mean, NaN when not
        scored), ``Speedup`` (measured, else estimated; NaN when unknown), ``Cost ($)``,
        ``Time (s)``, ``Questions``, ``Errors``.
        """
        df = charts.runs_frame(runs)
        metric_cols = charts.metric_columns(df)
        out = pd.DataFrame(
            {
                "Run": df["id"].astype(int),
                "Date": df["created_at"],
                "Question set": df["question_set"].fillna("—"),
                "Backend": df["backend"],
                "Mode": df["mode"],
                "Suite": df["suite"],
                "Status": df["status"],
            }
        )
        for col in metric_cols:
            out[charts.metric_name(col)] = df[col].astype(float)
        out["Speedup"] = df["speedup_measured"].astype(float).fillna(df["speedup_estimated"].astype(float))
        out["Cost ($)"] = df["cost_usd"].astype(float)
        out["Time (s)"] = df["total_s"].astype(float)
        out["Questions"] = df["n_questions"].astype(int)
        out["Errors"] = df["errors"].astype(int)
        return out.iloc[::-1].reset_index(drop=True)

    def compare(self, baseline_id: int, candidate_id: int) -> Comparison:
        """Compare two runs. Raises :class:`InputError` for an unknown run."""
        base, cand = self.run(baseline_id), self.run(candidate_id)
        frame = charts.runs_frame([base, cand])
        rows = {int(r["id"]): r for _, r in frame.iterrows()}
        deltas = charts.per_question_deltas(
            charts.results_frame(self.results(baseline_id)), charts.results_frame(self.results(candidate_id))
        )
        warnings: list[str] = []
        if baseline_id == candidate_id:
            warnings.append("Baseline and candidate are the same run: pick two different runs.")
        mismatch = _suite_mismatch(base, cand)
        if mismatch:
            warnings.append(mismatch + " Their scores are not comparable.")
        if (base.question_set or "") != (cand.question_set or ""):
            warnings.append(
                f"The runs used different question sets ('{base.question_set or '—'}' vs "
                f"'{cand.question_set or '—'}'); only questions present in both have deltas."
            )
        for r in (base, cand):
            if r.status != "completed":
                warnings.append(f"Run #{r.id} is {r.status}: some questions may be missing or unscored.")
        return Comparison(base, cand, rows[baseline_id], rows[candidate_id], deltas, warnings)


def _suite_mismatch(a: RunRecord, b: RunRecord) -> str | None:
    ja = dict((a.summary or {}).get("judge") or {})
    jb = dict((b.summary or {}).get("judge") or {})
    ja.setdefault("suite", a.suite)
    jb.setdefault("suite", b.suite)
    try:
        from rag_core.evaluation.core import suite_mismatch

        return suite_mismatch(ja, jb)
    except ImportError:  # pragma: no cover
        if ja.get("suite") != jb.get("suite"):
            return (
                f"These runs were scored by different metric suites ({ja.get('suite')} vs {jb.get('suite')})."
            )
        return None
