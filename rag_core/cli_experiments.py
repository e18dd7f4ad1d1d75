"""The CLI's experiment commands: ``configs``, ``compare``, ``sweep`` and the ``run --baseline`` gate.

Registered by :func:`add_parsers` from :mod:`rag_core.cli` (same exit codes: 0 ok, 1 a gate failed or
a run failed, 2 bad input found before anything ran).

- ``configs list|show|import|export|diff``: named, versioned assistant configurations.
- ``compare RUN_A RUN_B [--json OUT]``: what changed, then per metric the paired difference with its
  95 % CI, the Holm-corrected p-value and the verdict.
- ``sweep --questions FILE --config A --config B … [--grid top_k=2,4,8] [--json OUT]``: estimates
  the cost first, runs every configuration as one sweep (reuse counters printed), prints the
  leaderboard.
- :func:`baseline_gate`: ``run … --baseline RUN_ID --fail-if-worse`` exits 1 only when a metric is
  *significantly* worse than the baseline, naming the metric, the difference and its CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rag_core.errors import InputError
from rag_core.experiment import CONFIG_FIELDS, ConfigVersion
from rag_core.reporting.diff import RunDiff, config_diff, diff_runs
from rag_core.reporting.significance import Leaderboard, compare_stats, comparison_json, leaderboard
from rag_core.runs import configs as cfgs
from rag_core.runs.statistics import PairedDiff
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.storage.jsonsafe import clean
from rag_core.vocab import Backend, Mode, RunStatus, Significance, Suite, choice, suite_metrics

__all__ = [
    "EXIT_GATE",
    "EXIT_INPUT",
    "EXIT_OK",
    "add_parsers",
    "baseline_gate",
    "check_baseline",
    "format_stats",
]

EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Add ``configs``, ``compare`` and ``sweep`` to the CLI's sub-commands."""
    c = sub.add_parser("configs", help="named, versioned assistant configurations")
    cs = c.add_subparsers(required=True, metavar="ACTION")
    s = cs.add_parser("list", help="list configurations (latest versions)")
    s.set_defaults(func=cmd_configs_list)
    s = cs.add_parser("show", help="show a configuration's fields and versions")
    s.add_argument("name", help="NAME or NAME@VERSION")
    s.add_argument("--version", type=int)
    s.set_defaults(func=cmd_configs_show)
    s = cs.add_parser("import", help="save configurations from a JSON file (a new version when changed)")
    s.add_argument("path", type=Path)
    s.add_argument("--name", help="name for a file holding one configuration without one")
    s.set_defaults(func=cmd_configs_import)
    s = cs.add_parser("export", help="write configurations as JSON (all when no name is given)")
    s.add_argument("names", nargs="*")
    s.add_argument("--out", type=Path, help="file to write (default: stdout)")
    s.set_defaults(func=cmd_configs_export)
    s = cs.add_parser("diff", help="the fields that differ between two configurations (NAME or NAME@VERSION)")
    s.add_argument("a")
    s.add_argument("b")
    s.set_defaults(func=cmd_configs_diff)

    s = sub.add_parser("compare", help="what changed between two runs and whether each metric moved")
    s.add_argument("run_a", type=int, help="baseline run id")
    s.add_argument("run_b", type=int, help="candidate run id")
    s.add_argument("--json", type=Path, dest="json_out", help="write the comparison here")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="run several configurations over one question set and rank them")
    s.add_argument(
        "--questions", required=True, type=Path, help="JSON list of {question, ground_truth} or CSV"
    )
    s.add_argument("--config", action="append", default=[], metavar="NAME[@VERSION]", help="repeatable")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help=f"vary the base configuration (repeatable; keys: {', '.join(sorted(cfgs.GRID_KEYS))})",
    )
    s.add_argument("--base", help="configuration the grid varies (default: the first --config, else default)")
    s.add_argument("--name", default="", help="a name for the sweep")
    s.add_argument("--backend", choices=[b.value for b in Backend])
    s.add_argument("--mode", choices=[Mode.ASYNC.value, Mode.SEQUENTIAL.value], default="async")
    s.add_argument("--concurrency", type=int)
    s.add_argument("--suite", choices=[x.value for x in Suite])
    s.add_argument("--metrics", help="comma-separated subset of the suite's metrics")
    s.add_argument("--judge-repeats", type=int, default=1)
    s.add_argument("--max-cost", type=float, metavar="USD", help="refuse to start when the estimate is above")
    s.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    s.add_argument("--json", type=Path, dest="json_out", help="write the sweep and its leaderboard here")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sweep)


