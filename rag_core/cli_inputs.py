"""CLI commands for the analyst's inputs and verdicts: ``ingest``, ``docs``, ``versions``,
``questions import|list``, ``label`` and ``review`` (registered by :mod:`rag_core.cli`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rag_core.errors import InputError
from rag_core.settings import Settings
from rag_core.storage.jsonsafe import clean

#: Exit codes shared by every command: ok, a gate or the run failed, bad input.
EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2


def _store(settings: Settings):
    from rag_core.storage import HistoryStore

    return HistoryStore(settings.history_target)


#: Exit code of an ingest stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_CANCELLED = 130


@contextmanager
def _ctrl_c_cancels(control: Any) -> Iterator[None]:
    """The first Ctrl-C (SIGINT) asks the ingest to stop at its next step (the file being read is
    not indexed, files indexed before stay); a second one interrupts at once. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if control.cancelled:
            raise KeyboardInterrupt
        control.cancel()
        print(
            "\ncancelling: the file being read will not be indexed (Ctrl-C again to stop at once)…",
            file=sys.stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from rag_core.coverage.service import StaleTracker
    from rag_core.ingest.control import IngestControl, step_text
    from rag_core.ingest.service import CANCELLED, cancel_message, ingest_paths

    store = _store(settings)
    collection = store.create_collection(args.collection)
    if args.if_empty:
        from rag_core.ingest.index import PolicyIndex

        with PolicyIndex(settings) as index:
            empty = index.count() == 0
        if not empty:
            print("index already has documents; nothing to do")
            return EXIT_OK
    failed = 0
    control = IngestControl(settings.ingest_budget_s)
    outcomes = []
    with tqdm(total=len(args.paths), unit="file", disable=None) as bar, _ctrl_c_cancels(control):

        def progress(stage: str, done: int, total: int) -> None:
            if stage in ("ocr", "embedding") or (stage == "reading" and total >= 20):
                bar.set_postfix_str(step_text(stage, done, total))

        for outcome in ingest_paths(
            args.paths,
            settings=settings,
            store=store,
            collection=collection,
            on_progress=progress,
            hook=StaleTracker(store),
            control=control,
        ):
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix_str("")
            if outcome.status == CANCELLED:
                continue
            if outcome.error:
                failed += 1
                tqdm.write(f"error: {outcome.error}", file=sys.stderr)
            else:
                extra = f", {outcome.ocr_pages} pages OCR'd" if outcome.ocr_pages else ""
                changed = (
                    f"; sections changed: {', '.join(outcome.sections_changed[:5])}"
                    if outcome.sections_changed
                    else ""
                )
                if outcome.stale_questions:
                    changed += f"; {outcome.stale_questions} questions to review (questions stale SET)"
                tqdm.write(
                    f"{outcome.status:9} {outcome.name} [{collection}] v{outcome.version} "
                    f"({outcome.chunks} chunks{extra}, {outcome.seconds:.1f} s){changed}"
                )
                _audit_ingest(store, outcome)
    stopped = cancel_message(outcomes)
    if stopped is not None:
        print(stopped, file=sys.stderr)
        return EXIT_CANCELLED
    return EXIT_INPUT if failed else EXIT_OK


def _audit(store: Any, action: str, target: str, detail: str = "") -> None:
    from rag_core.access import AuditAction
    from rag_core.cli_audit import record_cli_action

    record_cli_action(store, AuditAction[action], target, detail)


def _audit_ingest(store: Any, outcome: Any) -> None:
    if outcome.status in ("added", "replaced"):
        action = "DOCUMENT_UPLOAD" if outcome.status == "added" else "DOCUMENT_REPLACE"
        _audit(
            store,
            action,
            f"{outcome.collection} / {outcome.name} v{outcome.version}",
            f"{outcome.chunks} chunks",
        )


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    docs = _store(settings).list_documents(args.collection)
    if not docs:
        print("no documents indexed" + (f" in {args.collection!r}" if args.collection else ""))
    for d in docs:
        ocr = f"\t{d.ocr_pages} OCR pages" if d.ocr_pages else ""
        print(
            f"{d.collection}\t{d.name}\tv{d.version}\t{d.pages} pages\t{d.chunks} chunks\t"
            f"{d.size_bytes} bytes\t{d.added_at}{ocr}"
        )
    return EXIT_OK


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    versions = _store(settings).document_versions(args.name, args.collection)
    if not versions:
        raise InputError(f"{args.name!r} was never indexed in the collection {args.collection!r}.")
    for v in versions:
        changed = ", ".join(v.sections_changed) if v.sections_changed else ("—" if v.version > 1 else "first")
        print(f"v{v.version}\t{v.added_at}\t{v.sha256[:12]}\t{v.chunks} chunks\tchanged: {changed}")
    return EXIT_OK


#: ``--fail-under correct=0.8``: the share of answers correct (the headline's N / M).
CORRECT_GATE = "correct"


def _workspace(settings: Settings) -> Any:
    from rag_core.cli_audit import cli_workspace

    return cli_workspace(settings)


def cmd_label(args: argparse.Namespace, settings: Settings) -> int:
    ws = _workspace(settings)
    try:
        if args.question < 1:
            raise InputError(f"--question {args.question}: questions are numbered from 1 (Q1 = 1).")
        v = ws.label(args.run_id, args.question - 1, args.verdict, args.comment)
        h = ws.summary(args.run_id).headline
    finally:
        ws.close()
    comment = f" · {v.comment!r}" if v.comment else ""
    print(f"run {v.run_id} Q{v.index + 1}: {v.verdict}{comment} (saved {v.labelled_at})")
    if h is not None:
        print(f"run {v.run_id}: {h.text}")
    return EXIT_OK


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.evaluation.agreement import MIN_VERDICTS
    from rag_core.runs.correctness import correctness

    ws = _workspace(settings)
    try:
        results = ws.results(args.run_id)
        verdicts = ws.verdicts(args.run_id)
        summary = ws.summary(args.run_id)
        report = ws.agreement([args.run_id])
    finally:
        ws.close()
    if summary.headline is not None:
        print(f"run {args.run_id}: {summary.headline.text}")
    rows = []
    for r in results:
        v = verdicts.get(r.index)
        c = correctness(r, v)
        auto = correctness(r)
        rows.append(
            {
                "question": r.index + 1,
                "text": r.question,
                "expected": str(r.expected),
                "verdict": str(v.verdict) if v else None,
                "comment": v.comment if v else "",
                "labelled_at": v.labelled_at if v else None,
                "inherited_from": v.inherited_from if v else None,
                "automatic": auto.correct,
                "automatic_by": auto.basis,
                "correct": c.correct,
                "correct_by": c.basis,
            }
        )
        given = (
            "—"
            if v is None
            else str(v.verdict) + (f" (inherited from run {v.inherited_from})" if v.inherited else "")
        )
        auto_txt = {True: "correct", False: "not correct", None: "not checked"}[auto.correct]
        comment = f" · {v.comment}" if v and v.comment else ""
        print(f"  Q{r.index + 1:<3} {given:34} auto: {auto_txt} ({auto.basis}){comment}")
    if report.enough:
        print(f"agreement with your {report.n_verdicts} verdicts (κ at the best cut-off, Spearman ρ):")
        for m in report.metrics:
            (tp, fn), (fp, tn) = m.confusion
            kappa = "—" if m.kappa is None else f"{m.kappa:.2f}"
            cut = "—" if m.cutoff is None else f"{m.cutoff:.2f}"
            rho = "—" if m.spearman is None else f"{m.spearman:.2f}"
            flag = "  ⚠ disagrees" if m.disagrees else ""
            note = f"  ({m.note})" if m.note else ""
            print(
                f"  {m.label:26} n={m.n:<3} κ={kappa:>5} at ≥{cut:>4}  ρ={rho:>5}  "
                f"[correct: {tp} pass / {fn} fail · not correct: {fp} pass / {tn} fail]{flag}{note}"
            )
    else:
        print(f"agreement: {report.n_verdicts} of the {MIN_VERDICTS} verdicts needed so far")
    if args.json_out:
        data = {
            "run_id": args.run_id,
            "headline": summary.headline.to_json() if summary.headline else None,
            "declines": summary.declines.to_json() if summary.declines else None,
            "verdicts": rows,
            "agreement": report.to_json(),
        }
        try:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(clean(data), indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"Cannot write {args.json_out}: {exc.strerror}.") from None
    return EXIT_OK


def cmd_questions_import(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.questions import load_questions

    store = _store(settings)
    if args.if_missing and any(s.name == args.name for s in store.list_question_sets()):
        print(f"question set {args.name!r} already exists; nothing to do")
        return EXIT_OK
    items = load_questions(args.path)
    # Through the workspace, like the browser's editor: an edited expected answer re-links its
    # question (clearing a stale flag), and the save is audited as the CLI's admin.
    ws = _workspace(settings)
    try:
        ws.save_question_set(args.name, items, note=f"imported from {args.path.name}")
        bound = ""
        if args.collection:
            ws.bind_question_set(args.name, ws.create_collection(args.collection))
            bound = f", bound to the collection {args.collection!r}"
    finally:
        ws.close()
    print(f"saved {len(items)} questions as {args.name!r}{bound}")
    return EXIT_OK


def cmd_questions_list(args: argparse.Namespace, settings: Settings) -> int:
    for s in _store(settings).list_question_sets():
        print(f"{s.name}\t{s.n_items} questions\t{s.updated_at}")
    return EXIT_OK
