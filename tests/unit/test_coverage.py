"""Issue 14, coverage and stale questions: linking order, sections of a passage, the stale rules,
the report's aggregation, and the store's link states (no index: a fake retriever)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag_core.coverage.links import (
    DocSections,
    compute_links,
    content_sections,
    line_sections,
    link_item,
)
from rag_core.coverage.report import build_report
from rag_core.coverage.stale import PASSAGE_CHANGED, SECTION_REMOVED, check_link
from rag_core.models import Chunk, DocumentInfo, QAItem, ScoredChunk, SourceLink
from rag_core.storage import HistoryStore
from rag_core.storage.sources import LinkState
from rag_core.text import passage_fingerprint
from rag_core.vocab import Expected

DOC = "handbook.pdf"
SECTIONS = ("", "1 Leave", "1 Leave › 1.1 Annual leave", "1 Leave › 1.2 Sick leave", "2 Pay")


def _digest(*lines: str) -> str:
    return hashlib.sha256("\n".join(" ".join(x.split()) for x in lines).encode()).hexdigest()[:16]


def chunk(i: int, text: str, section: str) -> Chunk:
    return Chunk(
        id=f"abc:{i}", text=text, source=DOC, page=i + 1, position=i, doc_sha256="abc", section=section
    )


ANNUAL = chunk(
    1,
    "1 Leave\n1.1 Annual leave\nYou receive 27 days of paid holiday a year.\n"
    "1.2 Sick leave\nSelf-certify up to seven calendar days; then a fit note.",
    "1 Leave › 1.1 Annual leave",
)
PAY = chunk(2, "2 Pay\nSalaries are paid monthly with a 5% pension contribution.", "2 Pay")
INTRO = chunk(0, "Staff handbook, edition 4.", "")
DOCS = {DOC: DocSections(DOC, 1, SECTIONS)}


class FakeRetriever:
    """Returns the given chunks for every query, closest first; records the queries."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = list(chunks)
        self.queries: list[str] = []

    def count(self, collection: str | None = None) -> int:
        return len(self.chunks)

    def query(
        self, questions: Sequence[str], top_k: int, collection: str | None = None
    ) -> list[list[ScoredChunk]]:
        self.queries.extend(questions)
        return [[ScoredChunk(c, 0.9 - 0.1 * i) for i, c in enumerate(self.chunks[:top_k])] for _ in questions]


def test_passage_fingerprint_ignores_spacing_case_and_compatibility_forms() -> None:
    assert passage_fingerprint("The  ﬁt note\n is NEEDED ") == passage_fingerprint("the fit note is needed")
    assert passage_fingerprint("7 days") != passage_fingerprint("8 days")
    assert len(passage_fingerprint("x")) == 64


def test_content_sections_leave_out_headings_without_text() -> None:
    digests = {
        "": _digest("Staff handbook"),
        "1 Leave": _digest("1 Leave"),  # a part title directly followed by its first subsection
        "1 Leave › 1.1 Annual leave": _digest("1.1 Annual leave", "27 days"),
        "2 Pay": _digest("2 Pay", "Salaries"),
    }
    assert content_sections(digests) == ["", "1 Leave › 1.1 Annual leave", "2 Pay"]


def test_a_passage_running_into_the_next_section_is_split_by_its_heading_lines() -> None:
    got = line_sections(ANNUAL.text, ANNUAL.section, SECTIONS)
    assert [s for _, s in got] == [
        "1 Leave › 1.1 Annual leave",
        "1 Leave › 1.1 Annual leave",
        "1 Leave › 1.1 Annual leave",
        "1 Leave › 1.2 Sick leave",
        "1 Leave › 1.2 Sick leave",
    ]
    assert {s for _, s in line_sections("x\ny", "unknown", SECTIONS)} == {"unknown"}


def test_key_facts_link_to_the_section_whose_lines_state_them() -> None:
    item = QAItem("When do I need a fit note?", "After seven calendar days you need a fit note.")
    links = link_item(item, [ScoredChunk(PAY, 0.9), ScoredChunk(ANNUAL, 0.5)], DOCS, "All documents")
    assert [(lk.origin, lk.section, lk.chunk_id) for lk in links] == [
        ("facts", "1 Leave › 1.2 Sick leave", "abc:1")
    ]
    assert links[0].fingerprint == passage_fingerprint(ANNUAL.text) and links[0].version == 1


