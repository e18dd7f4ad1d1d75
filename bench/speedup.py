"""Benchmark: Claude answers through the engine against the loopback Messages API stand-in.

The real ``anthropic`` SDK (via :class:`rag_core.answer.claude.ClaudeAnswerer`, fake key, ``base_url``
pointing at the stand-in) runs through :class:`rag_core.engine.Engine`. The stand-in runs in its own
process (``--in-process`` to run it in a thread instead). Scenarios and goals (issue 3):

  a) N=10, L=1 s, C=10: sequential (C=1) wall ÷ async wall (measured speedup) ≥ 9.5 (limit 10).
  b) N=100, C=16, L=1 s: async wall ÷ ideal (⌈N/C⌉·L) ≤ 1.10.
  c) L=0, N=1000, C=16: engine overhead per request ≤ 3 ms, where
       overhead = (wall through Engine.submit − wall of a bare asyncio.gather of the same SDK
                   calls, bounded by an asyncio.Semaphore(C), on the same loop) ÷ N
     (median of alternating repeats); also the pure-engine cost of a no-op job, and the
     SDK + loopback round-trip cost per request for scale.
  d) N=100, C=16, L=1 s with 10% 429 (retry-after 0.5 s) + 5% 529 + 2% hangs (timeout 3 s):
     every item answered or explicitly failed (none lost); wall reported, with AIMD on (default)
     and, for comparison, off (same fault seed).
  e) (informational) load-driven 429s: the stand-in allows 6 in flight, we ask for 16;
     AIMD on vs off: wall and number of 429s.

Warm-up: before each scenario one request goes through the engine, so the SDK's lazy imports and the
client's creation are not charged to the first batch (compare mode does the same implicitly: its
sequential pass runs first).

    .venv/bin/python -m bench.speedup [--quick] [--out bench/results/speedup.json] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench._standin import StandIn, standin_process
from rag_core.answer.claude import ClaudeAnswerer
from rag_core.engine import BatchPolicy, Engine, ItemResult
from rag_core.models import Chunk, ScoredChunk
from rag_core.settings import Secret, Settings

ROOT = Path(__file__).resolve().parent.parent

FAKE_KEY = "sk-bench-not-a-real-key"
CONTEXT = [
    ScoredChunk(
        Chunk(
            "h:3",
            "Full-time employees accrue 25 days of paid annual leave per calendar year. "
            "Up to five unused days may be carried over to the next year.",
            "northwind_staff_handbook.pdf",
            4,
            3,
            "h",
        ),
        0.82,
    ),
    ScoredChunk(
        Chunk(
            "h:4",
            "Leave requests must be submitted through the HR portal at least two weeks in advance.",
            "northwind_staff_handbook.pdf",
            4,
            4,
            "h",
        ),
        0.74,
    ),
]


# --- plumbing ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def standin(in_process: bool, **opts: Any) -> Iterator[StandIn]:
    if not in_process:
        with standin_process(**opts) as s:
            yield s
        return
    from tests.support.anthropic_server import FakeAnthropic, FaultPlan

    plan = FaultPlan(
        rate_429=opts.get("rate_429", 0.0),
        rate_529=opts.get("rate_529", 0.0),
        rate_hang=opts.get("rate_hang", 0.0),
        seed=opts.get("seed", 0),
        retry_after=opts.get("retry_after", 1.0),
    )
    with FakeAnthropic(latency=opts.get("latency", 0.0), faults=plan, hang_s=opts.get("hang_s", 30.0)) as srv:
        s = StandIn(srv.base_url)
        s.stats = srv.stats  # type: ignore[method-assign]
        yield s


def answerer_for(url: str, timeout_s: float = 30.0) -> ClaudeAnswerer:
    settings = Settings(
        api_key=Secret(FAKE_KEY),
        base_url=url,
        request_timeout_s=timeout_s,
        answer_model="claude-sonnet-4-5",
        answer_max_tokens=256,
    )
    return ClaudeAnswerer(settings)


def jobs_for(answerer: ClaudeAnswerer, n: int) -> list[Callable[[], Any]]:
    return [
        lambda i=i: answerer.answer(f"How many days of annual leave do I get? (#{i})", CONTEXT)
        for i in range(n)
    ]


def run_batch(
    engine: Engine, jobs: list[Callable[[], Any]], policy: BatchPolicy
) -> tuple[float, list[ItemResult], Any]:
    t0 = time.perf_counter()
    handle = engine.submit(jobs, policy=policy)
    results = handle.wait(900)
    return time.perf_counter() - t0, results, handle.progress()


def warm_up(engine: Engine, answerer: ClaudeAnswerer) -> None:
    engine.call(answerer.answer, "warm-up", CONTEXT)


def fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.3f}{unit}" if abs(x) < 100 else f"{x:.1f}{unit}"


# --- scenarios -----------------------------------------------------------------------------------------
def scenario_a(engine: Engine, in_process: bool, n: int, latency: float, repeats: int) -> dict[str, Any]:
    with standin(in_process, latency=latency) as srv:
        answerer = answerer_for(srv.base_url)
        warm_up(engine, answerer)
        runs = []
        for _ in range(repeats):
            seq, r1, _ = run_batch(engine, jobs_for(answerer, n), BatchPolicy(concurrency=1))
            par, r2, _ = run_batch(engine, jobs_for(answerer, n), BatchPolicy(concurrency=n))
            assert all(r.status == "ok" for r in r1 + r2), [r.error for r in r1 + r2 if r.error][:3]
            runs.append({"sequential_s": seq, "async_s": par, "speedup": seq / par})
        stats = srv.stats()
    speedups = [r["speedup"] for r in runs]
    return {
        "n": n,
        "latency_s": latency,
        "concurrency": n,
        "runs": runs,
        "sequential_s": statistics.median(r["sequential_s"] for r in runs),
        "async_s": statistics.median(r["async_s"] for r in runs),
        "speedup": statistics.median(speedups),
        "ideal_speedup": float(n),
        "goal": ">= 9.5",
        "pass": statistics.median(speedups) >= 9.5,
        "server_peak_concurrency": stats["peak_concurrency"],
    }


def scenario_b(
    engine: Engine, in_process: bool, n: int, c: int, latency: float, repeats: int
) -> dict[str, Any]:
    with standin(in_process, latency=latency) as srv:
        answerer = answerer_for(srv.base_url)
        warm_up(engine, answerer)
        walls = []
        for _ in range(repeats):
            wall, results, _ = run_batch(engine, jobs_for(answerer, n), BatchPolicy(concurrency=c))
            assert all(r.status == "ok" for r in results)
            walls.append(wall)
        stats = srv.stats()
    ideal = math.ceil(n / c) * latency
    wall = statistics.median(walls)
    return {
        "n": n,
        "concurrency": c,
        "latency_s": latency,
        "walls_s": walls,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "goal": "<= 1.10",
        "pass": wall / ideal <= 1.10,
        "server_peak_concurrency": stats["peak_concurrency"],
        "overhead_per_wave_s": (wall - ideal) / math.ceil(n / c),
    }


async def _direct_gather(make: Callable[[int], Any], n: int, c: int) -> float:
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


def _timed_call(engine: Engine, make: Callable[[int], Any], n: int, c: int) -> float:
    t0 = time.perf_counter()
    engine.call(_direct_gather, make, n, c)
    return time.perf_counter() - t0


def scenario_c(engine: Engine, in_process: bool, n: int, c: int, repeats: int) -> dict[str, Any]:
    # Pure engine: no-op jobs, engine vs bare gather on the same loop.
    async def noop() -> None:
        return None

    async def noop_i(_i: int) -> None:
        return None

    noop_engine, noop_direct = [], []
    for _ in range(repeats):
        noop_direct.append(_timed_call(engine, noop_i, n, c))
        noop_engine.append(run_batch(engine, [noop] * n, BatchPolicy(concurrency=c))[0])

    with standin(in_process, latency=0) as srv:
        answerer = answerer_for(srv.base_url)
        warm_up(engine, answerer)
        _timed_call(engine, lambda i: answerer.answer(f"q{i}", CONTEXT), 50, c)  # open the pool
        sdk_engine, sdk_direct = [], []
        for _ in range(repeats):
            sdk_direct.append(_timed_call(engine, lambda i: answerer.answer(f"q{i}", CONTEXT), n, c))
            wall, results, _ = run_batch(engine, jobs_for(answerer, n), BatchPolicy(concurrency=c))
            assert all(r.status == "ok" for r in results)
            sdk_engine.append(wall)
        stats = srv.stats()
    med = statistics.median
    pairwise = sorted((e - d) / n * 1e3 for e, d in zip(sdk_engine, sdk_direct, strict=True))
    over_ms = med(pairwise)  # median of back-to-back pairs: robust to load drifting between repeats
    return {
        "n": n,
        "concurrency": c,
        "repeats": repeats,
        "sdk_engine_walls_s": sdk_engine,
        "sdk_direct_walls_s": sdk_direct,
        "engine_overhead_ms_per_request": over_ms,
        "engine_overhead_ms_pairwise": pairwise,
        "sdk_roundtrip_ms_per_request": med(sdk_direct) / n * 1e3,
        "noop_engine_walls_s": noop_engine,
        "noop_direct_walls_s": noop_direct,
        "noop_engine_ms_per_job": med(noop_engine) / n * 1e3,
        "noop_overhead_ms_per_job": (med(noop_engine) - med(noop_direct)) / n * 1e3,
        "goal": "<= 3 ms",
        "pass": over_ms <= 3.0 and med(noop_engine) / n * 1e3 <= 3.0,
        "server_requests": stats["count"],
    }


def _faulty_run(
    engine: Engine,
    in_process: bool,
    n: int,
    c: int,
    latency: float,
    timeout_s: float,
    adaptive: bool,
    server: dict[str, Any],
) -> dict[str, Any]:
    with standin(in_process, latency=latency, **server) as srv:
        answerer = answerer_for(srv.base_url, timeout_s=timeout_s)
        warm_up(engine, answerer)
        before = srv.stats()
        policy = BatchPolicy(
            concurrency=c,
            timeout_s=timeout_s,
            max_retries=4,
            backoff_base_s=0.5,
            backoff_max_s=8.0,
            retry_after_cap_s=20.0,
            deadline_s=600.0,
            adaptive=adaptive,
        )
        wall, results, progress = run_batch(engine, jobs_for(answerer, n), policy)
        after = srv.stats()
    ok = sum(r.status == "ok" for r in results)
    failed = sum(r.status == "error" for r in results)
    by_fault = {k: after["by_fault"].get(k, 0) - before["by_fault"].get(k, 0) for k in after["by_fault"]}
    return {
        "adaptive": adaptive,
        "wall_s": wall,
        "answered": ok,
        "failed": failed,
        "lost": n - ok - failed,
        "failed_errors": [f"{r.index}: {r.error_kind}: {r.error}" for r in results if r.status == "error"],
        "retries": progress.retries,
        "throttled_s": progress.throttled_s,
        "requests_seen_by_server": after["count"] - before["count"],
        "server_faults": by_fault,
        "server_peak_concurrency": after["peak_concurrency"],
        "final_concurrency_limit": progress.concurrency_limit,
        "max_attempts": max(r.attempts for r in results),
    }


def scenario_d(
    engine: Engine, in_process: bool, n: int, c: int, latency: float, timeout_s: float
) -> dict[str, Any]:
    """Random (load-independent) faults; AIMD on (the product default) and off, same fault seed."""
    server = {
        "rate_429": 0.10,
        "rate_529": 0.05,
        "rate_hang": 0.02,
        "retry_after": 0.5,
        "seed": 7,
        "hang_s": 30.0,
    }
    runs = [
        _faulty_run(engine, in_process, n, c, latency, timeout_s, adaptive, server)
        for adaptive in (True, False)
    ]
    main = runs[0]
    return {
        "n": n,
        "concurrency": c,
        "latency_s": latency,
        "timeout_s": timeout_s,
        "server": server,
        "ideal_without_faults_s": math.ceil(n / c) * latency,
        **main,
        "fixed_concurrency_run": runs[1],
        "goal": "none lost",
        "pass": all(r["lost"] == 0 and r["answered"] + r["failed"] == n for r in runs),
    }


def scenario_e(engine: Engine, in_process: bool, n: int, c: int, latency: float, cap: int) -> dict[str, Any]:
    """Load-driven 429s (server allows ``cap`` in flight): AIMD on vs off. Informational."""
    server = {"max_concurrent": cap, "retry_after": 0.5}
    runs = [
        _faulty_run(engine, in_process, n, c, latency, 10.0, adaptive, server) for adaptive in (True, False)
    ]
    return {
        "n": n,
        "concurrency": c,
        "latency_s": latency,
        "server_max_concurrent": cap,
        "ideal_at_server_cap_s": math.ceil(n / cap) * latency,
        "adaptive": runs[0],
        "fixed": runs[1],
        "goal": "none lost",
        "pass": all(r["lost"] == 0 for r in runs),
    }


# --- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Engine + Claude answerer speedup benchmark (loopback stand-in).")
    p.add_argument("--quick", action="store_true", help="short smoke variant (smaller N and L)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speedup.json")
    p.add_argument("--in-process", action="store_true", help="run the stand-in in a thread of this process")
    p.add_argument("--only", default="abcde", help="scenarios to run, e.g. 'ac'")
    args = p.parse_args(argv)

    if args.quick:
        cfg = {
            "a": (10, 0.3, 1),
            "b": (48, 16, 0.3, 1),
            "c": (200, 16, 3),
            "d": (40, 16, 0.3, 1.0),
            "e": (24, 16, 0.3, 6),
        }
    else:
        cfg = {
            "a": (10, 1.0, 3),
            "b": (100, 16, 1.0, 2),
            "c": (1000, 16, 7),
            "d": (100, 16, 1.0, 3.0),
            "e": (60, 16, 1.0, 6),
        }

    engine = Engine()
    out: dict[str, Any] = {
        "quick": args.quick,
        "in_process_standin": args.in_process,
        "env": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "anthropic": _version("anthropic"),
            "anyio": _version("anyio"),
        },
        "scenarios": {},
    }
    t_all = time.perf_counter()
    try:
        sc = out["scenarios"]
        if "a" in args.only:
            sc["a_speedup"] = scenario_a(engine, args.in_process, *cfg["a"])
        if "b" in args.only:
            sc["b_wall_vs_ideal"] = scenario_b(engine, args.in_process, *cfg["b"])
        if "c" in args.only:
            sc["c_overhead"] = scenario_c(engine, args.in_process, *cfg["c"])
        if "d" in args.only:
            sc["d_faults"] = scenario_d(engine, args.in_process, *cfg["d"])
        if "e" in args.only:
            sc["e_load_driven_429"] = scenario_e(engine, args.in_process, *cfg["e"])
    finally:
        engine.shutdown()
    out["env"]["loadavg_after"] = os.getloadavg()
    out["total_s"] = time.perf_counter() - t_all
    out["all_passed"] = all(s["pass"] for s in out["scenarios"].values())

    print_table(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0 if out["all_passed"] else 1


def print_table(out: dict[str, Any]) -> None:
    sc = out["scenarios"]
    rows: list[tuple[str, str, str, str]] = []
    if "a_speedup" in sc:
        a = sc["a_speedup"]
        runs = ", ".join(f"{r['speedup']:.2f}" for r in a["runs"])
        rows.append(
            (
                f"a) N={a['n']} L={a['latency_s']:g}s C={a['concurrency']}",
                f"seq {fmt(a['sequential_s'], 's')} / async {fmt(a['async_s'], 's')} = "
                f"{a['speedup']:.2f}x (runs {runs})",
                "speedup >= 9.5x",
                _ok(a),
            )
        )
    if "b_wall_vs_ideal" in sc:
        b = sc["b_wall_vs_ideal"]
        rows.append(
            (
                f"b) N={b['n']} L={b['latency_s']:g}s C={b['concurrency']}",
                f"wall {fmt(b['wall_s'], 's')} / ideal {fmt(b['ideal_s'], 's')} = {b['ratio']:.3f}",
                "ratio <= 1.10",
                _ok(b),
            )
        )
    if "c_overhead" in sc:
        c = sc["c_overhead"]
        rows.append(
            (
                f"c) L=0 N={c['n']} C={c['concurrency']}",
                f"engine overhead {c['engine_overhead_ms_per_request']:.3f} ms/req "
                f"(SDK round trip {c['sdk_roundtrip_ms_per_request']:.2f} ms/req); "
                f"no-op job {c['noop_engine_ms_per_job']:.3f} ms "
                f"(+{c['noop_overhead_ms_per_job']:.3f} vs bare gather)",
                "<= 3 ms/req",
                _ok(c),
            )
        )
    if "d_faults" in sc:
        d = sc["d_faults"]
        rows.append(
            (
                f"d) N={d['n']} L={d['latency_s']:g}s C={d['concurrency']} 10%429+5%529+2%hang",
                f"{d['answered']} answered, {d['failed']} failed, {d['lost']} lost; wall "
                f"{fmt(d['wall_s'], 's')} (no-fault ideal {fmt(d['ideal_without_faults_s'], 's')}); "
                f"{d['retries']} retries, throttled {fmt(d['throttled_s'], 's')}, "
                f"server saw {d['requests_seen_by_server']} {d['server_faults']}; "
                f"with AIMD off: wall {fmt(d['fixed_concurrency_run']['wall_s'], 's')}, "
                f"{d['fixed_concurrency_run']['answered']} answered, "
                f"{d['fixed_concurrency_run']['lost']} lost",
                "none lost",
                _ok(d),
            )
        )
    if "e_load_driven_429" in sc:
        e = sc["e_load_driven_429"]
        ad, fx = e["adaptive"], e["fixed"]
        rows.append(
            (
                f"e) N={e['n']} L={e['latency_s']:g}s C={e['concurrency']} server cap "
                f"{e['server_max_concurrent']} (info)",
                f"AIMD on: wall {fmt(ad['wall_s'], 's')}, {ad['server_faults'].get('429', 0)} x 429, "
                f"final limit {ad['final_concurrency_limit']}; AIMD off: wall {fmt(fx['wall_s'], 's')}, "
                f"{fx['server_faults'].get('429', 0)} x 429, {fx['failed']} failed "
                f"(ideal at cap {fmt(e['ideal_at_server_cap_s'], 's')})",
                "none lost",
                _ok(e),
            )
        )
    w0 = max(len(r[0]) for r in rows)
    print(f"\n{'scenario':<{w0}} | {'goal':<16} | pass | measured")
    print("-" * (w0 + 40))
    for name, measured, goal, ok in rows:
        print(f"{name:<{w0}} | {goal:<16} | {ok:<4} | {measured}")
    print(
        f"\nload average before/after: {out['env']['loadavg_before']} / {out['env']['loadavg_after']}"
        f"  (cpus: {out['env']['cpus']}); total {out['total_s']:.1f} s"
    )


def _ok(s: dict[str, Any]) -> str:
    return "yes" if s["pass"] else "NO"


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
