"""Benchmark (issue 15): the history on SQLite vs PostgreSQL — write rate and History page data time.

Setup (per backend)
- SQLite: a file in a temp dir (WAL, as the app uses it). PostgreSQL: ``--database-url`` (an
  empty database), or by default a throwaway local server started like the tests' fixture
  (tests/support/postgres_server.py: initdb in a temp dir, loopback TCP, fsync off — the fairest
  local comparison is with ``--fsync``, which keeps the server's default fsync=on).
- 100 prior runs of 100 results each (2 scores per result) are written first, so the History page
  has realistic work to do.

Measured
- history write: one 100-question run written the way the engine writes it (``create_run``, then
  per question ``save_answer`` + ``save_scores`` with 2 metrics, each its own transaction, then
  ``update_run``): results stored per second (median of ``--reps``); and the same with 4 writers
  at once (4 stores = 4 connections, as 4 processes would), total results per second.
- History page data: the facade calls the History page makes on a render with the latest run open
  (``Workspace.version``, ``runs``, ``runs_table`` + ``frames.runs_frame``, ``summary``,
  ``results`` + ``verdicts`` + ``frames.results_frame``, ``runs_with_verdicts``): median and
  worst milliseconds over ``--reps`` renders.

    .venv/bin/python -m bench.storage [--reps 5] [--database-url URL] [--fsync]
                                      [--out bench/results/storage.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rag_core.models import MetricScore, QAItem
from rag_core.reporting import frames
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.workspace import Workspace

N_QUESTIONS = 100
PRIOR_RUNS = 100
ITEMS = [
    QAItem(f"Question {i}: how many days of annual leave do I get?", "25 days " * 5)
    for i in range(N_QUESTIONS)
]
CONTEXTS = [{"text": "x" * 900, "source": "handbook.pdf", "page": 3, "score": 0.8}] * 4


def _write_run(store: HistoryStore) -> float:
    """Write one run question by question; returns its seconds."""
    t0 = time.perf_counter()
    run_id = store.create_run(
        question_set="bench", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    for i in range(N_QUESTIONS):
        store.save_answer(run_id, i, answer="An answer " * 20, contexts=CONTEXTS, latency_s=0.1, attempts=1)
        store.save_scores(run_id, i, [MetricScore("rouge_l", 0.5), MetricScore("context_recall", 0.75)])
    store.update_run(run_id, status="completed", finished=True)
    return time.perf_counter() - t0


def _write_after(store: HistoryStore, barrier: threading.Barrier) -> None:
    barrier.wait()
    _write_run(store)


def _fill(store: HistoryStore) -> None:
    for _ in range(PRIOR_RUNS):
        run_id = store.create_run(
            question_set="bench", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
        )
        with store._tx("bulk fill", write=True) as conn:
            conn.executemany(
                "UPDATE results SET status = 'ok', answer = ?, contexts = ? WHERE run_id = ? AND idx = ?",
                [("An answer " * 20, json.dumps(CONTEXTS), run_id, i) for i in range(N_QUESTIONS)],
            )
            conn.executemany(
                "INSERT INTO scores(run_id, idx, metric, value) VALUES (?, ?, ?, ?)",
                [(run_id, i, m, 0.5) for i in range(N_QUESTIONS) for m in ("rouge_l", "context_recall")],
            )
        store.update_run(run_id, status="completed", finished=True)


def _page(ws: Workspace) -> float:
    t0 = time.perf_counter()
    ws.version()
    runs = ws.runs()
    Workspace.runs_table(runs)
    frames.runs_frame(runs)
    latest = runs[0]
    ws.summary(latest.id)
    frames.results_frame(ws.results(latest.id), suite=latest.suite, verdicts=ws.verdicts(latest.id))
    ws.runs_with_verdicts()
    return time.perf_counter() - t0


def measure(name: str, target: Path | str, data_dir: Path, reps: int) -> dict[str, Any]:
    store = HistoryStore(target)
    try:
        t0 = time.perf_counter()
        _fill(store)
        fill_s = time.perf_counter() - t0
        single = [N_QUESTIONS / _write_run(store) for _ in range(reps)]
        stores = [HistoryStore(target) for _ in range(4)]
        try:
            walls = []
            for _ in range(max(1, reps // 2)):
                barrier = threading.Barrier(4)

                threads = [threading.Thread(target=_write_after, args=(s, barrier)) for s in stores]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                walls.append(time.perf_counter() - t0)
        finally:
            for s in stores:
                s.close()
        url = target if isinstance(target, str) else None
        settings = Settings.load(
            env={"RAG_DATA_DIR": str(data_dir), **({"RAG_DATABASE_URL": url} if url else {})},
            secrets_path=data_dir / "none.toml",
        )
        if url is None:
            settings = settings.replace(data_dir=Path(target).parent)
        ws = Workspace(settings, store=store)
        _page(ws)  # warm imports
        pages = [_page(ws) for _ in range(reps * 4)]
    finally:
        store.close()
    return {
        "backend": name,
        "fill_100_runs_s": round(fill_s, 2),
        "write_results_per_s": round(statistics.median(single), 1),
        "write_results_per_s_4_writers": round(statistics.median(4 * N_QUESTIONS / w for w in walls), 1),
        "history_page_data_ms_median": round(statistics.median(pages) * 1000, 1),
        "history_page_data_ms_max": round(max(pages) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway local server)")
    ap.add_argument(
        "--fsync", action="store_true", help="throwaway server with fsync on (durable, like SQLite)"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/storage.json"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        rows.append(measure("sqlite", data_dir / "history.sqlite3", data_dir, args.reps))
        server = None
        url = args.database_url
        if url is None:
            from tests.support.postgres_server import start_postgres

            server = start_postgres(fsync=args.fsync)
            url = server.create_database()
        try:
            rows.append(
                measure("postgresql" + (" (fsync on)" if args.fsync else ""), url, data_dir, args.reps)
            )
        finally:
            if server is not None:
                server.stop()
    print(
        f"{'backend':<22} {'write/s':>9} {'4 writers/s':>12} {'page ms (median)':>17} {'page ms (max)':>14}"
    )
    for r in rows:
        print(
            f"{r['backend']:<22} {r['write_results_per_s']:>9} {r['write_results_per_s_4_writers']:>12} "
            f"{r['history_page_data_ms_median']:>17} {r['history_page_data_ms_max']:>14}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
