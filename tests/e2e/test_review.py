"""Issue 12: an analyst labels answers on the Review page with the keyboard, in a real browser.

A temporary data dir gets the sample handbook and one offline run of 20 questions; a Streamlit
server serves app.py on it and Debian's Chromium opens ``/review``. Every answer is labelled with
a key press (1 correct, 2 partly, 3 wrong), one after a typed comment; each verdict must be saved
at once (the store is read back), the page must move on by itself, and no answer may take more
than the issue's 5 s of tool time. The per-answer times go to ``tests/e2e/artifacts/review-times.json``
(``bench/review.py`` measures the same flow for RESULTS.md).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.review import COMMENT, COMMENT_AT, GOAL_S, KEYS, build_review_dir, label_with_keyboard
from rag_core.settings import Settings
from rag_core.workspace import Workspace
from tests.e2e.conftest import (
    APP_PATH,
    ARTIFACTS_DIR,
    StreamlitServer,
    _ensure_artifacts_dir,
    save_screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

ANSWERS = 20


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StreamlitServer, int]]:
    data_dir = tmp_path_factory.mktemp("e2e-review") / "data"
    run_id = build_review_dir(data_dir)
    server = StreamlitServer(APP_PATH, data_dir)
    server.start()
    try:
        yield server, run_id
    finally:
        server.stop()


def _verdicts(data_dir: Path, run_id: int) -> dict:
    settings = Settings.load(env={"RAG_DATA_DIR": str(data_dir), "RAG_SECRETS_FILE": str(data_dir / "none")})
    ws = Workspace(settings)
    try:
        return ws.verdicts(run_id)
    finally:
        ws.close()


def test_label_twenty_answers_with_the_keyboard(page, review_server) -> None:
    server, run_id = review_server
    steps = label_with_keyboard(page, server.url, ANSWERS, ANSWERS)
    save_screenshot(page, "review-done")
    _ensure_artifacts_dir()
    (ARTIFACTS_DIR / "review-times.json").write_text(json.dumps(steps, indent=2))

    saved = _verdicts(server.data_dir, run_id)
    assert sorted(saved) == list(range(ANSWERS))  # every key press saved a verdict, in order
    for i in range(ANSWERS):
        want = {"1": "correct", "2": "partly", "3": "wrong"}[KEYS[i % len(KEYS)]]
        assert saved[i].verdict == want and not saved[i].inherited and saved[i].labelled_at
    assert saved[COMMENT_AT - 1].comment == COMMENT
    times = [s["seconds"] for s in steps]
    assert max(times) <= GOAL_S, times  # the page never makes the analyst wait
    assert statistics.mean(times) <= GOAL_S / 2, times
    # the agreement table is there once 10 verdicts exist, and the headline uses the verdicts
    assert page.get_by_text("Do the metrics agree with you?").is_visible()
    assert page.get_by_text("answers correct (by the analyst's verdict)").first.is_visible()

    # resumable: a new visit opens where review stopped (everything done → the last answer shown,
    # with its verdict); clearing one verdict makes the next visit open that answer
    settings = Settings.load(
        env={"RAG_DATA_DIR": str(server.data_dir), "RAG_SECRETS_FILE": str(server.data_dir / "none")}
    )
    ws = Workspace(settings)
    try:
        assert ws.clear_label(run_id, 6)
    finally:
        ws.close()
    fresh = page.context.new_page()
    try:
        fresh.goto(f"{server.url}/review")
        fresh.get_by_role("heading", name="Q7 of 20").wait_for(state="visible")
        wait_for_app(fresh)
        fresh.get_by_text("Reviewed 19 of 20 answers").first.wait_for(state="visible")
    finally:
        fresh.close()
