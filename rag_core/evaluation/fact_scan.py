"""The scanner under :mod:`rag_core.evaluation.facts` (internal): the passes that find
quantities, money, percentages, times, dates, ordinals, numbers and named terms in a text.

Use :func:`rag_core.evaluation.facts.extract_facts` and :class:`~rag_core.evaluation.facts.FactIndex`;
the rules are documented there.
"""

from __future__ import annotations

import re
from typing import Any

from rag_core.evaluation.fact_tokens import (
    GLOSSARY_WORDS,
    WORD_RE,
    Fact,
    FactKind,
    Num,
    clock,
    date_key,
    fmt,
    next_word,
    norm_word,
    ordinal,
    ordinal_value,
    prepare,
    quantity,
    read_number,
    tokens,
    unit_after,
    words,
)
from rag_core.evaluation.fact_words import (
    ACRONYM_STOP,
    CURRENCY_CODES,
    CURRENCY_SYMBOLS,
    CURRENCY_WORDS,
    FREQUENCY,
    MONTHS,
    MULTIPLIERS,
    NUMBERED_TERMS,
    PAGE_WORDS,
    STOP,
    SUBUNIT_WORDS,
    UNITS,
    WEEKDAYS,
)

__all__ = ["Scanner"]


class Scanner:
    def __init__(self, text: str) -> None:
        self.text = prepare(text)
        self.toks = tokens(self.text)
        self.used = [False] * len(self.toks)
        self.facts: list[tuple[int, Fact]] = []  # (start char, fact)

    # -- helpers ---------------------------------------------------------------------------------
    def span(self, i: int, j: int) -> str:
        return self.text[self.toks[i].start : self.toks[j - 1].end]

    def add(self, i: int, j: int, fact_kwargs: dict[str, Any]) -> None:
        for k in range(i, j):
            self.used[k] = True
        self.facts.append((self.toks[i].start, Fact(text=self.span(i, j), **fact_kwargs)))

    def word(self, k: int) -> str:
        return self.toks[k].text.lower() if 0 <= k < len(self.toks) and self.toks[k].kind == "word" else ""

    # -- passes ----------------------------------------------------------------------------------
    def run(self) -> list[tuple[int, Fact]]:
        self.times_and_dates()
        self.money_and_percent()
        self.quantities()
        self.ordinals()
        self.numbered_terms()
        self.bare_numbers()
        self.terms()
        return self.facts

    def times_and_dates(self) -> None:
        toks = self.toks
        for i, t in enumerate(toks):
            if self.used[i]:
                continue
            if t.kind == "iso":
                y, mo, d = (int(x) for x in t.text.split("-"))
                if 1 <= mo <= 12 and 1 <= d <= 31:
                    self.add(i, i + 1, {"kind": FactKind.DATE, "key": date_key(d, mo, y)})
            elif t.kind in ("clock", "ampm"):
                m = re.match(r"(\d{1,2})(?:[:.](\d{2}))?\s*(.*)$", t.text)
                if m:
                    key = clock(int(m.group(1)), int(m.group(2) or 0), m.group(3) or "")
                    if key:
                        self.add(i, i + 1, {"kind": FactKind.TIME, "key": key})
            elif t.kind == "word" and t.text.lower() in ("noon", "midday", "midnight"):
                self.add(
                    i,
                    i + 1,
                    {"kind": FactKind.TIME, "key": "00:00" if t.text.lower() == "midnight" else "12:00"},
                )
            elif t.kind == "num" and t.suffix in ("", "st", "nd", "rd", "th") and t.text.isdigit():
                self._day_month(i)
            elif t.kind == "word" and t.text.lower() in MONTHS and t.text[0].isupper():
                self._month_day(i)

    def _year_at(self, k: int) -> tuple[int | None, int]:
        """A year at token k (optionally after a comma): (year, index after it)."""
        if k < len(self.toks) and self.toks[k].kind == "punct" and self.toks[k].text == ",":
            k += 1
        if (
            k < len(self.toks)
            and self.toks[k].kind == "num"
            and re.fullmatch(r"(19|20)\d\d", self.toks[k].text)
        ):
            return int(self.toks[k].text), k + 1
        return None, k

    def _day_month(self, i: int) -> None:
        day = int(self.toks[i].text)
        k = i + 1
        if self.word(k) == "of":
            k += 1
        w = self.toks[k].text if k < len(self.toks) and self.toks[k].kind == "word" else ""
        if 1 <= day <= 31 and w.lower() in MONTHS and w[0].isupper():
            year, end = self._year_at(k + 1)
            self.add(
                i,
                end if year else k + 1,
                {"kind": FactKind.DATE, "key": date_key(day, MONTHS[w.lower()], year)},
            )

    def _month_day(self, i: int) -> None:
        k = i + 1
        if k < len(self.toks) and self.toks[k].kind == "num" and self.toks[k].text.isdigit():
            t = self.toks[k]
            if (
                t.suffix in ("", "st", "nd", "rd", "th")
                and 1 <= int(t.text) <= 31
                and not re.fullmatch(r"(19|20)\d\d", t.text)
            ):
                year, end = self._year_at(k + 1)
                key = date_key(int(t.text), MONTHS[self.toks[i].text.lower()], year)
                self.add(i, end if year else k + 1, {"kind": FactKind.DATE, "key": key})

    def money_and_percent(self) -> None:
        toks = self.toks
        for i, t in enumerate(toks):
            if self.used[i]:
                continue
            currency = None
            if t.kind == "cur":
                currency = CURRENCY_SYMBOLS[t.text]
            elif t.kind == "word" and t.text in CURRENCY_CODES:
                currency = CURRENCY_CODES[t.text]
            if currency and i + 1 < len(toks) and toks[i + 1].kind == "num":
                n = toks[i + 1]
                value = float(n.text.replace(",", ""))
                end = i + 2
                mult = MULTIPLIERS.get(n.suffix.lower()) if n.suffix in ("k", "m") else None
                if mult is None and self.word(end) in ("k", "thousand", "million", "m"):
                    mult = MULTIPLIERS[self.word(end)]
                    end += 1
                value *= mult or 1
                self.add(
                    i,
                    end,
                    {
                        "kind": FactKind.MONEY,
                        "key": f"{fmt(value)} {currency}",
                        "value": value,
                        "unit": currency,
                    },
                )
                continue
            if t.kind not in ("num", "word"):
                continue
            num = read_number(toks, i) if not (t.kind == "num" and t.suffix == "%") else None
            if t.kind == "num" and t.suffix in ("%", "p"):
                value = float(t.text.replace(",", ""))
                if t.suffix == "%":
                    self.add(i, i + 1, {"kind": FactKind.PERCENT, "key": f"{fmt(value)}%", "value": value})
                else:
                    v = value / 100
                    self.add(
                        i,
                        i + 1,
                        {"kind": FactKind.MONEY, "key": f"{fmt(v)} pounds", "value": v, "unit": "pounds"},
                    )
                continue
            if num is None:
                continue
            j = num.j
            nxt = toks[j] if j < len(toks) else None
            if nxt is not None and (
                nxt.kind == "pct" or (nxt.kind == "word" and nxt.text.lower() == "percent")
            ):
                self.add(
                    i, j + 1, {"kind": FactKind.PERCENT, "key": f"{fmt(num.value)}%", "value": num.value}
                )
                continue
            w = self.word(j)
            mult = 1
            if w in ("thousand", "million") and self.word(j + 1) in CURRENCY_WORDS:
                mult = MULTIPLIERS[w]
                j += 1
                w = self.word(j)
            if w in CURRENCY_WORDS:
                v = num.value * mult
                cur = CURRENCY_WORDS[w]
                self.add(
                    i, j + 1, {"kind": FactKind.MONEY, "key": f"{fmt(v)} {cur}", "value": v, "unit": cur}
                )
            elif w in SUBUNIT_WORDS:
                v = num.value / 100
                cur = SUBUNIT_WORDS[w]
                self.add(
                    i, j + 1, {"kind": FactKind.MONEY, "key": f"{fmt(v)} {cur}", "value": v, "unit": cur}
                )

    def quantities(self) -> None:
        toks = self.toks
        pending: list[Num] = []  # numbers of a range waiting for the unit ("two and five years")
        i = 0
        while i < len(toks):
            t = toks[i]
            if self.used[i]:
                pending = []
                i += 1
                continue
            if t.kind == "word" and t.text.lower() in FREQUENCY:
                v = float(FREQUENCY[t.text.lower()])
                self.add(
                    i,
                    i + 1,
                    {
                        "kind": FactKind.QUANTITY,
                        "key": quantity(v, "times", ""),
                        "value": v,
                        "unit": "times",
                    },
                )
                i += 1
                continue
            num = read_number(toks, i) if t.kind in ("num", "word") else None
            if num is None or (t.kind == "num" and self._is_page_number(i)):
                if not (t.kind == "word" and t.text.lower() in ("between", "from")):
                    pending = []
                i += 1
                continue
            unit = unit_after(toks, num.j)
            if unit is not None:
                name, qualifier, end = unit
                for p in pending:
                    self.add(p.i, p.j, self._qty(p.value, name, qualifier))
                pending = []
                self.add(num.i, end, self._qty(num.value, name, qualifier))
                i = end
                continue
            # A range: "two to five years", "10-12 weeks", "two and five years", "3 or 4 days";
            # a part: "the last 13 of the 52 weeks".
            k = num.j
            if k < len(toks) and toks[k].text.lower() in ("to", "and", "or", "-", "of") and k + 1 < len(toks):
                nxt = k + 2 if toks[k].text.lower() == "of" and self.word(k + 1) == "the" else k + 1
                following = read_number(toks, nxt) if nxt < len(toks) else None
                if following is not None:
                    pending.append(num)
                    i = nxt
                    continue
            pending = []
            i = num.j

    @staticmethod
    def _qty(value: float, unit: str, qualifier: str) -> dict[str, Any]:
        return {
            "kind": FactKind.QUANTITY,
            "key": quantity(value, unit, qualifier),
            "value": value,
            "unit": unit,
            "qualifier": qualifier if unit == "day" else "",
        }

    def _is_page_number(self, i: int) -> bool:
        k = i - 1
        if k >= 0 and self.toks[k].kind == "punct" and self.toks[k].text == ".":
            k -= 1
        return k >= 0 and self.toks[k].kind == "word" and self.toks[k].text.lower() in PAGE_WORDS

    def ordinals(self) -> None:
        toks = self.toks
        for i, t in enumerate(toks):
            if self.used[i]:
                continue
            n: int | None = None
            if t.kind == "num" and t.suffix in ("st", "nd", "rd", "th"):
                n = int(t.text)
            elif t.kind == "word":
                n = ordinal_value(t.text)
            if n is None:
                continue
            k = next_word(toks, i + 1)
            # "the first 18 weeks": a position in a list of numbers, not a fact of its own.
            if i + 1 < len(toks) and toks[i + 1].kind == "num":
                continue
            unit = None
            for kk in (k, next_word(toks, k + 1) if k is not None else None):
                if kk is not None and toks[kk].text.lower() in UNITS:
                    unit = UNITS[toks[kk].text.lower()]
                    end = kk + 1
                    break
                if kk is None or toks[kk].text.lower() in STOP:
                    break
            if unit is not None:
                name = "time" if unit == "times" else unit
                self.add(
                    i,
                    end,
                    {
                        "kind": FactKind.ORDINAL,
                        "key": f"{ordinal(n)} {name}",
                        "value": float(n),
                        "unit": unit,
                    },
                )
            elif n >= 2 and (t.kind == "num" or t.text.lower() not in ("second",) or k is not None):
                self.add(i, i + 1, {"kind": FactKind.ORDINAL, "key": ordinal(n), "value": float(n)})

    def numbered_terms(self) -> None:
        toks = self.toks
        for i, t in enumerate(toks):
            if t.kind != "word" or t.text.lower() not in NUMBERED_TERMS:
                continue
            name = NUMBERED_TERMS[t.text.lower()]
            k = i + 1
            while k < len(toks) and toks[k].kind == "num" and not toks[k].suffix and not self.used[k]:
                self.used[k] = True
                key = f"{name} {toks[k].text}"
                self.facts.append(
                    (
                        t.start,
                        Fact(FactKind.TERM, key, f"{t.text} {toks[k].text}", tokens=(name, toks[k].text)),
                    )
                )
                k += 1
                if k + 1 < len(toks) and toks[k].text.lower() in ("to", "and", "or", "-", ","):
                    k += 1

    def bare_numbers(self) -> None:
        for i, t in enumerate(self.toks):
            if self.used[i] or t.kind != "num" or t.suffix or self._is_page_number(i):
                continue
            # "1.2.3" section numbers: a number right after "<number>." is part of the same label.
            if i > 1 and self.toks[i - 1].text == "." and self.toks[i - 2].kind == "num":
                continue
            v = float(t.text.replace(",", ""))
            self.add(i, i + 1, {"kind": FactKind.NUMBER, "key": fmt(v), "value": v})

    def terms(self) -> None:
        toks = self.toks
        # acronyms
        for i, t in enumerate(toks):
            if self.used[i] or t.kind != "word":
                continue
            word = t.text.rstrip("s") if t.text.endswith("s") and t.text[:-1].isupper() else t.text
            if (
                len(word) >= 2
                and word.isupper()
                and word not in ACRONYM_STOP
                and word not in CURRENCY_CODES
                and not re.fullmatch(r"[IVXLC]+", word)
            ):
                self.add(i, i + 1, {"kind": FactKind.TERM, "key": word, "tokens": (norm_word(word),)})
        # quoted terms
        for m in re.finditer(
            r"[\"“]([^\"”]{2,60})[\"”]|(?<![A-Za-z])'([^'\n]{2,60})'(?![A-Za-z])", self.text
        ):
            phrase = (m.group(1) or m.group(2) or "").strip()
            phrase_words = words(phrase)
            if 1 <= len(phrase_words) <= 6:
                self.facts.append(
                    (m.start(), Fact(FactKind.TERM, phrase.lower(), phrase, tokens=tuple(phrase_words)))
                )
        # capitalised names of two or more words (not at a sentence start, no months/weekdays)
        i = 0
        while i < len(toks):
            run: list[int] = []
            k = i
            while k < len(toks) and toks[k].kind == "word" and not self.used[k]:
                w = toks[k].text
                lw = w.lower()
                if w[0].isupper() and lw not in MONTHS and lw not in WEEKDAYS and not w.isupper():
                    run.append(k)
                    k += 1
                elif run and lw in ("of", "for", "to", "and", "the", "in", "on") and k + 1 < len(toks):
                    nxt = toks[k + 1].text
                    if toks[k + 1].kind == "word" and nxt[0].isupper() and nxt.lower() not in MONTHS:
                        k += 1
                        continue
                    break
                else:
                    break
            if run and toks[run[0]].sentence_start:
                run = run[1:]
            if len(run) >= 2:
                first, last = run[0], run[-1]
                phrase = self.span(first, last + 1)
                self.facts.append(
                    (toks[first].start, Fact(FactKind.TERM, phrase, phrase, tokens=tuple(words(phrase))))
                )
            i = max(k, i + 1)
        # glossary (longest entries first; a shorter entry inside a longer match is not repeated)
        spans = [(norm_word(w.group(0)), w.start(), w.end()) for w in WORD_RE.finditer(self.text)]
        norm = [w for w, _, _ in spans]
        taken = [False] * len(norm)
        for entry, gwords in GLOSSARY_WORDS:
            n = len(gwords)
            for s in range(len(norm) - n + 1):
                if tuple(norm[s : s + n]) == gwords and not any(taken[s : s + n]):
                    for x in range(s, s + n):
                        taken[x] = True
                    start, end = spans[s][1], spans[s + n - 1][2]
                    self.facts.append(
                        (start, Fact(FactKind.TERM, entry, self.text[start:end], tokens=gwords))
                    )
