"""Uploads indexed in the background, with live progress and a Cancel: methods of
:class:`~rag_core.workspace.Workspace` for the Documents page.

:meth:`IngestJobsMixin.start_ingest` runs :meth:`~rag_core.workspace_library.LibraryMixin.ingest_files`
in a worker thread under an :class:`~rag_core.ingest.control.IngestControl` and returns a job id (a
plain string a page can keep in its session state). The page polls :meth:`ingest_job` for a
read-only :class:`IngestJobView` (which file, which step — "embedding chunk 65 of 2,000" — and the
outcomes so far) and calls :meth:`cancel_ingest` for its Cancel button: the file being read is then
not indexed at all, files after it are not started, files indexed before it stay. Jobs live in this
process only; finished jobs are forgotten after :data:`KEEP_FINISHED` newer ones.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag_core.access import AuditAction, Principal, Role
from rag_core.models import DEFAULT_COLLECTION
from rag_core.settings import Settings

if TYPE_CHECKING:
    from rag_core.ingest.control import IngestControl
    from rag_core.ingest.service import IngestOutcome

log = logging.getLogger(__name__)

#: Finished jobs kept for their pages to read the outcomes (oldest forgotten first).
KEEP_FINISHED = 20


@dataclass(frozen=True)
class IngestJobView:
    """A snapshot of a background ingest (safe to read from any thread)."""

    id: str
    collection: str
    names: tuple[str, ...]
    current: int
    """0-based index of the file being read (``len(names)`` once finished)."""
    stage: str
    """``"reading"``, ``"ocr"``, ``"embedding"`` or ``""`` (between steps)."""
    done: int
    total: int
    outcomes: tuple[IngestOutcome, ...]
    finished: bool
    cancel_requested: bool
    elapsed_s: float

    @property
    def fraction(self) -> float:
        n = max(1, len(self.names))
        within = self.done / self.total if self.total else 0.0
        return min(1.0, (min(self.current, n) + (0.0 if self.finished else within)) / n)

    @property
    def text(self) -> str:
        """``"big.txt: embedding chunk 65 of 2,000 (1 of 3)"``."""
        from rag_core.ingest.control import step_text

        if self.finished:
            return f"{len(self.outcomes)} of {len(self.names)} done"
        if self.current >= len(self.names):
            return "finishing…"
        name = self.names[self.current]
        step = step_text(self.stage, self.done, self.total) if self.stage else "starting"
        if self.cancel_requested:
            step = f"cancelling ({step})…"
        return f"{name}: {step} ({self.current + 1} of {len(self.names)})"


@dataclass
class _Job:
    id: str
    collection: str
    names: tuple[str, ...]
    control: IngestControl
    started_by: str = ""
    """Who started it (:attr:`~rag_core.access.Principal.owner_key`): only they or an admin may cancel it."""
    started: float = field(default_factory=time.monotonic)
    current: int = 0
    stage: str = ""
    done: int = 0
    total: int = 0
    outcomes: list[IngestOutcome] = field(default_factory=list)
    finished: bool = False
    ended: float | None = None
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self) -> IngestJobView:
        with self.lock:
            return IngestJobView(
                id=self.id,
                collection=self.collection,
                names=self.names,
                current=self.current,
                stage=self.stage,
                done=self.done,
                total=self.total,
                outcomes=tuple(self.outcomes),
                finished=self.finished,
                cancel_requested=self.control.cancelled,
                elapsed_s=(self.ended or time.monotonic()) - self.started,
            )


class IngestJobsMixin:
    """Background ingests of :class:`~rag_core.workspace.Workspace` (see the module docstring)."""

    settings: Settings
    _lock: threading.RLock

    if TYPE_CHECKING:  # AccessMixin's, via Workspace

        def _require(self, role: Role, action: str) -> Principal: ...
        def _require_starter(self, started_by: str, action: str, what: str) -> Principal: ...
        def _audit(self, action: AuditAction, target: str = "", detail: str = "") -> None: ...

    def _jobs(self) -> dict[str, _Job]:
        with self._lock:
            jobs: dict[str, _Job] = self.__dict__.setdefault("_ingest_jobs", {})
            return jobs

    def start_ingest(self, files: Sequence[tuple[str, bytes]], collection: str = DEFAULT_COLLECTION) -> str:
        """Index ``files`` (``(name, bytes)``) into ``collection`` in a worker thread → the job id."""
        from rag_core.ingest.control import IngestControl

        me = self._require(Role.ANALYST, "upload documents")
        files = list(files)
        job = _Job(
            id=uuid.uuid4().hex[:12],
            collection=collection,
            names=tuple(name for name, _ in files),
            control=IngestControl(self.settings.ingest_budget_s),
            started_by=me.owner_key,
        )

        def on_start(i: int, name: str) -> None:
            with job.lock:
                job.current, job.stage, job.done, job.total = i, "", 0, 0

        def on_progress(i: int, stage: str, done: int, total: int) -> None:
            with job.lock:
                job.current, job.stage, job.done, job.total = i, stage, done, total

        def on_done(i: int, outcome: IngestOutcome) -> None:
            with job.lock:
                job.outcomes.append(outcome)
                job.current, job.stage, job.done, job.total = i + 1, "", 0, 0

        def work() -> None:
            from rag_core.ingest.service import IngestOutcome

            try:
                ingest_files = getattr(self, "ingest_files")  # noqa: B009 - LibraryMixin's, via Workspace
                ingest_files(
                    files,
                    collection=collection,
                    on_start=on_start,
                    on_progress=on_progress,
                    on_done=on_done,
                    control=job.control,
                )
            except Exception as exc:  # never lose a job silently: every file gets an outcome
                log.exception("background ingest %s failed", job.id)
                with job.lock:
                    for name in job.names[len(job.outcomes) :]:
                        job.outcomes.append(
                            IngestOutcome(name[:120], "error", error=f"{name}: indexing failed ({exc}).")
                        )
            finally:
                with job.lock:
                    job.finished, job.ended = True, time.monotonic()
                files.clear()  # release the uploaded bytes

        with self._lock:
            jobs = self._jobs()
            finished = [j for j in jobs.values() if j.finished]
            for old in sorted(finished, key=lambda j: j.started)[: max(0, len(finished) - KEEP_FINISHED)]:
                jobs.pop(old.id, None)
            jobs[job.id] = job
        # The worker runs in a copy of this context: it acts (and is audited) as the caller.
        context = contextvars.copy_context()
        job.thread = threading.Thread(target=context.run, args=(work,), name=f"ingest-{job.id}", daemon=True)
        job.thread.start()
        return job.id

    def upload_problem(self, name: str, size: int) -> str | None:
        """Why a file of ``size`` bytes would be refused, from its name and size alone (empty, too
        large, unusable name), so a page can say so before reading the upload; None when fine."""
        from rag_core.errors import IngestError
        from rag_core.ingest.documents import safe_filename, size_problem

        try:
            return size_problem(safe_filename(name), size, self.settings)
        except IngestError as exc:
            return str(exc)

    def ingest_job(self, job_id: str) -> IngestJobView | None:
        """A snapshot of the job, or None when this process has no such job (e.g. after a restart)."""
        job = self._jobs().get(job_id)
        return job.view() if job is not None else None

    def cancel_ingest(self, job_id: str) -> bool:
        """Ask a job to stop at its next step; False when there is no such running job. Only the
        analyst who started it or an admin may cancel it (the refusal is audited)."""
        job = self._jobs().get(job_id)
        if job is None:
            return False
        self._require_starter(job.started_by, "cancel", f"the upload of {', '.join(job.names)}")
        if job.finished:
            return False
        job.control.cancel()
        with job.lock:
            current = job.names[min(job.current, len(job.names) - 1)] if job.names else ""
        self._audit(AuditAction.DOCUMENT_UPLOAD_CANCEL, f"{job.collection} / {current}", f"job {job.id}")
        return True

    def wait_ingest(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until the job ends (tests, scripts); True when it has ended."""
        job = self._jobs().get(job_id)
        if job is None:
            return True
        if job.thread is not None:
            job.thread.join(timeout)
        return job.view().finished

    def cancel_all_ingests(self, timeout: float = 30.0) -> None:
        """Cancel every running job and wait (bounded) for them to stop (on close)."""
        jobs = list(self._jobs().values())
        for job in jobs:
            job.control.cancel()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
