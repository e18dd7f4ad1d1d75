"""Question sets and the documents' records: what the analyst has saved, apart from runs."""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.errors import InputError
from rag_core.models import DocumentInfo, QAItem
from rag_core.questions import validate_items
from rag_core.storage.connection import SqliteBase, _now
from rag_core.storage.records import QuestionSetInfo
from rag_core.storage.schema import MAX_SET_NAME_CHARS

__all__ = ["CatalogStore"]


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
        return QuestionSetInfo(name=name, n_items=len(clean), updated_at=now)

    def list_question_sets(self) -> list[QuestionSetInfo]:
        """All saved sets, sorted by name (case-insensitive); ``[]`` when there are none."""
        with self._tx("list the question sets", write=False) as conn:
            rows = conn.execute(
                "SELECT s.name, COUNT(i.idx), s.updated_at FROM question_sets s "
                "LEFT JOIN question_items i ON i.set_name = s.name "
                "GROUP BY s.name ORDER BY s.name COLLATE NOCASE, s.name"
            ).fetchall()
        return [QuestionSetInfo(name=r[0], n_items=int(r[1]), updated_at=r[2]) for r in rows]

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
            return cur.rowcount > 0

    # --- documents ----------------------------------------------------------------------------
    def record_document(self, doc: DocumentInfo) -> None:
        """Create or replace the record of an indexed document (keyed by ``doc.name``)."""
        with self._tx(f"record document '{doc.name}'", write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO documents(name, sha256, pages, chunks, size_bytes, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (doc.name, doc.sha256, int(doc.pages), int(doc.chunks), int(doc.size_bytes), doc.added_at),
            )

    def forget_document(self, name: str) -> bool:
        """Remove a document's record. ``False`` when there was none."""
        with self._tx(f"forget document '{name}'", write=True) as conn:
            return conn.execute("DELETE FROM documents WHERE name = ?", (name,)).rowcount > 0

    def list_documents(self) -> list[DocumentInfo]:
        """Recorded documents sorted by name; ``[]`` when none."""
        with self._tx("list the documents", write=False) as conn:
            rows = conn.execute(
                "SELECT name, sha256, pages, chunks, size_bytes, added_at FROM documents "
                "ORDER BY name COLLATE NOCASE, name"
            ).fetchall()
        return [
            DocumentInfo(name=r[0], sha256=r[1], pages=r[2], chunks=r[3], size_bytes=r[4], added_at=r[5])
            for r in rows
        ]


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
