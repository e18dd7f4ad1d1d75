"""Issue 15, item 5, as the issue saw it: a 100-question CLI run on a nearly full disk.

The disk is "full" for the CLI process only, without root: ``RLIMIT_FSIZE`` (set in the child
before it starts) makes every write that would grow a file past 200 KB fail, the way a disk with
~150 KB free does (SQLite then reports a disk I/O error). Before the fix this run exited 0 with
"0 errors" and ``"status": "running"`` in its JSON while most answers were never stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_PDF

resource = pytest.importorskip("resource")  # POSIX only

pytestmark = pytest.mark.slow

FILE_SIZE_LIMIT = 200_000
N = 100


def _cli(data_dir: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap_file_size() -> None:  # runs in the child, before the CLI starts
        assert limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=cap_file_size if limit else None,
    )


def test_a_full_disk_fails_the_run_and_resume_finishes_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert _cli(data_dir, "ingest", str(SAMPLE_PDF)).returncode == 0
    questions = tmp_path / "q.json"
    questions.write_text(
        json.dumps(
            [
                {
                    "question": f"How many days of annual leave do I get in year {i}?",
                    "ground_truth": "25 days",
                }
                for i in range(N)
            ]
        )
    )
    out = tmp_path / "out.json"
    run = ("run", "--questions", str(questions), "--backend", "offline", "--suite", "none", "--quiet")
    proc = _cli(data_dir, *run, "--json", str(out), limit=FILE_SIZE_LIMIT)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run failed:" in proc.stderr and "history database" in proc.stderr
    assert "running" not in proc.stdout.splitlines()[0]
    data = json.loads(out.read_text())  # written whole (it fits), never half
    assert data["status"] == "failed" and data["failure"]
    assert sum(r["answer"] is not None for r in data["results"]) < N

    # Nothing half-written: with space again, `resume` redoes only what is missing and completes.
    resumed = _cli(data_dir, "resume", str(data["run_id"]), "--json", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = json.loads(out.read_text())
    assert done["status"] == "completed" and done["answered"] == N and done["errors"] == 0
