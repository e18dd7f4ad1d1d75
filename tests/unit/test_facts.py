"""Key facts (rag_core.evaluation.facts): extraction, normalisation, background facts, matching."""

from __future__ import annotations

import json

import pytest

from rag_core.evaluation.facts import FactIndex, FactKind, check_facts, extract_facts, number_value


def keys(text: str, **kw: str) -> list[str]:
    return [f.key for f in extract_facts(text, **kw) if not f.background]


def kinds(text: str) -> list[tuple[str, str]]:
    return [(str(f.kind), f.key) for f in extract_facts(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers with units, words = digits
        ("You get twenty working days.", ["20 working days"]),
        ("ten working days", ["10 working days"]),
        ("four months", ["4 months"]),
        ("4 months", ["4 months"]),
        ("one month", ["1 month"]),
        ("twenty-five days", ["25 days"]),
        ("twenty five days", ["25 days"]),
        ("one hundred days", ["100 days"]),
        ("36.5 hours a week", ["36.5 hours"]),
        ("up to five unused days", ["5 days"]),  # a describing word between number and unit
        ("10 keeping-in-touch days", ["10 days", "keeping in touch days"]),
        ("two years' service", ["2 years"]),
        ("a 17-week reference period", ["17 weeks"]),
        ("a four-week settlement period", ["4 weeks"]),
        ("seven calendar days", ["7 calendar days"]),
        ("five business days", ["5 working days"]),  # business days are working days
        ("at least 30 minutes", ["30 minutes"]),
        ("within 24 hrs", ["24 hours"]),
        ("extended once", ["1 times"]),
        ("twice a year", ["2 times"]),
        ("three times your salary", ["3 times"]),
        ("2 or more days", ["2 days"]),
        # ranges share their unit
        ("between two and five years", ["2 years", "5 years"]),
        ("two to five years", ["2 years", "5 years"]),
        ("10-12 weeks", ["10 weeks", "12 weeks"]),
        ("3 or 4 days", ["3 days", "4 days"]),
        ("the last 13 of the 52 weeks", ["13 weeks", "52 weeks"]),
        # the example: a number repeated in brackets is read once
        ("within seven (7) days of the incident", ["7 days"]),
        # money
        ("$0.48 per mile", ["0.48 dollars"]),
        ("48 cents a mile", ["0.48 dollars"]),
        ("0.48 dollars", ["0.48 dollars"]),
        ("£1,200 a year", ["1200 pounds"]),
        ("£30k", ["30000 pounds"]),
        ("$1.2 million", ["1200000 dollars"]),
        ("50p per mile", ["0.5 pounds"]),
        ("USD 40", ["40 dollars"]),
        ("€50", ["50 euros"]),
        ("250 pounds", ["250 pounds"]),
        ("two hundred and fifty pounds", ["250 pounds"]),
        # percentages
        ("50% of salary", ["50%"]),
        ("fifty per cent", ["50%"]),
        ("8 percent", ["8%"]),
        # times of day (24 h)
        ("10:00 to 15:30", ["10:00", "15:30"]),
        ("10am to 3:30pm", ["10:00", "15:30"]),
        ("from 7.30 a.m.", ["07:30"]),
        ("by 9:30am", ["09:30"]),
        ("12pm", ["12:00"]),
        ("noon", ["12:00"]),
        ("midnight", ["00:00"]),
        # dates
        ("by 30 June", ["30 June"]),
        ("by June 30th", ["30 June"]),
        ("the 30th of June", ["30 June"]),
        ("1 April 2026", ["1 April 2026"]),
        ("April 1, 2026", ["1 April 2026"]),
        ("2026-04-01", ["1 April 2026"]),
        # ordinals
        ("the fifteenth week", ["15th week"]),
        ("the 15th week", ["15th week"]),
        ("the first day of absence", ["1st day"]),
        ("on the third occasion", ["3rd occasion"]),
        ("the twenty-first day", ["21st day"]),
        ("a 2nd warning", ["2nd"]),
        ("the first 18 weeks", ["18 weeks"]),  # a position before a number is not a fact
        # bare numbers and numbered terms
        ("13 of the 52", ["13", "52"]),
        ("grade 8 and above", ["grade 8"]),
        ("grades 1 to 5", ["grade 1", "grade 5"]),
        ("level 3", ["level 3"]),
        # named terms
        ("RRSP contributions", ["RRSP"]),
        ("a medical certificate", ["medical certificate"]),
        ("a fit note from a doctor", ["fit note"]),
        ("the Employee Assistance Programme", ["Employee Assistance Programme"]),
        ("contact the People Team", ["People Team"]),
        ("the “Cycle to Work” scheme", ["cycle to work"]),
        ("on full pay", ["full pay"]),
        ("paid at the statutory rate", ["statutory rate"]),
        (
            "stock options, share awards or an employee share scheme",
            ["stock options", "share awards", "employee share scheme"],
        ),
    ],
)
def test_facts_are_extracted_and_normalised(text: str, expected: list[str]) -> None:
    assert keys(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Yes, you can.",
        "Ask your manager.",
        "Monday to Friday",  # weekdays are no names
        "See p. 3 of the handbook",  # page references are citations
        "(northwind_staff_handbook.pdf, p. 2)",
        "Please contact HR.",  # HR names no fact
        "The Director decides.",  # a single capitalised word is no term
        "one of the options",  # number words on their own are no fact
    ],
)
def test_texts_without_key_facts(text: str) -> None:
    assert keys(text) == []


