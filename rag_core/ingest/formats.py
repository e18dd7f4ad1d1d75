"""Readers for each supported file type → cleaned :class:`~rag_core.ingest.cleaning.Block` s.

| type | reader | pages | headings from |
|---|---|---|---|
| ``.pdf`` | pypdf text layer; pages without one are OCR'd (:mod:`rag_core.ingest.ocr`) | yes | the PDF outline (bookmarks), else numbered / title-like lines |
| ``.docx`` | python-docx: body paragraphs and tables in order; page headers/footers skipped | no | ``Heading N`` / ``Title`` styles, else short bold paragraphs |
| ``.html``/``.htm`` | the standard library's parser; ``script``/``style``/``nav``… dropped | no | ``<h1>``…``<h6>`` |
| ``.md`` | ``#`` headings, ``-``/``*``/``1.`` items, ``|`` table rows | no | ``#`` … ``######`` |
| ``.txt`` | as a one-page text (cleaned like a PDF page) | no | numbered / title-like lines |

Every reader raises :class:`IngestError` naming the file for content it cannot read; other
exceptions of the parsing libraries are mapped here.
"""

from __future__ import annotations

import io
import logging
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any

from rag_core.errors import IngestError
from rag_core.ingest.cleaning import Block, clean_pages, clean_text, normalise, outline_levels
from rag_core.ingest.ocr import OcrEngine
from rag_core.text import decode_text as text_decode
from rag_core.text import looks_binary, strip_control

__all__ = [
    "MAX_PAGE_CONTENT_BYTES",
    "MIN_TEXT_CHARS",
    "ProgressFn",
    "Read",
    "decode_text",
    "read_docx",
    "read_html",
    "read_markdown",
    "read_pdf",
]

#: A page whose (decompressed) content stream is larger than this is refused before pypdf parses
#: it: pypdf reads roughly 0.15-0.5 MB of page content per second here, so such a page alone would
#: blow the time budget. Normal text pages are 2-50 KB.
MAX_PAGE_CONTENT_BYTES = 4 * 1024 * 1024
#: A PDF page with fewer extracted characters than this (after stripping) has no usable text layer
#: and is OCR'd.
MIN_TEXT_CHARS = 20

#: ``on_progress(stage, done, total)``: stage is ``"reading"`` or ``"ocr"``.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Read:
    """What a reader produced."""

    blocks: list[Block]
    pages: int = 1
    """Pages in the file (1 for formats without pages)."""
    paged: bool = False
    """True when blocks carry real page numbers (PDF)."""
    ocr_pages: int = 0
    """Pages whose text came from OCR."""


# --------------------------------------------------------------------------------------------
# Text files
# --------------------------------------------------------------------------------------------
def decode_text(name: str, data: bytes) -> str:
    """Bytes → str with the one decoder of :mod:`rag_core.text` (UTF-16 BOM, UTF-8 with or without
    BOM, Windows-1252), control characters removed; refuses binary data."""
    text = text_decode(data)
    if looks_binary(text):
        raise IngestError(
            f"{name}: this does not look like a text file (it contains binary data). "
            "Upload the original document, or save it as plain text (.txt)."
        )
    return strip_control(text)


_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_MD_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_MD_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")


