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
- Access (issue 15): every method that changes something checks the acting principal's role
  first (:mod:`rag_core.workspace_access`: ``_require`` / ``_require_run_control``) and raises
  :class:`~rag_core.errors.AccessDeniedError` naming the action and the role it needs; it writes
  an audit entry after it succeeded. Reading needs no role beyond viewer. A run belongs to whoever
  started it: only they or an admin can cancel, resume or delete it.
- Thread-safety: methods may be called from several Streamlit script threads at once. Runs execute
  on the engine's loop thread; their handles are found again by run id (:meth:`progress`), so a
  page keeps only the id.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rag_core.access import LOCAL_ADMIN, AuditAction, Principal, Role
from rag_core.errors import InputError, RagError
from rag_core.evaluation.agreement import AgreementReport, RunVerdicts, agreement_report
from rag_core.experiment import DEFAULT_CONFIG_NAME
from rag_core.models import (
    DEFAULT_COLLECTION,
    RequestTiming,
)
from rag_core.reporting.compare import Comparison, compare_runs, runs_table
from rag_core.reporting.export import (
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
from rag_core.settings import Settings
from rag_core.storage import HistoryStore, ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import RunSummary
from rag_core.vocab import Backend, Mode, RunStatus, Suite, choice
from rag_core.workspace_access import AccessMixin
from rag_core.workspace_authoring import AuthoringMixin
from rag_core.workspace_coverage import CoverageMixin
from rag_core.workspace_experiments import ExperimentsMixin
from rag_core.workspace_ingest import IngestJobsMixin
from rag_core.workspace_library import (
    _UNSEEN,
    SAMPLE_PDF,
    SAMPLE_QUESTIONS,
    SAMPLE_SET_NAME,
    LibraryMixin,
    items_to_rows,
    rows_to_items,
)
from rag_core.workspace_shared import SharedRunsMixin

if TYPE_CHECKING:  # heavy modules (chromadb, the embedding model) load only when needed
    from rag_core.engine import Engine
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.ocr import OcrEngine

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


class Workspace(
    CoverageMixin,
    LibraryMixin,
    IngestJobsMixin,
    ExperimentsMixin,
    AuthoringMixin,
    AccessMixin,
    SharedRunsMixin,
):
    """Everything the dashboard does with one data directory. See the module docstring.

    Documents, collections and question sets: :class:`~rag_core.workspace_library.LibraryMixin`.
    Configurations, run names, sweeps and leaderboards: :class:`~rag_core.workspace_experiments.ExperimentsMixin`.
    Generated questions and their review queue: :class:`~rag_core.workspace_authoring.AuthoringMixin`.
    Coverage map and stale questions: :class:`~rag_core.workspace_coverage.CoverageMixin`.
    Roles, run ownership, the audit trail: :class:`~rag_core.workspace_access.AccessMixin`.
    Background uploads with progress and Cancel: :class:`~rag_core.workspace_ingest.IngestJobsMixin`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: HistoryStore | None = None,
        engine: Engine | None = None,
        ocr: OcrEngine | None = None,
        principal: Principal | None = None,
    ) -> None:
        self.settings = settings
        self._default_principal = principal or LOCAL_ADMIN
        """Who acts when no :meth:`acting_as` principal is set (the CLI: ``CLI_ADMIN``)."""
        self.ocr = ocr
        """OCR engine for scanned pages (None: Tesseract, ``settings.tesseract_cmd``)."""
        self.store = store or HistoryStore(settings.history_target)
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
        self.cancel_all_ingests()  # an upload in progress stops cleanly before its index closes
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
        parts = [str(self._writes), self.store.change_token()]
        chroma = self.settings.chroma_dir / "chroma.sqlite3"
        for p in (chroma, Path(f"{chroma}-wal")):
            try:
                st = os.stat(p)
                parts.append(f"{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append("-")
        return "|".join(parts)

    def _touch(self) -> None:
        with self._lock:
            self._writes += 1

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
        Needs the analyst role; the run records who started it.
        """
        self._require(Role.ANALYST, "start a run")
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
        handle.started_by = self.principal.owner_key
        self._record_run_start(
            handle.run_id,
            AuditAction.RUN_START,
            f"set '{question_set}' ({len(items)} questions), collection '{collection}', "
            f"{backend}/{mode}, suite {suite}" + (f", configuration {config}" if config else ""),
        )
        self._touch()
        return handle.run_id

    def resume_run(self, run_id: int) -> int:
        """Finish an interrupted, cancelled or failed run (only what is missing); returns its id.

        Raises :class:`InputError` for an unknown run or one that is still running, and
        :class:`RetrievalError` when the index folder has gone missing. Only the run's starter
        (an analyst) or an admin may resume it.
        """
        self.store.get_run(run_id)  # an unknown run is an InputError, not a refusal
        self._require_run_control(run_id, "resume")
        self._check_index()
        handle = resume_run(run_id, settings=self.settings, store=self.store, engine=self.engine)
        handle.started_by = self.principal.owner_key  # this session now watches it
        self._audit(AuditAction.RUN_RESUME, f"run #{run_id}")
        self._touch()
        return handle.run_id

    def progress(self, run_id: int) -> RunProgress | None:
        """Live progress of a run of this data dir executing in this process; ``None`` otherwise
        (it has ended, or another process runs it: read :meth:`run` / :meth:`summary` instead)."""
        handle = live_handle(self.engine, self.store, run_id)
        return handle.progress() if handle is not None else None

    def cancel_run(self, run_id: int) -> bool:
        """Ask a run to stop (finished answers and scores are kept). False if it is not running here.
        Only the run's starter (an analyst) or an admin may cancel it."""
        handle = live_handle(self.engine, self.store, run_id)
        if handle is None or handle.done():
            return False
        self._require_run_control(run_id, "cancel")
        handle.cancel()
        self._audit(AuditAction.RUN_CANCEL, f"run #{run_id}")
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

    def active_run_ids(self, *, mine: bool = False) -> list[int]:
        """Ids of this data dir's runs still executing in this process, newest first; with
        ``mine``, only those the acting principal started (or resumed) — in single-user mode, in
        this browser session. A page adopts only these; others' runs are shown read-only."""
        handles = live_runs(self.engine, self.store)
        if mine:
            key = self.principal.owner_key
            handles = [h for h in handles if h.started_by == key]
        return sorted((h.run_id for h in handles), reverse=True)

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
        :class:`StorageError` when another live process is still running it. Only the run's
        starter (an analyst) or an admin may delete it.
        """
        try:
            self.store.get_run(run_id)
        except InputError:
            return False
        self._require_run_control(run_id, "delete")
        if run_id in self.active_run_ids():
            raise InputError(f"Run #{run_id} is still running; cancel it before deleting it.")
        try:
            deleted = self.store.delete_run(run_id)
        finally:
            self._touch()
        if deleted:
            self._audit(AuditAction.RUN_DELETE, f"run #{run_id}")
        return deleted

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
        question or verdict, or a question without an answer. Needs the analyst role."""
        self._require(Role.ANALYST, "label answers")
        record = self.store.save_verdict(run_id, index, verdict, comment)
        self._audit(AuditAction.ANSWER_LABEL, f"run #{run_id} question {index + 1}", str(record.verdict))
        self._refresh_headlines(run_id, [index])
        self._touch()
        return record

    def clear_label(self, run_id: int, index: int) -> bool:
        """Remove the verdict given on question ``index`` of a run; False when there was none."""
        self._require(Role.ANALYST, "label answers")
        removed = self.store.clear_verdict(run_id, index)
        if removed:
            self._audit(AuditAction.ANSWER_UNLABEL, f"run #{run_id} question {index + 1}")
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
