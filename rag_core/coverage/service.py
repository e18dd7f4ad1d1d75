"""Coverage and stale flags against the store and the index: link questions, check links against a
new document version, confirm or re-link a question, and the ingest hook that ties them together.

Rules
- Links are computed only for questions that have none in the collection (stored links win, see
  :mod:`~rag_core.coverage.links`), and stored at once so a later version can be compared.
- Before a document's content is replaced (:meth:`StaleTracker.before_replace`), every question
  set that may be grounded in that collection gets its missing links computed against the
  *current* version: sets bound to the collection, sets not bound (when it is the default
  collection), sets that already have links there and sets with a run on it.
- After the new version is indexed (:meth:`StaleTracker.after_replace`), every link to that
  document is compared with it (:func:`~rag_core.coverage.stale.check_link`) and flagged or
  cleared. A deleted document flags its links ``"document removed"``.
- Confirming a question re-links each stale link to the current passage of its section (same
  origin); a link whose section or document is gone is replaced by freshly computed links.
  Re-linking (after its expected answer was edited) recomputes the question's links.
- Hook failures never fail an ingestion: they are logged and the file is still indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from rag_core.coverage.links import DocSections, Retriever, compute_links
from rag_core.coverage.stale import DOCUMENT_REMOVED, check_link, section_chunk
from rag_core.errors import RagError
from rag_core.models import DEFAULT_COLLECTION, Chunk, QAItem, SourceLink
from rag_core.storage import HistoryStore
from rag_core.storage.sources import LinkState
from rag_core.text import passage_fingerprint

__all__ = [
    "StaleTracker",
    "affected_sets",
    "check_document",
    "confirm_question",
    "documents_context",
    "ensure_links",
    "mark_document_removed",
    "relink_question",
    "restore_links",
]

log = logging.getLogger(__name__)

#: ``chunks_of(name, collection)``: a document's current chunks (the index's ``chunks_of``).
ChunksOf = Callable[[str, str], Sequence[Chunk]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def documents_context(store: HistoryStore, collection: str) -> dict[str, DocSections]:
    """``{document name: its current version and ordered sections}`` of a collection."""
    out = {}
    for d in store.list_documents(collection):
        sections = store.version_sections(collection, d.name, d.version) or {}
        out[d.name] = DocSections(d.name, d.version, tuple(sections))
    return out


def affected_sets(store: HistoryStore, collection: str) -> list[str]:
    """The question sets that may be grounded in ``collection`` (see the module rules), by name."""
    names = set()
    for s in store.list_question_sets():
        if s.collection == collection or (s.collection is None and collection == DEFAULT_COLLECTION):
            names.add(s.name)
    names |= {ls.set_name for ls in store.link_states(collection=collection)}
    for run in store.list_runs():
        if run.question_set and run.config.get("collection", DEFAULT_COLLECTION) == collection:
            names.add(run.question_set)
    existing = {s.name for s in store.list_question_sets()}
    return sorted(names & existing)


def ensure_links(
    store: HistoryStore,
    retriever: Retriever,
    set_name: str,
    collection: str,
    items: Sequence[QAItem] | None = None,
) -> int:
    """Compute and store links for the questions of ``set_name`` that have none in
    ``collection``; returns how many questions got links."""
    items = list(items) if items is not None else store.get_question_set(set_name)
    linked = {ls.question for ls in store.link_states(set_name, collection=collection)}
    todo = [it for it in items if it.question not in linked]
    if not todo:
        return 0
    computed = compute_links(todo, retriever, collection, documents_context(store, collection))
    n = 0
    for question, links in computed.items():
        if links:
            store.set_question_sources(set_name, question, links)
            n += 1
    return n


def check_document(
    store: HistoryStore, collection: str, name: str, version: int, chunks: Sequence[Chunk]
) -> int:
    """Compare every link to document ``name`` with its ``version`` (whose ``chunks`` are given);
    store each outcome. Returns how many questions became stale."""
    new_sections = store.version_sections(collection, name, version) or {}
    old_cache: dict[int, dict[str, str] | None] = {}
    newly: set[tuple[str, str]] = set()
    now = _now()
    fingerprints = {passage_fingerprint(c.text): c for c in chunks}
    for ls in store.link_states(collection=collection, document=name):
        v = ls.link.version
        if v not in old_cache:
            old_cache[v] = store.version_sections(collection, name, v)
        got = check_link(ls.link, chunks, old_cache[v], new_sections, fingerprints)
        if got.stale and not ls.stale:
            newly.add((ls.set_name, ls.question))
        store.record_link_check(
            ls.set_name,
            ls.question,
            ls.position,
            stale=got.stale,
            checked_version=version,
            reason=got.reason,
            new_passage=got.new_passage,
            stale_at=(ls.stale_at or now) if got.stale else None,
            chunk_id=got.chunk_id,
        )
    return len(newly)


def mark_document_removed(store: HistoryStore, collection: str, name: str) -> int:
    """Flag every link to a deleted document; returns how many questions became stale."""
    newly = set()
    now = _now()
    for ls in store.link_states(collection=collection, document=name):
        if not ls.stale:
            newly.add((ls.set_name, ls.question))
        store.record_link_check(
            ls.set_name,
            ls.question,
            ls.position,
            stale=True,
            checked_version=ls.checked_version or ls.link.version,
            reason=DOCUMENT_REMOVED,
            new_passage="",
            stale_at=ls.stale_at or now,
        )
    return len(newly)


def _item(store: HistoryStore, set_name: str, question: str) -> QAItem:
    from rag_core.errors import InputError

    for it in store.get_question_set(set_name):
        if it.question == question:
            return it
    raise InputError(f"The question set '{set_name}' has no question {question[:80]!r}.")


def relink_question(store: HistoryStore, retriever: Retriever, set_name: str, question: str) -> int:
    """Recompute the links of one question in every collection it had links in (its expected
    answer changed); returns how many links it has now."""
    item = _item(store, set_name, question)
    states = store.link_states(set_name)
    collections = list(dict.fromkeys(ls.link.collection for ls in states if ls.question == question))
    links: list[SourceLink] = []
    for collection in collections:
        computed = compute_links([item], retriever, collection, documents_context(store, collection))
        links.extend(computed.get(question, []))
    store.set_question_sources(set_name, question, links)
    return len(links)


def confirm_question(
    store: HistoryStore, retriever: Retriever, chunks_of: ChunksOf, set_name: str, question: str
) -> int:
    """The analyst confirms the expected answer still holds: each stale link of ``question`` is
    re-linked to the current passage of its section (links whose section or document is gone are
    replaced by computed ones). Returns how many stale links were cleared (0 when none)."""
    item = _item(store, set_name, question)
    states = [ls for ls in store.link_states(set_name) if ls.question == question]
    if not any(ls.stale for ls in states):
        return 0
    links: list[SourceLink] = []
    recompute: set[str] = set()
    for ls in states:
        link = ls.link
        if not ls.stale:
            links.append(link)
            continue
        docs = documents_context(store, link.collection)
        doc = docs.get(link.document)
        got = None
        if doc is not None:
            got = section_chunk(
                chunks_of(link.document, link.collection), link.section, link.passage, doc.sections
            )
        if doc is None or got is None:
            recompute.add(link.collection)
            continue
        chunk = got[0]
        links.append(
            SourceLink(
                collection=link.collection,
                document=link.document,
                version=doc.version,
                section=link.section,
                page=chunk.page or None,
                chunk_id=chunk.id,
                passage=chunk.text,
                fingerprint=passage_fingerprint(chunk.text),
                origin=link.origin,
            )
        )
    for collection in recompute:
        computed = compute_links([item], retriever, collection, documents_context(store, collection))
        links.extend(
            lk for lk in computed.get(question, []) if lk.fingerprint not in {x.fingerprint for x in links}
        )
    store.set_question_sources(set_name, question, links)
    return sum(1 for ls in states if ls.stale)


def restore_links(store: HistoryStore, set_name: str, states: Sequence[LinkState]) -> None:
    """Write ``states`` (read from another set, e.g. before a rename) as the links of ``set_name``,
    with their stale flags."""
    by_question: dict[str, list[LinkState]] = {}
    for ls in states:
        by_question.setdefault(ls.question, []).append(ls)
    for question, group in by_question.items():
        group.sort(key=lambda ls: ls.position)
        store.set_question_sources(set_name, question, [ls.link for ls in group])
        for position, ls in enumerate(group):
            if ls.stale or ls.checked_version is not None:
                store.record_link_check(
                    set_name,
                    question,
                    position,
                    stale=ls.stale,
                    checked_version=ls.checked_version or ls.link.version,
                    reason=ls.reason,
                    new_passage=ls.new_passage,
                    stale_at=ls.stale_at,
                )


class StaleTracker:
    """The ingest hook (:class:`~rag_core.ingest.service.VersionHook`): links before a document's
    content is replaced, flags after (see the module rules)."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def before_replace(self, collection: str, name: str, index: Retriever) -> None:
        for set_name in affected_sets(self.store, collection):
            try:
                n = ensure_links(self.store, index, set_name, collection)
            except RagError as exc:
                log.warning("could not link the questions of '%s' before %s changed: %s", set_name, name, exc)
                continue
            if n:
                log.info("linked %d questions of '%s' before %s changed", n, set_name, name)

    def after_replace(self, collection: str, name: str, version: int, chunks: Sequence[Chunk]) -> int:
        return check_document(self.store, collection, name, version, chunks)
