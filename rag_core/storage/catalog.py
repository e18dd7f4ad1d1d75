"""Question sets, document collections, the documents' records and their version history: what
the analyst has saved, apart from runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from rag_core.errors import InputError
from rag_core.models import (
    DEFAULT_COLLECTION,
    MAX_COLLECTION_CHARS,
    DocumentInfo,
    DocumentVersion,
    QAItem,
)
from rag_core.questions import validate_items
from rag_core.storage.connection import SqliteBase, _now
from rag_core.storage.experiments import record_set_version
from rag_core.storage.records import QuestionSetInfo
from rag_core.storage.schema import MAX_SET_NAME_CHARS

__all__ = ["CatalogStore", "collection_name"]


class CatalogStore(SqliteBase):
    """Question-set and document methods of :class:`~rag_core.storage.store.HistoryStore`."""

    # --- question sets ------------------------------------------------------------------------
    def save_question_set(self, name: str, items: Sequence[QAItem]) -> QuestionSetInfo:
        """Create or replace the set ``name`` with ``items`` (validated, whitespace-stripped).

        Raises :class:`InputError` for an empty/too-long name or invalid items (empty set,
        duplicate or empty questions…, naming the row). Runs that used an older version of the
        set are not changed.
        """
        name = _set_name(name)
        clean = validate_items(items, source=f"Question set '{name}'")
        now = _now()
        with self._tx(f"save question set '{name}'", write=True) as conn:
            conn.execute(
                "INSERT INTO question_sets(name, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at",
                (name, now, now),
            )
            conn.execute("DELETE FROM question_items WHERE set_name = ?", (name,))
            conn.executemany(
                "INSERT INTO question_items(set_name, idx, question, ground_truth, expected) "
                "VALUES (?, ?, ?, ?, ?)",
                [(name, i, it.question, it.ground_truth, str(it.expected)) for i, it in enumerate(clean)],
            )
            record_set_version(conn, name, clean, now)  # a version row when the content changed
        return self._set_info(name)

    def list_question_sets(self) -> list[QuestionSetInfo]:
        """All saved sets, sorted by name (case-insensitive); ``[]`` when there are none."""
        with self._tx("list the question sets", write=False) as conn:
            rows = conn.execute(
                "SELECT s.name, COUNT(i.idx), s.updated_at, s.collection FROM question_sets s "
                "LEFT JOIN question_items i ON i.set_name = s.name "
                "GROUP BY s.name ORDER BY LOWER(s.name), s.name"
            ).fetchall()
        return [QuestionSetInfo(name=r[0], n_items=int(r[1]), updated_at=r[2], collection=r[3]) for r in rows]

    def _set_info(self, name: str) -> QuestionSetInfo:
        got = next((s for s in self.list_question_sets() if s.name == name), None)
        if got is None:
            raise InputError(f"There is no question set named '{name}'.")
        return got

    def bind_question_set(self, name: str, collection: str | None) -> QuestionSetInfo:
        """Bind the set ``name`` to a document collection (``None`` unbinds it): its runs then
        retrieve only from that collection. Raises :class:`InputError` for an unknown set or
        collection."""
        if collection is not None and collection not in self.list_collections():
            raise InputError(f"There is no document collection named '{collection}'.")
        with self._tx(f"bind question set '{name}'", write=True) as conn:
            cur = conn.execute("UPDATE question_sets SET collection = ? WHERE name = ?", (collection, name))
            if cur.rowcount == 0:
                raise InputError(f"There is no question set named '{name}'.")
        return self._set_info(name)

    def get_question_set(self, name: str) -> list[QAItem]:
        """The set's items in their saved order. Raises :class:`InputError` if no such set."""
        with self._tx(f"read question set '{name}'", write=False) as conn:
            exists = conn.execute("SELECT 1 FROM question_sets WHERE name = ?", (name,)).fetchone()
            if exists is None:
                names = [r[0] for r in conn.execute("SELECT name FROM question_sets ORDER BY name LIMIT 6")]
                raise InputError(f"There is no question set named '{name}'. {_available(names)}")
            rows = conn.execute(
                "SELECT question, ground_truth, expected FROM question_items WHERE set_name = ? ORDER BY idx",
                (name,),
            ).fetchall()
        return [QAItem(question=q, ground_truth=g, expected=e) for q, g, e in rows]

    def delete_question_set(self, name: str) -> bool:
        """Delete a set and its items. ``False`` when it did not exist. Runs are kept."""
        with self._tx(f"delete question set '{name}'", write=True) as conn:
            cur = conn.execute("DELETE FROM question_sets WHERE name = ?", (name,))
            conn.execute("DELETE FROM question_sources WHERE set_name = ?", (name,))
            return cur.rowcount > 0

    # --- collections ----------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Collection names, the default one first, then by name; never empty."""
        with self._tx("list the collections", write=False) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM collections")]
            names += [r[0] for r in conn.execute("SELECT DISTINCT collection FROM documents")]
        rest = sorted({n for n in names if n != DEFAULT_COLLECTION}, key=lambda n: (n.lower(), n))
        return [DEFAULT_COLLECTION, *rest]

    def create_collection(self, name: str) -> str:
        """Create a collection (a no-op when it exists); returns its cleaned name. Raises
        :class:`InputError` for an empty or too long name."""
        name = collection_name(name)
        with self._tx(f"create collection '{name}'", write=True) as conn:
            conn.execute(
                "INSERT INTO collections(name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, _now()),
            )
        return name

    def delete_collection(self, name: str) -> bool:
        """Delete an empty collection (question sets bound to it are unbound). ``False`` when it
        did not exist. Raises :class:`InputError` for the default collection or one that still has
        documents."""
        if name == DEFAULT_COLLECTION:
            raise InputError(f"'{DEFAULT_COLLECTION}' is the default collection and cannot be deleted.")
        with self._tx(f"delete collection '{name}'", write=True) as conn:
            n = conn.execute("SELECT COUNT(*) FROM documents WHERE collection = ?", (name,)).fetchone()[0]
            if n:
                raise InputError(
                    f"The collection '{name}' still has {n} document{'s' if n != 1 else ''}: delete "
                    "them first."
                )
            conn.execute("UPDATE question_sets SET collection = NULL WHERE collection = ?", (name,))
            return conn.execute("DELETE FROM collections WHERE name = ?", (name,)).rowcount > 0

    # --- documents ----------------------------------------------------------------------------
    def record_document(
        self, doc: DocumentInfo, *, sections: Mapping[str, str] | None = None
    ) -> DocumentVersion:
        """Record an indexed document and return its version.

        Same bytes as the current version (e.g. re-indexed with other chunk settings): the record is
        updated, the version stays. Other bytes: a new version (previous + 1; numbering continues
        after a delete) with the sections that changed against the previous version (``sections``
        maps section path → fingerprint). The collection is created if needed.
        """
        collection = collection_name(doc.collection)
        now = _now()
        new_sections = dict(sections or {})
        with self._tx(f"record document '{doc.name}'", write=True) as conn:
            conn.execute(
                "INSERT INTO collections(name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (collection, now),
            )
            last = conn.execute(
                "SELECT version, sha256, sections FROM document_versions WHERE collection = ? AND name = ? "
                "ORDER BY version DESC LIMIT 1",
                (collection, doc.name),
            ).fetchone()
            if last is not None and last[1] == doc.sha256:
                version = int(last[0])
                conn.execute(
                    "UPDATE document_versions SET chunks = ?, pages = ?, ocr_pages = ?, sections = ? "
                    "WHERE collection = ? AND name = ? AND version = ?",
                    (
                        doc.chunks,
                        doc.pages,
                        doc.ocr_pages,
                        json.dumps(new_sections),
                        collection,
                        doc.name,
                        version,
                    ),
                )
            else:
                version = int(last[0]) + 1 if last is not None else 1
                changed: list[str] = []
                if last is not None:
                    old_sections = json.loads(last[2] or "{}")
                    changed = sorted(
                        k
                        for k in set(old_sections) | set(new_sections)
                        if old_sections.get(k) != new_sections.get(k)
                    )
                conn.execute(
                    "INSERT INTO document_versions(collection, name, version, sha256, added_at, chunks, "
                    "pages, size_bytes, ocr_pages, sections, sections_changed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        collection,
                        doc.name,
                        version,
                        doc.sha256,
                        doc.added_at or now,
                        doc.chunks,
                        doc.pages,
                        doc.size_bytes,
                        doc.ocr_pages,
                        json.dumps(new_sections),
                        json.dumps(changed),
                    ),
                )
            conn.execute(
                "INSERT INTO documents(collection, name, sha256, pages, chunks, size_bytes, "
                "added_at, version, ocr_pages, format) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (collection, name) DO UPDATE SET sha256 = excluded.sha256, "
                "pages = excluded.pages, chunks = excluded.chunks, size_bytes = excluded.size_bytes, "
                "added_at = excluded.added_at, version = excluded.version, "
                "ocr_pages = excluded.ocr_pages, format = excluded.format",
                (
                    collection,
                    doc.name,
                    doc.sha256,
                    int(doc.pages),
                    int(doc.chunks),
                    int(doc.size_bytes),
                    doc.added_at or now,
                    version,
                    int(doc.ocr_pages),
                    doc.format,
                ),
            )
        return self.document_versions(doc.name, collection)[0]

    def forget_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> bool:
        """Remove a document's record (its version history is kept). ``False`` when there was none."""
        with self._tx(f"forget document '{name}'", write=True) as conn:
            return (
                conn.execute(
                    "DELETE FROM documents WHERE name = ? AND collection = ?", (name, collection)
                ).rowcount
                > 0
            )

    def list_documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """Recorded documents (of one collection, or all) sorted by name; ``[]`` when none."""
        sql = (
            "SELECT name, sha256, pages, chunks, size_bytes, added_at, collection, version, ocr_pages, "
            "format FROM documents"
        )
        args: tuple[str, ...] = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            args = (collection,)
        with self._tx("list the documents", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY LOWER(name), name, collection", args).fetchall()
        return [
            DocumentInfo(
                name=r[0],
                sha256=r[1],
                pages=r[2],
                chunks=r[3],
                size_bytes=r[4],
                added_at=r[5],
                collection=r[6],
                version=int(r[7]),
                ocr_pages=int(r[8]),
                format=r[9],
            )
            for r in rows
        ]

    def document_versions(self, name: str, collection: str = DEFAULT_COLLECTION) -> list[DocumentVersion]:
        """Every recorded version of a document, newest first; ``[]`` when it was never indexed."""
        with self._tx(f"read the versions of '{name}'", write=False) as conn:
            rows = conn.execute(
                "SELECT version, sha256, added_at, chunks, pages, size_bytes, ocr_pages, sections_changed "
                "FROM document_versions WHERE collection = ? AND name = ? ORDER BY version DESC",
                (collection, name),
            ).fetchall()
        return [
            DocumentVersion(
                collection=collection,
                name=name,
                version=int(r[0]),
                sha256=r[1],
                added_at=r[2],
                chunks=int(r[3]),
                pages=int(r[4]),
                size_bytes=int(r[5]),
                ocr_pages=int(r[6]),
                sections_changed=tuple(json.loads(r[7] or "[]")),
            )
            for r in rows
        ]

    def versions_by_sha(self, collection: str | None = None) -> dict[str, DocumentVersion]:
        """``{sha256: version record}`` (of one collection, or all): tells which version a stored
        context came from."""
        sql = (
            "SELECT collection, name, version, sha256, added_at, chunks, pages, size_bytes, ocr_pages "
            "FROM document_versions"
        )
        args: tuple[str, ...] = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            args = (collection,)
        with self._tx("read the document versions", write=False) as conn:
            rows = conn.execute(sql, args).fetchall()
        return {
            r[3]: DocumentVersion(
                collection=r[0],
                name=r[1],
                version=int(r[2]),
                sha256=r[3],
                added_at=r[4],
                chunks=int(r[5]),
                pages=int(r[6]),
                size_bytes=int(r[7]),
                ocr_pages=int(r[8]),
            )
            for r in rows
        }


def collection_name(name: str) -> str:
    """A collection name, whitespace-normalised. Raises :class:`InputError` when empty or longer
    than :data:`~rag_core.models.MAX_COLLECTION_CHARS` characters."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("A document collection needs a name.")
    name = " ".join(name.split())
    if len(name) > MAX_COLLECTION_CHARS:
        raise InputError(f"A collection name can have at most {MAX_COLLECTION_CHARS} characters.")
    return name


def _set_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("A question set needs a name.")
    name = " ".join(name.split())
    if len(name) > MAX_SET_NAME_CHARS:
        raise InputError(f"A question set name can have at most {MAX_SET_NAME_CHARS} characters.")
    return name


def _available(names: list[str]) -> str:
    if not names:
        return "No question sets are saved yet."
    shown = ", ".join(f"'{n}'" for n in names[:5])
    return f"Saved sets: {shown}{', …' if len(names) > 5 else ''}."
