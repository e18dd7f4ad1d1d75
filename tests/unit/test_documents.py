"""Parsing and splitting documents: what an analyst sees for good and bad files."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from rag_core.errors import IngestError
from rag_core.ingest.documents import MAX_NAME_CHARS, SUPPORTED, parse_document, safe_filename
from tests.fixtures.pdfs import (
    blank_pdf,
    encrypted_pdf,
    heavy_page_pdf,
    many_pages_pdf,
    owner_only_pdf,
    text_pdf,
)

TOPICS = {1: "annual leave", 2: "sick pay", 3: "remote working"}
PAGES = [
    " ".join(f"Page{p} sentence {i} explains the {TOPICS[p]} policy in some detail." for i in range(40))
    for p in (1, 2, 3)
]


# --- good files -------------------------------------------------------------------------------
def test_markdown_is_split_into_ordered_chunks_with_stable_ids(settings):
    text = "\n\n".join(f"## Section {i}\n" + f"Rule {i} applies to all staff. " * 30 for i in range(12))
    data = text.encode()
    doc = parse_document("handbook.md", data, settings)

    sha = hashlib.sha256(data).hexdigest()
    assert doc.name == "handbook.md" and doc.sha256 == sha and doc.size_bytes == len(data) and doc.pages == 1
    assert len(doc.chunks) > 5
    assert [c.position for c in doc.chunks] == list(range(len(doc.chunks)))
    assert [c.id for c in doc.chunks] == [f"{sha[:16]}:{i}" for i in range(len(doc.chunks))]
    # Markdown has no pages (page 0: citations name the section instead).
    assert all(c.page == 0 and c.source == "handbook.md" and c.doc_sha256 == sha for c in doc.chunks)
    assert all(0 < len(c.text) <= settings.chunk_size for c in doc.chunks)
    # Nothing is lost: every section heading lands in some chunk, and chunks carry their section.
    assert all(any(re.search(rf"^Section {i}$", c.text, re.M) for c in doc.chunks) for i in range(12))
    assert {c.section for c in doc.chunks} == {f"Section {i}" for i in range(12)}


def test_chunk_size_is_in_characters_and_settings_apply(settings):
    data = ("word " * 2000).encode()
    small = parse_document("a.txt", data, settings.replace(chunk_size=200, chunk_overlap=0))
    large = parse_document("a.txt", data, settings.replace(chunk_size=1000, chunk_overlap=0))
    assert all(len(c.text) <= 200 for c in small.chunks)
    assert len(small.chunks) > 4 * len(large.chunks) >= 4


def test_pdf_chunks_record_the_page_they_start_on(settings):
    doc = parse_document(
        "three_pages.pdf", text_pdf(PAGES), settings.replace(chunk_size=300, chunk_overlap=30)
    )

    assert doc.pages == 3
    assert {c.page for c in doc.chunks} == {1, 2, 3}
    for chunk in doc.chunks:
        first_marker = chunk.text.split("Page", 1)[1][:1]  # the page whose words the chunk starts with
        assert chunk.page == int(first_marker), chunk
    # Pages never go backwards along the document.
    assert [c.page for c in doc.chunks] == sorted(c.page for c in doc.chunks)


def test_text_fallback_to_cp1252_and_bom_are_handled(settings):
    assert parse_document("a.txt", "Café policy – 25 days".encode("cp1252"), settings).chunks[0].text == (
        "Café policy – 25 days"
    )
    assert parse_document("b.md", "\ufeff# Leave\nRules".encode(), settings).chunks[0].text == "Leave\nRules"
    assert "Leave" in parse_document("c.txt", "Leave rules".encode("utf-16"), settings).chunks[0].text


def test_pdf_with_owner_password_only_is_readable(settings):
    doc = parse_document("open.pdf", owner_only_pdf(text_pdf(["Holiday is 25 days."])), settings)
    assert "Holiday is 25 days." in doc.chunks[0].text


def test_name_is_sanitised_before_use(settings):
    doc = parse_document("../../etc/leave.md", b"Leave rules", settings)
    assert doc.name == "leave.md" and doc.chunks[0].source == "leave.md"


# --- bad files: IngestError naming the file and saying what to do -----------------------------
@pytest.mark.parametrize(
    ("name", "make", "override", "phrase"),
    [
        ("empty.pdf", lambda: b"", {}, "empty"),
        ("empty.txt", lambda: b"", {}, "empty"),
        ("blank.txt", lambda: b" \n\t\n  ", {}, "no text"),
        ("policy.doc", lambda: b"\xd0\xcf\x11\xe0 old word", {}, "old Word format"),
        ("policy.docx", lambda: b"PK\x03\x04 not really", {}, "damaged"),
        ("sheet.xlsx", lambda: b"PK\x03\x04", {}, "not a supported type"),
        ("noext", lambda: b"hello", {}, "not a supported type"),
        ("corrupt.pdf", lambda: b"%PDF-1.7\n this is \x00 garbage \xff\xfe without objects", {}, "damaged"),
        ("notapdf.pdf", lambda: b"just some text pretending", {}, "damaged"),
        ("truncated.pdf", lambda: text_pdf(["Leave policy"])[:300], {}, "damaged"),
        ("locked.pdf", lambda: encrypted_pdf(text_pdf(["Secret leave policy"])), {}, "password"),
        ("scanned.pdf", lambda: blank_pdf(3), {}, "OCR"),
        ("long.pdf", lambda: text_pdf(["a", "b", "c", "d", "e"]), {"max_pdf_pages": 3}, "5 pages"),
        ("big.txt", lambda: b"x" * (1024 * 1024 + 1), {"max_upload_mb": 1}, "1 MB"),
        ("binary.txt", lambda: bytes(range(256)) * 10, {}, "binary"),
    ],
)
def test_bad_input_raises_ingest_error_naming_the_file(settings, name, make, override, phrase):
    with pytest.raises(IngestError) as err:
        parse_document(name, make(), settings.replace(**override))
    message = str(err.value)
    assert message.startswith(f"{name}:"), message
    assert phrase in message, message


def test_supported_types_are_the_documented_ones():
    assert {".pdf", ".docx", ".html", ".htm", ".txt", ".md"} == SUPPORTED


def test_page_count_bomb_is_refused_quickly(settings):
    data = many_pages_pdf(5000)
    started = time.monotonic()
    with pytest.raises(IngestError, match="5,000 pages"):
        parse_document("bomb.pdf", data, settings)
    assert time.monotonic() - started < 5


def test_page_with_huge_content_stream_is_refused_quickly(settings):
    data = heavy_page_pdf(1_000_000)  # 26 KB compressed, ~13 MB of drawing operators
    assert len(data) < 100_000
    started = time.monotonic()
    with pytest.raises(IngestError, match="page 1"):
        parse_document("zipbomb.pdf", data, settings)
    assert time.monotonic() - started < 5


def test_time_budget_stops_slow_pdfs(settings):
    data = heavy_page_pdf(60_000)  # fine, but takes a few seconds to read
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"longer than 0\.1 s") as err:
        parse_document("slow.pdf", data, settings, time_budget_s=0.1)
    assert time.monotonic() - started < 10
    assert "split it" in str(err.value)


# --- safe_filename ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../x.pdf", "x.pdf"),
        ("/etc/passwd.pdf", "passwd.pdf"),
        ("a\x00b.pdf", "ab.pdf"),
        ("C:\\Users\\hr\\leave.pdf", "leave.pdf"),
        ("..\\..\\windows\\sick.md", "sick.md"),
        (".hidden.md", "hidden.md"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("evil\u202efdp.txt", "evilfdp.txt"),
        ("line\nbreak\r.md", "linebreak.md"),
        ('what?:<policy>|"2026".pdf', "what___policy___2026_.pdf"),
        ("Política de férias.pdf", "Política de férias.pdf"),
    ],
)
def test_safe_filename_strips_directories_and_control_characters(raw, expected):
    assert safe_filename(raw) == expected


def test_safe_filename_caps_length_and_keeps_extension():
    name = safe_filename("a" * 500 + ".pdf")
    assert len(name) == MAX_NAME_CHARS and name.endswith(".pdf")
    assert len(safe_filename("b" * 500)) == MAX_NAME_CHARS


@pytest.mark.parametrize("raw", ["", "   ", "../", "..", "/", "\x00\x01", "...", "\\\\"])
def test_safe_filename_refuses_names_with_nothing_usable(raw):
    with pytest.raises(IngestError, match="Rename the file"):
        safe_filename(raw)


def test_aes_pdf_without_crypto_support_says_what_to_do(settings, monkeypatch):
    import pypdf
    from pypdf.errors import DependencyError

    def needs_cryptography(self, password):
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", needs_cryptography)
    with pytest.raises(IngestError, match=r"^aes\.pdf: .*AES.*unprotected copy"):
        parse_document("aes.pdf", owner_only_pdf(text_pdf(["Leave"])), settings)
