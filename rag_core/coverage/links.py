"""Link questions to the passages that support their expected answers, and tell the sections a
passage belongs to.

Rules
- Order of preference: a question's **stored** links in the collection (e.g. ``"generated"`` by
  question generation, or computed earlier) are used as they are; else the passages holding its
  **key facts** (origin ``"facts"``); else the **best-matching** passage (origin ``"matched"``).
- Candidates are the :data:`CANDIDATES` passages of the collection closest to the question and its
  expected answer together (the project's retrieval: one batched query for all questions).
- Key facts are those of :func:`~rag_core.evaluation.facts.extract_facts` that are required (not
  background). The first passage chosen is the one stating most of them (ties: the closer match)
  and must state at least half; further passages are added, up to :data:`MAX_LINKS`, while each
  states a required fact not stated yet. Otherwise the question falls back to the best match.
- A question expected to be declined is never linked (the policy does not cover it).
- A link's section is where its key facts sit: a chunk may run on into the next section, so its
  lines are walked (a line equal to a later section's title opens that section) and the section
  whose lines state most facts is the link's. A matched link keeps the chunk's section.
- "Content" sections are those with text besides their heading (a part title directly followed
  by its first subsection has none): :func:`content_sections`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag_core.evaluation.facts import Fact, FactIndex, extract_facts
from rag_core.models import SECTION_SEP, QAItem, ScoredChunk, SourceLink
from rag_core.text import passage_fingerprint
from rag_core.vocab import Expected

__all__ = [
    "CANDIDATES",
    "MAX_LINKS",
    "DocSections",
    "Retriever",
    "compute_links",
    "content_sections",
    "line_sections",
    "link_item",
    "passage_sections",
    "section_label",
]

#: Passages considered per question (closest first).
CANDIDATES = 40
#: Most passages linked to one question.
MAX_LINKS = 3
#: How far ahead (in sections) a heading line inside a passage is looked for.
_LOOKAHEAD = 60
#: Shown for the text before a document's first heading.
UNTITLED = "(before the first heading)"


class Retriever(Protocol):
    """What linking needs from the index (:class:`~rag_core.ingest.index.PolicyIndex`)."""

    def query(
        self, questions: Sequence[str], top_k: int, collection: str | None = ...
    ) -> list[list[ScoredChunk]]: ...

    def count(self, collection: str | None = None) -> int: ...


@dataclass(frozen=True)
class DocSections:
    """A document's current version and its section paths in document order."""

    name: str
    version: int
    sections: tuple[str, ...] = field(default_factory=tuple)
    """Every section path of the version (``document_versions.sections``' keys, in order)."""


def section_label(section: str) -> str:
    """How a section is shown: its path, or :data:`UNTITLED` for the text before the first heading."""
    return section or UNTITLED


def _norm(text: str) -> str:
    return " ".join(text.split())


def _title(path: str) -> str:
    return _norm(path.rsplit(SECTION_SEP, 1)[-1])


def content_sections(digests: Mapping[str, str]) -> list[str]:
    """The sections of ``{path: fingerprint}`` (in order) that hold text besides their heading.

    A section whose fingerprint is that of its own title alone holds nothing else (see
    :func:`~rag_core.ingest.chunking.section_digests`: sha256 of the section's lines, first 16 hex)."""
    out = []
    for path, digest in digests.items():
        if path and hashlib.sha256(_title(path).encode()).hexdigest()[:16] == digest:
            continue
        out.append(path)
    return out


def line_sections(text: str, start: str, ordered: Sequence[str]) -> list[tuple[str, str]]:
    """``(line, section)`` for each line of a passage that starts in section ``start``: a line
    equal to the title of a section shortly after the current one opens it. When ``start`` is not
    one of ``ordered``, every line is in ``start``."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    try:
        cur = list(ordered).index(start)
    except ValueError:
        return [(ln, start) for ln in lines]
    titles = [_title(p) for p in ordered]
    out = []
    for ln in lines:
        norm = _norm(ln)
        for j in range(cur + 1, min(len(ordered), cur + _LOOKAHEAD)):
            if titles[j] == norm:
                cur = j
                break
        out.append((ln, ordered[cur]))
    return out


def passage_sections(text: str, start: str, ordered: Sequence[str]) -> list[str]:
    """The sections a passage's lines belong to, in order, each once."""
    return list(dict.fromkeys(s for _, s in line_sections(text, start, ordered)))


