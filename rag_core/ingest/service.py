"""Ingestion as one call for pages and the CLI: parse → index → keep a copy → record the version.

Each file is handled on its own: a bad file yields an outcome with an ``error`` message naming it,
and the others still index. Each file runs under an :class:`~rag_core.ingest.control.IngestControl`:
the time budget (``settings.ingest_budget_s``) and the user's Cancel are checked at every page and
every embedding batch, and a stopped file leaves the index and the catalog as they were. Nothing already indexed changes when a file fails (parsing happens
before anything is written). Every document belongs to a collection (default
:data:`~rag_core.models.DEFAULT_COLLECTION`); its original is kept under
``uploads/`` (default collection) or ``uploads/<collection key>/`` for re-indexing.

A :class:`VersionHook` (optional) is told before a recorded document's content is replaced and
after the new version is indexed (issue 14: question links are computed before, stale flags set
after). A failing hook is logged; it never fails the ingestion.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rag_core.errors import IngestError, RagError
from rag_core.ingest.control import IngestCancelled, IngestControl
from rag_core.ingest.documents import SUPPORTED, parse_document, safe_filename, size_problem
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.ocr import OcrEngine
from rag_core.models import DEFAULT_COLLECTION, Chunk, DocumentInfo
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.storage.catalog import collection_name

log = logging.getLogger(__name__)


class VersionHook(Protocol):
    """Told when a recorded document's content is about to change and when its new version is in."""

    def before_replace(self, collection: str, name: str, index: PolicyIndex) -> None:
        """The old version is still indexed (e.g. link questions to its passages now)."""

    def after_replace(self, collection: str, name: str, version: int, chunks: Sequence[Chunk]) -> int:
        """The new version ``version`` is indexed with ``chunks``; returns questions flagged stale."""
        ...


#: The status of a file the user's Cancel stopped (or that was not started because of it).
CANCELLED = "cancelled"

#: ``on_progress(stage, done, total)``: stage ``"reading"`` / ``"ocr"`` (pages), ``"embedding"`` (chunks).
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one file."""

    name: str
    """The (sanitised) file name."""
    status: str
    """``"added"``, ``"replaced"``, ``"unchanged"``, ``"error"`` or ``"cancelled"`` (the user
    stopped it: nothing of the file was indexed; :attr:`error` says where it stopped)."""
    chunks: int = 0
    """Chunks now indexed for this file (0 on error)."""
    pages: int = 0
    seconds: float = 0.0
    """Time taken."""
    error: str | None = None
    """Why the file was refused or stopped (names the file), when ``status`` is ``"error"`` or
    ``"cancelled"``."""
    collection: str = DEFAULT_COLLECTION
    """The collection it was indexed into."""
    version: int = 0
    """The document's version now (0 on error)."""
    ocr_pages: int = 0
    """Pages read by OCR."""
    sections_changed: tuple[str, ...] = field(default_factory=tuple)
    """For a new version: the sections that differ from the previous one."""
    stale_questions: int = 0
    """Questions whose supporting passages this new version changed or removed (issue 14)."""


