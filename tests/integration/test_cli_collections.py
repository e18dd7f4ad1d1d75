"""The CLI with collections, versions, Word files and scans (issue 10): what a script sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.pdfs import scanned_pdf
from tests.unit.test_formats import docx_bytes

pytestmark = pytest.mark.slow


def _cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_ingest_docs_versions_and_run_per_collection(tmp_path: Path) -> None:
    north, south = tmp_path / "north" / "expenses.md", tmp_path / "south" / "expenses.md"
    for path, text in (
        (north, "Northwind refunds purchases over 50 pounds."),
        (south, "Southbank refunds purchases over 75 dollars."),
    ):
        path.parent.mkdir()
        path.write_text(f"# Expenses\n\n{text} A receipt is always needed.\n")
    word = tmp_path / "policies.docx"
    word.write_bytes(docx_bytes())
    data = tmp_path / "data"

    got = _cli(data, "ingest", "--collection", "Northwind", str(north), str(word))
    assert got.returncode == 0, got.stderr
    assert (
        "added     expenses.md [Northwind] v1" in got.stdout and "policies.docx [Northwind] v1" in got.stdout
    )
    assert _cli(data, "ingest", "--collection", "Southbank", str(south)).returncode == 0
    north.write_text(north.read_text() + "\n# Mileage\n\n45p per mile.\n")
    got = _cli(data, "ingest", "--collection", "Northwind", str(north))
    assert "replaced  expenses.md [Northwind] v2" in got.stdout and "sections changed: Mileage" in got.stdout

    docs = _cli(data, "docs").stdout.splitlines()
    assert any(line.startswith("Northwind\texpenses.md\tv2\t") for line in docs)
    assert any(line.startswith("Southbank\texpenses.md\tv1\t") for line in docs)
    versions = _cli(data, "versions", "expenses.md", "--collection", "Northwind").stdout.splitlines()
    assert versions[0].startswith("v2\t") and "changed: Mileage" in versions[0] and "first" in versions[1]

    questions = tmp_path / "q.json"
    questions.write_text(
        json.dumps([{"question": "Which purchases need a receipt?", "ground_truth": "Over 75 dollars."}])
    )
    out = tmp_path / "run.json"
    got = _cli(
        data,
        "run",
        "--questions",
        str(questions),
        "--collection",
        "Southbank",
        "--suite",
        "none",
        "--json",
        str(out),
        "--quiet",
    )
    assert got.returncode == 0, got.stderr
    run = json.loads(out.read_text())
    assert run["collection"] == "Southbank" and [d["name"] for d in run["documents"]] == ["expenses.md"]
    assert run["results"][0]["document_versions"] == ["expenses.md v1"]
    answer = run["results"][0]["answer"]
    assert "(expenses.md › Expenses)" in answer and "50 pounds" not in answer  # Southbank only
    bad = _cli(data, "run", "--questions", str(questions), "--collection", "Nowhere", "--suite", "none")
    assert bad.returncode == 2 and "--collection 'Nowhere': no such collection" in bad.stderr


def test_scans_without_tesseract_say_what_to_install(tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scanned_pdf(["Leave policy: 27 days of annual leave."]))
    got = _cli(
        tmp_path / "data", "ingest", str(scan), env={"RAG_TESSERACT_CMD": str(tmp_path / "no-tesseract")}
    )
    assert got.returncode == 2
    assert "scan.pdf: page 1 has no text layer" in got.stderr
    assert "apt-get install tesseract-ocr tesseract-ocr-eng" in got.stderr
