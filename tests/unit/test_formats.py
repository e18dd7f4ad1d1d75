"""Word, HTML and Markdown files: text in reading order, headings as sections, what is dropped."""

from __future__ import annotations

import io

import pytest

from rag_core.errors import IngestError
from rag_core.ingest.documents import parse_document


def docx_bytes() -> bytes:
    """A Word policy as HR writes them: styled headings, a bold pseudo-heading, bullets, a table,
    and page header/footer text that must not reach the index."""
    import docx
    from docx.shared import Pt

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = "CONFIDENTIAL - Harbour Lane Housing"
    d.sections[0].footer.paragraphs[0].text = "Staff Policies v3 - Page 1"
    d.add_heading("Staff Policies", level=0)
    d.add_heading("1 Holidays", level=1)
    d.add_paragraph("Employees receive 26 days of annual leave plus bank holidays.")
    d.add_heading("1.1 Carry over", level=2)
    d.add_paragraph("Up to three days may be carried into the next year.")
    d.add_paragraph("Book holiday through the HR system.", style="List Bullet")
    d.add_paragraph("Give at least two weeks of notice.", style="List Bullet")
    d.add_heading("2 Expenses", level=1)
    run = d.add_paragraph().add_run("Mileage")
    run.bold = True
    run.font.size = Pt(12)
    d.add_paragraph("Travel between sites is paid at 45p per mile.")
    table = d.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Band", "Hotel", "Meals"], strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells, ["Standard", "120 pounds", "30 pounds"], strict=True):
        cell.text = text
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_docx_paragraphs_headings_lists_and_tables_in_order(settings) -> None:
    doc = parse_document("policies.docx", docx_bytes(), settings.replace(chunk_size=200, chunk_overlap=0))
    text = "\n".join(c.text for c in doc.chunks)
    assert doc.format == "docx" and doc.pages == 1
    assert "CONFIDENTIAL" not in text and "Page 1" not in text  # header and footer dropped
    assert "- Book holiday through the HR system." in text.splitlines()  # list style → item
    assert "Band | Hotel | Meals" in text and "Standard | 120 pounds | 30 pounds" in text  # table rows
    assert text.index("26 days") < text.index("three days") < text.index("45p per mile")
    sections = {c.section for c in doc.chunks}
    # The title and "Heading 1" are both top level; a bold paragraph is a heading below the styles.
    assert {"1 Holidays", "1 Holidays › 1.1 Carry over", "2 Expenses › Mileage"} <= sections
    assert all(c.page == 0 for c in doc.chunks)  # Word files have no pages: citations name the section
    assert doc.chunks[0].citation == "policies.docx › 1 Holidays"
    assert ", p." not in doc.chunks[0].citation


def test_chunks_never_straddle_top_level_sections(settings) -> None:
    doc = parse_document("policies.docx", docx_bytes(), settings)  # 900 chars would fit everything
    holidays = [c for c in doc.chunks if "1 Holidays" in c.section]
    expenses = [c for c in doc.chunks if "2 Expenses" in c.section]
    assert holidays and expenses
    assert all("45p" not in c.text for c in holidays) and all("26 days" not in c.text for c in expenses)


HTML = b"""<!doctype html><html><head><title>Intranet</title><style>p { color: red }</style>
<script>var leak = "do not index me";</script></head>
<body><nav><a href="/">Home</a> | <a href="/hr">HR</a></nav>
<h1>Sickness absence</h1><p>Call your manager before 09:00 on the first day.</p>
<h2>Fit notes</h2><p>Absences longer than seven days need a fit note.</p>
<ul><li>Upload it to the portal</li><li>Keep the original</li></ul>
<table><tr><th>Service</th><th>Full pay</th></tr><tr><td>First year</td><td>1 month</td></tr></table>
<h1>Holidays</h1><p>Employees receive 26 days of annual leave &amp; bank holidays.</p>
<noscript>Enable JavaScript</noscript></body></html>"""


def test_html_keeps_the_page_text_and_drops_scripts_styles_and_navigation(settings) -> None:
    doc = parse_document("sickness.html", HTML, settings)
    text = "\n".join(c.text for c in doc.chunks)
    for dropped in ("do not index me", "color: red", "Home", "Enable JavaScript", "Intranet"):
        assert dropped not in text
    lines = text.splitlines()
    assert (
        "- Upload it to the portal" in lines
        and "Service | Full pay" in lines
        and "First year | 1 month" in lines
    )
    assert "Employees receive 26 days of annual leave & bank holidays." in lines
    assert [c.section for c in doc.chunks] == ["Sickness absence", "Holidays"]  # one chunk per <h1>
    assert parse_document("page.htm", HTML, settings).format == "htm"


def test_markdown_headings_are_sections(settings) -> None:
    md = b"# Handbook\n\n## Leave\n\nStaff get **27 days**.\n\n- Apply in Compass\n\n## Pay\n\n| Grade | Rate |\n|---|---|\n| 1 | 10 |\n"
    doc = parse_document("handbook.md", md, settings)
    [chunk] = doc.chunks  # "Leave" and "Pay" are both below "Handbook": one chunk fits them
    assert chunk.section == "Handbook › Leave"  # the first section with text names it
    assert chunk.text.splitlines() == [
        "Handbook",
        "Leave",
        "Staff get 27 days.",
        "- Apply in Compass",
        "Pay",
        "Grade | Rate",
        "1 | 10",
    ]


@pytest.mark.parametrize(
    ("name", "data", "phrase"),
    [
        ("policy.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old word", "Save As"),
        ("policy.odt", b"PK\x03\x04", "LibreOffice"),
        ("broken.docx", b"PK\x03\x04 truncated zip", "damaged"),
        ("notzip.docx", b"just text", "damaged"),
    ],
)
def test_unsupported_and_damaged_word_files_say_what_to_do(
    settings, name: str, data: bytes, phrase: str
) -> None:
    with pytest.raises(IngestError) as err:
        parse_document(name, data, settings)
    assert str(err.value).startswith(f"{name}:") and phrase in str(err.value)
