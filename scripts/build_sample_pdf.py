"""Build the sample policy PDF (data/sample/northwind_staff_handbook.pdf) from handbook.md.

Usage::

    python scripts/build_sample_pdf.py [--src data/sample/handbook.md] [--out PATH]

The handbook is fictional and written for this project. The output is deterministic: the
creation date is fixed, so rebuilding from the same markdown with the same fpdf2 version gives
identical bytes (the file id is a hash of the content and that date).

Supported markdown (all the handbook needs): ``# title``, ``## heading``, paragraphs separated by
blank lines, ``1. item`` and ``- item`` list lines. Core PDF fonts only cover latin-1, so common
typographic characters are transliterated; anything else stops the build with the line number.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = ROOT / "data" / "sample" / "handbook.md"
DEFAULT_OUT = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"

#: Fixed so that rebuilding yields byte-identical output.
CREATION_DATE = datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC)
DOC_TITLE = "Northwind Civic Trust - Staff Handbook"
FOOTER_TEXT = "Northwind Civic Trust - Staff Handbook, Edition 4"

FONT = "Helvetica"
BODY_SIZE = 11
BODY_LINE_H = 6.0
HEADING_SIZE = 15
TITLE_SIZE = 22

#: Typographic characters that core fonts cannot show, mapped to plain equivalents.
TRANSLITERATE = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": " - ",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2022": "-",
}


@dataclass(frozen=True)
class Block:
    """One rendered element: kind is "title", "heading", "para" or "item"."""

    kind: str
    text: str


def to_latin1(text: str, line_no: int) -> str:
    """Transliterate typographic characters; raise ValueError naming the line otherwise."""
    for src, dst in TRANSLITERATE.items():
        text = text.replace(src, dst)
    text = re.sub(r" {2,}", " ", text)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise ValueError(
            f"line {line_no}: character {bad!r} (U+{ord(bad):04X}) is not available in the core PDF fonts"
        ) from None
    return text


def parse_markdown(source: str) -> list[Block]:
    """Split the handbook markdown into blocks (paragraph lines are joined with spaces)."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", " ".join(para)))
            para.clear()

    for no, raw in enumerate(source.splitlines(), start=1):
        line = to_latin1(raw.strip(), no)
        if not line:
            flush()
        elif line.startswith("## "):
            flush()
            blocks.append(Block("heading", line[3:].strip()))
        elif line.startswith("# "):
            flush()
            blocks.append(Block("title", line[2:].strip()))
        elif line.startswith("- ") or (line[:1].isdigit() and ". " in line[:4]):
            flush()
            blocks.append(Block("item", line))
        else:
            para.append(line)
    flush()
    return blocks


class HandbookPDF(FPDF):
    """A4 portrait with a footer showing the handbook name and page numbers."""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, "", 9)
        self.set_text_color(90, 90, 90)
        self.cell(0, 8, f"{FOOTER_TEXT}  |  Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def build_pdf(blocks: list[Block]) -> bytes:
    """Render blocks to PDF bytes. Each numbered policy section starts on a new page."""
    pdf = HandbookPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(CREATION_DATE)
    pdf.set_title(DOC_TITLE)
    pdf.set_author("Northwind Civic Trust People Team (fictional sample)")
    pdf.set_subject("Staff policy handbook (fictional sample data)")
    pdf.set_creator("scripts/build_sample_pdf.py")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.alias_nb_pages()
    pdf.add_page()

    for block in blocks:
        if block.kind == "title":
            pdf.set_font(FONT, "B", TITLE_SIZE)
            pdf.multi_cell(0, 11, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(4)
        elif block.kind == "heading":
            numbered = block.text[:1].isdigit()
            if numbered and pdf.get_y() > pdf.t_margin + 1:
                pdf.add_page()
            else:
                pdf.ln(3)
            pdf.set_font(FONT, "B", HEADING_SIZE)
            pdf.multi_cell(0, 8, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2)
        elif block.kind == "item":
            pdf.set_font(FONT, "", BODY_SIZE)
            pdf.set_x(pdf.l_margin + 6)
            pdf.multi_cell(0, BODY_LINE_H, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(0.5)
        else:
            pdf.set_font(FONT, "", BODY_SIZE)
            pdf.multi_cell(0, BODY_LINE_H, block.text, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
    return bytes(pdf.output())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="handbook markdown")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PDF to write")
    args = parser.parse_args(argv)
    try:
        blocks = parse_markdown(args.src.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {args.src}: {exc}", file=sys.stderr)
        return 1
    data = build_pdf(blocks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