def _make_link(
    sc: ScoredChunk, origin: str, collection: str, doc: DocSections | None, section: str
) -> SourceLink:
    c = sc.chunk
    return SourceLink(
        collection=collection,
        document=c.source,
        version=doc.version if doc is not None else 0,
        section=section,
        page=c.page or None,
        chunk_id=c.id,
        passage=c.text,
        fingerprint=passage_fingerprint(c.text),
        origin=origin,
    )


def _facts_section(sc: ScoredChunk, facts: Sequence[Fact], doc: DocSections | None) -> str:
    """The section of the chunk's lines that state most of ``facts`` (the chunk's own when none)."""
    if doc is None or not facts:
        return sc.chunk.section
    counts: dict[str, int] = {}
    for line, section in line_sections(sc.chunk.text, sc.chunk.section, doc.sections):
        index = FactIndex(line)
        n = sum(1 for f in facts if index.states(f))
        if n:
            counts[section] = counts.get(section, 0) + n
    if not counts:
        return sc.chunk.section
    return max(counts, key=lambda s: counts[s])  # first of the best (dicts keep order)


def link_item(
    item: QAItem,
    candidates: Sequence[ScoredChunk],
    docs: Mapping[str, DocSections],
    collection: str,
    fact_indexes: dict[str, FactIndex] | None = None,
) -> list[SourceLink]:
    """The links of one question from its candidate passages (closest first); see the module rules.
    ``[]`` for a question expected to be declined, or when there is no candidate. ``fact_indexes``
    (chunk id → its facts) is a cache shared by the questions of one batch."""
    if item.expected == Expected.DECLINE or not candidates:
        return []
    required = [f for f in extract_facts(item.ground_truth, question=item.question) if not f.background]
    if required:
        cache = fact_indexes if fact_indexes is not None else {}
        indexes = []
        for sc in candidates:
            if sc.chunk.id not in cache:
                cache[sc.chunk.id] = FactIndex(sc.chunk.text)
            indexes.append(cache[sc.chunk.id])
        remaining = set(range(len(required)))
        chosen: list[tuple[int, list[Fact]]] = []
        while remaining and len(chosen) < MAX_LINKS:
            best, stated = -1, set[int]()
            for i, index in enumerate(indexes):
                if any(i == j for j, _ in chosen):
                    continue
                got = {k for k in remaining if index.states(required[k])}
                if len(got) > len(stated):  # candidates are closest first: ties keep the closer
                    best, stated = i, got
            if best < 0 or (not chosen and len(stated) < math.ceil(len(required) / 2)):
                break
            chosen.append((best, [required[k] for k in sorted(stated)]))
            remaining -= stated
        if chosen:
            out = []
            for i, facts in chosen:
                sc = candidates[i]
                doc = docs.get(sc.chunk.source)
                out.append(_make_link(sc, "facts", collection, doc, _facts_section(sc, facts, doc)))
            return out
    best_match = candidates[0]
    return [
        _make_link(
            best_match, "matched", collection, docs.get(best_match.chunk.source), best_match.chunk.section
        )
    ]


def compute_links(
    items: Iterable[QAItem],
    retriever: Retriever,
    collection: str,
    docs: Mapping[str, DocSections],
) -> dict[str, list[SourceLink]]:
    """``{question: links}`` for ``items`` (questions to decline get ``[]``), with one batched
    retrieval for all of them. ``{}`` when there is nothing to link or the collection is empty."""
    asked = [it for it in items if it.expected != Expected.DECLINE and it.question.strip()]
    out: dict[str, list[SourceLink]] = {it.question: [] for it in items}
    if not asked:
        return out
    n = retriever.count(collection)
    if n == 0:
        return out
    queries = [f"{it.question}\n{it.ground_truth}".strip() for it in asked]
    found = retriever.query(queries, min(CANDIDATES, n), collection)
    cache: dict[str, FactIndex] = {}  # a passage's facts are read once for all questions
    for it, candidates in zip(asked, found, strict=True):
        out[it.question] = link_item(it, candidates, docs, collection, cache)
    return out
