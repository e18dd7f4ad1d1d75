"""Typed records shared by every module. Inputs are frozen dataclasses; nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag_core.vocab import Expected

#: The collection a document joins when none is chosen (and the collection runs use by default).
DEFAULT_COLLECTION = "All documents"
#: Joins the headings of a section path: ``"4 Leave › 4.2 Sick leave"``.
SECTION_SEP = " › "
#: Longest collection name accepted.
MAX_COLLECTION_CHARS = 80


def citation(source: str, section: str = "", page: int = 0) -> str:
    """``"file › section, p. N"``; the section and the page are left out when unknown (page 0 =
    a format without pages)."""
    text = source + (f"{SECTION_SEP}{section}" if section else "")
    return f"{text}, p. {page}" if page else text


@dataclass(frozen=True)
class Chunk:
    """One piece of a policy document, as stored in the index."""

    id: str
    """Stable id: ``"<doc sha256[:16]>:<position>"``."""
    text: str
    """The chunk's text."""
    source: str
    """File name of the document it came from (no directories)."""
    page: int
    """1-based page number it starts on; 0 for formats without pages (DOCX, HTML, TXT, MD)."""
    position: int
    """0-based index of the chunk within its document."""
    doc_sha256: str
    """sha256 of the whole document file's bytes."""
    section: str = ""
    """Heading path the chunk sits under (``"4 Leave › 4.2 Sick leave"``); ``""`` when none."""
    ocr: bool = False
    """True when (some of) its text was read by OCR from a scanned page."""

    def metadata(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "page": self.page,
            "position": self.position,
            "doc_sha256": self.doc_sha256,
            "section": self.section,
            "ocr": self.ocr,
        }

    @property
    def citation(self) -> str:
        """``"file › section, p. N"`` (see :func:`citation`)."""
        return citation(self.source, self.section, self.page)

    @property
    def embed_text(self) -> str:
        """What is embedded: the section path, then the text (so a chunk in the middle of a
        section is still found by its section's name)."""
        return f"{self.section}\n{self.text}" if self.section else self.text


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk returned by retrieval with its similarity to the question."""

    chunk: Chunk
    """The retrieved chunk."""
    score: float
    """Cosine similarity in [0, 1] (1 = identical direction), higher is more relevant."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.chunk.id,
            "text": self.chunk.text,
            "source": self.chunk.source,
            "page": self.chunk.page,
            "position": self.chunk.position,
            "section": self.chunk.section,
            "doc_sha256": self.chunk.doc_sha256,
            "ocr": self.chunk.ocr,
            "score": round(float(self.score), 4),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoredChunk:
        return cls(
            Chunk(
                id=d["id"],
                text=d["text"],
                source=d["source"],
                page=int(d["page"]),
                position=int(d.get("position", 0)),
                doc_sha256=d.get("doc_sha256", ""),
                section=str(d.get("section") or ""),
                ocr=bool(d.get("ocr", False)),
            ),
            float(d.get("score", 0.0)),
        )


@dataclass(frozen=True)
class ParsedDocument:
    """A document read from disk/upload and split into chunks, ready to index."""

    name: str
    """Safe file name (no directories)."""
    sha256: str
    """sha256 of the file's bytes: unchanged bytes ⇒ re-adding is a no-op."""
    size_bytes: int
    """File size in bytes."""
    pages: int
    """Number of pages (1 for formats without pages)."""
    chunks: tuple[Chunk, ...]
    """The chunks, in document order."""
    format: str = ""
    """File type, e.g. ``"pdf"``, ``"docx"``."""
    ocr_pages: int = 0
    """Pages whose text was read by OCR."""
    sections: dict[str, str] = field(default_factory=dict)
    """Section path → fingerprint of its text (what changed between two versions)."""


@dataclass(frozen=True)
class DocumentInfo:
    """A document as listed from the index."""

    name: str
    sha256: str
    pages: int
    chunks: int
    size_bytes: int
    added_at: str
    """ISO-8601 UTC timestamp of when it was (last) indexed."""
    collection: str = DEFAULT_COLLECTION
    """The collection the document belongs to."""
    version: int = 1
    """1 for the first upload, +1 each time changed content is uploaded under the same name."""
    ocr_pages: int = 0
    """Pages whose text was read by OCR."""
    format: str = ""
    """File type, e.g. ``"pdf"``."""


@dataclass(frozen=True)
class DocumentVersion:
    """One version of a document, as recorded when it was indexed."""

    collection: str
    name: str
    version: int
    """1, 2, … in upload order."""
    sha256: str
    """sha256 of that version's bytes."""
    added_at: str
    """ISO-8601 UTC timestamp of when that version was indexed."""
    chunks: int
    pages: int
    size_bytes: int
    ocr_pages: int = 0
    sections_changed: tuple[str, ...] = ()
    """Sections added, removed or edited compared with the previous version (``()`` for v1)."""


