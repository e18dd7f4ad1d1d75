"""The headline ("N of M answers correct"), per-question correctness and the decline counts
(rag_core.runs.correctness, rag_core.summary), their JSON, and the expected column of question files."""

from __future__ import annotations

import json

import pytest

from rag_core.errors import InputError
from rag_core.models import MetricScore
from rag_core.questions import parse_questions
from rag_core.reporting.export import questions_csv, questions_json
from rag_core.runs.correctness import correctness, decline_stats, headline
from rag_core.storage import ResultRecord, VerdictRecord
from rag_core.summary import DeclineStats, Headline, RunSummary
from rag_core.vocab import Expected, Verdict, metric, run_metrics, score_suite


def result(
    i: int, *, answer: str | None = "an answer", expected: str = "answer", **scores: float | None
) -> ResultRecord:
    return ResultRecord(
        run_id=1,
        index=i,
        question=f"Q{i}?",
        ground_truth="gt",
        answer=answer,
        contexts=[],
        error=None if answer is not None else "failed",
        error_kind=None,
        latency_s=None,
        attempts=1,
        input_tokens=0,
        output_tokens=0,
        model=None,
        scores={
            k: MetricScore(k, v, skipped=v is None, reason="skipped" if v is None else None)
            for k, v in scores.items()
        },
        expected=Expected(expected),
    )


def verdict(i: int, v: str, inherited_from: int | None = None) -> VerdictRecord:
    return VerdictRecord(1, i, Verdict(v), "", "2026-12-01T00:00:00+00:00", inherited_from)


ALL_FACTS = result(0, answer_key_facts=1.0, decline_behaviour=1.0)
SOME_FACTS = result(1, answer_key_facts=0.5, decline_behaviour=1.0)
DECLINED_OK = result(2, expected="decline", answer_key_facts=None, decline_behaviour=1.0)
GUESSED = result(3, expected="decline", answer_key_facts=None, decline_behaviour=0.0)
REFUSED = result(4, answer_key_facts=0.0, decline_behaviour=0.0)  # should answer, declined
NO_FACTS = result(5, answer_key_facts=None, decline_behaviour=1.0)  # nothing to check
NO_ANSWER = result(6, answer=None)


@pytest.mark.parametrize(
    ("res", "correct", "basis"),
    [
        (ALL_FACTS, True, "key facts"),
        (SOME_FACTS, False, "key facts"),
        (DECLINED_OK, True, "decline"),
        (GUESSED, False, "decline"),
        (REFUSED, False, "decline"),
        (NO_FACTS, None, "unchecked"),
        (NO_ANSWER, False, "no answer"),
        (result(7), None, "unchecked"),  # not scored at all (suite none)
    ],
)
def test_automatic_correctness(res: ResultRecord, correct: bool | None, basis: str) -> None:
    c = correctness(res)
    assert (c.correct, c.basis) == (correct, basis)


def test_the_analysts_verdict_wins() -> None:
    assert correctness(SOME_FACTS, verdict(1, "correct")).correct is True
    assert correctness(ALL_FACTS, verdict(0, "partly")).correct is False  # partly is not correct
    assert correctness(ALL_FACTS, verdict(0, "wrong")).basis == "analyst"
    assert correctness(ALL_FACTS, verdict(0, "correct", inherited_from=3)).basis == "inherited"


def test_headline_counts_and_says_what_decided_it() -> None:
    results = [ALL_FACTS, SOME_FACTS, DECLINED_OK, GUESSED, REFUSED, NO_FACTS, NO_ANSWER]
    h = headline(results)
    assert (h.correct, h.total, h.by_analyst, h.by_key_facts, h.unchecked) == (2, 7, 0, 6, 1)
    assert h.basis == "key facts"
    assert h.text == "2 of 7 answers correct (by key facts and declines; 1 not checked)"
    mixed = headline(results, {1: verdict(1, "correct"), 5: verdict(5, "correct", inherited_from=9)})
    assert (mixed.correct, mixed.by_analyst, mixed.inherited, mixed.unchecked) == (4, 2, 1, 0)
    assert mixed.text == (
        "4 of 7 answers correct (by the analyst's verdict for 2 (1 inherited), key facts and declines for 5)"
    )
    only = headline([ALL_FACTS], {0: verdict(0, "wrong")})
    assert only.basis == "analyst" and only.text == "0 of 1 answers correct (by the analyst's verdict)"
    assert headline([]).basis == "none"


