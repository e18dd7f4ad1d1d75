"""The CI gate against a baseline run (``run … --baseline RUN_ID --fail-if-worse``) and ``compare``,
on runs written straight into a store (no embedder, no index)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.cli import main
from rag_core.cli_experiments import EXIT_GATE, EXIT_INPUT, EXIT_OK, baseline_gate
from rag_core.models import MetricScore, QAItem
from rag_core.settings import Settings
from rag_core.storage import HistoryStore

ITEMS = [QAItem(f"Question {i}?", f"Answer {i}.") for i in range(10)]


def _run(store: HistoryStore, values: dict[str, list[float]]) -> int:
    run_id = store.create_run(
        question_set="S", backend="offline", mode="async", suite="offline", config={"top_k": 4}, items=ITEMS
    )
    for i in range(len(ITEMS)):
        store.save_answer(run_id, i, answer=f"a{i}", contexts=[], error=None, latency_s=0.1, attempts=1)
        store.save_scores(run_id, i, [MetricScore(name, vals[i]) for name, vals in values.items()])
    store.update_run(run_id, status="completed", finished=True)
    return run_id


@pytest.fixture
def store(settings: Settings) -> Iterator[HistoryStore]:
    s = HistoryStore(settings.db_path)
    yield s
    s.close()


BASE = {"semantic_similarity": [0.80 + 0.01 * i for i in range(10)], "rouge_l": [0.5] * 10}


def test_the_gate_fails_only_when_a_metric_is_significantly_worse(store: HistoryStore, capsys) -> None:
    base = _run(store, BASE)
    same = _run(store, BASE)
    noisy = _run(
        store,
        {
            "semantic_similarity": [
                v + (0.02 if i % 2 else -0.02) for i, v in enumerate(BASE["semantic_similarity"])
            ],
            "rouge_l": [0.5] * 10,
        },
    )
    worse = _run(
        store, {"semantic_similarity": [v - 0.2 for v in BASE["semantic_similarity"]], "rouge_l": [0.5] * 10}
    )
    assert baseline_gate(store, base, same, fail_if_worse=True) == EXIT_OK
    assert baseline_gate(store, base, noisy, fail_if_worse=True) == EXIT_OK
    capsys.readouterr()
    assert baseline_gate(store, base, worse, fail_if_worse=True) == EXIT_GATE
    err = capsys.readouterr().err
    assert (
        "Semantic similarity (offline.semantic_similarity) is significantly worse: -0.200 (95% CI -0.200 to -0.200"
        in err
    )
    assert "10 questions" in err and "rouge" not in err.lower()
    # without --fail-if-worse the comparison is printed but never fails the build
    assert baseline_gate(store, base, worse, fail_if_worse=False) == EXIT_OK


def test_gate_flags_are_checked_before_anything_runs(settings: Settings, capsys) -> None:
    q = Path(settings.data_dir) / "q.json"
    q.write_text(json.dumps([{"question": "q?", "ground_truth": "a"}]))
    args = ["--data-dir", str(settings.data_dir), "run", "--questions", str(q)]
    assert main([*args, "--fail-if-worse"]) == EXIT_INPUT
    assert "--fail-if-worse needs --baseline" in capsys.readouterr().err
    assert main([*args, "--baseline", "42"]) == EXIT_INPUT
    assert "no run #42" in capsys.readouterr().err


def test_compare_prints_and_writes_the_documented_json(
    settings: Settings, store: HistoryStore, capsys
) -> None:
    a = _run(store, BASE)
    b = _run(
        store, {"semantic_similarity": [v - 0.2 for v in BASE["semantic_similarity"]], "rouge_l": [0.5] * 10}
    )
    out = Path(settings.data_dir) / "cmp.json"
    assert (
        main(["--data-dir", str(settings.data_dir), "compare", str(a), str(b), "--json", str(out)]) == EXIT_OK
    )
    printed = capsys.readouterr().out
    assert "Semantic similarity" in printed and "worse" in printed
    doc = json.loads(out.read_text())
    m = doc["metrics"]["offline.semantic_similarity"]
    assert {"mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "verdict", "n_paired"} <= set(m)
    assert m["verdict"] == "worse" and m["n_paired"] == 10 and m["diff"] == pytest.approx(-0.2)
    assert doc["metrics"]["offline.rouge_l"]["verdict"] == "no detectable difference"
    assert doc["changes"]["unknown"]  # these runs have no identity: the diff says so
