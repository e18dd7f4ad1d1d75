"""The Claude path in a real browser: a key is configured, answers and judge metrics come from
the loopback Messages API stand-in (real ``anthropic`` SDK, real RAGAS), a compare run shows a
measured speedup, and the request timeline renders. The key never reaches the page.

With ``SAVE_README_SHOTS=1`` it writes ``docs/screenshots/claude-run.png`` and
``docs/screenshots/claude-charts.png`` (the README shows them, captioned as stand-in runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import APP_PATH, StreamlitServer, wait_for_app
from tests.e2e.test_user_journey import (
    CHART_KEYS,
    assert_no_exception,
    choose_radio,
    click_button,
    nav,
    open_tab,
    shot,
    wait_for_chart,
    wait_for_run_completed,
)
from tests.support.anthropic_server import FakeAnthropic
from tests.support.ragas_responder import RagasResponder

pytestmark = pytest.mark.e2e

FAKE_KEY = "sk-test-e2e-fake-key-0123456789-NOT-REAL"
LATENCY_S = 0.4


@pytest.fixture(scope="module")
def claude_server(browser, start_server) -> Iterator[tuple[StreamlitServer, FakeAnthropic]]:
    with FakeAnthropic(latency=LATENCY_S, responder=RagasResponder()) as api:
        server = start_server(
            APP_PATH, env={"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": api.base_url}
        )
        yield server, api


def test_claude_compare_run_shows_speedup_and_timeline(page, claude_server) -> None:
    server, api = claude_server
    page.goto(server.url)
    wait_for_app(page)
    sidebar = page.locator("[data-testid='stSidebar']")
    assert "Claude" in sidebar.inner_text() and "API key: configured" in sidebar.inner_text()

    nav(page, "Documents")
    click_button(page, "docs-sample")
    page.get_by_text("Indexed 1 of 1 files").first.wait_for(timeout=90_000)  # the summary, not the live step
    wait_for_app(page)

    nav(page, "Run")
    choose_radio(page, "run-backend", "Claude")
    choose_radio(page, "run-mode", "Compare")
    main = page.locator("[data-testid='stMain']")
    assert "Estimated Claude usage" in main.inner_text()  # calls and cost before launch
    page.locator(".st-key-run-start button").click()
    run_id, _, _ = wait_for_run_completed(page)
    assert_no_exception(page)
    text = main.inner_text()
    m = re.search(r"Speedup:\s*([\d.]+)× measured", text)
    assert m, text[:2000]
    assert float(m.group(1)) > 2.5  # 10 requests at 0.4 s: sequential ≈ 4 s, async ≈ 0.4 s
    assert "Judge:" in text and "calls" in text
    assert api.peak_concurrency > 1
    shot(page, "claude-run", readme=True)

    nav(page, "History")
    open_tab(page, "Charts")
    for key in CHART_KEYS:
        wait_for_chart(page, key)
    assert_no_exception(page)
    shot(page, "claude-charts", readme=True)

    for element in (page.content(), sidebar.inner_text(), main.inner_text()):
        assert FAKE_KEY not in element
    assert run_id >= 1
