"""Benchmark ingestion and retrieval on this machine (offline; temp data dir; nothing kept).

Measures, against the goals in the team brief:
  * ingestion throughput (parse + embed + write) in chunks/s            goal ≥ 30
  * re-ingesting an unchanged file (parse + add_document → "unchanged")  goal ≤ 0.5 s
  * one batched retrieval of 100 questions                               goal ≤ 1 s

Usage: ``.venv/bin/python -m bench.ingest [--docs N] [--out bench/results/ingest.json]``
Prints a table (ratio ≥ 1.0 means the goal is met) and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rag_core.ingest.documents import parse_document
from rag_core.ingest.embeddings import get_embedder
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.retrieval import retrieve
from rag_core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

HANDBOOK = ROOT / "data" / "sample" / "handbook.md"
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
QUESTIONS = ROOT / "data" / "sample" / "questions.json"
GOALS = {"ingest_chunks_per_s": 30.0, "reingest_unchanged_s": 0.5, "retrieve_100_s": 1.0}

_TOPICS = [
    "annual leave",
    "sick pay",
    "parental leave",
    "remote working",
    "overtime",
    "expenses",
    "training budget",
    "probation",
    "notice period",
    "pension",
    "flexitime",
    "jury service",
    "bereavement leave",
    "whistleblowing",
    "data protection",
    "company car",
    "bonus",
    "uniform",
]
_FIRMS = [
    "Northwind Civic Trust",
    "Harbour Lane Housing",
    "Greenfield Libraries",
    "Eastgate Care",
    "Riverside Arts",
    "Meadow Transport",
    "Oakridge Schools",
    "Summit Advice",
]


def policy_text(seed: int, paragraphs: int = 40) -> str:
    """Generated policy-like markdown (used when the sample handbook is absent)."""
    rng = random.Random(seed)
    out = [f"# {rng.choice(_FIRMS)} policy manual {seed}"]
    for p in range(paragraphs):
        topic = rng.choice(_TOPICS)
        n, m = rng.randint(2, 40), rng.randint(1, 12)
        out.append(
            f"## {p + 1}. {topic.title()}\n\nEmployees are entitled to {n} days of {topic} each year, "
            f"pro rata for part-time staff. Requests must be made {m} weeks in advance through the "
            f"staff portal and approved by the line manager. Unused {topic} of up to {m} days may be "
            f"carried over until {rng.choice(['March', 'June', 'September'])}. Where the need is urgent, "
            f"the People Team may agree a shorter notice period. Disputes about {topic} follow the "
            "grievance procedure in section 12, and records are kept for six years."
        )
    return "\n\n".join(out)


def corpus(min_chunks: int, settings: Settings) -> list[tuple[str, bytes]]:
    """Varied markdown documents totalling at least ``min_chunks`` chunks."""
    base = HANDBOOK.read_text(encoding="utf-8") if HANDBOOK.is_file() else None
    docs: list[tuple[str, bytes]] = []
    total = 0
    for i in range(1000):
        if base:  # the sample handbook with a different employer, figures and times per copy
            rng = random.Random(i)
            text = base.replace("Northwind Civic Trust", _FIRMS[i % len(_FIRMS)] + f" {i}")
            text = re.sub(
                r"\b(\d{1,2})\b", lambda m, r=rng: str(max(1, int(m.group(1)) + r.randint(-3, 3))), text
            )
        else:
            text = policy_text(i)
        data = text.encode("utf-8")
        docs.append((f"policy_{i:03d}.md", data))
        total += len(parse_document(f"policy_{i:03d}.md", data, settings).chunks)
        if total >= min_chunks:
            break
    return docs


def questions(n: int) -> list[str]:
    base: list[str] = []
    if QUESTIONS.is_file():
        base = [item["question"] for item in json.loads(QUESTIONS.read_text(encoding="utf-8"))]
    base += [f"How many days of {t} do I get?" for t in _TOPICS]
    base += [f"Who approves {t} requests and how much notice is needed?" for t in _TOPICS]
    return [base[i % len(base)] + ("" if i < len(base) else f" (case {i})") for i in range(n)]


def _cpu_s() -> float:
    """CPU seconds used by this process (all threads) — shows how much of the box we really got."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(min_chunks: int) -> dict[str, Any]:
    results: dict[str, Any] = {"loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        t = time.perf_counter()
        embedder = get_embedder()
        results["model_load_s"] = time.perf_counter() - t
        embedder.embed(["warm-up"])

        docs = corpus(min_chunks, settings)
        with PolicyIndex(settings) as index:
            t, cpu = time.perf_counter(), _cpu_s()
            chunks = 0
            for name, data in docs:
                doc = parse_document(name, data, settings)
                assert index.add_document(doc) == "added"
                chunks += len(doc.chunks)
            ingest_s = time.perf_counter() - t
            ingest_cpu_s = _cpu_s() - cpu
            results.update(
                documents=len(docs),
                chunks=chunks,
                ingest_s=ingest_s,
                ingest_chunks_per_s=chunks / ingest_s,
                ingest_cpu_s=ingest_cpu_s,
                ingest_chunks_per_cpu_s=chunks / ingest_cpu_s,
                cores_used=ingest_cpu_s / ingest_s,
            )

            # Embedding alone, on the same texts (how much of ingestion is the model).
            texts = [c.text for c in parse_document(docs[0][0], docs[0][1], settings).chunks]
            t = time.perf_counter()
            embedder.embed(texts)
            results["embed_only_chunks_per_s"] = len(texts) / (time.perf_counter() - t)

            # Re-ingest unchanged: the largest markdown doc and the sample PDF (parse + add).
            timings = []
            for _ in range(5):
                name, data = docs[-1]
                t = time.perf_counter()
                status = index.add_document(parse_document(name, data, settings))
                timings.append(time.perf_counter() - t)
                assert status == "unchanged", status
            results["reingest_unchanged_s"] = statistics.median(timings)
            if SAMPLE_PDF.is_file():
                pdf = SAMPLE_PDF.read_bytes()
                index.add_document(parse_document(SAMPLE_PDF.name, pdf, settings))
                timings = []
                for _ in range(3):
                    t = time.perf_counter()
                    status = index.add_document(parse_document(SAMPLE_PDF.name, pdf, settings))
                    timings.append(time.perf_counter() - t)
                    assert status == "unchanged", status
                results["reingest_unchanged_pdf_s"] = statistics.median(timings)

            qs = questions(100)
            timings = []
            for _ in range(3):
                t = time.perf_counter()
                found = retrieve(index, qs, settings.top_k)
                timings.append(time.perf_counter() - t)
            assert len(found) == 100 and all(len(f) == settings.top_k for f in found)
            results["retrieve_100_s"] = statistics.median(timings)
            results["retrieve_100_first_s"] = timings[0]
            results["index_chunks"] = index.count()
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    return results


def table(results: dict[str, Any]) -> str:
    rows = [("metric", "measured", "goal", "ratio (≥1 meets)")]
    ratio = {
        "ingest_chunks_per_s": results["ingest_chunks_per_s"] / GOALS["ingest_chunks_per_s"],
        "reingest_unchanged_s": GOALS["reingest_unchanged_s"] / results["reingest_unchanged_s"],
        "retrieve_100_s": GOALS["retrieve_100_s"] / results["retrieve_100_s"],
    }
    rows.append(
        (
            "ingestion (chunks/s)",
            f"{results['ingest_chunks_per_s']:.1f}",
            "≥ 30",
            f"{ratio['ingest_chunks_per_s']:.2f}",
        )
    )
    rows.append(
        (
            "re-ingest unchanged .md (s)",
            f"{results['reingest_unchanged_s']:.3f}",
            "≤ 0.5",
            f"{ratio['reingest_unchanged_s']:.1f}",
        )
    )
    if "reingest_unchanged_pdf_s" in results:
        r = GOALS["reingest_unchanged_s"] / results["reingest_unchanged_pdf_s"]
        rows.append(
            (
                "re-ingest unchanged sample PDF (s)",
                f"{results['reingest_unchanged_pdf_s']:.3f}",
                "≤ 0.5",
                f"{r:.1f}",
            )
        )
    rows.append(
        (
            "retrieve 100 questions (s)",
            f"{results['retrieve_100_s']:.3f}",
            "≤ 1.0",
            f"{ratio['retrieve_100_s']:.1f}",
        )
    )
    rows.append(("  embed only (chunks/s)", f"{results['embed_only_chunks_per_s']:.1f}", "", ""))
    rows.append(
        (
            "  ingestion per CPU-second (chunks)",
            f"{results['ingest_chunks_per_cpu_s']:.1f}",
            "",
            f"cores used {results['cores_used']:.2f} of {os.cpu_count()}",
        )
    )
    rows.append(("  load average before", " ".join(f"{x:.1f}" for x in results["loadavg_before"]), "", ""))
    rows.append(("  model load + sha256 (s)", f"{results['model_load_s']:.2f}", "", ""))
    rows.append(("  corpus", f"{results['documents']} docs / {results['chunks']} chunks", "", ""))
    results["ratios"] = ratio
    results["goals"] = GOALS
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=320, help="minimum chunks to ingest (default 320)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args(argv)
    results = run(max(1, min(args.chunks, 20_000)))
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
