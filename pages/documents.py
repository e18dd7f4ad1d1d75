"""Documents: upload and index policy files, see what is indexed, preview chunks, test retrieval."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import _shared as ui
from rag_core.errors import RagError
from rag_core.ingest.service import IngestOutcome
from rag_core.workspace import SAMPLE_PDF

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()

st.title("Documents")
st.caption(
    "The policy documents the assistant answers from: PDF, TXT or Markdown. Scanned PDFs "
    "(images without text) cannot be read — export them with text first."
)
ui.flash("docs.flash")


def _outcome_line(o: dict) -> tuple[str, str]:
    """(kind, markdown) for one file's outcome (a dict of IngestOutcome fields)."""
    if o["status"] == "error":
        return "error", ui.md(o["error"] or f"{o['name']}: could not be indexed.")
    verb = {
        "added": "indexed",
        "replaced": "re-indexed (content changed)",
        "unchanged": "already indexed, unchanged",
    }.get(o["status"], o["status"])
    return "ok", (
        f"**{ui.md(o['name'])}** — {verb}: {o['chunks']} chunks from {o['pages']} "
        f"page{'s' if o['pages'] != 1 else ''} in {o['seconds']:.1f} s"
    )


def _index(files: list[tuple[str, bytes]]) -> None:
    """Index files with per-file progress; keeps the outcomes in session_state for later reruns."""
    n = len(files)
    bar = st.progress(0.0, text=f"Indexing {n} file{'s' if n != 1 else ''}…")
    outcomes: list[dict] = []
    with st.status(f"Indexing {n} file{'s' if n != 1 else ''}…", expanded=True) as status:

        def on_start(i: int, name: str) -> None:
            bar.progress(i / n, text=f"Indexing {name} ({i + 1} of {n})…")

        def on_done(i: int, outcome: IngestOutcome) -> None:
            o = {
                "name": outcome.name,
                "status": outcome.status,
                "chunks": outcome.chunks,
                "pages": outcome.pages,
                "seconds": outcome.seconds,
                "error": outcome.error,
            }
            outcomes.append(o)
            kind, text = _outcome_line(o)
            (st.error if kind == "error" else st.success)(text)
            bar.progress((i + 1) / n, text=f"{i + 1} of {n} done")

        ws.ingest_files(files, on_start=on_start, on_done=on_done)
        failed = sum(o["status"] == "error" for o in outcomes)
        label = f"Indexed {n - failed} of {n} files" + (f" — {failed} could not be read" if failed else "")
        status.update(label=label, state="error" if failed else "complete", expanded=bool(failed))
    bar.empty()
    ss["docs.last_outcomes"] = outcomes


# --------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("Add documents")
    uploaded = st.file_uploader(
        "Policy files",
        type=["pdf", "txt", "md"],
        accept_multiple_files=True,
        key="docs.upload",
        help="Several files at once. A file with the same name replaces the indexed one.",
    )
    row = st.container(horizontal=True)
    index_clicked = row.button("Index files", key="docs.index", type="primary", disabled=not uploaded)
    sample_clicked = row.button(
        "Index the sample handbook",
        key="docs.sample",
        help="Northwind staff handbook, to try the app without your own files.",
    )
    files = (
        [(f.name, f.getvalue()) for f in uploaded or []]
        if index_clicked
        else [(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())]
        if sample_clicked
        else []
    )
    if files:
        _index(files)
        ss["docs.show_outcomes"] = True
        st.rerun()  # redraw everything (sidebar hints, tables) with the new documents
    outcomes = ss.get("docs.last_outcomes") or []
    if outcomes and ss.pop("docs.show_outcomes", False):
        failed = sum(o["status"] == "error" for o in outcomes)
        st.markdown(
            f"**Indexed {len(outcomes) - failed} of {len(outcomes)} files**"
            + (f" — {failed} could not be read" if failed else "")
        )
        for o in outcomes:
            kind, text = _outcome_line(o)
            (st.error if kind == "error" else st.success)(text)
    elif outcomes:
        with st.expander("Last indexing", expanded=False):
            for o in outcomes:
                kind, text = _outcome_line(o)
                (st.error if kind == "error" else st.markdown)(text)

# --------------------------------------------------------------------------------------------
# Indexed documents
# --------------------------------------------------------------------------------------------
docs = ui.documents()
st.subheader("Indexed documents")
if not docs:
    st.info("No documents indexed yet — upload policy files above, or index the sample handbook.")
    st.stop()