def test_without_key_facts_in_any_passage_the_best_match_is_linked() -> None:
    item = QAItem(
        "Is there a staff canteen?", "Yes, on the ground floor."
    )  # no checkable fact found anywhere
    links = link_item(item, [ScoredChunk(PAY, 0.8), ScoredChunk(INTRO, 0.7)], DOCS, "All documents")
    assert [(lk.origin, lk.section) for lk in links] == [("matched", "2 Pay")]


def test_questions_to_decline_are_never_linked_and_facts_need_half_in_the_first_passage() -> None:
    decline = QAItem("Company cars?", "Not covered.", Expected.DECLINE)
    assert link_item(decline, [ScoredChunk(PAY, 0.9)], DOCS, "c") == []
    # Four facts, the only passage states one of them: not "holding its key facts" → best match.
    item = QAItem("Pay?", "27 days, 30 June, 15:30 and 50% of pay.")
    assert [lk.origin for lk in link_item(item, [ScoredChunk(ANNUAL, 0.9)], DOCS, "c")] == ["matched"]


def test_facts_spread_over_two_passages_link_both() -> None:
    item = QAItem(
        "Holiday and sick notes?",
        "27 days of holiday; a fit note after seven calendar days; a 5% pension contribution.",
    )
    links = link_item(item, [ScoredChunk(ANNUAL, 0.9), ScoredChunk(PAY, 0.8)], DOCS, "c")
    assert [lk.chunk_id for lk in links] == ["abc:1", "abc:2"] and {lk.origin for lk in links} == {"facts"}


def test_compute_links_asks_once_for_all_questions_with_question_and_answer() -> None:
    retriever = FakeRetriever([ANNUAL, PAY])
    items = [
        QAItem("How much holiday?", "27 days a year."),
        QAItem("Company cars?", "Not covered.", Expected.DECLINE),
    ]
    got = compute_links(items, retriever, "c", DOCS)
    assert retriever.queries == ["How much holiday?\n27 days a year."]
    assert got["Company cars?"] == [] and got["How much holiday?"][0].section == "1 Leave › 1.1 Annual leave"
    assert compute_links(items, FakeRetriever([]), "c", DOCS) == {
        "How much holiday?": [],
        "Company cars?": [],
    }


# --- the stale rules ---------------------------------------------------------------------------
def _link(c: Chunk, section: str | None = None, origin: str = "facts") -> SourceLink:
    return SourceLink(
        "c", DOC, 1, section or c.section, c.page, c.id, c.text, passage_fingerprint(c.text), origin
    )


OLD = {"2 Pay": "p1", "1 Leave › 1.1 Annual leave": "a1"}


def test_an_identical_passage_is_unchanged_and_follows_its_new_chunk_id() -> None:
    moved = chunk(7, "2  Pay\nSalaries are PAID monthly with a 5% pension contribution. ", "2 Pay")
    got = check_link(_link(PAY), [INTRO, moved], OLD, {"2 Pay": "p2"})
    assert not got.stale and got.chunk_id == "abc:7"


def test_an_unchanged_section_keeps_its_link_when_only_the_chunking_moved() -> None:
    rechunked = chunk(3, "2 Pay\nSalaries are paid", "2 Pay")
    assert not check_link(_link(PAY), [rechunked], OLD, {"2 Pay": "p1"}).stale


def test_a_changed_section_flags_the_link_with_the_new_passage_beside_it() -> None:
    new = chunk(2, "2 Pay\nSalaries are paid on the 25th of the month.", "2 Pay")
    got = check_link(_link(PAY), [INTRO, new], OLD, {"2 Pay": "p2"})
    assert got.stale and got.reason == PASSAGE_CHANGED and "25th" in (got.new_passage or "")


def test_a_removed_section_flags_the_link_with_no_new_passage() -> None:
    got = check_link(_link(PAY), [INTRO], OLD, {"": "x"})
    assert got.stale and got.reason == SECTION_REMOVED and got.new_passage == ""


def test_unknown_old_sections_fall_back_to_the_passage_itself() -> None:
    rechunked = chunk(3, "2 Pay\nSalaries are paid", "2 Pay")
    assert check_link(_link(PAY), [rechunked], None, {"2 Pay": "p1"}).stale


# --- the report ---------------------------------------------------------------------------------
def _state(question: str, link: SourceLink, stale: bool = False) -> LinkState:
    return LinkState(
        "S", question, 0, link, stale, PASSAGE_CHANGED if stale else "", "" if stale else None, None, 1
    )


