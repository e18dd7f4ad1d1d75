"""Batch mode: generation through the Message Batches API, end to end against the loopback stand-in.

The real ``anthropic`` SDK talks HTTP to :class:`tests.support.anthropic_server.FakeAnthropic`; runs go
through the real pipeline (``start_run`` / ``resume_run``) and the real SQLite store. Retrieval is
replaced by fixed contexts (one chunk per question) so no embedding model loads; metrics are off
(``suite="none"``) — phase 2 is not what these tests are about.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag_core.answer.batches_api import BatchPolling, custom_id, index_of
from rag_core.answer.prompt import build_messages
from rag_core.errors import InputError
from rag_core.models import Chunk, QAItem, ScoredChunk
from rag_core.runs import executor as pipeline
from rag_core.runs.batch_mode import BATCH_DISCOUNT
from rag_core.runs.executor import resume_run, start_run
from rag_core.runs.request import RunOptions, RunRequest
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore
from tests.conftest import ROOT
from tests.support.anthropic_server import FakeAnthropic

#: Poll the stand-in's batches every few tens of milliseconds.
FAST = RunOptions(batch_polling=BatchPolling(initial_s=0.05, max_s=0.2, max_failures=3, cancel_wait_s=5.0))

FAKE_KEY = "sk-test-not-a-real-key"
N = 10
ITEMS = tuple(
    QAItem(f"How many days of leave does rule {i} give?", f"Rule {i} gives {i + 10} days.") for i in range(N)
)


def _context(i: int) -> list[ScoredChunk]:
    chunk = Chunk(
        f"h:{i}", f"Rule {i} gives {i + 10} days of leave. Ask HR for details.", "handbook.pdf", i + 1, i, "h"
    )
    return [ScoredChunk(chunk, 0.9)]


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed contexts instead of the vector index; polling in tens of milliseconds."""

    def fake_retrieve(
        settings: Settings, questions: list[str], top_k: int, collection: str = ""
    ) -> list[list[ScoredChunk]]:
        return [_context(int(q.split("rule ")[1].split()[0])) for q in questions]

    monkeypatch.setattr(pipeline, "retrieve_contexts", fake_retrieve)


@pytest.fixture
def store(settings: Settings) -> Iterator[HistoryStore]:
    s = HistoryStore(settings.db_path)
    yield s
    s.close()


def _claude(settings: Settings, srv: FakeAnthropic, **changes: Any) -> Settings:
    return settings.replace(api_key=Secret(FAKE_KEY), base_url=srv.base_url, **changes)


def _request(**kw: Any) -> RunRequest:
    return RunRequest(items=ITEMS, backend="claude", mode="batch", suite="none", concurrency=4, **kw)


def _wait_for_batch_id(store: HistoryStore, run_id: int, timeout: float = 20.0) -> str:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        bid = store.get_run(run_id).config.get("batch_id")
        if bid:
            return str(bid)
        time.sleep(0.02)
    raise AssertionError("the batch id was never stored")


# ------------------------------------------------------------------------------------------------
def test_batch_run_end_to_end(settings: Settings, store: HistoryStore) -> None:
    with FakeAnthropic(batch_latency=0.6) as srv:
        s = _claude(settings, srv)
        handle = start_run(_request(), settings=s, store=store, options=FAST)
        summary = handle.wait(60)
        calls = srv.batch_calls
        run = store.get_run(handle.run_id)
        sent = srv.batch_requests(run.config["batch_id"])
        count = srv.count

    assert summary is not None and summary.status == "completed"
    assert run.status == "completed" and run.mode == "batch"
    assert calls["create"] == 1 and calls["retrieve"] >= 2  # one batch, polled until it ended
    assert count == 0  # no per-question Messages API calls
    assert run.config["batch_ids"] == [run.config["batch_id"]]
    assert run.config["batch_id"].startswith("msgbatch_")
    # the prompts are the other modes' prompts, one request per question, custom_id = q<index>
    assert [cid for cid, _ in sent] == [f"q{i}" for i in range(N)]
    for i, (_, params) in enumerate(sent):
        system, messages = build_messages(ITEMS[i].question, _context(i))
        assert params["system"] == system and params["messages"] == messages
        assert params["model"] == s.answer_model and params["max_tokens"] == s.answer_max_tokens
    # every answer stored under its own question, in input order, with tokens
    results = store.get_results(handle.run_id)
    assert [r.index for r in results] == list(range(N))
    for i, r in enumerate(results):
        assert (
            r.error is None
            and r.answer == f"Rule {i} gives {i + 10} days of leave. (handbook.pdf, p. {i + 1})"
        )
        assert r.input_tokens > 0 and r.output_tokens > 0 and r.attempts == 1
        assert r.contexts and r.contexts[0]["text"].startswith(f"Rule {i} ")
    # cost: half the normal price, said so in the summary
    usage = run.summary.usage
    full = sum(s.cost_usd(r.model or "", r.input_tokens, r.output_tokens) for r in results)
    assert BATCH_DISCOUNT == 0.5 and [p.batch for p in usage.passes] == [True]
    assert usage.answer_calls == N and usage.cost_usd == pytest.approx(full * 0.5)
    assert run.summary.generation.batch["created"] == 1
    assert run.summary.generation.batch["results"] == {"succeeded": N}


