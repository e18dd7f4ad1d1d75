"""Read policy documents (PDF, Word, HTML, TXT, MD) and split them into chunks ready to index.

Contract: :func:`parse_document` either returns a :class:`ParsedDocument` with at least one
chunk, or raises :class:`IngestError` whose message starts with the (safe) file name and says
what to do. Nothing else escapes: library errors are mapped at this boundary.

Pipeline: the reader for the file type (:mod:`rag_core.ingest.formats`, OCR for scanned PDF pages
in :mod:`rag_core.ingest.ocr`) → cleaning into headings / paragraphs / list items / table rows
(:mod:`rag_core.ingest.cleaning`) → chunks that carry their section and page
(:mod:`rag_core.ingest.chunking`).

Limits that keep a hostile upload from freezing the app: the file size
(``settings.max_upload_mb``; TXT/Markdown/HTML ``settings.max_text_mb``, checked by
:func:`size_problem` from the size alone, before the file is read; a .docx's unpacked text part), the page count (``settings.max_pdf_pages``), a wall-clock budget
for PDF text extraction (:data:`PDF_TIME_BUDGET_S`, checked after every page) and for OCR
(:data:`OCR_TIME_BUDGET_S`), pypdf's own per-stream limits, and :data:`MAX_CHUNKS` chunks per
document.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import unicodedata
import zipfile
from pathlib import PurePosixPath

from rag_core.errors import IngestError
from rag_core.ingest.chunking import chunk_blocks, section_digests
from rag_core.ingest.formats import (
    ProgressFn,
    decode_text,
    read_docx,
    read_html,
    read_markdown,
    read_pdf,
    read_text,
)
from rag_core.ingest.ocr import OcrEngine, TesseractOcr
from rag_core.models import ParsedDocument
from rag_core.settings import Settings

#: File types we can read (lower-case extensions).
SUPPORTED = {".pdf", ".docx", ".html", ".htm", ".txt", ".md"}
#: What to do with types we cannot read.
UNSUPPORTED_HINTS = {
    ".doc": "This is the old Word format: open it in Word or LibreOffice, choose Save As → Word "
    "Document (.docx) or PDF, and upload that.",
    ".rtf": "Open it in Word or LibreOffice, save it as .docx or PDF and upload that.",
    ".odt": "Open it in LibreOffice, save it as .docx (File → Save As) or PDF and upload that.",
    ".pages": "Export it from Pages as Word (.docx) or PDF and upload that.",
    ".xlsx": "Spreadsheets are not policy text: export the sheet as PDF, or paste it into a .docx.",
    ".pptx": "Export the slides as PDF and upload that.",
}
#: Plain-text types whose size is capped by ``settings.max_text_mb`` (refused before reading).
TEXT_TYPES = {".txt", ".md", ".html", ".htm"}
#: A .docx's ``word/document.xml`` may unpack to this many MB per MB of ``settings.max_text_mb``.
DOCX_XML_PER_TEXT_MB = 8
#: Longest file name we keep, extension included.
MAX_NAME_CHARS = 120
#: Wall-clock seconds allowed for extracting a PDF's text layer before we give up.
PDF_TIME_BUDGET_S = 30.0
#: Wall-clock seconds allowed for OCR of a document's scanned pages.
OCR_TIME_BUDGET_S = 600.0
#: A document that splits into more chunks than this is refused (it would take many minutes
#: to embed); the analyst is asked to split it.
MAX_CHUNKS = 20_000

_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')


def safe_filename(name: str) -> str:
    """A file name safe to show, store and use as a document key.

    Drops any directory part (``/`` and ``\\``), NUL/control/format characters, characters
    Windows forbids, leading dots and surrounding spaces; caps the length at
    :data:`MAX_NAME_CHARS`, keeping the extension. Raises :class:`IngestError` when nothing
    usable is left (e.g. ``""``, ``"../"``, ``"\\x00"``).
    """
    raw = name if isinstance(name, str) else str(name)
    text = unicodedata.normalize("NFC", raw).replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    text = _WINDOWS_FORBIDDEN.sub("_", text)
    text = text.strip().lstrip(".").strip().rstrip(". ")
    if len(text) > MAX_NAME_CHARS:
        suffix = PurePosixPath(text).suffix
        if not suffix or len(suffix) > 16:
            suffix = ""
        text = text[: MAX_NAME_CHARS - len(suffix)].rstrip(". ") + suffix
    if not text or not text.strip("._ "):
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise IngestError(
            f"The file name {shown!r} has no usable characters. Rename the file (e.g. "
            "'leave_policy.pdf') and upload it again."
        )
    return text


def size_problem(name: str, size: int, settings: Settings) -> str | None:
    """Why a file of ``size`` bytes is refused before it is read (empty, above
    ``settings.max_upload_mb``, or a TXT/Markdown/HTML file above ``settings.max_text_mb``), or
    None. Callers check it from the upload's size or ``stat`` before loading the bytes."""
    ext = PurePosixPath(name).suffix.lower()
    mb = size / 1024 / 1024
    if size == 0:
        return f"{name}: the file is empty (0 bytes). Check you picked the right file and upload it again."
    if size > settings.max_upload_mb * 1024 * 1024:
        return (
            f"{name}: the file is {mb:.1f} MB, above the {settings.max_upload_mb} MB limit. Split it "
            "into smaller documents or raise RAG_MAX_UPLOAD_MB."
        )
    if ext in TEXT_TYPES and size > settings.max_text_mb * 1024 * 1024:
        parts = math.ceil(size / (settings.max_text_mb * 1024 * 1024))
        return (
            f"{name}: the file is {mb:.1f} MB of text, above the {settings.max_text_mb} MB limit for "
            f"{ext} files (that much text takes too long to embed and search). Split it into at least "
            f"{parts} smaller files — e.g. one per policy or chapter, or `split -C "
            f"{max(1, settings.max_text_mb - 1)}m {name} part_` — and upload those, or raise "
            "RAG_MAX_TEXT_MB."
        )
    return None


