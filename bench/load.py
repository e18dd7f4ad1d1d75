"""Benchmark (issues 6 and 11): 1,000 questions through the real pipeline against the stand-in.

Setup
- A temp data dir; the sample handbook is ingested into it first (real parse, embed, Chroma).
- 100 prior runs are written straight into the history store (``create_run`` + ``save_answer`` +
  ``save_scores`` + ``update_run``, no real runs), so the History page has realistic work to do.
- The Messages API stand-in runs in its own process (``bench/_standin.py``): latency L=0.5 s per
  answer, 5% of requests get 429 with ``retry-after`` (default 1 s), seeded.
- N questions (the 10 sample questions × variants, all distinct) go through
  :func:`rag_core.runs.executor.start_run` with the Claude backend (real SDK, fake key) in ``async``
  mode at concurrency C=32 (the Run page's maximum), *adaptive* (AIMD, the engine's default),
  suite ``none`` by default. ``--suite judge`` adds phase 2 with the Claude judge (≈ 11 judge calls
  per question at top-k 4; the stand-in then answers RAGAS' tool calls too, ``--ragas``): answers
  and judge calls share the run's one adaptive limit, and scoring is compared with its ideal
  ``max(Σ judge calls · L / C, longest metric chain · L)`` (issue 11: ≤ 1.3×). ``--suite offline``
  runs the local metrics instead.

Measured
- wall: the run's generation time vs the ideal ``ceil(N/C)·L`` (what C slots at L seconds need
  with no faults); retrieval and total time alongside.
- memory: peak RSS of this process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and VmRSS
  before/after the run (the peak includes the embedding model loaded for ingestion/retrieval).
- answered / failed / lost (lost = neither an answer nor an error stored: must be 0).
- responsiveness: while the run goes, a second thread of the *same process* (as Streamlit would
  render a page next to a background run, sharing the GIL and the one store connection) renders
  the History page's data in a loop: ``store.list_runs()`` → ``Workspace.runs_table`` (i.e.
  ``figures.runs_frame``) + ``figures.results_frame(store.get_results(running run))``
  ("data"), and the same plus the page's figures (speedup, phases, trend, heatmap, timeline of
  one run) ("page"). Goal: ≤ 1 s per render. The page's ``st.cache_data`` is keyed on the store
  version, which changes on every answer written, so during a run every render is a cache miss:
  these timings are what the user waits.
- ``--also-fixed``: the same load with AIMD off (fixed C), for comparison.

    .venv/bin/python -m bench.load [--quick] [--n 1000] [--concurrency 32] [--suite none|offline]
                                   [--also-fixed] [--out bench/results/load.json]
    .venv/bin/python -m bench.load --suite judge          # the 1,000-question judge run (issue 11)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._standin import standin_process
from rag_core.models import MetricScore, QAItem, RequestTiming
from rag_core.reporting import figures as figs
from rag_core.reporting import frames
from rag_core.reporting.compare import runs_table
from rag_core.runs import executor as pipeline
from rag_core.runs.request import RunOptions
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore
from rag_core.summary import GenerationStats, JudgeStats, MetricStats, PassUsage, RunSummary, Timings, Usage

ROOT = Path(__file__).resolve().parent.parent

FAKE_KEY = "sk-bench-not-a-real-key"
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
SAMPLE_QUESTIONS = ROOT / "data" / "sample" / "questions.json"
RESULTS = ROOT / "bench" / "results"
RENDER_GOAL_S = 1.0
RENDER_PAUSE_S = 0.5
"""Pause between two renders of the probe (a user clicking around, not a busy loop)."""
MAX_RUN_S = 1800.0
"""Give up on a run after this long (the run's own deadline is the settings' 1800 s too)."""
PRIOR_RUNS = 100
PRIOR_QUESTIONS = 10


# --- helpers ----------------------------------------------------------------------------------------
def vm_rss_mb() -> float:
    """Current resident set size of this process, MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_items(n: int) -> list[QAItem]:
    """``n`` distinct questions: the sample questions, then re-phrased variants of them."""
    base = json.loads(SAMPLE_QUESTIONS.read_text())
    prefixes = ["", "Quick question: ", "Could you tell me: ", "HR query — ", "Please confirm: "]
    items: list[QAItem] = []
    k = 0
    while len(items) < n:
        q = base[k % len(base)]
        variant = k // len(base)
        pre = prefixes[variant % len(prefixes)]
        suffix = f" (ref {variant})" if variant >= len(prefixes) else ""
        items.append(QAItem(pre + q["question"] + suffix, q["ground_truth"]))
        k += 1
    return items


