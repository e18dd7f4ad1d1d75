"""Blocks → chunks that carry their section (heading path) and page.

Rules
- Every block sits under the heading path in force where it appears (``"4 Leave › 4.2 Sick
  leave"``, joined with :data:`SECTION_SEP`); headings themselves stay in the text of the chunk
  they open, so a chunk that starts a section shows its title.
- Chunks never straddle top-level sections: a level-1 heading always starts a new chunk. Inside a
  top-level section, whole blocks are packed up to ``chunk_size`` characters; the next chunk
  starts with the last whole blocks of the previous one that fit in ``chunk_overlap``.
- A block longer than ``chunk_size`` is split by sentences, then words (langchain's recursive
  splitter), each piece keeping the block's section and page.
- A chunk's section and page are those of its first block (page 0 = a format without pages).
- :func:`section_digests` fingerprints each section's text, so two versions of a file can say
  which sections changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag_core.ingest.cleaning import Block
from rag_core.models import SECTION_SEP, Chunk

#: Characters kept free for headings when a long paragraph is cut into pieces.
HEADING_ROOM = 200

__all__ = ["SECTION_SEP", "Piece", "chunk_blocks", "section_digests", "sections_of"]


@dataclass(frozen=True)
class Piece:
    """A block with the section path it sits under."""

    text: str
    section: str
    page: int
    top: int
    """Index of the top-level section it belongs to (changes at every level-1 heading)."""
    ocr: bool


def sections_of(blocks: Sequence[Block]) -> list[Piece]:
    """Each block with its heading path (a heading's own path includes itself)."""
    stack: list[tuple[int, str]] = []
    top = 0
    out: list[Piece] = []
    for b in blocks:
        if b.kind == "heading":
            level = max(1, b.level)
            while stack and stack[-1][0] >= level:
                stack.pop()
            if level == 1 and out:
                top += 1
            stack.append((level, b.text))
        path = SECTION_SEP.join(title for _, title in stack)
        out.append(Piece(b.text, path, b.page, top, b.ocr))
    return out


def section_digests(blocks: Sequence[Block]) -> dict[str, str]:
    """``{section path: sha256 of its text}`` (text before the first heading is ``""``)."""
    texts: dict[str, list[str]] = {}
    for p in sections_of(blocks):
        texts.setdefault(p.section, []).append(" ".join(p.text.split()))
    return {k: hashlib.sha256("\n".join(v).encode()).hexdigest()[:16] for k, v in texts.items()}


def _split_long(text: str, size: int, overlap: int) -> list[str]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=min(overlap, size // 2),
        separators=[". ", "; ", ", ", " ", ""],
        keep_separator="end",
        strip_whitespace=True,
    )
    return [p for p in splitter.split_text(text) if p.strip()]


def chunk_blocks(
    blocks: Sequence[Block], *, name: str, sha256: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """Pack blocks into :class:`Chunk` s (see the module rules); ids are ``"<sha[:16]>:<position>"``."""
    pieces: list[Piece] = []
    # Long blocks are cut a little below chunk_size, so the heading(s) opening them still fit.
    target = chunk_size - min(HEADING_ROOM, chunk_size // 4)
    for p in sections_of(blocks):
        if len(p.text) <= target:
            pieces.append(p)
        else:
            pieces.extend(
                Piece(t, p.section, p.page, p.top, p.ocr) for t in _split_long(p.text, target, chunk_overlap)
            )
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    for p in pieces:
        only_headings = all(_is_heading(q) for q in current)
        if current and (
            _size([*current, p]) > chunk_size or (not only_headings and p.top != current[-1].top)
        ):
            # A heading at the end of a chunk belongs to the next one, with its section.
            tail: list[Piece] = []
            while len(current) > 1 and _is_heading(current[-1]):
                tail.insert(0, current.pop())
            groups.append(current)
            carry: list[Piece] = []
            if not tail and p.top == current[-1].top and chunk_overlap > 0:
                for q in reversed(current[1:]):  # never repeat a whole chunk
                    if q.section != p.section or _size([q, *carry]) > chunk_overlap:
                        break
                    carry.insert(0, q)
            if tail and p.top != tail[0].top:
                groups.append(tail)
                tail = []
            current = tail or carry
            while current and _size([*current, p]) > chunk_size:
                current.pop(0)
        current.append(p)
    if current:
        groups.append(current)
    return [
        Chunk(
            id=f"{sha256[:16]}:{position}",
            text="\n".join(q.text for q in group),
            source=name,
            page=group[0].page,
            position=position,
            doc_sha256=sha256,
            section=_chunk_section(group),
            ocr=any(q.ocr for q in group),
        )
        for position, group in enumerate(groups)
    ]


def _size(pieces: Sequence[Piece]) -> int:
    """Length of the pieces joined by newlines."""
    return sum(len(q.text) for q in pieces) + max(0, len(pieces) - 1)


def _is_heading(p: Piece) -> bool:
    return bool(p.section) and p.text == p.section.rsplit(SECTION_SEP, 1)[-1]


def _chunk_section(group: Sequence[Piece]) -> str:
    """The section of the chunk's first block that is not a heading (headings that only open
    it, e.g. a part title followed by its first subsection, do not name it)."""
    return next((q.section for q in group if not _is_heading(q)), group[0].section)
