"""Question sets: several named sets of (question, ground truth, expected behaviour), edited in a
data editor. ``expected`` is ``answer`` (the default) or ``decline`` (the policy does not cover
the question and the assistant should say so).

Unsaved edits are kept per set in ``st.session_state["qsets.drafts"]`` (plain rows), so switching
set or page loses nothing; the editor shows whether the set differs from the stored one.

Editor state, explained once: ``st.data_editor`` applies its edit state (``edited_rows``,
``added_rows``, ``deleted_rows``) on top of the data it is given — the *base*. The base of each set
is kept in ``qsets.bases`` and only changes when the edit state is empty or reset (set switched,
saved, discarded, imported, or the editor was not drawn in the last run), so edits are never
applied twice. The browser keeps its own copy of the edit state, per widget: deleting the session
key does not clear the table on screen, and the next edit would send the old edits back. So every
reset starts a new editor widget — its key carries a generation counter (``qsets.editor_gen``) —
which the browser draws from the base alone.

Typing: the grid commits what its cell editor has *rendered*; keys that reach the browser in the
same frame as Tab/Enter are lost, and the cell stays empty ("None") — measured with a bare
``st.data_editor``. Every commit reruns the app, and a long rerun to redraw blocks the browser for
exactly such frames. So the table, its status and buttons are one fragment (a commit reruns and
redraws only that), and nothing above the table changes while the user edits (status, notes and
messages are drawn below it, so a rerun never moves the table under an open cell editor).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages import _stale
from rag_core.access import Role
from rag_core.errors import InputError, RagError
from rag_core.vocab import Expected
from rag_core.workspace import items_to_rows, rows_to_items

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
CAN_EDIT = ws.can(Role.ANALYST)  # viewers read and export only
CAN_DELETE = ws.can(Role.ADMIN)
COLUMNS = ["question", "ground_truth", "expected"]

drafts: dict[str, list[dict[str, str]]] = ss.setdefault("qsets.drafts", {})
bases: dict[str, list[dict[str, str]]] = ss.setdefault("qsets.bases", {})


def error_md(message: str) -> str:
    """A (possibly multi-line) validation message as Markdown: escaped text, problems as a list."""
    lines = message.splitlines()
    out = [ui.md(lines[0])] if lines else []
    for line in lines[1:]:
        text = re.sub(r"^\s*-\s*", "", line)
        out.append(f"- {ui.md(text)}" if text else "")
    return "\n".join(out)


def _stored_names() -> list[str]:
    return [s.name for s in ui.question_sets()]


def _flash(kind: str, text: str) -> None:
    ss["qsets.flash"] = (kind, text)


def _move(old: str, new: str) -> None:
    for d in (drafts, bases):
        if old in d:
            d[new] = d.pop(old)


# --- callbacks (run before the script, so they may set widget values) ----------------------------
def _create() -> None:
    name = (ss.get("qsets.new_name") or "").strip()
    if not name:
        _flash("error", "Type a name for the new question set.")
    elif name in _stored_names() or name in drafts:
        _flash("error", f"A question set named '{ui.md(name)}' already exists; pick another name.")
    else:
        drafts[name] = []
        ss["qsets.selected"] = name
        ss["qsets.new_name"] = ""
        _flash("info", f"New set '{ui.md(name)}': add questions in the table, then Save.")


def _rename() -> None:
    old = ss.get("qsets.selected")
    new = (ss.get("qsets.rename_to") or "").strip()
    if not old:
        return
    try:
        if old in _stored_names():
            ws.rename_question_set(old, new)
        elif not new:
            raise InputError("Type a new name for the question set.")
        elif new in drafts or new in _stored_names():
            raise InputError(f"A question set named '{new}' already exists; pick another name.")
    except RagError as exc:
        _flash("error", error_md(str(exc)))
        return
    if new != old:
        _move(old, new)
        ss["qsets.selected"] = new
        ss["qsets.editing"] = new
    ss["qsets.rename_to"] = ""
    _flash("success", f"Renamed '{ui.md(old)}' to '{ui.md(new)}'.")


def _delete() -> None:
    name = ss.pop("qsets.confirm_delete", None)
    if not name:
        return
    try:
        if name in _stored_names():
            ws.delete_question_set(name)
    except RagError as exc:
        _flash("error", error_md(str(exc)))
        return
    drafts.pop(name, None)
    bases.pop(name, None)
    ss.pop("qsets.selected", None)
    ss["qsets.rebase"] = True
    _flash("success", f"Deleted question set '{ui.md(name)}'. Runs that used it are kept.")


def _import() -> None:
    f = ss.get("qsets.import")
    if f is None:
        _flash("error", "Choose a CSV or JSON file to import first.")
        return
    try:
        items = ws.import_questions(f.name, f.getvalue())
    except RagError as exc:
        _flash("error", error_md(str(exc)))
        return
    name = (ss.get("qsets.import_name") or "").strip() or Path(f.name).stem
    if name in _stored_names() or name in drafts:
        drafts[name] = items_to_rows(items)
        ss["qsets.selected"] = name
        ss["qsets.rebase"] = True
        _flash(
            "warning",
            f"Imported {len(items)} questions into a draft of '{ui.md(name)}'. Review them "
            "and Save to replace the stored set, or Discard.",
        )
        return
    try:
        ws.save_question_set(name, items)
    except RagError as exc:
        _flash("error", error_md(str(exc)))
        return
    ss["qsets.selected"] = name
    ss["qsets.rebase"] = True
    _flash("success", f"Imported {len(items)} questions as the new set '{ui.md(name)}'.")


ANY_COLLECTION = "(not bound — chosen when a run starts)"


def _bind() -> None:
    name = ss.get("qsets.selected")
    choice = ss.get("qsets.collection")
    if not name:
        return
    try:
        ws.bind_question_set(name, None if choice == ANY_COLLECTION else choice)
    except RagError as exc:
        _flash("error", error_md(str(exc)))
        return
    _flash(
        "success",
        f"'{ui.md(name)}' is not bound: a run chooses its collection."
        if choice == ANY_COLLECTION
        else f"Runs of '{ui.md(name)}' now retrieve only from the collection '{ui.md(choice)}'.",
    )


def _discard() -> None:
    """Drop the selected set's draft; the next run draws a new editor from the saved rows."""
    name = ss.get("qsets.selected")
    drafts.pop(name, None)
    ss["qsets.rebase"] = True
    _flash("info", f"Discarded the unsaved changes of '{ui.md(name)}'.")


