"""The Claude backend end to end through the CLI, against the loopback Messages API stand-in.

The real ``anthropic`` SDK and the real RAGAS code talk HTTP to a server on 127.0.0.1; the
key is a fake one, and afterwards every byte the product wrote is searched for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_PDF, SAMPLE_QUESTIONS
from tests.support.anthropic_server import FakeAnthropic
from tests.support.ragas_responder import RagasResponder

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-test-0123456789abcdefghij-NOT-REAL"


def _cli(
    data_dir: Path, base_url: str, *args: str, key: str = FAKE_KEY, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_BASE_URL": base_url,
        "RAG_DATA_DIR": str(data_dir),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rag_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("claude")
    subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), "ingest", str(SAMPLE_PDF)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return data_dir


def test_compare_mode_prints_and_stores_the_speedup(indexed: Path) -> None:
    with FakeAnthropic(latency=0.5) as srv:
        out = indexed / "compare.json"
        proc = _cli(
            indexed,
            srv.base_url,
            "run",
            "--questions",
            str(SAMPLE_QUESTIONS),
            "--mode",
            "compare",
            "--concurrency",
            "10",
            "--suite",
            "none",
            "--json",
            str(out),
            "--quiet",
        )
        peak = srv.peak_concurrency
        n_requests = srv.count
    summary = json.loads(out.read_text())
    g = summary["generation"]
    assert summary["backend"] == "claude" and summary["mode"] == "compare"
    assert n_requests == 20  # 10 sequential + 10 async
    assert peak == 10
    assert g["ideal_speedup"] == 10
    # sequential ≈ 10 × 0.5 s, async ≈ 0.5 s: far above 1 even on a loaded machine
    assert g["sequential_s"] > 4.5 and g["async_s"] < g["sequential_s"] / 3
    assert g["speedup_measured"] > 3 and g["speedup_estimated"] > 3
    assert "measured" in proc.stdout and "×" in proc.stdout
    assert summary["usage"]["input_tokens"] > 0 and summary["usage"]["cost_usd"] > 0
    assert all(r["answer"] for r in summary["results"])


def test_invalid_key_stops_at_once_with_a_clear_message(indexed: Path) -> None:
    with FakeAnthropic(api_key="sk-test-the-only-accepted-key") as srv:
        proc = _cli(
            indexed,
            srv.base_url,
            "run",
            "--questions",
            str(SAMPLE_QUESTIONS),
            "--suite",
            "none",
            "--concurrency",
            "2",
            "--json",
            str(indexed / "bad.json"),
            "--quiet",
            check=False,
        )
        n_requests = srv.count
    summary = json.loads((indexed / "bad.json").read_text())
    assert proc.returncode == 1 and summary["status"] == "failed"  # CI must not go green
    assert "No question could be answered" in proc.stderr and "key" in proc.stderr.lower()
    assert summary["generation"]["speedup_estimated"] is None  # not computed from failed requests
    assert n_requests <= 3  # fatal: no retries, unstarted questions never start
    assert summary["errors"] == 10
    assert all("key" in (r["error"] or "").lower() for r in summary["results"])
    assert FAKE_KEY not in proc.stdout + proc.stderr + json.dumps(summary)


def test_judge_run_then_secrets_never_written(indexed: Path, tmp_path: Path) -> None:
    """A whole Claude-backed run (answers + judge metrics + exports): the key appears nowhere."""
    with FakeAnthropic(latency=0.05, responder=RagasResponder()) as srv:
        out = tmp_path / "judge.json"
        proc = _cli(indexed, srv.base_url, "run", "--questions", str(SAMPLE_QUESTIONS), "--json", str(out))
        first_calls = srv.count
        again = _cli(
            indexed,
            srv.base_url,
            "run",
            "--questions",
            str(SAMPLE_QUESTIONS),
            "--json",
            str(tmp_path / "again.json"),
        )
        second_calls = srv.count - first_calls
    summary = json.loads(out.read_text())
    assert summary["suite"] == "judge"
    assert set(summary["metrics"]) == {
        "answer_key_facts",  # key facts and declines are scored alongside the judge
        "context_key_facts",
        "decline_behaviour",
        "faithfulness",
        "answer_relevancy",
        "context_precision",
        "context_recall",
    }
    for m in summary["metrics"].values():
        # the sample's question to decline is skipped by the metrics that need an expected answer
        assert m["scored"] + m["failed"] + m["skipped"] == 10 and m["scored"] >= 8
    assert summary["metrics"]["context_recall"]["skipped"] == 1
    assert summary["metrics"]["decline_behaviour"]["scored"] == 10  # one Claude check per answer
    assert summary["declines"]["method"] == "claude" and summary["headline"]["total"] == 10
    assert summary["judge"]["calls"] > 0
    usage = summary["usage"]  # the judge's own tokens are priced too
    assert usage["judge_input_tokens"] > 0 and usage["judge_cost_usd"] > 0
    assert usage["cost_usd"] == pytest.approx(usage["answer_cost_usd"] + usage["judge_cost_usd"], abs=1e-5)
    assert any(d["reason"] for r in summary["results"] for d in r["score_details"].values())
    # the judge cache makes the identical re-run free (decline checks too): only the 10 answers are
    # requested again
    assert json.loads((tmp_path / "again.json").read_text())["judge"]["calls"] == 0
    assert second_calls == 10

    exports = [
        _cli(indexed, srv.base_url, "export", str(summary["run_id"]), "--format", f).stdout
        for f in ("csv", "json")
    ]
    logs = proc.stdout + proc.stderr + again.stdout + again.stderr + "".join(exports)
    assert FAKE_KEY not in logs
    needle = FAKE_KEY.encode()
    for path in indexed.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"the API key was written to {path}"
