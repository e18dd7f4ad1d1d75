"""The analyst's verdicts in the history store: saved per result with time, inherited by identical
answers in later runs, the schema migration, and the new per-question fields (expected, skipped)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from rag_core.errors import InputError
from rag_core.models import MetricScore, QAItem
from rag_core.storage import HistoryStore
from rag_core.storage.schema import MAX_COMMENT_CHARS, MIGRATIONS, SCHEMA_VERSION
from rag_core.vocab import Expected, Verdict

ITEMS = [
    QAItem("How many days of leave?", "27 days."),
    QAItem("Is there a company car?", "Not covered.", Expected.DECLINE),
    QAItem("When are core hours?", "10:00 to 15:30."),
]


# On a SQLite file, then on a fresh PostgreSQL database (tests/support/postgres_server.py).
@pytest.fixture
def store(store_target: Path | str) -> HistoryStore:
    s = HistoryStore(store_target)
    yield s
    s.close()


def _run(store: HistoryStore, answers: list[str | None]) -> int:
    run_id = store.create_run(
        question_set="s", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    for i, a in enumerate(answers):
        if a is None:
            store.save_answer(run_id, i, error="failed")
        else:
            store.save_answer(run_id, i, answer=a)
    return run_id


def test_expected_and_skipped_are_stored_with_results(store: HistoryStore) -> None:
    run_id = _run(store, ["27 days.", "Not covered.", "10 to 3:30"])
    store.save_scores(
        run_id,
        1,
        [
            MetricScore("rouge_l", None, reason="skipped: expected to be declined", skipped=True),
            MetricScore("decline_behaviour", 1.0, reason='{"declined": true}'),
        ],
    )
    results = store.get_results(run_id)
    assert [r.expected for r in results] == ["answer", "decline", "answer"]
    rouge = results[1].scores["rouge_l"]
    assert (
        rouge.skipped and rouge.value is None and rouge.error is None and rouge.reason.startswith("skipped")
    )
    assert not results[1].scores["decline_behaviour"].skipped
    # a skip is settled: a resume does not redo it
    assert store.missing_items(run_id, metrics=["rouge_l"])["scores"] == [0, 2]


def test_question_sets_keep_the_expected_behaviour(store: HistoryStore) -> None:
    store.save_question_set("s", ITEMS)
    assert [i.expected for i in store.get_question_set("s")] == ["answer", "decline", "answer"]


def test_verdicts_are_saved_with_time_and_replaced(store: HistoryStore) -> None:
    run_id = _run(store, ["27 days.", "Not covered.", "10 to 3:30"])
    assert store.get_verdicts(run_id) == {}
    v = store.save_verdict(run_id, 0, "correct", "  fine  ")
    assert v.verdict == Verdict.CORRECT and v.comment == "fine" and v.labelled_at.endswith("+00:00")
    again = store.save_verdict(run_id, 0, "PARTLY")
    got = store.get_verdicts(run_id)
    assert list(got) == [0] and got[0].verdict == "partly" and got[0].comment == "" and not got[0].inherited
    assert got[0].labelled_at >= v.labelled_at and again == got[0]
    assert store.clear_verdict(run_id, 0) and not store.clear_verdict(run_id, 0)
    assert store.get_verdicts(run_id) == {}


@pytest.mark.parametrize(
    ("run", "index", "verdict", "comment", "message"),
    [
        (1, 0, "maybe", "", "Unknown verdict 'maybe': choose one of correct, partly, wrong"),
        (99, 0, "correct", "", "There is no run #99"),
        (1, 7, "correct", "", "Run #1 has no question 8 (it has 3 questions)"),
        (1, 2, "correct", "", "Question 3 of run #1 has no answer to review"),
        (1, 0, "correct", "x" * (MAX_COMMENT_CHARS + 1), "at most 2000 characters"),
    ],
)
def test_bad_verdicts_are_refused_naming_what_is_wrong(store, run, index, verdict, comment, message) -> None:
    _run(store, ["27 days.", "Not covered.", None])
    with pytest.raises(InputError, match=re.escape(message)):
        store.save_verdict(run, index, verdict, comment)
    assert store.get_verdicts(1) == {}


def test_identical_answers_in_later_runs_inherit_the_latest_verdict(store: HistoryStore) -> None:
    first = _run(store, ["27 days.", "Not covered.", "10 to 3:30"])
    second = _run(store, ["27 days.", "Not covered.", "Core hours are 10:00 to 15:30."])  # Q3 differs
    store.save_verdict(first, 0, "wrong", "missing bank holidays")
    store.save_verdict(first, 2, "partly")
    got = store.get_verdicts(second)
    assert list(got) == [0]  # Q3's answer is not identical; Q2 was never labelled
    assert got[0].verdict == "wrong" and got[0].inherited and got[0].inherited_from == first
    assert got[0].comment == "missing bank holidays"
    # an earlier run never inherits from a later one
    store.save_verdict(second, 1, "correct")
    assert 1 not in store.get_verdicts(first)
    # a third run inherits the most recently given verdict among the earlier ones
    third = _run(store, ["27 days.", "Not covered.", "x"])
    store.save_verdict(second, 0, "correct", "re-checked")
    inherited = store.get_verdicts(third)
    assert inherited[0].verdict == "correct" and inherited[0].inherited_from == second
    assert inherited[1].verdict == "correct" and inherited[1].inherited_from == second
    # a verdict given on the result itself wins over the inherited one
    store.save_verdict(third, 0, "partly")
    assert store.get_verdicts(third)[0].verdict == "partly" and not store.get_verdicts(third)[0].inherited
    assert store.later_identical_answers(first, [0]) == [second, third]
    assert store.later_identical_answers(first, [2]) == []
    assert store.runs_with_verdicts() == [third, second, first]


def test_deleting_the_earlier_run_removes_inherited_verdicts(store: HistoryStore) -> None:
    first = _run(store, ["27 days.", "Not covered.", "a"])
    second = _run(store, ["27 days.", "Not covered.", "b"])
    store.save_verdict(first, 0, "correct")
    assert store.get_verdicts(second)[0].inherited
    store.delete_run(first, force=True)  # (the test's runs were never finished)
    assert store.get_verdicts(second) == {}


def test_an_older_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:  # the schema before issue 12
        for statement in migration:
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    raw.execute(
        "INSERT INTO runs(id, created_at, backend, mode, suite, status, n_questions) "
        "VALUES (1, '2026-11-01T00:00:00+00:00', 'offline', 'async', 'offline', 'completed', 1)"
    )
    raw.execute(
        "INSERT INTO results(run_id, idx, question, ground_truth, answer) VALUES (1, 0, 'Q?', 'A', 'A')"
    )
    raw.execute("INSERT INTO scores(run_id, idx, metric, value) VALUES (1, 0, 'rouge_l', 0.5)")
    raw.execute("INSERT INTO question_sets VALUES ('s', 'now', 'now')")
    raw.execute("INSERT INTO question_items VALUES ('s', 0, 'Q?', 'A')")
    raw.commit()
    raw.close()
    with HistoryStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        result = store.get_results(1)[0]
        assert result.expected == "answer" and not result.scores["rouge_l"].skipped
        assert store.get_question_set("s")[0].expected == "answer"
        store.save_verdict(1, 0, "correct")
        assert store.get_verdicts(1)[0].verdict == "correct"
