"""CLI commands for questions written from the documents (issue 14), registered by :mod:`rag_core.cli`:

- ``generate --collection NAME --n 30 [--kinds factual,decline] [--documents A.pdf …]
  [--sections "A.pdf::4 Leave" …] --into SET [--accept-all] [--json [PATH]]`` — prints the cost
  estimate, writes the pairs with Claude (progress on stderr), and leaves them in the review queue
  (``--accept-all``: straight into ``SET`` with their source links). ``--json`` prints the report
  (and the pairs) as JSON on stdout, or writes it to PATH.
- ``generated list [--collection NAME] [--status pending|accepted|rejected|all] [--json]``,
  ``generated accept IDS… --into SET`` (or ``--all``), ``generated reject IDS…`` — the review queue.

Without an API key ``generate`` exits 2 saying generation needs Claude (and where the template is).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag_core.cli_inputs import EXIT_GATE, EXIT_INPUT, EXIT_OK
from rag_core.errors import InputError
from rag_core.models import DEFAULT_COLLECTION, GeneratedPair
from rag_core.settings import Settings
from rag_core.storage.jsonsafe import clean

__all__ = ["add_parsers"]

#: Longest the CLI waits for one generation, seconds.
MAX_WAIT_S = 3600.0
_STATUSES = ("pending", "accepted", "rejected", "all")


def add_parsers(sub: Any) -> None:
    """Add ``generate`` and ``generated`` to the CLI's sub-commands."""
    s = sub.add_parser(
        "generate", help="write question / expected-answer pairs from the documents with Claude"
    )
    s.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"document collection (default: {DEFAULT_COLLECTION!r})",
    )
    s.add_argument("--n", type=int, default=30, help="how many pairs (default 30)")
    s.add_argument(
        "--kinds",
        default="",
        help="comma-separated: factual, multi_passage, scenario, decline (default: all)",
    )
    s.add_argument("--documents", nargs="+", default=[], metavar="NAME", help="only these documents")
    s.add_argument(
        "--sections",
        nargs="+",
        default=[],
        metavar="DOC::SECTION",
        help='only these sections, e.g. "handbook.pdf::2. Annual Leave"',
    )
    s.add_argument(
        "--into", help="question set the accepted pairs go to (and duplicates are checked against)"
    )
    s.add_argument(
        "--accept-all", action="store_true", help="accept every pair into --into at once (no review)"
    )
    s.add_argument(
        "--no-closed-book", action="store_true", help="skip the general-knowledge check (fewer calls)"
    )
    s.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        dest="json_out",
        metavar="PATH",
        help="print the report and pairs as JSON (or write them to PATH)",
    )
    s.set_defaults(func=cmd_generate)

    g = sub.add_parser("generated", help="the review queue of generated questions")
    gs = g.add_subparsers(required=True, metavar="ACTION")
    s = gs.add_parser("list", help="list generated pairs")
    s.add_argument("--collection")
    s.add_argument("--status", choices=_STATUSES, default="pending")
    s.add_argument("--json", action="store_true", dest="as_json")
    s.set_defaults(func=cmd_generated_list)
    s = gs.add_parser("accept", help="accept pairs into a question set (with their source links)")
    s.add_argument("ids", nargs="*", type=int)
    s.add_argument("--all", action="store_true", help="every pending pair (of --collection)")
    s.add_argument("--collection")
    s.add_argument("--into", required=True)
    s.set_defaults(func=cmd_generated_accept)
    s = gs.add_parser("reject", help="reject pairs")
    s.add_argument("ids", nargs="+", type=int)
    s.set_defaults(func=cmd_generated_reject)


def _workspace(settings: Settings) -> Any:
    from rag_core.cli_audit import cli_workspace

    return cli_workspace(settings)


