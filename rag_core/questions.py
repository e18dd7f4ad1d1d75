"""Question sets from files: JSON or CSV rows of ``question`` + ``ground_truth`` (+ ``expected``).

Accepted formats
----------------
* ``.json``: a list of objects ``[{"question": "...", "ground_truth": "..."}, ...]`` or
  ``{"questions": [ ...same list... ]}``; each object may also say ``"expected": "answer"`` or
  ``"decline"``. Other keys are ignored; ``"ground_truth": null`` means unknown (``''``).
* ``.csv``: a header naming the columns ``question`` and ``ground_truth`` (case, spaces and
  hyphens ignored: ``Ground Truth`` works); other columns are ignored; blank lines are skipped;
  ``;`` or tab separators are detected. A cell's formula guard (``'=…``, see
  :mod:`rag_core.text`) is removed, so a set exported as CSV imports as the same questions.

Both are read like text documents (:func:`rag_core.text.decode_text`): UTF-8 with or without a BOM
(Excel's "CSV UTF-8"), UTF-16 with a BOM (Excel's "Unicode Text") or Windows-1252 (Excel's plain
"CSV" on Windows). NUL and other control characters are removed from questions and ground truths
(tab and newline are kept), wherever the items come from: files, the editor or the store.
* ``expected`` (optional key or column): ``answer`` (the default, also when empty) or ``decline``
  — the policy does not cover the question and the assistant should say so (case ignored).

Every problem raises :class:`InputError` naming the file and the 1-based row ("row 3" is the
third question; CSV messages add the file line). Row problems are collected so the analyst can
fix them all at once. Ground truth may be empty (``''``): metrics that need it mark the
question as failed later.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_core.errors import InputError
from rag_core.models import QAItem
from rag_core.text import decode_text, formula_unguard, looks_binary, strip_control
from rag_core.vocab import Expected

#: File types :func:`parse_questions` reads.
SUPPORTED = (".json", ".csv")
#: Longest question accepted, in characters.
MAX_QUESTION_CHARS = 2000
#: Longest ground truth accepted, in characters.
MAX_GROUND_TRUTH_CHARS = 10_000
#: Most questions accepted in one set.
MAX_QUESTIONS = 5000
#: Largest question file accepted, in bytes.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Row problems listed in one error message (the rest are counted).
MAX_PROBLEMS_SHOWN = 10

_REQUIRED = ("question", "ground_truth")


@dataclass(frozen=True)
class _Row:
    """A raw row before validation: its label for messages and the values as found."""

    label: str
    question: object
    ground_truth: object
    expected: object = ""


def load_questions(path: Path | str) -> list[QAItem]:
    """Read and validate a question file (see the module docstring for the formats).

    Returns the stripped items in file order (never empty). Raises :class:`InputError` when
    the file is missing/unreadable/too large or any row is invalid.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(_too_large(path.name, size))
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"Question file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a question file.") from None
    except OSError as exc:
        raise InputError(f"Cannot read the question file {path}: {exc.strerror or exc}.") from None
    return parse_questions(path.name, data)


def parse_questions(name: str, data: bytes) -> list[QAItem]:
    """Parse and validate the bytes of a question file; ``name`` picks the format by extension.

    Returns the stripped items in file order (never empty). Raises :class:`InputError` naming
    ``name`` (and the row, and the parser's line/column for malformed files).
    """
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        shown = suffix or "no extension"
        raise InputError(f"'{name}': unsupported question file type ({shown}); use a .json or .csv file.")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(_too_large(name, len(data)))
    text = _decode(name, data)
    if not text.strip():
        raise InputError(f"'{name}' is empty: it contains no questions.")
    rows = _json_rows(name, text) if suffix == ".json" else _csv_rows(name, text)
    return _validate(rows, f"'{name}'")


