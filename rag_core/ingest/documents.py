"""Read policy documents (PDF, TXT, MD) and split them into chunks ready to index.

Contract: :func:`parse_document` either returns a :class:`ParsedDocument` with at least one
chunk, or raises :class:`IngestError` whose message starts with the (safe) file name and says
what to do. Nothing else escapes: pypdf / decoding errors are mapped at this boundary.

Limits that keep a hostile upload from freezing the app: the file size
(``settings.max_upload_mb``), the page count (``settings.max_pdf_pages``), a wall-clock budget
for PDF text extraction (:data:`PDF_TIME_BUDGET_S`, checked after every page), pypdf's own
per-stream decompression/parsing limits, and :data:`MAX_CHUNKS` chunks per document.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import logging
import re
import time
import unicodedata
from pathlib import PurePosixPath

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag_core.errors import IngestError
from rag_core.models import Chunk, ParsedDocument
from rag_core.settings import Settings
from rag_core.text import decode_text, looks_binary, strip_control

#: File types we can read (lower-case extensions).
SUPPORTED = {".pdf", ".txt", ".md"}
#: Longest file name we keep, extension included.
MAX_NAME_CHARS = 120
#: Wall-clock seconds allowed for extracting a PDF's text before we give up.
PDF_TIME_BUDGET_S = 30.0
#: A page whose (decompressed) content stream is larger than this is refused before pypdf parses
#: it: pypdf reads roughly 0.15-0.5 MB of page content per second here, so such a page alone would
#: blow the time budget. Normal text pages are 2-50 KB.
MAX_PAGE_CONTENT_BYTES = 4 * 1024 * 1024
#: A document that splits into more chunks than this is refused (it would take many minutes
#: to embed); the analyst is asked to split it.
MAX_CHUNKS = 20_000
#: Separator placed between PDF pages before splitting (chunks may cross pages).
PAGE_SEPARATOR = "\n\n"

_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_MANY_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


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


def parse_document(
    name: str, data: bytes, settings: Settings, *, time_budget_s: float | None = None
) -> ParsedDocument:
    """Read ``data`` (the file's bytes) and split it into chunks.

    ``name`` is passed through :func:`safe_filename`. PDFs are read page by page with pypdf; a
    chunk records the page it *starts* on (chunks may run onto the next page). TXT/MD are
    decoded as UTF-8 (BOM or UTF-16 BOM honoured), falling back to cp1252; their page is 1.

    Raises :class:`IngestError` naming the file for: an unusable name, unsupported extension,
    empty file, file larger than ``settings.max_upload_mb``, corrupt PDF, password-protected
    PDF, PDF with more than ``settings.max_pdf_pages`` pages, PDF whose text takes longer than
    ``time_budget_s`` (default :data:`PDF_TIME_BUDGET_S`) to extract, PDF without extractable
    text (scanned), text file without text, more than :data:`MAX_CHUNKS` chunks.
    """
    name = safe_filename(name)
    ext = PurePosixPath(name).suffix.lower()
    if ext not in SUPPORTED:
        kinds = ", ".join(sorted(SUPPORTED))
        hint = (
            " Save it as PDF (File → Save as / Export) and upload that." if ext in {".docx", ".doc"} else ""
        )
        raise IngestError(
            f"{name}: {ext or 'files without an extension'} is not a supported type "
            f"(supported: {kinds}).{hint}"
        )
    size = len(data)
    if size == 0:
        raise IngestError(
            f"{name}: the file is empty (0 bytes). Check you picked the right file and upload it again."
        )
    limit = settings.max_upload_mb * 1024 * 1024
    if size > limit:
        raise IngestError(
            f"{name}: the file is {size / 1024 / 1024:.1f} MB, above the {settings.max_upload_mb} MB "
            "limit. Split it into smaller documents or raise RAG_MAX_UPLOAD_MB."
        )
    sha = hashlib.sha256(data).hexdigest()
    if ext == ".pdf":
        budget = PDF_TIME_BUDGET_S if time_budget_s is None else time_budget_s
        pages = _pdf_pages(name, data, settings.max_pdf_pages, budget)
    else:
        pages = [_decode_text(name, data)]
    chunks = split_pages(
        pages, name=name, sha256=sha, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
    )
    if not chunks:
        if ext == ".pdf":
            raise IngestError(
                f"{name}: no text could be extracted from its {len(pages)} page(s). It is probably a "
                "scanned image: run it through OCR (e.g. 'Save as searchable PDF' / ocrmypdf) and "
                "upload the result."
            )
        raise IngestError(
            f"{name}: the file contains no text (only whitespace). Check the file and upload it again."
        )
    return ParsedDocument(name=name, sha256=sha, size_bytes=size, pages=len(pages), chunks=tuple(chunks))


def split_text(text: str, chunk_size: int, chunk_overlap: int) -> list[tuple[int, str]]:
    """Split ``text`` by characters → ``[(start_offset, chunk_text), ...]`` in order.

    Uses langchain's ``RecursiveCharacterTextSplitter`` (paragraphs, then lines, then words);
    chunk texts are stripped, empty ones dropped. ``start_offset`` indexes into ``text``.
    """
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, strip_whitespace=True
    )
    out: list[tuple[int, str]] = []
    index, previous_len = 0, 0
    for piece in splitter.split_text(text):
        if not piece.strip():
            continue
        found = text.find(piece, max(0, index + previous_len - chunk_overlap))
        if found < 0:  # should not happen (pieces are substrings); keep the last known offset
            found = index
        index, previous_len = found, len(piece)
        out.append((found, piece))
    return out


def split_pages(
    pages: list[str], *, name: str, sha256: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """Join ``pages`` and split them into :class:`Chunk` s; each keeps the page it starts on."""
    starts: list[int] = []
    offset = 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + len(PAGE_SEPARATOR)
    joined = PAGE_SEPARATOR.join(pages)
    pieces = split_text(joined, chunk_size, chunk_overlap)
    if len(pieces) > MAX_CHUNKS:
        raise IngestError(
            f"{name}: the document splits into {len(pieces):,} chunks, above the {MAX_CHUNKS:,} "
            "limit. Split it into smaller documents (e.g. one per policy) and upload those."
        )
    return [
        Chunk(
            id=f"{sha256[:16]}:{position}",
            text=piece,
            source=name,
            page=bisect.bisect_right(starts, start),
            position=position,
            doc_sha256=sha256,
        )
        for position, (start, piece) in enumerate(pieces)
    ]


def _clean(text: str) -> str:
    text = strip_control(text)  # NUL and other control characters; CR/CRLF become newlines
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def _decode_text(name: str, data: bytes) -> str:
    """UTF-16 (BOM), UTF-8 (BOM or not) or Windows-1252, as for question files (rag_core.text)."""
    text = decode_text(data)
    if looks_binary(text):
        raise IngestError(
            f"{name}: this does not look like a text file (it contains binary data). "
            "Upload the original PDF, or save the document as plain text (.txt)."
        )
    return _clean(text)


def _pdf_pages(name: str, data: bytes, max_pages: int, budget_s: float) -> list[str]:
    """Text of every page of a PDF, or :class:`IngestError`. Bounded in pages and time."""
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
        texts.append(_clean(page_text))
    return texts


class _OutOfTime(Exception):
    """Raised inside pypdf's text extraction when the time budget is spent."""


def _declared_page_count(reader: object) -> int:
    """The page count the PDF *claims* (/Count of the page tree root); 0 if unreadable.

    Cheap, so a page-count bomb is refused before pypdf walks the whole page tree.
    """
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[attr-defined]
        return int(count)
    except Exception:
        return 0
