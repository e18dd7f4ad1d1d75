"""Benchmark: coverage of the sample handbook, and stale detection after a policy change (issue 14).

A. **Coverage** — the sample handbook (``data/sample/northwind_staff_handbook.pdf``) and its 10
   sample questions, offline: sections tested / total, the untested sections, and where each
   question was linked (how: key facts / best match; which section).
B. **Stale detection** — in a fresh data dir, the sample set is linked by the ingest hook (no
   coverage computed first), then a copy of the handbook with two sections changed
   (``tests/support/handbook.py``: "2. Annual Leave" carry-over five → eight days, "8. Remote and
   Hybrid Working" three → two days at home) is uploaded under the same name into the same
   collection. Reported: the questions flagged vs the questions grounded in the changed sections
   (by their links before the change, and by my reading of the handbook: Q2 and Q7). Control
   first: a change in a section no question tests ("11. Grievances") must flag nothing (the
   changed copy keeps that change, so it differs from the control in the two sections only).

    .venv/bin/python -m bench.coverage [--out bench/results/coverage.json]

Exit status 1 when the flagged questions are not exactly those grounded in the changed sections.
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

from rag_core.settings import Settings
from rag_core.workspace import SAMPLE_PDF, SAMPLE_SET_NAME, Workspace
from tests.support.handbook import STALE_EDITS, STALE_QUESTIONS, UNTESTED_EDIT, handbook_pdf

ROOT = Path(__file__).resolve().parent.parent

#: My reading of the handbook (data/sample/handbook.md): the section each sample question's
#: expected answer comes from (Q10 asks about company cars, which the handbook never mentions).
BY_READING = {
    1: "1. Working Hours and Flexitime",
    2: "2. Annual Leave",
    3: "3. Probation",
    4: "4. Sickness Absence and Sick Pay",
    5: "5. Maternity, Partner and Adoption Leave",
    6: "6. Disciplinary Procedure and Gross Misconduct",
    7: "8. Remote and Hybrid Working",
    8: "9. Pay-Related Benefits",
    9: "12. Notice and Termination of Employment",
    10: None,
}


def _workspace(folder: Path) -> Workspace:
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(env={"RAG_DATA_DIR": str(folder)}, secrets_path=folder / "none.toml")
    return Workspace(settings)


def coverage_part(folder: Path) -> dict[str, Any]:
    ws = _workspace(folder)
    try:
        ws.ingest_sample()
        ws.ensure_sample_set()
        t0 = time.perf_counter()
        report = ws.coverage(SAMPLE_SET_NAME)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        ws.coverage(SAMPLE_SET_NAME)  # links stored: the second call only aggregates
        again = time.perf_counter() - t1
    finally:
        ws.close()
    linked = {q.number: (q.sections[0][1] if q.sections else None) for q in report.questions}
    return {
        "sections_covered": report.covered,
        "sections_total": report.total,
        "untested": [s.label for s in report.untested],
        "questions": [
            {
                "number": q.number,
                "origin": q.origin,
                "section": linked[q.number],
                "by_reading": BY_READING[q.number],
            }
            for q in report.questions
        ],
        "links_agree_with_reading": sum(1 for n, s in linked.items() if s == BY_READING[n]),
        "first_coverage_s": round(seconds, 3),
        "cached_coverage_s": round(again, 3),
    }


def stale_part(folder: Path) -> dict[str, Any]:
    ws = _workspace(folder)
    try:
        ws.ingest_sample()
        ws.ensure_sample_set()
        t0 = time.perf_counter()
        control = ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf(UNTESTED_EDIT))])[0]
        control_s = time.perf_counter() - t0
        control_flagged = [s.number for s in ws.stale_questions(SAMPLE_SET_NAME)]
        items = ws.question_set(SAMPLE_SET_NAME)
        number = {it.question: n for n, it in enumerate(items, 1)}
        before = ws.store.link_states(SAMPLE_SET_NAME)
        t1 = time.perf_counter()
        out = ws.ingest_files([(SAMPLE_PDF.name, handbook_pdf({**UNTESTED_EDIT, **STALE_EDITS}))])[0]
        change_s = time.perf_counter() - t1
        stale = ws.stale_questions(SAMPLE_SET_NAME)
    finally:
        ws.close()
    changed = set(out.sections_changed)
    grounded = sorted({number[ls.question] for ls in before if ls.link.section in changed})
    flagged = [s.number for s in stale]
    return {
        "control": {
            "sections_changed": list(control.sections_changed),
            "flagged": control_flagged,
            "seconds": round(control_s, 3),
        },
        "change": {
            "status": out.status,
            "version": out.version,
            "sections_changed": sorted(changed),
            "flagged": flagged,
            "grounded_by_links": grounded,
            "grounded_by_reading": sorted(n for n, s in BY_READING.items() if s in changed),
            "exact": flagged == grounded == list(STALE_QUESTIONS),
            "seconds": round(change_s, 3),
            "passages": [
                {
                    "number": s.number,
                    "section": ls.link.section,
                    "reason": ls.reason,
                    "old": ls.link.passage,
                    "new": ls.new_passage,
                }
                for s in stale
                for ls in s.links
            ],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "coverage.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-coverage-") as tmp:
        cov = coverage_part(Path(tmp) / "coverage")
        stale = stale_part(Path(tmp) / "stale")
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "coverage": cov,
        "stale": stale,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"A. coverage: {cov['sections_covered']} of {cov['sections_total']} sections tested")
    print("   untested: " + "; ".join(cov["untested"]))
    for q in cov["questions"]:
        ok = "✓" if q["section"] == q["by_reading"] else "✗"
        print(
            f"   Q{q['number']:<2} {q['origin']:8} {q['section'] or '—':48} reading: {q['by_reading'] or '—'} {ok}"
        )
    print(
        f"   first coverage {cov['first_coverage_s']:.2f} s (links computed), again {cov['cached_coverage_s'] * 1000:.0f} ms"
    )
    c, s = stale["control"], stale["change"]
    print(f"B. control: changed {c['sections_changed']} → flagged {c['flagged'] or 'none'}")
    print(
        f"   change: sections {s['sections_changed']} → flagged {s['flagged']}; grounded there by links "
        f"{s['grounded_by_links']}, by reading {s['grounded_by_reading']}; exact: {s['exact']} "
        f"(re-upload {s['seconds']:.2f} s)"
    )
    print(f"wrote {args.out}")
    return 0 if s["exact"] and not c["flagged"] else 1


if __name__ == "__main__":
    sys.exit(main())