def test_decline_counts() -> None:
    d = decline_stats([ALL_FACTS, SOME_FACTS, DECLINED_OK, GUESSED, REFUSED, NO_ANSWER])
    assert d is not None
    assert (d.should_decline, d.declined_when_should, d.answered_when_should_decline) == (2, 1, 1)
    assert (d.should_answer, d.declined_when_should_answer, d.unchecked) == (3, 1, 1)
    assert d.recall == 0.5 and d.method == "patterns"
    assert decline_stats([result(0)]) is None  # not scored: no decline numbers at all


def test_summary_json_leads_with_the_headline_and_round_trips() -> None:
    s = RunSummary(
        run_id=3,
        status="completed",
        backend="offline",
        mode="async",
        suite="offline",
        n_questions=7,
        headline=Headline(correct=2, total=7, by_key_facts=6, unchecked=1),
        declines=DeclineStats(should_decline=2, declined_when_should=1, answered_when_should_decline=1),
    )
    data = s.to_json()
    assert next(iter(data)) == "headline"
    assert (
        data["headline"]["text"].startswith("2 of 7 answers correct")
        and data["headline"]["basis"] == "key facts"
    )
    assert data["declines"]["recall"] == 0.5
    back = RunSummary.from_json(json.loads(json.dumps(data)))
    assert back.headline == s.headline and back.declines == s.declines
    old = RunSummary.from_json({k: v for k, v in data.items() if k not in ("headline", "declines")})
    assert old.headline is None and old.declines is None  # runs stored before issue 12


def test_registry_resolves_key_fact_metrics_in_every_suite() -> None:
    assert score_suite("judge", "answer_key_facts") == "facts"
    assert score_suite("offline", "context_recall") == "offline"
    assert metric("context_key_facts", "judge").id == "facts.context_key_facts"
    assert [m.id for m in run_metrics("offline")] == [
        "facts.answer_key_facts",
        "facts.context_key_facts",
        "facts.decline_behaviour",
        "offline.semantic_similarity",
        "offline.rouge_l",
        "offline.context_recall",
    ]
    assert [m.id for m in run_metrics("judge", ["faithfulness"])][-1] == "judge.faithfulness"
    assert run_metrics("none") == ()
    assert {m.name for m in run_metrics("judge") if m.needs_reference} == {
        "answer_key_facts",
        "context_key_facts",
        "context_precision",
        "context_recall",
    }


# --- question files: the expected column ---------------------------------------------------------
def test_expected_column_in_csv_and_json() -> None:
    csv = b"question,ground_truth,Expected\nA?,a,answer\nB?,b, DECLINE \nC?,c,\n"
    assert [i.expected for i in parse_questions("q.csv", csv)] == ["answer", "decline", "answer"]
    data = json.dumps(
        [
            {"question": "A?", "ground_truth": "a"},
            {"question": "B?", "ground_truth": "b", "expected": "decline"},
            {"question": "C?", "ground_truth": "c", "expected": None},
        ]
    ).encode()
    assert [i.expected for i in parse_questions("q.json", data)] == ["answer", "decline", "answer"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "q.csv",
            b"question,ground_truth,expected\nA?,a,maybe\n",
            "row 1 (line 2): 'expected' must be 'answer' or 'decline', found 'maybe'",
        ),
        (
            "q.json",
            b'[{"question": "A?", "ground_truth": "a", "expected": 1}]',
            "row 1: 'expected' must be 'answer' or 'decline', found a number",
        ),
    ],
)
def test_bad_expected_values_name_the_row(name: str, data: bytes, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_questions(name, data)
    assert message in str(err.value)


def test_exports_carry_the_expected_column_and_read_back() -> None:
    items = parse_questions("q.csv", b"question,ground_truth,expected\nA?,a,answer\nB?,b,decline\n")
    for name, text in (("x.csv", questions_csv(items)), ("x.json", questions_json(items))):
        assert parse_questions(name, text.encode()) == items
    assert questions_csv(items).splitlines()[0] == "question,ground_truth,expected"