def ingest_bytes(
    name: str,
    data: bytes,
    *,
    settings: Settings,
    store: HistoryStore,
    index: PolicyIndex | None = None,
    collection: str = DEFAULT_COLLECTION,
    force: bool = False,
    ocr: OcrEngine | None = None,
    on_progress: ProgressFn | None = None,
    hook: VersionHook | None = None,
    control: IngestControl | None = None,
) -> IngestOutcome:
    """Index one file's bytes into ``collection``. Never raises for a bad file: returns an
    ``"error"`` outcome, or a ``"cancelled"`` one when ``control`` was cancelled.

    ``hook`` is told before a recorded document's content is replaced and after its new version is
    indexed (see the module docstring). ``control`` (default: a fresh one with
    ``settings.ingest_budget_s``) is checked at every page read and before every embedding batch;
    when it stops the file, nothing of it is indexed or recorded (the previous version, if any,
    stays)."""
    t0 = time.perf_counter()
    try:
        safe = safe_filename(name)
        collection = collection_name(collection)
    except RagError as exc:
        return IngestOutcome(name=name[:120], status="error", error=str(exc))
    control = control or IngestControl(settings.ingest_budget_s)
    control.start_file()
    report = control.progress(safe, on_progress)
    own_index = index is None
    try:
        control.check(safe)
        index = index or PolicyIndex(settings)
        if size_problem(safe, len(data), settings) is None and Path(safe).suffix.lower() in SUPPORTED:
            # Load the embedding model before reading a large file, not after: its one-off start-up
            # memory is then reused by the parse instead of piling on top of it (peak RSS −50 MB).
            index.embedder  # noqa: B018
        doc = parse_document(safe, data, settings, ocr=ocr, on_progress=report)
        control.check(safe, "embedding", 0, len(doc.chunks))
        previous = next((d for d in store.list_documents(collection) if d.name == safe), None)
        replacing = hook is not None and previous is not None and (force or previous.sha256 != doc.sha256)
        if replacing and hook is not None:
            before, idx0 = hook.before_replace, index
            _call_hook(safe, lambda: before(collection, safe, idx0))
        if force:
            index.delete_document(safe, collection)

        def embedded(done: int, total: int) -> None:
            report("embedding", done, total)

        status = index.add_document(doc, collection=collection, on_progress=embedded)
        _keep_copy(settings, collection, safe, data)
        info = index.document_info(safe, collection)  # this document only: cheap in a large index
        if info is None:  # pragma: no cover - the index just said it has it
            info = DocumentInfo(safe, doc.sha256, doc.pages, len(doc.chunks), doc.size_bytes, "")
        info = DocumentInfo(
            name=info.name,
            sha256=info.sha256,
            pages=info.pages,
            chunks=info.chunks,
            size_bytes=info.size_bytes,
            added_at=info.added_at,
            collection=collection,
            ocr_pages=doc.ocr_pages,
            format=doc.format,
        )
        version = store.record_document(info, sections=doc.sections)
        stale: object = 0
        if replacing and hook is not None and status != "unchanged":
            after, idx, v = hook.after_replace, index, version.version
            stale = _call_hook(safe, lambda: after(collection, safe, v, idx.chunks_of(safe, collection)))
        return IngestOutcome(
            safe,
            status,
            info.chunks,
            info.pages,
            time.perf_counter() - t0,
            collection=collection,
            version=version.version,
            ocr_pages=doc.ocr_pages,
            sections_changed=version.sections_changed if status == "replaced" else (),
            stale_questions=stale if isinstance(stale, int) else 0,
        )
    except IngestCancelled as exc:
        return IngestOutcome(
            safe, CANCELLED, seconds=time.perf_counter() - t0, error=str(exc), collection=collection
        )
    except RagError as exc:
        return IngestOutcome(
            safe, "error", seconds=time.perf_counter() - t0, error=str(exc), collection=collection
        )
    finally:
        if own_index and index is not None:
            index.close()


def _call_hook(name: str, fn: Callable[[], object]) -> object:
    """Call a :class:`VersionHook` method; a failure is logged, never raised (the file still indexes)."""
    try:
        return fn()
    except Exception as exc:  # a hook must never fail the ingestion
        log.warning("%s: the question links could not be updated: %s", name, exc, exc_info=True)
        return None


def ingest_paths(
    paths: Iterable[Path],
    *,
    settings: Settings,
    store: HistoryStore,
    collection: str = DEFAULT_COLLECTION,
    on_progress: ProgressFn | None = None,
    hook: VersionHook | None = None,
    control: IngestControl | None = None,
) -> Iterator[IngestOutcome]:
    """Index files from disk into ``collection``, yielding one outcome per path as it finishes.

    A file too large to index is refused from its size (``stat``) before it is read. Once
    ``control`` is cancelled, the file being read is not indexed and the files not started yet
    get a ``"cancelled"`` outcome each; files indexed before stay."""
    control = control or IngestControl(settings.ingest_budget_s)
    with PolicyIndex(settings) as index:
        yield from _ingest_each(paths, settings, store, index, collection, on_progress, hook, control)


def not_started(name: str, collection: str = DEFAULT_COLLECTION) -> IngestOutcome:
    """The outcome of a file left out because the ingest was cancelled before it."""
    return IngestOutcome(
        name[:120], CANCELLED, error=f"{name}: not started (cancelled before it).", collection=collection
    )


