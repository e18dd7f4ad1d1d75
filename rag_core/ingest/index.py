"""The policy index: one Chroma collection of document chunks with offline MiniLM embeddings.

Storage: an embedded ``chromadb.PersistentClient`` under ``settings.chroma_dir`` by default, or
a Chroma server (``chromadb.HttpClient``) when ``settings.chroma_host`` is set. The collection
uses cosine distance and our registered :class:`~rag_core.embeddings.MiniLMEmbeddingFunction`,
but embeddings are always computed here and passed explicitly, so batching is under our control.

Every chunk carries metadata ``source, page, position, doc_sha256, section, ocr, collection,
added_at, size_bytes, pages``; documents are keyed by (document collection, safe file name): the
same file name may exist in two collections, and every read, write and query is scoped to one
collection. (A *document collection* is a label on the chunks, not a Chroma collection: one Chroma
collection, ``settings.collection``, holds them all.) Chunks written before collections existed are
labelled :data:`~rag_core.models.DEFAULT_COLLECTION` when the index is opened. Chroma errors never
escape: writes raise :class:`IngestError` naming the file, reads/opening raise
:class:`RetrievalError`.

The embedded store's folder is watched: an open index remembers which files it opened (the
identity of ``chroma.sqlite3``), and every read or write first checks that they are still the ones
on disk. If the folder was deleted, moved or swapped for another copy while the index was open, it
raises (:func:`index_folder_problem` words the message) instead of listing stale documents or
answering from unlinked files. Chroma shares one open "system" per folder among all clients of a
process, so a new :class:`PolicyIndex` opened while an older one still holds the folder inherits the
older one's identity (and its check).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import chromadb
from chromadb.api import ClientAPI

from rag_core.errors import IngestError, RagError, RetrievalError
from rag_core.ingest.control import EMBED_BATCH, embed_batch_size, embed_delay_s, unstoppable
from rag_core.ingest.embeddings import LocalEmbedder, MiniLMEmbeddingFunction, get_embedder
from rag_core.models import DEFAULT_COLLECTION, Chunk, DocumentInfo, ParsedDocument, ScoredChunk
from rag_core.settings import Settings

#: Chunks embedded and written per step of :meth:`PolicyIndex.add_document` by default (progress,
#: Cancel and time-budget granularity; ``RAG_EMBED_BATCH`` overrides it, see :mod:`.control`).
ADD_BATCH = EMBED_BATCH
#: Questions per Chroma query call (one call for any realistic run).
QUERY_BATCH = 1000
#: Cap on questions × top_k per query call: Chroma's SQLite backend fails with "too many SQL
#: variables" at ~12 000 questions × 4.
MAX_QUERY_RESULTS = 20_000
#: Metadata keys stored with every chunk.
METADATA_KEYS = (
    "source",
    "page",
    "position",
    "doc_sha256",
    "section",
    "ocr",
    "collection",
    "added_at",
    "size_bytes",
    "pages",
)


#: The embedded store's database file inside ``settings.chroma_dir`` (its identity names the index).
INDEX_FILE = "chroma.sqlite3"

FileIdentity = tuple[int, int]
"""``(st_dev, st_ino)`` of :data:`INDEX_FILE`: changes when the folder is deleted and recreated or swapped."""

# Folders held open by PolicyIndex objects of this process: identity of the files Chroma opened, and
# how many indexes share them (chromadb keeps one system per path until its last client closes).
_held: dict[str, tuple[FileIdentity | None, int]] = {}
_held_lock = threading.Lock()


def index_identity(settings: Settings) -> FileIdentity | None:
    """The identity of the embedded index's database file now; None when it does not exist."""
    try:
        st = (settings.chroma_dir / INDEX_FILE).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def index_folder_problem(settings: Settings, *, missing: bool, documents: int = 0) -> str:
    """The message for an index folder that is missing, or was replaced while it was open."""
    where = settings.chroma_dir
    if missing:
        held = f" ({documents} recorded document{'s' if documents != 1 else ''})" if documents else ""
        return (
            f"The policy index folder {where} is missing{held}: it was deleted or moved while the app "
            "was running, so its documents can no longer be searched. Restore the folder, or upload "
            "the documents again on the Documents page (a new, empty index is created)."
        )
    return (
        f"The policy index folder {where} was replaced by another copy while it was open. Reload "
        "the page (or run the command again) to use the index that is there now."
    )


