"""Clean extracted text before chunking: real PDFs come with ligatures, hard line breaks, hyphenated
wraps, running headers/footers and page numbers. Pure functions, no I/O.

Rules, applied in this order by :func:`clean_pages` (each has its own function and unit test):

1. :func:`normalise` — Unicode NFKC (``ﬁ`` → ``fi``, no-break spaces → spaces, full-width digits),
   NUL/control characters dropped, bullet glyphs (``●``, ``•``, ``▪``, ``◦``, ````…) at a line
   start become ``"- "``.
2. :func:`strip_repeated_edges` — a line at the top or bottom of a page (first/last
   :data:`EDGE_LINES` non-blank lines) that repeats, digits ignored, on at least
   :data:`REPEAT_FRACTION` of the pages (and on at least 3 of them) is a running header or footer
   ("Policies and Procedures Template - Page 34") and is removed. Bare page numbers
   ("12", "Page 3", "3 of 20", "- 4 -") at a page edge are removed on any document.
3. :func:`drop_contents` — a table of contents (from a "Contents" line to the end of its page,
   and dot-leader entry lines) is removed: it would repeat every heading as a bogus section.
4. :func:`dehyphenate` — ``"employ-"`` at a line end followed by a lower-case continuation becomes
   ``"employment"``; compounds whose first part is a usual prefix (``self-``, ``part-``, ``non-``…)
   keep their hyphen.
5. :func:`to_blocks` — lines become blocks: wrapped lines are joined into paragraphs, while
   headings (numbered ``"4.2 Sick leave"``, short title-like lines, PDF outline titles), list items
   (bullets, ``a)``, ``1.`` after a line ending in ``:`` or another item) and table rows (runs of
   three or more short unpunctuated lines, or cells separated by ``|``/tabs) stay separate.
   A paragraph ends at a blank line or after a line that ends a sentence and is clearly shorter
   than the page's body lines.

:func:`clean_text` runs the same rules on a document without pages (TXT), skipping rule 2.
"""

from __future__ import annotations

import itertools
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "EDGE_LINES",
    "REPEAT_FRACTION",
    "Block",
    "clean_pages",
    "clean_text",
    "dehyphenate",
    "drop_contents",
    "heading_level",
    "normalise",
    "strip_repeated_edges",
    "to_blocks",
]

#: Lines at each end of a page inspected for running headers/footers.
EDGE_LINES = 3
#: Running headers/footers are short lines; a full-width line is body text.
EDGE_MAX_CHARS = 90
#: A header/footer line must repeat on at least this fraction of the pages…
REPEAT_FRACTION = 0.5
#: …and on at least this many pages.
MIN_REPEATS = 3
#: Longest line that can be a heading (characters).
HEADING_MAX_CHARS = 90
#: Unnumbered headings are at most this long.
PLAIN_HEADING_MAX_CHARS = 70
#: A run of at least this many short unpunctuated lines is a table (rows), not headings.
TABLE_MIN_ROWS = 3

BULLETS = "●•▪◦‣∙·○■□►▶➢✓✔❖◆◇\uf0b7\uf0a7\uf076\uf0d8\uf0fc"
_BULLET_LINE = re.compile(rf"^\s*[{re.escape(BULLETS)}]\s*")
_DASH_ITEM = re.compile(r"^\s*[-*–]\s+\S")
_LETTER_ITEM = re.compile(r"^\s*\(?(?:[a-z]|[ivx]{1,4})\)\s+\S|^\s*[a-z][.)]\s+\S")
_NUMBER_ITEM = re.compile(r"^\s*\(?\d{1,2}[.)]\s+\S")
_NUMBERED_HEADING = re.compile(
    r"^\s*(?:(?:section|article|part|chapter)\s+)?(\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+(\S.*)$", re.I
)
_PAGE_NUMBER = re.compile(
    r"^\s*(?:[-–—]\s*)?(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?(?:\s*[-–—])?\s*$", re.IGNORECASE
)
_TERMINAL = re.compile(r"[.!?:;,][\"'”’)\]]*$")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_HYPHEN_END = re.compile(r"([A-Za-z]+)-$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_KEEP_HYPHEN = frozenset(
    [
        "self",
        "non",
        "ex",
        "well",
        "full",
        "part",
        "long",
        "short",
        "cross",
        "anti",
        "semi",
        "multi",
        "co",
        "half",
        "one",
        "two",
        "three",
        "four",
    ]
)
_MINOR_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "with",
        "via",
        "vs",
    ]
)


