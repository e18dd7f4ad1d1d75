"""Headless CLI: ``python -m rag_core ingest|docs|versions|run|runs|export|resume|questions|configs|compare|sweep|label|review …``.

The interface CI gating and benchmarks use. Exit codes: 0 ok, 1 a ``--fail-under`` gate failed, a
metric was significantly worse than ``--baseline`` with ``--fail-if-worse``, or the run failed (e.g.
the judge's key was rejected), 2 bad input (message on stderr, naming the file/row/setting). The
experiment commands live in :mod:`rag_core.cli_experiments`.

Quiet by default: warnings and errors only, retries counted in the summary (``retries: …``), the
libraries' per-request lines silenced (:mod:`rag_core.logs`); ``--verbose`` (before the command)
logs every retry and the libraries' warnings. Every log line is redacted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from rag_core import cli_audit, cli_authoring, cli_coverage, cli_experiments, logs
from rag_core.access import AuditAction
from rag_core.cli_inputs import (
    CORRECT_GATE,
    EXIT_GATE,
    EXIT_INPUT,
    EXIT_OK,
    _store,
    cmd_docs,
    cmd_ingest,
    cmd_label,
    cmd_questions_import,
    cmd_questions_list,
    cmd_review,
    cmd_versions,
)
from rag_core.errors import InputError, RagError
from rag_core.models import DEFAULT_COLLECTION
from rag_core.reporting.export import results_csv, run_export, run_json_text
from rag_core.settings import Settings
from rag_core.summary import RunSummary
from rag_core.vocab import (
    RUN_SUITES,
    Backend,
    Mode,
    RunStatus,
    Suite,
    Verdict,
    choice,
    run_metrics,
    suite_metrics,
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(verbose=bool(getattr(args, "verbose", False)))
    try:
        overrides: dict[str, Any] = {}
        if args.data_dir:
            overrides["data_dir"] = Path(args.data_dir)
        settings = Settings.load(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return int(args.func(args, settings) or 0)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT if isinstance(exc, InputError) or exc.kind == "IngestError" else EXIT_GATE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rag_core", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="isolate everything under this folder (default: $RAG_DATA_DIR)")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="log every retry and the libraries' warnings (stderr)"
    )
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    s = sub.add_parser("ingest", help="index policy documents (PDF, DOCX, HTML, TXT, MD; scans are OCR'd)")
    s.add_argument("paths", nargs="+", type=Path)
    s.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"document collection to add them to (default: {DEFAULT_COLLECTION!r}; created if new)",
    )
    s.add_argument("--if-empty", action="store_true", help="do nothing when the index already has documents")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("docs", help="list indexed documents (collection, version, pages, chunks)")
    s.add_argument("--collection", help="only this collection")
    s.set_defaults(func=cmd_docs)

    s = sub.add_parser("versions", help="version history of one document")
    s.add_argument("name")
    s.add_argument("--collection", default=DEFAULT_COLLECTION)
    s.set_defaults(func=cmd_versions)

    s = sub.add_parser("run", help="run an evaluation")
    s.add_argument(
        "--questions", required=True, type=Path, help="JSON list of {question, ground_truth} or CSV"
    )
    s.add_argument(
        "--backend", choices=[b.value for b in Backend], help="default: claude if ANTHROPIC_API_KEY is set"
    )
    s.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default="async",
        help="batch: Anthropic Message Batches (half price, Claude backend, resumable)",
    )
    s.add_argument("--concurrency", type=int)
    s.add_argument("--top-k", type=int)
    s.add_argument(
        "--collection",
        help=f"document collection to retrieve from (default: {DEFAULT_COLLECTION!r})",
    )
    s.add_argument(
        "--suite",
        choices=[s.value for s in RUN_SUITES],
        help="metrics: default judge if a key is set, else offline (key facts and declines are "
        "scored alongside either)",
    )
    s.add_argument("--metrics", help="comma-separated subset of the suite's metrics")
    s.add_argument("--fresh", action="store_true", help="bypass the judge cache")
    s.add_argument("--judge-repeats", type=int, default=1)
    s.add_argument("--json", type=Path, dest="json_out", help="write the run summary here")
    s.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 when the metric's mean is below VALUE (repeatable); METRIC is a name "
        "(answer_key_facts) or an id (facts.answer_key_facts), or 'correct' for the share of answers "
        "correct",
    )
    s.add_argument("--quiet", action="store_true")
    cli_experiments.add_run_arguments(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("resume", help="finish an interrupted or cancelled run (re-runs only what is missing)")
    s.add_argument("run_id", type=int)
    s.add_argument("--json", type=Path, dest="json_out")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_resume)

    s = sub.add_parser("runs", help="list runs")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("export", help="export a run as CSV or JSON")
    s.add_argument("run_id", type=int)
    s.add_argument("--format", choices=["csv", "json"], default="json")
    s.add_argument("--out", type=Path, help="file to write (default: stdout)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("label", help="record your verdict on one answer of a run")
    s.add_argument("run_id", type=int)
    s.add_argument(
        "--question", type=int, required=True, metavar="N", help="question number, 1-based (Q3 = 3)"
    )
    s.add_argument("--verdict", required=True, choices=[v.value for v in Verdict])
    s.add_argument("--comment", default="", help="optional comment")
    s.set_defaults(func=cmd_label)

    s = sub.add_parser(
        "review", help="a run's verdicts, headline and each metric's agreement with your verdicts"
    )
    s.add_argument("run_id", type=int)
    s.add_argument("--json", type=Path, dest="json_out", help="write verdicts and agreement here")
    s.set_defaults(func=cmd_review)

    q = sub.add_parser("questions", help="manage saved question sets")
    qs = q.add_subparsers(required=True, metavar="ACTION")
    s = qs.add_parser("import", help="save a question file as a named set")
    s.add_argument("path", type=Path)
    s.add_argument("--name", required=True)
    s.add_argument("--if-missing", action="store_true", help="do nothing if a set with that name exists")
    s.add_argument("--collection", help="bind the set to this document collection")
    s.set_defaults(func=cmd_questions_import)
    s = qs.add_parser("list", help="list saved sets")
    s.set_defaults(func=cmd_questions_list)
    cli_coverage.add_parsers(sub, qs)  # coverage, questions stale
    cli_experiments.add_parsers(sub)  # configs, compare, sweep
    cli_authoring.add_parsers(sub)  # generate, generated (issue 14)
    cli_audit.add_parsers(sub)  # audit
    return p


# ------------------------------------------------------------------------------------------------
def _parse_gates(specs: list[str], metrics: tuple[str, ...]) -> dict[str, float]:
    """``METRIC=VALUE`` gates, checked before the run starts (a typo must not cost a whole run).

    ``metrics`` lists the run's metric names and ids; :data:`CORRECT_GATE` is always accepted."""
    gates: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            floor = float(value)
            if not math.isfinite(floor):
                raise ValueError
        except ValueError:
            raise InputError(
                f"--fail-under {spec!r}: expected METRIC=VALUE with a number, e.g. faithfulness=0.8"
            ) from None
        if name not in metrics and name != CORRECT_GATE:
            names = [m for m in metrics if "." not in m]
            raise InputError(
                f"--fail-under {spec!r}: this run scores {', '.join(names) or 'no metrics'} (or "
                f"'{CORRECT_GATE}'); {name!r} is not one of them."
            )
        gates[name] = floor
    return gates


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.ingest.index import PolicyIndex
    from rag_core.questions import load_questions
    from rag_core.runs.executor import recover_interrupted, start_run
    from rag_core.runs.request import RunRequest, default_suite

    suite = Suite(args.suite) if args.suite else default_suite(settings)
    allowed = tuple(m.name for m in suite_metrics(suite))
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None
    unknown = [m for m in metrics or () if m not in allowed]
    if unknown:
        raise InputError(
            f"--metrics: {', '.join(unknown)} not in the {suite} suite; choose from "
            f"{', '.join(allowed) or 'nothing (--suite none)'}."
        )
    scored = run_metrics(suite, metrics)
    gates = _parse_gates(args.fail_under, tuple(m.name for m in scored) + tuple(m.id for m in scored))
    store = _store(settings)
    cli_experiments.check_baseline(args, store)  # a typo in --baseline must not cost a whole run
    items = load_questions(args.questions)
    with PolicyIndex(settings) as index:
        if index.count() == 0:
            raise InputError(
                f"No documents are indexed in {settings.data_dir}: run "
                "`python -m rag_core ingest FILE…` first (or check --data-dir)."
            )
    store = _store(settings)
    collection = args.collection or DEFAULT_COLLECTION
    if collection not in store.list_collections():
        raise InputError(
            f"--collection {collection!r}: no such collection; choose from "
            f"{', '.join(repr(c) for c in store.list_collections())}."
        )
    if not store.list_documents(collection):
        raise InputError(
            f"The collection {collection!r} has no documents: run `python -m rag_core ingest "
            f"--collection {collection!r} FILE…` first, or choose another --collection."
        )
    if args.config and args.top_k is not None:
        raise InputError("--top-k is part of the configuration: use a configuration with that top-k instead.")
    from rag_core.runs.configs import resolve_config

    assistant = resolve_config(store, settings, args.config) if args.config or args.top_k is None else None
    recover_interrupted(store, settings)
    req = RunRequest(
        items=tuple(items),
        backend=choice(Backend, args.backend or settings.default_backend, "backend"),
        mode=choice(Mode, args.mode, "mode"),
        concurrency=settings.concurrency if args.concurrency is None else args.concurrency,
        top_k=settings.top_k if args.top_k is None else args.top_k,
        suite=suite,
        metrics=metrics,
        question_set=args.questions.name,
        fresh=args.fresh,
        judge_repeats=args.judge_repeats,
        collection=collection,
        assistant=assistant,
        run_name=args.run_name,
        note=args.note,
    )
    handle = start_run(req, settings=settings, store=store)
    cli_audit.record_cli_run(store, handle.run_id, AuditAction.RUN_START, f"questions {args.questions.name}")
    rc = _follow(handle, store, settings, args, gates)
    if args.baseline is not None and rc in (EXIT_OK, EXIT_GATE):
        gate = cli_experiments.baseline_gate(
            store, args.baseline, handle.run_id, fail_if_worse=args.fail_if_worse
        )
        rc = max(rc, gate)
    return rc


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.runs.executor import recover_interrupted, resume_run

    store = _store(settings)
    recover_interrupted(store, settings)
    handle = resume_run(args.run_id, settings=settings, store=store)
    cli_audit.record_cli_run(store, handle.run_id, AuditAction.RUN_RESUME)
    return _follow(handle, store, settings, args, {})


