"""Exports shared by the CLI and the dashboard: a run as JSON or CSV, a question set as JSON or CSV.

Every function here is pure (no Streamlit, no file writes): it returns text the caller writes to a
file, stdout or a download button.

* :func:`run_export` — the run's summary (leading with its ``headline``: "N of M answers
  correct" and what decided it) plus its results, in input order, each with its expected
  behaviour, whether it declined, the analyst's verdict and whether it counts as correct. Never
  contains NaN or infinity (they become ``null``), so ``json.dumps(..., allow_nan=False)`` always
  works.
* :func:`csv_text` — the one CSV writer every export goes through. Text cells that a spreadsheet
  would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are
  prefixed with ``'`` (:func:`rag_core.text.formula_guard`): questions, answers and chunks come
  from people and uploaded documents and must not execute when the file is opened in Excel.
* :func:`results_csv` — one row per question, leading with ``correct`` / ``correct_by``.
* :func:`questions_json` / :func:`questions_csv` — a question set in the formats that
  :func:`rag_core.questions.parse_questions` reads back unchanged (the CSV reader removes exactly
  the guard's ``'``, see :mod:`rag_core.text`).
* :func:`export_filename` — the download's file name (``leave.csv``, never ``leave.csv.csv``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rag_core.models import QAItem
from rag_core.runs.correctness import correctness, declined
from rag_core.storage.jsonsafe import clean
from rag_core.storage.records import ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import RunSummary
from rag_core.text import formula_guard
from rag_core.vocab import metric

#: Extensions an export name may already end with (dropped before the format's own is added).
_EXPORT_EXTENSIONS = (".csv", ".json")


def run_export(
    run: RunRecord,
    summary: RunSummary,
    results: Sequence[ResultRecord],
    verdicts: Mapping[int, VerdictRecord] | None = None,
) -> dict[str, Any]:
    """A run as the CLI's ``--json`` / the JSON export: the summary (the README's contract, leading
    with ``headline``), the run's identity and config, and its results in input order with the
    analyst's ``verdicts`` (question index → verdict). Never contains NaN."""
    verdicts = verdicts or {}
    out = summary.to_json()
    versions = {
        str(d.get("sha256")): f"{d.get('name')} v{d.get('version')}"
        for d in run.config.get("documents") or []
        if isinstance(d, dict)
    }
    out.update(
        collection=run.config.get("collection"),
        documents=run.config.get("documents") or [],
        question_set=run.question_set,
        created_at=run.created_at,
        finished_at=run.finished_at,
        config=run.config,
        results=[_result(r, verdicts.get(r.index), summary.suite, versions) for r in results],
    )
    return clean(out)


def _result(
    r: ResultRecord, v: VerdictRecord | None, suite: str, versions: Mapping[str, str]
) -> dict[str, Any]:
    decided = correctness(r, v)
    return {
        "question": r.question,
        "ground_truth": r.ground_truth,
        "expected": str(r.expected),
        "answer": r.answer,
        "correct": decided.correct,
        "correct_by": decided.basis,
        "declined": declined(r),
        "verdict": None
        if v is None
        else {
            "verdict": str(v.verdict),
            "comment": v.comment,
            "labelled_at": v.labelled_at,
            "inherited_from": v.inherited_from,
        },
        "contexts": r.contexts,
        "document_versions": sorted(
            {versions[c["doc_sha256"]] for c in r.contexts if c.get("doc_sha256") in versions}
        ),
        "scores": {k: s.value for k, s in r.scores.items()},
        "score_details": {
            k: {
                "metric_id": metric(k, suite).id,
                "value": s.value,
                "stdev": s.stdev,
                "reason": s.reason,
                "error": s.error,
                "skipped": s.skipped,
                "cached": s.cached,
            }
            for k, s in r.scores.items()
        },
        "error": r.error,
        "latency_s": r.latency_s,
        "attempts": r.attempts,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "model": r.model,
    }


