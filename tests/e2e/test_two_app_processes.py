"""Issue 15, item 4: two app processes share one PostgreSQL history and one Chroma server.

The team-server recipe of the README ("Scaling out"), for real: two ``streamlit run app.py``
processes with the same ``RAG_DATABASE_URL`` (a PostgreSQL server the fixtures start), the same
Chroma server (``chroma run``) and the same ``RAG_DATA_DIR``, as a load balancer would spread
analysts over them. Analyst A starts a run on process A; analyst B, on process B, sees it live on
the Run page (read-only, its progress rising as answers are committed) and sees it end; both the
run and its results are on the shared server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from rag_core.models import QAItem
from rag_core.storage import HistoryStore
from tests.conftest import ROOT, SAMPLE_PDF
from tests.e2e.conftest import APP_PATH, VIEWPORT, wait_for_app
from tests.e2e.test_user_journey import assert_no_exception, choose_radio, nav, select_option, shot
from tests.fixtures.chroma_server import chroma_server_fixture, unique_collection  # noqa: F401

pytestmark = pytest.mark.e2e

SHARED_SET = "Shared: 30 questions"
N = 30
RUN_TIMEOUT_MS = 180_000


def _cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rag_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_run_started_in_one_app_process_shows_live_in_the_other(
    browser: Any, start_server: Any, chroma_server: Any, pg_url: str, tmp_path: Path
) -> None:
    if not APP_PATH.is_file():
        pytest.skip("app.py does not exist yet")
    shared = {
        "RAG_DATABASE_URL": pg_url,
        "RAG_CHROMA_HOST": chroma_server.host,
        "RAG_CHROMA_PORT": str(chroma_server.port),
        "RAG_COLLECTION": unique_collection(),
        "RAG_DATA_DIR": str(tmp_path / "shared-data"),
    }
    env = {**os.environ, **shared}
    env.pop("ANTHROPIC_API_KEY", None)
    _cli(env, "ingest", str(SAMPLE_PDF))
    with HistoryStore(pg_url) as store:
        store.save_question_set(
            SHARED_SET,
            [QAItem(f"How many days of annual leave do I get after {i} years?", "25 days") for i in range(N)],
        )
    app_a, app_b = start_server(APP_PATH, env=shared), start_server(APP_PATH, env=shared)
    contexts = [browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC") for _ in range(2)]
    try:
        a, b = (ctx.new_page() for ctx in contexts)
        for page, app in ((a, app_a), (b, app_b)):
            page.set_default_timeout(30_000)
            page.goto(app.url)
            wait_for_app(page)
            nav(page, "Run", "Run an evaluation")
        select_option(a, "run-set", SHARED_SET)
        choose_radio(a, "run-mode", "Sequential")
        a.locator(".st-key-run-start button").click()
        a.get_by_role("heading", name="Run #1").first.wait_for()

        # Process B never ran it, yet shows it live: running, then its progress rising.
        box = b.locator(".st-key-run-elsewhere-1")
        expect(box).to_contain_text("Run #1 is running in another process", timeout=30_000)
        expect(box).to_contain_text(re.compile(rf"[1-9]\d* of {N}"), timeout=60_000)
        shot(b, "two-processes-b-live")
        expect(box.get_by_role("button")).to_have_count(0)  # read-only: no Cancel for another's run

        expect(a.get_by_text(f"Run #1 completed: {N} questions").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
        expect(box).to_contain_text("ended in another process: completed", timeout=30_000)
        assert_no_exception(a)
        assert_no_exception(b)

        nav(b, "History")
        expect(b.get_by_text(re.compile(r"\b1 run\b")).first).to_be_visible()
        with HistoryStore(pg_url) as store:
            (run,) = store.list_runs()
            assert (run.id, run.status, run.n_questions) == (1, "completed", N)
            assert all(r.answer for r in store.get_results(1))
    finally:
        for ctx in contexts:
            ctx.close()