@dataclass(frozen=True)
class QAItem:
    """One row of a question set."""

    question: str
    """The question an employee might ask."""
    ground_truth: str
    """The expected answer, written by the analyst ('' when unknown)."""
    expected: Expected = Expected.ANSWER
    """Whether the assistant should answer the question or decline it (the policy does not
    cover it). Strings are accepted and converted; an unknown value raises ``ValueError``."""

    def __post_init__(self) -> None:
        if not isinstance(self.expected, Expected):
            object.__setattr__(self, "expected", Expected(str(self.expected).strip().lower() or "answer"))


@dataclass(frozen=True)
class SourceLink:
    """One passage that supports a question's expected answer (issue 14: generation, coverage, stale flags).

    ``origin`` says how the link was made: ``"generated"`` (the passage Claude wrote the pair from),
    ``"facts"`` (the passage holding the expected answer's key facts) or ``"matched"`` (the
    best-matching passage). ``passage`` is the passage's text when linked, kept so a changed policy
    can be shown side by side with the old text; ``fingerprint`` is the sha256 of its normalised text.
    """

    collection: str
    document: str
    version: int
    section: str
    page: int | None
    chunk_id: str
    passage: str
    fingerprint: str
    origin: str = "generated"


@dataclass(frozen=True)
class Answer:
    """What an answerer produced for one question."""

    text: str
    """The answer text shown to the analyst."""
    model: str
    """``"offline-extractive"`` or the Claude model that wrote it."""
    input_tokens: int = 0
    """Prompt tokens billed (0 offline)."""
    output_tokens: int = 0
    """Completion tokens billed (0 offline)."""
    covered: bool = True
    """False when the answerer said the policy does not cover the question."""


@dataclass(frozen=True)
class MetricScore:
    """One metric's verdict for one answer. Failures are explicit, never a 0 or NaN."""

    metric: str
    """Metric name, e.g. ``"faithfulness"``."""
    value: float | None
    """Score in [0, 1]; ``None`` when the metric failed."""
    reason: str | None = None
    """Explanation the metric gave (e.g. faithfulness verdicts), if any."""
    error: str | None = None
    """Why the metric failed, when ``value`` is None."""
    stdev: float | None = None
    """Standard deviation across judge repeats (None for a single judgement)."""
    cached: bool = False
    """True when the value came from the judge cache."""
    skipped: bool = False
    """True when the metric does not apply to this question (e.g. a reference-based metric on a
    question expected to be declined, or no key facts to check): ``value`` is None, ``reason``
    says why, and it is neither a score nor a failure."""

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def settled(self) -> bool:
        """Scored or skipped: nothing left to do for it (a resume redoes the rest)."""
        return self.value is not None or self.skipped


@dataclass
class RequestTiming:
    """One request in the timeline of a run (drawn as a Gantt bar)."""

    index: int
    """Position of the question in the run."""
    phase: str
    """``"generation"``, ``"generation-sequential"`` (compare-mode baseline) or ``"evaluation"``."""
    label: str
    """Short label (question text or metric name)."""
    start: float
    """Epoch seconds when the first attempt started."""
    end: float
    """Epoch seconds when the last attempt ended."""
    attempts: int
    status: str
    """``"ok"``, ``"error"`` or ``"cancelled"``."""
    throttled_s: float = 0.0
    """Time spent waiting in backoff / retry-after, apart from request latency."""
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedPair:
    """A question / expected-answer pair Claude wrote from the documents, in the review queue (issue 14)."""

    id: int
    """Queue id (0 before it is stored)."""
    job: str
    """The generation job that wrote it."""
    collection: str
    """The document collection it was written from."""
    kind: str
    """``factual`` | ``multi_passage`` | ``scenario`` | ``decline`` (:class:`rag_core.authoring.QuestionKind`)."""
    question: str
    expected_answer: str
    """The expected answer (for a decline: why the documents do not cover it)."""
    expected: Expected = Expected.ANSWER
    """``decline`` for decline pairs, else ``answer``."""
    sources: tuple[SourceLink, ...] = ()
    """The passages it was written from (for a decline: none)."""
    flags: tuple[str, ...] = ()
    """Warnings for the reviewer, e.g. ``"general_knowledge"`` (answerable without the documents)."""
    model: str = ""
    """The Claude model that wrote it."""
    status: str = "pending"
    """``pending`` (waiting for review) | ``accepted`` | ``rejected``."""
    question_set: str | None = None
    """The question set it was accepted into."""
    created_at: str = ""
    reviewed_at: str | None = None
