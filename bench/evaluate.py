"""Benchmark Phase 2 (judge scoring) against the loopback stand-in.

    .venv/bin/python -m bench.evaluate [--latency 1] [--concurrency 16] [--questions 10]
                                       [--cached-questions 100] [--sequential measure|estimate]

What it measures (real anthropic SDK + instructor + RAGAS code over loopback HTTP; the stand-in
answers every RAGAS tool call with schema-valid content after ``latency`` seconds):

1. **Async scoring**: N questions × 4 judge metrics (faithfulness, answer relevancy, context
   precision with k=4 chunks, context recall) at concurrency C. Compared with its *ideal*:
   ``max(total calls × L / C, critical path × L)`` — a job's calls are sequential (context
   precision makes k calls in a row, answer relevancy 3, faithfulness 2, recall 1), so no
   schedule beats the longest job. Also printed, for comparison: the best schedule when each job
   holds one slot for all its calls (longest-first list scheduling — the engine before issue 11;
   now each call takes its own slot of the gate, see ``bench/judge.py``).
2. **Sequential scoring** (C=1): measured (default) or estimated from the sum of the async run's
   job latencies (``--sequential estimate``); the table says which.
3. **Cached re-score** of M questions: every judgement is first put in the judge cache by a real
   scoring run (at zero latency), then the timed re-score must make no API call.

Goals (issue 4): async wall ≤ 1.2 × ideal; cached re-score ≤ 1 s. Prints a table and writes
``bench/results/evaluate.json``. Everything lives in a temporary data dir; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import heapq
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rag_core.engine import BatchPolicy, Engine
from rag_core.evaluation import JUDGE_METRICS, Sample, make_suite, submit_scoring
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore
from tests.support.anthropic_server import FakeAnthropic
from tests.support.ragas_responder import RagasResponder

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "bench" / "results" / "evaluate.json"
HANDBOOK = ROOT / "data" / "sample" / "handbook.md"
QUESTIONS = ROOT / "data" / "sample" / "questions.json"
TOP_K = 4
MAX_WAIT_S = 900.0


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def build_samples(n: int) -> list[Sample]:
    """n samples from the sample question set (cycled, made distinct), k=4 handbook paragraphs each."""
    items = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", HANDBOOK.read_text(encoding="utf-8"))]
    paras = [p for p in paras if len(p) > 80]
    out = []
    for i in range(n):
        item = items[i % len(items)]
        gt = item["ground_truth"]
        ranked = sorted(paras, key=lambda p: -len(_words(p) & _words(gt)))[:TOP_K]
        suffix = "" if i < len(items) else f" (variant {i // len(items)})"
        answer = re.split(r"(?<=[.!?])\s", gt, maxsplit=1)[0]
        out.append(
            Sample(question=item["question"] + suffix, answer=answer, contexts=ranked, ground_truth=gt)
        )
    return out


def lpt_makespan(durations: list[float], slots: int) -> float:
    """Longest-processing-time-first list schedule of jobs on ``slots`` identical slots."""
    heap = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        start = heapq.heappop(heap)
        heapq.heappush(heap, start + d)
    return max(heap) if durations else 0.0


def score(
    samples: list[Sample], suite: Any, engine: Engine, store: HistoryStore, concurrency: int, *, fresh: bool
) -> tuple[Any, float]:
    policy = BatchPolicy(concurrency=concurrency, timeout_s=60.0, max_retries=2)
    t = time.perf_counter()
    out = submit_scoring(samples, suite=suite, engine=engine, policy=policy, store=store, fresh=fresh).wait(
        MAX_WAIT_S
    )
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--latency", type=float, default=1.0, help="stand-in seconds per judge call (L)")
    p.add_argument("--concurrency", type=int, default=16, help="jobs in flight (C)")
    p.add_argument("--questions", type=int, default=10)
    p.add_argument("--cached-questions", type=int, default=100)
    p.add_argument("--sequential", choices=("measure", "estimate"), default="measure")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    lat, conc = args.latency, args.concurrency
    state = {"latency": 0.0}

    with (
        tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp,
        FakeAnthropic(responder=RagasResponder(), latency=lambda n: state["latency"]) as srv,
    ):
        settings = Settings.load(env={"RAG_DATA_DIR": tmp}, secrets_path=Path(tmp) / "none.toml")
        settings = settings.replace(base_url=srv.base_url, api_key=Secret("sk-test-not-a-real-key"))
        store = HistoryStore(settings.db_path)
        suite = make_suite("judge", settings)
        engine = Engine()
        try:
            samples = build_samples(args.questions)
            # warm-up at zero latency: imports, embedding model, judge client (not timed)
            score(build_samples(1), suite, engine, store, conc, fresh=True)

            # 1. async scoring at L, C
            state["latency"] = lat
            srv.reset_stats()
            n0 = srv.count
            out, wall = score(samples, suite, engine, store, conc, fresh=True)
            calls = out.calls
            assert srv.count - n0 == calls, "every judge call must be counted"
            per_job = [suite.expected_calls(m, s) for s in samples for m in suite.metrics]
            critical = max(per_job)
            ideal = max(calls * lat / conc, critical * lat)
            lpt = lpt_makespan([c * lat for c in per_job], conc)
            peak = srv.peak_concurrency
            failed = sum(1 for row in out.scores for sc in row.values() if sc.value is None)
            busy = sum(t.end - t.start for t in out.timings)

            # 2. sequential scoring
            if args.sequential == "measure":
                _, seq_wall = score(samples, suite, engine, store, 1, fresh=True)
                seq_how = "measured (C=1)"
            else:
                seq_wall = busy
                seq_how = "estimated (sum of async job latencies)"

            # 3. cached re-score
            many = build_samples(args.cached_questions)
            state["latency"] = 0.0
            pop, pop_wall = score(many, suite, engine, store, conc, fresh=False)
            state["latency"] = lat  # a cache miss would now cost a visible second
            n1 = srv.count
            cached, cached_wall = score(many, suite, engine, store, conc, fresh=False)
            cached_calls = srv.count - n1
        finally:
            engine.shutdown()

    result = {
        "latency_s": lat,
        "concurrency": conc,
        "questions": args.questions,
        "metrics": list(JUDGE_METRICS),
        "top_k": TOP_K,
        "judge_calls": calls,
        "critical_path_calls": critical,
        "ideal_s": round(ideal, 3),
        "job_level_optimum_s": round(lpt, 3),
        "async_wall_s": round(wall, 3),
        "ratio_to_ideal": round(wall / ideal, 3),
        "goal_ratio": 1.2,
        "pass_async": wall <= 1.2 * ideal,
        "peak_server_concurrency": peak,
        "failed_scores": failed,
        "sequential_s": round(seq_wall, 3),
        "sequential_method": seq_how,
        "speedup_vs_sequential": round(seq_wall / wall, 2),
        "cached_questions": args.cached_questions,
        "cache_populate_s": round(pop_wall, 3),
        "cache_populate_calls": pop.calls,
        "cached_rescore_s": round(cached_wall, 3),
        "cached_rescore_calls": cached_calls,
        "cached_rescore_hits": cached.cache_hits,
        "goal_cached_s": 1.0,
        "pass_cached": cached_wall <= 1.0 and cached_calls == 0,
    }
    rows = [
        ("judge calls (10/question: 2+3+k+1, k=4)", f"{calls}"),
        ("critical path (sequential calls)", f"{critical}"),
        ("ideal = max(calls·L/C, path·L)", f"{ideal:.2f} s"),
        ("job-level optimum (one slot per metric job)", f"{lpt:.2f} s"),
        (
            f"async wall (C={conc})",
            f"{wall:.2f} s  = {wall / ideal:.2f}× ideal (goal ≤ 1.2×) "
            f"{'PASS' if result['pass_async'] else 'FAIL'}",
        ),
        ("peak requests in flight at server", f"{peak}"),
        ("failed scores", f"{failed}"),
        (f"sequential, {seq_how}", f"{seq_wall:.2f} s  → speedup {seq_wall / wall:.1f}×"),
        (f"cache fill, {args.cached_questions} questions at L=0", f"{pop_wall:.2f} s, {pop.calls} calls"),
        (
            f"cached re-score, {args.cached_questions} questions",
            f"{cached_wall:.3f} s, {cached_calls} calls, {cached.cache_hits} hits (goal ≤ 1 s) "
            f"{'PASS' if result['pass_cached'] else 'FAIL'}",
        ),
    ]
    print(
        f"Phase 2 judge scoring — {args.questions} questions × {len(JUDGE_METRICS)} metrics, "
        f"L={lat:g} s, C={conc}"
    )
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0 if result["pass_async"] and result["pass_cached"] else 1


if __name__ == "__main__":
    sys.exit(main())
