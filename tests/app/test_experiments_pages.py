"""Configurations page, Sweeps page, and the experiment parts of Run and History (AppTest).

Fragments with run_every do not tick in AppTest: tests wait on the run/sweep handles themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import QUICK_SET, _workspace, assert_plain_session_state, texts, wait_for_runs

RUN, HISTORY, CONFIGS, SWEEPS = (
    "pages/run.py",
    "pages/history.py",
    "pages/configurations.py",
    "pages/sweeps.py",
)


def _plain(at: AppTest, kind: str) -> list[str]:
    """The texts without Markdown bold markers."""
    return [t.replace("**", "") for t in texts(at, kind)]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _wait_for_sweeps(data_dir: Path, timeout: float = 300) -> None:
    from rag_core.engine import get_engine

    ns = str((data_dir / "history.sqlite3").resolve()) + "#sweeps"
    for _, handle in get_engine().runs.live(ns):
        assert handle.wait(timeout), "the sweep did not finish"


def test_configurations_page_clone_edit_version_and_diff(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    at.switch_page(CONFIGS).run()
    _ok(at)
    table = next(df.value for df in at.dataframe if "Configuration" in df.value.columns)
    assert list(table["Configuration"]) == ["default"] and list(table["Version"]) == [1]
    # default is read-only
    assert at.button(key="configs.save").disabled
    assert at.number_input(key="configs.f.default.1.top_k").disabled

    at.text_input(key="configs.clone_name").set_value("fewer passages")
    at.button(key="configs.clone").click().run()
    _ok(at)
    assert at.selectbox(key="configs.name").value == "fewer passages"
    assert any("Created fewer passages v1" in s for s in _plain(at, "success"))

    at.number_input(key="configs.f.fewer passages.1.top_k").set_value(2)
    at.text_area(key="configs.f.fewer passages.1.instructions").set_value("Answer in one sentence.")
    at.text_input(key="configs.f.fewer passages.1.note").set_value("two passages, terse")
    at.button(key="configs.save").click().run()
    _ok(at)
    assert any("Saved fewer passages v2" in s for s in _plain(at, "success"))
    versions = next(df.value for df in at.dataframe if "Note" in df.value.columns)
    assert list(versions["Version"]) == [2, 1]
    assert "Top-k" in versions.iloc[0]["Changed"] and "Answer instructions" in versions.iloc[0]["Changed"]

    # saving again without a change is no new version
    at.button(key="configs.save").click().run()
    assert any("stays at v2" in s for s in _plain(at, "info"))

    # the Compare tab: default@1 → fewer passages@2
    at.selectbox(key="configs.diff_b").select("fewer passages@2").run()
    diff = next(df.value for df in at.dataframe if "Field" in df.value.columns)
    assert set(diff["Field"]) == {"Answer instructions", "Top-k"}
    assert any("+Answer in one sentence." in c.value for c in at.code)
    assert_plain_session_state(at)


def test_configurations_import_from_a_file(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    at.switch_page(CONFIGS).run()
    data = json.dumps([{"name": "mmr", "config": {"retrieval": "mmr"}}, {"name": "k8", "top_k": 8}]).encode()
    at.file_uploader(key="configs.upload").upload("mine.json", data, "application/json").run()
    at.button(key="configs.import").click().run()
    _ok(at)
    assert any("Imported mmr v1, k8 v1" in s for s in _plain(at, "success"))
    table = next(df.value for df in at.dataframe if "Configuration" in df.value.columns)
    assert list(table["Configuration"]) == ["default", "k8", "mmr"]


def test_a_run_pins_the_chosen_configuration_with_its_name(app, indexed_dir: Path) -> None:
    ws = _workspace(indexed_dir)
    ws.save_config("k2", {"top_k": 2})
    ws.close()
    at = app(indexed_dir)
    at.switch_page(RUN).run()
    at.selectbox(key="run.set").select(QUICK_SET).run()
    at.selectbox(key="run.config").select("k2").run()
    assert any("top-k 2" in c for c in texts(at, "caption"))
    at.text_input(key="run.name").set_value("two passages")
    at.text_area(key="run.note").set_value("does less context hurt?")
    at.button(key="run.start").click().run()
    _ok(at)
    run_id = at.session_state["run.active_id"]
    wait_for_runs(indexed_dir)
    at.run()
    _ok(at)
    assert any("two passages · configuration k2 v1" in c for c in texts(at, "caption"))
    run = _workspace(indexed_dir).run(run_id)
    assert (run.name, run.note) == ("two passages", "does less context hurt?")
    assert (
        run.identity is not None and run.identity.config is not None and run.identity.config.label == "k2 v1"
    )


def test_history_shows_what_changed_and_the_verdicts(app, history_dir: Path) -> None:
    at = app(history_dir)
    at.switch_page(HISTORY).run()
    _ok(at)
    table = next(
        df.value for df in at.dataframe if "Run" in df.value.columns and "Config" in df.value.columns
    )
    assert list(table["Config"]) == ["default v1", "default v1"]
    changes = next(df.value for df in at.dataframe if "What" in df.value.columns)
    assert list(changes["What"]) == ["Execution mode"]
    assert list(changes["Baseline"]) == ["async"] and list(changes["Candidate"]) == ["compare"]
    stats = next(df.value for df in at.dataframe if "Verdict" in df.value.columns)
    assert set(stats["Verdict"]) == {"no detectable difference"}  # same answers, same scores
    assert set(stats["Questions"]) == {3}
    assert {"95 % CI of Δ", "p (Holm)", "Smallest detectable Δ"} <= set(stats.columns)
    chart = next(c for c in at.get("plotly_chart") if "history.fig_compare" in c.proto.id)
    spec = json.loads(chart.proto.spec)
    assert spec["data"][0]["error_y"]["array"] is not None  # error bars
    assert any("no detectable difference" in a["text"] for a in spec["layout"]["annotations"])

    # run details: name and note, identity
    at.session_state["history.tab"] = "Run details"
    at.run()
    at.text_input(key="history.label_name.2").set_value("compare baseline")
    at.text_area(key="history.label_note.2").set_value("the speedup run")
    at.button(key="history.label_save.2").click().run()
    _ok(at)
    assert any("Saved the name and note of run #2" in s for s in _plain(at, "success"))
    assert any("compare baseline" in m for m in texts(at, "markdown"))
    assert any("Configuration: default v1" in c for c in texts(at, "caption"))


def test_sweeps_page_estimates_runs_and_ranks(app, indexed_dir: Path) -> None:
    ws = _workspace(indexed_dir)
    ws.save_config("other prompt", {"system_prompt": "You are terse."})
    ws.close()
    at = app(indexed_dir)
    at.switch_page(SWEEPS).run()
    _ok(at)
    at.selectbox(key="sweeps.set").select(QUICK_SET).run()
    at.multiselect(key="sweeps.configs").set_value(["default", "other prompt"]).run()
    at.text_input(key="sweeps.grid_top_k").set_value("2").run()  # + a grid point over the base (default)
    at.text_input(key="sweeps.name").set_value("prompt and k").run()
    _ok(at)
    info = " ".join(_plain(at, "info"))
    assert "3 configurations × 3 questions" in info and "Offline: no API calls" in info
    assert "default · top_k=2 (unsaved)" in info
    at.button(key="sweeps.start").click().run()
    _ok(at)
    _wait_for_sweeps(indexed_dir)
    at.run()
    _ok(at)
    board = next(
        df.value for df in at.dataframe if "Configuration" in df.value.columns and "Run" in df.value.columns
    )
    assert len(board) == 3 and "default · top_k=2 v1" in set(board["Configuration"])
    captions = " ".join(texts(at, "caption"))
    assert "3 answers" in captions  # "other prompt" reused default's answers (offline ignores prompts)
    assert any("sweeps.fig_leaderboard" in c.proto.id for c in at.get("plotly_chart"))
    assert_plain_session_state(at)


@pytest.mark.parametrize("page", [CONFIGS, SWEEPS])
@pytest.mark.parametrize("where", ["empty_dir", "history_dir"])
def test_new_pages_render_on_a_new_install_and_with_history(app, request, page: str, where: str) -> None:
    at = app(request.getfixturevalue(where))
    at.switch_page(page).run()
    _ok(at)
    assert texts(at, "title")
    if page == SWEEPS:
        assert any("No sweeps yet" in i for i in _plain(at, "info"))
