"""Question sets page: sample set, edit + save, validation naming rows, drafts, import/export."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import _workspace, texts

PAGE = "pages/question_sets.py"
SAMPLE = "Sample: staff handbook"


def _open(app, data_dir: Path) -> AppTest:
    at = app(data_dir)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _editor_key(at: AppTest) -> str:
    """Key of the data editor drawn now (it carries a generation counter, see the page)."""
    return f"qsets.editor.{at.session_state['qsets.editor_gen']}"


def _edit(
    at: AppTest, edited: dict | None = None, added: list | None = None, deleted: list | None = None
) -> AppTest:
    """Inject data-editor edits the way the browser sends them, then rerun."""
    at.session_state[_editor_key(at)] = {
        "edited_rows": edited or {},
        "added_rows": added or [],
        "deleted_rows": deleted or [],
    }
    return at.run()


def _stored(data_dir: Path, name: str) -> list:
    ws = _workspace(data_dir)
    try:
        return ws.question_set(name)
    finally:
        ws.close()


def test_sample_set_ships_and_is_shown_in_the_editor(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    assert at.selectbox(key="qsets.selected").value == SAMPLE
    editor = at.data_editor[0]
    assert editor.editing_mode == "dynamic"
    assert list(editor.value.columns) == ["question", "ground_truth", "expected"]
    assert len(editor.value) == 10
    # The sample's uncovered question is expected to be declined (issue 12); the rest answered.
    assert list(editor.value["expected"]).count("decline") == 1
    assert any("Saved" in c for c in texts(at, "caption"))


def test_edit_add_delete_and_save(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    at = _edit(
        at,
        edited={0: {"question": "What are the core working hours?"}},
        added=[{"question": "Can I buy extra holiday?", "ground_truth": "Not covered."}],
        deleted=[9],
    )
    assert any("Unsaved changes" in w for w in texts(at, "warning"))
    assert not at.button(key="qsets.save").disabled
    at.button(key="qsets.save").click().run()
    assert not at.exception
    assert any("Saved" in s and "10 questions" in s for s in texts(at, "success"))
    stored = _stored(empty_dir, SAMPLE)
    assert stored[0].question == "What are the core working hours?"
    assert stored[-1].question == "Can I buy extra holiday?"
    assert len(stored) == 10
    # The editor now shows the saved set with no pending edits.
    assert len(at.data_editor[0].value) == 10
    assert not any("Unsaved changes" in w for w in texts(at, "warning"))


def test_bad_rows_are_named_and_edits_are_kept(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    first = _stored(empty_dir, SAMPLE)[0].question
    at = _edit(at, edited={1: {"question": ""}, 3: {"question": first}, 4: {"question": "x" * 2500}})
    at.button(key="qsets.save").click().run()
    assert not at.exception
    errors = " ".join(texts(at, "error"))
    assert "row 2" in errors and "empty" in errors
    assert "row 1" in errors and "row 4" in errors and "twice" in errors
    assert "row 5" in errors and "2000" in errors
    # nothing saved, edits still there and still marked unsaved
    assert _stored(empty_dir, SAMPLE)[1].question != ""
    assert at.session_state["qsets.drafts"][SAMPLE][4]["question"] == "x" * 2500
    assert at.session_state["qsets.drafts"][SAMPLE][1]["question"] == ""
    assert any("Unsaved changes" in w for w in texts(at, "warning"))


def test_drafts_survive_switching_set_and_page(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    at.text_input(key="qsets.new_name").input("Leave questions").run()
    at.button(key="qsets.create").click().run()
    assert at.selectbox(key="qsets.selected").value == "Leave questions"
    assert len(at.data_editor[0].value) == 0
    at = _edit(at, added=[{"question": "How long is maternity leave?", "ground_truth": "52 weeks."}])
    assert (
        at.session_state["qsets.drafts"]["Leave questions"][0]["question"] == "How long is maternity leave?"
    )

    # switch to the sample set: a warning says the other set's changes are kept
    at.selectbox(key="qsets.selected").select(SAMPLE).run()
    assert any("Leave questions" in w and "unsaved" in w for w in texts(at, "warning"))
    # visit another page and come back: the draft is still there, in the editor
    at.switch_page("pages/history.py").run()
    at.switch_page(PAGE).run()
    at.selectbox(key="qsets.selected").select("Leave questions").run()
    assert list(at.data_editor[0].value["question"]) == ["How long is maternity leave?"]
    at.button(key="qsets.save").click().run()
    assert [q.question for q in _stored(empty_dir, "Leave questions")] == ["How long is maternity leave?"]


def test_import_csv_and_json_and_export(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    csv_bytes = b"question,ground_truth\nWho approves overtime?,Your line manager.\nIs parking free?,\n"
    at.file_uploader(key="qsets.import").upload("extra.csv", csv_bytes, "text/csv")
    at.run()
    at.button(key="qsets.import_go").click().run()
    assert not at.exception
    assert any("Imported 2 questions" in s for s in texts(at, "success"))
    assert at.selectbox(key="qsets.selected").value == "extra"
    assert [q.question for q in _stored(empty_dir, "extra")] == ["Who approves overtime?", "Is parking free?"]

    exports = {b.key: b for b in at.get("download_button")}
    assert {"qsets.export_csv", "qsets.export_json"} <= set(exports)

    bad = json.dumps([{"question": "Fine?", "ground_truth": "yes"}, {"question": " ", "ground_truth": "x"}])
    at.file_uploader(key="qsets.import").set_value(("bad.json", bad.encode(), "application/json"))
    at.run()
    at.button(key="qsets.import_go").click().run()
    assert any("bad.json" in e and "row 2" in e for e in texts(at, "error")), (
        texts(at, "error") + texts(at, "success") + texts(at, "warning")
    )


def test_rename_and_delete(app, empty_dir: Path) -> None:
    at = _open(app, empty_dir)
    at.text_input(key="qsets.rename_to").input("Handbook basics").run()
    at.button(key="qsets.rename").click().run()
    assert at.selectbox(key="qsets.selected").value == "Handbook basics"
    assert len(_stored(empty_dir, "Handbook basics")) == 10
    at.button(key="qsets.delete").click().run()
    at.button(key="qsets.delete_confirm").click().run()
    assert not at.exception
    assert any("No question sets yet" in t for t in texts(at, "info"))


def test_discard_restores_the_saved_rows_in_a_new_editor(app, empty_dir: Path) -> None:
    """Issue 9: Discard shows the saved rows again and the next edit does not bring the old ones
    back. The browser keeps a data editor's edits per widget, so Discard must start a new widget
    (a new key) drawn from the saved rows; the browser test checks what the user sees."""
    at = _open(app, empty_dir)
    saved = [(q.question, q.ground_truth) for q in _stored(empty_dir, SAMPLE)]
    old_key = _editor_key(at)
    at = _edit(at, edited={0: {"question": "Discard me"}}, added=[{"question": "Discard me too"}])
    assert at.session_state["qsets.drafts"][SAMPLE][0]["question"] == "Discard me"
    at.button(key="qsets.discard").click().run()
    assert not at.exception
    assert _editor_key(at) != old_key  # a new editor widget: the browser drops its edit state
    shown = at.data_editor[0].value
    assert list(zip(shown["question"], shown["ground_truth"], strict=True)) == saved
    assert SAMPLE not in at.session_state["qsets.drafts"]
    assert not any("Unsaved changes" in w for w in texts(at, "warning"))
    assert at.button(key="qsets.discard").disabled and at.button(key="qsets.save").disabled

    # The next edit is applied to the saved rows, alone.
    at = _edit(at, edited={1: {"ground_truth": "Changed after discarding."}})
    draft = at.session_state["qsets.drafts"][SAMPLE]
    assert [(r["question"], r["ground_truth"]) for r in draft] == [
        saved[0],
        (saved[1][0], "Changed after discarding."),
        *saved[2:],
    ]


def test_save_and_switching_sets_start_a_new_editor(app, empty_dir: Path) -> None:
    """Every reset of the table (save, switch set) gets a new editor key, so no edit state of the
    previous table can be applied to the new rows."""
    at = _open(app, empty_dir)
    keys = [_editor_key(at)]
    at = _edit(at, added=[{"question": "Is there a cycle-to-work scheme?", "ground_truth": "Yes."}])
    assert _editor_key(at) == keys[-1]  # editing keeps the widget
    at.button(key="qsets.save").click().run()
    keys.append(_editor_key(at))
    assert len(_stored(empty_dir, SAMPLE)) == 11 and len(at.data_editor[0].value) == 11
    at.text_input(key="qsets.new_name").input("Second").run()
    at.button(key="qsets.create").click().run()
    keys.append(_editor_key(at))
    at.selectbox(key="qsets.selected").select(SAMPLE).run()
    keys.append(_editor_key(at))
    assert len(set(keys)) == len(keys), keys
    assert len(at.data_editor[0].value) == 11


def test_a_set_bound_to_a_collection_runs_only_there(app, indexed_dir: Path) -> None:
    ws = _workspace(indexed_dir)
    ws.create_collection("Southbank")
    ws.close()
    at = _open(app, indexed_dir)
    bound = at.selectbox(key="qsets.selected").value
    at.selectbox(key="qsets.collection").select("Southbank").run()
    assert any("retrieve only from the collection 'Southbank'" in t for t in texts(at, "success"))
    at.switch_page("pages/run.py").run()
    at.selectbox(key="run.set").select(bound).run()
    run_collection = at.selectbox(key="run.collection")
    assert run_collection.value == "Southbank" and run_collection.disabled
    # Southbank has no documents yet: the run cannot start, and the page says why.
    assert at.button(key="run.start").disabled
    assert any("has no documents" in t for t in texts(at, "caption"))
