"""Bounded ingestion (issue 15 item 7): peak memory, time and throughput of large files.

Each case runs the real CLI (``python -m rag_core ingest``) in a subprocess on a temporary data dir
and reaps it with ``os.wait4``, so the child's own peak RSS (``ru_maxrss``) is known:

  * ``text_49mb``      a 49.5 MB .txt — refused from its size before it is read      goal: peak ≤ 500 MB
  * ``text_limit``     a 4.8 MB .txt (just under the 5 MB limit), read, chunked and embedded until a
                       60 s time budget stops it (nothing kept)                     goal: peak ≤ 500 MB
  * ``text_1mb``       a 1 MB .txt indexed completely                                 chunks/s
  * ``baseline``       a one-line .md: the fixed cost (interpreter, Chroma, the embedding model)
  * ``pdf``            a generated text PDF (fpdf2, ``--pdf-pages`` pages) indexed      chunks/s, peak
  * ``cancel``         Ctrl-C 15 s into indexing a 4.8 MB .txt: seconds until the CLI has stopped

Usage: ``.venv/bin/python -m bench.ingest_limits [--pdf-pages 1000] [--out bench/results/ingest_limits.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEAK_GOAL_MB = 500
_WORDS = [
    "employees",
    "leave",
    "holiday",
    "manager",
    "approve",
    "request",
    "days",
    "policy",
    "pay",
    "sick",
    "notice",
    "period",
    "pension",
    "overtime",
    "expenses",
    "receipt",
    "mileage",
    "training",
    "probation",
    "contract",
    "flexible",
    "remote",
]


def policy_text(mb: float) -> bytes:
    """Policy-like text: numbered headings, paragraphs of ~60 words (deterministic)."""
    parts: list[str] = []
    size, i = 0, 0
    while size < mb * 1024 * 1024:
        i += 1
        if i % 12 == 1:
            part = f"{i // 12 + 1}. Section {i // 12 + 1}"
        else:
            part = " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(60)) + f". Rule {i}."
        parts.append(part)
        size += len(part) + 2
    return "\n\n".join(parts).encode()


def policy_pdf(pages: int) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for n in range(1, pages + 1):
        pdf.add_page()
        body = " ".join(_WORDS[(n * 5 + k) % len(_WORDS)] for k in range(140))
        pdf.multi_cell(0, 5, f"{n}. Policy {n}\n\n{body}. Rule {n}.")
    return bytes(pdf.output())


def run_cli(
    data: Path,
    *args: str,
    env: dict[str, str] | None = None,
    interrupt_after_s: float | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run ``rag_core <args>``; return exit code, output, peak RSS (MB), seconds (and the seconds from
    SIGINT to exit when ``interrupt_after_s`` is given)."""
    out_path, err_path = data.parent / "out.txt", data.parent / "err.txt"
    started = time.monotonic()
    interrupted: float | None = None
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag_core", "--data-dir", str(data), *args],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
        while True:  # bounded by ``timeout``
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if interrupt_after_s is not None and interrupted is None and now - started >= interrupt_after_s:
                proc.send_signal(signal.SIGINT)
                interrupted = now
            if now - started > timeout:
                proc.kill()
                raise RuntimeError(f"{args} did not finish within {timeout} s")
            time.sleep(0.05)
    ended = time.monotonic()
    result: dict[str, Any] = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(ended - started, 2),
        "stdout": out_path.read_text()[-2000:],
        "stderr": err_path.read_text()[-2000:],
    }
    if interrupted is not None:
        result["stop_after_sigint_s"] = round(ended - interrupted, 2)
    m = re.search(r"\((\d+) chunks", result["stdout"])
    if m:
        result["chunks"] = int(m.group(1))
        result["chunks_per_s"] = round(int(m.group(1)) / max(1e-9, ended - started), 1)
    return result


def bench(pdf_pages: int) -> dict[str, Any]:
    results: dict[str, Any] = {"loadavg_before": list(os.getloadavg()), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-limits-") as tmp:
        root = Path(tmp)

        def case(name: str, filename: str, data: bytes, **kw: Any) -> dict[str, Any]:
            folder = root / name
            folder.mkdir()
            path = folder / filename
            path.write_bytes(data)
            got = run_cli(folder / "data", "ingest", str(path), **kw)
            got["file_mb"] = round(len(data) / 1024 / 1024, 2)
            print(
                f"{name:12} {got['file_mb']:7.2f} MB  exit {got['exit_code']}  peak {got['peak_mb']:6.0f} MB  "
                f"{got['seconds']:6.1f} s  {got.get('chunks_per_s', '—')} chunks/s",
                flush=True,
            )
            return got

        results["baseline"] = case("baseline", "note.md", b"# Pay\n\nMonthly, on the 25th.\n")
        results["text_49mb"] = case("text_49mb", "dump.txt", policy_text(49.5))
        results["text_limit"] = case(
            "text_limit", "handbook.txt", policy_text(4.8), env={"RAG_INGEST_BUDGET_S": "60"}
        )
        results["text_1mb"] = case("text_1mb", "policies.txt", policy_text(1.0))
        t0 = time.perf_counter()
        pdf = policy_pdf(pdf_pages)
        results["pdf_generate_s"] = round(time.perf_counter() - t0, 1)
        results["pdf"] = case("pdf", f"handbook_{pdf_pages}_pages.pdf", pdf)
        results["pdf"]["pages"] = pdf_pages
        results["cancel"] = case("cancel", "handbook.txt", policy_text(4.8), interrupt_after_s=15.0)
    results["loadavg_after"] = list(os.getloadavg())
    results["goal_peak_mb"] = PEAK_GOAL_MB
    results["peak_within_goal"] = all(
        results[k]["peak_mb"] <= PEAK_GOAL_MB for k in ("text_49mb", "text_limit", "text_1mb", "pdf")
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-pages", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_limits.json")
    args = parser.parse_args()
    results = bench(args.pdf_pages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"peak within {PEAK_GOAL_MB} MB: {results['peak_within_goal']} → {args.out}")


if __name__ == "__main__":
    main()
