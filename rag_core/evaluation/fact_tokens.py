"""Tokens, number words and normalised forms under :mod:`rag_core.evaluation.facts` (internal).

:class:`FactKind` and :class:`Fact` are the records; the rest turns text into tokens and reads
numbers written in digits or words (``"twenty-five"``), units, times and dates.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rag_core.evaluation.fact_words import (
    GLOSSARY,
    MONTH_NAMES,
    MONTHS,
    ONES,
    ORDINAL_ONES,
    ORDINAL_TENS,
    QUALIFIERS,
    SPELLING,
    STOP,
    TENS,
    UNITS,
)

__all__ = ["Fact", "FactKind", "number_value", "words"]


class FactKind(StrEnum):
    """What kind of fact it is (see the module docstring)."""

    QUANTITY = "quantity"
    MONEY = "money"
    PERCENT = "percent"
    TIME = "time"
    DATE = "date"
    ORDINAL = "ordinal"
    NUMBER = "number"
    TERM = "term"


@dataclass(frozen=True)
class Fact:
    """One fact found in a text."""

    kind: FactKind
    """What kind of fact it is."""
    key: str
    """Normalised form, shown to the analyst and compared: ``"20 working days"``, ``"0.48 dollars"``."""
    text: str
    """As written in the text, e.g. ``"twenty working days"``."""
    background: bool = False
    """In brackets in the expected answer, or stated by the question: listed, not required."""
    value: float | None = field(default=None, compare=False)
    """The number (quantity, money, percent, ordinal, number), else None."""
    unit: str = field(default="", compare=False)
    """Unit of a quantity (``"day"``) or currency of money (``"dollars"``)."""
    qualifier: str = field(default="", compare=False)
    """``"working"`` or ``"calendar"`` for days, else ``""``."""
    tokens: tuple[str, ...] = field(default=(), compare=False)
    """A term's normalised words (how it is matched)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fact": self.key, "kind": str(self.kind)}
        if self.text and self.text.casefold() != self.key.casefold():
            out["as_written"] = self.text
        return out


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------
_TOKEN_RE = re.compile(
    r"""
    (?P<iso>\b\d{4}-\d{2}-\d{2}\b)
  | (?P<clock>\b\d{1,2}:\d{2}(?:\s*(?:a\.?m\.?|p\.?m\.?)(?![a-z])|\b))
  | (?P<ampm>\b\d{1,2}(?:\.\d{2})?\s*(?:a\.?m\.?|p\.?m\.?)(?![a-z]))
  | (?P<cur>[$£€])
  | (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<suffix>st|nd|rd|th|k|m|p|%)?(?![A-Za-z0-9])
  | (?P<word>[A-Za-z]+(?:['’][A-Za-z]+)*(?:-[A-Za-z]+(?:['’][A-Za-z]+)*)*)
  | (?P<pct>%)
  | (?P<punct>[^\sA-Za-z0-9])
    """,
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    """iso, clock, ampm, cur, num, word, pct, punct."""
    text: str
    start: int
    end: int
    suffix: str = ""
    sentence_start: bool = False


def tokens(text: str) -> list[Tok]:
    out: list[Tok] = []
    boundary = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "punct"
        if kind == "suffix":  # pragma: no cover - suffix never ends a match on its own
            kind = "num"
        if m.group("num") is not None:
            kind = "num"
        tok = Tok(
            kind, m.group("num") if kind == "num" else m.group(0), m.start(), m.end(), m.group("suffix") or ""
        )
        tok.sentence_start = boundary
        out.append(tok)
        if kind == "punct":
            boundary = tok.text in ".!?:;\n•" or (boundary and tok.text in "\"'“‘(-–—*")
        else:
            boundary = False
    return out


def prepare(text: str) -> str:
    """NFKC (ligatures, non-breaking spaces), dashes as ``-``, ``seven (7)`` read once."""
    text = unicodedata.normalize("NFKC", text or "")
    text = text.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", " - ")
    text = text.replace("per cent", "percent").replace("Per cent", "Percent")

    def once(m: re.Match[str]) -> str:
        value = number_value(m.group(1))
        return m.group(2) if value is not None and value == float(m.group(2)) else m.group(0)

    text = re.sub(r"\b([A-Za-z]+(?:-[A-Za-z]+)?)\s*\(\s*(\d+)\s*\)", once, text)

    def split(m: re.Match[str]) -> str:  # "four-week period" → "four week period"
        if number_value(m.group(1)) is not None and m.group(2).lower() in UNITS:
            return f"{m.group(1)} {m.group(2)}"
        return m.group(0)

    return re.sub(r"\b([A-Za-z]+)-([A-Za-z]+)\b", split, text)


def number_value(word: str) -> float | None:
    """The value of a number written in words or digits (``"twenty-five"`` → 25.0), else None."""
    w = word.strip().lower().replace(",", "")
    try:
        return float(w)
    except ValueError:
        pass
    parts = [p for p in re.split(r"[-\s]+", w) if p]
    if not parts:
        return None
    # Grammar: [ones] hundred [and] [tens] [ones] ... — "two and five" is two numbers, not seven.
    total, current = 0, 0
    prev = ""  # "ones", "tens", "scale", "and"
    for p in parts:
        if p == "and":
            if prev != "scale":
                return None
            prev = "and"
        elif p in ONES:
            if prev == "ones" or (prev == "tens" and ONES[p] >= 10) or (prev == "tens" and ONES[p] == 0):
                return None
            current += ONES[p]
            prev = "ones"
        elif p in TENS:
            if prev in ("ones", "tens"):
                return None
            current += TENS[p]
            prev = "tens"
        elif p == "hundred":
            if prev not in ("", "ones") or current >= 10:
                return None
            current = (current or 1) * 100
            prev = "scale"
        elif p == "thousand":
            if prev == "and":
                return None
            total += (current or 1) * 1000
            current = 0
            prev = "scale"
        else:
            return None
    if prev == "and":
        return None
    return float(total + current)


def ordinal_value(word: str) -> int | None:
    w = word.lower()
    if w in ORDINAL_ONES:
        return ORDINAL_ONES[w]
    if w in ORDINAL_TENS:
        return ORDINAL_TENS[w]
    head, _, tail = w.partition("-")
    if head in TENS and tail in ORDINAL_ONES:
        return TENS[head] + ORDINAL_ONES[tail]
    return None


def fmt(v: float) -> str:
    if v == int(v):
        return str(int(v))
    return f"{v:.4f}".rstrip("0").rstrip(".")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def norm_word(w: str) -> str:
    """A word as terms compare it: lower case, no possessive, American spelling, singular."""
    w = w.lower().replace("'", "").replace("’", "")
    w = SPELLING.get(w, w)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def words(text: str) -> list[str]:
    """Normalised words and numbers of a text (hyphenated words split), for term matching."""
    return [
        norm_word(w)
        for w in re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:\.\d+)?", unicodedata.normalize("NFKC", text))
    ]