def validate_items(items: Sequence[QAItem], *, source: str | None = None) -> list[QAItem]:
    """Check and normalise items: returns new items with surrounding whitespace stripped.

    Raises :class:`InputError` naming ``source`` (e.g. the file) and the 1-based row for: an
    empty set, an item that is not a ``QAItem`` of text, an empty question, a duplicate question
    (case- and whitespace-insensitive; both rows named), a question over
    :data:`MAX_QUESTION_CHARS` or a ground truth over :data:`MAX_GROUND_TRUTH_CHARS` characters.
    """
    rows: list[_Row] = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, QAItem):
            rows.append(_Row(f"row {i}", _NotAnItem(f"a {type(item).__name__}"), ""))
        else:
            rows.append(_Row(f"row {i}", item.question, item.ground_truth, item.expected))
    return _validate(rows, source or "The question set")


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _NotAnItem:
    type_name: str


def _too_large(name: str, size: int) -> str:
    return (
        f"'{name}' is too large ({size / 1_048_576:.1f} MB); question files are limited to "
        f"{MAX_FILE_BYTES // 1_048_576} MB."
    )


def _decode(name: str, data: bytes) -> str:
    """The file's text (UTF-8, UTF-16 with BOM or Windows-1252) with control characters removed.

    Raises :class:`InputError` when it is not text at all (e.g. a spreadsheet or PDF renamed).
    """
    text = decode_text(data)
    if looks_binary(text):
        raise InputError(
            f"'{name}' does not look like a text file (it contains binary data). Save the questions "
            "as CSV (in Excel: 'CSV UTF-8') or JSON and import that file."
        )
    return strip_control(text)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _json_rows(name: str, text: str) -> list[_Row]:
    expected = 'a list of {"question": ..., "ground_truth": ...} objects (or {"questions": [...]})'
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"'{name}' is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except RecursionError:
        raise InputError(f"'{name}' is nested too deeply; it should hold {expected}.") from None
    if isinstance(data, dict):
        if "questions" not in data:
            keys = ", ".join(f"'{k}'" for k in list(data)[:5]) or "none"
            raise InputError(f"'{name}' should hold {expected}; found an object with keys {keys}.")
        data = data["questions"]
    if not isinstance(data, list):
        raise InputError(f"'{name}' should hold {expected}; found {_json_type(data)}.")
    if len(data) > MAX_QUESTIONS:
        raise InputError(f"'{name}' has {len(data)} questions; at most {MAX_QUESTIONS} are accepted.")
    rows: list[_Row] = []
    for i, entry in enumerate(data, 1):
        label = f"row {i}"
        if not isinstance(entry, dict):
            rows.append(_Row(label, _NotAnItem(_json_type(entry)), ""))
            continue
        fields = {_norm(k): v for k, v in entry.items() if isinstance(k, str)}
        missing = [k for k in _REQUIRED if k not in fields]
        if missing:
            rows.append(_Row(label, _Missing(tuple(missing)), ""))
            continue
        gt = fields["ground_truth"]
        rows.append(_Row(label, fields["question"], "" if gt is None else gt, fields.get("expected")))
    return rows


@dataclass(frozen=True)
class _Missing:
    fields: tuple[str, ...]


@dataclass(frozen=True)
class _TooManyFields:
    found: int
    expected: int
    delimiter: str


