"""Issue 14 in a real browser: the coverage map of the sample set, then a changed copy of the
handbook re-uploaded, and the stale flag in the question-set editor with old and new passages.

Screenshots: ``coverage_map`` (README, via ``save_screenshot``) and ``stale-questions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import APP_PATH, wait_for_app
from tests.e2e.test_user_journey import (
    SAMPLE_PDF,
    assert_no_exception,
    index_uploaded,
    nav,
    shot,
    start_offline_run,
    upload,
    wait_for_chart,
    wait_for_run_completed,
)
from tests.support.handbook import STALE_EDITS, handbook_pdf

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def coverage_server(browser, start_server):
    """The real app with its own empty data dir (``browser`` first: no Chromium, no server)."""
    return start_server(APP_PATH)


def test_coverage_map_then_a_changed_policy_flags_questions_in_the_editor(
    page: Any, coverage_server: Any, tmp_path: Path
) -> None:
    page.goto(coverage_server.url)
    wait_for_app(page)
    nav(page, "Documents")
    upload(page, [SAMPLE_PDF])
    index_uploaded(page, "northwind_staff_handbook.pdf — indexed (v1)")
    nav(page, "Run")
    start_offline_run(page, "Async")
    run_id, _, _ = wait_for_run_completed(page)

    # The coverage map of the sample set: 9 of the 14 sections are tested, with that run's results.
    nav(page, "Coverage")
    main = page.locator("[data-testid='stMain']")
    expect(main.get_by_text("9 of 14").first).to_be_visible()
    expect(main.get_by_text(f"#{run_id}").first).to_be_visible()
    wait_for_chart(page, "coverage-heatmap")
    heatmap = page.locator(".st-key-coverage-heatmap")
    expect(heatmap.get_by_text("untested").first).to_be_visible()
    expect(heatmap.get_by_text("11. Grievances").first).to_be_visible()
    assert_no_exception(page)
    shot(page, "coverage_map", readme=True)

    # A new version of the handbook changes two sections.
    changed = tmp_path / SAMPLE_PDF.name
    changed.write_bytes(handbook_pdf(STALE_EDITS))
    nav(page, "Documents")
    upload(page, [changed])
    index_uploaded(page, "re-indexed (content changed) (v2)")
    expect(main.get_by_text("2 questions to review: the policy changed").first).to_be_visible()

    # The editor shows both questions with the old and the new passage side by side.
    nav(page, "Question sets")
    expect(main.get_by_text("2 questions to review: the policy changed").first).to_be_visible()
    stale = page.locator(".st-key-qsets-stale-q2")
    expect(stale.get_by_text("review: the policy changed").first).to_be_visible()
    expect(stale.get_by_text("Old passage")).to_be_visible()
    expect(stale.get_by_text("up to five days of unused holiday", exact=False)).to_be_visible()
    expect(stale.get_by_text("up to eight days of unused holiday", exact=False)).to_be_visible()
    expect(page.locator(".st-key-qsets-stale-q7")).to_be_visible()
    assert_no_exception(page)
    shot(page, "stale-questions")