def _rows(df: pd.DataFrame) -> list[dict[str, str]]:
    """Editor output → plain rows (None/NaN → '', an empty ``expected`` → answer)."""
    return items_to_rows(rows_to_items(df.reindex(columns=COLUMNS).to_dict("records")))


def editor_key(gen: int) -> str:
    """Session-state key of the data editor of generation ``gen`` (see the module docstring)."""
    return f"qsets.editor.{gen}"


def _has_edits(state: Any) -> bool:
    return isinstance(state, dict) and any(
        state.get(k) for k in ("edited_rows", "added_rows", "deleted_rows")
    )


# --------------------------------------------------------------------------------------------
st.title("Question sets")
st.caption(
    "Questions an employee might ask, with the answer the policy gives (the ground truth). "
    "Runs use the saved version of a set."
)

stored = {s.name: s for s in ui.question_sets()}
options = sorted(set(stored) | set(drafts), key=str.casefold)

if not options:
    st.info(
        "No question sets yet — create one below, or import a CSV/JSON file with the columns "
        "question and ground_truth (and optionally expected: answer or decline)."
    )
    selected = None
else:
    ui.ensure_choice("qsets.selected", options)
    # Plain labels on purpose: the browser sends the chosen label back, so labels that change
    # from run to run (e.g. an "unsaved" marker) could stop matching. Unsaved state is shown below.
    selected = st.selectbox("Question set", options, key="qsets.selected", persist_state="session")