def test_report_counts_questions_per_section_with_latest_correctness_and_untested_sections() -> None:
    items = [
        QAItem("q1", "27 days"),
        QAItem("q2", "paid monthly"),
        QAItem("q3", "also pay"),
        QAItem("q4", "not covered", Expected.DECLINE),
        QAItem("q5", "nothing found"),
    ]
    links = [
        _state("q1", _link(ANNUAL)),
        _state("q2", _link(PAY)),
        _state("q3", _link(PAY), stale=True),
        _state("q9", _link(INTRO)),  # no longer in the set: ignored
        LinkState(
            "S", "q1", 1, SourceLink("other", DOC, 1, "", 1, "x", "t", "f", "facts"), False, "", None, None, 1
        ),
    ]
    sections = {DOC: ["", "1 Leave › 1.1 Annual leave", "2 Pay"]}
    report = build_report("S", "c", items, links, sections, {"q1": True, "q2": False, "q3": None}, 4)
    by = {s.section: s for s in report.sections}
    assert by["2 Pay"].questions == (2, 3) and by["2 Pay"].correct == 0 and by["2 Pay"].in_run == 2
    assert by["2 Pay"].stale == 1 and by["2 Pay"].score == 0.0
    assert by["1 Leave › 1.1 Annual leave"].score == 1.0
    assert (report.covered, report.total) == (2, 3)
    assert [s.label for s in report.untested] == ["(before the first heading)"]
    origins = {q.number: q.origin for q in report.questions}
    assert origins == {1: "facts", 2: "facts", 3: "facts", 4: "decline", 5: "none"}
    assert [q.number for q in report.stale_questions] == [3]
    data = report.to_json()
    assert data["sections_covered"] == 2 and data["sections_total"] == 3 and data["stale_questions"] == [3]
    assert data["sections"][2]["last_score"] == 0.0 and data["sections"][0]["last_score"] is None


def test_a_question_with_one_stale_link_marks_only_that_section_stale() -> None:
    items = [QAItem("q1", "27 days, paid monthly")]
    links = [
        LinkState("S", "q1", 0, _link(ANNUAL), False, "", None, None, 1),
        LinkState("S", "q1", 1, _link(PAY), True, PASSAGE_CHANGED, "new", "t", 2),
    ]
    sections = {DOC: ["1 Leave › 1.1 Annual leave", "2 Pay"]}
    report = build_report("S", "c", items, links, sections, {}, None)
    by = {s.section: s.stale for s in report.sections}
    assert by == {"1 Leave › 1.1 Annual leave": 0, "2 Pay": 1}
    assert [q.number for q in report.stale_questions] == [1]  # the question itself needs review


# --- the store ----------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(tmp_path / "h.sqlite3")
    yield s
    s.close()


def test_store_keeps_check_states_clears_them_and_moves_them_with_a_rename(store: HistoryStore) -> None:
    store.save_question_set("S", [QAItem("q1", "27 days"), QAItem("q2", "pay")])
    store.set_question_sources("S", "q1", [_link(ANNUAL), _link(PAY)])
    store.record_link_check(
        "S", "q1", 1, stale=True, checked_version=2, reason=PASSAGE_CHANGED, new_passage="new", stale_at="t"
    )
    states = store.link_states("S")
    assert [(s.position, s.stale, s.checked_version) for s in states] == [(0, False, None), (1, True, 2)]
    assert (
        states[1].new_passage == "new" and states[1].reason == PASSAGE_CHANGED and states[1].stale_at == "t"
    )
    assert [s.question for s in store.link_states(stale_only=True, document=DOC)] == ["q1"]
    assert store.move_question_sources("S", "T") == 2 and store.link_states("S") == []
    assert store.clear_stale("T", "q1") == 1 and not any(s.stale for s in store.link_states("T"))
    store.record_link_check("T", "q1", 0, stale=False, checked_version=3, chunk_id="abc:9")
    assert store.link_states("T")[0].link.chunk_id == "abc:9"


def test_store_reads_the_sections_of_one_document_version_in_order(store: HistoryStore) -> None:
    info = DocumentInfo(DOC, "sha1", 1, 2, 10, "2026-01-01")
    store.record_document(info, sections={"b": "1", "a": "2"})
    assert list(store.version_sections("All documents", DOC, 1) or {}) == ["b", "a"]
    assert store.version_sections("All documents", DOC, 2) is None
