"""The shipped sample: the handbook PDF (built from handbook.md) and its question set."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pypdf
import pytest

from tests.conftest import ROOT, SAMPLE_PDF, SAMPLE_QUESTIONS

HANDBOOK_MD = ROOT / "data" / "sample" / "handbook.md"
BUILD_SCRIPT = ROOT / "scripts" / "build_sample_pdf.py"

SECTIONS = [
    "Working Hours and Flexitime",
    "Annual Leave",
    "Probation",
    "Sickness Absence and Sick Pay",
    "Maternity, Partner and Adoption Leave",
    "Disciplinary Procedure and Gross Misconduct",
    "Outside Employment and Interests",
    "Remote and Hybrid Working",
    "Pay-Related Benefits",
    "Code of Conduct",
    "Grievances",
    "Notice and Termination of Employment",
]
UNCOVERED_PREFIX = "The handbook does not cover"


def _build_module():
    spec = importlib.util.spec_from_file_location("build_sample_pdf", BUILD_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page_texts() -> list[str]:
    return [page.extract_text() or "" for page in pypdf.PdfReader(SAMPLE_PDF).pages]


def test_pdf_has_at_least_eight_pages_all_with_text(page_texts: list[str]) -> None:
    assert len(page_texts) >= 8
    for number, text in enumerate(page_texts, start=1):
        assert len(text.split()) > 50, f"page {number} has almost no extractable text"
        assert f"Page {number} of {len(page_texts)}" in text, f"page {number} lacks its footer"


def test_pdf_has_the_twelve_numbered_sections(page_texts: list[str]) -> None:
    lines = {line.strip() for text in page_texts for line in text.splitlines()}
    for number, title in enumerate(SECTIONS, start=1):
        assert f"{number}. {title}" in lines


def test_pdf_is_up_to_date_and_rebuilds_byte_identically(tmp_path: Path) -> None:
    build = _build_module()
    out = tmp_path / "handbook.pdf"
    assert build.main(["--src", str(HANDBOOK_MD), "--out", str(out)]) == 0
    first = out.read_bytes()
    assert build.main(["--src", str(HANDBOOK_MD), "--out", str(out)]) == 0
    assert out.read_bytes() == first
    assert first == SAMPLE_PDF.read_bytes(), "run scripts/build_sample_pdf.py after editing handbook.md"


def test_build_script_rejects_characters_core_fonts_cannot_show(tmp_path: Path) -> None:
    build = _build_module()
    src = tmp_path / "bad.md"
    assert build.to_latin1("\u201cQuoted\u201d \u2014 fine \u2026", 1) == '"Quoted" - fine ...'
    src.write_text("# Title\n\nA snowman \u2603 is not fine.\n", encoding="utf-8")
    assert build.main(["--src", str(src), "--out", str(tmp_path / "bad.pdf")]) == 1
    assert not (tmp_path / "bad.pdf").exists()


def test_questions_are_ten_unique_items_with_exactly_one_uncovered() -> None:
    items = json.loads(SAMPLE_QUESTIONS.read_text(encoding="utf-8"))
    assert isinstance(items, list) and len(items) == 10
    for item in items:
        assert set(item) <= {"question", "ground_truth", "expected"}
        assert item["question"].strip() and item["ground_truth"].strip()
    assert len({i["question"].strip().lower() for i in items}) == 10
    uncovered = [i for i in items if i["ground_truth"].startswith(UNCOVERED_PREFIX)]
    assert len(uncovered) == 1
    assert "car" in uncovered[0]["question"].lower()
    # The uncovered question is the one the assistant should decline (issue 12); the rest default
    # to "answer".
    assert [i.get("expected", "answer") for i in items].count("decline") == 1
    assert uncovered[0]["expected"] == "decline"


def test_handbook_really_does_not_mention_cars_but_does_rule_out_stock_options() -> None:
    text = HANDBOOK_MD.read_text(encoding="utf-8").lower()
    assert not re.search(r"\b(cars?|vehicles?|automobiles?|mileage|parking)\b", text)
    assert "stock options" in text
    text.encode("ascii")  # plain ASCII source: nothing for the PDF's core fonts to mangle