def _norm(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    if "," in first:
        return ","
    for candidate in (";", "\t"):
        if candidate in first:
            return candidate
    return ","


def _csv_rows(name: str, text: str) -> list[_Row]:
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[_Row] = []
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):  # leading blank lines
            header = next(reader, None)
        if header is None:
            raise InputError(f"'{name}' is empty: it contains no questions.")
        header_line = reader.line_num
        columns = [_norm(h) for h in header]
        missing = [c for c in _REQUIRED if c not in columns]
        if missing:
            found = ", ".join(f"'{h.strip()}'" for h in header if h.strip()) or "none"
            raise InputError(
                f"'{name}' is missing the column{'s' if len(missing) > 1 else ''} "
                f"{' and '.join(repr(c) for c in missing)} in its header (line {header_line}); "
                f"found {found}. The first line must name the columns question and ground_truth."
            )
        qi, gi = columns.index("question"), columns.index("ground_truth")
        ei = columns.index("expected") if "expected" in columns else None
        prev_line = header_line
        n = 0
        for fields in reader:
            start_line, prev_line = prev_line + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            n += 1
            if n > MAX_QUESTIONS:
                raise InputError(
                    f"'{name}' has more than {MAX_QUESTIONS} questions; split it into smaller sets."
                )
            label = f"row {n} (line {start_line})"
            if len(fields) > len(header):
                rows.append(_Row(label, _TooManyFields(len(fields), len(header), delimiter), ""))
                continue
            question = formula_unguard(fields[qi]) if qi < len(fields) else ""
            ground_truth = formula_unguard(fields[gi]) if gi < len(fields) else ""
            expected = fields[ei] if ei is not None and ei < len(fields) else ""
            rows.append(_Row(label, question, ground_truth, expected))
    except csv.Error as exc:
        raise InputError(
            f"'{name}' is not valid CSV: {exc} (near line {reader.line_num}). Check for a double quote "
            "that is not closed, or text after a closing quote."
        ) from None
    return rows


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _key(question: str) -> str:
    return " ".join(question.split()).casefold()


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validate(rows: list[_Row], source: str) -> list[QAItem]:
    if not rows:
        raise InputError(f"{source} contains no questions.")
    problems: list[str] = []
    items: list[QAItem] = []
    seen: dict[str, str] = {}
    for row in rows:
        q, gt = row.question, row.ground_truth
        if isinstance(q, _NotAnItem):
            problems.append(
                f"{row.label}: is {q.type_name}, expected an item with a question and a ground_truth."
            )
            continue
        if isinstance(q, _Missing):
            problems.append(f"{row.label}: missing {' and '.join(repr(f) for f in q.fields)}.")
            continue
        if isinstance(q, _TooManyFields):
            sep = "tab" if q.delimiter == "\t" else repr(q.delimiter)
            problems.append(
                f"{row.label}: has {q.found} values but the header has {q.expected} columns; put "
                f"text containing the separator ({sep}) in double quotes."
            )
            continue
        bad_types = [
            f"'{field_name}' must be text, found {_json_type(value)}"
            for field_name, value in (("question", q), ("ground_truth", gt))
            if not isinstance(value, str)
        ]
        if bad_types:
            problems.append(f"{row.label}: {'; '.join(bad_types)}.")
            continue
        assert isinstance(q, str) and isinstance(gt, str)
        q, gt = strip_control(q).strip(), strip_control(gt).strip()
        if not q:
            problems.append(f"{row.label}: the question is empty.")
            continue
        if len(q) > MAX_QUESTION_CHARS:
            problems.append(
                f"{row.label}: the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}."
            )
            continue
        if len(gt) > MAX_GROUND_TRUTH_CHARS:
            problems.append(
                f"{row.label}: the ground truth is {len(gt)} characters long; the limit is "
                f"{MAX_GROUND_TRUTH_CHARS}."
            )
            continue
        expected = _expected(row.expected)
        if expected is None:
            problems.append(
                f"{row.label}: 'expected' must be 'answer' or 'decline', found {_shown(row.expected)}."
            )
            continue
        key = _key(q)
        if key in seen:
            problems.append(f"{seen[key]} and {row.label}: the same question appears twice ('{_short(q)}').")
            continue
        seen[key] = row.label
        items.append(QAItem(question=q, ground_truth=gt, expected=expected))
    if problems:
        raise InputError(_problems_message(source, problems))
    return items


def _expected(value: object) -> Expected | None:
    """``answer``/``decline`` (any case, surrounding spaces ignored; empty or None = answer)."""
    if value is None:
        return Expected.ANSWER
    if isinstance(value, Expected):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text:
        return Expected.ANSWER
    try:
        return Expected(text)
    except ValueError:
        return None


def _shown(value: object) -> str:
    return repr(_short(value)) if isinstance(value, str) else _json_type(value)


def _problems_message(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}, {problems[0]}"
    shown = "\n".join(f"  - {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    tail = f"\n  … and {more} more." if more > 0 else ""
    return f"{source} has {len(problems)} problems:\n{shown}{tail}"