def _ingest_each(
    paths: Iterable[Path],
    settings: Settings,
    store: HistoryStore,
    index: PolicyIndex,
    collection: str,
    on_progress: ProgressFn | None,
    hook: VersionHook | None,
    control: IngestControl,
) -> Iterator[IngestOutcome]:
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        if control.cancelled:
            yield not_started(path.name, collection)
            continue
        try:
            key = safe_filename(path.name)
        except IngestError as exc:
            yield IngestOutcome(path.name[:120], "error", error=str(exc))
            continue
        if key in seen:  # the index is keyed by file name: the second would silently replace the first
            yield IngestOutcome(
                key,
                "error",
                error=f"{path}: another file in this batch is also called "
                f"{key!r} ({seen[key]}); rename one of them and add it again.",
            )
            continue
        seen[key] = path
        try:
            problem = size_problem(key, path.stat().st_size, settings)
            if problem is not None:  # refused from its size, before reading it
                yield IngestOutcome(key, "error", error=problem, collection=collection)
                continue
            data = path.read_bytes()
        except OSError as exc:
            yield IngestOutcome(path.name, "error", error=f"{path}: cannot read the file ({exc.strerror}).")
            continue
        yield ingest_bytes(
            path.name,
            data,
            settings=settings,
            store=store,
            index=index,
            collection=collection,
            on_progress=on_progress,
            hook=hook,
            control=control,
        )
        del data


def delete_document(
    name: str, *, settings: Settings, store: HistoryStore, collection: str = DEFAULT_COLLECTION
) -> int:
    """Remove a document from the index, the kept copy and the store (its version history stays).
    Returns chunks removed."""
    with PolicyIndex(settings) as index:
        removed = index.delete_document(name, collection)
    copy = uploads_dir(settings, collection) / safe_filename(name)
    copy.unlink(missing_ok=True)
    store.forget_document(name, collection)
    return removed


def reindex_document(
    name: str,
    *,
    settings: Settings,
    store: HistoryStore,
    collection: str = DEFAULT_COLLECTION,
    index: PolicyIndex | None = None,
    hook: VersionHook | None = None,
) -> IngestOutcome:
    """Parse the kept copy again with the current chunk settings and replace its chunks (not
    stopped by the time budget: its old chunks are removed before the new ones are written)."""
    copy = uploads_dir(settings, collection) / safe_filename(name)
    if not copy.is_file():
        return IngestOutcome(
            name,
            "error",
            error=f"{name}: the original file is no longer stored; upload it again.",
            collection=collection,
        )
    return ingest_bytes(
        name,
        copy.read_bytes(),
        settings=settings,
        store=store,
        collection=collection,
        force=True,
        index=index,
        hook=hook,
        # force deletes the old chunks first, so nothing may stop the write half-way: no budget
        control=IngestControl(None),
    )


def uploads_dir(settings: Settings, collection: str) -> Path:
    """Where the originals of a collection are kept: ``uploads/`` for the default collection,
    ``uploads/<slug>-<hash>/`` for the others (names may hold any character)."""
    if collection == DEFAULT_COLLECTION:
        return settings.uploads_dir
    slug = re.sub(r"[^a-z0-9]+", "-", collection.lower()).strip("-")[:40] or "collection"
    return settings.uploads_dir / f"{slug}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}"


def _keep_copy(settings: Settings, collection: str, safe: str, data: bytes) -> None:
    """Keep the original bytes under the data dir (for re-indexing). ``safe`` has no directories."""
    folder = uploads_dir(settings, collection)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe).resolve()
    if target.parent != folder.resolve():  # defence in depth against traversal
        raise IngestError(f"{safe}: refusing to write outside the data directory.")
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


def cancel_message(outcomes: Sequence[IngestOutcome]) -> str | None:
    """What a cancelled upload kept, in one sentence (None when nothing was cancelled):
    ``"Indexing cancelled — nothing indexed: …"`` or ``"Indexing cancelled — kept a.pdf, b.md
    (indexed before the cancel); nothing of big.txt was indexed; not started: c.txt."``"""
    stopped = [o for o in outcomes if o.status == CANCELLED]
    if not stopped:
        return None
    kept = [o.name for o in outcomes if o.status in ("added", "replaced", "unchanged")]
    started = [o.name for o in stopped if "not started" not in (o.error or "")]
    waiting = [o.name for o in stopped if "not started" in (o.error or "")]
    parts = []
    if started:
        parts.append(f"nothing of {', '.join(started)} was indexed")
    if waiting:
        parts.append(f"not started: {', '.join(waiting)}")
    if not kept:
        head = "Indexing cancelled — nothing indexed; the collection is as it was before the upload"
    else:
        head = f"Indexing cancelled — kept {', '.join(kept)} (indexed before the cancel)"
    return head + ("; " + "; ".join(parts) if parts else "") + "."
