"""Issue 6, item 3: HTML/JS inside documents, questions or answers is shown as text, never run.

Hostile payloads (``<script>``, ``<img onerror>``, ``<svg onload>``, a ``javascript:`` Markdown
link) reach the app through every path a user's text takes:

(a) documents uploaded in the browser (one ``.md``, one ``.txt``) → chunk previews, search
    results, retrieved contexts in the drill-down;
(b) a question set whose *name*, questions and ground truths carry payloads;
(c) answers: the offline answerer quotes the document sentence that holds a payload (a real run
    started in the browser), plus a run seeded straight into the server's ``RAG_DATA_DIR`` with
    :class:`~rag_core.storage.HistoryStore` — payloads in the answer, an error message, metric
    reasons (plain and JSON), retrieved chunk sources/texts and request-timeline labels (Plotly
    tick labels and hover text).

Every page (Documents with preview and search; Question sets; Run; History: compare, charts with
a hover label, run details with drill-down) is then opened in a fresh browser session and must
(1) leave ``window.__xss`` undefined, (2) fire no dialog, (3) hold no injected element (an
``img[src=x]``, an inline handler attribute, a script mentioning ``__xss``, a ``javascript:``
link, an ``svg`` with ``onload``) and (4) show the payload as literal text somewhere.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rag_core.models import MetricScore, QAItem, RequestTiming
from rag_core.storage import HistoryStore
from rag_core.summary import RunSummary
from tests.e2e.conftest import APP_PATH, ARTIFACTS_DIR, VIEWPORT, next_paint, wait_for_app
from tests.e2e.test_user_journey import (
    assert_no_exception,
    index_uploaded,
    nav,
    open_tab,
    select_option,
    shot,
    start_offline_run,
    upload,
    wait_for_chart,
    wait_for_run_completed,
)

pytestmark = pytest.mark.e2e

SCRIPT = "<script>window.__xss=1;alert('script')</script>"
IMG = "<img src=x onerror=\"window.__xss=2;alert('img')\">"
SVG = "<svg onload=\"window.__xss=3;alert('svg')\">"
LINK = "[intranet](javascript:window.__xss=4)"

HOSTILE_SET = 'Hostile <img src=x onerror="window.__xss=5"> set'
MD_DOC = (
    "# Hostile policy\n\n"
    f"Holiday carry-over: employees may carry over up to five unused holiday days {SCRIPT} into the "
    "next leave year.\n\n"
    f"Staff parking: the staff car park is free of charge for every permit holder {IMG} on weekdays.\n\n"
    f"Read more on the {LINK} pages or **ask** HR.\n"
)
TXT_DOC = (
    "Remote working rules.\n\n"
    f"Remote working: an approved hybrid worker may work from home on at most three days {SVG} in "
    "each working week.\n"
)
QUESTIONS = [
    QAItem(
        question=f"How many unused holiday days may employees carry over? {IMG}",
        ground_truth=f"Up to five days. {SCRIPT}",
    ),
    QAItem(
        question="Is the staff car park free of charge for permit holders?",
        ground_truth=f"Yes, on weekdays. {SVG}",
    ),
    QAItem(
        question="How many days a week may a hybrid worker work from home?",
        ground_truth=f"At most three days. {LINK}",
    ),
]

#: Everything the DOM must not contain, and the flag the payloads would set.
INERT_PROBE = """() => ({
  xss: window.__xss === undefined ? null : String(window.__xss),
  imgs: document.querySelectorAll("img[src='x'], img[onerror]").length,
  handlers: document.querySelectorAll("[onerror], [onload], [onmouseover], [onclick]").length,
  scripts: [...document.scripts].filter(s => s.textContent.includes("__xss")).length,
  jsLinks: document.querySelectorAll("a[href^='javascript:' i]").length,
  svgs: document.querySelectorAll("svg[onload]").length,
})"""
CLEAN = {"xss": None, "imgs": 0, "handlers": 0, "scripts": 0, "jsLinks": 0, "svgs": 0}


class Guard:
    """Collects dialogs (dismissed at once) and page errors of one page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def check(self, where: str) -> None:
        """Assert that nothing ran and nothing was injected on the page as it is now."""
        # An onerror fires once a broken image has finished loading: wait until every image on
        # the page is complete (loaded or failed), then for the paints after its error event.
        self.page.wait_for_function("() => [...document.images].every(img => img.complete)")
        next_paint(self.page)
        probe = self.page.evaluate(INERT_PROBE)
        assert probe == CLEAN, f"{where}: hostile content became live HTML/JS: {probe}"
        assert not self.dialogs, f"{where}: a dialog fired: {self.dialogs}"
        assert_no_exception(self.page)