GLOSSARY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    sorted(((g, tuple(words(g))) for g in GLOSSARY), key=lambda gw: -len(gw[1]))
)


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------
@dataclass
class Num:
    value: float
    i: int
    """Index of its first token."""
    j: int
    """Index after its last token."""
    word: bool


def read_number(toks: list[Tok], i: int) -> Num | None:
    """A number starting at token i: digits, or number words (``twenty five``, ``one hundred and ten``)."""
    t = toks[i]
    if t.kind == "num" and t.suffix in ("", "k", "m"):
        v = float(t.text.replace(",", ""))
        return Num(v, i, i + 1, False)
    if t.kind != "word":
        return None
    words: list[str] = []
    j = i
    best: Num | None = None
    while j < len(toks) and toks[j].kind == "word":
        w = toks[j].text.lower()
        if w == "and" and words and j + 1 < len(toks) and number_value(toks[j + 1].text) is not None:
            words.append(w)
            j += 1
            continue
        candidate = [*words, w]
        value = number_value(" ".join(candidate))
        if value is None:
            break
        words = candidate
        j += 1
        best = Num(value, i, j, True)
    return best


def next_word(toks: list[Tok], j: int) -> int | None:
    """Index of the next word token from j, skipping hyphens; None when punctuation intervenes."""
    while j < len(toks) and toks[j].kind == "punct" and toks[j].text == "-":
        j += 1
    return j if j < len(toks) and toks[j].kind == "word" else None


def unit_after(toks: list[Tok], j: int) -> tuple[str, str, int] | None:
    """``(unit, qualifier, index after the unit)`` when a unit follows within two describing words."""
    qualifier = ""
    fillers = 0
    k: int | None = j
    # "2 or more days", "10 or fewer days": the comparison does not separate number and unit.
    if (
        k is not None
        and k + 1 < len(toks)
        and toks[k].text.lower() in ("or", "and")
        and toks[k + 1].text.lower() in ("more", "fewer", "less", "over", "above", "under")
    ):
        k += 2
    while True:
        k = next_word(toks, k) if k is not None else None
        if k is None:
            return None
        w = toks[k].text.lower().rstrip("'").replace("'s", "")
        if w.endswith("s'"):
            w = w[:-1]
        if w in UNITS:
            return UNITS[w], qualifier, k + 1
        if w in QUALIFIERS:
            qualifier = QUALIFIERS[w]
        elif w in STOP or number_value(w) is not None or w in MONTHS or fillers >= 2:
            return None
        else:
            fillers += 1
        k += 1


def quantity(value: float, unit: str, qualifier: str) -> str:
    if unit == "times":
        return f"{fmt(value)} times"
    name = f"{qualifier} {unit}" if qualifier and unit == "day" else unit
    return f"{fmt(value)} {name}{'' if value == 1 else 's'}"


def clock(hour: int, minute: int, ampm: str) -> str | None:
    ampm = ampm.replace(".", "").lower().strip()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    if not (0 <= hour <= 24 and 0 <= minute < 60):
        return None
    return f"{hour:02d}:{minute:02d}"


def date_key(day: int, month: int, year: int | None) -> str:
    base = f"{day} {MONTH_NAMES[month - 1]}"
    return f"{base} {year}" if year else base
