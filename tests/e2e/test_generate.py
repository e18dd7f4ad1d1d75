"""Issue 14 in a real browser: generate questions with Claude (the loopback stand-in through the
real SDK), review them (edit one, reject one), accept them into a new question set, run that set
offline, see the results, and see the set's coverage map. Saves the review queue as ``generate_review.png``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, SAMPLE_PDF
from tests.e2e.conftest import APP_PATH, StreamlitServer, wait_for_app
from tests.e2e.test_user_journey import (
    assert_no_exception,
    choose_radio,
    click_button,
    nav,
    select_option,
    shot,
    wait_for_chart,
    wait_for_run_completed,
)
from tests.support.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.e2e

FAKE_KEY = "sk-" + "test-e2e-generate-0123456789-NOT-REAL"
SET_NAME = "Generated in the browser"
EDITED = "How many unused days of annual leave may I carry over into next year?"


@pytest.fixture(scope="module")
def gen_server(browser, start_server) -> Iterator[tuple[StreamlitServer, FakeAnthropic]]:
    with FakeAnthropic() as api:
        server = start_server(
            APP_PATH, env={"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": api.base_url}
        )
        proc = subprocess.run(
            [sys.executable, "-m", "rag_core", "--data-dir", str(server.data_dir), "ingest", str(SAMPLE_PDF)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        yield server, api


def _store_items(data_dir: Path) -> list[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag_core",
            "--data-dir",
            str(data_dir),
            "generated",
            "list",
            "--status",
            "all",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(proc.stdout)


def test_generate_review_accept_and_run(page, gen_server) -> None:
    server, api = gen_server
    page.goto(f"{server.url}/generate")
    wait_for_app(page)
    main = page.locator("[data-testid='stMain']")
    expect(main.get_by_text("Estimated Claude usage")).to_be_visible()
    n = page.locator(".st-key-gen-n input")
    n.fill("5")
    n.press("Enter")
    wait_for_app(page)
    name = page.locator(".st-key-gen-new_set input")
    name.fill(SET_NAME)
    name.press("Enter")
    wait_for_app(page)
    assert api.count == 0  # the estimate is shown before anything is sent
    click_button(page, "gen-start")
    # The progress fragment polls; when the job ends the page redraws with the queue.
    expect(main.get_by_text(re.compile(r"Generated \d+ of 5"))).to_be_visible(timeout=120_000)
    wait_for_app(page)
    assert_no_exception(page)
    pairs = page.locator("[class*='st-key-gen-pair-']")
    expect(pairs.first).to_be_visible()
    count = pairs.count()
    assert count >= 3
    expect(main.get_by_text("Source:").first).to_be_visible()
    page.locator(f".st-key-gen-pair-{1}").scroll_into_view_if_needed()
    shot(page, "generate_review", readme=True)  # through save_screenshot, the page grown to its content
    expect(page.locator(".st-key-gen-n input")).to_have_value("5")  # the form kept its values

    ids = sorted(int(p["id"]) for p in _store_items(server.data_dir))
    first, second = ids[0], ids[1]
    question = page.locator(f".st-key-gen-q-{first} textarea")
    question.fill(EDITED)
    question.press("Control+Enter")
    wait_for_app(page)
    click_button(page, f"gen-accept-{first}")
    wait_for_app(page)
    expect(main.get_by_text(f"Added 1 to '{SET_NAME}'")).to_be_visible()
    click_button(page, f"gen-reject-{second}")
    wait_for_app(page)
    expect(page.locator(f".st-key-gen-pair-{second}")).to_have_count(0)
    click_button(page, "gen-accept_all")
    wait_for_app(page)
    expect(main.get_by_text(f"to '{SET_NAME}' ({count - 1} questions now)")).to_be_visible()
    expect(main.get_by_text("Nothing waiting for review")).to_be_visible()

    stored = {p["id"]: p for p in _store_items(server.data_dir)}
    assert stored[first]["question"] == EDITED and stored[first]["status"] == "accepted"
    assert stored[second]["status"] == "rejected"

    nav(page, "Run", "Run an evaluation")
    select_option(page, "run-set", SET_NAME)
    wait_for_app(page)
    choose_radio(page, "run-backend", "Offline")
    click_button(page, "run-start")
    run_id, _, _ = wait_for_run_completed(page)
    assert_no_exception(page)
    nav(page, "Review")
    expect(main.get_by_text(EDITED)).to_be_visible()  # the edited question, answered offline
    assert_no_exception(page)

    # Coverage of the accepted set: its questions are counted in the sections they were written
    # from, with that run's correctness.
    nav(page, "Coverage")
    select_option(page, "coverage-set", SET_NAME)
    wait_for_app(page)
    expect(main.get_by_text(f"#{run_id}").first).to_be_visible()
    wait_for_chart(page, "coverage-heatmap")
    tested = main.get_by_text(re.compile(r"^[1-9]\d* of \d+$")).first  # "Sections tested: k of N", k ≥ 1
    expect(tested).to_be_visible()
    assert_no_exception(page)
