"""Is a source link still good in a new document version? Pure comparison, no I/O.

Rules (a link points to a passage of one document, in one section)
1. The identical passage (same :func:`~rag_core.text.passage_fingerprint`) is among the new
   version's chunks → **unchanged** (its chunk id follows the new chunk).
2. Else, its section is in the new version with the same section fingerprint as in the version
   the link was made from → **unchanged**: only the chunking around it moved (other chunk
   settings, or an edit in a neighbouring section that shares the chunk).
3. Else → **stale**: ``"section removed"`` when the new version has no such section, otherwise
   ``"passage changed"``. The new passage shown beside the old one is the new chunk of that section
   sharing most words with the old passage (``""`` when the section is gone).
A link whose section fingerprints are unknown (the old version was not recorded) is judged by
rule 1 alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag_core.coverage.links import line_sections
from rag_core.models import Chunk, SourceLink
from rag_core.text import passage_fingerprint

__all__ = [
    "DOCUMENT_REMOVED",
    "PASSAGE_CHANGED",
    "SECTION_REMOVED",
    "LinkCheck",
    "check_link",
    "section_chunk",
    "section_passage",
]

PASSAGE_CHANGED = "passage changed"
SECTION_REMOVED = "section removed"
DOCUMENT_REMOVED = "document removed"

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class LinkCheck:
    """The outcome of comparing one link with a document version."""

    stale: bool
    reason: str = ""
    """:data:`PASSAGE_CHANGED` or :data:`SECTION_REMOVED` when stale."""
    new_passage: str | None = None
    """The current passage of the link's section ('' when gone); None when unchanged."""
    chunk_id: str | None = None
    """The id of the identical passage in the new version (rule 1), else None."""


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


def section_chunk(
    chunks: Sequence[Chunk], section: str, old: str, ordered: Sequence[str]
) -> tuple[Chunk, str] | None:
    """The chunk holding ``section`` whose text of that section shares most words with the ``old``
    passage, with that text; None when no chunk holds the section."""
    old_words = _words(old)
    best: tuple[Chunk, str] | None = None
    best_score = -1.0
    for c in chunks:
        lines = [ln for ln, s in line_sections(c.text, c.section, ordered) if s == section]
        if not lines:
            continue
        text = "\n".join(lines)
        words = _words(text)
        score = len(words & old_words) / max(1, len(words | old_words))
        if score > best_score:
            best, best_score = (c, text), score
    return best


def section_passage(chunks: Sequence[Chunk], section: str, old: str, ordered: Sequence[str]) -> str:
    """The text of ``section`` in ``chunks`` closest (most shared words) to the ``old`` passage;
    ``""`` when no chunk holds that section."""
    got = section_chunk(chunks, section, old, ordered)
    return got[1] if got is not None else ""


def check_link(
    link: SourceLink,
    chunks: Sequence[Chunk],
    old_sections: Mapping[str, str] | None,
    new_sections: Mapping[str, str],
    fingerprints: Mapping[str, Chunk] | None = None,
) -> LinkCheck:
    """Compare ``link`` with a new version given its ``chunks`` and the section fingerprints of
    the link's version (``old_sections``, None when unknown) and of the new one (see the rules).
    ``fingerprints`` (passage fingerprint → chunk of ``chunks``) may be passed when checking many
    links against one version."""
    if fingerprints is None:
        fingerprints = {passage_fingerprint(c.text): c for c in chunks}
    same = fingerprints.get(link.fingerprint)
    if same is not None:
        return LinkCheck(False, chunk_id=same.id)
    if (
        old_sections is not None
        and link.section in new_sections
        and old_sections.get(link.section) == new_sections[link.section]
    ):
        return LinkCheck(False)
    if link.section not in new_sections:
        return LinkCheck(True, SECTION_REMOVED, "")
    ordered = list(new_sections)
    return LinkCheck(True, PASSAGE_CHANGED, section_passage(chunks, link.section, link.passage, ordered))
