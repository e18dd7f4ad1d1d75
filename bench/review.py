"""Benchmark: labelling 20 answers on the Review page with the keyboard, seconds per answer (issue 12).

Builds a temporary data dir (sample handbook indexed; one offline run of 20 questions: the sample
set plus ``tests/fixtures/review_questions.json``), starts ``streamlit run app.py`` on a free
loopback port and drives Debian's Chromium with Playwright. The analyst's part is simulated as a
key press; what is measured is *tool time*: from the key press until the next answer is shown and
Streamlit reports ``[data-test-script-state='notRunning']`` (the verdict is saved by then). One
answer gets a comment typed first (its typing is not counted). Goal: ≤ 5 s per answer.

    .venv/bin/python -m bench.review [--answers 20] [--out bench/results/review.json]

Prints the per-answer times and writes JSON. Exit status 1 when the mean is over the goal.
The helpers (:func:`build_review_dir`, :func:`label_with_keyboard`) are reused by
``tests/e2e/test_review.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rag_core.questions import load_questions
from rag_core.settings import Settings
from rag_core.workspace import Workspace
from tests.e2e.conftest import APP_PATH, CHROMIUM, CHROMIUM_ARGS, VIEWPORT, StreamlitServer, wait_for_app

ROOT = Path(__file__).resolve().parent.parent
SET_NAME = "Review: 20 questions"
#: Tool time goal per labelled answer, seconds (issue 12).
GOAL_S = 5.0
#: Keys pressed, cycling: mostly "correct", some "partly" and "wrong".
KEYS = ("1", "1", "2", "1", "3")
#: The answer (1-based position) that gets a comment typed before its verdict.
COMMENT_AT = 5
COMMENT = "misses a condition"
#: Longest wait for one labelled answer to be saved and the next shown, milliseconds.
STEP_TIMEOUT_MS = 60_000


def build_review_dir(data_dir: Path) -> int:
    """Index the sample handbook, save the 20-question set and answer it offline; returns the run id."""
    settings = Settings.load(
        env={**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_SECRETS_FILE": str(data_dir / "secrets.toml")}
    )
    ws = Workspace(settings)
    try:
        if ws.ingest_sample().status == "error":
            raise RuntimeError("could not index the sample handbook")
        items = load_questions(ROOT / "data" / "sample" / "questions.json") + load_questions(
            ROOT / "tests" / "fixtures" / "review_questions.json"
        )
        ws.save_question_set(SET_NAME, items)
        run_id = ws.start_run(SET_NAME, suite="offline", concurrency=4)
        if not ws.wait_run(run_id, 600) or ws.run(run_id).status != "completed":
            raise RuntimeError(f"the offline run {run_id} did not complete")
        return run_id
    finally:
        ws.close()


def _heading(page: Any, n: int, total: int) -> Any:
    return page.get_by_role("heading", name=re.compile(rf"^Q{n} of {total}$"))


def label_with_keyboard(page: Any, base_url: str, total: int, answers: int) -> list[dict[str, Any]]:
    """Open the Review page and label ``answers`` answers with the keyboard, in order.

    Returns one record per answer: the key pressed and the seconds from the key press until the
    next answer was shown (or the "every answer has a verdict" message) and the script was idle.
    """
    page.goto(f"{base_url}/review")
    wait_for_app(page)
    out = []
    for n in range(1, answers + 1):
        _heading(page, n, total).wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
        wait_for_app(page)
        key = KEYS[(n - 1) % len(KEYS)]
        if n == COMMENT_AT:
            box = page.get_by_label("Comment (optional)")
            box.click()
            box.type(COMMENT)
            box.press("Tab")  # leaves the box: the comment is sent with the verdict
            wait_for_app(page)
        t0 = time.perf_counter()
        page.keyboard.press(key)
        if n < total:
            _heading(page, n + 1, total).wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
        else:
            page.get_by_text("Every answer of this run has a verdict").wait_for(timeout=STEP_TIMEOUT_MS)
        wait_for_app(page)
        out.append({"answer": n, "key": key, "seconds": round(time.perf_counter() - t0, 3)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--answers", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "review.json")
    args = p.parse_args(argv)
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} is missing: run scripts/install_browser.sh", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        run_id = build_review_dir(data_dir)
        setup_s = time.perf_counter() - t0
        server = StreamlitServer(APP_PATH, data_dir, log_dir=Path(tmp))
        server.start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
                )
                try:
                    page = browser.new_page(viewport=VIEWPORT)
                    steps = label_with_keyboard(page, server.url, 20, args.answers)
                finally:
                    browser.close()
        finally:
            server.stop()
        settings = Settings.load(
            env={"RAG_DATA_DIR": str(data_dir), "RAG_SECRETS_FILE": str(data_dir / "none")}
        )
        ws = Workspace(settings)
        try:
            saved = ws.verdicts(run_id)
            headline = ws.summary(run_id).headline
        finally:
            ws.close()
    times = [s["seconds"] for s in steps]
    print(f"{'answer':>6}  {'key':3}  seconds")
    for s in steps:
        print(f"{s['answer']:>6}  {s['key']:3}  {s['seconds']:.2f}")
    mean, median, worst = statistics.mean(times), statistics.median(times), max(times)
    print(
        f"\n{len(times)} answers labelled: mean {mean:.2f} s, median {median:.2f} s, max {worst:.2f} s per answer "
        f"(goal ≤ {GOAL_S:g} s); {len(saved)} verdicts saved; {headline.text if headline else ''}"
    )
    result = {
        "benchmark": "review",
        "goal_s": GOAL_S,
        "steps": steps,
        "mean_s": mean,
        "median_s": median,
        "max_s": worst,
        "saved": len(saved),
        "comment_saved": saved.get(COMMENT_AT - 1).comment if saved.get(COMMENT_AT - 1) else None,
        "headline": headline.text if headline else None,
        "setup_s": round(setup_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if mean <= GOAL_S and len(saved) == len(times) else 1


if __name__ == "__main__":
    sys.exit(main())
