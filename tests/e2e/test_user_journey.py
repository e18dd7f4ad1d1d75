"""Issue 5, item 7: a new user does the whole loop in a real browser (Debian's Chromium).

Empty data dir → open the app → upload the sample PDF on Documents and see it listed → add a
question to the sample set in the data editor and save it → start an offline run and watch its
live progress reach the summary → run again in compare mode → open History and see every Plotly
chart render (comparison, speedup, phases, trend, request timeline, heat map) → drill down.

It also covers the browser chain the former smoke test checked: server on a free port →
``/_stcore/health`` → Chromium → finished script runs → text and Plotly SVGs visible → PNGs saved.

Screenshots of every step go to ``tests/e2e/artifacts/journey-*.png``; with
``SAVE_README_SHOTS=1`` the four README shots are also written to ``docs/screenshots/``:
``documents.png``, ``run.png``, ``history.png`` and ``history-charts.png``.

The helpers at the top (navigation, waits, editor input, tall screenshots) are reused by the
other e2e modules of this directory; they are plain functions, not tests.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from rag_core.storage import HistoryStore
from tests.e2e.conftest import (
    APP_PATH,
    ARTIFACTS_DIR,
    ROOT,
    _ensure_artifacts_dir,
    next_paint,
    save_screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
SAMPLE_SET = "Sample: staff handbook"
SAMPLE_QUESTIONS = ROOT / "data" / "sample" / "questions.json"
NEW_QUESTION = "How many days of annual leave does a full-time employee get?"
NEW_TRUTH = "Full-time employees get 27 days of annual leave plus bank holidays."

#: Longest wait for an offline run of the sample set to finish, milliseconds (issue: ≤ 120 s).
RUN_TIMEOUT_MS = 120_000
#: Longest wait for indexing the sample PDF, milliseconds.
INDEX_TIMEOUT_MS = 90_000
#: Tallest screenshot, pixels (the page scrolls inside ``stMain``; we grow the viewport instead).
MAX_SHOT_HEIGHT = 3200
#: Keys of the Charts tab's Plotly charts (CSS class ``st-key-<key>``: dots → dashes).
CHART_KEYS = (
    "history-fig_speedup",
    "history-fig_phases",
    "history-fig_trend",
    "history-fig_timeline",
    "history-fig_heatmap",
)
#: Screenshots copied to docs/screenshots/ with SAVE_README_SHOTS=1 (the README links history.png).
README_SHOTS = ("documents", "run", "history", "history-charts")
COMPLETED_RE = re.compile(r"Run #(\d+) completed")
ENDED_BADLY_RE = re.compile(r"Run #\d+ (failed|was cancelled|was interrupted)")
#: Records in ``window.__sawProgress`` whether a progress bar was ever on the page from now on.
WATCH_PROGRESS_JS = """() => {
  const seen = () => { if (document.querySelector("[data-testid='stProgress']")) window.__sawProgress = true; };
  window.__sawProgress = false;
  seen();
  if (window.__progressWatch) window.__progressWatch.disconnect();
  window.__progressWatch = new MutationObserver(seen);
  window.__progressWatch.observe(document.body, {childList: true, subtree: true});
}"""


# --------------------------------------------------------------------------------------------
# Helpers shared by the e2e modules
# --------------------------------------------------------------------------------------------
def nav(page: Any, title: str, heading: str | None = None) -> None:
    """Click the sidebar navigation entry ``title`` and wait until ``heading`` (default: the
    page's title) is shown and the script run has finished."""
    link = page.locator("[data-testid='stSidebarNav'] a").filter(
        has_text=re.compile(rf"{re.escape(title)}\s*$")
    )
    link.first.click()
    page.get_by_role("heading", name=heading or title).first.wait_for(state="visible")
    wait_for_app(page)


def click_button(page: Any, key: str, name: str | None = None) -> None:
    """Click the button of the widget whose key's CSS class is ``st-key-<key>``."""
    scope = page.locator(f".st-key-{key}")
    button = scope.get_by_role("button", name=name) if name else scope.locator("button")
    button.first.click()


def choose_radio(page: Any, key: str, label_start: str) -> None:
    """Select the radio option whose label starts with ``label_start``."""
    page.locator(f".st-key-{key}").get_by_text(label_start, exact=False).first.click()
    wait_for_app(page)


def upload(page: Any, files: list[Path] | list[dict[str, Any]]) -> None:
    """Put files into the Documents uploader (paths, or Playwright's name/mimeType/buffer dicts)."""
    page.locator(".st-key-docs-upload input[type=file]").set_input_files(files)
    page.locator(".st-key-docs-index button:not([disabled])").first.wait_for(state="visible")
    wait_for_app(page)


def index_uploaded(page: Any, expect_text: str) -> None:
    """Click "Index files" and wait until ``expect_text`` (e.g. the outcome line) is shown."""
    click_button(page, "docs-index", "Index files")
    page.get_by_text(expect_text, exact=False).first.wait_for(state="visible", timeout=INDEX_TIMEOUT_MS)
    wait_for_app(page, timeout_ms=INDEX_TIMEOUT_MS)


def editor_add_row(page: Any, key: str, values: list[str]) -> None:
    """Add one row to the data editor ``key`` with one value per column (left to right).

    The "+" button sits in the toolbar that appears on hover; the grid then scrolls so the new
    row is the last one shown. Double-clicking its first cell opens the overlay editor (a
    ``textarea.gdg-input``); ``fill`` sets the whole value (no swallowed first keystroke). Tab
    commits and moves one cell right, Enter opens that cell's editor, the last Enter commits.
    Keyboard moves, not coordinates: the page and the grid scroll after every commit. The grid
    commits what its cell editor has rendered, so each commit waits for the next paint (see
    test_editor_and_urls.py for the measurements).
    """
    editor = page.locator(f".st-key-{key}")
    editor.hover()
    editor.get_by_role("button", name="Add row").click()
    wait_for_app(page)
    grid = editor.locator("[data-testid='stDataFrameResizable']")
    box = grid.bounding_box()
    assert box is not None, "the data editor is not visible"
    page.mouse.dblclick(box["x"] + 120, box["y"] + box["height"] - 18)  # new row, first column
    text_box = page.locator("textarea.gdg-input")
    for i, value in enumerate(values):
        if i:
            page.keyboard.press("Tab")
            text_box.wait_for(state="detached", timeout=5_000)
            page.keyboard.press("Enter")
        expect(text_box).to_be_focused(timeout=5_000)
        text_box.fill(value)
        next_paint(page)
    page.keyboard.press("Enter")
    text_box.wait_for(state="detached", timeout=5_000)
    wait_for_app(page)


def wait_for_run_completed(page: Any, timeout_ms: int = RUN_TIMEOUT_MS) -> tuple[int, bool, float]:
    """Wait (bounded) for the Run page's summary; returns (run id, progress was seen, seconds).

    "Progress seen" is true when the live fragment drew its progress bar at least once (a
    MutationObserver in the page records it, so a bar shown between two checks is not missed).
    Raises ``AssertionError`` at once if the run failed, was cancelled or interrupted.
    """
    started = time.monotonic()
    page.evaluate(WATCH_PROGRESS_JS)
    completed = page.get_by_text(COMPLETED_RE).first
    failed = page.get_by_text(ENDED_BADLY_RE).first
    expect(completed.or_(failed).first, "no 'Run #… completed' summary").to_be_visible(timeout=timeout_ms)
    if failed.count():
        raise AssertionError(f"the run did not complete: {failed.inner_text()}")
    m = COMPLETED_RE.search(completed.inner_text())
    assert m
    wait_for_app(page)
    seen_progress = bool(page.evaluate("() => window.__sawProgress === true"))
    return int(m.group(1)), seen_progress, time.monotonic() - started


PROGRESS_RE = re.compile(r"(Generating answers|Scoring answers)[^:]*: [1-9]\d* of \d+")


def wait_for_live_progress(page: Any, timeout_ms: int = RUN_TIMEOUT_MS) -> bool:
    """Wait (bounded) until the live fragment shows work done ("Scoring answers: 3 of 11");
    False if the run finished (or failed) first."""
    progress = page.get_by_text(PROGRESS_RE).first
    ended = page.get_by_text(re.compile(r"Run #\d+ (completed|failed|was cancelled|was interrupted)")).first
    try:
        expect(progress.or_(ended).first).to_be_visible(timeout=timeout_ms)
    except AssertionError:
        return False
    return progress.count() > 0 and progress.is_visible()


def start_offline_run(page: Any, mode_label: str, question_set: str | None = None) -> None:
    """On the Run page: optionally pick ``question_set``, choose the execution mode by its label
    start ("Async", "Compare", "Sequential") and click Start run."""
    if question_set is not None:
        select_option(page, "run-set", question_set)
    choose_radio(page, "run-mode", mode_label)
    start = page.locator(".st-key-run-start button")
    assert start.is_enabled(), (
        "Start run is disabled: " + page.locator("[data-testid='stMain']").inner_text()[:800]
    )
    start.click()


def select_option(
    page: Any, key: str, option: str | re.Pattern[str], *, filter_text: str | None = None
) -> None:
    """Choose ``option`` (its visible text, or a pattern) in the selectbox ``key``.

    Typing ``filter_text`` (default: the option's first 40 characters) filters the virtualised
    list so the option is rendered. A no-op when the option is already chosen.
    """
    combo = page.locator(f".st-key-{key}").get_by_role("combobox")
    current = combo.input_value()
    if current == option or (isinstance(option, re.Pattern) and option.search(current)):
        return
    combo.click()
    if filter_text is None and isinstance(option, str):
        filter_text = option[:40]
    if filter_text:
        combo.fill(filter_text)
    page.get_by_role("option", name=option, exact=True if isinstance(option, str) else None).first.click()
    if isinstance(option, str):
        page.wait_for_function(
            "([sel, want]) => document.querySelector(sel)?.value === want",
            arg=[f".st-key-{key} input[role=combobox]", option],
        )
    wait_for_app(page)


def open_tab(page: Any, name: str) -> None:
    """Click the tab ``name`` and wait for the rerun it triggers."""
    page.get_by_role("tab", name=name, exact=True).click()
    page.get_by_role("tab", name=name, exact=True).and_(page.locator("[aria-selected='true']")).wait_for()
    wait_for_app(page)


def wait_for_chart(page: Any, key: str, timeout_ms: int = 30_000) -> None:
    """Wait until the Plotly chart with widget key ``key`` has drawn its SVG."""
    page.locator(f".st-key-{key} .js-plotly-plot .main-svg").first.wait_for(
        state="visible", timeout=timeout_ms
    )


def assert_no_exception(page: Any) -> None:
    """No Streamlit exception box on the page."""
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()[:2000]


def shot(
    page: Any, name: str, *, readme: bool = False, tall: bool = True, max_height: int = MAX_SHOT_HEIGHT
) -> Path:
    """Screenshot the page; ``tall`` grows the viewport to the page's content first.

    ``readme=True`` goes through :func:`save_screenshot` (copied to ``docs/screenshots/`` with
    ``SAVE_README_SHOTS=1``); other shots stay in ``tests/e2e/artifacts/``.
    """
    size = page.viewport_size
    if tall and size:
        height = page.evaluate(
            "() => { const m = document.querySelector(\"[data-testid='stMain']\"); return m ? m.scrollHeight : 0; }"
        )
        if height and height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": min(int(height), max_height)})
            next_paint(page)  # the resized page (charts, newly visible grid rows) is drawn
            next_paint(page)
    try:
        if readme:
            return save_screenshot(page, name)
        path = _ensure_artifacts_dir() / f"{name}.png"
        page.screenshot(path=str(path))
        return path
    finally:
        if tall and size:
            page.set_viewport_size(size)


# --------------------------------------------------------------------------------------------
# The journey
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def journey_server(browser, start_server):
    """A server of the real app with its own empty data dir (``browser`` first: no Chromium, no server)."""
    if not APP_PATH.is_file():
        pytest.skip("app.py does not exist yet")
    return start_server(APP_PATH)


def test_new_user_uploads_edits_runs_and_sees_history_charts(page, journey_server):
    server = journey_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    store = HistoryStore(server.data_dir / "history.sqlite3")
    try:
        # 1. A new user opens the app: Documents is the start page, nothing is indexed.
        page.goto(server.url)
        wait_for_app(page)
        page.get_by_role("heading", name="Documents").first.wait_for()
        assert page.get_by_text("No documents indexed yet").first.is_visible()
        assert page.get_by_text("Mode:").first.is_visible() and page.get_by_text("Offline").first.is_visible()
        shot(page, "journey-01-empty", tall=False)

        # 2. Upload the sample handbook and see it listed.
        upload(page, [SAMPLE_PDF])
        index_uploaded(page, f"{SAMPLE_PDF.name} — indexed")
        assert page.get_by_text("Indexed 1 of 1 files").first.is_visible()
        assert page.get_by_text(re.compile(r"1 document · \d+ chunks")).first.is_visible()
        assert_no_exception(page)
        shot(page, "documents", readme=True)
        assert [d.name for d in store.list_documents()] == [SAMPLE_PDF.name]

        # 3. Question sets: add a question to the sample set in the data editor and save.
        nav(page, "Question sets")
        assert page.get_by_text("✓ Saved · 10 questions").first.is_visible()
        editor_add_row(page, "qsets-table", [NEW_QUESTION, NEW_TRUTH])
        page.get_by_text("Unsaved changes").first.wait_for()
        shot(page, "journey-03-question-edited", tall=False)
        click_button(page, "qsets-save", "Save")
        page.get_by_text(f"Saved '{SAMPLE_SET}' — 11 questions.").first.wait_for()
        wait_for_app(page)
        assert_no_exception(page)
        items = store.get_question_set(SAMPLE_SET)
        assert len(items) == 11
        sample = json.loads(SAMPLE_QUESTIONS.read_text())
        assert [(q.question, q.ground_truth) for q in items[:10]] == [
            (q["question"], q["ground_truth"]) for q in sample
        ], "the existing rows changed while adding one"
        assert (items[-1].question, items[-1].ground_truth) == (NEW_QUESTION, NEW_TRUTH)

        # 4. Run: an async offline run; live progress, then the summary.
        nav(page, "Run", "Run an evaluation")
        page.get_by_text("11 questions").first.wait_for()
        start_offline_run(page, "Async", SAMPLE_SET)
        page.get_by_role("heading", name=re.compile(r"Run #\d+")).first.wait_for()
        page.locator("[data-testid='stProgress']").first.wait_for(state="visible", timeout=20_000)
        wait_for_live_progress(page)  # best effort: a shot with "n of 11" done, not "Starting"
        shot(page, "run", readme=True)  # live progress: done/total, in flight, elapsed, ETA
        first_id, _, first_s = wait_for_run_completed(page)
        assert page.get_by_text(f"Run #{first_id} completed: 11 questions").first.is_visible()
        assert_no_exception(page)
        shot(page, "journey-04-run-summary")

        # 5. A second run in compare mode (sequential then async: the speedup chart's data).
        start_offline_run(page, "Compare")
        page.get_by_role("heading", name=f"Run #{first_id + 1}").first.wait_for()
        second_id, seen, second_s = wait_for_run_completed(page)
        assert second_id == first_id + 1
        assert seen, "the live progress bar was never shown during a compare run"
        assert page.get_by_text("Speedup:").first.is_visible()
        shot(page, "journey-05-compare-summary")

        runs = {r.id: r for r in store.list_runs()}
        for rid in (first_id, second_id):
            assert runs[rid].status == "completed"
            results = store.get_results(rid)
            assert len(results) == 11 and all(r.answer for r in results)
            assert all(r.scores for r in results)

        # 6. History: open it from the summary; compare the two runs; every chart renders.
        click_button(page, "run-open_history", "Open in History")
        page.get_by_role("heading", name="History").first.wait_for()
        wait_for_app(page)
        assert page.get_by_text("2 runs.").first.is_visible()
        open_tab(page, "Compare runs")
        wait_for_chart(page, "history-fig_compare")
        assert page.get_by_text(
            re.compile(r"(No question dropped|regressed by more than)")
        ).first.is_visible()
        assert_no_exception(page)
        shot(page, "history", readme=True)

        open_tab(page, "Charts")
        for key in CHART_KEYS:
            wait_for_chart(page, key)
        # The Gantt has one bar per request: compare mode recorded sequential + async requests.
        assert page.locator(".st-key-history-fig_timeline .js-plotly-plot .main-svg").count() >= 1
        assert_no_exception(page)
        shot(page, "history-charts", readme=True, max_height=1950)  # speedup, phases, trends
        page.locator(".st-key-history-fig_timeline").scroll_into_view_if_needed()
        page.locator(".st-key-history-fig_timeline").screenshot(
            path=str(ARTIFACTS_DIR / "journey-06-timeline.png")
        )
        page.locator(".st-key-history-fig_heatmap").screenshot(
            path=str(ARTIFACTS_DIR / "journey-06-heatmap.png")
        )

        # 7. Drill-down: the new question's answer and chunks are shown.
        open_tab(page, "Run details")
        page.get_by_text("Question drill-down").first.wait_for()
        select_option(page, "history-question", f"Q11 · {NEW_QUESTION}")
        # Markdown text (the data grids above are canvases, so this is the drill-down's text).
        markdown = page.locator("[data-testid='stMarkdownContainer']")
        markdown.filter(has_text=NEW_QUESTION).first.wait_for(state="visible")
        assert markdown.filter(has_text=NEW_TRUTH).first.is_visible()
        assert page.get_by_text("Retrieved chunks (4)").first.is_visible()
        page.get_by_text(re.compile(r"^1\. northwind_staff_handbook\.pdf · page \d+ · score")).first.click()
        assert_no_exception(page)
        shot(page, "journey-07-run-details")
        assert not errors, f"JavaScript errors in the page: {errors}"
        for name in README_SHOTS:  # real PNGs with content, not blank pages
            data = (ARTIFACTS_DIR / f"{name}.png").read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, name
        print(
            f"\nrun #{first_id} (async) finished in {first_s:.1f} s, run #{second_id} (compare) in {second_s:.1f} s"
        )
    finally:
        store.close()
