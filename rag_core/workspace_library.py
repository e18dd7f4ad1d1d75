"""Documents, collections and question sets: the analyst's inputs, as methods of
:class:`~rag_core.workspace.Workspace` (see that module's contracts)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rag_core.access import AuditAction, Principal, Role
from rag_core.errors import InputError, RagError, RetrievalError
from rag_core.models import (
    DEFAULT_COLLECTION,
    Chunk,
    DocumentInfo,
    DocumentVersion,
    QAItem,
    ScoredChunk,
)
from rag_core.reporting.export import (
    export_filename,
    questions_csv,
    questions_json,
)
from rag_core.settings import PROJECT_ROOT, Settings
from rag_core.storage import HistoryStore, QuestionSetInfo
from rag_core.vocab import Expected

if TYPE_CHECKING:  # heavy modules (chromadb, the embedding model) load only when needed
    from rag_core.ingest.control import IngestControl
    from rag_core.ingest.index import PolicyIndex
    from rag_core.ingest.ocr import OcrEngine
    from rag_core.ingest.service import IngestOutcome, VersionHook


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


class LibraryMixin:
    """Document and question-set methods of :class:`~rag_core.workspace.Workspace`."""

    settings: Settings
    store: HistoryStore
    ocr: OcrEngine | None
    _index: PolicyIndex | None
    _index_seen: tuple[int, int] | str | None
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _touch(self) -> None: ...

        def _require(self, role: Role, action: str) -> Principal: ...

        def _audit(self, action: AuditAction, target: str = "", detail: str = "") -> None: ...

    # --- documents --------------------------------------------------------------------------
    def _version_hook(self) -> VersionHook | None:
        """Told when a document's content is replaced (issue 14 sets it: stale questions)."""
        return None

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
            if self.__dict__.get("_ingesting", 0):
                return  # an upload in progress (another thread) may be creating the folder: check after it
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
        Raises :class:`InputError` for an empty or too long name. Needs the analyst role."""
        self._require(Role.ANALYST, "create collections")
        existed = name.strip() in self.store.list_collections()
        try:
            created = self.store.create_collection(name)
        finally:
            self._touch()
        if not existed:
            self._audit(AuditAction.COLLECTION_CREATE, created)
        return created

    def delete_collection(self, name: str) -> bool:
        """Delete an empty collection. Raises :class:`InputError` for the default one or one with
        documents. Needs the admin role."""
        self._require(Role.ADMIN, "delete collections")
        try:
            deleted = self.store.delete_collection(name)
        finally:
            self._touch()
        if deleted:
            self._audit(AuditAction.COLLECTION_DELETE, name)
        return deleted

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
        control: IngestControl | None = None,
    ) -> list[IngestOutcome]:
        """Index several files into ``collection``, one after another, in the calling thread.

        ``files`` are ``(file name, bytes)``. ``on_start(i, name)`` is called before file ``i``
        (0-based), ``on_progress(i, stage, done, total)`` while it is read (stage ``"reading"``,
        ``"ocr"`` — pages — or ``"embedding"`` — chunks) and ``on_done(i, outcome)`` after it, so a
        page can show per-file progress. A bad file never stops the others: its outcome has
        ``status == "error"`` and a message naming it. Needs the analyst role (checked before
        any file is read); each added or replaced version is written to the audit trail.

        ``control`` (default: one with ``settings.ingest_budget_s`` per file) stops the ingest:
        once it is cancelled, the file being read is not indexed (``status == "cancelled"``), the
        files after it are not started (``"cancelled"`` too) and the files indexed before stay.
        """
        from rag_core.ingest.control import IngestControl

        control = control or IngestControl(self.settings.ingest_budget_s)
        with self._lock:
            self.__dict__["_ingesting"] = self.__dict__.get("_ingesting", 0) + 1
        try:
            return self._ingest_each(files, collection, on_start, on_done, on_progress, control)
        finally:
            with self._lock:
                self.__dict__["_ingesting"] -= 1

    def _ingest_each(
        self,
        files: Iterable[tuple[str, bytes]],
        collection: str,
        on_start: Callable[[int, str], None] | None,
        on_done: Callable[[int, IngestOutcome], None] | None,
        on_progress: Callable[[int, str, int, int], None] | None,
        control: IngestControl,
    ) -> list[IngestOutcome]:
        from rag_core.ingest.service import IngestOutcome, ingest_bytes, not_started

        self._require(Role.ANALYST, "upload documents")

        outcomes: list[IngestOutcome] = []
        for i, (name, data) in enumerate(files):
            if control.cancelled:
                outcome = not_started(name, collection)
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(i, outcome)
                continue
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
                    hook=self._version_hook(),
                    control=control,
                )
            except RagError as exc:  # e.g. the index itself cannot be opened
                outcome = IngestOutcome(
                    name=name[:120], status="error", error=str(exc), collection=collection
                )
            self._touch()
            if outcome.status in ("added", "replaced"):
                self._audit(
                    AuditAction.DOCUMENT_UPLOAD
                    if outcome.status == "added"
                    else AuditAction.DOCUMENT_REPLACE,
                    f"{outcome.collection} / {outcome.name} v{outcome.version}",
                    f"{outcome.chunks} chunks, {outcome.pages} pages"
                    + (
                        f", sections changed: {', '.join(outcome.sections_changed)}"
                        if outcome.sections_changed
                        else ""
                    ),
                )
            outcomes.append(outcome)
            if on_done is not None:
                on_done(i, outcome)
        return outcomes

    def ingest_sample(self, collection: str = DEFAULT_COLLECTION) -> IngestOutcome:
        """Index the bundled sample handbook (a quick start for a new user)."""
        return self.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())], collection=collection)[0]

    def delete_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> int:
        """Remove a document from the index, the kept copy and the store (its version history is
        kept); returns chunks removed (0 when it was not indexed). Needs the admin role."""
        from rag_core.ingest.service import delete_document

        self._require(Role.ADMIN, "delete documents")
        current = next((v.version for v in self.store.document_versions(name, collection)), None)
        try:
            removed = delete_document(name, settings=self.settings, store=self.store, collection=collection)
        finally:
            self._touch()
        if removed or current is not None:
            self._audit(
                AuditAction.DOCUMENT_DELETE,
                f"{collection} / {name}" + (f" v{current}" if current is not None else ""),
                f"{removed} chunks removed",
            )
        return removed

    def reindex_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> IngestOutcome:
        """Parse the kept copy of ``name`` again and replace its chunks (an ``"error"`` outcome
        when the original file is no longer stored). Needs the analyst role."""
        from rag_core.ingest.service import reindex_document

        self._require(Role.ANALYST, "re-index documents")
        try:
            outcome = reindex_document(
                name,
                settings=self.settings,
                store=self.store,
                collection=collection,
                hook=self._version_hook(),
            )
        finally:
            self._touch()
        if outcome.status != "error":
            self._audit(
                AuditAction.DOCUMENT_REINDEX, f"{collection} / {name} v{outcome.version}", outcome.status
            )
        return outcome

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
        that collection. Raises :class:`InputError` for an unknown set or collection. Needs the
        analyst role."""
        self._require(Role.ANALYST, "edit question sets")
        try:
            info = self.store.bind_question_set(name, collection)
        finally:
            self._touch()
        self._audit(AuditAction.QUESTION_SET_BIND, name, f"collection: {collection or '(none)'}")
        return info

    def save_question_set(
        self, name: str, rows: Iterable[QAItem | Mapping[str, Any]], *, note: str = ""
    ) -> QuestionSetInfo:
        """Validate and save ``rows`` (items or editor dicts) as the set ``name`` (created or replaced);
        ``note`` (e.g. "imported from q.json") is added to the audit entry.

        Raises :class:`InputError` naming every bad row (1-based, in the given order): empty
        question, duplicate, too long; or an empty set / bad name. Needs the analyst role.
        """
        self._require(Role.ANALYST, "edit question sets")
        existed = any(s.name == name for s in self.store.list_question_sets())
        items = [r if isinstance(r, QAItem) else rows_to_items([r])[0] for r in rows]
        info = self.store.save_question_set(name, items)
        self._touch()
        self._audit(
            AuditAction.QUESTION_SET_SAVE,
            info.name,
            f"{'edited' if existed else 'created'}, {info.n_items} questions" + (f", {note}" if note else ""),
        )
        return info

    def rename_question_set(self, old: str, new: str) -> QuestionSetInfo:
        """Rename a set. Raises :class:`InputError` if ``old`` does not exist or ``new`` is taken
        or empty. Runs keep the name they were started with. Needs the analyst role."""
        self._require(Role.ANALYST, "edit question sets")
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
        self._audit(AuditAction.QUESTION_SET_RENAME, old, f"renamed to '{new}'")
        return info

    def delete_question_set(self, name: str) -> bool:
        """Delete a set (runs that used it are kept). False when it did not exist. Needs the admin role."""
        self._require(Role.ADMIN, "delete question sets")
        try:
            deleted = self.store.delete_question_set(name)
        finally:
            self._touch()
        if deleted:
            self._audit(AuditAction.QUESTION_SET_DELETE, name)
        return deleted

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