def literal(page: Any, text: str) -> Any:
    """Locator of Markdown/alert text containing ``text`` literally (``<`` as a character).

    Scoped to Markdown containers: data grids also keep hidden accessibility cells with the text.
    """
    return page.locator("[data-testid='stMarkdownContainer']").filter(has_text=text).first


def seed_run(store: HistoryStore) -> int:
    """A completed run of :data:`HOSTILE_SET` whose every stored text field carries a payload."""
    run_id = store.create_run(
        question_set=HOSTILE_SET,
        backend="offline",
        mode="async",
        suite="offline",
        config={"concurrency": 4, "top_k": 2},
        items=QUESTIONS,
    )
    now = time.time()
    ctx = [
        {
            "text": f"Seeded chunk text {IMG} about holiday.",
            "source": f"seeded {SVG}.md",
            "page": 1,
            "position": 0,
            "score": 0.91,
            "id": "seed-1",
        },
        {
            "text": f"Second chunk {SCRIPT}.",
            "source": "seeded.md",
            "page": 2,
            "position": 1,
            "score": 0.55,
            "id": "seed-2",
        },
    ]
    store.save_answer(
        run_id,
        0,
        answer=f"You may carry over five days. {IMG} {LINK}",
        contexts=ctx,
        latency_s=0.4,
        attempts=1,
        model="offline-extractive",
    )
    store.save_answer(
        run_id,
        1,
        answer=f"Yes. {SCRIPT}",
        contexts=ctx[:1],
        latency_s=0.3,
        attempts=1,
        model="offline-extractive",
    )
    store.save_answer(
        run_id, 2, error=f"Answer failed: {SVG}", error_kind="GenerationError", latency_s=0.2, attempts=2
    )
    for i in range(2):
        store.save_scores(
            run_id,
            i,
            [
                MetricScore("rouge_l", 0.5 + i / 10, reason=f"plain reason {IMG}"),
                MetricScore("semantic_similarity", 0.7, reason=json.dumps({"verdict": SCRIPT, "why": IMG})),
                MetricScore("context_recall", None, error=f"judge failed {SVG}"),
            ],
        )
    store.save_requests(
        run_id,
        [
            RequestTiming(
                index=i,
                phase="generation",
                label=QUESTIONS[i].question,
                start=now + i * 0.1,
                end=now + 0.5 + i * 0.1,
                attempts=1,
                status="ok",
            )
            for i in range(3)
        ]
        + [
            RequestTiming(
                index=0,
                phase="evaluation",
                label=f"{IMG} rouge",
                start=now + 1,
                end=now + 1.2,
                attempts=1,
                status="ok",
            ),
        ],
    )
    metrics = {
        "rouge_l": {"mean": 0.55, "stdev": 0.07, "scored": 2, "failed": 0},
        "semantic_similarity": {"mean": 0.7, "stdev": 0.0, "scored": 2, "failed": 0},
        "context_recall": {"mean": None, "stdev": None, "scored": 0, "failed": 2},
    }
    timings = {"retrieval_s": 0.1, "generation_s": 0.6, "evaluation_s": 0.3, "total_s": 1.0}
    store.update_run(
        run_id,
        status="completed",
        finished=True,
        timings=timings,
        summary=RunSummary.from_json(
            {
                "n_questions": 3,
                "errors": 1,
                "metrics": metrics,
                "generation": {
                    "sequential_s": None,
                    "async_s": 0.6,
                    "speedup_measured": None,
                    "speedup_estimated": 1.5,
                    "ideal_speedup": 3.0,
                    "concurrency": 4,
                },
                "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
                "judge": {"suite": "offline", "model": None, "calls": 0, "cache_hits": 0, "versions": {}},
            },
            run_id=run_id,
            status="completed",
            backend="offline",
            mode="async",
            suite="offline",
            n_questions=3,
            timings=timings,
        ),
    )
    return run_id


