"""Assistant configurations: create, clone, edit (every save is a new version), diff, import/export.

A configuration is what an analyst can change about the assistant (answer model, prompts,
temperature, max tokens, top-k, retrieval, chunking). "default" is the app's settings and is
read-only; runs and sweeps pin an exact version.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from rag_core.access import Role
from rag_core.errors import RagError
from rag_core.experiment import CONFIG_FIELDS, DEFAULT_CONFIG_NAME, ConfigVersion
from rag_core.vocab import Retrieval

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
CAN_EDIT = ws.can(Role.ANALYST)  # viewers read and export only

st.title("Assistant configurations")
st.caption(
    "A configuration is everything you can change about the assistant. Saving an edit creates a new "
    "version; runs and sweeps record the exact version they used. **default** is the app's own settings "
    "(read-only): clone it to try something else."
)
ui.flash("configs.flash")

try:
    configs = ui.configs()
except RagError as exc:
    st.error(ui.md(str(exc)))
    st.stop()
names = [c.name for c in configs]
latest = {c.name: c for c in configs}
if ss.get("configs.select_next") in names:  # set by clone/import before the selectbox is drawn
    ss["configs.name"] = ss.pop("configs.select_next")
ui.ensure_choice("configs.name", names, default=DEFAULT_CONFIG_NAME)


def _label(name: str) -> str:
    c = latest[name]
    return f"{name} (v{c.version})"


overview = pd.DataFrame(
    {
        "Configuration": [c.name for c in configs],
        "Version": [c.version for c in configs],
        "Answer model": [c.config.answer_model for c in configs],
        "Top-k": [c.config.top_k for c in configs],
        "Retrieval": [str(c.config.retrieval) for c in configs],
        "Chunks": [f"{c.config.chunk_size} / {c.config.chunk_overlap}" for c in configs],
        "Temperature": [c.config.temperature for c in configs],
        "Saved (UTC)": [c.created_at[:16].replace("T", " ") for c in configs],
    }
)
st.dataframe(overview, hide_index=True, width="stretch", key="configs.table")

name = st.selectbox("Configuration", names, key="configs.name", format_func=_label)
current: ConfigVersion = latest[name]
readonly = name == DEFAULT_CONFIG_NAME

edit_tab, versions_tab, diff_tab, files_tab = st.tabs(["Edit", "Versions", "Compare", "Import / export"])

# --------------------------------------------------------------------------------------------
# Edit (a new version on save), clone, delete
# --------------------------------------------------------------------------------------------
with edit_tab:
    cfg = current.config
    k = f"configs.f.{current.name}.{current.version}."  # new widgets (fresh values) per version
    if readonly:
        st.info(
            "**default** follows the app's settings (RAG_ANSWER_MODEL, RAG_TOP_K, RAG_CHUNK_SIZE…). "
            "Clone it below to change something.",
            icon=":material/lock:",
        )
    if ws.settings.default_backend == "offline":
        st.caption(
            "Offline runs use only top-k, retrieval and chunking: the extractive answerer has no model, "
            "prompt or temperature."
        )
    with st.form("configs.form", border=True):
        c1, c2 = st.columns(2)
        values: dict[str, Any] = {}
        help_ = {f.name: f.help for f in CONFIG_FIELDS}
        with c1:
            values["answer_model"] = st.text_input(
                "Answer model",
                cfg.answer_model,
                key=k + "answer_model",
                disabled=readonly or not CAN_EDIT,
                help=help_["answer_model"],
            )
            values["temperature"] = st.number_input(
                "Temperature (empty = the model's default)",
                min_value=0.0,
                max_value=1.0,
                value=cfg.temperature,
                step=0.1,
                key=k + "temperature",
                disabled=readonly or not CAN_EDIT,
                help=help_["temperature"],
            )
            values["max_tokens"] = st.number_input(
                "Max tokens",
                1,
                64_000,
                cfg.max_tokens,
                key=k + "max_tokens",
                disabled=readonly or not CAN_EDIT,
                help=help_["max_tokens"],
            )
        with c2:
            values["top_k"] = st.number_input(
                "Top-k (passages per question)",
                1,
                50,
                cfg.top_k,
                key=k + "top_k",
                disabled=readonly or not CAN_EDIT,
                help=help_["top_k"],
            )
            values["retrieval"] = st.radio(
                "Retrieval",
                [r.value for r in Retrieval],
                index=[r.value for r in Retrieval].index(str(cfg.retrieval)),
                key=k + "retrieval",
                horizontal=True,
                disabled=readonly or not CAN_EDIT,
                help=help_["retrieval"],
            )
            cc1, cc2 = st.columns(2)
            values["chunk_size"] = cc1.number_input(
                "Chunk size",
                100,
                20_000,
                cfg.chunk_size,
                step=50,
                key=k + "chunk_size",
                disabled=readonly or not CAN_EDIT,
                help=help_["chunk_size"] + " Another chunk size builds its own index on first use.",
            )
            values["chunk_overlap"] = cc2.number_input(
                "Chunk overlap",
                0,
                19_999,
                cfg.chunk_overlap,
                step=10,
                key=k + "chunk_overlap",
                disabled=readonly or not CAN_EDIT,
                help=help_["chunk_overlap"],
            )
        values["system_prompt"] = st.text_area(
            "System prompt",
            cfg.system_prompt,
            height=220,
            key=k + "system_prompt",
            disabled=readonly or not CAN_EDIT,
            help=help_["system_prompt"],
        )
        values["instructions"] = st.text_area(
            "Answer instructions",
            cfg.instructions,
            height=80,
            key=k + "instructions",
            disabled=readonly or not CAN_EDIT,
            help=help_["instructions"],
        )
        note = st.text_input(
            "What did you change? (version note, optional)", key=k + "note", disabled=readonly or not CAN_EDIT
        )
        saved = st.form_submit_button(
            "Save as a new version",
            type="primary",
            disabled=readonly or not CAN_EDIT,
            icon=":material/save:",
            key="configs.save",
        )
    if saved and not readonly:
        try:
            out = ws.save_config(name, values, note=note)
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            if out.version == current.version:
                ss["configs.flash"] = (
                    "info",
                    f"No field changed: **{ui.md(name)}** stays at v{out.version}.",
                )
            else:
                ss["configs.flash"] = ("success", f"Saved **{ui.md(out.label)}**.")
            st.rerun()

    st.markdown("##### Clone")
    row = st.container(horizontal=True, vertical_alignment="bottom")
    new_name = row.text_input("Name of the copy", key="configs.clone_name", placeholder=f"{name} copy")
    if row.button("Clone", key="configs.clone", icon=":material/content_copy:", disabled=not CAN_EDIT):
        try:
            cv = ws.clone_config(name, new_name or f"{name} copy")
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            ss["configs.select_next"] = cv.name
            ss["configs.flash"] = ("success", f"Created **{ui.md(cv.label)}** from {ui.md(current.label)}.")
            st.rerun()
    if not readonly and ws.can(Role.ADMIN):
        if st.button("Delete…", key="configs.delete", icon=":material/delete:"):
            ss["configs.confirm_delete"] = name
        if ss.get("configs.confirm_delete") == name:
            st.warning(f"Delete every version of **{ui.md(name)}**? Runs that used it keep their copy.")
            if st.button(f"Yes, delete {name}", key="configs.delete_confirm", type="primary"):
                ws.delete_config(name)
                ss.pop("configs.confirm_delete", None)
                ss.pop("configs.name", None)
                ss["configs.flash"] = ("success", f"Deleted {ui.md(name)}.")
                st.rerun()

# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------
with versions_tab:
    versions = ui.config_versions(name)
    if versions:
        prev = {v.version: versions[i - 1] for i, v in enumerate(versions) if i > 0}
        st.dataframe(
            pd.DataFrame(
                {
                    "Version": [v.version for v in versions],
                    "Saved (UTC)": [v.created_at[:16].replace("T", " ") for v in versions],
                    "Note": [v.note for v in versions],
                    "Changed": [
                        ", ".join(c.label for c in ws.config_changes(prev[v.version], v))
                        if v.version in prev
                        else "—"
                        for v in versions
                    ],
                }
            ).iloc[::-1],
            hide_index=True,
            width="stretch",
            key="configs.versions",
        )

# --------------------------------------------------------------------------------------------
# Compare two configurations (or versions)
# --------------------------------------------------------------------------------------------
with diff_tab:
    options = [f"{v.name}@{v.version}" for n in names for v in ui.config_versions(n)]
    ui.ensure_choice(
        "configs.diff_a", options, default=f"{DEFAULT_CONFIG_NAME}@{latest[DEFAULT_CONFIG_NAME].version}"
    )
    ui.ensure_choice("configs.diff_b", options, default=f"{current.name}@{current.version}")
    c1, c2 = st.columns(2)
    a_ref = c1.selectbox("From", options, key="configs.diff_a")
    b_ref = c2.selectbox("To", options, key="configs.diff_b")
    if a_ref and b_ref:
        a_name, _, a_ver = a_ref.rpartition("@")
        b_name, _, b_ver = b_ref.rpartition("@")
        a = ws.config(a_name, int(a_ver))
        b = ws.config(b_name, int(b_ver))
        changes = ws.config_changes(a, b)
        if not changes:
            st.success(f"{ui.md(a.label)} and {ui.md(b.label)} are identical.")
        else:
            st.dataframe(
                pd.DataFrame(
                    {
                        "Field": [c.label for c in changes],
                        a.label: ["(text, see below)" if c.text_diff else str(c.before) for c in changes],
                        b.label: ["(text, see below)" if c.text_diff else str(c.after) for c in changes],
                    }
                ),
                hide_index=True,
                width="stretch",
                key="configs.diff_table",
            )
            for c in changes:
                if c.text_diff:
                    st.markdown(f"**{ui.md(c.label)}**")
                    st.code("\n".join(c.text_diff), language="diff")

# --------------------------------------------------------------------------------------------
# Import / export
# --------------------------------------------------------------------------------------------
with files_tab:
    st.download_button(
        f"Export {name} (JSON)",
        ws.export_configs([name]),
        file_name=f"config-{name.replace(' ', '_')}.json",
        mime="application/json",
        key="configs.export",
        on_click="ignore",
        icon=":material/download:",
    )
    st.download_button(
        "Export all (JSON)",
        ws.export_configs(names),
        file_name="configs.json",
        mime="application/json",
        key="configs.export_all",
        on_click="ignore",
        icon=":material/download:",
    )
    upload = st.file_uploader(
        "Import configurations (JSON: one {name, config} object or a list; missing fields keep default's values)",
        type=["json"],
        key="configs.upload",
    )
    if upload is not None and st.button(
        "Import", key="configs.import", icon=":material/upload:", disabled=not CAN_EDIT
    ):
        try:
            done = ws.import_configs(upload.name, upload.getvalue())
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            ss["configs.select_next"] = done[0].name
            ss["configs.flash"] = ("success", "Imported " + ", ".join(ui.md(c.label) for c in done) + ".")
            st.rerun()