def _where(collection: str, name: str | None = None, **more: Any) -> dict[str, Any]:
    """A Chroma ``where`` filter for one collection (and one document / more fields)."""
    terms: list[dict[str, Any]] = [{"collection": collection}]
    if name is not None:
        terms.append({"source": name})
    terms.extend({k: v} for k, v in more.items())
    return terms[0] if len(terms) == 1 else {"$and": terms}


def chunk_id(collection: str, chunk: Chunk) -> str:
    """The Chroma id of a chunk: its own id in the default collection, prefixed elsewhere (the same
    file may be indexed in two collections)."""
    if collection == DEFAULT_COLLECTION:
        return chunk.id
    return f"{hashlib.sha256(collection.encode()).hexdigest()[:8]}/{chunk.id}"


class PolicyIndex:
    """Add, replace, delete, list and query policy documents in one Chroma collection.

    Thread-safe for use from several threads (writes are serialised). Create one per process
    (e.g. ``st.cache_resource``) and call :meth:`close` when done; it is also a context manager.
    """

    def __init__(self, settings: Settings, *, embedder: LocalEmbedder | None = None) -> None:
        """Open (creating if needed) the store and the collection ``settings.collection``.

        Raises :class:`RetrievalError` when the Chroma server cannot be reached, the folder
        cannot be opened, or the existing collection was built with another embedding model
        or distance.
        """
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.RLock()
        self._client: ClientAPI | None = None  # None once closed
        self._identity: FileIdentity | None = None  # the index file this index reads (embedded store)
        self._held_key: str | None = None
        chroma_settings = chromadb.Settings(anonymized_telemetry=False)
        if settings.chroma_host:
            self.location = f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
            try:
                self._client = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
            except Exception as exc:
                raise RetrievalError(
                    f"Cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}. "
                    f"Start it with `chroma run --path <folder> --port {settings.chroma_port}` or unset "
                    "RAG_CHROMA_HOST to use the built-in store."
                ) from exc
        else:
            self.location = str(settings.chroma_dir)
            try:
                settings.chroma_dir.mkdir(parents=True, exist_ok=True)
                with _held_lock:
                    self._client = chromadb.PersistentClient(
                        path=str(settings.chroma_dir), settings=chroma_settings
                    )
                    self._hold()
            except Exception as exc:
                raise RetrievalError(
                    f"The policy index in {settings.chroma_dir} cannot be opened ({_short(exc)}). Check "
                    "that the folder is writable and not used by another Chroma version, or point "
                    "RAG_DATA_DIR to another folder."
                ) from exc
        try:
            self._collection = self._client.get_or_create_collection(
                settings.collection,
                embedding_function=MiniLMEmbeddingFunction(),  # type: ignore[arg-type]
                configuration={"hnsw": {"space": "cosine"}},
            )
            space = (self._collection.configuration.get("hnsw") or {}).get("space", "cosine")
        except Exception as exc:
            self.close()
            raise RetrievalError(
                f"The collection '{settings.collection}' in {self.location} cannot be used with this "
                f"app ({_short(exc)}). It was probably built with another embedding model: set "
                "RAG_COLLECTION to a new name, or delete the index folder and ingest the documents again."
            ) from exc
        if space != "cosine":
            self.close()
            raise RetrievalError(
                f"The collection '{settings.collection}' in {self.location} uses '{space}' distance, "
                "not cosine. Set RAG_COLLECTION to a new name and ingest the documents again."
            )
        with self._errors(RetrievalError, "The policy index could not be upgraded"):
            self._label_unlabelled()

    def _label_unlabelled(self) -> None:
        """Chunks indexed before document collections existed join the default collection."""
        first = self._collection.get(limit=1, include=["metadatas"])
        if not first["ids"] or "collection" in ((first["metadatas"] or [{}])[0] or {}):
            return
        got = self._collection.get(include=["metadatas"])
        step = 1000
        for start in range(0, len(got["ids"]), step):
            ids = list(got["ids"][start : start + step])
            metas = [
                {**(m or {}), "collection": DEFAULT_COLLECTION}
                for m in (got["metadatas"] or [])[start : start + step]
            ]
            self._collection.update(ids=ids, metadatas=metas)  # type: ignore[arg-type]

    # --- the folder --------------------------------------------------------------------------
    def _hold(self) -> None:
        """Record which files this index reads (called under ``_held_lock`` right after opening)."""
        key = str(self.settings.chroma_dir.resolve())
        identity, n = _held.get(key, (None, 0))
        if n == 0:  # chromadb opened the folder afresh: its files are the ones on disk now
            identity = index_identity(self.settings)
        _held[key] = (identity, n + 1)
        self._held_key = key
        self._identity = identity

    def _release(self) -> None:
        key = self._held_key
        if key is None:
            return
        self._held_key = None
        with _held_lock:
            identity, n = _held.get(key, (None, 1))
            if n <= 1:
                _held.pop(key, None)
            else:
                _held[key] = (identity, n - 1)

    def folder_problem(self) -> str | None:
        """Why the embedded index's folder can no longer be used (deleted, moved, or replaced while
        open), or None when it is the one this index opened (always None for a Chroma server)."""
        if self.settings.chroma_host:
            return None
        now = index_identity(self.settings)
        if now == self._identity:
            return None
        return index_folder_problem(self.settings, missing=now is None)

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the client (idempotent). The index must not be used afterwards."""
        self._release()
        client = getattr(self, "_client", None)
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception:
                pass
        self._client = None

    def __enter__(self) -> PolicyIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedder(self) -> LocalEmbedder:
        """The embedder (the process-wide one unless another was given); loaded on first use."""
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    # --- writes ----------------------------------------------------------------------------
    def add_document(
        self,
        doc: ParsedDocument,
        *,
        collection: str = DEFAULT_COLLECTION,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Index ``doc`` under its name in ``collection`` → ``"added"`` | ``"unchanged"`` | ``"replaced"``.

        ``"unchanged"``: the same bytes (sha256) and chunks are already indexed under that name;
        nothing is embedded. ``"replaced"``: the name held other content; the new chunks are
        written first, then the old ones removed. ``on_progress(done, total)`` is called before
        each batch of chunks and once at the end; if it raises (Cancel, time budget), the chunks
        written so far are removed and the error propagates (the old version stays). When the same
        bytes were split differently (a re-index after the chunk settings changed) the old chunks
        have to go first, so once they are deleted the write is finished regardless. Raises
        :class:`IngestError` naming the file when the document has no chunks, its identical
        content is already indexed under another name in the same collection, or the write
        fails (chunks written so far are removed again).
        """
        name = doc.name
        if not doc.chunks:
            raise IngestError(f"{name}: the document has no text chunks to index.")
        with self._lock, self._errors(IngestError, f"{name}: could not be added to the policy index"):
            old = self._collection.get(where=_where(collection, name), include=["metadatas", "documents"])
            old_ids: list[str] = list(old["ids"])
            if old_ids and self._is_same(doc, old):
                return "unchanged"
            twin = self._collection.get(
                where=_where(collection, doc_sha256=doc.sha256), include=["metadatas"], limit=1
            )
            twin_source = (twin["metadatas"] or [{}])[0].get("source") if twin["ids"] else None
            if twin_source and twin_source != name:
                raise IngestError(
                    f"{name}: identical content is already indexed as '{twin_source}' in the "
                    f"collection '{collection}'. Nothing to do; delete '{twin_source}' first if you "
                    "want to index it under the new name."
                )
            new_ids = {chunk_id(collection, c) for c in doc.chunks}
            if new_ids & set(old_ids):  # same bytes split differently: ids collide, so delete first
                if on_progress is not None:
                    on_progress(0, len(doc.chunks))  # a Cancel already asked for stops before the delete
                self._delete_ids(old_ids)
                old_ids = []
                # The old chunks are gone: finish the write; a Cancel or the time budget cannot
                # stop it half-way now (the document would vanish from the index).
                self._write(doc, collection, unstoppable(on_progress))
            else:
                self._write(doc, collection, on_progress)
            if old_ids:
                self._delete_ids(old_ids)
            return "replaced" if old["ids"] else "added"

    def delete_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> int:
        """Remove every chunk of document ``name`` of ``collection`` → number removed (0 if it was
        not indexed). Raises :class:`IngestError` naming the file if Chroma fails.
        """
        with self._lock, self._errors(IngestError, f"{name}: could not be removed from the policy index"):
            ids = list(self._collection.get(where=_where(collection, name), include=[])["ids"])
            self._delete_ids(ids)
            return len(ids)

    def _is_same(self, doc: ParsedDocument, old: Any) -> bool:
        metas = old["metadatas"] or []
        if {m.get("doc_sha256") for m in metas} != {doc.sha256} or len(metas) != len(doc.chunks):
            return False
        stored = sorted(zip(metas, old["documents"] or [], strict=False), key=lambda p: int(p[0]["position"]))
        if [str(m.get("section", "")) for m, _ in stored] != [c.section for c in doc.chunks]:
            return False  # indexed before sections existed: re-index to add them
        return [text for _, text in stored] == [c.text for c in doc.chunks]

    def _write(
        self, doc: ParsedDocument, collection: str, on_progress: Callable[[int, int], None] | None
    ) -> None:
        added_at = datetime.now(UTC).isoformat(timespec="seconds")
        total = len(doc.chunks)
        step, delay = embed_batch_size(), embed_delay_s()
        written: list[str] = []
        try:
            for start in range(0, total, step):
                if on_progress is not None:  # before each batch: a Cancel / budget check can stop here
                    on_progress(start, total)
                batch = doc.chunks[start : start + step]
                vectors = self.embedder.embed([c.embed_text for c in batch])
                ids = [chunk_id(collection, c) for c in batch]
                self._collection.add(
                    ids=ids,
                    documents=[c.text for c in batch],
                    embeddings=vectors,
                    metadatas=[
                        {
                            **c.metadata(),
                            "collection": collection,
                            "added_at": added_at,
                            "size_bytes": doc.size_bytes,
                            "pages": doc.pages,
                        }
                        for c in batch
                    ],
                )
                written.extend(ids)
                if delay:  # test hook RAG_TEST_EMBED_DELAY_S (unset in production)
                    time.sleep(delay)
            if on_progress is not None:  # the last check: raising here still removes every chunk
                on_progress(total, total)
        except BaseException:
            try:
                self._delete_ids(written)
            except Exception:
                pass
            raise

    def _delete_ids(self, ids: Sequence[str]) -> None:
        step = 5000  # below Chroma's max batch size
        for start in range(0, len(ids), step):
            self._collection.delete(ids=list(ids[start : start + step]))

    # --- reads -----------------------------------------------------------------------------
    def count(self, collection: str | None = None) -> int:
        """Number of chunks in the index, or in one collection (0 when empty). Raises
        :class:`RetrievalError`."""
        with self._errors(RetrievalError, "The policy index could not be read"):
            if collection is None:
                return int(self._collection.count())
            return len(self._collection.get(where=_where(collection), include=[])["ids"])

    def indexed_sha256(self, name: str, collection: str = DEFAULT_COLLECTION) -> str | None:
        """sha256 of the document indexed as ``name``, or None. Cheap: lets a caller skip parsing."""
        with self._errors(RetrievalError, "The policy index could not be read"):
            got = self._collection.get(where=_where(collection, name), include=["metadatas"], limit=1)
        metas = got["metadatas"] or []
        return str(metas[0]["doc_sha256"]) if got["ids"] and metas else None

    def list_documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """One :class:`DocumentInfo` per indexed document (of one collection, or all), sorted by
        name then collection; ``[]`` when empty."""
        where = _where(collection) if collection is not None else None
        with self._errors(RetrievalError, "The list of indexed documents could not be read"):
            metas = self._collection.get(where=where, include=["metadatas"])["metadatas"] or []
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for m in metas:
            key = (str(m.get("source", "")), str(m.get("collection", DEFAULT_COLLECTION)))
            entry = docs.setdefault(key, {"meta": m, "chunks": 0})
            entry["chunks"] += 1
            if str(m.get("added_at", "")) > str(entry["meta"].get("added_at", "")):
                entry["meta"] = m
        return [
            DocumentInfo(
                name=name,
                sha256=str(e["meta"].get("doc_sha256", "")),
                pages=int(e["meta"].get("pages", 1)),
                chunks=e["chunks"],
                size_bytes=int(e["meta"].get("size_bytes", 0)),
                added_at=str(e["meta"].get("added_at", "")),
                collection=coll,
            )
            for (name, coll), e in sorted(docs.items(), key=lambda kv: (kv[0][0].lower(), kv[0]))
        ]

    def document_info(self, name: str, collection: str = DEFAULT_COLLECTION) -> DocumentInfo | None:
        """One document's :class:`DocumentInfo`, or None when it is not indexed. Reads only that
        document's ids and one chunk's metadata (not the whole collection's, as
        :meth:`list_documents` does), so it stays cheap in a large index."""
        where = _where(collection, name)
        with self._errors(RetrievalError, "The list of indexed documents could not be read"):
            ids = self._collection.get(where=where, include=[])["ids"]
            if not ids:
                return None
            metas = self._collection.get(where=where, include=["metadatas"], limit=1)["metadatas"] or [{}]
        m: dict[str, Any] = dict(metas[0] or {})
        return DocumentInfo(
            name=name,
            sha256=str(m.get("doc_sha256", "")),
            pages=int(m.get("pages", 1)),
            chunks=len(ids),
            size_bytes=int(m.get("size_bytes", 0)),
            added_at=str(m.get("added_at", "")),
            collection=collection,
        )

    def chunks_of(self, name: str, collection: str = DEFAULT_COLLECTION) -> list[Chunk]:
        """The chunks of document ``name`` in position order; ``[]`` if it is not indexed."""
        with self._errors(RetrievalError, f"The chunks of {name} could not be read"):
            got = self._collection.get(where=_where(collection, name), include=["documents", "metadatas"])
        chunks = [
            _chunk(id_, text, meta)
            for id_, text, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            )
        ]
        return sorted(chunks, key=lambda c: c.position)

    def query(
        self, questions: Sequence[str], top_k: int, collection: str | None = DEFAULT_COLLECTION
    ) -> list[list[ScoredChunk]]:
        """The ``top_k`` most similar chunks of ``collection`` for each question, best first
        (``collection=None`` searches every collection).

        One embedding call for all questions and one Chroma query (split only beyond
        :data:`QUERY_BATCH` questions). Scores are cosine
        similarities clipped to [0, 1]. Returns one list per question (``[]`` each when the
        index is empty; ``[]`` overall when ``questions`` is empty). Raises
        :class:`RetrievalError` when ``top_k < 1`` or the index cannot be queried.
        """
        questions = list(questions)
        if top_k < 1:
            raise RetrievalError(f"top_k must be at least 1 (got {top_k}); check RAG_TOP_K.")
        if not questions:
            return []
        n = self.count(collection)
        if n == 0:
            return [[] for _ in questions]
        where = _where(collection) if collection is not None else None
        try:
            vectors = self.embedder.embed(questions)
        except RagError as exc:
            raise RetrievalError(f"The questions could not be embedded: {exc}") from exc
        k = min(top_k, n)
        # One Chroma query normally; very large batches are split (SQLite variable limit).
        step = max(1, min(QUERY_BATCH, MAX_QUERY_RESULTS // k))
        results: list[list[ScoredChunk]] = []
        for start in range(0, len(questions), step):
            with self._errors(RetrievalError, "The policy index could not be queried"):
                got = self._collection.query(
                    query_embeddings=vectors[start : start + step],
                    n_results=k,
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
                for i in range(len(got["ids"])):
                    hits = zip(
                        got["ids"][i],
                        (got["documents"] or [])[i],
                        (got["metadatas"] or [])[i],
                        (got["distances"] or [])[i],
                        strict=True,
                    )
                    scored = [
                        ScoredChunk(_chunk(id_, text, meta), min(1.0, max(0.0, 1.0 - float(dist))))
                        for id_, text, meta, dist in hits
                    ]
                    # Same order on every backend: ties (identical text) by source, then position.
                    scored.sort(key=lambda s: (-round(s.score, 6), s.chunk.source, s.chunk.position))
                    results.append(scored)
        return results

    # --- errors ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self, kind: type[RagError], what: str) -> Iterator[None]:
        """Map Chroma/transport errors to ``kind`` with a message saying what to do."""
        if self._client is None:
            raise kind(f"{what}: the index was closed. Reload the page to reopen it.")
        problem = self.folder_problem()
        if problem is not None:
            raise kind(f"{what}: {problem}")
        try:
            yield
        except RagError as exc:
            if isinstance(exc, kind):
                raise
            raise kind(f"{what}: {exc}") from exc
        except Exception as exc:
            if self.settings.chroma_host and _looks_like_connection_error(exc):
                raise kind(
                    f"{what}: cannot reach the Chroma server at {self.settings.chroma_host}:"
                    f"{self.settings.chroma_port}. Start it with `chroma run --path <folder> --port "
                    f"{self.settings.chroma_port}` or unset RAG_CHROMA_HOST to use the built-in store."
                ) from exc
            raise kind(
                f"{what} ({_short(exc)}). Try again; if it keeps failing, check {self.location} "
                "(disk space, permissions) or ingest the documents into a new RAG_COLLECTION."
            ) from exc


def _chunk(id_: str, text: str | None, meta: Any) -> Chunk:
    meta = meta or {}
    return Chunk(
        id=str(id_),
        text=text or "",
        source=str(meta.get("source", "")),
        page=int(meta.get("page", 1)),
        position=int(meta.get("position", 0)),
        doc_sha256=str(meta.get("doc_sha256", "")),
        section=str(meta.get("section", "") or ""),
        ocr=bool(meta.get("ocr", False)),
    )


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _looks_like_connection_error(exc: BaseException) -> bool:
    names = {t.__name__ for t in type(exc).__mro__}
    text = str(exc).lower()
    return bool(names & {"ConnectError", "ConnectionError", "ConnectTimeout", "RemoteProtocolError"}) or (
        "could not connect" in text or "connection refused" in text
    )
