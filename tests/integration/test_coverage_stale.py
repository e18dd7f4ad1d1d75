"""Issue 14 end to end with real ingestion on a temp data dir: coverage of the sample handbook,
re-uploading a changed copy flags exactly the questions grounded in the changed sections (links
computed by the ingest hook, before the index is replaced), clearing by confirm and by edit, the
CLI's ``coverage`` and ``questions stale``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_core.cli import main as cli_main
from rag_core.models import SourceLink
from rag_core.settings import Settings
from rag_core.text import passage_fingerprint
from rag_core.workspace import SAMPLE_PDF, SAMPLE_SET_NAME, Workspace
from tests.support.handbook import STALE_EDITS, STALE_QUESTIONS, STALE_SECTIONS, UNTESTED_EDIT, handbook_pdf

UNTESTED = [
    "Northwind Civic Trust - Staff Handbook",
    "Preface",
    "7. Outside Employment and Interests",
    "10. Code of Conduct",
    "11. Grievances",
]


@pytest.fixture
def ws(settings: Settings):
    w = Workspace(settings)
    assert w.ingest_sample().status == "added"
    assert w.ensure_sample_set()
    yield w
    w.close()


def test_coverage_of_the_sample_handbook_lists_the_untested_sections(ws: Workspace) -> None:
    report = ws.coverage(SAMPLE_SET_NAME)
    assert (report.covered, report.total) == (9, 14)
    assert [s.section for s in report.untested] == UNTESTED
    assert {q.origin for q in report.questions} == {"facts", "decline"}
    assert report.run_id is None
    # Stored, so a later version can be compared with them; computing again adds nothing.
    assert len({ls.question for ls in ws.store.link_states(SAMPLE_SET_NAME)}) == 9
    assert ws.link_questions(SAMPLE_SET_NAME) == 0


def test_a_stored_link_wins_over_key_facts(ws: Workspace) -> None:
    first = ws.question_set(SAMPLE_SET_NAME)[0]
    probation = next(c for c in ws.chunks(SAMPLE_PDF.name) if c.section == "3. Probation")
    link = SourceLink(
        "All documents",
        SAMPLE_PDF.name,
        1,
        probation.section,
        probation.page,
        probation.id,
        probation.text,
        passage_fingerprint(probation.text),
        "generated",
    )
    ws.store.set_question_sources(SAMPLE_SET_NAME, first.question, [link])
    report = ws.coverage(SAMPLE_SET_NAME)
    q1 = report.questions[0]
    assert q1.origin == "generated" and q1.sections == ((SAMPLE_PDF.name, "3. Probation"),)
    assert "1. Working Hours and Flexitime" in [s.section for s in report.untested]


def test_latest_run_correctness_per_section(ws: Workspace) -> None:
    run_id = ws.start_run(SAMPLE_SET_NAME, concurrency=4)
    assert ws.wait_run(run_id, timeout=240)
    report = ws.coverage(SAMPLE_SET_NAME)
    assert report.run_id == run_id
    tested = [s for s in report.sections if s.n_questions]
    assert all(s.in_run == s.n_questions for s in tested)
    headline = ws.summary(run_id).headline
    assert headline is not None
    # The 9 linked questions' correctness, plus the decline question, make the run's headline.
    decline_ok = int(bool(report.questions[-1].correct))
    assert sum(s.correct for s in tested) + decline_ok == headline.correct


def test_reupload_flags_exactly_the_questions_of_the_changed_sections(ws: Workspace) -> None:
    # No coverage computed beforehand: the ingest hook links the questions before replacing.
    assert ws.store.link_states(SAMPLE_SET_NAME) == []
    out = ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(UNTESTED_EDIT))])[0]
    assert (
        out.status == "replaced" and out.sections_changed == ("11. Grievances",) and out.stale_questions == 0
    )
    assert ws.stale_questions(SAMPLE_SET_NAME) == []

    out = ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(STALE_EDITS))])[0]
    assert set(STALE_SECTIONS) <= set(out.sections_changed) and out.stale_questions == 2
    stale = ws.stale_questions(SAMPLE_SET_NAME)
    assert tuple(s.number for s in stale) == STALE_QUESTIONS
    q2 = stale[0].links[0]
    assert q2.link.section == "2. Annual Leave" and q2.reason == "passage changed" and q2.checked_version == 3
    assert "five days" in q2.link.passage and "eight days" in (q2.new_passage or "")
    assert [q.number for q in ws.coverage(SAMPLE_SET_NAME).stale_questions] == list(STALE_QUESTIONS)

    # Cleared by confirming (re-linked to the current passage) …
    assert ws.confirm_question(SAMPLE_SET_NAME, 2) == 1
    assert [s.number for s in ws.stale_questions(SAMPLE_SET_NAME)] == [7]
    relinked = next(ls for ls in ws.store.link_states(SAMPLE_SET_NAME) if ls.question == stale[0].question)
    assert "eight days" in relinked.link.passage and relinked.link.version == 3
    # … or by editing the expected answer.
    rows = [
        {"question": i.question, "ground_truth": i.ground_truth, "expected": str(i.expected)}
        for i in ws.question_set(SAMPLE_SET_NAME)
    ]
    rows[6]["ground_truth"] = (
        "Hybrid workers can work from home for at most two days a week and must be in the office on at least three."
    )
    ws.save_question_set(SAMPLE_SET_NAME, rows)
    assert ws.stale_questions(SAMPLE_SET_NAME) == []
    with pytest.raises(Exception, match="not flagged"):
        ws.confirm_question(SAMPLE_SET_NAME, 2)


def test_rename_keeps_flags_and_deleting_the_document_flags_its_questions(ws: Workspace) -> None:
    ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(STALE_EDITS))])
    ws.rename_question_set(SAMPLE_SET_NAME, "Renamed")
    assert [s.number for s in ws.stale_questions("Renamed")] == [2, 7]
    ws.delete_document(SAMPLE_PDF.name)
    stale = ws.stale_questions("Renamed")
    assert len(stale) == 9 and {ls.reason for s in stale for ls in s.links} >= {"document removed"}


def test_cli_coverage_json_and_questions_stale(settings: Settings, tmp_path: Path, capsys) -> None:
    d = ["--data-dir", str(settings.data_dir)]
    assert cli_main([*d, "ingest", str(SAMPLE_PDF)]) == 0
    qfile = Path(__file__).resolve().parents[2] / "data" / "sample" / "questions.json"
    assert cli_main([*d, "questions", "import", str(qfile), "--name", "S"]) == 0
    out = tmp_path / "cov.json"
    assert cli_main([*d, "coverage", "--questions", "S", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "9 of 14 sections tested" in text and "untested sections:" in text and "11. Grievances" in text
    data = json.loads(out.read_text())
    assert (data["sections_covered"], data["sections_total"]) == (9, 14)
    assert [u["section"] for u in data["untested"]] == UNTESTED
    assert {s["label"]: s["questions"] for s in data["sections"]}["2. Annual Leave"] == 1
    assert set(data["sections"][0]) >= {"document", "section", "questions", "last_score"}

    changed = tmp_path / SAMPLE_PDF.name
    changed.write_bytes(handbook_pdf(STALE_EDITS))
    assert cli_main([*d, "ingest", str(changed)]) == 0
    assert "2 questions to review" in capsys.readouterr().out
    assert cli_main([*d, "questions", "stale", "S", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [q["number"] for q in listed] == [2, 7]
    assert listed[0]["flag"] == "review: the policy changed"
    assert "eight days" in listed[0]["passages"][0]["new_passage"]
    assert cli_main([*d, "questions", "stale", "S"]) == 0
    text = capsys.readouterr().out
    assert "Q2  review: the policy changed" in text and "old:" in text and "new:" in text
    assert cli_main([*d, "questions", "stale", "S", "--confirm", "7"]) == 0
    assert cli_main([*d, "questions", "stale", "S", "--confirm", "5"]) == 2  # not flagged: bad input
    capsys.readouterr()
    assert cli_main([*d, "questions", "stale", "S", "--json"]) == 0
    assert [q["number"] for q in json.loads(capsys.readouterr().out)] == [2]
    # re-importing the set with Q2's expected answer brought up to date clears its flag, like the editor
    rows = json.loads(qfile.read_text())
    rows[1]["ground_truth"] = "Up to eight days of unused annual leave can be carried over."
    edited = tmp_path / "questions.json"
    edited.write_text(json.dumps(rows))
    assert cli_main([*d, "questions", "import", str(edited), "--name", "S"]) == 0
    capsys.readouterr()
    assert cli_main([*d, "questions", "stale", "S", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main([*d, "coverage", "--questions", "nope"]) == 2


class _BrokenHook:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_replace(self, collection, name, index) -> None:
        self.calls.append("before")
        raise RuntimeError("boom before")

    def after_replace(self, collection, name, version, chunks) -> int:
        self.calls.append(f"after v{version} ({len(chunks)} chunks)")
        raise RuntimeError("boom after")


def test_a_failing_hook_never_fails_the_ingestion(ws: Workspace, caplog) -> None:
    from rag_core.ingest.service import ingest_bytes

    hook = _BrokenHook()
    out = ingest_bytes(
        SAMPLE_PDF.name, handbook_pdf(STALE_EDITS), settings=ws.settings, store=ws.store, hook=hook
    )
    assert out.status == "replaced" and out.version == 2 and out.stale_questions == 0
    assert hook.calls == ["before", "after v2 (33 chunks)"]
    assert "the question links could not be updated" in caplog.text
    # Unchanged bytes: the hook is not called at all.
    again = ingest_bytes(
        SAMPLE_PDF.name, handbook_pdf(STALE_EDITS), settings=ws.settings, store=ws.store, hook=hook
    )
    assert again.status == "unchanged" and len(hook.calls) == 2
