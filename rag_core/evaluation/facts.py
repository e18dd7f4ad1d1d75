"""Key facts: the checkable facts of an expected answer, and whether a text states them.

Deterministic and explainable (no model): :func:`extract_facts` finds the facts that carry an
expected answer's meaning, normalised so that different spellings of the same fact compare equal;
:func:`check_facts` says which of them a text (an answer, or the retrieved passages) states.

What counts as a fact (:class:`FactKind`)
- **quantity** — a number with a unit: ``"twenty working days"`` → ``20 working days``,
  ``"four months"`` → ``4 months``, ``"26 weeks of service"`` → ``26 weeks``, ``"once"`` →
  ``1 times``. Up to two describing words may sit between the number and the unit (``"five
  unused days"``); a range shares its unit (``"between two and five years"`` → ``2 years``,
  ``5 years``). ``working``/``business`` and ``calendar`` days are different units from plain
  days: an expected ``10 working days`` is not stated by ``10 days``, but an expected ``10 days``
  is stated by ``10 working days``.
- **money** — ``"$0.48"`` = ``"48 cents"`` → ``0.48 dollars``; ``£``/``p``/pence → pounds, ``€``
  → euros; ``k``/``million`` multiply.
- **percent** — ``"50%"`` = ``"fifty per cent"`` → ``50%``.
- **time** — ``"10:00"``, ``"3pm"``, ``"7.30 a.m."``, ``"noon"`` → ``HH:MM`` (24 h).
- **date** — ``"30 June"`` = ``"June 30th"`` → ``30 June`` (with the year when one is given; a
  date without a year matches the same day and month in any year).
- **ordinal** — ``"fifteenth week"`` → ``15th week``; a bare ordinal only from "second" up.
- **number** — any other number written in digits (``"the 52"``); it is stated by any fact with
  that value. Page references (``p. 3``) are ignored.
- **term** — a named term: an acronym (``RRSP``), a quoted term, a capitalised name of two or more
  words (``"Employee Assistance Programme"``), a numbered grade/level/band (``grade 8``), or an
  entry of :data:`GLOSSARY` (HR documents, pay rates, schemes, named procedures: ``"medical
  certificate"``, ``"fit note"``, ``"full pay"``). Terms match as whole words, case-insensitively,
  singular = plural, British = American spelling.

Number words are understood (``"twenty-five"``, ``"one hundred"``), and a number repeated in
brackets is read once (``"seven (7) days"`` → ``7 days``).

Which facts are required
- A fact written in brackets in the expected answer (``"Probation (six months) can be extended"``)
  is *background*: listed in the drill-down, not required. An analyst can mark supporting detail
  this way.
- A fact the question already states is background too (the answer need not repeat it).
- Duplicates are listed once.

A text *states* a required fact when it contains an equivalent fact (same kind and normalised
value; see :meth:`FactIndex.states`). The answer key facts metric is ``found / required``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag_core.evaluation.fact_scan import Scanner
from rag_core.evaluation.fact_tokens import Fact, FactKind, number_value, words
from rag_core.evaluation.fact_words import GLOSSARY

__all__ = [
    "GLOSSARY",
    "Fact",
    "FactCheck",
    "FactIndex",
    "FactKind",
    "check_facts",
    "extract_facts",
    "number_value",
]


def _in_brackets(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            if depth == 0:
                start = i
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i))
    return spans


def extract_facts(text: str, *, question: str = "") -> tuple[Fact, ...]:
    """The key facts of ``text`` (an expected answer), in order of appearance, each listed once.

    Facts in brackets, and facts that ``question`` already states, are marked
    :attr:`Fact.background`. ``()`` for a text without facts.
    """
    ex = Scanner(text)
    found = sorted(ex.run(), key=lambda sf: sf[0])
    brackets = _in_brackets(ex.text)
    asked = FactIndex(question) if question.strip() else None
    out: dict[tuple[FactKind, str], Fact] = {}
    for start, fact in found:
        background = any(a < start < b for a, b in brackets) or (asked is not None and asked.states(fact))
        if background:
            fact = replace(fact, background=True)
        key = (fact.kind, fact.key.casefold())
        prev = out.get(key)
        if prev is None or (prev.background and not fact.background):
            out[key] = fact
    # A term inside a longer term of the same text (e.g. "share scheme" in "employee share scheme") is dropped.
    terms = [f for f in out.values() if f.kind == FactKind.TERM]
    for f in terms:
        for g in terms:
            if f is not g and len(g.tokens) > len(f.tokens) and _contains(g.tokens, f.tokens):
                out.pop((f.kind, f.key.casefold()), None)
                break
    return tuple(out.values())


def _contains(hay: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(tuple(hay[i : i + n]) == tuple(needle) for i in range(len(hay) - n + 1))


class FactIndex:
    """The facts and words of a text (an answer, or the retrieved passages), to test facts against."""

    def __init__(self, text: str) -> None:
        ex = Scanner(text or "")
        self.facts = [f for _, f in ex.run()]
        self.words = words(ex.text)
        self._values = {f.value for f in self.facts if f.value is not None}

    def states(self, fact: Fact) -> bool:
        """Whether the text states ``fact`` (see the module docstring for what is equivalent)."""
        if fact.kind == FactKind.TERM:
            key = fact.key.casefold()
            if any(f.kind == FactKind.TERM and f.key.casefold() == key for f in self.facts):
                return True  # e.g. "grade 5" read from "grades 1 to 5"
            return _contains(self.words, fact.tokens or tuple(words(fact.key)))
        if fact.kind == FactKind.NUMBER:
            return fact.value in self._values
        for f in self.facts:
            if f.kind != fact.kind:
                continue
            if fact.kind == FactKind.QUANTITY:
                if (
                    f.value == fact.value
                    and f.unit == fact.unit
                    and (not fact.qualifier or f.qualifier == fact.qualifier)
                ):
                    return True
            elif fact.kind == FactKind.DATE:
                if f.key == fact.key or _same_day(f.key, fact.key):
                    return True
            elif f.key == fact.key:
                return True
        return False


def _same_day(a: str, b: str) -> bool:
    """``"30 June"`` and ``"30 June 2026"`` name the same day (a missing year matches any)."""
    pa, pb = a.split(), b.split()
    return pa[:2] == pb[:2] and (len(pa) == 2 or len(pb) == 2)


@dataclass(frozen=True)
class FactCheck:
    """Which required facts of an expected answer a text states."""

    found: tuple[Fact, ...]
    missing: tuple[Fact, ...]
    background: tuple[Fact, ...]
    """Listed, not required (in brackets, or stated by the question)."""

    @property
    def required(self) -> int:
        return len(self.found) + len(self.missing)

    @property
    def share(self) -> float | None:
        """found / required; None when there is nothing to check."""
        return len(self.found) / self.required if self.required else None

    def to_json(self, where: str) -> dict[str, Any]:
        """The drill-down reason: what was looked for, found and missing (``where``: answer/passages)."""
        return {
            "in": where,
            "found": [f.to_json() for f in self.found],
            "missing": [f.to_json() for f in self.missing],
            "background": [f.to_json() for f in self.background],
        }


def check_facts(facts: Iterable[Fact], text: str | FactIndex) -> FactCheck:
    """Split ``facts`` into found / missing in ``text``; background facts are passed through."""
    index = text if isinstance(text, FactIndex) else FactIndex(text)
    found, missing, background = [], [], []
    for f in facts:
        if f.background:
            background.append(f)
        elif index.states(f):
            found.append(f)
        else:
            missing.append(f)
    return FactCheck(tuple(found), tuple(missing), tuple(background))
