"""Exports shared by the CLI and the dashboard: a run as JSON or CSV, a question set as JSON or CSV.

Every function here is pure (no Streamlit, no file writes): it returns text the caller writes to a
file, stdout or a download button.

* :func:`run_summary_json` — the run record plus its results, in input order. Never contains NaN
  or infinity (they become ``null``), so ``json.dumps(..., allow_nan=False)`` always works.
* :func:`results_csv` — one row per question. Text cells that a spreadsheet would run as a formula
  (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with ``'``:
  answers and chunks come from uploaded documents and must not execute when opened in Excel.
* :func:`questions_json` / :func:`questions_csv` — a question set in the formats that
  :func:`rag_core.questions.parse_questions` reads back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from typing import Any

from rag_core.models import QAItem

#: First characters that make a spreadsheet treat a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def run_summary_json(store: Any, run_id: int) -> dict[str, Any]:
    """The run record + results in input order (the CLI's ``--json``). Never contains NaN.

    Raises :class:`~rag_core.errors.InputError` (from the store) when the run does not exist.
    """
    run = store.get_run(run_id)
    results = store.get_results(run_id)
    s = run.summary or {}
    out = {
        "run_id": run.id,
        "status": run.status,
        "backend": run.backend,
        "mode": run.mode,
        "suite": run.suite,
        "question_set": run.question_set,
        "created_at": run.created_at,
        "n_questions": len(results),
        "config": run.config,
        "timings": {
            k: run.timings.get(k) for k in ("retrieval_s", "generation_s", "evaluation_s", "total_s")
        },
        "generation": s.get("generation", {}),
        "metrics": s.get("metrics", {}),
        "usage": s.get("usage", {}),
        "judge": s.get("judge", {}),
        "errors": s.get("errors", sum(1 for r in results if r.error)),
        "results": [
            {
                "question": r.question,
                "ground_truth": r.ground_truth,
                "answer": r.answer,
                "contexts": r.contexts,
                "scores": {k: v.value for k, v in r.scores.items()},
                "score_details": {
                    k: {
                        "value": v.value,
                        "stdev": v.stdev,
                        "reason": v.reason,
                        "error": v.error,
                        "cached": v.cached,
                    }
                    for k, v in r.scores.items()
                },
                "error": r.error,
                "latency_s": r.latency_s,
                "attempts": r.attempts,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "model": r.model,
            }
            for r in results
        ],
    }
    if "failure" in s:
        out["failure"] = s["failure"]
    return finite(out)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by ``None``, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def run_json_text(summary: dict[str, Any]) -> str:
    """:func:`run_summary_json`'s dict as indented JSON text (UTF-8 safe, never NaN)."""
    return json.dumps(finite(summary), indent=2, allow_nan=False, ensure_ascii=False)


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def results_csv(summary: dict[str, Any]) -> str:
    """One row per question: question, ground truth, answer, error, latency, tokens, metrics, sources.

    ``summary`` is :func:`run_summary_json`'s dict. Metric columns are sorted by name; a metric
    that failed or was not scored is an empty cell (never 0).
    """
    metrics = sorted({m for r in summary["results"] for m in r["scores"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "index",
            "question",
            "ground_truth",
            "answer",
            "error",
            "latency_s",
            "input_tokens",
            "output_tokens",
            *metrics,
            "sources",
        ]
    )
    for i, r in enumerate(summary["results"]):
        sources = "; ".join(f"{c['source']} p.{c['page']}" for c in r["contexts"])
        w.writerow(
            [
                _cell(v)
                for v in (
                    i,
                    r["question"],
                    r["ground_truth"],
                    r["answer"] or "",
                    r["error"] or "",
                    r["latency_s"],
                    r["input_tokens"],
                    r["output_tokens"],
                    *[("" if r["scores"].get(m) is None else r["scores"][m]) for m in metrics],
                    sources,
                )
            ]
        )
    return buf.getvalue()


def questions_json(items: Iterable[QAItem]) -> str:
    """A question set as a JSON list of ``{"question", "ground_truth"}`` (re-importable)."""
    rows = [{"question": it.question, "ground_truth": it.ground_truth} for it in items]
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def questions_csv(items: Iterable[QAItem]) -> str:
    """A question set as CSV with the header ``question,ground_truth`` (re-importable).

    Cells are written as they are (no formula guard) so that importing the file gives back
    exactly the same questions.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["question", "ground_truth"])
    for it in items:
        w.writerow([it.question, it.ground_truth])
    return buf.getvalue()