def test_errored_and_expired_results_are_stored_as_errors(settings: Settings, store: HistoryStore) -> None:
    with FakeAnthropic(batch_latency=0.3, batch_error_rate=0.3, batch_expired_rate=0.2, batch_seed=5) as srv:
        handle = start_run(_request(), settings=_claude(settings, srv), store=store, options=FAST)
        summary = handle.wait(60)
        counts = srv.batch(store.get_run(handle.run_id).config["batch_id"])["request_counts"]

    assert summary is not None and summary.status == "completed"
    assert counts["errored"] > 0 and counts["expired"] > 0 and counts["succeeded"] > 0
    results = store.get_results(handle.run_id)
    errored = [r for r in results if r.error_kind == "OverloadedError"]
    expired = [r for r in results if r.error_kind == "RequestTimeoutError"]
    assert len(errored) == counts["errored"] and len(expired) == counts["expired"]
    assert all("api_error" in r.error and r.answer is None for r in errored)
    assert all("expired" in r.error and r.answer is None for r in expired)
    assert sum(r.answer is not None for r in results) == counts["succeeded"]
    assert summary.errors == counts["errored"] + counts["expired"]
    assert all(r.status != "pending" for r in results)


def test_cancel_cancels_the_batch_keeps_finished_answers_and_resume_asks_only_for_the_rest(
    settings: Settings, store: HistoryStore
) -> None:
    # request i of 10 finishes at created + 4·(i+1)/10 s; cancel after ~1.3 s keeps q0..q2 (or so)
    with FakeAnthropic(batch_latency=4.0, batch_cancel_latency=0.1) as srv:
        s = _claude(settings, srv)
        handle = start_run(_request(), settings=s, store=store, options=FAST)
        first = _wait_for_batch_id(store, handle.run_id)
        t_sent = time.monotonic()
        time.sleep(1.3)
        handle.cancel()
        summary = handle.wait(30)
        took = time.monotonic() - t_sent
        assert summary is not None and summary.status == "cancelled"
        assert srv.batch_calls["cancel"] == 1
        assert took < 3.5  # did not wait for the whole batch (4 s)
        kept = {r.index for r in store.get_results(handle.run_id) if r.answer is not None}
        assert 2 <= len(kept) <= 8 and kept == set(range(len(kept)))  # the early finishers
        pending = [r.index for r in store.get_results(handle.run_id) if r.status == "pending"]
        assert pending == [i for i in range(N) if i not in kept]  # cancelled ones stay resumable
        assert "cancel" in handle.progress().message.lower()

        resumed = resume_run(handle.run_id, settings=s, store=store, options=FAST)
        assert resumed.wait(60) is not None
        run = store.get_run(handle.run_id)
        second = run.config["batch_id"]
        assert run.status == "completed"
        assert srv.batch_calls["create"] == 2 and second != first
        assert run.config["batch_ids"] == [first, second]
        # the new batch asked only for what the cancelled one had not answered
        assert [cid for cid, _ in srv.batch_requests(second)] == [custom_id(i) for i in pending]
    results = store.get_results(handle.run_id)
    assert all(r.answer is not None for r in results)


class _SimulatedCrash(BaseException):
    """Raised in the coordinator thread right after the batch id is stored: the thread dies
    without finalising the run, as if the process had been killed at that moment."""


