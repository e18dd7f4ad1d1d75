"""Text hygiene shared by every way text comes in or goes out: decoding, control characters, formulas.

* :func:`decode_text` — the one decoder for files people save as "text": UTF-16 with a byte-order
  mark, UTF-8 with or without one, and Windows-1252 (what Excel and Notepad write on Windows).
  Used for question files and for text documents.
* :func:`looks_binary` — whether decoded "text" is really binary data (a renamed spreadsheet).
* :func:`strip_control` — removes NUL and the other control characters (keeping tab and newline;
  CR/CRLF, vertical tab and form feed become newlines) and unpaired surrogates, which cannot be
  stored or exported as UTF-8. Applied to questions, ground truths and document text on the way in.
* :func:`passage_fingerprint` — sha256 of a passage's normalised text (NFKC, whitespace collapsed,
  casefolded): equal for the same passage however it was spaced (issue 14's source links).
* :func:`formula_guard` / :func:`formula_unguard` — spreadsheet formula injection. A CSV cell that
  starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is run as a formula by Excel,
  LibreOffice and Google Sheets (``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``, ``@SUM(…)``,
  ``+1+1``). The guard prefixes such a cell with ``'`` (shown as text, never run). So that a file
  we wrote reads back unchanged, a cell that already starts with apostrophes followed by one of
  those characters gets one more, and :func:`formula_unguard` (used when a question CSV is read)
  removes exactly one: ``unguard(guard(s)) == s`` for every string. Reading a CSV written by hand,
  ``'=1+1`` becomes ``=1+1`` — what the spreadsheet showed.

Pure functions, no imports from the rest of the package (the base layer).
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = [
    "BINARY_SHARE",
    "FORMULA_START",
    "decode_text",
    "formula_guard",
    "formula_unguard",
    "looks_binary",
    "passage_fingerprint",
    "strip_control",
]

#: Share of control characters above which "text" is taken for binary data (:func:`looks_binary`).
BINARY_SHARE = 0.05
#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_KEPT = {"\t", "\n"}
_AS_NEWLINE = {"\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}


def decode_text(data: bytes) -> str:
    """``data`` as text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (a BOM is
    dropped), else Windows-1252. Never raises: bytes Windows-1252 leaves undefined become U+FFFD."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def looks_binary(text: str) -> bool:
    """True when ``text`` (decoded) is not really text: more than :data:`BINARY_SHARE` (and more
    than 8) of its first 8,192 characters are control characters other than tab, newline, CR and
    form feed. A few stray NULs in a text file are not enough (they are removed by
    :func:`strip_control`); a spreadsheet, image or PDF renamed ``.txt``/``.csv`` is."""
    sample = text[:8192]
    controls = sum(1 for ch in sample if ch not in "\t\n\r\f" and unicodedata.category(ch) == "Cc")
    return controls > max(8, len(sample) * BINARY_SHARE)


def strip_control(text: str) -> str:
    """``text`` without control characters: tab and newline are kept, line and page breaks of
    other kinds (CR, CRLF, VT, FF, NEL, U+2028/9) become ``\\n``, the rest (NUL, ESC, DEL, C1
    controls) and unpaired surrogates are removed."""
    if text.isprintable():  # the common case: nothing to do
        return text
    text = text.replace("\r\n", "\n")
    out: list[str] = []
    for ch in text:
        if ch in _KEPT:
            out.append(ch)
        elif ch in _AS_NEWLINE:
            out.append("\n")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def _needs_guard(value: str) -> bool:
    return value.lstrip("'").startswith(FORMULA_START)


def formula_guard(value: str) -> str:
    """``value`` safe for a CSV cell: ``'`` prefixed when a spreadsheet would run it as a formula
    (or when it already starts with ``'`` before such a character, so the guard can be undone)."""
    return "'" + value if _needs_guard(value) else value


def formula_unguard(value: str) -> str:
    """Undo :func:`formula_guard`: one leading ``'`` is removed when what follows the apostrophes
    starts like a formula; any other value is returned unchanged."""
    return value[1:] if value.startswith("'") and _needs_guard(value) else value


def passage_fingerprint(text: str) -> str:
    """sha256 hex of ``text`` normalised (NFKC, whitespace collapsed, stripped, casefolded): the
    identity of a passage that a question's source link points to."""
    return hashlib.sha256(
        " ".join(unicodedata.normalize("NFKC", text).split()).casefold().encode()
    ).hexdigest()
