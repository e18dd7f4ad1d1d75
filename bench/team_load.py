"""Benchmark (issue 15): the team server under load — two app processes, six browser runs at once.

The README's "team server" recipe on one machine: a PostgreSQL server (tests/support/postgres_server.py:
``initdb`` in a temp dir, loopback TCP), a Chroma server (``chroma run``, tests/fixtures/chroma_server.py)
and two ``streamlit run app.py`` processes sharing both (same ``RAG_DATABASE_URL``,
``RAG_CHROMA_HOST``/``PORT``, ``RAG_COLLECTION`` and ``RAG_DATA_DIR``). The sample handbook is
indexed and a 50-question set (the 10 sample questions in five phrasings) saved through the CLI.

Then, in Debian's Chromium driven by Playwright:
- 3 browser sessions (contexts) per app process open the Run page, choose the set and start one
  offline run each (async, offline metrics), clicked one after the other as fast as the browser
  takes the clicks (6 runs within about a second);
- a 7th session loads the History page and the Run page over and over while the runs execute,
  alternating between the two app processes: time from ``page.goto`` to the page's stable
  element visible (History: its title and runs table; Run: its title and the Start button) and
  the script run finished;
- when every run has ended: each session shows its own run's completion line; the shared history
  (read through :class:`~rag_core.storage.HistoryStore`) holds 6 completed runs, each with 50
  results with an answer and all its offline scores; no page shows an exception;
- the same page loads with nothing running ("idle"), for the ratio.

Every wait is bounded; everything started here is stopped at the end, also on failure.

    .venv/bin/python -m bench.team_load [--sessions-per-app 3] [--questions 50] [--fsync]
                                        [--out bench/results/team_load.json]

Prints a table and writes JSON. Exit status 1 when a run did not complete or lost results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from rag_core.storage import HistoryStore
from tests.e2e.conftest import APP_PATH, CHROMIUM, CHROMIUM_ARGS, VIEWPORT, StreamlitServer, wait_for_app
from tests.fixtures.chroma_server import start_server as start_chroma
from tests.fixtures.chroma_server import unique_collection
from tests.support.postgres_server import start_postgres

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
SAMPLE_QUESTIONS = ROOT / "data" / "sample" / "questions.json"
SET_NAME = "Team load: 50 questions"
OFFLINE_METRICS = ("semantic_similarity", "rouge_l", "context_recall")
PHRASINGS = (
    "{q}",
    "According to the staff handbook: {q}",
    "Quick question from a new starter. {q}",
    "{q} Please answer from the handbook.",
    "HR query: {q}",
)

#: Longest wait for all runs to end, seconds.
RUNS_TIMEOUT_S = 1500.0
#: Longest wait for one page load / one browser step, milliseconds.
PAGE_TIMEOUT_MS = 120_000
#: Longest a CLI step (ingest, import) may take, seconds.
CLI_TIMEOUT_S = 600
#: Idle page loads per page and app process.
IDLE_SAMPLES = 4
#: Most page loads sampled under load (bounds the sampling loop).
MAX_LOAD_SAMPLES = 400


def _cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rag_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"rag_core {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def question_file(path: Path, n: int) -> Path:
    """``n`` questions: the sample's 10 in the phrasings of :data:`PHRASINGS` (decline kept)."""
    base = json.loads(SAMPLE_QUESTIONS.read_text())
    items = []
    for i in range(n):
        item = dict(base[i % len(base)])
        item["question"] = PHRASINGS[(i // len(base)) % len(PHRASINGS)].format(q=item["question"])
        if i >= len(base) * len(PHRASINGS):
            item["question"] += f" (copy {i // (len(base) * len(PHRASINGS)) + 1})"
        items.append(item)
    path.write_text(json.dumps(items, indent=1))
    return path


# --------------------------------------------------------------------------------------------
# Browser steps
# --------------------------------------------------------------------------------------------
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "History": ("history", ("h1:has-text('History')", "[data-testid='stDataFrame']")),
    "Run": ("run", ("h1:has-text('Run an evaluation')", ".st-key-run-start button")),
}


def load_page(page: Any, base_url: str, name: str, *, heading_only: bool = False) -> float:
    """Seconds from ``page.goto`` to the page's stable elements visible (``heading_only``: just its
    title — History has no table before the first run).

    Not "and the script idle": under this load the Run page's once-a-second fragments (the runs of
    the other process, others' runs) rerun back to back, so its script state may never read idle
    even though everything is on screen."""
    path, selectors = PAGES[name]
    selectors = selectors[:1] if heading_only else selectors
    t0 = time.perf_counter()
    page.goto(f"{base_url}/{path}", timeout=PAGE_TIMEOUT_MS)
    for sel in selectors:
        expect(page.locator(sel).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    return time.perf_counter() - t0


def select_set(page: Any) -> None:
    """Choose :data:`SET_NAME` in the Run page's question-set box (typing filters the list)."""
    combo = page.locator(".st-key-run-set").get_by_role("combobox")
    if combo.input_value() != SET_NAME:
        combo.click()
        combo.fill(SET_NAME[:30])
        page.get_by_role("option", name=SET_NAME, exact=True).first.click()
        page.wait_for_function(
            "([sel, want]) => document.querySelector(sel)?.value === want",
            arg=[".st-key-run-set input[role=combobox]", SET_NAME],
            timeout=PAGE_TIMEOUT_MS,
        )
    wait_for_app(page, timeout_ms=PAGE_TIMEOUT_MS)


def own_run_id(page: Any) -> int:
    """The run id of the session's own run (its "Run #N" heading)."""
    heading = page.get_by_role("heading", name=re.compile(r"^Run #\d+$")).first
    heading.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    return int(heading.inner_text().strip().removeprefix("Run #"))


def exceptions(page: Any) -> list[str]:
    boxes = page.locator("[data-testid='stException']")
    return [boxes.nth(i).inner_text()[:500] for i in range(boxes.count())]


def _stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "median_s": round(statistics.median(xs), 3),
        "max_s": round(max(xs), 3),
        "p90_s": round(sorted(xs)[max(0, int(0.9 * len(xs)) - 1)], 3),
    }


# --------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------
def check_history(url: str, run_ids: list[int], n: int) -> dict[str, Any]:
    """Statuses and stored results of ``run_ids`` from the shared history."""
    out: dict[str, Any] = {}
    with HistoryStore(url) as store:
        runs = {r.id: r for r in store.list_runs()}
        for rid in run_ids:
            run = runs.get(rid)
            results = store.get_results(rid) if run else []
            answered = sum(1 for r in results if r.answer)
            scored = sum(1 for r in results if r.scores)
            all_scores = sum(1 for r in results if all(_scored(r, m) for m in OFFLINE_METRICS))
            skipped = sum(
                1 for r in results for m in OFFLINE_METRICS if m in r.scores and r.scores[m].value is None
            )
            wall = None
            if run and run.finished_at:
                from datetime import datetime

                wall = (
                    datetime.fromisoformat(run.finished_at) - datetime.fromisoformat(run.created_at)
                ).total_seconds()
            out[str(rid)] = {
                "status": run.status if run else "missing",
                "n_questions": run.n_questions if run else 0,
                "results": len(results),
                "answered": answered,
                "with_scores": scored,
                "all_offline_scores": all_scores,
                "scores_skipped_by_design": skipped,
                "errors": sum(1 for r in results if r.error),
                "wall_s": round(wall, 2) if wall is not None else None,
                "total_s_recorded": (run.timings or {}).get("total_s") if run else None,
                "started_by": store.run_started_by(rid),
            }
        out["_all_runs"] = len(runs)
    return out


def _scored(r: Any, metric: str) -> bool:
    """The metric has a value, or was skipped by design: questions to be declined have no expected
    answer to compare with (rag_core/evaluation/facts_suite.py)."""
    score = r.scores.get(metric)
    if score is None:
        return False
    return score.value is not None or (
        str(r.expected) == "decline" and "expected to be declined" in (score.reason or "")
    )


def run_browser(apps: list[StreamlitServer], sessions_per_app: int, pg_url: str, n: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    shots = ROOT / "bench" / "results"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        try:
            contexts = []
            sessions: list[tuple[int, Any]] = []  # (app index, page)
            for a in range(len(apps)):
                for _ in range(sessions_per_app):
                    ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
                    contexts.append(ctx)
                    page = ctx.new_page()
                    page.set_default_timeout(PAGE_TIMEOUT_MS)
                    sessions.append((a, page))
            probe_ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
            probe = probe_ctx.new_page()
            probe.set_default_timeout(PAGE_TIMEOUT_MS)
            try:
                return _drive(apps, sessions, probe, pg_url, n)
            except Exception:
                shots.mkdir(parents=True, exist_ok=True)
                for i, (_, page) in enumerate([*sessions, (None, probe)]):
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(shots / f"team_load-failure-{i}.png"), full_page=True)
                print(f"failed; screenshots in {shots}/team_load-failure-*.png", file=sys.stderr)
                raise
        finally:
            browser.close()


def _drive(
    apps: list[StreamlitServer], sessions: list[tuple[int, Any]], probe: Any, pg_url: str, n: int
) -> dict[str, Any]:
    # Warm both processes (the first script run imports the heavy modules) before anything is timed.
    for app in apps:
        load_page(probe, app.url, "Run")
        load_page(probe, app.url, "History", heading_only=True)
    for a, page in sessions:
        load_page(page, apps[a].url, "Run")
        select_set(page)

    # Start the six runs one right after the other (no wait between the clicks).
    buttons = [page.locator(".st-key-run-start button") for _, page in sessions]
    for b in buttons:
        expect(b).to_be_enabled(timeout=PAGE_TIMEOUT_MS)
    t_start = time.time()
    clicked_at = []
    for b in buttons:
        b.click()
        clicked_at.append(time.time() - t_start)
    ids = [own_run_id(page) for _, page in sessions]
    print(f"  6 clicks within {clicked_at[-1]:.2f} s; runs {ids}", flush=True)

    # Sample page loads from a 7th session while the runs execute, alternating page and process.
    samples: list[dict[str, Any]] = []
    ended_at: dict[int, float] = {}
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    k = 0
    while len(ended_at) < len(ids) and time.monotonic() < deadline and k < MAX_LOAD_SAMPLES:
        a = k % len(apps)
        name = "History" if (k // len(apps)) % 2 == 0 else "Run"
        running_before = len(ids) - len(ended_at)
        t = load_page(probe, apps[a].url, name)
        if errors := exceptions(probe):
            raise RuntimeError(f"exception on the {name} page under load: {errors[0]}")
        with HistoryStore(pg_url) as store:
            for r in store.list_runs():
                if r.id in ids and r.status != "running" and r.id not in ended_at:
                    ended_at[r.id] = time.time() - t_start
        samples.append(
            {
                "page": name,
                "app": a,
                "s": round(t, 3),
                "running_before": running_before,
                "loadavg1": os.getloadavg()[0],
            }
        )
        k += 1
        if k % 10 == 0:
            print(f"  {k} page loads sampled, {len(ids) - len(ended_at)} runs running", flush=True)
    if len(ended_at) < len(ids):
        raise RuntimeError(
            f"runs still running after {RUNS_TIMEOUT_S:.0f} s: {sorted(set(ids) - set(ended_at))}"
        )

    # Every session shows its own run's completion line (not another's), and no exception.
    seen: dict[str, Any] = {}
    for (a, page), rid in zip(sessions, ids, strict=True):
        expect(page.get_by_text(f"Run #{rid} completed: {n} questions").first).to_be_visible(
            timeout=PAGE_TIMEOUT_MS
        )
        headings = page.get_by_role("heading", name=re.compile(r"^Run #\d+$"))
        elsewhere = page.locator("[class*='st-key-run-elsewhere-']").evaluate_all(
            "els => els.map(e => [...e.classList].find(c => c.startsWith('st-key-run-elsewhere-')))"
        )
        same_app = {r for (b, _), r in zip(sessions, ids, strict=True) if b == a}
        shown = sorted({int(c.rsplit("-", 1)[1]) for c in elsewhere if c})
        seen[str(rid)] = {
            "app": a,
            "run_headings": [h.strip() for h in headings.all_inner_texts()],
            "shown_as_other_process": shown,
            "own_process_runs_shown_as_other": sorted(set(shown) & same_app),
            "exceptions": exceptions(page),
        }

    # Idle: nothing running, first with the six sessions still open (their Run pages keep polling),
    # then with them closed.
    idle: list[dict[str, Any]] = []
    for state in ("sessions open", "sessions closed"):
        if state == "sessions closed":
            for _, page in sessions:
                page.context.close()
        for _ in range(IDLE_SAMPLES):
            for a in range(len(apps)):
                for name in PAGES:
                    t = load_page(probe, apps[a].url, name)
                    idle.append({"page": name, "app": a, "s": round(t, 3), "state": state})
    return {
        "run_ids": ids,
        "clicks_spread_s": round(clicked_at[-1], 3),
        "ended_after_click_s": {str(r): round(v, 2) for r, v in sorted(ended_at.items())},
        "sessions": seen,
        "samples_under_load": samples,
        "samples_idle": idle,
        "probe_exceptions": exceptions(probe),
    }


def summarize(samples: list[dict[str, Any]], idle: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per page: idle (sessions closed; and still open), while all runs go, while at least one
    goes; medians, maxima, ratios to idle with the sessions closed."""
    rows = []
    for name in PAGES:
        i = [x["s"] for x in idle if x["page"] == name and x["state"] == "sessions closed"]
        i_open = [x["s"] for x in idle if x["page"] == name and x["state"] == "sessions open"]
        full = [x["s"] for x in samples if x["page"] == name and x["running_before"] == 6]
        any_ = [x["s"] for x in samples if x["page"] == name and x["running_before"] > 0]
        si, sf, sa = _stats(i), _stats(full), _stats(any_)
        rows.append(
            {
                "page": name,
                "idle": si,
                "idle_sessions_open": _stats(i_open),
                "all_six_running": sf,
                "any_running": sa,
                "ratio_median_all_six": round(sf["median_s"] / si["median_s"], 2) if full and i else None,
                "ratio_median_any": round(sa["median_s"] / si["median_s"], 2) if any_ and i else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions-per-app", type=int, default=3)
    ap.add_argument("--apps", type=int, default=2)
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument(
        "--fsync", action="store_true", help="keep PostgreSQL's fsync on (default off, as the tests)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "team_load.json")
    args = ap.parse_args(argv)
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} is missing: run scripts/install_browser.sh", file=sys.stderr)
        return 2
    n = args.questions
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        print("Starting PostgreSQL and the Chroma server…", flush=True)
        pg = start_postgres(fsync=args.fsync)
        stack.callback(pg.stop)
        pg_url = pg.create_database()
        chroma = start_chroma(base / "chroma")
        stack.callback(chroma.stop)
        shared = {
            "RAG_DATABASE_URL": pg_url,
            "RAG_CHROMA_HOST": chroma.host,
            "RAG_CHROMA_PORT": str(chroma.port),
            "RAG_COLLECTION": unique_collection(),
            "RAG_DATA_DIR": str(base / "shared-data"),
        }
        (base / "shared-data").mkdir()
        (base / "shared-data" / "secrets.toml").touch()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")},
            **shared,
            "RAG_SECRETS_FILE": str(base / "shared-data" / "secrets.toml"),
            "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
            "PYTHONPATH": str(ROOT),
        }
        print("Indexing the sample handbook and saving the question set (CLI)…", flush=True)
        t0 = time.perf_counter()
        _cli(env, "ingest", str(SAMPLE_PDF))
        _cli(env, "questions", "import", "--name", SET_NAME, str(question_file(base / "questions.json", n)))
        setup_s = time.perf_counter() - t0
        print(f"Starting {args.apps} app processes…", flush=True)
        apps = []
        for i in range(args.apps):
            app = StreamlitServer(APP_PATH, base / f"app-{i}", env=shared, log_dir=base)
            stack.callback(app.stop)
            app.start()
            apps.append(app)
        print(f"Driving {args.apps * args.sessions_per_app} browser sessions + 1 probe…", flush=True)
        try:
            result = run_browser(apps, args.sessions_per_app, pg_url, n)
        except Exception:
            for app in apps:
                print(app.log_tail(30), file=sys.stderr)
            raise
        history = check_history(pg_url, result["run_ids"], n)
        logs = {f"app-{i}": _log_problems(app.log_path) for i, app in enumerate(apps)}

    runs = {rid: v for rid, v in history.items() if not rid.startswith("_")}
    complete = [
        rid
        for rid, v in runs.items()
        if v["status"] == "completed"
        and v["results"] == v["answered"] == v["with_scores"] == v["all_offline_scores"] == n
    ]
    ids = result["run_ids"]
    adopted_ok = len(set(ids)) == len(ids) and all(
        s["run_headings"] == [f"Run #{rid}"] for rid, s in result["sessions"].items()
    )
    mislabelled = sum(len(s["own_process_runs_shown_as_other"]) for s in result["sessions"].values())
    page_errors = sum(len(s["exceptions"]) for s in result["sessions"].values()) + len(
        result["probe_exceptions"]
    )
    rows = summarize(result["samples_under_load"], result["samples_idle"])
    loads = [x["loadavg1"] for x in result["samples_under_load"]]
    ok = len(complete) == len(ids) and adopted_ok and page_errors == 0 and mislabelled == 0

    print(
        f"\nruns: {len(complete)} of {len(ids)} completed with {n} answers and scores each; "
        f"all ended {max(result['ended_after_click_s'].values()):.1f} s after the first click"
    )
    print(f"{'run':>4} {'app':>4} {'status':>10} {'answers':>8} {'scored':>7} {'3 scores*':>10} {'wall':>8}")
    for rid, v in runs.items():
        app_i = result["sessions"][rid]["app"]
        print(
            f"{rid:>4} {app_i:>4} {v['status']:>10} {v['answered']:>8} {v['with_scores']:>7} "
            f"{v['all_offline_scores']:>10} {v['wall_s'] or 0:>7.1f}s"
        )
    print("* all three offline metrics scored, or skipped by design on a question to be declined")
    print(
        f"\n{'page':<8} {'idle median/max':>16} {'idle, 6 open':>14} {'6 running median/max (n)':>26} "
        f"{'≥1 running median/max (n)':>27} {'ratio':>6}"
    )
    for r in rows:
        i, f, a, o = r["idle"], r["all_six_running"], r["any_running"], r["idle_sessions_open"]
        print(
            f"{r['page']:<8} {i.get('median_s', 0):>7.2f}/{i.get('max_s', 0):<7.2f} "
            f"{o.get('median_s', 0):>6.2f}/{o.get('max_s', 0):<6.2f} "
            f"{f.get('median_s', 0):>12.2f}/{f.get('max_s', 0):<6.2f}({f['n']:>3}) "
            f"{a.get('median_s', 0):>12.2f}/{a.get('max_s', 0):<6.2f}({a['n']:>3}) {r['ratio_median_any'] or 0:>6.2f}"
        )
    print(
        f"sessions each kept their own run: {adopted_ok}; runs of the session's own process shown "
        f"as another process's: {mislabelled}; exceptions on pages: {page_errors}; "
        f"load average during {min(loads, default=0):.1f}–{max(loads, default=0):.1f}"
    )
    out = {
        "ok": ok,
        "apps": args.apps,
        "sessions_per_app": args.sessions_per_app,
        "questions": n,
        "postgres_fsync": args.fsync,
        "setup_s": round(setup_s, 1),
        "total_s": round(time.perf_counter() - t_all, 1),
        "runs": runs,
        "runs_in_history": history["_all_runs"],
        "complete": len(complete),
        "sessions_kept_own_run": adopted_ok,
        "own_process_runs_shown_as_other_process": mislabelled,
        "page_exceptions": page_errors,
        "pages": rows,
        "browser": result,
        "server_log_problems": logs,
        "env": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_during_min_max": [min(loads, default=None), max(loads, default=None)],
            "loadavg_after": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")
    return 0 if ok else 1


def _log_problems(path: Path) -> list[str]:
    """Tracebacks / errors in an app process's log (its tail lines mentioning them)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln[:300] for ln in lines if re.search(r"Traceback|Error|Exception", ln)][:20]


if __name__ == "__main__":
    raise SystemExit(main())
