"""Text cleaning before chunking: one test per rule, on PDFs generated with the defect (issue 10).

Every PDF here is built in memory (tests/fixtures/pdfs.py) and goes through the real pipeline
(pypdf → cleaning → chunking) via :func:`parse_document`, so a test fails if a rule stops working
on real extraction output, not only on a hand-written string.
"""

from __future__ import annotations

from rag_core.ingest.cleaning import clean_text, dehyphenate, normalise, strip_repeated_edges
from rag_core.ingest.documents import parse_document
from tests.fixtures.pdfs import lines_pdf, page_lines

BODY = [
    "Employees receive twenty-seven days of annual leave each year in addition to public",
    "holidays, and part-time colleagues receive the same benefit in proportion to their",
    "contracted hours, calculated in hours rather than days.",
]


def _text(doc) -> str:
    return "\n".join(c.text for c in doc.chunks)


def test_nfkc_turns_ligatures_into_letters(settings) -> None:
    pdf = lines_pdf([page_lines(["Staff are noti\ufb01ed of \ufb02exitime changes by the of\ufb01ce."])])
    text = _text(parse_document("ligatures.pdf", pdf, settings))
    assert "notified of flexitime changes by the office." in text
    assert "\ufb01" not in text and "\ufb02" not in text
    assert normalise("ﬁve\u00a0days") == "five days"  # no-break space too


def test_running_footer_and_header_repeated_on_most_pages_are_removed(settings) -> None:
    pages = [
        page_lines(
            [f"2.{n} Topic {n}", f"Rule {n} says employees must follow procedure {n} every time."],
            header="Northwind Civic Trust - Staff Handbook",
            footer=f"Policies and Procedures Template - Page {n}",
        )
        for n in range(1, 6)
    ]
    doc = parse_document("footers.pdf", lines_pdf(pages), settings)
    text = _text(doc)
    assert "Template - Page" not in text and "Staff Handbook" not in text
    assert all(f"procedure {n} every time." in text for n in range(1, 6))
    # The rule itself: a line repeated at the page edges goes, a line repeated in the body stays.
    kept = strip_repeated_edges(
        [f"Head\nbody {i}\nshared body line\nmore\nlast {i}\nFoot {i}" for i in range(4)]
    )
    assert all("Head" not in p and "Foot" not in p and "shared body line" in p for p in kept)


def test_bare_page_numbers_are_removed_even_in_short_documents(settings) -> None:
    pages = [
        page_lines([f"Section {n} body text that explains the rule in full."], footer=f"{n}") for n in (1, 2)
    ]
    pages.append(page_lines(["The third page is numbered in words."], footer="Page 3 of 3"))
    text = _text(parse_document("numbers.pdf", lines_pdf(pages), settings))
    assert "Page 3 of 3" not in text
    assert not any(line.strip() in {"1", "2"} for line in text.splitlines())


def test_hyphenated_line_ends_are_joined(settings) -> None:
    body = [
        "Every request for flexible employ-",
        "ment must be made in writing, and part-",
        "time staff may apply after their probation period ends.",
    ]
    text = _text(parse_document("hyphens.pdf", lines_pdf([page_lines(body)]), settings))
    assert "flexible employment must be made in writing, and part-time staff may apply" in text
    assert dehyphenate("Self-\nassessment forms") == "Self-assessment\nforms"


def test_wrapped_lines_are_joined_into_one_paragraph(settings) -> None:
    text = _text(parse_document("wrapped.pdf", lines_pdf([page_lines(BODY)]), settings))
    assert " ".join(BODY) in text.splitlines()


def test_headings_list_items_and_table_rows_stay_on_their_own_lines(settings) -> None:
    body = [
        "4. Sickness Absence",
        "If you are ill you must call your manager before 09:30 on the first morning of",
        "absence. You must also do the following:",
        "\u2022 complete the self-certification form on your first day back",
        "\u2022 send a fit note for absences longer than seven days",
        "Service",
        "Full pay",
        "Half pay",
        "Under 1 year",
        "4 weeks",
        "4 weeks",
    ]
    doc = parse_document("blocks.pdf", lines_pdf([page_lines(body)]), settings)
    lines = _text(doc).splitlines()
    assert lines[0] == "4. Sickness Absence"  # the heading is not glued to the paragraph
    assert lines[1] == (
        "If you are ill you must call your manager before 09:30 on the first morning of absence. "
        "You must also do the following:"
    )
    assert "- complete the self-certification form on your first day back" in lines  # bullet → item
    assert "- send a fit note for absences longer than seven days" in lines
    assert lines[-6:] == [
        "Service",
        "Full pay",
        "Half pay",
        "Under 1 year",
        "4 weeks",
        "4 weeks",
    ]  # table rows
    assert {c.section for c in doc.chunks} == {"4. Sickness Absence"}


def test_two_column_pages_keep_each_column_as_its_own_paragraph(settings) -> None:
    left = [
        "Left column: employees may carry over up to",
        "five days of unused holiday into the next",
        "leave year.",
    ]
    right = [
        "Right column: overtime is paid only when a",
        "budget holder approved it before the extra",
        "hours were worked.",
    ]
    page = page_lines(left, x=72) + page_lines(right, x=320)
    lines = _text(parse_document("columns.pdf", lines_pdf([page]), settings)).splitlines()
    assert lines == [" ".join(left), " ".join(right)]


def test_table_of_contents_is_not_content(settings) -> None:
    contents = page_lines(
        ["Contents", "1. Working Hours", "3", "2. Annual Leave", "4", "3. Probation .......... 5"]
    )
    body = page_lines(["1. Working Hours", "The standard week is 36.5 hours, worked Monday to Friday."])
    doc = parse_document("contents.pdf", lines_pdf([contents, body]), settings)
    assert "Annual Leave" not in _text(doc) and "Probation" not in _text(doc)
    assert [c.section for c in doc.chunks] == ["1. Working Hours"]


def test_pdf_outline_gives_heading_levels(settings) -> None:
    pages = [
        page_lines(["Leave", "Annual leave is 27 days a year for every full-time colleague."]),
        page_lines(["Sick leave", "Call your manager before 09:30 on the first day of absence."]),
        page_lines(["Conduct", "Gross misconduct may lead to dismissal without notice."]),
    ]
    # Bookmarks say "Leave" and "Conduct" are top-level; "Sick leave" sits below "Leave".
    pdf = lines_pdf(pages, outline=[("Leave", 1), ("Conduct", 3)])
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(pdf)), import_outline=False)
    top = writer.add_outline_item("Leave", 0)
    writer.add_outline_item("Sick leave", 1, parent=top)
    writer.add_outline_item("Conduct", 2)
    buf = io.BytesIO()
    writer.write(buf)
    doc = parse_document("outline.pdf", buf.getvalue(), settings.replace(chunk_size=400, chunk_overlap=0))
    sections = [(c.section, c.page) for c in doc.chunks]
    assert ("Leave › Sick leave", 2) in sections or ("Leave", 1) in sections
    assert ("Conduct", 3) in sections
    # A top-level section never shares a chunk with another one.
    assert all(not ("Conduct" in c.text and "Sick leave" in c.text) for c in doc.chunks)


def test_plain_text_gets_the_same_rules_without_page_edges() -> None:
    blocks = clean_text(
        "1. Leave\nStaff get 27 days of leave, and part-\ntime staff get a share.\n- Apply in Compass"
    )
    assert [(b.kind, b.text) for b in blocks] == [
        ("heading", "1. Leave"),
        ("paragraph", "Staff get 27 days of leave, and part-time staff get a share."),
        ("item", "- Apply in Compass"),
    ]