@st.fragment
def editor(selected: str) -> None:
    """The table of ``selected`` with its status, buttons and notes — a fragment: a cell edit
    reruns only this part, so the browser has little to redraw while the user types on."""
    stored = {s.name: s for s in ui.question_sets()}
    previous = ss.get("qsets.editing")
    stored_rows = items_to_rows(ui.question_set(selected)) if selected in stored else []
    rebase = ss.pop("qsets.rebase", False)
    gen = ss.setdefault("qsets.editor_gen", 0)
    if rebase or previous != selected or selected not in bases:
        gen = ss["qsets.editor_gen"] = gen + 1  # a new widget: the browser forgets the old edits
        bases[selected] = drafts.get(selected, stored_rows)
    elif not _has_edits(ss.get(editor_key(gen))):
        bases[selected] = drafts.get(selected, stored_rows)
    ss["qsets.editing"] = selected

    with st.container(key="qsets.table"):  # a stable hook for tests; the editor's key changes
        edited = st.data_editor(
            pd.DataFrame(bases[selected], columns=COLUMNS),
            key=editor_key(gen),
            num_rows="dynamic",
            width="stretch",
            column_config={
                "question": st.column_config.TextColumn(
                    "Question", width="large", help="What an employee asks. Must be unique."
                ),
                "ground_truth": st.column_config.TextColumn(
                    "Ground truth", width="large", help="The answer the policy gives (may be empty)."
                ),
                "expected": st.column_config.SelectboxColumn(
                    "Expected",
                    options=[e.value for e in Expected],
                    default=Expected.ANSWER.value,
                    required=True,
                    width="small",
                    help="answer: the policy covers it · decline: the policy does not cover it, so the "
                    "assistant should say so instead of guessing.",
                ),
            },
        )
    rows = _rows(edited)
    if selected not in stored or rows != stored_rows:
        drafts[selected] = rows
    else:
        drafts.pop(selected, None)

    if selected in drafts:
        st.warning(
            "● Unsaved changes — "
            + (
                "this set is new and not saved yet."
                if selected not in stored
                else "Save to keep them, or Discard."
            ),
            icon=":material/edit_note:",
        )
    else:
        info = stored[selected]
        st.caption(
            f"✓ Saved · {info.n_items} questions · last saved {info.updated_at[:16].replace('T', ' ')} UTC"
        )

    if selected in stored:
        bind_options = [ANY_COLLECTION, *ui.collections()]
        current = stored[selected].collection or ANY_COLLECTION
        if ss.get("qsets.collection_for") != selected or ss.get("qsets.collection") not in bind_options:
            ss["qsets.collection"] = current if current in bind_options else ANY_COLLECTION
            ss["qsets.collection_for"] = selected
        st.selectbox(
            "Document collection",
            bind_options,
            key="qsets.collection",
            on_change=_bind,
            help="Bind the set to the documents it was written for: its runs then retrieve only "
            "from that collection.",
        )
    row = st.container(horizontal=True)
    save = row.button(
        "Save", key="qsets.save", type="primary", disabled=selected not in drafts or not CAN_EDIT
    )
    if row.button("Discard changes", key="qsets.discard", disabled=selected not in drafts):
        _discard()
        st.rerun()  # the whole page: discarding a new set removes it from the list
    items_now = rows_to_items(rows)
    row.download_button(
        "Export CSV",
        ws.export_questions(items_now, "csv"),
        file_name=ws.export_filename(selected, "csv"),
        mime="text/csv",
        key="qsets.export_csv",
        on_click="ignore",
    )
    row.download_button(
        "Export JSON",
        ws.export_questions(items_now, "json"),
        file_name=ws.export_filename(selected, "json"),
        mime="application/json",
        key="qsets.export_json",
        on_click="ignore",
    )
    if save:
        try:
            saved = ws.save_question_set(selected, rows)
        except RagError as exc:
            st.error(error_md(str(exc)), icon=":material/error:")
            st.caption("Nothing was saved; your edits are still in the table.")
        else:
            drafts.pop(selected, None)
            ss["qsets.rebase"] = True
            _flash("success", f"Saved '{ui.md(saved.name)}' — {saved.n_items} questions.")
            st.rerun()

    if previous and previous != selected and previous in drafts:
        st.warning(
            f"'{ui.md(previous)}' has unsaved changes. They are kept as a draft — switch back to "
            "save or discard them."
        )
    others = [n for n in drafts if n != selected and n != previous]
    if others:  # other sets with unsaved edits (the warning above covers the one just left)
        st.caption("Unsaved drafts kept for: " + ", ".join(f"'{ui.md(n)}'" for n in others))
    ui.flash("qsets.flash")  # below the table: a message that goes away must not move it


if selected is not None:
    editor(selected)
    if selected in stored:  # issue 14: questions a new policy version made stale
        _stale.render(selected, key="qsets.stale", flash_key="qsets.flash")
else:
    ui.flash("qsets.flash")

# --------------------------------------------------------------------------------------------
st.divider()
new_col, import_col = st.columns(2) if CAN_EDIT else (st.empty(), st.empty())
if not CAN_EDIT:
    st.caption("Creating, editing and importing question sets needs the analyst role.")
with new_col:
    st.subheader("New set")
    st.text_input("Name", key="qsets.new_name", placeholder="e.g. Leave policy — tricky cases")
    st.button("Create", key="qsets.create", on_click=_create)
    if selected is not None:
        st.subheader("Rename or delete")
        st.text_input("New name", key="qsets.rename_to", placeholder=selected)
        row2 = st.container(horizontal=True)
        row2.button("Rename", key="qsets.rename", on_click=_rename)
        if CAN_DELETE and row2.button("Delete…", key="qsets.delete"):
            ss["qsets.confirm_delete"] = selected
        if CAN_DELETE and ss.get("qsets.confirm_delete") == selected:
            st.warning(f"Delete the question set '{ui.md(selected)}'? Runs that used it are kept.")
            confirm = st.container(horizontal=True)
            confirm.button("Yes, delete", key="qsets.delete_confirm", type="primary", on_click=_delete)
            if confirm.button("Keep it", key="qsets.delete_cancel"):
                ss.pop("qsets.confirm_delete", None)
                st.rerun()
with import_col:
    st.subheader("Import")
    st.file_uploader(
        "CSV or JSON file",
        type=["csv", "json"],
        key="qsets.import",
        help="Columns (CSV) or keys (JSON): question, ground_truth, and optionally expected (answer or decline).",
    )
    st.text_input("Save as", key="qsets.import_name", placeholder="defaults to the file name")
    st.button("Import", key="qsets.import_go", on_click=_import)
