"""Issue 6, item 1: two browser sessions run at the same time; both complete and both are stored.

Two independent browser contexts (two real clients: separate cookies, storage and Streamlit
sessions) on ONE server. Each opens the Run page and picks its own question set; then both
click "Start run" within about a second of each other, while the other's run is already
executing. Both must reach their own completed summary, and the server's history database must
hold both runs, completed, with every answer and score stored; History lists both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rag_core.storage import HistoryStore
from tests.e2e.conftest import APP_PATH, VIEWPORT, wait_for_app
from tests.e2e.test_user_journey import (
    SAMPLE_SET,
    assert_no_exception,
    choose_radio,
    nav,
    select_option,
    shot,
    wait_for_run_completed,
)

pytestmark = pytest.mark.e2e

SUBSET = "Analyst B: five questions"
#: Longest wait for both runs together, seconds.
BOTH_RUNS_TIMEOUT_S = 150.0


@pytest.fixture
def two_clients(browser) -> Iterator[tuple[Any, Any]]:
    """Two pages in two separate browser contexts (no shared cookies or storage)."""
    contexts = [browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC") for _ in range(2)]
    try:
        pages = []
        for ctx in contexts:
            ctx.set_default_timeout(30_000)
            pages.append(ctx.new_page())
        yield pages[0], pages[1]
    finally:
        for ctx in contexts:
            ctx.close()


def prepare_run_page(page: Any, url: str, question_set: str, mode: str) -> None:
    """Open the app, go to Run, choose the set and the execution mode (not started yet)."""
    page.goto(url)
    wait_for_app(page)
    nav(page, "Run", "Run an evaluation")
    select_option(page, "run-set", question_set)
    choose_radio(page, "run-mode", mode)


def test_two_browser_sessions_run_at_once_and_both_are_stored(browser, start_server, two_clients):
    if not APP_PATH.is_file():
        pytest.skip("app.py does not exist yet")
    server = start_server(APP_PATH)
    store = HistoryStore(server.data_dir / "history.sqlite3")
    a, b = two_clients
    try:
        # Analyst A indexes the sample handbook; analyst B gets a smaller set of their own.
        a.goto(server.url)
        wait_for_app(a)
        a.locator(".st-key-docs-sample").get_by_role("button", name="Index the sample handbook").click()
        a.get_by_text("Indexed 1 of 1 files").first.wait_for(timeout=90_000)
        wait_for_app(a)
        sample = store.get_question_set(SAMPLE_SET)
        store.save_question_set(SUBSET, sample[:5])

        prepare_run_page(a, server.url, SAMPLE_SET, "Async")
        prepare_run_page(b, server.url, SUBSET, "Sequential")
        b.get_by_text("5 questions").first.wait_for()

        # Both click Start within about a second: B's click lands while A's run is executing.
        a.locator(".st-key-run-start button").click()
        a.get_by_role("heading", name="Run #1").first.wait_for()
        b.locator(".st-key-run-start button").click()

        deadline = time.monotonic() + BOTH_RUNS_TIMEOUT_S
        a_id, _, a_s = wait_for_run_completed(a, timeout_ms=int(BOTH_RUNS_TIMEOUT_S * 1000))
        left_ms = max(5_000, int((deadline - time.monotonic()) * 1000))
        b_id, _, b_s = wait_for_run_completed(b, timeout_ms=left_ms)
        shot(a, "two-sessions-a")
        shot(b, "two-sessions-b")
        assert_no_exception(a)
        assert_no_exception(b)
        assert a_id != b_id, f"both sessions show run #{a_id}: session B's run never started"
        assert b.get_by_text(f"Run #{b_id} completed: 5 questions").first.is_visible()
        assert a.get_by_text(f"Run #{a_id} completed: 10 questions").first.is_visible()

        # Both are stored, completed, with every answer and every score.
        runs = {r.id: r for r in store.list_runs()}
        assert set(runs) == {a_id, b_id}
        expected = {a_id: (SAMPLE_SET, "async", 10), b_id: (SUBSET, "sequential", 5)}
        for rid, (qset, mode, n) in expected.items():
            run = runs[rid]
            assert (run.question_set, run.mode, run.status, run.n_questions) == (qset, mode, "completed", n)
            assert run.finished_at is not None
            results = store.get_results(rid)
            assert len(results) == n
            assert all(r.answer and not r.error for r in results), [r.error for r in results]
            offline = {"semantic_similarity", "rouge_l", "context_recall"}
            facts = {"answer_key_facts", "context_key_facts", "decline_behaviour"}
            assert all(set(r.scores) == offline | facts for r in results)
            assert store.get_requests(rid), f"run #{rid} has no request timeline"
        # The two runs really overlapped in time (both were executing at once).
        a_reqs, b_reqs = store.get_requests(a_id), store.get_requests(b_id)
        a_span = (min(t.start for t in a_reqs), max(t.end for t in a_reqs))
        b_span = (min(t.start for t in b_reqs), max(t.end for t in b_reqs))
        assert a_span[0] < b_span[1] and b_span[0] < a_span[1], (a_span, b_span)

        # History, seen from session B, lists both.
        nav(b, "History")
        assert b.get_by_text("2 runs.").first.is_visible()
        assert_no_exception(b)
        print(f"\nrun #{a_id} (A, async, 10 q) {a_s:.1f} s; run #{b_id} (B, sequential, 5 q) {b_s:.1f} s")
    finally:
        store.close()