@dataclass(frozen=True)
class Block:
    """One unit of a cleaned document: a heading, a paragraph, a list item or a table row."""

    kind: str
    """``"heading"``, ``"paragraph"``, ``"item"`` or ``"row"``."""
    text: str
    """The text, on one line (list items keep their ``"- "`` marker)."""
    page: int = 0
    """1-based page it starts on; 0 for formats without pages."""
    level: int = 0
    """For headings: 1 = top level, 2 = below it…; 0 for other blocks."""
    ocr: bool = False
    """True when the text came from OCR."""


# --------------------------------------------------------------------------------------------
# Rule 1: Unicode
# --------------------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """NFKC, line endings, control characters, tabs kept as cell separators, bullets → ``"- "``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u00ad", "")  # soft hyphen
    text = _CONTROL.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = _BULLET_LINE.sub("- ", line) if _BULLET_LINE.match(line) else line
        cells = [" ".join(c.split()) for c in line.split("\t")]
        lines.append(" | ".join(c for c in cells if c) if len(cells) > 1 else cells[0])
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Rule 2: running headers / footers / page numbers
# --------------------------------------------------------------------------------------------
def _edge_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def _edges(lines: list[str]) -> list[int]:
    """Indices of the first and last :data:`EDGE_LINES` non-blank lines (fewer on short pages)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    k = max(1, min(EDGE_LINES, len(filled) // 4))  # a short page is mostly body
    return sorted(set(filled[:k] + filled[-k:]))


def strip_repeated_edges(pages: Sequence[str]) -> list[str]:
    """Remove running headers/footers and bare page numbers (see the module rules)."""
    split = [page.split("\n") for page in pages]
    counts: Counter[str] = Counter()
    body: Counter[str] = Counter()
    for lines in split:
        edges = _edges(lines)
        counts.update({_edge_key(lines[i]) for i in edges})
        body.update({_edge_key(line) for i, line in enumerate(lines) if i not in edges and line.strip()})
    needed = max(MIN_REPEATS, int(REPEAT_FRACTION * len(pages) + 0.999))
    # A line that also repeats inside the pages is body text that happens to look alike.
    repeated = {
        key
        for key, n in counts.items()
        if n >= needed and key.strip() and len(key) <= EDGE_MAX_CHARS and body[key] * 2 < n
    }
    out = []
    for lines in split:
        drop = {i for i in _edges(lines) if _edge_key(lines[i]) in repeated or _PAGE_NUMBER.match(lines[i])}
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return out


# --------------------------------------------------------------------------------------------
# Rule 3: hyphenated wraps
# --------------------------------------------------------------------------------------------
_CONTENTS = re.compile(r"^\s*(?:table\s+of\s+)?contents\s*$", re.IGNORECASE)
_LEADER = re.compile(r"(?:\.{3,}|…+|\s{2,})\s*\d{1,4}\s*$")


def drop_contents(text: str) -> str:
    """A table of contents is not content: from a ``"Contents"`` / ``"Table of Contents"`` line to
    the end of that page, and entry lines with dot leaders (``"Sick leave ...... 12"``) anywhere,
    are removed."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _CONTENTS.match(line):
            lines = lines[:i]
            break
    return "\n".join(line for line in lines if not _LEADER.search(line))