table = pd.DataFrame(
    {
        "Document": [d.name for d in docs],
        "Pages": [d.pages for d in docs],
        "Chunks": [d.chunks for d in docs],
        "Size (KB)": [round(d.size_bytes / 1024, 1) for d in docs],
        "Added at": pd.to_datetime([d.added_at for d in docs], utc=True, errors="coerce", format="ISO8601"),
    }
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    key="docs.table",
    column_config={"Added at": st.column_config.DatetimeColumn("Added at (UTC)", format="YYYY-MM-DD HH:mm")},
)
st.caption(f"{len(docs)} document{'s' if len(docs) != 1 else ''} · {sum(d.chunks for d in docs)} chunks")

names = [d.name for d in docs]
ui.ensure_choice("docs.selected", names)
manage, search = st.tabs(["Manage and preview", "Search the index"])

with manage:
    selected = st.selectbox("Document", names, key="docs.selected", persist_state="session")
    row = st.container(horizontal=True)
    if row.button(
        "Re-index", key="docs.reindex", help="Parse the stored original again and replace its chunks."
    ):
        with st.spinner(f"Re-indexing {selected}…"):
            outcome = ws.reindex_document(selected)
        if outcome.status == "error":
            st.error(ui.md(outcome.error or "Re-indexing failed."))
        else:
            st.success(f"Re-indexed **{ui.md(outcome.name)}**: {outcome.chunks} chunks.")
    if row.button("Delete…", key="docs.delete"):
        ss["docs.confirm_delete"] = selected
    if ss.get("docs.confirm_delete") == selected:
        st.warning(f"Delete **{ui.md(selected)}** from the index? Past runs keep their answers.")
        confirm = st.container(horizontal=True)
        if confirm.button("Yes, delete", key="docs.delete_confirm", type="primary"):
            try:
                removed = ws.delete_document(selected)
            except RagError as exc:
                st.error(ui.md(str(exc)))
            else:
                ss.pop("docs.confirm_delete", None)
                ss["docs.flash"] = ("success", f"Deleted {ui.md(selected)} ({removed} chunks).")
                st.rerun()
        if confirm.button("Keep it", key="docs.delete_cancel"):
            ss.pop("docs.confirm_delete", None)
            st.rerun()

    try:
        doc_chunks = ui.chunks(selected)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        doc_chunks = []
    st.markdown(f"**Chunks of {ui.md(selected)}** ({len(doc_chunks)})")
    if doc_chunks:
        st.dataframe(
            pd.DataFrame(
                {
                    "#": [c.position + 1 for c in doc_chunks],
                    "Page": [c.page for c in doc_chunks],
                    "Characters": [len(c.text) for c in doc_chunks],
                    "Text": [c.text for c in doc_chunks],
                }
            ),
            hide_index=True,
            width="stretch",
            height=360,
            key="docs.chunks",
            column_config={
                "#": st.column_config.NumberColumn(width="small"),
                "Page": st.column_config.NumberColumn(width="small"),
                "Characters": st.column_config.NumberColumn(width="small"),
                "Text": st.column_config.TextColumn("Text", width="large"),
            },
        )
    else:
        st.caption("No chunks found for this document in the index; try Re-index.")

with search:
    ss.setdefault("docs.search_k", 4)
    q1, q2 = st.columns([4, 1])
    query = q1.text_input(
        "Test query",
        key="docs.search_query",
        persist_state="session",
        placeholder="e.g. How many days of holiday can I carry over?",
    )
    k = q2.slider("Chunks", 1, 10, key="docs.search_k", persist_state="session")
    if query.strip():
        try:
            with st.spinner("Searching…"):
                hits = ws.search(query, k)
        except RagError as exc:
            st.error(ui.md(str(exc)))
            hits = []
        if not hits:
            st.info("No chunks matched.")
        for i, hit in enumerate(hits, 1):
            with st.container(border=True):
                st.markdown(
                    f"**{i}. {ui.md(hit.chunk.source)}** · page {hit.chunk.page} · score **{hit.score:.3f}**"
                )
                st.markdown(ui.md(hit.chunk.text))
    else:
        st.caption("Type a question an employee might ask to see which chunks retrieval returns.")