@pytest.fixture(scope="module")
def hostile(browser, start_server) -> Iterator[dict[str, Any]]:
    """A server whose data holds payloads everywhere: uploaded docs, a set, a browser run, a seeded run."""
    if not APP_PATH.is_file():
        pytest.skip("app.py does not exist yet")
    server = start_server(APP_PATH)
    store = HistoryStore(server.data_dir / "history.sqlite3")
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(30_000)
    page = context.new_page()
    guard = Guard(page)
    try:
        page.goto(server.url)
        wait_for_app(page)
        upload(
            page,
            [
                {"name": "hostile_policy.md", "mimeType": "text/markdown", "buffer": MD_DOC.encode()},
                {"name": "hostile_remote.txt", "mimeType": "text/plain", "buffer": TXT_DOC.encode()},
            ],
        )
        index_uploaded(page, "Indexed 2 of 2 files")
        guard.check("Documents after upload")
        assert sorted(d.name for d in store.list_documents()) == ["hostile_policy.md", "hostile_remote.txt"]

        store.save_question_set(HOSTILE_SET, QUESTIONS)
        nav(page, "Run", "Run an evaluation")
        start_offline_run(page, "Async", HOSTILE_SET)
        browser_run, _, _ = wait_for_run_completed(page)
        guard.check("Run page after a run of the hostile set")
        answers = [r.answer or "" for r in store.get_results(browser_run)]
        seeded = seed_run(store)
        yield {
            "server": server,
            "store": store,
            "browser_run": browser_run,
            "seeded_run": seeded,
            "answers": answers,
        }
    finally:
        context.close()
        store.close()


@pytest.fixture
def guarded(page) -> Guard:
    return Guard(page)


def test_offline_answers_quote_the_payload_sentences(hostile):
    """(c) with the real answerer: a quoted document sentence brings the payload into an answer."""
    joined = "\n".join(hostile["answers"])
    assert "<script>window.__xss=1" in joined or "<img src=x" in joined or "<svg onload" in joined, joined