def test_kinds() -> None:
    assert kinds("$5 and 5% and 5 days and 5:00 and 5 May and the 5th week and 5 and RRSP") == [
        ("money", "5 dollars"),
        ("percent", "5%"),
        ("quantity", "5 days"),
        ("time", "05:00"),
        ("date", "5 May"),
        ("ordinal", "5th week"),
        ("number", "5"),
        ("term", "RRSP"),
    ]


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("seven", 7),
        ("twenty", 20),
        ("twenty-five", 25),
        ("one hundred and ten", 110),
        ("two thousand", 2000),
        ("1,200", 1200),
        ("0.48", 0.48),
        ("two and five", None),  # two numbers, not seven
        ("five five", None),
        ("lots", None),
    ],
)
def test_number_words(word: str, value: float | None) -> None:
    assert number_value(word) == value


def test_facts_in_brackets_are_background_and_not_required() -> None:
    facts = extract_facts(
        "Probation (six months, or nine months for grade 8 and above) can be extended once by up to three months."
    )
    assert [f.key for f in facts if f.background] == ["6 months", "9 months", "grade 8"]
    assert [f.key for f in facts if not f.background] == ["1 times", "3 months"]
    check = check_facts(facts, "It may be extended once, by up to three months.")
    assert check.share == 1.0 and [f.key for f in check.background] == ["6 months", "9 months", "grade 8"]


def test_facts_the_question_states_are_background() -> None:
    facts = extract_facts(
        "Staff with 3 years of service give two months of notice.",
        question="I have 3 years of service: what notice?",
    )
    assert [(f.key, f.background) for f in facts] == [("3 years", True), ("2 months", False)]


def test_duplicates_are_listed_once_and_required_wins_over_background() -> None:
    facts = extract_facts(
        "Up to 7 calendar days (7 calendar days is the limit); after 7 calendar days a fit note."
    )
    assert [(f.key, f.background) for f in facts] == [("7 calendar days", False), ("fit note", False)]


@pytest.mark.parametrize(
    ("expected", "answer", "share", "missing"),
    [
        # the examples
        ("You get twenty working days.", "You get ten working days.", 0.0, ["20 working days"]),
        ("You get twenty working days.", "You get 20 working days.", 1.0, []),
        ("Probation is four months.", "Probation lasts 4 months.", 1.0, []),
        ("$0.48 per mile", "0.48 dollars a mile", 1.0, []),
        ("within seven (7) days of the incident", "within 7 days of the incident", 1.0, []),
        # units must agree; a plain expected number of days is stated by working days, not the reverse
        ("10 days", "10 working days", 1.0, []),
        ("10 working days", "10 days", 0.0, ["10 working days"]),
        ("10 working days", "10 weeks", 0.0, ["10 working days"]),
        # dates: a missing year matches any year
        ("by 30 June", "by June 30th", 1.0, []),
        ("by 30 June 2026", "by 30 June", 1.0, []),
        ("by 30 June 2026", "by 30 June 2027", 0.0, ["30 June 2026"]),
        # terms: case, plural, spelling
        ("a medical certificate", "Medical certificates are needed", 1.0, []),
        ("the Employee Assistance Programme", "the employee assistance program", 1.0, []),
        ("RRSP", "your rrsp", 1.0, []),
        ("you need a fit note", "you need a doctor note", 0.0, ["fit note"]),
        ("grades 1 to 5", "staff on grades 1 to 5", 1.0, []),
        # a bare expected number is stated by any fact with that value
        ("the last 13 of the 52", "up to 52 weeks", 0.5, ["13"]),
        # partial: the share of facts stated
        ("10:00 to 15:30, start from 07:30", "Core hours are 10:00 to 15:30.", 2 / 3, ["07:30"]),
    ],
)
def test_check_facts(expected: str, answer: str, share: float, missing: list[str]) -> None:
    check = check_facts(extract_facts(expected), answer)
    assert check.share == pytest.approx(share)
    assert [f.key for f in check.missing] == missing


def test_nothing_to_check_has_no_share() -> None:
    check = check_facts(extract_facts("Yes, you can."), "Yes.")
    assert check.required == 0 and check.share is None


def test_fact_index_is_reusable_and_reports_kinds() -> None:
    index = FactIndex(
        "Core hours are 10:00 to 15:30; the limit is 48 hours; see the Employee Assistance Programme."
    )
    assert {f.kind for f in index.facts} >= {FactKind.TIME, FactKind.QUANTITY}
    for text, stated in [
        ("10:00", True),
        ("48 hours", True),
        ("47 hours", False),
        ("assistance programme", False),
    ]:
        fact = extract_facts(text)[0] if extract_facts(text) else None
        if fact is not None:
            assert index.states(fact) is stated, text


def test_drill_down_json_lists_found_missing_and_background() -> None:
    facts = extract_facts("Twenty working days (or 25 after five years), paid at full pay.")
    detail = check_facts(facts, "You get 20 working days.").to_json("answer")
    assert detail["in"] == "answer"
    assert detail["found"] == [
        {"fact": "20 working days", "kind": "quantity", "as_written": "Twenty working days"}
    ]
    assert [m["fact"] for m in detail["missing"]] == ["full pay"]
    assert [b["fact"] for b in detail["background"]] == ["25", "5 years"]
    json.dumps(detail)  # serialisable as a score's reason
