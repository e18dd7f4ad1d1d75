"""The coverage report: per document × section, the questions that test it, their latest
correctness and stale flags, and the sections no question tests. Pure aggregation, no I/O.

Rules
- Sections are the *content* sections of each document's current version, in document order
  (:func:`~rag_core.coverage.links.content_sections`). A question tests a section when one of its
  links points there; a question linked to two sections counts in both.
- "Latest correctness" comes from the latest run of the set on the collection (the issue-12
  decision, :func:`~rag_core.runs.correctness.correctness`, verdicts first): per section, the
  questions that run answered correctly out of those of the section it contained. A section's
  score is None when the run had none of its questions (or there is no run).
- A section is *untested* when no question links to it. Links to a section or document that is no
  longer current count for the question (it shows as stale) but not for any current section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.coverage.links import section_label
from rag_core.storage.sources import LinkState

__all__ = ["CoverageReport", "QuestionCoverage", "SectionCoverage", "build_report"]


@dataclass(frozen=True)
class SectionCoverage:
    """One section of one document."""

    document: str
    section: str
    """Section path ('' = text before the first heading; shown with :func:`section_label`)."""
    questions: tuple[int, ...] = ()
    """1-based numbers of the questions that test it, in set order."""
    correct: int = 0
    """Of those the latest run contained: answered correctly."""
    in_run: int = 0
    """Of those: contained in the latest run."""
    stale: int = 0
    """Of those: flagged stale (a new version changed their passage)."""

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def score(self) -> float | None:
        """correct / in_run; None when the latest run had none of its questions."""
        return self.correct / self.in_run if self.in_run else None

    @property
    def label(self) -> str:
        return section_label(self.section)

    def to_json(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "section": self.section,
            "label": self.label,
            "questions": self.n_questions,
            "question_numbers": list(self.questions),
            "last_score": None if self.score is None else round(self.score, 4),
            "correct": self.correct,
            "in_last_run": self.in_run,
            "stale": self.stale,
        }


@dataclass(frozen=True)
class QuestionCoverage:
    """One question and where it is grounded."""

    number: int
    """1-based position in the set."""
    question: str
    expected: str
    origin: str
    """How it is linked: ``"generated"``, ``"facts"``, ``"matched"``, ``"none"`` (no passage found) or
    ``"decline"`` (expected to be declined: not linked)."""
    sections: tuple[tuple[str, str], ...] = ()
    """``(document, section)`` of its links, each once."""
    correct: bool | None = None
    """Latest run's decision (None: unchecked, or not in that run)."""
    stale: bool = False
    stale_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "question": self.question,
            "expected": self.expected,
            "origin": self.origin,
            "sections": [{"document": d, "section": s} for d, s in self.sections],
            "correct": self.correct,
            "stale": self.stale,
            "stale_reason": self.stale_reason,
        }


@dataclass(frozen=True)
class CoverageReport:
    """Coverage of one question set on one collection."""

    question_set: str
    collection: str
    run_id: int | None
    """The latest run of the set on the collection (its correctness is shown); None when none."""
    sections: tuple[SectionCoverage, ...] = ()
    questions: tuple[QuestionCoverage, ...] = field(default_factory=tuple)

    @property
    def covered(self) -> int:
        return sum(1 for s in self.sections if s.n_questions)

    @property
    def total(self) -> int:
        return len(self.sections)

    @property
    def untested(self) -> list[SectionCoverage]:
        return [s for s in self.sections if not s.n_questions]

    @property
    def stale_questions(self) -> list[QuestionCoverage]:
        return [q for q in self.questions if q.stale]

    def documents(self) -> list[str]:
        return list(dict.fromkeys(s.document for s in self.sections))

    def to_json(self) -> dict[str, Any]:
        return {
            "question_set": self.question_set,
            "collection": self.collection,
            "run_id": self.run_id,
            "sections_covered": self.covered,
            "sections_total": self.total,
            "sections": [s.to_json() for s in self.sections],
            "untested": [
                {"document": s.document, "section": s.section, "label": s.label} for s in self.untested
            ],
            "questions": [q.to_json() for q in self.questions],
            "stale_questions": [q.number for q in self.stale_questions],
        }


def build_report(
    question_set: str,
    collection: str,
    items: Sequence[Any],
    links: Sequence[LinkState],
    document_sections: Mapping[str, Sequence[str]],
    correct: Mapping[str, bool | None],
    run_id: int | None,
) -> CoverageReport:
    """Aggregate (see the module rules). ``items`` are the set's :class:`~rag_core.models.QAItem`
    in order; ``links`` the set's stored links (any collection: only this one's count);
    ``document_sections`` the content sections per current document in order; ``correct`` the
    latest run's decision per question text (questions not in that run absent)."""
    by_question: dict[str, list[LinkState]] = {}
    for ls in links:
        if ls.link.collection == collection:
            by_question.setdefault(ls.question, []).append(ls)
    cells: dict[tuple[str, str], dict[str, Any]] = {
        (doc, sec): {"q": [], "correct": 0, "in_run": 0, "stale": 0}
        for doc, secs in document_sections.items()
        for sec in secs
    }
    questions = []
    for n, it in enumerate(items, 1):
        mine = by_question.get(it.question, [])
        expected = str(getattr(it, "expected", "answer"))
        if mine:
            origin = mine[0].link.origin
        else:
            origin = "decline" if expected == "decline" else "none"
        where = tuple(dict.fromkeys((ls.link.document, ls.link.section) for ls in mine))
        stale = [ls for ls in mine if ls.stale]
        stale_where = {(ls.link.document, ls.link.section) for ls in stale}
        decided = correct.get(it.question)
        questions.append(
            QuestionCoverage(
                number=n,
                question=it.question,
                expected=expected,
                origin=origin,
                sections=where,
                correct=decided,
                stale=bool(stale),
                stale_reason=stale[0].reason if stale else "",
            )
        )
        for key in where:
            cell = cells.get(key)
            if cell is None:
                continue
            cell["q"].append(n)
            if it.question in correct:
                cell["in_run"] += 1
                cell["correct"] += int(bool(decided))
            cell["stale"] += int(key in stale_where)  # only the sections whose passage changed
    sections = tuple(
        SectionCoverage(doc, sec, tuple(c["q"]), c["correct"], c["in_run"], c["stale"])
        for (doc, sec), c in cells.items()
    )
    return CoverageReport(question_set, collection, run_id, sections, tuple(questions))