def seed_history(store: HistoryStore, n_runs: int, rng: random.Random) -> float:
    """Write ``n_runs`` finished runs (10 answered + scored questions each) quickly; seconds taken."""
    t = time.perf_counter()
    base = make_items(PRIOR_QUESTIONS)
    metrics = ("semantic_similarity", "rouge_l", "context_recall")
    for r in range(n_runs):
        backend = "claude" if r % 2 else "offline"
        mode = ("sequential", "async", "compare")[r % 3]
        run_id = store.create_run(
            question_set="questions.json",
            backend=backend,
            mode=mode,
            suite="offline",
            config={"backend": backend, "mode": mode, "concurrency": 8, "top_k": 4, "suite": "offline"},
            items=base,
        )
        now = time.time()
        timings = []
        for i, it in enumerate(base):
            store.save_answer(
                run_id,
                i,
                answer=f"Answer {i} of run {r}: {it.ground_truth}",
                contexts=[
                    {
                        "id": f"h:{i}",
                        "text": it.ground_truth,
                        "source": "handbook.pdf",
                        "page": i + 1,
                        "position": i,
                        "score": 0.8,
                    }
                ],
                latency_s=0.5,
                attempts=1,
                input_tokens=900,
                output_tokens=80,
                model="claude-sonnet-4-5" if backend == "claude" else "offline-extractive",
            )
            store.save_scores(run_id, i, [MetricScore(metric=m, value=rng.random()) for m in metrics])
            timings.append(
                RequestTiming(
                    index=i,
                    phase="generation",
                    label=it.question[:80],
                    start=now + i * 0.05,
                    end=now + i * 0.05 + 0.5,
                    attempts=1,
                    status="ok",
                    throttled_s=0.0,
                    input_tokens=900,
                    output_tokens=80,
                )
            )
        store.save_requests(run_id, timings)
        store.update_run(
            run_id,
            status="completed",
            finished=True,
            timings={"retrieval_s": 0.4, "generation_s": 5.0, "evaluation_s": 2.0, "total_s": 7.4},
            summary=RunSummary(
                run_id=run_id,
                status="completed",
                backend="claude",
                mode=mode,
                suite="offline",
                n_questions=PRIOR_QUESTIONS,
                answered=PRIOR_QUESTIONS,
                timings=Timings(retrieval_s=0.4, generation_s=5.0, evaluation_s=2.0, total_s=7.4),
                generation=GenerationStats(
                    concurrency=8,
                    sequential_s=10.0 if mode == "compare" else None,
                    async_s=1.1,
                    speedup_measured=9.0 if mode == "compare" else None,
                    speedup_estimated=8.5,
                    ideal_speedup=10.0,
                ),
                metrics=tuple(
                    MetricStats(
                        suite="offline",
                        name=m,
                        mean=rng.random(),
                        stdev=0.1,
                        scored=PRIOR_QUESTIONS,
                        total=PRIOR_QUESTIONS,
                    )
                    for m in metrics
                ),
                usage=Usage(
                    passes=(
                        PassUsage(
                            kind="answers",
                            model="claude-sonnet-4-5",
                            calls=PRIOR_QUESTIONS,
                            input_tokens=9000,
                            output_tokens=800,
                            cost_usd=0.039,
                        ),
                    )
                ),
                judge=JudgeStats(suite="offline"),
            ),
        )
    return time.perf_counter() - t


def _runs_table(runs: list[Any]) -> Any:
    """What the History table shows."""
    return runs_table(runs)


def render_history(
    store: HistoryStore,
    run_id: int | None,
    timeline_run: int,
    *,
    figures: bool,
    parts: dict[str, float] | None = None,
) -> float:
    """One render of the History page's data (and figures); seconds taken (``parts``: by step)."""
    parts = {} if parts is None else parts
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        parts[name] = now - t
        t = now

    runs = store.list_runs()
    lap("list_runs")
    _runs_table(runs)
    lap("runs_table")
    results = store.get_results(run_id) if run_id is not None else []
    lap("get_results")
    rf = frames.results_frame(results, suite=store.get_run(run_id).suite) if run_id is not None else None
    lap("results_frame")
    if figures:
        runs_df = frames.runs_frame(runs)
        recent = runs_df.tail(20)
        figs.speedup_figure(recent)
        figs.phase_figure(recent)
        figs.metric_trend_figure(runs_df)
        lap("run_figures")
        figs.timeline_figure(frames.timeline_frame(store.get_requests(timeline_run)))
        figs.heatmap_figure(rf)
        lap("timeline_heatmap")
    return time.perf_counter() - t0