def check_size(name: str, size: int, settings: Settings) -> None:
    """Raise :class:`IngestError` with :func:`size_problem`'s message when there is one."""
    problem = size_problem(name, size, settings)
    if problem is not None:
        raise IngestError(problem)


def _check_docx_text(name: str, data: bytes, settings: Settings) -> None:
    """Refuse a .docx whose main text part unpacks to more than :data:`DOCX_XML_PER_TEXT_MB` ×
    ``settings.max_text_mb`` MB, before python-docx loads it (read from the zip directory only)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
    except (zipfile.BadZipFile, KeyError, OSError):
        return  # the reader says the file is damaged, with the usual message
    limit = settings.max_text_mb * DOCX_XML_PER_TEXT_MB
    if info.file_size > limit * 1024 * 1024:
        raise IngestError(
            f"{name}: its text unpacks to {info.file_size / 1024 / 1024:.0f} MB of Word XML, above the "
            f"{limit} MB limit (about {settings.max_text_mb} MB of text). Split the document into "
            "smaller .docx files and upload those, or raise RAG_MAX_TEXT_MB."
        )


def parse_document(
    name: str,
    data: bytes,
    settings: Settings,
    *,
    time_budget_s: float | None = None,
    ocr: OcrEngine | None = None,
    on_progress: ProgressFn | None = None,
) -> ParsedDocument:
    """Read ``data`` (the file's bytes), clean it and split it into chunks.

    ``name`` is passed through :func:`safe_filename`; its extension picks the reader. PDF pages
    without a text layer are OCR'd with ``ocr`` (default: Tesseract, ``settings.tesseract_cmd``).
    Chunks of a PDF carry the page they start on; other formats have no pages (page 0).
    ``on_progress(stage, done, total)`` reports pages read and OCR'd.

    Raises :class:`IngestError` naming the file for: an unusable name, unsupported extension
    (``.doc`` and friends say how to convert), empty file, file larger than
    ``settings.max_upload_mb``, damaged PDF/DOCX, password-protected PDF, PDF with more than
    ``settings.max_pdf_pages`` pages, PDF whose text takes longer than ``time_budget_s`` (default
    :data:`PDF_TIME_BUDGET_S`) to extract, scanned pages when OCR is not installed (saying what to
    install), file without text, more than :data:`MAX_CHUNKS` chunks.
    """
    name = safe_filename(name)
    ext = PurePosixPath(name).suffix.lower()
    if ext not in SUPPORTED:
        kinds = ", ".join(sorted(SUPPORTED))
        hint = UNSUPPORTED_HINTS.get(ext, "Save it as PDF or Word (.docx) and upload that.")
        raise IngestError(
            f"{name}: {ext or 'files without an extension'} is not a supported type "
            f"(supported: {kinds}). {hint}"
        )
    size = len(data)
    check_size(name, size, settings)
    if ext == ".docx":
        _check_docx_text(name, data, settings)
    sha = hashlib.sha256(data).hexdigest()
    pages, ocr_pages = 1, 0
    if ext == ".pdf":
        read = read_pdf(
            name,
            data,
            max_pages=settings.max_pdf_pages,
            budget_s=PDF_TIME_BUDGET_S if time_budget_s is None else time_budget_s,
            ocr=ocr or TesseractOcr(settings.tesseract_cmd),
            ocr_budget_s=OCR_TIME_BUDGET_S,
            on_progress=on_progress,
        )
        blocks, pages, ocr_pages = read.blocks, read.pages, read.ocr_pages
    elif ext == ".docx":
        blocks = read_docx(name, data)
    elif ext in (".html", ".htm"):
        blocks = read_html(name, data)
    elif ext == ".md":
        blocks = read_markdown(decode_text(name, data))
    else:
        blocks = read_text(name, data)
    chunks = chunk_blocks(
        blocks, name=name, sha256=sha, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
    )
    if len(chunks) > MAX_CHUNKS:
        raise IngestError(
            f"{name}: the document splits into {len(chunks):,} chunks, above the {MAX_CHUNKS:,} "
            "limit. Split it into smaller documents (e.g. one per policy) and upload those."
        )
    if not chunks:
        if ext == ".pdf":
            raise IngestError(
                f"{name}: no text could be read from its {pages} page(s), even with OCR. Check that "
                "the scan is legible (at least 200 dpi, upright) and upload it again."
            )
        raise IngestError(
            f"{name}: the file contains no text (only whitespace). Check the file and upload it again."
        )
    return ParsedDocument(
        name=name,
        sha256=sha,
        size_bytes=size,
        pages=pages,
        chunks=tuple(chunks),
        format=ext.lstrip("."),
        ocr_pages=ocr_pages,
        sections=section_digests(blocks),
    )
