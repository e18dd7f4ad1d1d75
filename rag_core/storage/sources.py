"""Source links of questions: which passages support each question's expected answer (issue 14).

Contracts (in addition to the store's, see :mod:`rag_core.storage.store`)
- Links belong to (question set, question text); :meth:`SourcesStore.set_question_sources` replaces
  a question's links in one transaction, in the order given.
- Deleting a question set deletes its links; a link whose question is no longer in the set stays
  until the set is deleted (readers look links up by the set's current questions).
- A link's check state (issue 14's stale flags): ``stale`` with its reason, the new passage shown
  beside the old one, and the document version it was last compared with
  (:meth:`SourcesStore.record_link_check`); :meth:`SourcesStore.clear_stale` clears a question's flags.
- SQL here is portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from rag_core.models import SourceLink
from rag_core.storage.connection import SqliteBase

__all__ = ["LinkState", "SourcesStore"]

_COLUMNS = "collection, document, version, section, page, chunk_id, passage, fingerprint, origin"


@dataclass(frozen=True)
class LinkState:
    """One stored source link with its check state."""

    set_name: str
    """The question set."""
    question: str
    """The question's text (links are keyed by it)."""
    position: int
    """0-based order of the link among the question's links."""
    link: SourceLink
    """The passage as linked (its text then: the "old" passage once the policy changed)."""
    stale: bool
    """True when a newer document version changed or removed the passage."""
    reason: str
    """Why it is stale (``"passage changed"``, ``"section removed"``, ``"document removed"``); ``''``."""
    new_passage: str | None
    """The current passage of the same section when stale; ``''`` when the section is gone; None
    when not checked."""
    stale_at: str | None
    """ISO-8601 UTC time it was flagged; None when not stale."""
    checked_version: int | None
    """The document version the link was last compared with; None when never compared."""


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

    def link_states(
        self,
        set_name: str | None = None,
        *,
        collection: str | None = None,
        document: str | None = None,
        stale_only: bool = False,
    ) -> list[LinkState]:
        """Stored links with their check state, filtered by set / collection / document; ``[]`` when
        none. Ordered by set, question, position."""
        where, args = [], []
        for column, value in (("set_name", set_name), ("collection", collection), ("document", document)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if stale_only:
            where.append("stale = 1")
        sql = (
            f"SELECT set_name, question, position, {_COLUMNS}, stale, stale_reason, new_passage, stale_at, "
            "checked_version FROM question_sources"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx("read the source links", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY set_name, question, position", tuple(args)).fetchall()
        return [
            LinkState(
                set_name=str(r[0]),
                question=str(r[1]),
                position=int(r[2]),
                link=SourceLink(
                    collection=str(r[3]),
                    document=str(r[4]),
                    version=int(r[5]),
                    section=str(r[6]),
                    page=None if r[7] is None else int(r[7]),
                    chunk_id=str(r[8]),
                    passage=str(r[9]),
                    fingerprint=str(r[10]),
                    origin=str(r[11]),
                ),
                stale=bool(r[12]),
                reason=str(r[13] or ""),
                new_passage=None if r[14] is None else str(r[14]),
                stale_at=None if r[15] is None else str(r[15]),
                checked_version=None if r[16] is None else int(r[16]),
            )
            for r in rows
        ]

    def record_link_check(
        self,
        set_name: str,
        question: str,
        position: int,
        *,
        stale: bool,
        checked_version: int,
        reason: str = "",
        new_passage: str | None = None,
        stale_at: str | None = None,
        chunk_id: str | None = None,
    ) -> None:
        """Store the outcome of comparing one link with a document version: stale (with reason,
        new passage and time) or not (flag cleared; ``chunk_id`` follows the passage's new id when
        the identical passage was found). A link that no longer exists is ignored."""
        with self._tx(f"flag a source link of '{set_name}'", write=True) as conn:
            conn.execute(
                "UPDATE question_sources SET stale = ?, stale_reason = ?, new_passage = ?, "
                "stale_at = ?, checked_version = ?, chunk_id = COALESCE(?, chunk_id) "
                "WHERE set_name = ? AND question = ? AND position = ?",
                (
                    int(stale),
                    reason if stale else "",
                    new_passage if stale else None,
                    stale_at if stale else None,
                    int(checked_version),
                    chunk_id,
                    set_name,
                    question,
                    int(position),
                ),
            )

    def clear_stale(self, set_name: str, question: str) -> int:
        """Clear every stale flag of ``question`` in ``set_name``; returns how many were cleared."""
        with self._tx(f"clear the stale flags of a question in '{set_name}'", write=True) as conn:
            return int(
                conn.execute(
                    "UPDATE question_sources SET stale = 0, stale_reason = '', new_passage = NULL, "
                    "stale_at = NULL WHERE set_name = ? AND question = ? AND stale = 1",
                    (set_name, question),
                ).rowcount
            )

    def move_question_sources(self, old: str, new: str) -> int:
        """Give the links of set ``old`` to set ``new`` (a rename); returns how many moved. Links
        ``new`` already had are replaced."""
        with self._tx(f"move the sources of '{old}' to '{new}'", write=True) as conn:
            conn.execute("DELETE FROM question_sources WHERE set_name = ?", (new,))
            return int(
                conn.execute(
                    "UPDATE question_sources SET set_name = ? WHERE set_name = ?", (new, old)
                ).rowcount
            )

    def version_sections(self, collection: str, name: str, version: int) -> dict[str, str] | None:
        """``{section path: fingerprint}`` of one document version, in document order; None when
        that version was never recorded."""
        with self._tx(f"read the sections of '{name}'", write=False) as conn:
            row = conn.execute(
                "SELECT sections FROM document_versions WHERE collection = ? AND name = ? AND version = ?",
                (collection, name, int(version)),
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0] or "{}")
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