class Probe(threading.Thread):
    """Renders the History page's data every :data:`RENDER_PAUSE_S` until stopped."""

    def __init__(self, store: HistoryStore, timeline_run: int) -> None:
        super().__init__(name="history-probe", daemon=True)
        self.store = store
        self.timeline_run = timeline_run
        self.run_id: int | None = None
        self.phase: Any = lambda: ""
        self.stop = threading.Event()
        self.data_s: list[float] = []
        self.page_s: list[float] = []
        self.slowest: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        for _ in range(100_000):
            if self.stop.is_set():
                return
            try:
                self.data_s.append(render_history(self.store, self.run_id, self.timeline_run, figures=False))
                parts: dict[str, float] = {}
                phase = self.phase()
                took = render_history(self.store, self.run_id, self.timeline_run, figures=True, parts=parts)
                self.page_s.append(took)
                self.slowest.append({"seconds": took, "phase": phase, "parts": parts})
                self.slowest = sorted(self.slowest, key=lambda x: -x["seconds"])[:5]
            except Exception as exc:  # report, keep probing
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(RENDER_PAUSE_S)


def stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    return {
        "n": len(s),
        "median_s": statistics.median(s),
        "p95_s": s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)],
        "max_s": s[-1],
        "over_goal": sum(1 for x in s if x > RENDER_GOAL_S),
    }


def load_run(
    settings: Settings,
    store: HistoryStore,
    items: list[QAItem],
    *,
    concurrency: int,
    latency: float,
    suite: str,
    probe: Probe | None,
    adaptive: bool,
) -> dict[str, Any]:
    """One run through the pipeline; its numbers."""
    limits: list[int] = []
    if True:  # one block: the run and its probe
        req = pipeline.RunRequest(
            items=tuple(items),
            backend="claude",
            mode="async",
            concurrency=concurrency,
            top_k=settings.top_k,
            suite=suite,
            question_set="load",
        )
        rss_before = vm_rss_mb()
        t0 = time.perf_counter()
        handle = pipeline.start_run(
            req, settings=settings, store=store, options=RunOptions(adaptive=adaptive)
        )
        if probe is not None:
            probe.run_id = handle.run_id
            probe.phase = lambda: handle.progress().phase
        limit_t = time.monotonic() + MAX_RUN_S
        while not handle.done() and time.monotonic() < limit_t:
            p = handle.progress()
            if p.phase == "generation" and p.concurrency_limit:
                limits.append(p.concurrency_limit)
            time.sleep(0.25)
        if not handle.done():
            handle.cancel()
        handle.wait(60)
        wall = time.perf_counter() - t0
    summary = pipeline.summarize_run(store, handle.run_id, settings)
    results = store.get_results(handle.run_id)
    n = len(items)
    ideal = math.ceil(n / concurrency) * latency
    scoring: dict[str, Any] | None = None
    if suite == "judge":
        chains: dict[tuple[int, str], int] = {}
        for t in store.get_requests(handle.run_id):
            if t.phase == "evaluation":
                key = (t.index, str(t.extra.get("metric", t.label.split(" · ")[0])))
                chains[key] = chains.get(key, 0) + 1
        calls = sum(chains.values())
        chain = max(chains.values(), default=0)
        scoring_ideal = max(calls * latency / concurrency, chain * latency)
        scores = [s for r in results for s in (r.scores or {}).values()]
        eval_s = summary.timings.evaluation_s or float("nan")
        scoring = {
            "judge_calls": calls,
            "judge_requests": summary.judge.calls,
            "longest_chain": chain,
            "ideal_s": scoring_ideal,
            "evaluation_s": eval_s,
            "ratio_to_ideal": eval_s / scoring_ideal if scoring_ideal else None,
            "scores": len(scores),
            "scored": sum(1 for s in scores if s.value is not None),
            "retries": summary.retries.to_json(),
            "judge_cost_usd": summary.usage.judge_cost_usd,
        }
    timings = summary.timings.to_json()
    gen_s = summary.timings.generation_s or float("nan")
    kinds: dict[str, int] = {}
    for r in results:
        if r.error_kind:
            kinds[r.error_kind] = kinds.get(r.error_kind, 0) + 1
    return {
        "run_id": handle.run_id,
        "status": str(summary.status),
        "adaptive": adaptive,
        "n": n,
        "concurrency": concurrency,
        "wall_s": wall,
        "retrieval_s": timings.get("retrieval_s"),
        "generation_s": gen_s,
        "evaluation_s": timings.get("evaluation_s"),
        "ideal_generation_s": ideal,
        "ratio_generation_to_ideal": gen_s / ideal if ideal else None,
        "answered": sum(1 for r in results if r.answer is not None),
        "failed": sum(1 for r in results if r.error is not None),
        "lost": sum(1 for r in results if r.answer is None and r.error is None),
        "error_kinds": kinds,
        "attempts_total": sum(r.attempts for r in results),
        "concurrency_limit": (
            {"min": min(limits), "median": statistics.median(limits), "max": max(limits), "last": limits[-1]}
            if limits
            else None
        ),
        "vm_rss_before_mb": rss_before,
        "vm_rss_after_mb": vm_rss_mb(),
        "scoring": scoring,
    }


