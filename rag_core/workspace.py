"""The dashboard's one entry into ``rag_core``: a facade so that pages stay thin.

A :class:`Workspace` bundles what the pages need for one data directory — the
:class:`~rag_core.storage.HistoryStore`, the :class:`~rag_core.ingest.index.PolicyIndex` (opened lazily)
and the process-wide :class:`~rag_core.engine.Engine` — behind plain methods: documents, question
sets, cost estimates, runs, comparison and export, and the analyst's review (verdicts, judge
agreement). It never imports streamlit; the app caches one
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rag_core.errors import InputError, RagError
from rag_core.evaluation.agreement import AgreementReport, RunVerdicts, agreement_report
from rag_core.models import Chunk, DocumentInfo, QAItem, RequestTiming, ScoredChunk
from rag_core.reporting.compare import Comparison, compare_runs, runs_table
from rag_core.reporting.export import questions_csv, questions_json, results_csv, run_export, run_json_text
from rag_core.runs.cost import CostEstimate, estimate_run
from rag_core.runs.executor import (
    live_handle,
    live_runs,
    recover_interrupted,
    resume_run,
    start_run,
    summarize_run,
)
from rag_core.runs.request import RunProgress, RunRequest
from rag_core.settings import PROJECT_ROOT, Settings
from rag_core.storage import HistoryStore, QuestionSetInfo, ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import RunSummary
from rag_core.vocab import Backend, Expected, Mode, RunStatus, Suite, choice

if TYPE_CHECKING:  # heavy modules (chromadb, the embedding model) load only when needed
    from rag_core.engine import Engine
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.service import IngestOutcome

__all__ = [
    "SAMPLE_PDF",
    "SAMPLE_QUESTIONS",
    "SAMPLE_SET_NAME",
    "AgreementReport",
    "Comparison",
    "CostEstimate",
    "Workspace",
    "items_to_rows",
    "rows_to_items",
]

log = logging.getLogger(__name__)

#: Name of the question set created from :data:`SAMPLE_QUESTIONS` when the store has none.
SAMPLE_SET_NAME = "Sample: staff handbook"
SAMPLE_QUESTIONS = PROJECT_ROOT / "data" / "sample" / "questions.json"
SAMPLE_PDF = PROJECT_ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"


def rows_to_items(rows: Iterable[Mapping[str, Any]]) -> list[QAItem]:
    """Editor rows (dicts with ``question``/``ground_truth``/``expected``; missing or None =
    ``''``, and ``expected`` defaults to ``answer``) → items, unvalidated and in order (validation
    names rows by this order). Raises :class:`InputError` naming the row for an unknown
    ``expected``."""
    out = []
    for n, r in enumerate(rows, 1):
        text = _text(r.get("expected")).strip().lower()
        try:
            expected = Expected(text or Expected.ANSWER)
        except ValueError:
            raise InputError(f"Row {n}: 'expected' must be 'answer' or 'decline', found {text!r}.") from None
        item = QAItem(
            question=_text(r.get("question")), ground_truth=_text(r.get("ground_truth")), expected=expected
        )
        out.append(item)
    return out


def items_to_rows(items: Iterable[QAItem]) -> list[dict[str, str]]:
    """Items → plain dict rows (safe to keep in ``st.session_state``)."""
    return [
        {"question": it.question, "ground_truth": it.ground_truth, "expected": str(it.expected)}
        for it in items
    ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


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
            from rag_core.engine import get_engine

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
        return recover_interrupted(self.store, self.settings, self.engine)

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
        from rag_core.questions import load_questions

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
        from rag_core.questions import parse_questions

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
        """:func:`~rag_core.runs.cost.estimate_run` with this workspace's settings."""
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
            backend=choice(Backend, backend, "backend"),
            mode=choice(Mode, mode, "mode"),
            concurrency=int(concurrency or self.settings.concurrency),
            top_k=int(top_k or self.settings.top_k),
            suite=choice(Suite, suite, "metric suite"),
            metrics=tuple(metrics) if metrics else None,
            question_set=question_set,
            fresh=fresh,
            judge_repeats=int(judge_repeats),
        )
        handle = start_run(request, settings=self.settings, store=self.store, engine=self.engine)
        self._touch()
        return handle.run_id

    def resume_run(self, run_id: int) -> int:
        """Finish an interrupted, cancelled or failed run (only what is missing); returns its id.

        Raises :class:`InputError` for an unknown run or one that is still running.
        """
        handle = resume_run(run_id, settings=self.settings, store=self.store, engine=self.engine)
        self._touch()
        return handle.run_id

    def progress(self, run_id: int) -> RunProgress | None:
        """Live progress of a run of this data dir executing in this process; ``None`` otherwise
        (it has ended, or another process runs it: read :meth:`run` / :meth:`summary` instead)."""
        handle = live_handle(self.engine, self.store, run_id)
        return handle.progress() if handle is not None else None

    def cancel_run(self, run_id: int) -> bool:
        """Ask a run to stop (finished answers and scores are kept). False if it is not running here."""
        handle = live_handle(self.engine, self.store, run_id)
        if handle is None or handle.done():
            return False
        handle.cancel()
        self._touch()
        return True

    def wait_run(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until a run of this process ends (tests, scripts). True when it has ended."""
        handle = live_handle(self.engine, self.store, run_id)
        if handle is None:
            return True
        handle.wait(timeout)
        self._touch()
        return handle.done()

    def active_run_ids(self) -> list[int]:
        """Ids of this data dir's runs still executing in this process, newest first."""
        return sorted((h.run_id for h in live_runs(self.engine, self.store)), reverse=True)

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs newest first (at most ``limit``); ``[]`` when none."""
        return self.store.list_runs(limit)

    def run(self, run_id: int) -> RunRecord:
        """One run. Raises :class:`InputError` naming the run when it does not exist."""
        return self.store.get_run(run_id)

    def summary(self, run_id: int) -> RunSummary:
        """A run's summary computed from the store now (also for running or interrupted runs).
        Raises :class:`InputError` when there is no such run."""
        return summarize_run(self.store, run_id, self.settings)

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
        if fmt not in ("json", "csv"):
            raise InputError(f"Unknown export format {fmt!r}: choose csv or json.")
        data = run_export(self.run(run_id), self.summary(run_id), self.results(run_id), self.verdicts(run_id))
        return run_json_text(data) if fmt == "json" else results_csv(data)

    # --- review: the analyst's verdicts and the judge's agreement with them --------------------
    def verdicts(self, run_id: int) -> dict[int, VerdictRecord]:
        """Question index → the analyst's verdict (given on it, else inherited from an identical
        earlier answer); ``{}`` when none. Raises :class:`InputError` if no such run."""
        return self.store.get_verdicts(run_id)

    def label(self, run_id: int, index: int, verdict: str, comment: str = "") -> VerdictRecord:
        """Save the analyst's verdict (correct / partly / wrong) on question ``index`` (0-based) of
        a run, at once, replacing an earlier one; the stored headlines of this run and of later
        runs that inherit it are refreshed. Raises :class:`InputError` for an unknown run,
        question or verdict, or a question without an answer."""
        record = self.store.save_verdict(run_id, index, verdict, comment)
        self._refresh_headlines(run_id, [index])
        self._touch()
        return record

    def clear_label(self, run_id: int, index: int) -> bool:
        """Remove the verdict given on question ``index`` of a run; False when there was none."""
        removed = self.store.clear_verdict(run_id, index)
        if removed:
            self._refresh_headlines(run_id, [index])
            self._touch()
        return removed

    def _refresh_headlines(self, run_id: int, indices: Sequence[int]) -> None:
        """Store fresh summaries (headline) for ``run_id`` and later runs that inherit its verdicts.
        A run still executing is left alone (it stores its summary when it ends)."""
        live = set(self.active_run_ids())
        for rid in [run_id, *self.store.later_identical_answers(run_id, indices)]:
            if rid in live or self.store.get_run(rid).status == RunStatus.RUNNING:
                continue
            try:
                self.store.update_run(rid, summary=summarize_run(self.store, rid, self.settings))
            except RagError as exc:  # the verdict is saved; a stale headline is only cosmetic
                log.warning("run %s: could not refresh its headline: %s", rid, exc)

    def review_order(self, run_id: int) -> list[int]:
        """The questions of a run that can be reviewed (they have an answer), in order."""
        return [r.index for r in self.results(run_id) if r.answer is not None]

    def next_to_review(self, run_id: int, after: int | None = None) -> int | None:
        """The first answered question without a verdict after ``after`` (wrapping round), or the
        first one overall when ``after`` is None; None when every answer has a verdict."""
        order = self.review_order(run_id)
        done = set(self.verdicts(run_id))
        todo = [i for i in order if i not in done]
        if not todo:
            return None
        if after is None:
            return todo[0]
        return next((i for i in todo if i > after), todo[0])

    def agreement(self, run_ids: Sequence[int]) -> AgreementReport:
        """Every metric's agreement with the analyst's verdicts on ``run_ids`` (pooled; see
        :mod:`rag_core.evaluation.agreement`). Raises :class:`InputError` for an unknown run."""
        runs = [
            RunVerdicts(rid, self.run(rid).suite, self.results(rid), self.verdicts(rid))
            for rid in dict.fromkeys(run_ids)
        ]
        return agreement_report(runs)

    def runs_with_verdicts(self) -> list[int]:
        """Ids of runs holding verdicts given on them, newest first; ``[]`` when none."""
        return self.store.runs_with_verdicts()

    # --- tables and comparison (pure pandas over stored records) -----------------------------
    @staticmethod
    def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
        """:func:`rag_core.reporting.compare.runs_table`."""
        return runs_table(runs)

    def compare(self, baseline_id: int, candidate_id: int) -> Comparison:
        """Compare two runs (headlines first, with the verdicts as stored now; metrics that
        disagree with the analyst on these runs flagged). Raises :class:`InputError` for an
        unknown run."""
        return compare_runs(
            self.run(baseline_id),
            self.run(candidate_id),
            self.results(baseline_id),
            self.results(candidate_id),
            base_summary=self.summary(baseline_id),
            cand_summary=self.summary(candidate_id),
            base_verdicts=self.verdicts(baseline_id),
            cand_verdicts=self.verdicts(candidate_id),
            agreement=self.agreement([baseline_id, candidate_id]),
        )
