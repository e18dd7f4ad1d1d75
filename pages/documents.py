"""Documents: collections of policy files — upload and index (scans are OCR'd), list with versions,
preview chunks with their sections, version history, re-index, delete, test a search."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from pages import _shared as ui
from rag_core.access import Role
from rag_core.errors import RagError
from rag_core.ingest.service import IngestOutcome, cancel_message
from rag_core.models import DEFAULT_COLLECTION
from rag_core.workspace import SAMPLE_PDF

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
CAN_EDIT = ws.can(Role.ANALYST)  # upload, re-index (viewers read only)
CAN_DELETE = ws.can(Role.ADMIN)

#: What the uploader accepts: the readable types, plus old formats that get a "how to convert" message.
UPLOAD_TYPES = ["pdf", "docx", "html", "htm", "txt", "md", "doc", "odt", "rtf"]

st.title("Documents")
st.caption(
    "The policy documents the assistant answers from — PDF, Word (.docx), HTML pages, TXT or "
    "Markdown — grouped in collections (one per organisation or policy area). A run searches one "
    "collection only. Scanned PDF pages are read with OCR."
)
ui.flash("docs.flash")


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------
def _create_collection() -> None:
    name = (ss.get("docs.new_collection") or "").strip()
    try:
        created = ws.create_collection(name)
    except RagError as exc:
        ss["docs.flash"] = ("error", ui.md(str(exc)))
        return
    ss["docs.collection"] = created
    ss["docs.new_collection"] = ""
    ss["docs.flash"] = ("success", f"Collection **{ui.md(created)}** is ready: upload its documents below.")


collections = ui.collections()
ui.ensure_choice("docs.collection", collections, default=DEFAULT_COLLECTION)
top = st.columns([3, 2], vertical_alignment="bottom")
collection: str = top[0].selectbox(
    "Collection",
    collections,
    key="docs.collection",
    persist_state="session",
    help="Documents belong to one collection; question sets and runs can be bound to one.",
)
with top[1].popover("New collection", icon=":material/add:"):
    st.text_input("Name", key="docs.new_collection", placeholder="e.g. Harbour Lane Housing")
    st.button("Create", key="docs.create_collection", on_click=_create_collection)


def _outcome_line(o: dict) -> tuple[str, str]:
    """(kind, markdown) for one file's outcome (a dict of IngestOutcome fields)."""
    if o["status"] == "error":
        return "error", ui.md(o["error"] or f"{o['name']}: could not be indexed.")
    if o["status"] == "cancelled":
        return "warning", ui.md(o["error"] or f"{o['name']}: cancelled — nothing of it was indexed.")
    verb = {
        "added": "indexed",
        "replaced": "re-indexed (content changed)",
        "unchanged": "already indexed, unchanged",
    }.get(o["status"], o["status"])
    pages = f"{o['pages']} page{'s' if o['pages'] != 1 else ''}"
    extra = f", {o['ocr_pages']} read by OCR" if o.get("ocr_pages") else ""
    changed = o.get("sections_changed") or []
    change = ""
    if o["status"] == "replaced":
        shown = ", ".join(ui.md(c or "(before the first heading)") for c in changed[:5])
        change = f" · sections changed: {shown}{', …' if len(changed) > 5 else ''}" if changed else ""
        n = o.get("stale_questions") or 0
        if n:  # issue 14: see the Question sets page
            change += f" · {n} question{'s' if n != 1 else ''} to review: the policy changed"
    return "ok", (
        f"**{ui.md(o['name'])}** — {verb} (v{o.get('version', 1)}): {o['chunks']} chunks from {pages}{extra} "
        f"in {o['seconds']:.1f} s{change}"
    )


def _show(kind: str, text: str, ok=st.success) -> None:
    {"error": st.error, "warning": st.warning}.get(kind, ok)(text)


def _outcome_dict(outcome: IngestOutcome) -> dict:
    return {
        "name": outcome.name,
        "status": outcome.status,
        "chunks": outcome.chunks,
        "pages": outcome.pages,
        "seconds": outcome.seconds,
        "error": outcome.error,
        "version": outcome.version,
        "ocr_pages": outcome.ocr_pages,
        "sections_changed": list(outcome.sections_changed),
        "stale_questions": outcome.stale_questions,
    }


def _start_index(files: list[tuple[str, int, Callable[[], bytes]]]) -> None:
    """Refuse files too large to index from their size alone (before reading them), then index the
    others in the background; the live view below shows progress and a Cancel button."""
    refused: list[dict] = []
    keep: list[tuple[str, bytes]] = []
    for name, size, read in files:
        problem = ws.upload_problem(name, size)
        if problem is not None:
            refused.append(_outcome_dict(IngestOutcome(name[:120], "error", error=problem)))
        else:
            keep.append((name, read()))
    ss["docs.refused"] = refused
    ss.pop("docs.last_outcomes", None)
    if keep:
        ss["docs.ingest_job"] = ws.start_ingest(keep, collection)
    else:
        _finish([])