def read_markdown(text: str) -> list[Block]:
    """Markdown → blocks: ``#`` headings (level = number of ``#``), items, table rows, paragraphs."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", " ".join(para)))
            para.clear()

    for raw in normalise(text).split("\n"):
        line = " ".join(_MD_EMPHASIS.sub(r"\2", raw).split())
        heading = _MD_HEADING.match(raw)
        if not line or _MD_RULE.match(line) or _MD_TABLE_RULE.match(line):
            flush()
        elif heading:
            flush()
            title = " ".join(_MD_EMPHASIS.sub(r"\2", heading.group(2)).split())
            if title:
                blocks.append(Block("heading", title, level=len(heading.group(1))))
        elif _MD_ITEM.match(line):
            flush()
            blocks.append(Block("item", "- " + _MD_ITEM.sub("", line, count=1)))
        elif line.startswith("|"):
            flush()
            cells = [c.strip() for c in line.strip("|").split("|")]
            blocks.append(Block("row", " | ".join(c for c in cells if c)))
        elif blocks and blocks[-1].kind == "item" and not para and raw[:1].isspace():
            blocks[-1] = replace(blocks[-1], text=f"{blocks[-1].text} {line}")
        else:
            para.append(line)
    flush()
    return blocks


def read_text(name: str, data: bytes) -> list[Block]:
    return clean_text(decode_text(name, data))


# --------------------------------------------------------------------------------------------
# Word
# --------------------------------------------------------------------------------------------
_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)


def read_docx(name: str, data: bytes) -> list[Block]:
    """Body paragraphs and tables of a .docx in document order (see the module table)."""
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
        body = document.element.body
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(
            f"{name}: the Word file is damaged or not really a .docx, so it cannot be read. Open it "
            "in Word (or LibreOffice) and save it again as .docx, then upload the new file."
        ) from exc
    except Exception as exc:  # python-docx / lxml raise many types on malformed input
        raise IngestError(
            f"{name}: the Word file cannot be read ({type(exc).__name__}). Save it again as .docx "
            "and upload the new file."
        ) from exc

    blocks: list[Block] = []
    sizes: dict[int, float] = {}  # block index → font size of a bold pseudo-heading
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            got = _docx_paragraph(Paragraph(child, document))
            if got is not None:
                block, size = got
                if block.kind == "heading" and not block.level:
                    sizes[len(blocks)] = size
                blocks.append(block)
        elif tag == "tbl":
            for row in Table(child, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(normalise(cell.text).split())
                    if text and (not cells or cells[-1] != text):  # merged cells repeat
                        cells.append(text)
                if cells:
                    blocks.append(Block("row", " | ".join(cells)))
    return _pseudo_levels(blocks, sizes)


def _pseudo_levels(blocks: list[Block], sizes: dict[int, float]) -> list[Block]:
    """Levels of bold pseudo-headings from their font size: the largest size used by several
    headings is the top level (a one-off larger title is top level too), smaller sizes go one
    level down each; all of them sit below the shallowest ``Heading N`` style."""
    styled = [b.level for b in blocks if b.kind == "heading" and b.level]
    base = min(styled) if styled else 0
    counts: dict[float, int] = {}
    for size in sizes.values():
        counts[size] = counts.get(size, 0) + 1
    repeated = sorted((s for s, n in counts.items() if n > 1), reverse=True) or sorted(counts, reverse=True)
    out = list(blocks)
    for i, size in sizes.items():
        rank = next((r for r, s in enumerate(repeated) if size >= s), len(repeated) - 1)
        out[i] = replace(blocks[i], level=base + 1 + max(0, rank))
    return out


def _docx_paragraph(paragraph: Any) -> tuple[Block, float] | None:
    """A paragraph → (block, font size in pt of a bold pseudo-heading, else 0)."""
    text = " ".join(normalise(paragraph.text).split())
    if not text:
        return None
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    m = _HEADING_STYLE.match(style.strip())
    if m:
        return Block("heading", text, level=max(1, int(m.group(1)))), 0.0
    if style.strip().lower() in {"title", "subtitle"}:
        return Block("heading", text, level=1), 0.0
    numbered = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if "list" in style.lower() or numbered or text.startswith("- "):
        return Block("item", text if text.startswith("- ") else f"- {text}"), 0.0
    runs = [r for r in paragraph.runs if r.text.strip()]
    bold = bool(runs) and all(r.bold or (r.style is not None and r.style.font.bold) for r in runs)
    if bold and len(text) <= 90 and not re.search(r"[.!?,;:]$", text):
        size = max((r.font.size.pt for r in runs if r.font.size is not None), default=0.0)
        if not size and paragraph.style is not None and paragraph.style.font.size is not None:
            size = paragraph.style.font.size.pt
        return Block("heading", text, level=0), float(size)
    return Block("paragraph", text), 0.0


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head", "nav", "iframe", "object", "button"}
_BREAK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "br",
    "table",
    "ul",
    "ol",
    "dl",
    "blockquote",
    "pre",
    "form",
    "aside",
    "figure",
    "figcaption",
    "dt",
    "dd",
    "hr",
}


class _HtmlBlocks(HTMLParser):
    """Collects headings, list items, table rows and paragraphs; drops scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.kind = "paragraph"
        self.level = 0
        self.skip = 0
        self.cells: list[str] | None = None

    def _flush(self) -> None:
        text = " ".join(" ".join(self.buf).split())
        self.buf = []
        if not text:
            return
        if self.cells is not None:
            self.cells.append(text)
        elif self.kind == "heading":
            self.blocks.append(Block("heading", text, level=self.level))
        elif self.kind == "item":
            self.blocks.append(Block("item", f"- {text}"))
        else:
            self.blocks.append(Block("paragraph", text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.kind, self.level = "heading", int(tag[1])
        elif tag == "li":
            self._flush()
            self.kind = "item"
        elif tag == "tr":
            self._flush()
            self.cells = []
        elif tag in ("td", "th") or tag in _BREAK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag) or tag == "li":
            self._flush()
            self.kind, self.level = "paragraph", 0
        elif tag in ("td", "th"):
            self._flush()
        elif tag == "tr":
            self._flush()
            if self.cells:
                self.blocks.append(Block("row", " | ".join(self.cells)))
            self.cells = None
        elif tag in _BREAK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.buf.append(normalise(data).replace("\n", " "))


def read_html(name: str, data: bytes) -> list[Block]:
    """An HTML page (e.g. a policy saved from the intranet) → blocks."""
    text = _decode_html(data)
    parser = _HtmlBlocks()
    try:
        parser.feed(text)
        parser.close()
    except Exception as exc:  # the stdlib parser is lenient; this is defence in depth
        raise IngestError(f"{name}: the HTML page cannot be read ({type(exc).__name__}).") from exc
    parser._flush()
    return parser.blocks


def _decode_html(data: bytes) -> str:
    head = data[:2048].decode("ascii", errors="ignore").lower()
    m = re.search(r"charset=[\"']?([a-z0-9_-]+)", head)
    for encoding in [m.group(1)] if m else []:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------
class _OutOfTime(Exception):
    """Raised inside pypdf's text extraction when the time budget is spent."""


def read_pdf(
    name: str,
    data: bytes,
    *,
    max_pages: int,
    budget_s: float,
    ocr: OcrEngine,
    ocr_budget_s: float,
    on_progress: ProgressFn | None = None,
) -> Read:
    """Text of every page (OCR for pages without a text layer), cleaned into blocks.

    Bounded: ``max_pages`` pages, ``budget_s`` seconds for the text layer, ``ocr_budget_s`` for
    OCR. Raises :class:`IngestError` (naming the file and saying what to do) for damaged,
    encrypted, over-long, over-slow PDFs, and for scanned pages when OCR is not installed.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    started = time.monotonic()
    # pypdf logs every recoverable oddity of real-world PDFs as a warning; keep the logs quiet.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    corrupt = (
        f"{name}: the PDF is damaged or not really a PDF, so it cannot be read. Open it in a PDF "
        "viewer and re-save/export it as PDF, then upload the new file."
    )
    locked = (
        f"{name}: the PDF is password-protected. Remove the password (open it and save an "
        "unprotected copy, or ask its owner for one) and upload that copy."
    )

    def too_many(pages: int) -> str:
        return (
            f"{name}: the PDF has {pages:,} pages, above the {max_pages:,}-page limit. Split it into "
            "smaller documents or raise RAG_MAX_PDF_PAGES."
        )

    if b"%PDF" not in data[:1024]:
        raise IngestError(corrupt)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                # Owner-password-only PDFs open with an empty user password.
                if not reader.decrypt(""):
                    raise IngestError(locked)
            except DependencyError as exc:  # AES needs the optional 'cryptography' package
                raise IngestError(
                    f"{name}: the PDF is encrypted (AES) and this installation cannot decrypt it, even "
                    "if it opens without a password elsewhere. Save an unprotected copy (e.g. 'Print "
                    "to PDF') and upload that."
                ) from exc
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise IngestError(locked) from exc
        declared = _declared_page_count(reader)
        if declared > max_pages:
            raise IngestError(too_many(declared))
        count = len(reader.pages)
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types on malformed input
        raise IngestError(corrupt) from exc
    if count == 0:
        raise IngestError(f"{name}: the PDF has no pages. Check the file and upload it again.")
    if count > max_pages:
        raise IngestError(too_many(count))
    deadline = started + budget_s

    def too_slow(number: int) -> IngestError:
        return IngestError(
            f"{name}: reading the text took longer than {budget_s:g} s (stopped at page "
            f"{number} of {count}). The PDF is unusually heavy: split it into smaller documents "
            "or export it again (e.g. 'Print to PDF') and upload that."
        )

    def check_deadline(*_: object) -> None:  # pypdf calls this before every page operator
        if time.monotonic() > deadline:
            raise _OutOfTime

    texts: list[str] = []
    for number in range(1, count + 1):
        if time.monotonic() > deadline:
            raise too_slow(number)
        try:
            page = reader.pages[number - 1]
            contents = page.get_contents()
            if contents is not None and len(contents.get_data()) > MAX_PAGE_CONTENT_BYTES:
                raise IngestError(
                    f"{name}: page {number} holds an unusually large drawing "
                    f"(over {MAX_PAGE_CONTENT_BYTES // 1024 // 1024} MB of page content) that cannot be "
                    "read in reasonable time. Remove or flatten that page (e.g. 'Print to PDF') and "
                    "upload the document again."
                )
            page_text = page.extract_text(visitor_operand_before=check_deadline) or ""
        except IngestError:
            raise
        except _OutOfTime:
            raise too_slow(number) from None
        except (FileNotDecryptedError, DependencyError) as exc:
            raise IngestError(locked) from exc
        except Exception as exc:  # damaged page content (pypdf raises many types)
            raise IngestError(
                f"{name}: page {number} is damaged and its text cannot be read. Re-save/export the "
                "PDF from its source application and upload it again."
            ) from exc
        texts.append(page_text)
        if on_progress is not None:
            on_progress("reading", number, count)

    scanned = [i for i, t in enumerate(texts, start=1) if len(t.strip()) < MIN_TEXT_CHARS]
    if scanned:
        from rag_core.ingest.ocr import ocr_pdf_pages

        got = ocr_pdf_pages(
            name,
            data,
            scanned,
            engine=ocr,
            budget_s=ocr_budget_s,
            max_pages=max_pages,
            on_progress=on_progress,
        )
        for number, text in got.items():
            texts[number - 1] = text
    blocks = clean_pages(texts, outline=_outline(reader), ocr_pages=scanned)
    return Read(blocks=blocks, pages=count, paged=True, ocr_pages=len(scanned))


def _outline(reader: Any) -> dict[str, int]:
    """Bookmark titles → heading level (1 = top); ``{}`` when the PDF has none or it is unreadable."""
    entries: list[tuple[str, int]] = []

    def walk(items: Any, depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                title = getattr(item, "title", None)
                if isinstance(title, str):
                    entries.append((title, depth))
            if len(entries) > 2000:
                return

    try:
        walk(reader.outline, 0)
    except Exception:
        return {}
    return outline_levels(entries)


def _declared_page_count(reader: object) -> int:
    """The page count the PDF *claims* (/Count of the page tree root); 0 if unreadable.

    Cheap, so a page-count bomb is refused before pypdf walks the whole page tree.
    """
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[attr-defined]
        return int(count)
    except Exception:
        return 0