# --- main -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="N=200 instead of 1000")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--rate-429", type=float, default=0.05)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--suite", choices=("none", "offline", "judge"), default="none")
    p.add_argument("--history-runs", type=int, default=PRIOR_RUNS)
    p.add_argument("--also-fixed", action="store_true", help="repeat with AIMD off for comparison")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    n = args.n or (200 if args.quick else 1000)
    out_path = args.out or RESULTS / ("load-quick.json" if args.quick and args.n is None else "load.json")
    rng = random.Random(args.seed)
    report: dict[str, Any] = {
        "quick": args.quick,
        "env": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
        },
        "setup": {
            "n": n,
            "concurrency": args.concurrency,
            "adaptive": True,
            "latency_s": args.latency,
            "rate_429": args.rate_429,
            "retry_after_s": args.retry_after,
            "seed": args.seed,
            "suite": args.suite,
            "backend": "claude",
            "mode": "async",
            "history_prior_runs": args.history_runs,
            "render_goal_s": RENDER_GOAL_S,
        },
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as tmp,
        standin_process(
            latency=args.latency,
            rate_429=args.rate_429,
            retry_after=args.retry_after,
            seed=args.seed,
            max_seconds=3 * MAX_RUN_S,
            ragas=args.suite == "judge",
        ) as standin,
    ):
        settings = Settings.load(env={"RAG_DATA_DIR": tmp}, secrets_path=Path(tmp) / "none.toml")
        settings = settings.replace(
            api_key=Secret(FAKE_KEY), base_url=standin.base_url, concurrency=args.concurrency
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = HistoryStore(settings.db_path)
        try:
            from rag_core.ingest.service import ingest_paths

            t = time.perf_counter()
            outcomes = list(ingest_paths([SAMPLE_PDF], settings=settings, store=store))
            report["ingest"] = {
                "seconds": time.perf_counter() - t,
                "chunks": sum(o.chunks for o in outcomes),
                "errors": [o.error for o in outcomes if o.error],
            }
            report["history_seed_s"] = seed_history(store, args.history_runs, rng)
            timeline_run = store.list_runs(1)[0].id
            idle = [render_history(store, timeline_run, timeline_run, figures=f) for f in (False, True) * 3]
            report["render_idle"] = {"data": stats(idle[2::2]), "page": stats(idle[3::2])}
            items = make_items(n)

            probe = Probe(store, timeline_run)
            probe.start()
            try:
                report["run"] = load_run(
                    settings,
                    store,
                    items,
                    concurrency=args.concurrency,
                    latency=args.latency,
                    suite=args.suite,
                    probe=probe,
                    adaptive=True,
                )
            finally:
                probe.stop.set()
                probe.join(30)
            report["run"]["server"] = standin.stats()
            report["render_during_run"] = {
                "data": stats(probe.data_s),
                "page": stats(probe.page_s),
                "slowest_page_renders": probe.slowest,
                "errors": probe.errors[:5],
            }
            if args.also_fixed:
                before = standin.stats()
                report["fixed_run"] = load_run(
                    settings,
                    store,
                    items,
                    concurrency=args.concurrency,
                    latency=args.latency,
                    suite=args.suite,
                    probe=None,
                    adaptive=False,
                )
                after = standin.stats()
                report["fixed_run"]["server_requests"] = after["count"] - before["count"]
        finally:
            store.close()
    report["peak_rss_mb"] = peak_rss_mb()
    report["env"]["loadavg_after"] = os.getloadavg()
    r = report["run"]
    during = report["render_during_run"]
    report["pass"] = {
        "none_lost": r["lost"] == 0 and r["answered"] + r["failed"] == n,
        **(
            {"scoring_le_1.3x_ideal": bool(r["scoring"]["ratio_to_ideal"] <= 1.3)} if r.get("scoring") else {}
        ),
        "history_render_le_1s": bool(during["data"].get("n")) and during["data"]["max_s"] <= RENDER_GOAL_S,
        "history_page_with_figures_le_1s": bool(during["page"].get("n"))
        and during["page"]["max_s"] <= RENDER_GOAL_S,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=float))
    print_table(report)
    print(f"\nwrote {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")
    return 0