def test_documents_preview_and_search_show_payloads_as_text(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    page.get_by_role("heading", name=re.compile(r"^Documents in ")).wait_for()
    guarded.check("Documents")
    select_option(page, "docs-selected", "hostile_policy.md")
    page.get_by_text("Chunks of hostile_policy.md").first.wait_for()
    guarded.check("Documents: chunk preview")

    open_tab(page, "Search the index")
    box = page.locator(".st-key-docs-search_query input")
    box.fill("How many unused holiday days can be carried over?")
    box.press("Enter")
    literal(page, SCRIPT).wait_for(state="visible")
    guarded.check("Documents: search results")
    box.fill("Is the staff car park free?")
    box.press("Enter")
    literal(page, IMG).wait_for(state="visible")
    assert literal(page, LINK).is_visible()  # the Markdown link stays text, not a link
    guarded.check("Documents: search results (img)")
    box.fill("working from home days per week")
    box.press("Enter")
    literal(page, SVG).wait_for(state="visible")
    guarded.check("Documents: search results (svg)")
    shot(page, "hostile-documents-search")


def test_question_sets_page_keeps_payloads_inert(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    nav(page, "Question sets")
    select_option(page, "qsets-selected", HOSTILE_SET)
    page.get_by_text("✓ Saved · 3 questions").first.wait_for()
    assert page.locator(".st-key-qsets-selected").get_by_role("combobox").input_value() == HOSTILE_SET
    guarded.check("Question sets")
    # The rename box shows the name as its placeholder; a duplicate-name error quotes it.
    page.locator(".st-key-qsets-new_name input").fill(HOSTILE_SET)
    page.locator(".st-key-qsets-create button").click()
    literal(page, "already exists").wait_for(state="visible")
    assert literal(page, "<img src=x onerror=").is_visible()
    guarded.check("Question sets: duplicate-name error quoting the name")
    shot(page, "hostile-question-sets")


def test_run_page_keeps_payloads_inert(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    nav(page, "Run", "Run an evaluation")
    select_option(page, "run-set", HOSTILE_SET)
    page.get_by_text("3 questions").first.wait_for()
    guarded.check("Run")


def test_history_compare_and_charts_keep_payloads_inert(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    nav(page, "History")
    guarded.check("History")
    open_tab(page, "Compare runs")
    wait_for_chart(page, "history-fig_compare")
    cand = page.locator(".st-key-history-candidate").get_by_role("combobox").input_value()
    assert f"#{hostile['seeded_run']} " in cand and HOSTILE_SET in cand
    guarded.check("History: compare")

    open_tab(page, "Charts")
    for key in (
        "history-fig_speedup",
        "history-fig_phases",
        "history-fig_trend",
        "history-fig_timeline",
        "history-fig_heatmap",
    ):
        wait_for_chart(page, key)
    guarded.check("History: charts")
    # A failed metric is a labelled grey cell in the heat map, never a 0.
    assert page.locator(".st-key-history-fig_heatmap").get_by_text("failed").count() >= 1
    # Timeline tick labels (evaluation requests carry their label) are SVG text, escaped.
    ticks = page.locator(".st-key-history-fig_timeline .yaxislayer-above text").all_text_contents()
    assert any("<img src=x" in t for t in ticks), ticks
    # Hover the heat map's first row: its label shows the question (with its payload) as text.
    hover_text = _hover_heatmap_first_row(page)  # wrapped lines are <tspan>s: no space between
    assert "<img" in hover_text and "onerror=" in hover_text, hover_text
    page.locator(".st-key-history-fig_heatmap").screenshot(
        path=str(ARTIFACTS_DIR / "hostile-heatmap-hover.png")
    )
    guarded.check("History: heat map hover")
    shot(page, "hostile-history-charts")


def test_history_run_details_keep_payloads_inert(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    nav(page, "History")
    open_tab(page, "Run details")
    run = page.locator(".st-key-history-run").get_by_role("combobox").input_value()
    assert run.startswith(f"#{hostile['seeded_run']} ")
    page.get_by_text("Question drill-down").first.wait_for()
    md = page.locator("[data-testid='stMarkdownContainer']")
    md.filter(has_text=QUESTIONS[0].question).first.wait_for(state="visible")  # question, with <img>
    assert md.filter(has_text=SCRIPT).first.is_visible()  # ground truth
    assert md.filter(has_text=f"five days. {IMG} {LINK}").first.is_visible()  # answer
    guarded.check("History: drill-down Q1")

    # Retrieved chunks: the expander label shows the source; opened, the text.
    page.get_by_text(re.compile(r"^1\. seeded <svg onload=")).first.click()
    md.filter(has_text=f"Seeded chunk text {IMG}").first.wait_for(state="visible")
    # Metric reasons: plain text (Markdown) and JSON (st.json).
    page.get_by_text("Why ROUGE-L", exact=False).first.click()
    md.filter(has_text=f"plain reason {IMG}").first.wait_for(state="visible")
    page.get_by_text("Why Semantic similarity", exact=False).first.click()
    page.locator("[data-testid='stJson']").filter(has_text="<script>window.__xss=1").first.wait_for(
        state="visible"
    )
    page.get_by_text("Why Context recall", exact=False).first.click()
    md.filter(has_text=f"judge failed {SVG}").first.wait_for(state="visible")
    guarded.check("History: drill-down chunks and reasons")
    shot(page, "hostile-history-details")

    # Q3 failed: its error message carries a payload.
    select_option(page, "history-question", "Q3 · " + QUESTIONS[2].question)
    page.locator("[data-testid='stAlert']").filter(has_text=f"Answer failed: {SVG}").first.wait_for(
        state="visible"
    )
    guarded.check("History: failed answer")

    # The browser-made run: its answers quote the hostile document sentences.
    select_option(
        page,
        "history-run",
        re.compile(rf"^#{hostile['browser_run']} · "),
        filter_text=f"#{hostile['browser_run']} ",
    )
    page.get_by_text("Question drill-down").first.wait_for()
    i, answer = next((i, a) for i, a in enumerate(hostile["answers"]) if "<" in a)
    select_option(page, "history-question", re.compile(rf"^Q{i + 1} · "), filter_text=f"Q{i + 1} · ")
    payload = next(p for p in (SCRIPT, IMG, SVG) if p in answer)
    md.filter(has_text="Answer").filter(has_text=payload).first.wait_for(state="visible")
    guarded.check("History: browser run details, answer quoting a payload sentence")


def _hover_heatmap_first_row(page: Any) -> str:
    drag = page.locator(".st-key-history-fig_heatmap .nsewdrag").first
    drag.scroll_into_view_if_needed()
    b = drag.bounding_box()
    assert b is not None
    page.mouse.move(b["x"] + b["width"] * 0.5, b["y"] + 8)
    hover = page.locator(".st-key-history-fig_heatmap .hoverlayer .hovertext").first
    hover.wait_for(state="visible", timeout=10_000)
    return hover.text_content() or ""


def test_chart_hover_shows_double_quotes_not_entities(page, guarded, hostile):
    page.goto(hostile["server"].url)
    wait_for_app(page)
    nav(page, "History")
    open_tab(page, "Charts")
    wait_for_chart(page, "history-fig_heatmap")
    text = _hover_heatmap_first_row(page)
    assert 'onerror="window' in text and "&quot;" not in text, text


CANARY_APP = f"""
import streamlit as st
st.title("Canary")
st.markdown({IMG!r}, unsafe_allow_html=True)
"""


def test_guard_detects_live_html(browser, start_server, tmp_path_factory, page):
    """The detector itself can fail: an app that renders a payload as HTML trips it."""
    app = tmp_path_factory.mktemp("canary") / "canary_app.py"
    app.write_text(CANARY_APP)
    server = start_server(app)
    guard = Guard(page)
    page.goto(server.url)
    wait_for_app(page)
    page.get_by_role("heading", name="Canary").wait_for()
    with pytest.raises(AssertionError, match="became live HTML/JS"):
        guard.check("canary")
