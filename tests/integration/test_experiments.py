"""Configurations, run identity and sweeps end to end, offline, on the sample handbook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.models import QAItem
from rag_core.settings import Settings
from rag_core.workspace import SAMPLE_PDF, Workspace

pytestmark = pytest.mark.slow
SET = "Three"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    d = tmp_path_factory.mktemp("experiments") / "data"
    settings = Settings.load(env={"RAG_DATA_DIR": str(d)}, secrets_path=d / "none.toml")
    w = Workspace(settings)
    assert w.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())])[0].status == "added"
    w.ensure_sample_set()
    sample = w.question_set("Sample: staff handbook")
    w.save_question_set(SET, [QAItem(i.question, i.ground_truth) for i in sample[:3]])
    yield w
    w.close()


def _run(ws: Workspace, **kw) -> int:
    run_id = ws.start_run(SET, **kw)
    assert ws.wait_run(run_id, timeout=300)
    assert ws.run(run_id).status == "completed", ws.summary(run_id).failure
    return run_id


def test_a_run_pins_its_configuration_and_records_what_it_was_made_of(ws: Workspace) -> None:
    ws.save_config("k2", {"top_k": 2})
    run_id = _run(ws, config="k2", run_name="two chunks", note="fewer passages")
    run = ws.run(run_id)
    assert (run.name, run.note) == ("two chunks", "fewer passages")
    ident = run.identity
    assert ident is not None and ident.config is not None
    assert ident.config.label == "k2 v1" and ident.config.config.top_k == 2
    assert all(len(r.contexts) == 2 for r in ws.results(run_id))
    assert ident.question_set == SET and ident.question_set_version == 1 and len(ident.questions_sha256) == 64
    assert [d.name for d in ident.documents] == [SAMPLE_PDF.name] and len(ident.documents[0].sha256) == 64
    assert ident.collection == ws.settings.collection and ident.code is not None and ident.code.package
    # editing makes v2; the run still pins v1
    ws.save_config("k2", {"top_k": 2, "instructions": "Be brief."})
    assert ws.config("k2").version == 2 and ws.run(run_id).identity.config.version == 1  # type: ignore[union-attr]
    # without a configuration the run pins "default" (the settings)
    plain = ws.run(_run(ws)).identity
    assert plain is not None and plain.config is not None and plain.config.label == "default v1"


def test_another_chunking_retrieves_from_its_own_collection(ws: Workspace) -> None:
    ws.save_config("small chunks", {"chunk_size": 400, "chunk_overlap": 40})
    run_id = _run(ws, config="small chunks")
    ident = ws.run(run_id).identity
    assert ident is not None and ident.collection == f"{ws.settings.collection}-c400-o40"
    assert all(len(c["text"]) <= 400 for r in ws.results(run_id) for c in r.contexts)


def test_what_changed_and_the_statistics_of_two_runs(ws: Workspace) -> None:
    a = _run(ws, config="default")
    b = _run(ws, config="default")
    cmp = ws.compare(a, b)
    assert cmp.changes is not None and cmp.changes.same
    assert cmp.stats and all(s.verdict == "no detectable difference" and s.diff == 0.0 for s in cmp.stats)
    ws.save_question_set(SET, [*ws.question_set(SET)[:2], QAItem("What is the dress code?", "Not covered.")])
    c = _run(ws, config="k2")
    changes = ws.compare(a, c).changes
    assert changes is not None
    assert [f.field for f in changes.config] == [
        "config",
        "instructions",
        "top_k",
    ]  # k2 v2: top-k 2, "Be brief."
    assert changes.config[1].text_diff[-1] == "+Be brief."
    assert {q.kind for q in changes.questions} == {"added", "removed"}
    assert [f.field for f in changes.question_set] == ["question_set_version"]
    doc = ws.compare_json(a, c)
    assert doc["changes"]["config"][2] == {"field": "top_k", "label": "Top-k", "before": 4, "after": 2}
    assert all(m["n_paired"] == 2 for m in doc["metrics"].values())


def test_a_sweep_reuses_identical_work_and_ranks_the_configurations(ws: Workspace) -> None:
    ws.save_question_set(SET, ws.question_set("Sample: staff handbook")[:3])
    ws.save_config("other prompt", {"system_prompt": "You are terse."})  # offline: same answers as default
    ws.save_config("k3", {"top_k": 3})  # a prefix of default's top-4 retrieval
    ws.save_config("chunks 600", {"chunk_size": 600, "chunk_overlap": 60})
    plan = ws.sweep_plan(SET, configs=["k3", "default", "other prompt", "chunks 600"], name="test sweep")
    est = ws.estimate_sweep(plan)
    assert est.calls == 0 and est.builds == (f"{ws.settings.collection}-c600-o60",)
    sweep_id = ws.start_sweep(plan)
    assert ws.wait_sweep(sweep_id, timeout=600)
    sweep = ws.sweep(sweep_id)
    assert sweep.status == "completed" and len(sweep.run_ids) == 4
    c = sweep.counters
    # default runs first (top-4), k3 reuses its retrieval; "other prompt" reuses default's retrieval,
    # answers and scores (the offline answerer ignores prompts)
    assert c["retrievals_reused"] == 6 and c["retrievals_computed"] == 6
    assert c["answers_reused"] == 3 and c["scores_reused"] == 3
    assert c["answers_computed"] == 9 and c["scores_computed"] == 9
    assert c["index_builds"] == 1 and c["embeddings_reused"] > 0
    runs = {ws.run(r).identity.config.name: ws.run(r) for r in sweep.run_ids}  # type: ignore[union-attr]
    assert all(r.identity.sweep_id == sweep_id for r in runs.values())  # type: ignore[union-attr]
    assert runs["other prompt"].name == "test sweep · other prompt v1"
    board = ws.leaderboard(sweep_id)
    assert len(board.rows) == 4 and set(board.best) == set(board.metric_ids)
    by_name = {r.config.split(" v")[0]: r for r in board.rows}
    for mid in board.metric_ids:
        assert by_name["other prompt"].metrics[mid].mean == by_name["default"].metrics[mid].mean
        assert by_name["default"].metrics[mid].ci_low is not None
    # a second sweep over the same chunking builds nothing
    again = ws.start_sweep(ws.sweep_plan(SET, configs=["chunks 600"]))
    assert ws.wait_sweep(again, timeout=300)
    assert ws.sweep(again).counters["index_builds"] == 0


def test_a_cancelled_sweep_keeps_what_it_finished(ws: Workspace) -> None:
    from rag_core.access import Principal, Role
    from rag_core.errors import AccessDeniedError

    ana = Principal(id="ana@example.org", name="Ana", role=Role.ANALYST)
    bob = ws.acting_as(Principal(id="bob@example.org", name="Bob", role=Role.ANALYST))
    plan = ws.sweep_plan(SET, configs=["default", "k3"], name="stopped")
    sweep_id = ws.acting_as(ana).start_sweep(plan)
    for _ in range(600):  # bounded: until its first run has started (≤ 60 s)
        p = ws.sweep_progress(sweep_id)
        if p is None or p.run_ids:
            break
        ws.wait_sweep(sweep_id, 0.1)
    assert not bob.can_control_sweep(sweep_id)
    with pytest.raises(AccessDeniedError, match=r"started by ana@example\.org"):
        bob.cancel_sweep(sweep_id)  # another analyst cannot stop it
    assert ws.acting_as(ana).cancel_sweep(sweep_id)
    assert ws.wait_sweep(sweep_id, timeout=300)
    sweep = ws.sweep(sweep_id)
    assert sweep.status == "cancelled" and 1 <= len(sweep.run_ids) <= 2
    assert ws.sweep_progress(sweep_id) is None and sweep_id not in ws.active_sweep_ids()
    # its runs are Ana's: recorded as she started them, audited, and only she (or an admin) controls them
    assert {ws.run_owner(r) for r in sweep.run_ids} == {"ana@example.org"}
    starts = [e for e in ws.audit_trail(actions=["run.start"]) if e.detail == f"sweep #{sweep_id}"]
    assert sorted(e.target for e in starts) == sorted(f"run #{r}" for r in sweep.run_ids)
    assert all(e.actor == "ana@example.org" for e in starts)
    assert not bob.can_control_run(sweep.run_ids[0]) and ws.acting_as(ana).can_control_run(sweep.run_ids[0])
    trail = [(e.actor, e.action) for e in reversed(ws.audit_trail()) if e.target == f"sweep #{sweep_id}"]
    assert trail == [("ana@example.org", "sweep.start"), ("ana@example.org", "sweep.cancel")]
    first_start = min(e.id for e in starts)
    sweep_start = next(e for e in ws.audit_trail(actions=["sweep.start"]) if e.target == f"sweep #{sweep_id}")
    assert sweep_start.id < first_start  # the sweep is audited before its first run


def test_configs_from_a_file(ws: Workspace, tmp_path: Path) -> None:
    data = ws.export_configs(["k3", "chunks 600"]).encode()
    assert [c.label for c in ws.import_configs("c.json", data)] == ["k3 v1", "chunks 600 v1"]  # unchanged
    clone = ws.clone_config("k3", "k3 copy")
    assert clone.label == "k3 copy v1" and clone.config == ws.config("k3").config
    assert ws.configs()[0].name == "default"
