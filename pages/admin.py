"""Admin: who may do what (the roles file) and the audit trail (who did what, when). Admins only.

The router lists this page only for admins; the facade refuses every call here for anyone else
(:mod:`rag_core.workspace_access`), so opening it by URL shows the refusal, nothing else.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from pages import _shared as ui
from rag_core.access import AuditAction, Role
from rag_core.errors import RagError

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()

st.title("Admin")
if not ws.can(Role.ADMIN):
    st.error(
        f"This page needs the admin role; {ui.md(ws.principal.label)} is a {ws.principal.role}.",
        icon=":material/lock:",
    )
    st.stop()

me = ws.principal
st.caption(
    f"You: {ui.md(me.label)} · {me.role}"
    + (f" · groups: {ui.md(', '.join(me.groups))}" if me.groups else "")
    + (
        ""
        if ui.auth_configured()
        else " · sign-in is not configured (single-user mode): roles apply once it is."
    )
)
ui.flash("admin.flash")
roles_tab, audit_tab = st.tabs(["Roles", "Audit trail"])

# --------------------------------------------------------------------------------------------
with roles_tab:
    st.markdown(
        f"Roles file: `{ui.md(ws.roles_path)}` (set `RAG_ROLES_FILE` to keep it elsewhere). "
        "**viewer** reads history, results and coverage; **analyst** also uploads documents, edits "
        "question sets and configurations, runs, labels and generates; **admin** also deletes, "
        "manages roles and reads this audit trail. Unlisted signed-in users are the `default` role."
    )
    try:
        text = ws.roles_text()
    except RagError as exc:
        st.error(ui.md(str(exc)))
        text = ""
    problem = None
    try:
        ws.role_map()
    except RagError as exc:
        problem = str(exc)
    if problem:
        st.error(
            f"{ui.md(problem)} Until it is fixed every signed-in user can only read.", icon=":material/error:"
        )
    with st.form("admin.roles_form", border=False):
        new_text = st.text_area("roles.toml", text, height=300, key="admin.roles_text")
        if st.form_submit_button(
            "Save roles", type="primary", icon=":material/save:", key="admin.roles_save"
        ):
            try:
                saved = ws.save_roles(new_text)
            except RagError as exc:
                st.error(ui.md(str(exc)), icon=":material/error:")
            else:
                ss["admin.flash"] = (
                    "success",
                    f"Roles saved: {len(saved.admins())} admin e-mail(s), {len(saved.emails)} e-mail "
                    f"entries, {len(saved.groups)} group(s), default {saved.default}. They apply from "
                    "each user's next page load.",
                )
                st.rerun()

# --------------------------------------------------------------------------------------------
with audit_tab:
    cols = st.columns([1, 2, 3])
    since = cols[0].date_input("Since", value=None, key="admin.since", format="YYYY-MM-DD")
    actor = cols[1].text_input("Who (contains)", key="admin.actor", placeholder="e.g. ana@example.org")
    actions = cols[2].multiselect("Actions", [a.value for a in AuditAction], key="admin.actions")
    try:
        entries = ws.audit_trail(
            since=since.isoformat() if isinstance(since, dt.date) else None,
            actor=actor or None,
            actions=actions or None,
            limit=2000,
        )
    except RagError as exc:
        st.error(ui.md(str(exc)))
        entries = []
    st.caption(
        f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} (newest first, at most 2,000 shown)."
    )
    frame = pd.DataFrame(
        [e.row() for e in entries], columns=["#", "When (UTC)", "Who", "Role", "Action", "Target", "Detail"]
    )
    st.dataframe(frame, hide_index=True, width="stretch", key="admin.audit_table")
    row = st.container(horizontal=True)
    row.download_button(
        "Export CSV",
        ws.export_audit("csv", entries),
        file_name="audit.csv",
        mime="text/csv",
        key="admin.export_csv",
        on_click="ignore",
        icon=":material/download:",
    )
    row.download_button(
        "Export JSON",
        ws.export_audit("json", entries),
        file_name="audit.json",
        mime="application/json",
        key="admin.export_json",
        on_click="ignore",
        icon=":material/download:",
    )
    st.caption("The audit trail is append-only: entries cannot be edited or deleted from the app or the CLI.")
