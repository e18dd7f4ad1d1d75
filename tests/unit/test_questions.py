"""Question files: JSON/CSV parsing and validation; every error names the file and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_core.errors import InputError
from rag_core.models import QAItem
from rag_core.questions import (
    MAX_GROUND_TRUTH_CHARS,
    MAX_QUESTION_CHARS,
    load_questions,
    parse_questions,
    validate_items,
)

GOOD = [
    {"question": "How many days of leave?", "ground_truth": "25 days."},
    {"question": "Can I work remotely?", "ground_truth": ""},
]


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


# --- happy paths --------------------------------------------------------------------------------
def test_json_list_and_wrapped_object() -> None:
    expected = [QAItem("How many days of leave?", "25 days."), QAItem("Can I work remotely?", "")]
    assert parse_questions("q.json", _json(GOOD)) == expected
    assert parse_questions("Q.JSON", _json({"questions": GOOD, "version": 2})) == expected


def test_json_strips_whitespace_ignores_extra_keys_and_null_ground_truth() -> None:
    data = [{"question": "  Who approves\texpenses?  ", "ground_truth": None, "id": 7, "tags": ["x"]}]
    assert parse_questions("q.json", _json(data)) == [QAItem("Who approves\texpenses?", "")]


def test_csv_with_bom_extra_columns_quotes_and_blank_lines() -> None:
    data = (
        "\ufeffid,Question,Ground Truth,notes\r\n"
        '1,"How many days, in total?","25 days, plus holidays.",x\r\n'
        "\r\n"
        '2,"Multi\nline question?",,\r\n'
    ).encode()
    assert parse_questions("set.csv", data) == [
        QAItem("How many days, in total?", "25 days, plus holidays."),
        QAItem("Multi\nline question?", ""),
    ]


def test_csv_semicolon_separator() -> None:
    data = b"question;ground_truth\nWhat is the notice period?;One month, or three for managers.\n"
    assert parse_questions("excel.csv", data) == [
        QAItem("What is the notice period?", "One month, or three for managers.")
    ]


def test_load_questions_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "questions.json"
    path.write_bytes(_json(GOOD))
    assert len(load_questions(path)) == 2
    csv_path = tmp_path / "questions.csv"
    csv_path.write_text("question,ground_truth\nA?,a\n", encoding="utf-8")
    assert load_questions(str(csv_path)) == [QAItem("A?", "a")]


def test_sample_questions_file_loads_if_present() -> None:
    from tests.conftest import SAMPLE_QUESTIONS

    if not SAMPLE_QUESTIONS.exists():
        pytest.skip("sample questions not built yet")
    items = load_questions(SAMPLE_QUESTIONS)
    assert len(items) == 10 and all(i.question for i in items)


# --- file-level errors --------------------------------------------------------------------------
def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found: .*nope\.json"):
        load_questions(tmp_path / "nope.json")
    with pytest.raises(InputError, match="is a folder"):
        load_questions(tmp_path)


@pytest.mark.parametrize(
    ("name", "data", "pattern"),
    [
        ("q.xlsx", b"PK\x03\x04", r"'q.xlsx': unsupported question file type \(.xlsx\)"),
        ("q.json", b"", r"'q.json' is empty"),
        ("q.csv", b"  \n\n", r"'q.csv' is empty"),
        ("q.json", b"[]", r"'q.json' contains no questions"),
        ("q.json", b'{"questions": []}', r"'q.json' contains no questions"),
        ("q.csv", b"question,ground_truth\n\n", r"'q.csv' contains no questions"),
        (
            "q.json",
            b'[\n  {"question": "A?",\n   "ground_truth": "x"\n  \n',
            r"'q.json' is not valid JSON: .* line 5, column 1",
        ),
        (
            "q.json",
            b'[{"question": "A?" "ground_truth": "x"}]',
            r"not valid JSON: Expecting ',' delimiter at line 1, column 20",
        ),
        ("q.json", b'"just text"', r"'q.json' should hold a list .* found text"),
        ("q.json", b'{"items": []}', r"found an object with keys 'items'"),
        # UTF-16 and Windows-1252 are read now (tests/unit/test_text.py); binary data is named.
        ("q.csv", bytes(range(256)) * 10, r"'q.csv' does not look like a text file"),
        ("q.csv", b'question,ground_truth\n"unterminated,x\n', r"'q.csv' is not valid CSV: .*near line"),
        ("q.csv", b'question,ground_truth\n"A?"x,y\n', r"'q.csv' is not valid CSV: .*near line 2"),
    ],
)
def test_malformed_files(name: str, data: bytes, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        parse_questions(name, data)


def test_csv_missing_columns_are_named() -> None:
    with pytest.raises(
        InputError, match=r"missing the column 'ground_truth' .*line 1.*found 'question', 'answer'"
    ):
        parse_questions("q.csv", b"question,answer\nA?,a\n")
    with pytest.raises(InputError, match=r"missing the columns 'question' and 'ground_truth'"):
        parse_questions("q.csv", b"q;a\nA?;a\n")


def test_too_large_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rag_core.questions as questions

    monkeypatch.setattr(questions, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.csv"
    path.write_text("question,ground_truth\n" + "Q?,a\n" * 50, encoding="utf-8")
    with pytest.raises(InputError, match=r"'big\.csv' is too large"):
        load_questions(path)


# --- row-level errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ([GOOD[0], {"question": "   ", "ground_truth": "x"}], r"'q.json', row 2: the question is empty"),
        (
            [GOOD[0], GOOD[1], {"question": "how many  DAYS of leave? ", "ground_truth": ""}],
            r"'q.json', row 1 and row 3: the same question appears twice \('how many DAYS of leave\?'\)",
        ),
        (
            [GOOD[0], {"question": "Q" * (MAX_QUESTION_CHARS + 1), "ground_truth": ""}],
            r"row 2: the question is 2001 characters long; the limit is 2000",
        ),
        (
            [{"question": "A?", "ground_truth": "g" * (MAX_GROUND_TRUTH_CHARS + 1)}],
            r"row 1: the ground truth is 10001 characters long; the limit is 10000",
        ),
        ([GOOD[0], {"question": "A?"}], r"row 2: missing 'ground_truth'"),
        ([{"ground_truth": "x"}], r"row 1: missing 'question'"),
        (
            [GOOD[0], GOOD[1], {"question": 42, "ground_truth": "x"}],
            r"row 3: 'question' must be text, found a number",
        ),
        ([{"question": "A?", "ground_truth": ["x"]}], r"row 1: 'ground_truth' must be text, found a list"),
        (
            [GOOD[0], "What about pets?"],
            r"row 2: is text, expected an item with a question and a ground_truth",
        ),
    ],
)
def test_json_row_errors_name_the_row(data: list, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        parse_questions("q.json", _json(data))


def test_limits_are_inclusive() -> None:
    data = [{"question": "Q" * MAX_QUESTION_CHARS, "ground_truth": "g" * MAX_GROUND_TRUTH_CHARS}]
    assert len(parse_questions("q.json", _json(data))) == 1


def test_csv_row_errors_name_row_and_line() -> None:
    data = b"question,ground_truth\nA?,a\n\n,empty question\nB?,b,extra value\na?,dupe\n"
    with pytest.raises(InputError) as info:
        parse_questions("hr.csv", data)
    msg = str(info.value)
    assert msg.startswith("'hr.csv' has 3 problems:")
    assert "row 2 (line 4): the question is empty." in msg
    assert "row 3 (line 5): has 3 values but the header has 2 columns" in msg
    assert "row 1 (line 2) and row 4 (line 6): the same question appears twice" in msg


def test_many_problems_are_summarised() -> None:
    data = [{"question": "", "ground_truth": ""} for _ in range(25)]
    with pytest.raises(InputError) as info:
        parse_questions("q.json", _json(data))
    msg = str(info.value)
    assert "has 25 problems" in msg and "row 10:" in msg and "row 11:" not in msg
    assert "and 15 more" in msg


# --- validate_items -----------------------------------------------------------------------------
def test_validate_items_strips_and_checks() -> None:
    assert validate_items([QAItem("  A?\n", " a "), QAItem("B?", "")]) == [
        QAItem("A?", "a"),
        QAItem("B?", ""),
    ]
    with pytest.raises(InputError, match=r"^The question set contains no questions"):
        validate_items([])
    with pytest.raises(InputError, match=r"^'x.csv', row 1 and row 2: the same question"):
        validate_items([QAItem("Same?", ""), QAItem("SAME?", "")], source="'x.csv'")
    with pytest.raises(InputError, match=r"row 2: is a dict"):
        validate_items([QAItem("A?", ""), {"question": "B?"}])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"row 1: 'question' must be text, found null"):
        validate_items([QAItem(None, "")])  # type: ignore[arg-type]