def _finish(outcomes: list[dict]) -> None:
    ss["docs.last_outcomes"] = (ss.pop("docs.refused", None) or []) + outcomes
    ss["docs.show_outcomes"] = True
    ss.pop("docs.ingest_job", None)


@st.fragment(run_every=0.5)
def live_ingest(job_id: str) -> None:
    """Polls the background ingest twice a second: progress, outcomes so far, Cancel; when it ends,
    keeps the outcomes and redraws the page (document list, sidebar) once."""
    job = ws.ingest_job(job_id)
    if job is None or job.finished:
        _finish([_outcome_dict(o) for o in job.outcomes] if job is not None else [])
        st.rerun(scope="app")
        return
    n = len(job.names)
    with st.container(border=True, key="docs.live"):
        st.markdown(f"**Indexing {n} file{'s' if n != 1 else ''} into {ui.md(job.collection)}…**")
        st.progress(job.fraction, text=ui.md(job.text))
        for o in job.outcomes:
            kind, text = _outcome_line(_outcome_dict(o))
            _show(kind, text)
        cancelling = job.cancel_requested
        if not cancelling:
            cancelling = ui.cancel_button(
                "Cancel",
                key="docs.cancel",
                cancel=lambda: ws.cancel_ingest(job_id),
                done="Cancelling the upload…",
                help="Stop indexing. The file being read is not indexed (the collection stays as it "
                "was); files already indexed in this upload are kept.",
            )
        if cancelling:
            st.caption("Cancelling… the file being read will not be indexed.")


# --------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------
with st.container(border=True):
    st.subheader(f"Add documents to {collection}")
    uploaded = st.file_uploader(
        "Policy files",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="docs.upload",
        disabled=not CAN_EDIT,
        help="Several files at once. A file with the same name in this collection becomes its next "
        "version (the old version stays in the history).",
    )
    if not ws.ocr_available():
        st.caption(
            f":material/warning: Scanned PDFs cannot be read here yet: {ui.md(ws.ocr_install_hint())}."
        )
    job_id: str | None = ss.get("docs.ingest_job")
    row = st.container(horizontal=True)
    if not CAN_EDIT:
        st.caption("Uploading needs the analyst role; you can read and search the documents.")
    index_clicked = row.button(
        "Index files",
        key="docs.index",
        type="primary",
        disabled=not uploaded or not CAN_EDIT or job_id is not None,
    )
    sample_clicked = row.button(
        "Index the sample handbook",
        key="docs.sample",
        help="Northwind staff handbook, to try the app without your own files.",
        disabled=not CAN_EDIT or job_id is not None,
    )
    if index_clicked and job_id is None:
        _start_index([(f.name, f.size, f.getvalue) for f in uploaded or []])
        st.rerun()
    elif sample_clicked and job_id is None:
        _start_index([(SAMPLE_PDF.name, SAMPLE_PDF.stat().st_size, SAMPLE_PDF.read_bytes)])
        st.rerun()
    if job_id is not None:
        live_ingest(job_id)
    outcomes = ss.get("docs.last_outcomes") or []
    if outcomes and ss.pop("docs.show_outcomes", False):
        failed = sum(o["status"] == "error" for o in outcomes)
        stopped = cancel_message([IngestOutcome(**{**o, "sections_changed": ()}) for o in outcomes])
        if stopped:
            st.warning(ui.md(stopped), icon=":material/stop_circle:")
        else:
            st.markdown(
                f"**Indexed {len(outcomes) - failed} of {len(outcomes)} files**"
                + (f" — {failed} could not be read" if failed else "")
            )
        for o in outcomes:
            kind, text = _outcome_line(o)
            _show(kind, text)
    elif outcomes:
        with st.expander("Last indexing", expanded=False):
            for o in outcomes:
                kind, text = _outcome_line(o)
                _show(kind, text, ok=st.markdown)

# --------------------------------------------------------------------------------------------
# Indexed documents
# --------------------------------------------------------------------------------------------
docs = ui.documents(collection)
st.subheader(f"Documents in {collection}")
if not docs:
    st.info(
        "No documents indexed yet in this collection — upload policy files above, or index the sample handbook."
    )
    if (
        CAN_DELETE
        and collection != DEFAULT_COLLECTION
        and st.button("Delete this empty collection", key="docs.delete_collection")
    ):
        try:
            ws.delete_collection(collection)
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            ss.pop("docs.collection", None)
            st.rerun()
    st.stop()