def _store(settings: Settings) -> HistoryStore:
    return HistoryStore(settings.history_target)


def _write_json(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(clean(data), indent=2, allow_nan=False, ensure_ascii=False), encoding="utf-8"
        )
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc.strerror}.") from None


def _f(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


# ------------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------------
def cmd_configs_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    default = cfgs.ensure_default(store, settings)
    rows = [default, *(c for c in store.list_configs() if c.name != default.name)]
    for cv in rows:
        c = cv.config
        print(
            f"{cv.name}\tv{cv.version}\t{c.answer_model}\ttop_k={c.top_k} {c.retrieval}\t"
            f"chunks {c.chunk_size}/{c.chunk_overlap}\t{cv.created_at}"
        )
    return EXIT_OK


def cmd_configs_show(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    cv = cfgs.resolve_config(store, settings, args.name, args.version)
    print(f"{cv.label} · saved {cv.created_at}" + (f" · {cv.note}" if cv.note else ""))
    data = cv.config.to_json()
    for f in CONFIG_FIELDS:
        value = data[f.name]
        if f.long_text:
            text = str(value or "")
            print(f"{f.label}:" + (" (none)" if not text else ""))
            for line in text.splitlines():
                print(f"    {line}")
        else:
            print(f"{f.label}: {'model default' if value is None else value}")
    versions = store.config_versions(cv.name)
    if len(versions) > 1:
        print("versions: " + ", ".join(f"v{v.version} ({v.created_at[:10]})" for v in versions))
    return EXIT_OK


def cmd_configs_import(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    try:
        data = args.path.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read {args.path}: {exc.strerror}.") from None
    parsed = cfgs.parse_config_file(
        data, source=str(args.path), base=cfgs.default_config(settings), name=args.name
    )
    for name, cfg, note in parsed:
        before = store.config_versions(name)
        cv = cfgs.save_config(store, name, cfg, note=note)
        state = "unchanged" if before and before[-1].version == cv.version else "saved"
        if state == "saved":
            from rag_core.access import AuditAction
            from rag_core.cli_audit import record_cli_action

            record_cli_action(store, AuditAction.CONFIG_SAVE, cv.label, f"imported from {args.path.name}")
        print(f"{state:9} {cv.label}")
    return EXIT_OK


def cmd_configs_export(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    cfgs.ensure_default(store, settings)
    versions = (
        [cfgs.resolve_config(store, settings, n) for n in args.names] if args.names else store.list_configs()
    )
    text = cfgs.export_configs(versions)
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"Cannot write {args.out}: {exc.strerror}.") from None
        print(f"wrote {len(versions)} configuration(s) to {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_configs_diff(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    a = cfgs.resolve_config(store, settings, args.a)
    b = cfgs.resolve_config(store, settings, args.b)
    changes = config_diff(a.config, b.config)
    print(f"{a.label} → {b.label}: " + ("identical" if not changes else f"{len(changes)} field(s) differ"))
    for c in changes:
        if c.text_diff:
            print(f"{c.label}:")
            for line in c.text_diff:
                print(f"    {line}")
        else:
            print(f"{c.label}: {c.before} → {c.after}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# compare and the baseline gate
# ------------------------------------------------------------------------------------------------
def format_stats(stats: list[PairedDiff]) -> list[str]:
    """One line per metric: means, difference with CI, p (Holm), verdict, n, smallest detectable."""
    lines = []
    for s in stats:
        if s.diff is None:
            lines.append(f"  {s.label:26} {s.verdict}")
            continue
        noise = f", judge noise ±{s.judge_noise:.3f}" if s.judge_noise is not None else ""
        lines.append(
            f"  {s.label:26} {_f(s.mean_a)} → {_f(s.mean_b)}  Δ {s.diff:+.3f} "
            f"[{_f(s.ci_low, '+.3f')}, {_f(s.ci_high, '+.3f')}]  p={_f(s.p_value, '.3g')} "
            f"(Holm {_f(s.p_holm, '.3g')})  {s.verdict}  (n={s.n_paired}, smallest detectable ±{_f(s.mde)}{noise})"
        )
    return lines


def _print_changes(changes: RunDiff) -> None:
    lines = changes.lines()
    print(
        f"what changed from run {changes.baseline} to run {changes.candidate}:"
        + ("" if lines else " nothing")
    )
    for line in lines:
        print(f"  {line}")
    for c in (*changes.config, *changes.run):
        if c.text_diff:
            print(f"  {c.label} diff:")
            for line in c.text_diff[:40]:
                print(f"      {line}")


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    run_a, run_b = store.get_run(args.run_a), store.get_run(args.run_b)
    res_a, res_b = store.get_results(run_a.id), store.get_results(run_b.id)
    changes = diff_runs(run_a, run_b, res_a, res_b)
    stats = compare_stats(run_a, run_b, res_a, res_b)
    _print_changes(changes)
    print(f"metrics (run {run_b.id} − run {run_a.id}, paired over shared questions, 95% CI, Holm):")
    for line in format_stats(stats) or ["  no metric was scored in both runs"]:
        print(line)
    if args.json_out:
        _write_json(args.json_out, comparison_json(run_a, run_b, stats, changes))
    return EXIT_OK


def check_baseline(args: argparse.Namespace, store: HistoryStore) -> None:
    """Before a run starts: ``--fail-if-worse`` needs ``--baseline``, and the baseline must exist."""
    if getattr(args, "fail_if_worse", False) and getattr(args, "baseline", None) is None:
        raise InputError("--fail-if-worse needs --baseline RUN_ID (the run to compare against).")
    if getattr(args, "baseline", None) is not None:
        run = store.get_run(args.baseline)
        if run.status != RunStatus.COMPLETED:
            print(
                f"warning: baseline run {run.id} is {run.status}; only its scored questions are compared",
                file=sys.stderr,
            )


def baseline_gate(store: HistoryStore, baseline_id: int, run_id: int, *, fail_if_worse: bool) -> int:
    """Compare run ``run_id`` with ``baseline_id``; exit 1 when ``fail_if_worse`` and some metric is
    significantly worse (the message names metric, difference and CI), else 0."""
    base, cand = store.get_run(baseline_id), store.get_run(run_id)
    stats = compare_stats(base, cand, store.get_results(baseline_id), store.get_results(run_id))
    print(f"compared with baseline run {baseline_id}:")
    for line in format_stats(stats) or ["  no metric was scored in both runs (nothing to compare)"]:
        print(line)
    worse = [s for s in stats if s.verdict == Significance.WORSE]
    for s in worse:
        print(
            f"gate vs baseline #{baseline_id}: {s.label} ({s.metric_id}) is significantly worse: "
            f"{s.diff:+.3f} (95% CI {_f(s.ci_low, '+.3f')} to {_f(s.ci_high, '+.3f')}, "
            f"p={_f(s.p_holm, '.3g')} Holm, {s.n_paired} questions)",
            file=sys.stderr,
        )
    if not worse:
        print(f"gate vs baseline #{baseline_id}: ok (no metric significantly worse)")
    return EXIT_GATE if fail_if_worse and worse else EXIT_OK


# ------------------------------------------------------------------------------------------------
# sweep
# ------------------------------------------------------------------------------------------------
def _print_leaderboard(board: Leaderboard) -> None:
    print("leaderboard (mean [95% CI]; ▼ = significantly worse than the best):")
    for pos, row in enumerate(board.rows, 1):
        parts = []
        for mid in board.metric_ids:
            m = row.metrics.get(mid)
            if m is None or m.mean is None:
                continue
            mark = " ▼" if mid in row.worse else (" ★" if board.best.get(mid) == row.run_id else "")
            parts.append(f"{mid.split('.', 1)[1]} {m.mean:.3f} [{_f(m.ci_low)}, {_f(m.ci_high)}]{mark}")
        lat = f"{row.latency_s:.2f} s" if row.latency_s is not None else "—"
        print(f"  {pos}. {row.config} (run {row.run_id}, {row.status}) · " + " · ".join(parts))
        print(f"     cost ${row.cost_usd:.4f} · answer latency {lat} · run time {row.total_s:.1f} s")


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.ingest.index import PolicyIndex
    from rag_core.questions import load_questions
    from rag_core.runs.executor import recover_interrupted
    from rag_core.runs.request import default_suite
    from rag_core.runs.sweep import SweepPlan, estimate_sweep, start_sweep

    store = _store(settings)
    suite = Suite(args.suite) if args.suite else default_suite(settings)
    allowed = tuple(m.name for m in suite_metrics(suite))
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None
    unknown = [m for m in metrics or () if m not in allowed]
    if unknown:
        raise InputError(
            f"--metrics: {', '.join(unknown)} not in the {suite} suite; choose from {', '.join(allowed)}."
        )
    items = load_questions(args.questions)
    grid = cfgs.parse_grid(args.grid)
    chosen: list[ConfigVersion] = [cfgs.resolve_config(store, settings, n) for n in args.config]
    if grid:
        base = (
            cfgs.resolve_config(store, settings, args.base)
            if args.base
            else (chosen[0] if chosen else cfgs.ensure_default(store, settings))
        )
        for name, cfg in cfgs.expand_grid(base, grid):
            cv = store.save_config(name, cfg, note=f"Grid point of {base.label}.")
            if cv.label not in {c.label for c in chosen}:
                chosen.append(cv)
    if not chosen:
        raise InputError(
            "Give at least one --config NAME, or a --grid KEY=V1,V2 over the default configuration."
        )
    plan = SweepPlan(
        items=tuple(items),
        configs=tuple(chosen),
        question_set=args.questions.name,
        name=args.name,
        backend=choice(Backend, args.backend or settings.default_backend, "backend"),
        mode=choice(Mode, args.mode, "mode"),
        concurrency=settings.concurrency if args.concurrency is None else args.concurrency,
        suite=suite,
        metrics=metrics,
        judge_repeats=args.judge_repeats,
    )
    plan.check(settings)
    with PolicyIndex(settings) as index:
        if index.count() == 0:
            raise InputError(
                f"No documents are indexed in {settings.data_dir}: run `python -m rag_core ingest FILE…` first."
            )
    est = estimate_sweep(plan, settings)
    print(
        f"sweep of {len(plan.configs)} configurations × {len(items)} questions ({plan.backend}, {plan.suite} metrics)"
    )
    for label, e in est.per_config:
        print(f"  {label}: {e.calls} Claude calls, ≈ ${e.cost_usd:.2f} alone")
    print(
        f"estimate: ≈ ${est.cost_usd:.2f} for the sweep ({est.calls} calls; ${est.alone_usd:.2f} as separate runs; "
        "cached judgements are free)"
        + (f"; index collections to build first: {', '.join(est.builds)}" if est.builds else "")
    )
    if args.max_cost is not None and est.cost_usd > args.max_cost:
        raise InputError(
            f"The sweep is estimated at ${est.cost_usd:.2f}, above --max-cost {args.max_cost:.2f}."
        )
    if args.estimate_only:
        return EXIT_OK
    recover_interrupted(store, settings)
    store.mark_sweeps_interrupted()
    from rag_core.access import CLI_ADMIN, AuditAction
    from rag_core.cli_audit import record_cli_action, record_cli_run

    handle = start_sweep(
        plan,
        settings=settings,
        store=store,
        started_by=CLI_ADMIN.owner_key,
        on_created=lambda sweep_id: record_cli_action(
            store, AuditAction.SWEEP_START, f"sweep #{sweep_id}", f"{len(plan.configs)} configurations"
        ),
        on_run_start=lambda sweep_id, run_id: record_cli_run(
            store, run_id, AuditAction.RUN_START, f"sweep #{sweep_id}"
        ),
    )
    seen: set[int] = set()
    try:
        while not handle.wait(0.5):
            p = handle.progress()
            if not args.quiet and p.current_run_id is not None and p.current_run_id not in seen:
                seen.add(p.current_run_id)
                print(
                    f"  [{p.done + 1}/{p.total}] run {p.current_run_id}: {p.current_label}", file=sys.stderr
                )
    except KeyboardInterrupt:
        print("\ncancelling the sweep: finished runs are kept …", file=sys.stderr)
        handle.cancel()
        record_cli_action(store, AuditAction.SWEEP_CANCEL, f"sweep #{handle.sweep_id}", "Ctrl-C")
        handle.wait(60)
        return 130
    sweep = store.get_sweep(handle.sweep_id)
    runs = [store.get_run(rid) for rid in sweep.run_ids]
    board = leaderboard(runs, {r.id: store.get_results(r.id) for r in runs})
    c = sweep.counters
    print(
        f"sweep {sweep.id}: {sweep.status} in {float(c.get('wall_s', 0.0)):.1f} s · reused: "
        f"{c.get('retrievals_reused', 0)} retrievals, {c.get('answers_reused', 0)} answers, "
        f"{c.get('scores_reused', 0)} scorings, {c.get('embeddings_reused', 0)} embeddings, "
        f"{c.get('judge_cache_hits', 0)} judge-cache hits · computed: {c.get('retrievals_computed', 0)} retrievals, "
        f"{c.get('answers_computed', 0)} answers, {c.get('scores_computed', 0)} scorings, "
        f"{c.get('embeddings_computed', 0)} embeddings · index builds {c.get('index_builds', 0)} "
        f"({float(c.get('index_build_s', 0.0)):.1f} s)"
    )
    _print_leaderboard(board)
    if args.json_out:
        _write_json(
            args.json_out,
            {
                "sweep_id": sweep.id,
                "name": sweep.name,
                "status": sweep.status,
                "question_set": sweep.question_set,
                "plan": sweep.plan,
                "estimate": {
                    "cost_usd": est.cost_usd,
                    "alone_usd": est.alone_usd,
                    "calls": est.calls,
                    "builds": list(est.builds),
                },
                "counters": sweep.counters,
                "run_ids": list(sweep.run_ids),
                "leaderboard": board.to_json(),
            },
        )
    return EXIT_OK if sweep.status == RunStatus.COMPLETED else EXIT_GATE


def add_run_arguments(s: argparse.ArgumentParser) -> None:
    """The ``run`` sub-command's experiment options."""
    s.add_argument(
        "--config", metavar="NAME[@VERSION]", help="assistant configuration to pin (default: 'default')"
    )
    s.add_argument("--name", dest="run_name", help="a name for the run")
    s.add_argument("--note", help="a note about the run")
    s.add_argument(
        "--baseline", type=int, metavar="RUN_ID", help="compare the run with this one when it ends"
    )
    s.add_argument(
        "--fail-if-worse",
        action="store_true",
        help="exit 1 when a metric is significantly worse than --baseline (paired test, Holm)",
    )