def run_json_text(export: dict[str, Any]) -> str:
    """:func:`run_export`'s dict as indented JSON text (UTF-8 safe, never NaN)."""
    return json.dumps(clean(export), indent=2, allow_nan=False, ensure_ascii=False)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text (RFC 4180 quoting, ``\r\n`` line ends) of ``header`` and ``rows``: the one writer
    for every CSV export. Every text cell goes through :func:`~rag_core.text.formula_guard`, so no
    cell runs as a formula in a spreadsheet; numbers and ``None`` (an empty cell) are written as
    they are."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([formula_guard(h) for h in header])
    for row in rows:
        w.writerow([formula_guard(v) if isinstance(v, str) else ("" if v is None else v) for v in row])
    return buf.getvalue()


def export_filename(name: str, fmt: str) -> str:
    """A safe download name for ``name`` exported as ``fmt`` (``"csv"``/``"json"``): characters
    other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, an export extension the name
    already ends with is dropped (a set called ``leave.csv`` gives ``leave.csv``, not
    ``leave.csv.csv``), and an empty result becomes ``export``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    while stem.lower().endswith(_EXPORT_EXTENSIONS):
        stem = stem.rsplit(".", 1)[0].rstrip("._-")
    return f"{stem or 'export'}.{fmt.lower().lstrip('.')}"


def results_csv(export: dict[str, Any]) -> str:
    """One row per question: whether it is correct and what decided it (the headline's evidence),
    the analyst's verdict, expected behaviour and whether it declined, then question, ground truth,
    answer, error, latency, tokens, metrics, sources.

    ``export`` is :func:`run_export`'s dict. ``correct`` is ``yes``/``no``/empty (not checked).
    Metric columns are named by metric id (``facts.answer_key_facts``, ``judge.faithfulness``) in
    display order; a metric that failed, was skipped or was not scored is an empty cell (never 0).
    """
    suite = str(export.get("suite", ""))
    metrics = sorted(
        {m for r in export["results"] for m in r["scores"]}, key=lambda m: (metric(m, suite).order, m)
    )
    header = [
        "index",
        "correct",
        "correct_by",
        "verdict",
        "verdict_comment",
        "expected",
        "declined",
        "question",
        "ground_truth",
        "answer",
        "error",
        "latency_s",
        "input_tokens",
        "output_tokens",
        *[metric(m, suite).id for m in metrics],
        "sources",
    ]
    rows = []
    for i, r in enumerate(export["results"]):
        verdict = r.get("verdict") or {}
        rows.append(
            [
                i,
                _yes_no(r.get("correct")),
                r.get("correct_by") or "",
                verdict.get("verdict") or "",
                verdict.get("comment") or "",
                r.get("expected") or "answer",
                _yes_no(r.get("declined")),
                r["question"],
                r["ground_truth"],
                r["answer"] or "",
                r["error"] or "",
                r["latency_s"],
                r["input_tokens"],
                r["output_tokens"],
                *[r["scores"].get(m) for m in metrics],  # failed, skipped or not scored: empty, never 0
                "; ".join(f"{c['source']} p.{c['page']}" for c in r["contexts"]),
            ]
        )
    return csv_text(header, rows)


def _yes_no(value: Any) -> str:
    return "" if value is None else ("yes" if value else "no")


def questions_json(items: Iterable[QAItem]) -> str:
    """A question set as a JSON list of ``{"question", "ground_truth", "expected"}`` (re-importable)."""
    rows = [
        {"question": it.question, "ground_truth": it.ground_truth, "expected": str(it.expected)}
        for it in items
    ]
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def questions_csv(items: Iterable[QAItem]) -> str:
    """A question set as CSV with the header ``question,ground_truth,expected`` (re-importable).

    Formula-guarded like every export (``=HYPERLINK(…)`` is written ``'=HYPERLINK(…)``), and still
    re-importable: :func:`rag_core.questions.parse_questions` removes exactly the guard, so
    importing the file gives back the same questions.
    """
    return csv_text(
        ["question", "ground_truth", "expected"],
        ([it.question, it.ground_truth, str(it.expected)] for it in items),
    )
