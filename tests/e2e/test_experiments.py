"""Experiments in a real browser (Debian's Chromium): make a configuration on the Configurations
page, sweep three configurations over the sample set on the Sweeps page, read the leaderboard
(Plotly bars with confidence intervals, a configuration marked significantly worse), then compare
two of the sweep's runs in History: what changed, and a verdict per metric.

With ``SAVE_README_SHOTS=1`` it writes ``docs/screenshots/sweep-leaderboard.png`` and
``docs/screenshots/comparison-verdicts.png`` for the README.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from rag_core.storage import HistoryStore
from tests.e2e.conftest import APP_PATH, wait_for_app
from tests.e2e.test_user_journey import (
    assert_no_exception,
    click_button,
    nav,
    open_tab,
    select_option,
    shot,
    wait_for_chart,
)

pytestmark = pytest.mark.e2e

#: Longest wait for the sweep (3 configurations × 10 questions offline, one index build), milliseconds.
SWEEP_TIMEOUT_MS = 420_000
TINY = "tiny-chunks"


@pytest.fixture(scope="module")
def experiments_server(browser, start_server):
    """A server of the real app with its own empty data dir (``browser`` first: no Chromium, no server)."""
    if not APP_PATH.is_file():
        pytest.skip("app.py does not exist yet")
    return start_server(APP_PATH)


def _fill_number(page, key: str, value: str) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(value)
    box.press("Tab")


def test_configurations_sweep_leaderboard_and_comparison_verdicts(page, experiments_server) -> None:
    page.goto(experiments_server.url)
    wait_for_app(page)
    nav(page, "Documents")
    click_button(page, "docs-sample")
    page.get_by_text("Indexed 1 of 1 files").first.wait_for(timeout=90_000)  # the summary, not the live step
    wait_for_app(page)

    # --- a configuration: clone default, then edit it (a new version) -----------------------------
    nav(page, "Configurations", "Assistant configurations")
    page.locator(".st-key-configs-clone_name input").fill(TINY)
    click_button(page, "configs-clone", "Clone")
    wait_for_app(page)
    page.get_by_text(f"Created {TINY} v1").first.wait_for()
    k = f"configs-f-{TINY}-1-"
    _fill_number(page, k + "top_k", "2")
    _fill_number(page, k + "chunk_size", "200")
    _fill_number(page, k + "chunk_overlap", "0")
    page.locator(f".st-key-{k}note input").fill("tiny chunks, two of them")
    wait_for_app(page)
    click_button(page, "configs-save")
    wait_for_app(page)
    page.get_by_text(f"Saved {TINY} v2").first.wait_for()
    assert_no_exception(page)

    # --- a sweep: default + tiny chunks + a grid point (top-k 1) ------------------------------------
    nav(page, "Sweeps")
    configs = page.locator(".st-key-sweeps-configs")
    if f"{TINY} v2" not in configs.inner_text():  # the first two configurations are preselected
        configs.click()
        page.get_by_role("option", name=re.compile(rf"^{TINY} v2")).first.click()
        page.keyboard.press("Escape")
        wait_for_app(page)
    assert "default v1" in configs.inner_text() and f"{TINY} v2" in configs.inner_text()
    page.locator("[data-testid='stExpander']").filter(has_text="Grid over a base configuration").locator(
        "summary"
    ).click()
    page.locator(".st-key-sweeps-grid_top_k input").fill("1")
    page.locator(".st-key-sweeps-grid_top_k input").press("Tab")
    page.locator(".st-key-sweeps-name input").fill("Chunking and top-k")
    page.locator(".st-key-sweeps-name input").press("Tab")
    wait_for_app(page)
    info = page.locator("[data-testid='stAlert']").filter(has_text="configurations × 10 questions").first
    info.wait_for()
    assert "3 configurations × 10 questions" in info.inner_text()
    assert "Offline: no API calls" in info.inner_text()
    click_button(page, "sweeps-start", "Start sweep")
    page.get_by_text("Reused instead of recomputed").first.wait_for(timeout=SWEEP_TIMEOUT_MS)
    wait_for_app(page)
    wait_for_chart(page, "sweeps-fig_leaderboard")
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    # The leaderboard says which configurations are significantly worse than the best (or that none
    # is, with these 10 questions); either way the statement is shown.
    verdict = page.get_by_text(re.compile(r"significantly worse than the best on")).first
    verdict.wait_for()
    assert TINY in verdict.inner_text() or "No configuration is significantly worse" in verdict.inner_text()
    assert_no_exception(page)
    shot(page, "sweep-leaderboard", readme=True)

    # --- History: default (baseline) vs tiny chunks (candidate) --------------------------------------
    with HistoryStore(experiments_server.data_dir / "history.sqlite3") as store:
        sweep = store.list_sweeps()[0]
        runs = {}
        for rid in sweep.run_ids:
            ident = store.get_run(rid).identity
            assert ident is not None and ident.config is not None
            runs[ident.config.name] = rid
    nav(page, "History")
    open_tab(page, "Compare runs")
    select_option(
        page, "history-baseline", re.compile(rf"^#{runs['default']} ·"), filter_text=f"#{runs['default']} "
    )
    select_option(page, "history-candidate", re.compile(rf"^#{runs[TINY]} ·"), filter_text=f"#{runs[TINY]} ")
    changes = page.locator(".st-key-history-changes")
    expect(changes).to_contain_text(f"What changed from #{runs['default']} to #{runs[TINY]}")
    wait_for_chart(page, "history-fig_compare")
    verdicts = page.locator(".st-key-history-fig_compare").text_content() or ""
    # a verdict is written above each metric's bars ("▼ worse", "▲ better" or "≈ no detectable
    # difference", whichever the paired test finds on these 10 questions)
    assert "▼ worse" in verdicts or "no detectable difference" in verdicts, verdicts[:500]
    assert_no_exception(page)
    shot(page, "comparison-verdicts", readme=True)