def dehyphenate(text: str) -> str:
    """Join words split by a hyphen at a line end (``"employ-\\nment"`` → ``"employment"``)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        nxt = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
        m = _HYPHEN_END.search(line)
        if m and nxt[:1].islower() and not _is_item(nxt):
            word, rest = nxt.split(" ", 1) if " " in nxt else (nxt, "")
            joiner = "-" if m.group(1).lower() in _KEEP_HYPHEN else ""
            out.append(line[:-1] + joiner + word)
            lines[i + 1] = rest
            if not rest.strip():
                i += 1  # the continuation was one word: its line is used up
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Rule 4: blocks
# --------------------------------------------------------------------------------------------
def _is_item(line: str) -> bool:
    return bool(_DASH_ITEM.match(line) or _LETTER_ITEM.match(line))


def _is_row(line: str) -> bool:
    return " | " in line


def _title_like(text: str) -> bool:
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'’&-]*", text)]
    if not words or (not text[:1].isupper() and not text[:1].isdigit()):
        return False
    if text.isupper():
        return True
    significant = [w for w in words if w.lower() not in _MINOR_WORDS]
    capital = sum(w[0].isupper() for w in significant)
    return capital >= max(1, int(0.6 * len(significant) + 0.5))


def heading_level(line: str) -> int | None:
    """The level of a numbered heading (``"4"`` → 1, ``"4.2"`` → 2), or None."""
    m = _NUMBERED_HEADING.match(line)
    if not m or len(line) > HEADING_MAX_CHARS or _SENTENCE_END.search(line.rstrip()):
        return None
    title = m.group(2)
    if not title[:1].isupper() or len(title.split()) > 12:
        return None
    return m.group(1).count(".") + 1


def _short(line: str) -> bool:
    return len(line) <= PLAIN_HEADING_MAX_CHARS and not _TERMINAL.search(line)


def to_blocks(
    text: str,
    *,
    page: int = 0,
    body_width: float | None = None,
    outline: dict[str, int] | None = None,
    ocr: bool = False,
) -> list[Block]:
    """Split one page's (or document's) cleaned lines into blocks (see rule 4).

    ``body_width`` is the typical length of a full body line (default: measured on this text);
    ``outline`` maps normalised PDF bookmark titles to their level, so those lines become headings.
    """
    lines = [" ".join(line.split()) for line in text.split("\n")]
    width = body_width or _body_width(lines)
    outline = outline or {}
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", " ".join(para), page, ocr=ocr))
            para.clear()

    # Table rows: runs of >= TABLE_MIN_ROWS short unpunctuated lines (not numbered headings).
    rows: set[int] = set()
    run: list[int] = []
    for i, line in enumerate([*lines, ""]):
        candidate = (
            bool(line)
            and _short(line)
            and heading_level(line) is None
            and not _is_item(line)
            and _key(line) not in outline
        )
        if candidate:
            run.append(i)
            continue
        if len(run) >= TABLE_MIN_ROWS:
            rows.update(run)
        run = []

    # Numbered lines in a run ("1. Screening" / "2. Interview" / …) are a list, not headings.
    listed: set[int] = set()
    filled = [i for i, line in enumerate(lines) if line]
    for a, b in itertools.pairwise(filled):
        na, nb = _item_number(lines[a]), _item_number(lines[b])
        if na is not None and nb is not None and nb == na + 1:
            listed.update((a, b))

    previous_kind = ""
    previous_line = ""
    for i, line in enumerate(lines):
        if not line:
            flush()
            previous_line = ""
            continue
        key = _key(line)
        level = heading_level(line)
        after_colon = previous_line.endswith(":")
        if key in outline:
            flush()
            blocks.append(Block("heading", line, page, outline[key], ocr))
            previous_kind = "heading"
        elif (_is_item(line) or i in listed) or (
            _NUMBER_ITEM.match(line) and (after_colon or previous_kind == "item") and not para
        ):
            flush()
            blocks.append(Block("item", line, page, ocr=ocr))
            previous_kind = "item"
        elif _is_row(line) or i in rows:
            flush()
            blocks.append(Block("row", line, page, ocr=ocr))
            previous_kind = "row"
        elif level is not None and (not para or _SENTENCE_END.search(para[-1])):
            flush()
            blocks.append(Block("heading", line, page, level, ocr))
            previous_kind = "heading"
        elif (
            (not para or (_SENTENCE_END.search(para[-1]) and len(line) < 0.6 * width))
            and _short(line)
            and _title_like(line)
            and (previous_kind != "item" or not previous_line.endswith(","))
        ):
            flush()
            blocks.append(Block("heading", line, page, 0, ocr))  # level decided per document
            previous_kind = "heading"
        elif previous_kind == "item" and not para and line[:1].islower():
            last = blocks[-1]
            blocks[-1] = replace(last, text=f"{last.text} {line}")  # a wrapped list item
        else:
            para.append(line)
            previous_kind = "paragraph"
            if _SENTENCE_END.search(line) and len(line) < 0.7 * width:
                flush()  # a short last line: the paragraph ends here
        previous_line = line
    flush()
    return blocks


def _item_number(line: str) -> int | None:
    m = re.match(r"^\s*\(?(\d{1,2})[.)]\s+\S", line)
    return int(m.group(1)) if m and len(line) <= HEADING_MAX_CHARS else None


def _key(line: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", line.lower()).split())


def _body_width(lines: Iterable[str]) -> float:
    long = sorted(len(line) for line in lines if len(line) > 40)
    if not long:
        return 80.0
    return float(statistics.median(long[len(long) // 2 :]))


def _assign_levels(blocks: list[Block]) -> list[Block]:
    """Unnumbered headings (level 0) sit one below the shallowest numbered/outlined level — or at
    level 2 when there is none: without numbering, bookmarks or styles there is no evidence of
    which headings are top-level, so they split sections but chunks may pack across them."""
    levels = [b.level for b in blocks if b.kind == "heading" and b.level]
    plain = (min(levels) + 1) if levels else 2
    return [replace(b, level=plain) if b.kind == "heading" and not b.level else b for b in blocks]


def clean_pages(
    pages: Sequence[str], *, outline: dict[str, int] | None = None, ocr_pages: Iterable[int] = ()
) -> list[Block]:
    """All rules over a paged document (``pages[0]`` is page 1) → blocks in reading order.

    ``outline`` maps bookmark titles to levels (see :func:`outline_levels`); ``ocr_pages`` are the
    1-based numbers of pages whose text came from OCR (their blocks are marked).
    """
    ocr = set(ocr_pages)
    texts = [normalise(p) for p in pages]
    if len(texts) >= MIN_REPEATS:
        texts = strip_repeated_edges(texts)
    else:
        texts = ["\n".join(x for x in t.split("\n") if not _PAGE_NUMBER.match(x)) for t in texts]
    texts = [dehyphenate(drop_contents(t)) for t in texts]
    width = _body_width(line for t in texts for line in (" ".join(x.split()) for x in t.split("\n")))
    keyed = {_key(title): level for title, level in (outline or {}).items()}
    blocks: list[Block] = []
    for number, text in enumerate(texts, start=1):
        page_blocks = to_blocks(text, page=number, body_width=width, outline=keyed, ocr=number in ocr)
        if blocks and page_blocks and page_blocks[0].kind == "paragraph" and blocks[-1].kind == "paragraph":
            last, first = blocks[-1], page_blocks[0]
            if not _SENTENCE_END.search(last.text) and first.text[:1].islower():
                # A paragraph running over the page break: one block, on the page it starts.
                blocks[-1] = replace(last, text=f"{last.text} {first.text}")
                page_blocks = page_blocks[1:]
        blocks.extend(page_blocks)
    return _assign_levels(blocks)


def clean_text(text: str) -> list[Block]:
    """Rules 1, 3 and 4 over a document without pages (plain text)."""
    return _assign_levels(to_blocks(dehyphenate(normalise(text))))


def outline_levels(entries: Iterable[tuple[str, int]]) -> dict[str, int]:
    """``{title: level}`` from ``(title, depth)`` bookmark entries (depth 0 = top → level 1)."""
    out: dict[str, int] = {}
    for title, depth in entries:
        title = " ".join(unicodedata.normalize("NFKC", title).split())
        if title and len(title) <= HEADING_MAX_CHARS:
            out.setdefault(title, depth + 1)
    return out
