"""Benchmark: generating 30 questions from the sample handbook (issue 14, "Measure").

The sample handbook (``data/sample/northwind_staff_handbook.pdf``) is indexed into a temporary data
dir and 30 pairs of all four kinds are generated through the real workspace, the real engine and
the real ``anthropic`` SDK against the loopback Messages API stand-in (in its own process, so its
CPU work does not count): the stand-in writes schema-valid pairs from the passages it is given
(``tests/support/authoring_responder.py``) — the numbers measure the pipeline, not Claude's writing.

Reported:
- duplicates dropped (embedding near-duplicates) and decline questions dropped by the retrieval check;
- the share of kept pairs whose source links are **valid**: every link's chunk is in the index and the
  link's passage text (and its fingerprint) matches that chunk now (goal 100 %); declines have no
  links and count as valid when they have none;
- wall time; the cost estimate (before starting) vs the actual cost from the usage the API reported;
- a second run of the same plan: requests answered from the generation cache (goal: all).

    .venv/bin/python -m bench.generation [--n 30] [--out bench/results/generation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._standin import standin_process

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
COLLECTION = "All documents"
FAKE_KEY = "sk-" + "bench-not-a-real-key-0123456789"


def run(n: int) -> dict[str, Any]:
    from rag_core.settings import Secret, Settings
    from rag_core.text import passage_fingerprint
    from rag_core.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp, standin_process() as api:
        data = Path(tmp) / "data"
        settings = Settings.load(env={"RAG_DATA_DIR": str(data)}, secrets_path=data / "none.toml").replace(
            base_url=api.base_url, api_key=Secret(FAKE_KEY)
        )
        ws = Workspace(settings)
        try:
            assert ws.ingest_sample().status == "added"
            plan = ws.plan_generation(COLLECTION, n)
            est = ws.estimate_generation(plan)
            t0 = time.perf_counter()
            report = ws.wait_generation(ws.start_generation(plan), 600)
            wall = time.perf_counter() - t0
            assert report is not None
            pairs = [ws.store.generated_pair(i) for i in report.queued]
            chunks = {c.id: c for d in ws.documents(COLLECTION) for c in ws.chunks(d.name, COLLECTION)}
            valid = 0
            for p in pairs:
                ok = all(
                    link.chunk_id in chunks
                    and chunks[link.chunk_id].text == link.passage
                    and passage_fingerprint(chunks[link.chunk_id].text) == link.fingerprint
                    for link in p.sources
                )
                ok = ok and (bool(p.sources) == (p.kind != "decline"))
                valid += ok
            sent_before = api.stats()["count"]
            again = ws.wait_generation(ws.start_generation(plan), 600)
            assert again is not None
            sent_again = api.stats()["count"] - sent_before
        finally:
            ws.close()
    by_kind: dict[str, int] = {}
    for p in pairs:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
    return {
        "requested": n,
        "written": report.written,
        "failed": report.failed,
        "duplicates_dropped": report.duplicates_dropped,
        "declines_dropped": report.declines_dropped,
        "flagged_general": report.flagged_general,
        "kept": len(pairs),
        "kept_by_kind": by_kind,
        "valid_source_links": valid,
        "valid_share": valid / len(pairs) if pairs else None,
        "wall_s": round(wall, 2),
        "calls_sent": report.calls_sent,
        "estimate": {
            "calls": est.calls,
            "input_tokens": est.input_tokens,
            "output_tokens": est.output_tokens,
            "cost_usd": est.cost_usd,
        },
        "actual": {
            "input_tokens": report.input_tokens,
            "output_tokens": report.output_tokens,
            "cost_usd": report.cost_usd,
        },
        "estimate_over_actual_cost": est.cost_usd / report.cost_usd if report.cost_usd else None,
        "estimate_over_actual_input_tokens": est.input_tokens / report.input_tokens
        if report.input_tokens
        else None,
        "second_run": {
            "requests_sent": sent_again,
            "cache_hits": again.cache_hits,
            "kept": len(again.queued),
        },
        "model": est.model,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generation.json")
    args = p.parse_args(argv)
    r = run(args.n)
    print(f"generation of {r['requested']} pairs from the sample handbook (stand-in, {r['model']} prices)")
    print(f"  written {r['written']} · failed {r['failed']} · kept {r['kept']} {r['kept_by_kind']}")
    print(
        f"  near-duplicates dropped: {r['duplicates_dropped']} · declines dropped (documents cover them): {r['declines_dropped']}"
    )
    print(
        f"  valid source links: {r['valid_source_links']} of {r['kept']} = {100 * (r['valid_share'] or 0):.0f} % (goal 100 %)"
    )
    print(f"  wall time: {r['wall_s']:.2f} s for {r['calls_sent']} requests")
    e, a = r["estimate"], r["actual"]
    print(
        f"  cost estimate ${e['cost_usd']:.4f} ({e['input_tokens']:,} in / {e['output_tokens']:,} out) vs actual "
        f"${a['cost_usd']:.4f} ({a['input_tokens']:,} in / {a['output_tokens']:,} out): "
        f"estimate / actual = {r['estimate_over_actual_cost']:.2f} (input tokens {r['estimate_over_actual_input_tokens']:.2f})"
    )
    s = r["second_run"]
    print(
        f"  same plan again: {s['requests_sent']} requests sent, {s['cache_hits']} from the cache, {s['kept']} new pairs kept"
    )
    result = {
        "benchmark": "generation",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "load_average": os.getloadavg()[0],
        **r,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if r["valid_share"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
