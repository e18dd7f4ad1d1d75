"""What to generate: question kinds, the passages each pair is written from, and input checks.

A :class:`GenerationPlan` is built before anything is sent (so the cost can be estimated from the
real prompts) by :func:`build_plan` from the collection's indexed chunks:

- Passages: chunks of at least :data:`MIN_PASSAGE_WORDS` words (short chunks — headings, a lone
  sentence — make the generic questions users of other generators complain about), falling back
  to any chunk of :data:`MIN_FALLBACK_WORDS` words or more when a document has no long one.
  The analyst may narrow them to some documents or to some sections (a section includes its
  subsections).
- Passages are grouped by (document, section) in document order and taken round-robin over the
  sections, longest chunk of a section first, so the pairs spread over the corpus instead of piling
  on the first pages. Combinations already in the review queue for that kind are used last.
- ``factual`` and ``scenario``: one passage. ``multi_passage``: two passages from two neighbouring
  sections (it needs two sections). ``decline``: no passage; the prompt lists the sections the
  documents do cover (so Claude writes a plausible HR question outside them) and a variant number.
- The number asked for is split evenly over the kinds chosen (the remainder to the first ones).

Raises :class:`~rag_core.errors.InputError` naming the problem: unknown kind, a number outside
1…:data:`MAX_PAIRS`, an unknown collection, document or section, an empty collection,
``multi_passage`` with fewer than two sections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from rag_core.errors import InputError
from rag_core.models import SECTION_SEP, Chunk

__all__ = [
    "MAX_PAIRS",
    "MIN_FALLBACK_WORDS",
    "MIN_PASSAGE_WORDS",
    "GenerationPlan",
    "QuestionKind",
    "Target",
    "build_plan",
    "parse_kinds",
]

#: Most pairs one generation may ask for.
MAX_PAIRS = 200
#: Shortest chunk (words) used as a passage when the document has longer ones.
MIN_PASSAGE_WORDS = 40
#: Shortest chunk (words) used at all.
MIN_FALLBACK_WORDS = 12


class QuestionKind(StrEnum):
    """The kinds of question the analyst can ask for."""

    FACTUAL = "factual"
    """One fact from one passage."""
    MULTI_PASSAGE = "multi_passage"
    """Needs two passages from two sections."""
    SCENARIO = "scenario"
    """"An employee who… — what applies?" from one passage."""
    DECLINE = "decline"
    """A plausible HR question the documents do not answer (expected: decline)."""

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    QuestionKind.FACTUAL: "Factual (one passage)",
    QuestionKind.MULTI_PASSAGE: "Multi-passage (two sections)",
    QuestionKind.SCENARIO: "Scenario (an employee who…)",
    QuestionKind.DECLINE: "Decline (not in the documents)",
}


def parse_kinds(kinds: Iterable[str] | str | None) -> tuple[QuestionKind, ...]:
    """Kinds from names (``"factual,decline"`` or a list; ``-`` or space for ``_``); all when empty.
    Raises :class:`InputError` naming an unknown kind and listing the known ones."""
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    names = [k.strip().lower().replace("-", "_").replace(" ", "_") for k in (kinds or []) if k and k.strip()]
    if not names:
        return tuple(QuestionKind)
    out: list[QuestionKind] = []
    for n in names:
        try:
            kind = QuestionKind(n)
        except ValueError:
            known = ", ".join(k.value for k in QuestionKind)
            raise InputError(f"Unknown question kind {n!r}: choose from {known}.") from None
        if kind not in out:
            out.append(kind)
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """One pair to write: its kind and what it is written from."""

    kind: QuestionKind
    passages: tuple[Chunk, ...] = ()
    """The passages (empty for ``decline``)."""
    variant: int = 0
    """Which decline question this is (different numbers ask for different questions)."""
    topics: tuple[str, ...] = ()
    """``decline``: the sections the documents cover."""


@dataclass(frozen=True)
class GenerationPlan:
    """Everything a generation needs, decided before it starts."""

    collection: str
    targets: tuple[Target, ...]
    versions: dict[str, int] = field(default_factory=dict)
    """Document name → indexed version (stored with each source link)."""
    kinds: tuple[QuestionKind, ...] = ()
    n: int = 0

    def count(self, kind: QuestionKind) -> int:
        return sum(1 for t in self.targets if t.kind == kind)


def _in_sections(chunk: Chunk, sections: Sequence[tuple[str, str]]) -> bool:
    for doc, path in sections:
        if chunk.source == doc and (
            not path or chunk.section == path or chunk.section.startswith(path + SECTION_SEP)
        ):
            return True
    return False


def _words(c: Chunk) -> int:
    return len(c.text.split())


def build_plan(
    *,
    collection: str,
    chunks_by_document: dict[str, list[Chunk]],
    versions: dict[str, int],
    n: int,
    kinds: Sequence[QuestionKind],
    documents: Sequence[str] = (),
    sections: Sequence[tuple[str, str]] = (),
    used: Iterable[tuple[str, tuple[str, ...]]] = (),
    declines_so_far: int = 0,
) -> GenerationPlan:
    """The plan for ``n`` pairs of ``kinds`` from the collection's chunks (see the module docstring).

    ``chunks_by_document``: every indexed document of the collection → its chunks in order.
    ``used``: (kind, chunk ids) combinations already in the review queue (used last).
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_PAIRS:
        raise InputError(f"The number of questions must be between 1 and {MAX_PAIRS} (got {n}).")
    kinds = tuple(kinds) or tuple(QuestionKind)
    if not chunks_by_document:
        raise InputError(
            f"The collection '{collection}' has no documents: upload policy documents into it on the "
            "Documents page first."
        )
    unknown = [d for d in documents if d not in chunks_by_document]
    if unknown:
        raise InputError(
            f"No document named {', '.join(repr(d) for d in unknown)} in the collection '{collection}'. "
            f"Its documents: {', '.join(sorted(chunks_by_document))}."
        )
    chosen_docs = list(documents) or sorted(chunks_by_document)
    pool = [c for d in chosen_docs for c in chunks_by_document[d]]
    if sections:
        known = {(c.source, c.section) for c in pool}
        for doc, path in sections:
            if not any(d == doc and (s == path or s.startswith(path + SECTION_SEP)) for d, s in known):
                raise InputError(
                    f"No section '{path}' in the document '{doc}' of the collection '{collection}'."
                )
        pool = [c for c in pool if _in_sections(c, sections)]
    long = [c for c in pool if _words(c) >= MIN_PASSAGE_WORDS]
    pool = long or [c for c in pool if _words(c) >= MIN_FALLBACK_WORDS]
    if not pool and any(k != QuestionKind.DECLINE for k in kinds):
        raise InputError(
            "The chosen documents or sections hold no passage long enough to write questions from."
        )
    groups: dict[tuple[str, str], list[Chunk]] = {}
    for c in pool:
        groups.setdefault((c.source, c.section), []).append(c)
    ordered = [sorted(g, key=lambda c: (-_words(c), c.position)) for g in groups.values()]
    if QuestionKind.MULTI_PASSAGE in kinds and len(ordered) < 2:
        raise InputError(
            "Multi-passage questions need at least two sections; choose more sections or documents, "
            "or another kind."
        )
    used_set = {(k, tuple(ids)) for k, ids in used}
    per_kind = {k: n // len(kinds) + (1 if i < n % len(kinds) else 0) for i, k in enumerate(kinds)}
    topics = tuple(dict.fromkeys(f"{c.source} › {c.section}" if c.section else c.source for c in pool))
    if not topics:
        topics = tuple(chosen_docs)
    targets: list[Target] = []
    for kind, m in per_kind.items():
        if m == 0:
            continue
        if kind == QuestionKind.DECLINE:
            targets += [Target(kind, (), declines_so_far + i, topics[:80]) for i in range(m)]
            continue
        candidates = _round_robin(ordered, pairs=kind == QuestionKind.MULTI_PASSAGE)
        fresh = [c for c in candidates if (kind.value, tuple(x.id for x in c)) not in used_set]
        stale = [c for c in candidates if (kind.value, tuple(x.id for x in c)) in used_set]
        order = fresh + stale
        targets += [Target(kind, order[i % len(order)]) for i in range(m)]
    return GenerationPlan(
        collection=collection, targets=tuple(targets), versions=dict(versions), kinds=kinds, n=n
    )


def _round_robin(groups: list[list[Chunk]], *, pairs: bool) -> list[tuple[Chunk, ...]]:
    """Every passage (or pair of passages from neighbouring sections) once, sections round-robin."""
    out: list[tuple[Chunk, ...]] = []
    depth = max(len(g) for g in groups)
    for level in range(depth):
        for gi, g in enumerate(groups):
            if level >= len(g):
                continue
            if not pairs:
                out.append((g[level],))
            elif gi + 1 < len(groups):  # with the next section (never the last with the first)
                other = groups[gi + 1]
                out.append((g[level], other[level % len(other)]))
    return out