def _follow(
    handle: Any, store: Any, settings: Settings, args: argparse.Namespace, gates: dict[str, float]
) -> int:
    from tqdm import tqdm

    from rag_core.runs.executor import summarize_run

    bar = None
    phase = ""
    interrupted = False
    try:
        while not handle.done():
            p = handle.progress()
            if not args.quiet and p.total and (bar is None or p.phase != phase):
                if bar is not None:
                    bar.close()
                phase = p.phase
                bar = tqdm(total=p.total, desc=str(phase), unit="job", disable=None, file=sys.stderr)
            if bar is not None and not args.quiet:
                bar.n = p.done
                post = {"in_flight": p.in_flight, "retries": p.retries, "errors": p.errors}
                if p.note:
                    post["note"] = p.note
                bar.set_postfix(post, refresh=False)
                bar.refresh()
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\ncancelling: finished answers and scores are kept …", file=sys.stderr)
        interrupted = True
        handle.cancel()
        handle.wait(timeout=30)
    finally:
        if bar is not None:
            bar.close()
    # The handle's outcome is the truth: when the final status could not be written, the store
    # still says "running" and its summary is None; never report such a run as passed.
    summary = handle.wait()
    ended = handle.progress()
    if summary is None or summary.status != ended.status:
        try:
            summary = summarize_run(
                store, handle.run_id, settings, status=ended.status, failure=ended.message or None
            )
        except RagError as exc:
            print(f"error: run {handle.run_id} ended {ended.status}: {ended.message}", file=sys.stderr)
            print(f"error: and its results could not be read back: {exc}", file=sys.stderr)
            return EXIT_GATE
    if args.json_out:
        try:
            data = run_export(store.get_run(handle.run_id), summary, store.get_results(handle.run_id))
            _write_atomically(args.json_out, run_json_text(data))
        except (RagError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"error: could not write the run summary to {args.json_out}: {reason}", file=sys.stderr)
            _print_summary(summary)
            return EXIT_GATE
    _print_summary(summary)
    if interrupted:  # Ctrl-C: the run is stored as cancelled; `resume` finishes it
        return 130
    if summary.status == RunStatus.RUNNING:  # cannot happen once the handle ended; never a pass
        print(f"run {handle.run_id} ended without a final status: {ended.message}", file=sys.stderr)
        return EXIT_GATE
    if summary.status == RunStatus.CANCELLED:
        print("run cancelled: finished work is kept; `resume RUN_ID` finishes it", file=sys.stderr)
        return EXIT_GATE
    if summary.status == RunStatus.FAILED:
        print(f"run failed: {summary.failure or 'see the log'}", file=sys.stderr)
        return EXIT_GATE
    if summary.status == RunStatus.INTERRUPTED:  # batch mode stopped waiting; `resume` collects the rest
        note = (summary.generation.batch or {}).get("message") or "see the log"
        print(f"run interrupted: {note}", file=sys.stderr)
        return EXIT_GATE
    rc = EXIT_OK
    for name, floor in gates.items():
        if name == CORRECT_GATE:
            h = summary.headline
            share = h.correct / h.total if h is not None and h.total else None
            if share is None or share < floor:
                shown = "not known" if share is None else f"{share:.3f}"
                print(
                    f"gate {name}>={floor}: FAILED ({shown}: {h.text if h else 'no headline'})",
                    file=sys.stderr,
                )
                rc = EXIT_GATE
            else:
                print(f"gate {name}>={floor}: ok ({share:.3f}: {h.text if h else ''})")
            continue
        m = summary.metric(name)
        if m is None or m.mean is None:
            print(f"gate {name}>={floor}: FAILED (metric not scored in this run)", file=sys.stderr)
            rc = EXIT_GATE
        elif m.mean < floor:
            print(f"gate {name}>={floor}: FAILED (mean {m.mean:.3f})", file=sys.stderr)
            rc = EXIT_GATE
        elif m.failed or m.missing:  # a mean over the few that could be scored is no pass (skips are fine)
            print(
                f"gate {name}>={floor}: FAILED (mean {m.mean:.3f}, but {m.total - m.scored} of "
                f"{m.total} could not be scored)",
                file=sys.stderr,
            )
            rc = EXIT_GATE
        else:
            print(f"gate {name}>={floor}: ok (mean {m.mean:.3f})")
    return rc


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a full disk leaves no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _print_summary(s: RunSummary) -> None:
    t = s.timings
    if s.headline is not None:
        print(f"run {s.run_id}: {s.headline.text}")
    print(
        f"run {s.run_id}: {s.status} · backend {s.backend} · mode {s.mode} · "
        f"{s.n_questions} questions · {s.errors} errors"
        + (f" · {t.attempts} attempts" if t.attempts > 1 else "")
    )
    d = s.declines
    if d is not None and (d.should_decline or d.declined_when_should_answer):
        recall = "—" if d.recall is None else f"{d.recall:.0%}"
        print(
            f"  declines ({d.method}): declined {d.declined_when_should} of {d.should_decline} it should "
            f"(recall {recall}) · ANSWERED {d.answered_when_should_decline} it should have declined · "
            f"declined {d.declined_when_should_answer} of {d.should_answer} it should have answered"
        )
    print(
        f"  time: retrieval {t.retrieval_s:.2f} s · generation {t.generation_s:.2f} s · "
        f"evaluation {t.evaluation_s:.2f} s · total {t.total_s:.2f} s"
    )
    g = s.generation
    if g.speedup_measured is not None and g.sequential_s and g.async_s:
        print(
            f"  speedup: sequential {g.sequential_s:.2f} s → async {g.async_s:.2f} s = "
            f"{g.speedup_measured:.2f}× measured (ideal {g.ideal_speedup:.1f}× for {s.n_questions} "
            f"requests at concurrency {g.concurrency}, estimated {_fmt(g.speedup_estimated, '.2f')}×)"
        )
    elif g.speedup_estimated is not None:
        print(f"  speedup: estimated {g.speedup_estimated:.2f}× (ideal {g.ideal_speedup:.1f}×)")
    for m in s.metrics:
        sd = f" ± {m.stdev:.3f} across questions" if m.stdev is not None else ""
        if m.judge_stdev is not None:
            sd += f", judge ± {m.judge_stdev:.3f} between repeats"
        ci = f" [95% CI {_fmt(m.ci_low)}–{_fmt(m.ci_high)}]" if m.ci_low is not None else ""
        skipped = f", {m.skipped} skipped" if m.skipped else ""
        print(f"  {m.label:26} {_fmt(m.mean)}{ci}{sd}  ({m.scored} of {m.total} scored{skipped})")
    u = s.usage
    if u.passes and u.cost_usd:
        parts = [
            f"{p.kind} {p.calls} calls, {p.input_tokens} in / {p.output_tokens} out"
            + (
                f", cache {p.cache_write_tokens} written / {p.cache_read_tokens} read"
                if p.cache_write_tokens or p.cache_read_tokens
                else ""
            )
            + (f" (+{p.estimated_input_tokens} est.)" if p.estimated_input_tokens else "")
            + (" batch" if p.batch else "")
            for p in u.passes
        ]
        print(
            f"  cost: ${u.cost_usd:.4f} (answers ${u.answer_cost_usd:.4f}, judge ${u.judge_cost_usd:.4f}) · {'; '.join(parts)}"
        )
    j = s.judge
    if j.calls or j.cache_hits:
        print(f"  judge: {j.model} · {j.calls} calls · {j.cache_hits} cache hits")
    r = s.retries
    if r.retries or r.failed_calls:
        passes = ", ".join(f"{k} {v}" for k, v in r.by_pass.items() if v)
        metrics = ", ".join(f"{k} {v}" for k, v in r.by_metric.items() if v)
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.by_error.items()))
        print(
            f"  retries: {r.retries} ({passes}{'; judge by metric: ' + metrics if metrics else ''})"
            + (f" · by error: {errors}" if errors else "")
            + f" · throttled {r.throttled_s:.1f} s (longest wait {r.longest_wait_s:.1f} s)"
            + (f" · {r.failed_calls} calls failed for good" if r.failed_calls else "")
        )


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.runs.executor import recover_interrupted

    store = _store(settings)
    recover_interrupted(store, settings)  # runs whose process died show as "interrupted"
    runs = store.list_runs()
    if not runs:
        print("no runs yet")
    for r in runs:
        ms = " ".join(f"{m.id}={_fmt(m.mean, '.2f')}" for m in (r.summary.metrics if r.summary else ()))
        coll = r.config.get("collection") or DEFAULT_COLLECTION
        cfg = r.identity.config.label if r.identity and r.identity.config else "—"
        h = r.summary.headline if r.summary else None
        correct = f"{h.correct}/{h.total} correct" if h else "—"
        print(
            f"{r.id}\t{r.created_at}\t{r.status}\t{r.backend}/{r.mode}\t{coll}\t{cfg}\t{r.n_questions} q"
            f"\t{correct}\t{ms}\t{r.name or ''}"
        )
    return EXIT_OK


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.runs.executor import summarize_run

    store = _store(settings)
    data = run_export(
        store.get_run(args.run_id),
        summarize_run(store, args.run_id, settings),
        store.get_results(args.run_id),
        store.get_verdicts(args.run_id),
    )
    text = run_json_text(data) if args.format == "json" else results_csv(data)
    if args.out:
        try:
            _write_atomically(args.out, text)
        except OSError as exc:
            raise InputError(f"Cannot write {args.out}: {exc.strerror}.") from None
    else:
        sys.stdout.write(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
