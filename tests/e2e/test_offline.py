"""Issue 15, item 8: offline means offline — the browser fetches nothing beyond the app's server.

Every request the page makes is routed through Playwright: loopback ones go on, any other one is
recorded and aborted (so the test itself never reaches the internet). The app is used with data in
it — an indexed handbook, a question set, a finished offline run — and every page (Documents with
a chunk preview and a search, Question sets with a CSV export, Run, History's three tabs with
their Plotly charts) is opened. Before the fix the tab icon (``page_icon=":material/policy:"``)
was fetched from ``fonts.gstatic.com`` on every page.

The CSV export is also checked here, in a real browser (issue 15, item 6): the set is called
``leave.csv`` and the download is named ``leave.csv`` (it was ``leave.csv.csv``), with formula
cells guarded.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import ROOT, SAMPLE_PDF, SAMPLE_QUESTIONS
from tests.e2e.conftest import APP_PATH, StreamlitServer, wait_for_app

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
SET_NAME = "leave.csv"
HOSTILE = [
    {"question": '=HYPERLINK("http://evil.example","Click")', "ground_truth": "+1+1"},
    {"question": "@SUM(1+1)*cmd|' /C calc'!A0", "ground_truth": "=cmd|' /C calc'!A0"},
]


def _cli(data_dir: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rag_core", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def offline_server(browser, start_server) -> Iterator[StreamlitServer]:
    """The app with a handbook indexed, a question set and one finished offline run (made with the
    CLI before any browser session opens the workspace)."""
    server = start_server(APP_PATH)
    data = server.data_dir
    _cli(data, "ingest", str(SAMPLE_PDF))
    questions = json.loads(SAMPLE_QUESTIONS.read_text())[:3] + HOSTILE
    qfile = data / "questions.json"
    qfile.write_text(json.dumps(questions))
    _cli(data, "questions", "import", str(qfile), "--name", SET_NAME)
    _cli(data, "run", "--questions", str(qfile), "--backend", "offline", "--quiet")
    yield server


@pytest.fixture
def outside(page) -> list[str]:
    """Requests to anything but the loopback server, recorded and aborted."""
    seen: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname in LOOPBACK:
            r.continue_()
        else:
            seen.append(url)
            r.abort()

    page.context.route("**/*", route)
    return seen


def _open(page: Any, url: str) -> None:
    page.goto(url)
    wait_for_app(page)
    page.wait_for_timeout(500)  # late requests (icons, fonts) start after the first paint


def test_no_request_leaves_the_machine(page, offline_server: StreamlitServer, outside: list[str]) -> None:
    base = offline_server.url
    _open(page, f"{base}/")
    assert page.locator("[data-testid='stException']").count() == 0
    page.get_by_text("northwind_staff_handbook.pdf").first.wait_for(state="attached")  # the list
    page.get_by_role("tab", name="Search the index").click()
    wait_for_app(page)
    query = page.locator(".st-key-docs-search_query input")
    query.fill("How many days of annual leave?")
    query.press("Enter")
    wait_for_app(page)

    _open(page, f"{base}/question_sets")
    _open(page, f"{base}/run")
    _open(page, f"{base}/history")
    for tab in ("Compare runs", "Run details", "Charts"):  # only the open tab is drawn
        page.get_by_role("tab", name=tab, exact=True).first.click()
        wait_for_app(page)
        page.wait_for_timeout(500)
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible")  # Plotly drew, locally

    assert outside == [], f"the browser tried to reach the internet: {sorted(set(outside))}"


def test_question_set_csv_download_is_named_right_and_guarded(
    page, offline_server: StreamlitServer, outside: list[str]
) -> None:
    _open(page, f"{offline_server.url}/question_sets")
    with page.expect_download() as info:
        page.locator(".st-key-qsets-export_csv button").first.click()
    download = info.value
    assert download.suggested_filename == "leave.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert '\'=HYPERLINK("http://evil.example","Click")' in cells and "'+1+1" in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert outside == []
