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
- The index folder is checked before documents are listed, searched or run: when it is missing
  (deleted or moved while the app runs) while documents are recorded, :meth:`documents`,
  :meth:`search`, :meth:`chunks` and :meth:`start_run` raise :class:`RetrievalError` saying so;
  when it was replaced by another copy, the index is reopened and the recorded documents are
  brought in line with what that index holds. Uploading again creates a new index.
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

from rag_core.errors import InputError, RagError, RetrievalError
from rag_core.evaluation.agreement import AgreementReport, RunVerdicts, agreement_report
from rag_core.experiment import DEFAULT_CONFIG_NAME
from rag_core.models import (
    DEFAULT_COLLECTION,
    Chunk,
    DocumentInfo,
    DocumentVersion,
    QAItem,
    RequestTiming,
    ScoredChunk,
)
from rag_core.reporting.compare import Comparison, compare_runs, runs_table
from rag_core.reporting.export import (
    export_filename,
    questions_csv,
    questions_json,
    results_csv,
    run_export,
    run_json_text,
)
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
from rag_core.workspace_experiments import ExperimentsMixin

if TYPE_CHECKING:  # heavy modules (chromadb, the embedding model) load only when needed
    from rag_core.engine import Engine
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.ocr import OcrEngine
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

_UNSEEN = "unseen"  # Workspace._index_seen before the first check

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
class Workspace(ExperimentsMixin):
    """Everything the dashboard does with one data directory. See the module docstring.

    Configurations, run names, sweeps and leaderboards: :class:`~rag_core.workspace_experiments.ExperimentsMixin`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: HistoryStore | None = None,
        engine: Engine | None = None,
        ocr: OcrEngine | None = None,
    ) -> None:
        self.settings = settings
        self.ocr = ocr
        """OCR engine for scanned pages (None: Tesseract, ``settings.tesseract_cmd``)."""
        self.store = store or HistoryStore(settings.db_path)
        self._engine = engine
        self._index: PolicyIndex | None = None
        self._index_seen: tuple[int, int] | str | None = _UNSEEN  # the index file last checked
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
        from rag_core.runs.sweep import live_sweeps

        ids = recover_interrupted(self.store, self.settings, self.engine)
        self.store.mark_sweeps_interrupted(exclude={h.sweep_id for h in live_sweeps(self.engine, self.store)})
        return ids

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
            if self._index is not None and self._index.folder_problem() is not None:
                self._drop_index()  # its folder was deleted or swapped: open what is there now
            if self._index is None:
                from rag_core.ingest.index import PolicyIndex

                self._index = PolicyIndex(self.settings)
            return self._index

    def _drop_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            try:
                index.close()
            except Exception:
                log.debug("closing the index failed", exc_info=True)

    def _check_index(self) -> None:
        """Notice a missing or replaced index folder before serving from it (module docstring)."""
        if self.settings.chroma_host:
            return
        from rag_core.ingest.index import index_folder_problem, index_identity

        with self._lock:
            now = index_identity(self.settings)
            if now is None:
                self._drop_index()
                self._index_seen = None
                recorded = self.store.list_documents()
                if recorded:
                    raise RetrievalError(
                        index_folder_problem(self.settings, missing=True, documents=len(recorded))
                    )
                return
            if self._index_seen == now:
                return
            if self._index_seen == _UNSEEN:
                self._index_seen = now
                return
            # Another index is there now (swapped, or recreated by an upload after it went missing):
            # read what it holds and bring the recorded documents in line (marked seen only once
            # done, so a failure is retried on the next call instead of serving the old list).
            self._drop_index()
            indexed = {(d.collection, d.name): d for d in self._get_index().list_documents()}
            stored = {(d.collection, d.name): d for d in self.store.list_documents()}
            for key, d in stored.items():
                if key not in indexed:
                    self.store.forget_document(d.name, d.collection)
            for key, d in indexed.items():  # keep what ingestion recorded (format, sections, OCR)
                if key not in stored or stored[key].sha256 != d.sha256:
                    self.store.record_document(d)
            self._index_seen = now
            self._touch()

    def collections(self) -> list[str]:
        """Document collections, :data:`DEFAULT_COLLECTION` first; never empty."""
        return self.store.list_collections()

    def create_collection(self, name: str) -> str:
        """Create a document collection (no-op when it exists); returns its cleaned name.
        Raises :class:`InputError` for an empty or too long name."""
        try:
            return self.store.create_collection(name)
        finally:
            self._touch()

    def delete_collection(self, name: str) -> bool:
        """Delete an empty collection. Raises :class:`InputError` for the default one or one with
        documents."""
        try:
            return self.store.delete_collection(name)
        finally:
            self._touch()

    def ocr_available(self) -> bool:
        """True when scanned pages can be OCR'd here (Tesseract installed, or an engine given)."""
        if self.ocr is not None:
            return self.ocr.available()
        from rag_core.ingest.ocr import TesseractOcr

        return TesseractOcr(self.settings.tesseract_cmd).available()

    @staticmethod
    def ocr_install_hint() -> str:
        """What to install for OCR, exactly."""
        from rag_core.ingest.ocr import INSTALL_HINT

        return INSTALL_HINT

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """Indexed documents of ``collection`` (all collections when None) sorted by name (from the
        history store, kept in step by ingestion); ``[]`` when none. Raises :class:`RetrievalError`
        when the index folder has gone missing while documents are recorded."""
        self._check_index()
        return self.store.list_documents(collection)

    def document_versions(self, name: str, collection: str = DEFAULT_COLLECTION) -> list[DocumentVersion]:
        """Every version recorded for a document, newest first; ``[]`` when never indexed."""
        return self.store.document_versions(name, collection)

    def has_documents(self, collection: str | None = None) -> bool:
        return bool(self.documents(collection))

    def ingest_files(
        self,
        files: Iterable[tuple[str, bytes]],
        *,
        collection: str = DEFAULT_COLLECTION,
        on_start: Callable[[int, str], None] | None = None,
        on_done: Callable[[int, IngestOutcome], None] | None = None,
        on_progress: Callable[[int, str, int, int], None] | None = None,
    ) -> list[IngestOutcome]:
        """Index several files into ``collection``, one after another, in the calling thread.

        ``files`` are ``(file name, bytes)``. ``on_start(i, name)`` is called before file ``i``
        (0-based), ``on_progress(i, stage, done, total)`` while it is read (stage ``"reading"``,
        ``"ocr"`` — pages — or ``"embedding"`` — chunks) and ``on_done(i, outcome)`` after it, so a
        page can show per-file progress. A bad file never stops the others: its outcome has
        ``status == "error"`` and a message naming it.
        """
        from rag_core.ingest.service import IngestOutcome, ingest_bytes

        outcomes: list[IngestOutcome] = []
        for i, (name, data) in enumerate(files):
            if on_start is not None:
                on_start(i, name)

            def progress(stage: str, done: int, total: int, i: int = i) -> None:
                if on_progress is not None:
                    on_progress(i, stage, done, total)

            try:
                with self._lock:
                    index = self._get_index()
                outcome = ingest_bytes(
                    name,
                    data,
                    settings=self.settings,
                    store=self.store,
                    index=index,
                    collection=collection,
                    ocr=self.ocr,
                    on_progress=progress,
                )
            except RagError as exc:  # e.g. the index itself cannot be opened
                outcome = IngestOutcome(
                    name=name[:120], status="error", error=str(exc), collection=collection
                )
            self._touch()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(i, outcome)
        return outcomes

    def ingest_sample(self, collection: str = DEFAULT_COLLECTION) -> IngestOutcome:
        """Index the bundled sample handbook (a quick start for a new user)."""
        return self.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())], collection=collection)[0]

    def delete_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> int:
        """Remove a document from the index, the kept copy and the store (its version history is
        kept); returns chunks removed (0 when it was not indexed)."""
        from rag_core.ingest.service import delete_document

        try:
            return delete_document(name, settings=self.settings, store=self.store, collection=collection)
        finally:
            self._touch()

    def reindex_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> IngestOutcome:
        """Parse the kept copy of ``name`` again and replace its chunks (an ``"error"`` outcome
        when the original file is no longer stored)."""
        from rag_core.ingest.service import reindex_document

        try:
            return reindex_document(name, settings=self.settings, store=self.store, collection=collection)
        finally:
            self._touch()

    def chunks(self, name: str, collection: str = DEFAULT_COLLECTION) -> list[Chunk]:
        """A document's chunks in position order (with sections and pages); ``[]`` if not indexed."""
        self._check_index()
        return list(self._get_index().chunks_of(name, collection))

    def search(self, query: str, top_k: int = 4, collection: str = DEFAULT_COLLECTION) -> list[ScoredChunk]:
        """The ``top_k`` chunks of ``collection`` closest to ``query``, best first; ``[]`` when the
        collection is empty. Raises :class:`InputError` for an empty query.
        """
        query = (query or "").strip()
        if not query:
            raise InputError("Type a question to search the index.")
        if not self.has_documents(collection):
            return []
        got = self._get_index().query([query], max(1, min(int(top_k), 50)), collection)
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

    def bind_question_set(self, name: str, collection: str | None) -> QuestionSetInfo:
        """Bind a set to a document collection (``None`` unbinds it): its runs retrieve only from
        that collection. Raises :class:`InputError` for an unknown set or collection."""
        try:
            return self.store.bind_question_set(name, collection)
        finally:
            self._touch()

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
        bound = next((s.collection for s in self.question_sets() if s.name == old), None)
        if any(s.name == new for s in self.question_sets()):
            raise InputError(f"A question set named '{new}' already exists; pick another name.")
        items = self.question_set(old)
        info = self.store.save_question_set(new, items)
        if bound:
            info = self.store.bind_question_set(new, bound)
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

    @staticmethod
    def export_filename(name: str, fmt: str) -> str:
        """The download name for ``name`` exported as ``fmt``: ``leave.csv`` for a set called
        ``leave`` or ``leave.csv`` (never ``leave.csv.csv``); see
        :func:`~rag_core.reporting.export.export_filename`."""
        return export_filename(name, fmt)

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
        config: str | None = None,
    ) -> CostEstimate:
        """:func:`~rag_core.runs.cost.estimate_run` with this workspace's settings (and, when given,
        the answer model, chunk size and top-k of configuration ``config``)."""
        settings = self.settings
        if config:
            cfg = self.config(config).config
            settings = settings.replace(answer_model=cfg.answer_model, chunk_size=cfg.chunk_size)
            top_k = cfg.top_k
        return estimate_run(
            settings,
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
        collection: str | None = None,
        config: str | None = None,
        config_version: int | None = None,
        run_name: str | None = None,
        note: str | None = None,
    ) -> int:
        """Start a run of the saved set ``question_set`` in the background; returns its id at once.

        Retrieval searches only ``collection`` — by default the set's bound collection, else
        :data:`DEFAULT_COLLECTION`; a set bound to a collection cannot run on another one. Raises
        :class:`InputError` (nothing stored) when the collection has no documents, the set does not
        exist or is empty, an option is out of range, or Claude is chosen without an API key;
        :class:`RetrievalError` when the index folder has gone missing.
        ``metrics`` empty or None means all of the suite's metrics. The run pins the assistant
        configuration ``config`` at ``config_version`` (latest when None); without one it pins
        "default" (the settings), unless ``top_k`` is given (then an unsaved variant of it).
        """
        info = next((s for s in self.question_sets() if s.name == question_set), None)
        bound = info.collection if info is not None else None
        if bound and collection and collection != bound:
            raise InputError(
                f"The question set '{question_set}' is bound to the collection '{bound}'; it cannot "
                f"run on '{collection}'. Unbind it on the Question sets page first."
            )
        collection = collection or bound or DEFAULT_COLLECTION
        if not self.has_documents():
            raise InputError(
                "No documents are indexed yet: upload policy documents on the Documents page first."
            )
        if not self.has_documents(collection):
            raise InputError(
                f"The collection '{collection}' has no documents: upload policy documents into it on "
                "the Documents page, or choose another collection."
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
            collection=collection,
            assistant=self.config(config or DEFAULT_CONFIG_NAME, config_version)
            if config or top_k is None
            else None,
            run_name=run_name,
            note=note,
        )
        handle = start_run(request, settings=self.settings, store=self.store, engine=self.engine)
        self._touch()
        return handle.run_id

    def resume_run(self, run_id: int) -> int:
        """Finish an interrupted, cancelled or failed run (only what is missing); returns its id.

        Raises :class:`InputError` for an unknown run or one that is still running, and
        :class:`RetrievalError` when the index folder has gone missing.
        """
        self._check_index()
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