table = pd.DataFrame(
    {
        "Document": [d.name for d in docs],
        "Version": [d.version for d in docs],
        "Type": [d.format.upper() or "—" for d in docs],
        "Pages": [d.pages for d in docs],
        "OCR pages": [d.ocr_pages for d in docs],
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
    column_config={
        "Version": st.column_config.NumberColumn("Version", format="v%d", width="small"),
        "OCR pages": st.column_config.NumberColumn(
            "OCR pages", help="Pages without a text layer, read by OCR", width="small"
        ),
        "Added at": st.column_config.DatetimeColumn("Added at (UTC)", format="YYYY-MM-DD HH:mm"),
    },
)
st.caption(f"{len(docs)} document{'s' if len(docs) != 1 else ''} · {sum(d.chunks for d in docs)} chunks")

names = [d.name for d in docs]
ui.ensure_choice("docs.selected", names)
manage, search = st.tabs(["Manage and preview", "Search the index"])

with manage:
    selected = st.selectbox("Document", names, key="docs.selected", persist_state="session")
    row = st.container(horizontal=True)
    if CAN_EDIT and row.button(
        "Re-index", key="docs.reindex", help="Parse the stored original again and replace its chunks."
    ):
        with st.spinner(f"Re-indexing {selected}…"):
            outcome = ws.reindex_document(selected, collection)
        if outcome.status == "error":
            st.error(ui.md(outcome.error or "Re-indexing failed."))
        else:
            st.success(f"Re-indexed **{ui.md(outcome.name)}**: {outcome.chunks} chunks.")
    if CAN_DELETE and row.button("Delete…", key="docs.delete"):
        ss["docs.confirm_delete"] = selected
    if CAN_DELETE and ss.get("docs.confirm_delete") == selected:
        st.warning(
            f"Delete **{ui.md(selected)}** from {ui.md(collection)}? Past runs keep their answers, and "
            "its version history is kept."
        )
        confirm = st.container(horizontal=True)
        if confirm.button("Yes, delete", key="docs.delete_confirm", type="primary"):
            try:
                removed = ws.delete_document(selected, collection)
            except RagError as exc:
                st.error(ui.md(str(exc)))
            else:
                ss.pop("docs.confirm_delete", None)
                ss["docs.flash"] = ("success", f"Deleted {ui.md(selected)} ({removed} chunks).")
                st.rerun()
        if confirm.button("Keep it", key="docs.delete_cancel"):
            ss.pop("docs.confirm_delete", None)
            st.rerun()

    versions = ui.document_versions(selected, collection)
    if versions:
        with st.expander(
            f"Version history ({len(versions)} version{'s' if len(versions) != 1 else ''})",
            expanded=len(versions) > 1,
        ):
            st.dataframe(
                pd.DataFrame(
                    {
                        "Version": [v.version for v in versions],
                        "Added at": pd.to_datetime(
                            [v.added_at for v in versions], utc=True, errors="coerce", format="ISO8601"
                        ),
                        "sha256": [v.sha256[:12] for v in versions],
                        "Chunks": [v.chunks for v in versions],
                        "Pages": [v.pages for v in versions],
                        "Sections changed": [
                            ", ".join(c or "(before the first heading)" for c in v.sections_changed)
                            if v.sections_changed
                            else ("first version" if v.version == 1 else "—")
                            for v in versions
                        ],
                    }
                ),
                hide_index=True,
                width="stretch",
                key="docs.versions",
                column_config={
                    "Version": st.column_config.NumberColumn(format="v%d", width="small"),
                    "Added at": st.column_config.DatetimeColumn("Added at (UTC)", format="YYYY-MM-DD HH:mm"),
                    "Sections changed": st.column_config.TextColumn(width="large"),
                },
            )

    try:
        doc_chunks = ui.chunks(selected, collection)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        doc_chunks = []
    st.markdown(f"**Chunks of {ui.md(selected)}** ({len(doc_chunks)})")
    if doc_chunks:
        st.dataframe(
            pd.DataFrame(
                {
                    "#": [c.position + 1 for c in doc_chunks],
                    "Section": [c.section or "—" for c in doc_chunks],
                    "Page": pd.array([c.page or None for c in doc_chunks], dtype="Int64"),
                    "OCR": [c.ocr for c in doc_chunks],
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
                "Section": st.column_config.TextColumn(width="medium"),
                "Page": st.column_config.NumberColumn(width="small"),
                "OCR": st.column_config.CheckboxColumn(width="small", help="Read by OCR from a scanned page"),
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
                hits = ws.search(query, k, collection)
        except RagError as exc:
            st.error(ui.md(str(exc)))
            hits = []
        if not hits:
            st.info("No chunks matched.")
        for i, hit in enumerate(hits, 1):
            with st.container(border=True):
                ocr = " · OCR" if hit.chunk.ocr else ""
                st.markdown(f"**{i}. {ui.md(hit.chunk.citation)}** · score **{hit.score:.3f}**{ocr}")
                st.markdown(ui.md(hit.chunk.text).replace("\n", "  \n"))  # keep headings, items, rows apart
    else:
        st.caption(
            f"Type a question an employee might ask to see which chunks of {ui.md(collection)} retrieval returns."
        )
