"""Issue 12 end to end, offline: a run of the sample set scores key facts and declines next to the
offline metrics, skips reference metrics on the question to decline, leads its summary, runs table,
comparison and exports with the headline; the CLI labels answers, reviews them (agreement after
10 verdicts) and gates on key facts and on the share of correct answers."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from rag_core import cli
from rag_core.settings import Settings
from rag_core.workspace import SAMPLE_SET_NAME, Workspace
from tests.conftest import SAMPLE_PDF, SAMPLE_QUESTIONS

pytestmark = pytest.mark.slow


def _ws(data_dir: Path) -> Workspace:
    return Workspace(Settings.load(env={"RAG_DATA_DIR": str(data_dir)}, secrets_path=data_dir / "none.toml"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keyfacts") / "data"
    ws = _ws(d)
    try:
        assert ws.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())])[0].status == "added"
        ws.ensure_sample_set()
        run_id = ws.start_run(SAMPLE_SET_NAME, suite="offline", concurrency=4)
        assert ws.wait_run(run_id, 240) and ws.run(run_id).status == "completed"
    finally:
        ws.close()
    return d


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(template, d)
    return d


def test_key_facts_and_declines_are_scored_next_to_the_suite(data_dir: Path) -> None:
    ws = _ws(data_dir)
    try:
        s = ws.summary(1)
        results = ws.results(1)
        runs = ws.runs_table(ws.runs())
        export = json.loads(ws.export_run(1, "json"))
        rows = list(csv.DictReader(io.StringIO(ws.export_run(1, "csv"))))
    finally:
        ws.close()
    assert [m.id for m in s.metrics][:3] == [
        "facts.answer_key_facts",
        "facts.context_key_facts",
        "facts.decline_behaviour",
    ]
    facts = s.metric("facts.answer_key_facts")
    assert facts is not None and facts.scored == 9 and facts.skipped == 1 and facts.failed == 0
    for name in (
        "semantic_similarity",
        "rouge_l",
        "context_recall",
    ):  # reference metrics skip the decline row
        m = s.metric(name)
        assert m is not None and (m.scored, m.skipped, m.failed, m.missing) == (9, 1, 0, 0)
    car = results[9]
    assert car.expected == "decline" and car.scores["rouge_l"].skipped
    assert car.scores["decline_behaviour"].value == 1.0  # the extractive answerer declines it
    # the drill-down lists found and missing facts
    detail = json.loads(results[5].scores["answer_key_facts"].reason or "{}")
    assert {f["fact"] for f in detail["missing"]} == {"4 weeks", "2 weeks"}
    assert {f["fact"] for f in detail["found"]} == {"gross misconduct", "full pay"}
    # the headline: 8 of 10 by key facts (Q5 lacks the qualifying rule, Q6 the suspension limits)
    assert s.headline is not None and s.headline.text == "8 of 10 answers correct (by key facts and declines)"
    d = s.declines
    assert d is not None and (d.should_decline, d.declined_when_should, d.answered_when_should_decline) == (
        1,
        1,
        0,
    )
    assert runs.loc[0, "Correct"] == "8 of 10" and runs.loc[0, "Answered, should decline"] == 0
    assert "Answer key facts" in runs.columns
    assert next(iter(export)) == "headline" and export["headline"]["correct"] == 8
    assert export["results"][9]["expected"] == "decline" and export["results"][9]["declined"] is True
    assert list(rows[0])[:3] == ["index", "correct", "correct_by"]
    assert [r["correct"] for r in rows].count("yes") == 8 and rows[9]["correct_by"] == "decline"
    assert "facts.answer_key_facts" in rows[0]


def test_cli_label_review_and_gates(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(data_dir)]
    assert (
        cli.main([*base, "label", "1", "--question", "6", "--verdict", "correct", "--comment", "answers it"])
        == 0
    )
    out = capsys.readouterr().out
    assert "run 1 Q6: correct · 'answers it'" in out
    assert "9 of 10 answers correct (by the analyst's verdict for 1, key facts and declines for 9)" in out
    # bad input: exit 2, message names the problem, nothing saved
    assert cli.main([*base, "label", "1", "--question", "11", "--verdict", "wrong"]) == 2
    assert "Run #1 has no question 11" in capsys.readouterr().err
    assert cli.main([*base, "label", "7", "--question", "1", "--verdict", "wrong"]) == 2
    assert cli.main([*base, "label", "1", "--question", "0", "--verdict", "wrong"]) == 2
    with pytest.raises(SystemExit):
        cli.main([*base, "label", "1", "--question", "1", "--verdict", "fine"])
    capsys.readouterr()

    out_json = tmp_path / "review.json"
    assert cli.main([*base, "review", "1", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "Q6   correct" in text and "auto: not correct (key facts) · answers it" in text
    assert "agreement: 1 of the 10 verdicts needed so far" in text
    data = json.loads(out_json.read_text())
    assert data["verdicts"][5]["verdict"] == "correct" and data["verdicts"][5]["automatic"] is False
    assert data["agreement"]["enough"] is False and data["headline"]["correct"] == 9

    for q in range(1, 11):  # label the rest: Q5 partly (qualifying rule missing), the others correct
        if q != 6:
            assert (
                cli.main(
                    [
                        *base,
                        "label",
                        "1",
                        "--question",
                        str(q),
                        "--verdict",
                        "partly" if q == 5 else "correct",
                    ]
                )
                == 0
            )
    capsys.readouterr()
    assert cli.main([*base, "review", "1", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "agreement with your 10 verdicts" in text and "Answer key facts" in text
    report = json.loads(out_json.read_text())["agreement"]
    by_id = {m["metric_id"]: m for m in report["metrics"]}
    # every metric needs 10 scored answers with a verdict: the decline row is skipped by the
    # reference metrics, so they say why instead of showing a κ from 9 answers
    assert by_id["facts.answer_key_facts"]["n"] == 9 and by_id["facts.answer_key_facts"]["kappa"] is None
    assert "only 9 scored answers have a verdict" in by_id["facts.answer_key_facts"]["note"]
    behaviour = by_id["facts.decline_behaviour"]  # scored on all 10, but the same (1.0) everywhere
    assert behaviour["n"] == 10 and behaviour["kappa"] == 0.0 and "same score" in behaviour["note"]


def test_cli_gates_on_key_facts_and_on_correct_answers(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "--data-dir",
        str(data_dir),
        "run",
        "--questions",
        str(SAMPLE_QUESTIONS),
        "--quiet",
        "--suite",
        "offline",
    ]
    assert cli.main([*base, "--fail-under", "facts.answer_key_facts=0.5", "--fail-under", "correct=0.8"]) == 0
    out = capsys.readouterr().out
    assert "gate facts.answer_key_facts>=0.5: ok" in out and "gate correct>=0.8: ok (0.800" in out
    assert cli.main([*base, "--fail-under", "correct=0.9"]) == 1
    assert "gate correct>=0.9: FAILED (0.800: 8 of 10 answers correct" in capsys.readouterr().err
    # a typo is refused before anything runs (exit 2)
    assert cli.main([*base, "--fail-under", "key_facts=0.5"]) == 2
    assert "'key_facts' is not one of them" in capsys.readouterr().err
