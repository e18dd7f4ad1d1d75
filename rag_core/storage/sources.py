"""Source links of questions: which passages support each question's expected answer (issue 14).

Contracts (in addition to the store's, see :mod:`rag_core.storage.store`)
- Links belong to (question set, question text); :meth:`SourcesStore.set_question_sources` replaces
  a question's links in one transaction, in the order given.
- Deleting a question set deletes its links; a link whose question is no longer in the set stays
  until the set is deleted (readers look links up by the set's current questions).
- SQL here is portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.models import SourceLink
from rag_core.storage.connection import SqliteBase

__all__ = ["SourcesStore"]

_COLUMNS = "collection, document, version, section, page, chunk_id, passage, fingerprint, origin"


class SourcesStore(SqliteBase):
    """Source-link methods of :class:`~rag_core.storage.store.HistoryStore`."""

    def set_question_sources(self, set_name: str, question: str, links: Sequence[SourceLink]) -> None:
        """Replace the links of ``question`` in ``set_name`` with ``links`` (none clears them)."""
        with self._tx(f"save the sources of a question in '{set_name}'", write=True) as conn:
            conn.execute(
                "DELETE FROM question_sources WHERE set_name = ? AND question = ?", (set_name, question)
            )
            for position, link in enumerate(links):
                conn.execute(
                    f"INSERT INTO question_sources(set_name, question, position, {_COLUMNS}, stale) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (
                        set_name,
                        question,
                        position,
                        link.collection,
                        link.document,
                        int(link.version),
                        link.section,
                        link.page,
                        link.chunk_id,
                        link.passage,
                        link.fingerprint,
                        link.origin,
                    ),
                )

    def question_sources(self, set_name: str) -> dict[str, list[SourceLink]]:
        """Every question's links in ``set_name``: {question text: links in order}."""
        with self._tx(f"read the sources of '{set_name}'", write=False) as conn:
            rows = conn.execute(
                f"SELECT question, {_COLUMNS} FROM question_sources WHERE set_name = ? "
                "ORDER BY question, position",
                (set_name,),
            ).fetchall()
        out: dict[str, list[SourceLink]] = {}
        for r in rows:
            out.setdefault(str(r[0]), []).append(
                SourceLink(
                    collection=str(r[1]),
                    document=str(r[2]),
                    version=int(r[3]),
                    section=str(r[4]),
                    page=None if r[5] is None else int(r[5]),
                    chunk_id=str(r[6]),
                    passage=str(r[7]),
                    fingerprint=str(r[8]),
                    origin=str(r[9]),
                )
            )
        return out

    def delete_question_sources(self, set_name: str) -> None:
        """Forget every link of ``set_name`` (the set was deleted)."""
        with self._tx(f"delete the sources of '{set_name}'", write=True) as conn:
            conn.execute("DELETE FROM question_sources WHERE set_name = ?", (set_name,))
