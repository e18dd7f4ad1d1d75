"""Ingestion as one call for pages and the CLI: parse → index → keep a copy → record.

Each file is handled on its own: a bad file yields an outcome with an ``error`` message naming it,
and the others still index. Nothing already indexed changes when a file fails (parsing happens
before anything is written).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag_core.errors import IngestError, RagError
from rag_core.ingest.documents import parse_document, safe_filename
from rag_core.ingest.index import PolicyIndex
from rag_core.models import DocumentInfo
from rag_core.settings import Settings
from rag_core.storage import HistoryStore


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one file."""

    name: str
    """The (sanitised) file name."""
    status: str
    """``"added"``, ``"replaced"``, ``"unchanged"`` or ``"error"``."""
    chunks: int = 0
    """Chunks now indexed for this file (0 on error)."""
    pages: int = 0
    seconds: float = 0.0
    """Time taken."""
    error: str | None = None
    """Why the file was refused (names the file), when ``status == "error"``."""


def ingest_bytes(
    name: str,
    data: bytes,
    *,
    settings: Settings,
    store: HistoryStore,
    index: PolicyIndex | None = None,
    force: bool = False,
) -> IngestOutcome:
    """Index one file's bytes. Never raises for a bad file: returns an ``"error"`` outcome."""
    t0 = time.perf_counter()
    try:
        safe = safe_filename(name)
    except IngestError as exc:
        return IngestOutcome(name=name[:120], status="error", error=str(exc))
    own_index = index is None
    try:
        doc = parse_document(safe, data, settings)  # enforces size/page/time limits
        index = index or PolicyIndex(settings)
        if force:
            index.delete_document(safe)
        status = index.add_document(doc)
        _keep_copy(settings, safe, data)
        info = next((d for d in index.list_documents() if d.name == safe), None)
        if info is None:  # pragma: no cover - the index just said it has it
            info = DocumentInfo(safe, doc.sha256, doc.pages, len(doc.chunks), doc.size_bytes, "")
        store.record_document(info)
        return IngestOutcome(safe, status, info.chunks, info.pages, time.perf_counter() - t0)
    except RagError as exc:
        return IngestOutcome(safe, "error", seconds=time.perf_counter() - t0, error=str(exc))
    finally:
        if own_index and index is not None:
            index.close()


def ingest_paths(
    paths: Iterable[Path], *, settings: Settings, store: HistoryStore
) -> Iterator[IngestOutcome]:
    """Index files from disk, yielding one outcome per path as it finishes."""
    with PolicyIndex(settings) as index:
        yield from _ingest_each(paths, settings, store, index)


def _ingest_each(
    paths: Iterable[Path], settings: Settings, store: HistoryStore, index: PolicyIndex
) -> Iterator[IngestOutcome]:
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
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
            data = path.read_bytes()
        except OSError as exc:
            yield IngestOutcome(path.name, "error", error=f"{path}: cannot read the file ({exc.strerror}).")
            continue
        yield ingest_bytes(path.name, data, settings=settings, store=store, index=index)


def delete_document(name: str, *, settings: Settings, store: HistoryStore) -> int:
    """Remove a document from the index, the kept copy and the store. Returns chunks removed."""
    with PolicyIndex(settings) as index:
        removed = index.delete_document(name)
    copy = settings.uploads_dir / safe_filename(name)
    copy.unlink(missing_ok=True)
    store.forget_document(name)
    return removed


def reindex_document(name: str, *, settings: Settings, store: HistoryStore) -> IngestOutcome:
    """Parse the kept copy again with the current chunk settings and replace its chunks."""
    copy = settings.uploads_dir / safe_filename(name)
    if not copy.is_file():
        return IngestOutcome(
            name, "error", error=f"{name}: the original file is no longer stored; upload it again."
        )
    return ingest_bytes(name, copy.read_bytes(), settings=settings, store=store, force=True)


def _keep_copy(settings: Settings, safe: str, data: bytes) -> None:
    """Keep the original bytes under the data dir (for re-indexing). ``safe`` has no directories."""
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    target = (settings.uploads_dir / safe).resolve()
    if target.parent != settings.uploads_dir.resolve():  # defence in depth against traversal
        raise IngestError(f"{safe}: refusing to write outside the data directory.")
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