def print_table(rep: dict[str, Any]) -> None:
    r = rep["run"]
    s = rep["setup"]
    rows = [
        ("questions (N) / concurrency start (C)", f"{s['n']} / {s['concurrency']} (adaptive AIMD)"),
        ("stand-in", f"L={s['latency_s']} s, {s['rate_429']:.0%} 429 (retry-after {s['retry_after_s']} s)"),
        ("run status", str(r["status"])),
        (
            "generation wall / ideal ⌈N/C⌉·L",
            f"{r['generation_s']:.1f} s / {r['ideal_generation_s']:.1f} s "
            f"= {r['ratio_generation_to_ideal']:.2f}×",
        ),
        ("retrieval / total wall", f"{r['retrieval_s']:.1f} s / {r['wall_s']:.1f} s"),
        ("answered / failed / lost", f"{r['answered']} / {r['failed']} / {r['lost']}"),
        ("server requests (by fault)", f"{r['server']['count']} {r['server']['by_fault']}"),
        *(
            [
                (
                    "scoring wall / ideal max(Σcalls·L/C, chain·L)",
                    f"{r['scoring']['evaluation_s']:.1f} s / {r['scoring']['ideal_s']:.1f} s "
                    f"= {r['scoring']['ratio_to_ideal']:.2f}× ({r['scoring']['judge_calls']} judge calls, "
                    f"{r['scoring']['judge_requests']} requests)",
                ),
                (
                    "scores succeeded / retries",
                    f"{r['scoring']['scored']} of {r['scoring']['scores']} / "
                    f"{r['scoring']['retries']['retries']} (throttled {r['scoring']['retries']['throttled_s']:.0f} s)",
                ),
            ]
            if r.get("scoring")
            else []
        ),
        ("server peak in flight", str(r["server"]["peak_concurrency"])),
        (
            "AIMD limit min/median/max/last",
            "—"
            if not r["concurrency_limit"]
            else "{min}/{median}/{max}/{last}".format(**r["concurrency_limit"]),
        ),
        ("peak RSS (ru_maxrss)", f"{rep['peak_rss_mb']:.0f} MB"),
        ("VmRSS before → after run", f"{r['vm_rss_before_mb']:.0f} → {r['vm_rss_after_mb']:.0f} MB"),
    ]
    for label, key in (("History data render", "data"), ("History page + figures", "page")):
        idle = rep["render_idle"][key]
        dur = rep["render_during_run"][key]
        if dur.get("n"):
            rows.append(
                (
                    f"{label}: idle median → during run median/p95/max",
                    f"{idle['median_s'] * 1000:.0f} ms → {dur['median_s'] * 1000:.0f}/"
                    f"{dur['p95_s'] * 1000:.0f}/{dur['max_s'] * 1000:.0f} ms ({dur['n']} renders, "
                    f"{dur['over_goal']} over 1 s)",
                )
            )
    if "fixed_run" in rep:
        f = rep["fixed_run"]
        rows.append(
            (
                "AIMD off: generation wall / ratio",
                f"{f['generation_s']:.1f} s = {f['ratio_generation_to_ideal']:.2f}× ideal; "
                f"answered/failed/lost {f['answered']}/{f['failed']}/{f['lost']}",
            )
        )
    rows.append(("pass", ", ".join(f"{k}={v}" for k, v in rep["pass"].items())))
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    sys.exit(main())