def test_resume_after_a_crash_polls_the_same_batch_and_creates_none(
    settings: Settings, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))

    def crash(run_id: int, batch_id: str) -> None:
        raise _SimulatedCrash(batch_id)

    with FakeAnthropic(batch_latency=0.5) as srv:
        s = _claude(settings, srv)
        crashing = dataclasses.replace(FAST, on_batch_created=crash)
        handle = start_run(_request(), settings=s, store=store, options=crashing)
        assert handle.thread is not None
        handle.thread.join(30)
        assert died and isinstance(died[0], _SimulatedCrash)
        run_id = handle.run_id
        assert store.get_run(run_id).status == "running"  # nobody finished it
        batch_id = store.get_run(run_id).config["batch_id"]
        assert all(r.status == "pending" for r in store.get_results(run_id))

        # "restart": the dead run becomes interrupted, then resume
        assert store.mark_interrupted() == [run_id]
        assert store.get_run(run_id).status == "interrupted"
        resumed = resume_run(run_id, settings=s, store=store, options=FAST)
        summary = resumed.wait(60)
        calls = srv.batch_calls

    assert summary is not None and summary.status == "completed"
    assert calls["create"] == 1  # NO second batch
    run = store.get_run(run_id)
    assert run.config["batch_id"] == batch_id and run.config["batch_ids"] == [batch_id]
    assert run.summary.generation.batch["created"] == 0
    results = store.get_results(run_id)
    assert all(r.answer and r.answer.startswith(f"Rule {r.index} ") for r in results)
    assert all(p.batch for p in run.summary.usage.passes)


def test_deadline_leaves_the_batch_running_and_resume_collects_it(
    settings: Settings, store: HistoryStore
) -> None:
    with FakeAnthropic(batch_latency=2.0) as srv:
        s = _claude(settings, srv, run_deadline_s=0.5)
        handle = start_run(_request(), settings=s, store=store, options=FAST)
        summary = handle.wait(30)
        assert summary is not None and summary.status == "interrupted"
        assert srv.batch_calls["cancel"] == 0  # the batch is left to finish
        msg = handle.progress().message
        assert "resume" in msg.lower() and store.get_run(handle.run_id).config["batch_id"] in msg
        assert all(r.status == "pending" for r in store.get_results(handle.run_id))

        resumed = resume_run(
            handle.run_id, settings=s.replace(run_deadline_s=60.0), store=store, options=FAST
        )
        assert resumed.wait(60) is not None
        assert srv.batch_calls["create"] == 1
    assert store.get_run(handle.run_id).status == "completed"
    assert all(r.answer is not None for r in store.get_results(handle.run_id))


def test_polling_survives_transient_errors(settings: Settings, store: HistoryStore) -> None:
    faults = {"retrieve": {0: "529", 1: "429"}}
    with FakeAnthropic(batch_latency=0.3, batch_faults=faults) as srv:
        handle = start_run(_request(), settings=_claude(settings, srv), store=store, options=FAST)
        summary = handle.wait(60)
        assert srv.batch_calls["retrieve"] >= 3
    assert summary is not None and summary.status == "completed"
    assert all(r.answer is not None for r in store.get_results(handle.run_id))


def test_rejected_key_fails_the_run_with_an_actionable_message(
    settings: Settings, store: HistoryStore
) -> None:
    with FakeAnthropic(api_key="sk-test-the-only-good-key") as srv:
        handle = start_run(_request(), settings=_claude(settings, srv), store=store, options=FAST)
        summary = handle.wait(30)
    assert summary is not None and summary.status == "failed"
    assert "API key was rejected" in summary.failure and FAKE_KEY not in summary.failure
    assert "batch_id" not in store.get_run(handle.run_id).config


def test_a_vanished_batch_is_replaced_on_resume(settings: Settings, store: HistoryStore) -> None:
    with FakeAnthropic(batch_latency=0.3) as first:
        s = _claude(settings, first, run_deadline_s=0.1)
        handle = start_run(_request(), settings=s, store=store, options=FAST)
        assert handle.wait(30) is not None
        old = store.get_run(handle.run_id).config["batch_id"]
    # the API no longer knows the batch (a restarted stand-in keeps nothing): a new one is sent
    with FakeAnthropic(batch_latency=0.3) as second:
        resumed = resume_run(handle.run_id, settings=_claude(settings, second), store=store, options=FAST)
        assert resumed.wait(60) is not None
        assert second.batch_calls["create"] == 1
    run = store.get_run(handle.run_id)
    assert (
        run.status == "completed" and run.config["batch_ids"][0] == old and len(run.config["batch_ids"]) == 2
    )
    assert all(r.answer is not None for r in store.get_results(handle.run_id))


def test_batch_mode_needs_the_claude_backend(settings: Settings) -> None:
    req = RunRequest(items=ITEMS, backend="offline", mode="batch", suite="none")
    with pytest.raises(InputError, match="Claude backend"):
        req.check(settings.replace(api_key=Secret(FAKE_KEY)))


def test_cli_accepts_batch_mode() -> None:
    from rag_core.cli import _parser

    args = _parser().parse_args(["run", "--questions", "q.json", "--mode", "batch"])
    assert args.mode == "batch"