def _sections(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        doc, sep, section = spec.partition("::")
        if not sep or not doc.strip():
            raise InputError(
                f'--sections {spec!r}: write DOCUMENT::SECTION, e.g. "handbook.pdf::2. Annual Leave".'
            )
        out.append((doc.strip(), section.strip()))
    return out


def pair_json(p: GeneratedPair) -> dict[str, Any]:
    d = asdict(p)
    d["expected"] = str(p.expected)
    return d


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.has_key:
        raise InputError(
            "Generating questions needs Claude, and no Anthropic API key is configured. Set "
            "ANTHROPIC_API_KEY and try again, or write the questions by hand: the Question sets page "
            "(and the Generate page) offer a template CSV, and `questions import FILE --name SET` saves it."
        )
    if args.accept_all and not args.into:
        raise InputError("--accept-all needs --into SET (the question set to put the pairs in).")
    ws = _workspace(settings)
    try:
        plan = ws.plan_generation(
            args.collection, args.n, args.kinds, documents=args.documents, sections=_sections(args.sections)
        )
        est = ws.estimate_generation(plan, into=args.into)
        print(
            f"estimate: {est.calls} Claude calls ({est.cached} answered from the cache), ~{est.input_tokens:,} input "
            f"+ ~{est.output_tokens:,} output tokens, ~${est.cost_usd:.4f} ({est.model})",
            file=sys.stderr,
        )
        job = ws.start_generation(
            plan, into=args.into, accept_all=args.accept_all, closed_book=not args.no_closed_book
        )
        report = _wait(ws, job)
        pairs = [ws.store.generated_pair(i) for i in report.queued]
    finally:
        ws.close()
    print(
        f"generated {report.written} of {report.requested}: {len(report.queued)} kept, "
        f"{report.duplicates_dropped} near-duplicates dropped, {report.declines_dropped} declines dropped "
        f"(the documents cover them), {report.flagged_general} flagged as general knowledge, "
        f"{report.failed} failed; {report.calls_sent} calls ({report.cache_hits} cached), "
        f"${report.cost_usd:.4f} (estimated ${est.cost_usd:.4f}), {report.wall_s:.1f} s",
        file=sys.stderr,
    )
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    if report.accepted_into:
        print(
            f"accepted {len(report.queued)} into the question set {report.accepted_into!r}", file=sys.stderr
        )
    elif report.queued:
        ids = ", ".join(str(i) for i in report.queued)
        print(
            f"waiting for review: {ids} — review them on the Generate page, or "
            f"`generated accept {' '.join(map(str, report.queued[:3]))}… --into SET`",
            file=sys.stderr,
        )
    if args.json_out:
        data = {"report": report.to_json(), "pairs": [pair_json(p) for p in pairs]}
        text = json.dumps(clean(data), indent=2, ensure_ascii=False)
        if args.json_out == "-":
            print(text)
        else:
            try:
                out = Path(args.json_out)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"Cannot write {args.json_out}: {exc.strerror}.") from None
    if report.errors and not report.written:
        return EXIT_GATE
    return EXIT_OK


def _wait(ws: Any, job: str) -> Any:
    from tqdm import tqdm

    with tqdm(total=None, unit="pair", disable=None, file=sys.stderr) as bar:
        try:
            report = None
            waited = 0.0
            while report is None and waited < MAX_WAIT_S:
                report = ws.wait_generation(job, 0.5)
                waited += 0.5
                p = ws.generation_progress(job)
                if p is not None:
                    bar.total = p.total
                    bar.n = p.done
                    bar.set_postfix_str(p.phase)
                    bar.refresh()
        except KeyboardInterrupt:
            ws.cancel_generation(job)
            report = ws.wait_generation(job, 60)
    if report is None:
        ws.cancel_generation(job)
        report = ws.wait_generation(job, 60)
    if report is None:
        raise InputError("The generation did not finish in time.")
    return report


def cmd_generated_list(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        pairs = ws.review_queue(args.collection, None if args.status == "all" else args.status)
    finally:
        ws.close()
    if args.as_json:
        print(json.dumps(clean([pair_json(p) for p in pairs]), indent=2, ensure_ascii=False))
        return EXIT_OK
    if not pairs:
        print(f"no {args.status if args.status != 'all' else ''} generated questions".replace("  ", " "))
    for p in pairs:
        src = (
            "; ".join(f"{s.document} › {s.section}" + (f", p. {s.page}" if s.page else "") for s in p.sources)
            or "—"
        )
        flags = f" [{', '.join(p.flags)}]" if p.flags else ""
        print(
            f"#{p.id}\t{p.status}\t{p.kind}{flags}\t{p.question}\n\texpected: {p.expected_answer}\n\tsource: {src}"
        )
    return EXIT_OK


def cmd_generated_accept(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        ids = list(args.ids)
        if args.all:
            ids += [p.id for p in ws.review_queue(args.collection)]
        if not ids:
            raise InputError("Name the generated questions to accept (their #ids), or use --all.")
        accepted = ws.accept_generated(dict.fromkeys(ids), args.into)
    finally:
        ws.close()
    print(accepted.summary)
    return EXIT_OK


def cmd_generated_reject(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        n = ws.reject_generated(args.ids)
    finally:
        ws.close()
    print(f"rejected {n}")
    return EXIT_OK if n else EXIT_INPUT
