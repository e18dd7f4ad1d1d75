"""The word lists key-fact extraction reads (:mod:`rag_core.evaluation.facts`): units, number and
ordinal words, months, currencies, and the glossary of named HR terms. Data only."""

from __future__ import annotations

__all__ = [
    "ACRONYM_STOP",
    "CURRENCY_CODES",
    "CURRENCY_SYMBOLS",
    "CURRENCY_WORDS",
    "FREQUENCY",
    "GLOSSARY",
    "MONTHS",
    "MONTH_NAMES",
    "MULTIPLIERS",
    "NUMBERED_TERMS",
    "ONES",
    "ORDINAL_ONES",
    "ORDINAL_TENS",
    "PAGE_WORDS",
    "QUALIFIERS",
    "SPELLING",
    "STOP",
    "SUBUNIT_WORDS",
    "TENS",
    "UNITS",
    "WEEKDAYS",
]


def _table(spec: str) -> dict[str, str]:
    """``"canonical: form form; …"`` → ``{form: canonical}`` (the canonical form included)."""
    out: dict[str, str] = {}
    for entry in spec.split(";"):
        name, _, forms = entry.partition(":")
        name = name.strip()
        if name:
            out.update(dict.fromkeys([name, *forms.split()], name))
    return out


#: Unit words after a number → the unit's name (``"weeks"`` → ``"week"``).
UNITS = _table(
    "day: days; week: weeks wk wks; fortnight: fortnights; month: months; year: years yr yrs;"
    "hour: hours hr hrs; minute: minutes min mins; times: time; occasion: occasions;"
    "session: sessions; mile: miles; km: kilometre kilometres kilometer kilometers; shift: shifts;"
    "instalment: instalments installment installments"
)
#: Words that change what a number of days means (kept in the unit): business days are working days.
QUALIFIERS = _table("working: business; calendar")
#: Currency words and codes after a number → currency.
CURRENCY_WORDS = _table("dollars: dollar usd cad aud; pounds: pound gbp quid; euros: euro eur")
#: Hundredths of a currency → the currency (``"48 cents"`` = 0.48 dollars).
SUBUNIT_WORDS = {"cent": "dollars", "cents": "dollars", "pence": "pounds", "penny": "pounds"}
#: Currency symbols before a number.
CURRENCY_SYMBOLS = {"$": "dollars", "£": "pounds", "€": "euros"}
#: Currency codes before a number (``USD 40``).
CURRENCY_CODES = {"USD": "dollars", "CAD": "dollars", "AUD": "dollars", "GBP": "pounds", "EUR": "euros"}
#: Multipliers after an amount (``£30k``, ``$1.2 million``).
MULTIPLIERS = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "million": 1_000_000}
#: Words that a number names an instance of (``grade 8``) → singular.
NUMBERED_TERMS = _table(
    "grade: grades; level: levels; band: bands; tier: tiers; step: steps; stage: stages; scale: scales;"
    "section: sections; clause: clauses"
)
_ONES_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
#: Number words below twenty.
ONES = {w: i for i, w in enumerate(_ONES_WORDS)}
#: Tens.
TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])
}
_ORDINAL_WORDS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
]
#: Ordinal words below twentieth.
ORDINAL_ONES = {w: i + 1 for i, w in enumerate(_ORDINAL_WORDS)}
#: Ordinal tens.
ORDINAL_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate(
        ["twentieth", "thirtieth", "fortieth", "fiftieth", "sixtieth", "seventieth", "eightieth", "ninetieth"]
    )
}
#: How often, in one word.
FREQUENCY = {"once": 1, "twice": 2, "thrice": 3}
#: Month names in date order.
MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
#: Month names and abbreviations (lower case) → month number.
MONTHS = {
    **{m.lower(): i + 1 for i, m in enumerate(MONTH_NAMES)},
    **{m.lower()[:3]: i + 1 for i, m in enumerate(MONTH_NAMES) if m != "May"},
    "sept": 9,
}
#: Weekdays (never part of a capitalised name).
WEEKDAYS = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
#: Words that never sit between a number and its unit (they end the look-ahead).
STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "to",
        "of",
        "for",
        "per",
        "each",
        "every",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "than",
        "more",
        "less",
        "up",
        "least",
        "most",
        "over",
        "under",
        "after",
        "before",
        "within",
        "during",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "how",
        "if",
        "not",
        "no",
        "nor",
        "but",
        "as",
        "so",
        "such",
        "any",
        "all",
        "some",
        "your",
        "our",
        "their",
        "his",
        "her",
        "my",
        "you",
        "we",
        "they",
        "he",
        "she",
        "i",
        "me",
        "us",
        "them",
        "can",
        "may",
        "must",
        "will",
        "would",
        "should",
        "could",
        "shall",
        "might",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
    ]
)
#: Acronyms that name no fact (units, times of day, generic words, roles).
ACRONYM_STOP = frozenset(
    ["HR", "OK", "AM", "PM", "ID", "FAQ", "NB", "PS", "TBC", "CEO", "UK", "US", "USA", "EU", "PDF"]
)
#: British → American spellings, so either matches the other.
SPELLING = {
    "programme": "program",
    "licence": "license",
    "labour": "labor",
    "organisation": "organization",
    "authorisation": "authorization",
    "centre": "center",
    "behaviour": "behavior",
    "favour": "favor",
}
#: Words before a page number (``p. 3``): such numbers are citations, not facts.
PAGE_WORDS = frozenset({"p", "pp", "page", "pages"})

#: Named HR terms an expected answer's meaning depends on: documents, pay rates and types, schemes
#: and benefits, named leave and procedures. Concept names that answers paraphrase freely ("notice
#: period", "annual leave", "line manager") are deliberately absent. Lower case; matched as whole
#: words, singular = plural.
GLOSSARY: tuple[str, ...] = (
    # documents and forms
    "medical certificate",
    "fit note",
    "sick note",
    "doctor's note",
    "statement of fitness for work",
    "self-certification form",
    "return to work interview",
    "contract of employment",
    "written statement",
    "written reasons",
    # pay rates
    "full pay",
    "half pay",
    "full salary",
    "half salary",
    "basic pay",
    "basic salary",
    "statutory rate",
    "statutory sick pay",
    "statutory maternity pay",
    "statutory paternity pay",
    "statutory adoption pay",
    "statutory redundancy pay",
    "statutory minimum",
    "time and a half",
    "double time",
    "time off in lieu",
    "payment in lieu of notice",
    "pay in lieu of notice",
    "garden leave",
    "minimum wage",
    "living wage",
    # schemes and benefits
    "pension scheme",
    "defined contribution",
    "salary sacrifice",
    "employee share scheme",
    "share scheme",
    "share options",
    "stock options",
    "share awards",
    "bonus plan",
    "bonus scheme",
    "performance bonus",
    "company car",
    "car allowance",
    "mileage allowance",
    "mileage rate",
    "season ticket loan",
    "cycle to work",
    "employee assistance programme",
    "life assurance",
    "death in service",
    "health insurance",
    "private medical insurance",
    "dental insurance",
    "eye test",
    "long service award",
    # named leave and procedures
    "shared parental leave",
    "parental leave",
    "compassionate leave",
    "bereavement leave",
    "dependants leave",
    "carer's leave",
    "jury service",
    "keeping in touch days",
    "flexi day",
    "core hours",
    "bank holiday",
    "public holiday",
    "gross misconduct",
    "verbal warning",
    "written warning",
    "first written warning",
    "final written warning",
    "summary dismissal",
    "occupational health",
    "reasonable adjustments",
    "right to be accompanied",
    "trade union representative",
    "exit interview",
)
