"""The generation review queue and the generation cache (issue 14, :mod:`rag_core.authoring`).

Contracts (in addition to the store's, see :mod:`rag_core.storage.store`)
- :meth:`AuthoringStore.add_generated_pairs` stores pairs as ``pending`` with fresh ids (MAX+1 in
  the write transaction, no auto-increment: portable SQL) and returns them with their ids.
- A pair's status moves pending → accepted | rejected; asking for an unknown id raises
  :class:`InputError` naming it. Empty is ``[]``.
- The generation cache keeps the first successful response per key (a second put is a no-op).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from rag_core.errors import InputError
from rag_core.models import GeneratedPair, SourceLink
from rag_core.storage.connection import SqliteBase, _now
from rag_core.storage.jsonsafe import from_json, to_json
from rag_core.vocab import Expected

__all__ = ["PAIR_STATUSES", "AuthoringStore"]

#: Every status a generated pair can have.
PAIR_STATUSES = ("pending", "accepted", "rejected")

_COLS = (
    "id, job, created_at, collection, kind, question, expected_answer, expected, sources, flags, "
    "model, status, question_set, reviewed_at"
)


def _pair(r: Sequence[Any]) -> GeneratedPair:
    links = tuple(SourceLink(**d) for d in from_json(r[8], "the sources of a generated pair", []))
    return GeneratedPair(
        id=int(r[0]),
        job=str(r[1]),
        created_at=str(r[2]),
        collection=str(r[3]),
        kind=str(r[4]),
        question=str(r[5]),
        expected_answer=str(r[6]),
        expected=Expected(str(r[7])),
        sources=links,
        flags=tuple(str(f) for f in from_json(r[9], "the flags of a generated pair", [])),
        model=str(r[10]),
        status=str(r[11]),
        question_set=None if r[12] is None else str(r[12]),
        reviewed_at=None if r[13] is None else str(r[13]),
    )


class AuthoringStore(SqliteBase):
    """Review-queue and generation-cache methods of :class:`~rag_core.storage.store.HistoryStore`."""

    # --- review queue ---------------------------------------------------------------------------
    def add_generated_pairs(self, pairs: Iterable[GeneratedPair]) -> list[GeneratedPair]:
        """Store ``pairs`` as pending (their ``id`` is ignored); returns them with their new ids."""
        pairs = list(pairs)
        out: list[GeneratedPair] = []
        if not pairs:
            return out
        now = _now()
        with self._tx("save generated questions", write=True) as conn:
            next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM generated_pairs").fetchone()[0])
            for p in pairs:
                conn.execute(
                    f"INSERT INTO generated_pairs({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        next_id,
                        p.job,
                        now,
                        p.collection,
                        p.kind,
                        p.question,
                        p.expected_answer,
                        str(p.expected),
                        to_json([asdict(s) for s in p.sources], "the sources of a generated pair"),
                        json.dumps(list(p.flags)),
                        p.model,
                        "pending",
                        None,
                        None,
                    ),
                )
                out.append(
                    GeneratedPair(**{**_fields(p), "id": next_id, "created_at": now, "status": "pending"})
                )
                next_id += 1
        return out

    def generated_pairs(
        self, *, status: str | None = "pending", collection: str | None = None, job: str | None = None
    ) -> list[GeneratedPair]:
        """Queue entries oldest first, filtered by status (None = all), collection and job."""
        where, params = [], []
        for col, value in (("status", status), ("collection", collection), ("job", job)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        sql = f"SELECT {_COLS} FROM generated_pairs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx("read the generated questions", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY id", tuple(params)).fetchall()
        return [_pair(r) for r in rows]

    def generated_pair(self, pair_id: int) -> GeneratedPair:
        """One queue entry. Raises :class:`InputError` when there is no such id."""
        with self._tx("read a generated question", write=False) as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM generated_pairs WHERE id = ?", (int(pair_id),)
            ).fetchone()
        if row is None:
            raise InputError(f"There is no generated question #{pair_id} in the review queue.")
        return _pair(row)

    def edit_generated_pair(self, pair_id: int, question: str, expected_answer: str) -> GeneratedPair:
        """Replace the question and expected answer of a pending pair (the analyst's edit)."""
        self.generated_pair(pair_id)
        with self._tx("save an edited question", write=True) as conn:
            conn.execute(
                "UPDATE generated_pairs SET question = ?, expected_answer = ? WHERE id = ?",
                (question, expected_answer, int(pair_id)),
            )
        return self.generated_pair(pair_id)

    def set_generated_status(
        self, pair_ids: Iterable[int], status: str, question_set: str | None = None
    ) -> int:
        """Mark pairs ``accepted`` (into ``question_set``) or ``rejected``; returns rows changed."""
        if status not in PAIR_STATUSES:
            raise InputError(f"Unknown review status {status!r}: choose one of {', '.join(PAIR_STATUSES)}.")
        ids = [int(i) for i in pair_ids]
        changed = 0
        now = _now()
        with self._tx("save the review of generated questions", write=True) as conn:
            for i in ids:
                changed += conn.execute(
                    "UPDATE generated_pairs SET status = ?, question_set = ?, reviewed_at = ? WHERE id = ?",
                    (status, question_set, now, i),
                ).rowcount
        return changed

    # --- generation cache -------------------------------------------------------------------------
    def generation_cache_get(self, key: str) -> tuple[dict[str, Any], int, int] | None:
        """``(response, input_tokens, output_tokens)`` cached under ``key``, or None on a miss."""
        with self._tx("read the generation cache", write=False) as conn:
            row = conn.execute(
                "SELECT response, input_tokens, output_tokens FROM generation_cache WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return from_json(row[0], "a cached generation", {}), int(row[1]), int(row[2])

    def generation_cache_has(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are cached."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self._tx("read the generation cache", write=False) as conn:
            for start in range(0, len(keys), 200):
                part = keys[start : start + 200]
                marks = ", ".join("?" for _ in part)
                rows = conn.execute(
                    f"SELECT key FROM generation_cache WHERE key IN ({marks})", part
                ).fetchall()
                found.update(str(r[0]) for r in rows)
        return found

    def generation_cache_put(
        self, key: str, model: str, response: dict[str, Any], input_tokens: int, output_tokens: int
    ) -> None:
        """Cache a successful response under ``key`` (an existing entry is kept)."""
        with self._tx("write the generation cache", write=True) as conn:
            conn.execute(
                "INSERT INTO generation_cache(key, model, response, input_tokens, output_tokens, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (
                    key,
                    model,
                    to_json(response, "a generation response"),
                    int(input_tokens),
                    int(output_tokens),
                    _now(),
                ),
            )


def _fields(p: GeneratedPair) -> dict[str, Any]:
    return {f: getattr(p, f) for f in GeneratedPair.__dataclass_fields__}
