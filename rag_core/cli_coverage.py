"""CLI commands for issue 14's coverage map and stale questions (registered by :mod:`rag_core.cli`):

- ``coverage --questions SET [--collection NAME] [--json OUT]`` — per section of each document:
  the questions that test it and the latest run's score; then the untested sections.
- ``questions stale SET [--json]`` — the questions flagged "review: the policy changed", with the
  old and the new passage; ``--confirm N`` confirms question N's expected answer (clears its flag).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rag_core.errors import InputError
from rag_core.settings import Settings
from rag_core.storage.jsonsafe import clean

__all__ = ["add_parsers"]

EXIT_OK = 0


def _workspace(settings: Settings) -> Any:
    from rag_core.cli_audit import cli_workspace

    return cli_workspace(settings)


def _write_json(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(clean(data), indent=2, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc.strerror}.") from None


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_coverage(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        report = ws.coverage(args.questions, args.collection)
    finally:
        ws.close()
    run = f"latest run #{report.run_id}" if report.run_id is not None else "no run yet"
    print(
        f"{report.question_set} on {report.collection}: {report.covered} of {report.total} sections "
        f"tested ({run})"
    )
    width = max([len(s.label) for s in report.sections] + [10])
    width = min(width, 60)
    for doc in report.documents():
        print(doc)
        for s in (s for s in report.sections if s.document == doc):
            score = "—" if s.score is None else f"{s.score:.2f} ({s.correct}/{s.in_run})"
            qs = ", ".join(f"Q{n}" for n in s.questions) or "untested"
            stale = f"  ⚠ {s.stale} stale" if s.stale else ""
            print(f"  {s.label[:width]:{width}}  {s.n_questions:>3} q  last {score:14}  {qs}{stale}")
    if report.untested:
        print("untested sections:")
        for s in report.untested:
            print(f"  {s.document} › {s.label}")
    for q in report.stale_questions:
        print(f"Q{q.number} review: the policy changed ({q.stale_reason}): {_one_line(q.question, 100)}")
    if args.json_out:
        _write_json(args.json_out, report.to_json())
    return EXIT_OK


def cmd_questions_stale(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        if args.confirm is not None:
            cleared = ws.confirm_question(args.set_name, args.confirm)
            print(
                f"Q{args.confirm} of {args.set_name!r}: expected answer confirmed; "
                f"{cleared} passage{'s' if cleared != 1 else ''} re-linked to the current version"
            )
            return EXIT_OK
        stale = ws.stale_questions(args.set_name)
    finally:
        ws.close()
    if args.json:
        print(json.dumps(clean([s.to_json() for s in stale]), indent=2, ensure_ascii=False))
        return EXIT_OK
    if not stale:
        print(f"no question of {args.set_name!r} is flagged")
        return EXIT_OK
    for s in stale:
        print(f"Q{s.number}  review: the policy changed — {_one_line(s.question, 120)}")
        print(f"     expected: {_one_line(s.ground_truth)}")
        for ls in s.links:
            where = f"{ls.link.document} › {ls.link.section or '(before the first heading)'}"
            print(f"     {ls.reason} in {where} (linked v{ls.link.version}, now v{ls.checked_version})")
            print(f"       old: {_one_line(ls.link.passage)}")
            print(f"       new: {_one_line(ls.new_passage) if ls.new_passage else '(section removed)'}")
    print(f"{len(stale)} flagged; confirm one with: questions stale {args.set_name!r} --confirm N")
    return EXIT_OK


def add_parsers(sub: Any, questions: Any) -> None:
    """Register ``coverage`` on the top-level ``sub`` and ``stale`` on the ``questions`` actions."""
    s = sub.add_parser("coverage", help="which sections of a collection a question set tests")
    s.add_argument("--questions", required=True, help="the saved question set")
    s.add_argument("--collection", help="document collection (default: the set's, else the default one)")
    s.add_argument("--json", type=Path, dest="json_out", help="write the report (per section) here")
    s.set_defaults(func=cmd_coverage)
    s = questions.add_parser("stale", help="questions flagged 'review: the policy changed'")
    s.add_argument("set_name", metavar="SET")
    s.add_argument("--json", action="store_true", help="print the flagged questions as JSON")
    s.add_argument(
        "--confirm", type=int, metavar="N", help="confirm question N's expected answer (clears it)"
    )
    s.set_defaults(func=cmd_questions_stale)
