"""Issue 15, item 5: a failed write ends the run as failed, loudly; a damaged history is refused.

Faults are made without root tricks:

* a full disk — SQLite's ``PRAGMA max_page_count`` on the store's own connection caps the file a
  few pages above its size, so the next writes fail with SQLITE_FULL exactly as on a full disk;
* a lost lock — another connection holds the write lock longer than the store's busy timeout;
* a damaged file — a page of garbage written over one of the database's index pages.

Runs go through the real executor and store; answers come from the loopback Anthropic stand-in
and retrieval is replaced by fixed contexts (no embedding model loads), like test_run_summary.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag_core import cli
from rag_core.errors import StorageError
from rag_core.models import Chunk, QAItem, ScoredChunk
from rag_core.runs import executor
from rag_core.runs.executor import start_run
from rag_core.runs.request import RunRequest
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore

FAKE_KEY = "sk-test-not-a-real-key-faults"
N = 100


def _items(n: int = N) -> tuple[QAItem, ...]:
    return tuple(
        QAItem(f"How many days does rule {i} give?", f"Rule {i} gives {i + 10} days.") for i in range(n)
    )


def _context(i: int) -> list[ScoredChunk]:
    text = f"Rule {i} gives {i + 10} days of leave. " + "Policy text that fills the row. " * 30
    return [ScoredChunk(Chunk(f"h:{i}", text, "handbook.pdf", 1, i, "h"), 0.9)]


@pytest.fixture(autouse=True)
def _fixed_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_retrieve(
        settings: Settings, questions: list[str], top_k: int, collection: str = ""
    ) -> list[list[ScoredChunk]]:
        return [_context(int(q.split("rule ")[1].split()[0])) for q in questions]

    monkeypatch.setattr(executor, "retrieve_contexts", fake_retrieve)


@pytest.fixture
def store(settings: Settings) -> Iterator[HistoryStore]:
    s = HistoryStore(settings.db_path, busy_timeout_s=0.3)
    yield s
    s.close()


@pytest.fixture
def claude(settings: Settings) -> Iterator[Settings]:
    from tests.support.anthropic_server import FakeAnthropic

    with FakeAnthropic(latency=0.01) as server:
        yield settings.replace(api_key=Secret(FAKE_KEY), base_url=server.base_url)


def _fill_disk(store: HistoryStore, spare_pages: int = 2) -> None:
    """Cap the database a few pages above its current size: later writes fail like a full disk."""
    with store._lock:  # the store's own connection: the cap is a per-connection pager setting
        conn = store._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def _request(n: int = N, **kw: Any) -> RunRequest:
    return RunRequest(items=_items(n), backend="claude", mode="async", suite="none", concurrency=4, **kw)


def _assert_whole_rows(store: HistoryStore, run_id: int) -> None:
    """Nothing half-written: every result is either stored whole or still pending."""
    for r in store.get_results(run_id):
        if r.answer is not None:
            assert r.contexts and r.model and r.error is None
        else:
            assert r.contexts == [] or r.error is not None


# --- 1. a full disk mid-run -------------------------------------------------------------------------
def test_full_disk_mid_run_fails_the_run_with_the_reason(store: HistoryStore, claude: Settings) -> None:
    handle = start_run(_request(), settings=claude, store=store)
    _fill_disk(store)  # the run record and its pending rows fit; the answers do not
    summary = handle.wait(60)
    p = handle.progress()
    assert p.status == "failed", p
    assert "disk holding the history database" in p.message and "is full" in p.message
    assert "resume the run" in p.message
    answered = sum(r.answer is not None for r in store.get_results(handle.run_id))
    assert answered < N  # the run stopped instead of carrying on without storing
    _assert_whole_rows(store, handle.run_id)
    # Even when the final summary does not fit, the stored status is no longer "running"
    # (the smaller status-only write still fits), and the handle never reports a pass.
    assert store.get_run(handle.run_id).status == "failed"
    if summary is not None:
        assert summary.status == "failed" and "is full" in (summary.failure or "")


def test_lost_lock_mid_run_fails_the_run(store: HistoryStore, claude: Settings) -> None:
    handle = start_run(_request(40), settings=claude, store=store)
    other = sqlite3.connect(store.db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process takes the write lock and keeps it
        assert handle.wait(60) is None  # the final status could not be written either
    finally:
        other.execute("ROLLBACK")
        other.close()
    p = handle.progress()
    assert p.status == "failed"
    assert "locked by another process" in p.message
    assert "final result could not be saved" in p.message
    _assert_whole_rows(store, handle.run_id)


# --- the CLI: exit 1, "failed" in --json, never "running" with exit 0 --------------------------------
def _follow(handle: Any, store: HistoryStore, settings: Settings, json_out: Path) -> int:
    args = SimpleNamespace(quiet=True, json_out=json_out)
    return cli._follow(handle, store, settings, args, {})


def test_cli_exits_1_and_json_says_failed_when_the_disk_fills(
    store: HistoryStore, claude: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = start_run(_request(), settings=claude, store=store)
    _fill_disk(store)
    out = tmp_path / "out.json"
    assert _follow(handle, store, claude, out) == 1
    data = json.loads(out.read_text())
    assert data["status"] == "failed" and "is full" in data["failure"]
    assert data["errors"] == 0 and data["answered"] < N  # "0 errors" no longer reads as a pass
    err = capsys.readouterr().err
    assert "run failed:" in err and "is full" in err


def test_cli_exits_1_when_even_the_final_status_cannot_be_written(
    store: HistoryStore, claude: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = start_run(_request(40), settings=claude, store=store)
    other = sqlite3.connect(store.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        handle.wait(60)
        out = tmp_path / "out.json"
        assert _follow(handle, store, claude, out) == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.get_run(handle.run_id).status == "running"  # what the store could not be told …
    data = json.loads(out.read_text())
    assert data["status"] == "failed"  # … is not what the CLI reports
    assert "final result could not be saved" in data["failure"]
    assert "run failed:" in capsys.readouterr().err


def test_json_that_cannot_be_written_is_not_left_half_written(
    store: HistoryStore, claude: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = start_run(_request(3), settings=claude, store=store)
    handle.wait(60)
    target = tmp_path / "out.json"
    target.mkdir()  # a folder where the file should go: the write fails
    assert _follow(handle, store, claude, target) == 1
    assert "could not write the run summary" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.part"))


# --- 2. a damaged history database --------------------------------------------------------------------
def _damage_an_index_page(path: Path) -> None:
    with sqlite3.connect(path) as raw:
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'requests_run'").fetchone()[0]
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes((i * 37 + 11) % 256 for i in range(page_size)))


def test_a_page_of_garbage_in_an_index_is_detected_at_start_up(settings: Settings, claude: Settings) -> None:
    path = settings.db_path
    with HistoryStore(path) as s:
        assert start_run(_request(5), settings=claude, store=s).wait(60) is not None
    _damage_an_index_page(path)  # the store is closed: everything is checkpointed into the file
    with pytest.raises(StorageError) as info:
        HistoryStore(path)
    message = str(info.value)
    assert str(path) in message and "is damaged" in message
    assert "Move the file aside" in message and "restore a backup" in message
    # Nothing is written into it: the file is refused before any run can be created.
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_a_store_opened_before_the_damage_refuses_new_runs(settings: Settings, claude: Settings) -> None:
    path = settings.db_path
    s = HistoryStore(path)
    try:
        assert start_run(_request(5), settings=claude, store=s).wait(60) is not None
        with s._lock:
            s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _damage_an_index_page(path)
            s._conn.execute("PRAGMA cache_size = 0")  # no cached copy of the good page
        with pytest.raises(StorageError, match="is damaged"):
            start_run(_request(5), settings=claude, store=s)
        assert len(s.list_runs()) == 1
    finally:
        s.close()


def test_quick_check_passes_on_a_healthy_database(settings: Settings) -> None:
    with HistoryStore(settings.db_path) as s:
        s.check()  # no exception
