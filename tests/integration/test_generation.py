"""Question generation end to end (issue 14): the CLI and the workspace against the loopback
Messages API stand-in through the real ``anthropic`` SDK — ``generate`` with ``--accept-all`` and
``--json``, the review queue commands, no key, bad input, the cache (nothing paid twice), cancel,
and the general-knowledge flag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_PDF
from tests.support import authoring_responder as gen
from tests.support.anthropic_server import FakeAnthropic, default_responder

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-" + "test-0123456789abcdefghij-NOT-REAL"
COLLECTION = "All documents"


def _cli(
    data_dir: Path, base_url: str | None, *args: str, key: str | None = FAKE_KEY
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    env.pop("ANTHROPIC_API_KEY", None)
    if key:
        env["ANTHROPIC_API_KEY"] = key
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    return subprocess.run(
        [sys.executable, "-m", "rag_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def indexed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gen") / "data"
    d.mkdir()
    proc = _cli(d, None, "ingest", str(SAMPLE_PDF), key=None)
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.fixture
def indexed(indexed_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(indexed_template, d)
    return d


def _workspace(data_dir: Path, base_url: str, key: str | None = FAKE_KEY):
    from rag_core.settings import Secret, Settings
    from rag_core.workspace import Workspace

    s = Settings.load(env={"RAG_DATA_DIR": str(data_dir)}, secrets_path=data_dir / "none.toml")
    return Workspace(s.replace(base_url=base_url, api_key=Secret(key or "")))


def test_cli_generate_accept_all_with_json(indexed: Path) -> None:
    with FakeAnthropic() as srv:
        proc = _cli(
            indexed,
            srv.base_url,
            "generate",
            "--n",
            "8",
            "--kinds",
            "factual,decline",
            "--into",
            "Gen",
            "--accept-all",
            "--json",
        )
        sent = srv.count
    assert proc.returncode == 0, proc.stderr
    assert "estimate:" in proc.stderr and "Claude calls" in proc.stderr
    data = json.loads(proc.stdout)
    report, pairs = data["report"], data["pairs"]
    assert report["requested"] == 8 and report["written"] == 8 and report["accepted_into"] == "Gen"
    assert report["calls_sent"] == sent == 8 + 4  # 8 pairs + a closed-book check per factual pair
    assert report["estimate"]["calls"] == sent
    assert (
        len(pairs) == len(report["queued"]) == 8 - report["duplicates_dropped"] - report["declines_dropped"]
    )
    assert {(p["status"], p["question_set"]) for p in pairs} == {("accepted", "Gen")}
    declines = [p for p in pairs if p["kind"] == "decline"]
    assert declines and all(p["expected"] == "decline" and p["sources"] == [] for p in declines)
    factual = [p for p in pairs if p["kind"] == "factual"]
    assert factual and all(p["sources"] and p["sources"][0]["document"] == SAMPLE_PDF.name for p in factual)
    assert FAKE_KEY not in proc.stdout + proc.stderr

    listed = _cli(indexed, None, "questions", "list", key=None)
    assert f"Gen\t{len(pairs)} questions" in listed.stdout
    ws = _workspace(indexed, "http://127.0.0.1:9")
    try:
        sources = ws.store.question_sources("Gen")
        assert set(sources) == {p["question"] for p in factual}
        assert next(s for s in ws.question_sets() if s.name == "Gen").collection == COLLECTION
        # The link's chunk exists in the index and its passage is the chunk's text.
        chunks = {c.id: c for c in ws.chunks(SAMPLE_PDF.name, COLLECTION)}
        for links in sources.values():
            assert all(chunks[link.chunk_id].text == link.passage for link in links)
    finally:
        ws.close()


def test_cli_without_accept_all_the_pairs_wait_and_the_queue_commands_work(indexed: Path) -> None:
    with FakeAnthropic() as srv:
        proc = _cli(indexed, srv.base_url, "generate", "--n", "3", "--kinds", "scenario")
    assert proc.returncode == 0, proc.stderr
    assert "waiting for review" in proc.stderr
    listed = json.loads(_cli(indexed, None, "generated", "list", "--json", key=None).stdout)
    assert len(listed) >= 2 and {p["status"] for p in listed} == {"pending"}
    ids = [str(p["id"]) for p in listed]
    assert _cli(indexed, None, "generated", "reject", ids[0], key=None).returncode == 0
    acc = _cli(indexed, None, "generated", "accept", "--all", "--into", "Reviewed", key=None)
    assert acc.returncode == 0, acc.stderr
    assert f"Added {len(ids) - 1} to 'Reviewed'" in acc.stdout
    assert _cli(indexed, None, "generated", "list", key=None).stdout.startswith("no ")


def test_cli_without_a_key_explains_and_fails(indexed: Path) -> None:
    proc = _cli(indexed, None, "generate", "--n", "3", key=None)
    assert proc.returncode == 2
    assert "needs Claude" in proc.stderr and "template" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collection", "Nope"], "no document collection named 'Nope'"),
        (["--n", "0"], "between 1 and 200"),
        (["--n", "500"], "between 1 and 200"),
        (["--kinds", "factual,trivia"], "Unknown question kind 'trivia'"),
        (["--documents", "missing.pdf"], "No document named 'missing.pdf'"),
        (["--accept-all"], "--accept-all needs --into"),
    ],
)
def test_cli_bad_input_is_named(indexed: Path, args: list[str], message: str) -> None:
    proc = _cli(indexed, "http://127.0.0.1:9", "generate", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_an_empty_collection_is_refused(indexed: Path) -> None:
    ws = _workspace(indexed, "http://127.0.0.1:9")
    try:
        ws.create_collection("Empty one")
        from rag_core.errors import InputError

        with pytest.raises(InputError, match="'Empty one' has no documents"):
            ws.plan_generation("Empty one", 5)
    finally:
        ws.close()


def test_the_same_request_is_never_paid_twice(indexed: Path) -> None:
    with FakeAnthropic() as srv:
        ws = _workspace(indexed, srv.base_url)
        try:
            plan = ws.plan_generation(COLLECTION, 4, "factual")
            first = ws.wait_generation(ws.start_generation(plan), 120)
            assert first is not None and first.calls_sent == 8 and srv.count == 8
            assert ws.estimate_generation(plan).cached == 4
            again = ws.wait_generation(ws.start_generation(plan), 120)
            assert again is not None
            assert srv.count == 8 and again.calls_sent == 0 and again.cache_hits == 8
            assert again.duplicates_dropped == again.written == 4  # the same pairs: already queued
        finally:
            ws.close()


def test_cancel_keeps_what_was_written(indexed: Path) -> None:
    with FakeAnthropic(latency=0.4) as srv:
        ws = _workspace(indexed, srv.base_url)
        try:
            ws.settings = ws.settings.replace(concurrency=1)
            job = ws.start_generation(ws.plan_generation(COLLECTION, 12, "decline"))
            from rag_core.authoring.job import find

            deadline = 200
            while ws.generation_progress(job).done < 1 and deadline:  # bounded: 200 × 0.05 s
                find(job).wait(0.05)
                deadline -= 1
            from rag_core.access import Principal, Role
            from rag_core.errors import AccessDeniedError

            other = ws.acting_as(Principal(id="bob@example.org", name="Bob", role=Role.ANALYST))
            assert not other.can_cancel_generation(job) and ws.can_cancel_generation(job)
            with pytest.raises(AccessDeniedError, match="only they or an admin"):
                other.cancel_generation(job)  # another analyst: refused, the job runs on
            assert not ws.generation_progress(job).cancelled
            assert ws.cancel_generation(job)
            report = ws.wait_generation(job, 60)
            assert [e.action for e in ws.audit_trail(actions=["questions.generate_cancel"])] == [
                "questions.generate_cancel"
            ]
        finally:
            ws.close()
    assert report is not None and report.cancelled
    assert 1 <= report.written < 12 and report.not_run > 0
    assert srv.count < 12


def test_general_knowledge_is_flagged(indexed: Path) -> None:
    answers: dict[str, str] = {}

    def responder(body):
        if gen.is_closed_book(body):  # "knows" the answer of every question it wrote
            q = body["messages"][0]["content"].split("<question>")[1].split("</question>")[0]
            import html

            return answers.get(html.unescape(q), "UNKNOWN")
        out = default_responder(body)
        if gen.is_generation(body):
            data = out[0]["input"]
            answers[data["question"]] = data["expected_answer"]
        return out

    with FakeAnthropic(responder=responder) as srv:
        ws = _workspace(indexed, srv.base_url)
        try:
            report = ws.wait_generation(
                ws.start_generation(ws.plan_generation(COLLECTION, 3, "factual")), 120
            )
            pairs = ws.review_queue()
        finally:
            ws.close()
    assert report is not None and report.flagged_general == len(pairs) >= 2
    assert all(p.flags == ("general_knowledge",) for p in pairs)


def test_accepting_checks_the_set_and_keeps_what_is_saved(indexed: Path) -> None:
    from rag_core.errors import InputError
    from rag_core.models import GeneratedPair, QAItem, SourceLink

    ws = _workspace(indexed, "http://127.0.0.1:9")
    try:
        ws.create_collection("Other")
        ws.save_question_set("Bound elsewhere", [QAItem("Q?", "A.")])
        ws.bind_question_set("Bound elsewhere", "Other")
        ws.save_question_set("Plain", [QAItem("Existing question?", "A.")])
        old_link = SourceLink(COLLECTION, "h.pdf", 1, "2 Leave", 2, "h.pdf:1", "Five days.", "f1", "facts")
        new_link = SourceLink(COLLECTION, "h.pdf", 2, "3 Pay", 3, "h.pdf:7", "Paid monthly.", "f2")
        ws.store.set_question_sources("Plain", "Existing question?", [old_link])
        ws.store.record_link_check(
            "Plain", "Existing question?", 0, stale=True, checked_version=2, reason="passage changed"
        )
        a, b = ws.store.add_generated_pairs(
            [
                GeneratedPair(
                    0, "j", COLLECTION, "factual", "New question?", "Five days.", sources=(new_link,)
                ),
                GeneratedPair(0, "j", COLLECTION, "factual", "Existing question?", "B.", sources=(new_link,)),
            ]
        )
        with pytest.raises(InputError, match="bound to the collection 'Other'"):
            ws.accept_generated([a.id], "Bound elsewhere")
        with pytest.raises(InputError, match="cannot be empty"):
            ws.edit_generated(a.id, "  ", "x")
        with pytest.raises(InputError, match="Choose or type the name"):
            ws.accept_generated([a.id], " ")
        accepted = ws.accept_generated([a.id, b.id], "Plain")  # an existing set: appended, no duplicate row
        info = accepted.info
        assert accepted.added == 1 and accepted.kept == (b.id,)
        assert f"#{b.id} was already in the set and kept the set's expected answer" in accepted.summary
        assert info.n_items == 2 and [i.question for i in ws.question_set("Plain")] == [
            "Existing question?",
            "New question?",
        ]
        # the question already in the set keeps its answer, its link and its stale flag
        assert ws.question_set("Plain")[0].ground_truth == "A."
        states = {(ls.question, ls.link, ls.stale) for ls in ws.store.link_states("Plain")}
        assert states == {("Existing question?", old_link, True), ("New question?", new_link, False)}
        saved = ws.audit_trail(actions=["question_set.save"])[0]
        assert (
            saved.target == "Plain" and "accepted 2 generated (1 added, 1 already in the set)" in saved.detail
        )
        with pytest.raises(InputError, match="already accepted"):
            ws.accept_generated([a.id], "Plain")
        assert ws.question_set("Bound elsewhere") == [QAItem("Q?", "A.")]
    finally:
        ws.close()


def test_a_rejected_key_stops_the_generation_with_a_clear_message(indexed: Path) -> None:
    with FakeAnthropic(api_key="sk-" + "another-key-0123456789") as srv:
        ws = _workspace(indexed, srv.base_url)
        try:
            ws.settings = ws.settings.replace(concurrency=2)
            report = ws.wait_generation(
                ws.start_generation(ws.plan_generation(COLLECTION, 20, "factual")), 120
            )
            queue = ws.review_queue()
        finally:
            ws.close()
    assert report is not None and report.written == 0 and report.queued == () and queue == []
    assert srv.count <= 4 < 20  # fatal: the batch stops instead of trying every pair
    assert report.errors and "key" in report.errors[0].lower()
    assert FAKE_KEY not in " ".join(report.errors)


def test_a_malformed_reply_fails_its_pair_and_is_not_cached(indexed: Path) -> None:
    def responder(body):
        if gen.is_generation(body):
            return "Sure! Here is a great question about leave."  # text, not the forced tool call
        return default_responder(body)

    with FakeAnthropic(responder=responder) as srv:
        ws = _workspace(indexed, srv.base_url)
        try:
            plan = ws.plan_generation(COLLECTION, 2, "factual")
            report = ws.wait_generation(ws.start_generation(plan), 120)
            assert report is not None and report.failed == 2 and report.queued == ()
            assert "did not call record_question_pair" in report.errors[0]
            assert ws.estimate_generation(plan).cached == 0  # asked again next time, not served broken
        finally:
            ws.close()
