"""Crash safety: SIGKILL a run mid-way; on restart it is 'interrupted' with everything finished
before the kill, and resume re-runs only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_core.storage import HistoryStore
from tests.conftest import ROOT, SAMPLE_PDF, SAMPLE_QUESTIONS
from tests.support.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.slow
FAKE_KEY = "sk-test-not-a-real-key-crash"


def _env(data_dir: Path, base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "ANTHROPIC_BASE_URL": base_url,
        "RAG_DATA_DIR": str(data_dir),
    }


def _answers(store: HistoryStore, run_id: int) -> int:
    return sum(1 for r in store.get_results(run_id) if r.answer is not None)


def test_sigkill_mid_run_then_resume_redoes_only_the_missing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), "ingest", str(SAMPLE_PDF)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with FakeAnthropic(latency=1.0) as srv:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rag_core",
                "run",
                "--questions",
                str(SAMPLE_QUESTIONS),
                "--concurrency",
                "2",
                "--suite",
                "offline",
                "--quiet",
            ],
            cwd=ROOT,
            env=_env(data_dir, srv.base_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        store = HistoryStore(data_dir / "history.sqlite3")
        try:
            deadline = time.monotonic() + 120
            run_id = None
            while time.monotonic() < deadline:
                runs = store.list_runs() if (data_dir / "history.sqlite3").exists() else []
                if runs:
                    run_id = runs[0].id
                    if _answers(store, run_id) >= 3:
                        break
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            assert run_id is not None, "the run never started"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        before_kill = {r.index: r.answer for r in store.get_results(run_id) if r.answer is not None}
        assert 3 <= len(before_kill) < 10
        requests_before_resume = srv.count

        # restart: the run shows as interrupted, with the finished answers kept
        listing = subprocess.run(
            [sys.executable, "-m", "rag_core", "runs"],
            cwd=ROOT,
            env=_env(data_dir, srv.base_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "interrupted" in listing.stdout
        assert store.get_run(run_id).status == "interrupted"

        out = tmp_path / "resumed.json"
        subprocess.run(
            [sys.executable, "-m", "rag_core", "resume", str(run_id), "--json", str(out), "--quiet"],
            cwd=ROOT,
            env=_env(data_dir, srv.base_url),
            check=True,
            capture_output=True,
            timeout=300,
        )
        resumed_requests = srv.count - requests_before_resume
        total_requests = srv.count

    summary = json.loads(out.read_text())
    assert summary["status"] == "completed"
    assert summary["run_id"] == run_id
    assert resumed_requests == 10 - len(before_kill)  # only the missing answers were asked for
    results = summary["results"]
    assert all(r["answer"] for r in results)
    for i, text in before_kill.items():  # what was finished before the kill is kept as it was
        assert results[i]["answer"] == text
    # every question scored, but the sample's question to decline, which the reference metrics skip
    similarity = summary["metrics"]["semantic_similarity"]
    assert (similarity["scored"], similarity["skipped"], similarity["failed"]) == (9, 1, 0)
    # The bill and the clock cover both attempts: every request the server saw (including those
    # in flight at the kill) is counted, and the 5 waves of 1 s (10 questions at concurrency 2)
    # are in the generation time although the resume itself needed fewer.
    assert summary["timings"]["attempts"] == 2
    assert summary["usage"]["answer_calls"] == total_requests
    attempts = HistoryStore(data_dir / "history.sqlite3").get_attempts(run_id)
    first, second = (float(a["phases"].get("generation", 0.0)) for a in attempts)
    assert first > 0 and second > 0  # the killed attempt's generation time was kept
    assert summary["generation"]["async_s"] == pytest.approx(first + second)
    assert summary["timings"]["total_s"] >= summary["timings"]["generation_s"] >= first + second - 1e-6
