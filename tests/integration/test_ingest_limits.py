"""Bounded ingestion through the real CLI in a subprocess (issue 15 item 7): peak memory of a 50 MB
text file and of the largest text accepted, the time budget, and Ctrl-C during `ingest`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_ingest_limits import policy_text

pytestmark = pytest.mark.slow

#: The goal of the issue: a 50 MB text file is refused or indexed within this peak memory.
PEAK_MB_LIMIT = 500


def _big_text(path: Path, mb: float) -> Path:
    """A policy-like text file of ``mb`` MB, written in pieces (the test itself stays small)."""
    block = policy_text(400)
    with path.open("wb") as fh:
        for _ in range(int(mb * 1024 * 1024 / len(block)) + 1):
            fh.write(block + b"\n\n")
    return path


#: Runs the CLI and reports its peak RSS. Linux counts the memory a child had *before* exec (a copy
#: of its parent) in ru_maxrss, and the pytest process grows to hundreds of MB over a full session;
#: so a small interpreter starts the CLI and reaps it with wait4: the CLI's own peak, whatever
#: pytest's size.
_WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
pid, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(data: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """Run the CLI in a subprocess whose own peak RSS is measured → (exit code, stdout, stderr,
    peak RSS MB, seconds)."""
    started = time.monotonic()
    out_path, err_path = data.parent / "cli.out", data.parent / "cli.err"
    rss_path = data.parent / "cli.maxrss"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRAPPER,
                str(rss_path),
                sys.executable,
                "-m",
                "rag_core",
                "--data-dir",
                str(data),
                *args,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + timeout
        while True:  # bounded: poll wait4 until the child ends or the deadline passes
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the CLI did not finish within {timeout} s")
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (
        proc.returncode,
        out_path.read_text(),
        err_path.read_text(),
        int(rss_path.read_text()) / 1024,
        time.monotonic() - started,
    )


def test_a_50_mb_text_file_is_refused_early_within_the_memory_bound(tmp_path: Path) -> None:
    big = _big_text(tmp_path / "dump.txt", 49.5)
    code, _out, err, peak, _seconds = _run_measured(tmp_path / "data", "ingest", str(big), timeout=300)
    assert code == 2, err
    assert "dump.txt: the file is 49.5 MB of text, above the 5 MB limit for .txt files" in err
    assert "Split it into at least 10 smaller files" in err
    assert peak <= PEAK_MB_LIMIT, f"peak RSS {peak:.0f} MB"
    assert peak < 300  # refused from its size: never read, so far below the bound
    docs = subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(tmp_path / "data"), "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "no documents indexed" in docs.stdout


def test_the_largest_accepted_text_stays_within_the_bound_and_the_time_budget(tmp_path: Path) -> None:
    """A 4.8 MB text (just under the 5 MB limit) is read, chunked and embedded for 25 s, then the
    time budget stops it: peak memory stays under the bound and nothing is left in the index."""
    big = _big_text(tmp_path / "handbook.txt", 4.8)
    code, _out, err, peak, seconds = _run_measured(
        tmp_path / "data", "ingest", str(big), env={"RAG_INGEST_BUDGET_S": "25"}, timeout=400
    )
    assert code == 2, err
    assert "handbook.txt: indexing took longer than the 25 s limit (stopped while embedding chunk" in err
    assert "nothing of it was indexed" in err
    assert peak <= PEAK_MB_LIMIT, f"peak RSS {peak:.0f} MB"
    assert seconds < 300
    docs = subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(tmp_path / "data"), "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "no documents indexed" in docs.stdout


def test_ctrl_c_during_ingest_stops_cleanly_and_keeps_earlier_files(tmp_path: Path) -> None:
    from rag_core.storage import HistoryStore

    first, long = tmp_path / "remote_work.md", tmp_path / "long_policy.txt"
    first.write_text("# Remote work\n\nStaff may work from home two days a week.\n")
    long.write_bytes(policy_text(200))
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data), "ingest", str(first), str(long)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAG_EMBED_BATCH": "2", "RAG_TEST_EMBED_DELAY_S": "0.5"},
    )
    try:
        # wait (bounded) until the first file is recorded: the long one is being embedded then
        deadline = time.monotonic() + 240
        recorded: list[str] = []
        while not recorded:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first file was never recorded"
            time.sleep(0.2)
            if (data / "history.sqlite3").exists():
                store = HistoryStore(data / "history.sqlite3")
                try:
                    recorded = [d.name for d in store.list_documents()]
                finally:
                    store.close()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when an assertion above failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (
        "Indexing cancelled — kept remote_work.md (indexed before the cancel); nothing of "
        "long_policy.txt was indexed." in err
    )
    store = HistoryStore(data / "history.sqlite3")
    try:
        assert [d.name for d in store.list_documents()] == ["remote_work.md"]
    finally:
        store.close()
