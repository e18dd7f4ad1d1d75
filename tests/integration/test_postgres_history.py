"""The CLI and the facade on PostgreSQL: with RAG_DATABASE_URL set, an offline CLI run is stored on
the server (no SQLite file is created) and the History page's facade calls read it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_core.settings import Settings
from rag_core.workspace import Workspace
from tests.conftest import ROOT, SAMPLE_PDF

pytestmark = pytest.mark.slow
N = 12


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_offline_cli_run_is_stored_on_postgresql_and_read_back(tmp_path: Path, pg_url: str) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_DATABASE_URL": pg_url}
    env.pop("ANTHROPIC_API_KEY", None)
    ingest = _cli(env, "ingest", str(SAMPLE_PDF))
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    questions = tmp_path / "q.json"
    questions.write_text(
        json.dumps(
            [
                {"question": f"How many days of annual leave in year {i}?", "ground_truth": "25 days"}
                for i in range(N)
            ]
        )
    )
    out = tmp_path / "out.json"
    run = _cli(
        env,
        "run",
        "--questions",
        str(questions),
        "--backend",
        "offline",
        "--suite",
        "offline",
        "--quiet",
        "--json",
        str(out),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "completed" and data["answered"] == N

    assert not (data_dir / "history.sqlite3").exists()  # the history is on the server
    settings = Settings.load(
        env={"RAG_DATA_DIR": str(data_dir), "RAG_DATABASE_URL": pg_url}, secrets_path=tmp_path / "none.toml"
    )
    ws = Workspace(settings)
    try:
        (record,) = ws.runs()
        assert record.id == data["run_id"] and record.status == "completed"
        results = ws.results(record.id)
        assert len(results) == N and all(r.answer for r in results)
        assert all("rouge_l" in r.scores for r in results)
        assert ws.summary(record.id).n_questions == N
        assert [d.name for d in ws.store.list_documents()] == [SAMPLE_PDF.name]
        before = ws.version()
        ws.store.label_run(record.id, name="on postgres", note=None)
        assert ws.version() != before  # the History page's cache notices writes on the server
    finally:
        ws.close()