def test_custom_ids_round_trip() -> None:
    assert [index_of(custom_id(i)) for i in (0, 7, 999)] == [0, 7, 999]
    assert index_of("x1") is None and index_of("q") is None and index_of("q-1") is None


# --- the stand-in's own batch behaviour ------------------------------------------------------------
def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", "x-api-key": FAKE_KEY}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_standin_rejects_bad_batches_and_early_results() -> None:
    with FakeAnthropic(batch_latency=5.0) as srv:
        base = srv.base_url + "/v1/messages/batches"
        assert _http("POST", base, {"requests": []})[0] == 400
        dup = {"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "messages": []}}
        status, text = _http("POST", base, {"requests": [dup, dup]})
        assert status == 400 and "duplicate" in text
        status, text = _http("POST", base, {"requests": [dup]})
        batch = json.loads(text)
        assert status == 200 and batch["processing_status"] == "in_progress" and batch["results_url"] is None
        assert batch["request_counts"]["processing"] == 1
        assert _http("GET", f"{base}/{batch['id']}/results")[0] == 400  # not ended yet
        assert _http("GET", f"{base}/msgbatch_nope")[0] == 404


def test_standalone_standin_keeps_batches_and_answers_judge_calls_with_ragas() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.anthropic_server",
            "--port",
            "0",
            "--ragas",
            "--batch-latency",
            "0.2",
            "--max-seconds",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY "), line
        url = line.split()[1]
        tool = {
            "name": "out",
            "description": "d",
            "input_schema": {
                "type": "object",
                "properties": {"verdict": {"type": "integer"}},
                "required": ["verdict"],
            },
        }
        params = {
            "model": "m",
            "max_tokens": 50,
            "tools": [tool],
            "tool_choice": {"type": "tool", "name": "out"},
            "messages": [{"role": "user", "content": "Judge. input: {} Output: "}],
        }
        status, text = _http("POST", url + "/v1/messages", params)
        assert status == 200 and json.loads(text)["content"][0]["type"] == "tool_use"
        status, text = _http(
            "POST", url + "/v1/messages/batches", {"requests": [{"custom_id": "q0", "params": params}]}
        )
        bid = json.loads(text)["id"]
        time.sleep(0.3)
        status, text = _http("GET", f"{url}/v1/messages/batches/{bid}")  # a later client finds it
        assert status == 200 and json.loads(text)["processing_status"] == "ended"
        status, text = _http("GET", f"{url}/v1/messages/batches/{bid}/results")
        (res,) = [json.loads(x) for x in text.splitlines()]
        assert res["custom_id"] == "q0" and res["result"]["message"]["content"][0]["type"] == "tool_use"
    finally:
        proc.terminate()
        proc.wait(10)


# --- across real process restarts (the CLI), SIGKILL after the batch was sent -------------------------
@pytest.mark.slow
def test_cli_batch_run_killed_then_resumed_in_a_new_process(tmp_path: Path) -> None:
    import signal

    from tests.conftest import SAMPLE_PDF, SAMPLE_QUESTIONS

    data_dir = tmp_path / "data"
    with FakeAnthropic(batch_latency=4.0) as srv:
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "ANTHROPIC_BASE_URL": srv.base_url,
            "RAG_DATA_DIR": str(data_dir),
        }
        subprocess.run(
            [sys.executable, "-m", "rag_core", "ingest", str(SAMPLE_PDF)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rag_core",
                "run",
                "--questions",
                str(SAMPLE_QUESTIONS),
                "--backend",
                "claude",
                "--mode",
                "batch",
                "--suite",
                "none",
                "--quiet",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        store = HistoryStore(data_dir / "history.sqlite3")
        try:
            limit = time.monotonic() + 120
            while time.monotonic() < limit and srv.batch_calls["create"] == 0:
                assert proc.poll() is None, "the CLI run ended before sending its batch"
                time.sleep(0.05)
            run_id = store.list_runs(1)[0].id
            batch_id = _wait_for_batch_id(store, run_id)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        assert all(r.status == "pending" for r in store.get_results(run_id))
        out = tmp_path / "resumed.json"
        done = subprocess.run(
            [sys.executable, "-m", "rag_core", "resume", str(run_id), "--json", str(out), "--quiet"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        calls = srv.batch_calls
    summary = json.loads(out.read_text())
    assert summary["status"] == "completed" and summary["mode"] == "batch"
    assert calls["create"] == 1 and summary["config"]["batch_id"] == batch_id
    assert all(r["answer"] for r in summary["results"])
    assert [p["batch"] for p in summary["usage"]["passes"]] == [True]  # billed at half price
    store.close()
