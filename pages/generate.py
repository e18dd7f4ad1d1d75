"""Generate questions from the documents with Claude, then review them before use (issue 14).

Top: pick a collection, optionally documents or sections, a number and the kinds; the cost
estimate is shown before anything is sent; Start runs the generation in the background (a
fragment polls its progress; Cancel keeps what was already written). Bottom: the review queue of
the collection — each pair with its kind, flags and source passage(s); edit, accept (into the
chosen question set, with its source links), reject, or accept all.

Without an API key the page says generation needs Claude and offers the template CSV; the queue
(e.g. filled by the CLI) can still be reviewed.

The coverage page preselects sections with ``st.session_state["generate_collection"]`` and
``["generate_sections"]`` (a list of ``(document, section path)``); they are applied once, then
removed.
"""

from __future__ import annotations

import streamlit as st

from pages import _shared as ui
from rag_core.authoring import MAX_PAIRS, QuestionKind
from rag_core.errors import RagError
from rag_core.models import SECTION_SEP

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
NEW_SET = "(a new question set)"
FLAG_LABELS = {"general_knowledge": "answerable without the documents (general knowledge)"}


def _section_label(doc: str, section: str) -> str:
    return f"{doc}{SECTION_SEP}{section}" if section else f"{doc} (no heading)"


# --- preselection from the coverage page (applied once) -------------------------------------------
collections = ui.collections()
pre_collection = ss.pop("generate_collection", None)
pre_sections = ss.pop("generate_sections", None)
if pre_collection in collections:
    ss["gen.collection"] = pre_collection
if pre_sections:
    ss["gen.documents"] = []
    ss["gen.sections"] = [_section_label(str(d), str(s)) for d, s in pre_sections]
ui.ensure_choice("gen.collection", collections)
# The form is not drawn while a generation runs; Streamlit would then drop its widgets' values.
# Re-assigning them makes them plain session values that survive until the form is drawn again.
for _key in ("gen.n", "gen.kinds", "gen.documents", "gen.sections", "gen.new_set"):
    if _key in ss:
        ss[_key] = ss[_key]
ss.setdefault("gen.n", 10)
ss.setdefault("gen.kinds", [k.value for k in QuestionKind])

st.title("Generate questions")
st.caption(
    "Claude writes question / expected-answer pairs from your policy documents. Every pair waits "
    "for your review below and keeps a link to the passage it came from."
)

top = st.columns([2, 2])
collection = top[0].selectbox("Document collection", collections, key="gen.collection")
set_names = [s.name for s in ui.question_sets()]
ui.ensure_choice("gen.into", [NEW_SET, *set_names], NEW_SET)
into_choice = top[1].selectbox(
    "Question set for accepted questions",
    [NEW_SET, *set_names],
    key="gen.into",
    help="Accepted pairs are added to this set (with their source links); new questions are also "
    "checked for near-duplicates against it.",
)
into: str | None = into_choice
if into_choice == NEW_SET:
    into = (
        top[1].text_input("New set name", key="gen.new_set", placeholder="e.g. Generated — leave") or ""
    ).strip() or None


# --- generation --------------------------------------------------------------------------------------
@st.fragment(run_every=1.0)
def live_generation(job_id: str) -> None:
    """Polls the generation once a second; when it ends, shows the outcome and refreshes the page."""
    p = ws.generation_progress(job_id)
    if p is None or p.finished:
        ss.pop("gen.job", None)
        if p is not None and p.report is not None:
            r = p.report
            ss["gen.flash"] = (
                "warning" if r.errors and not r.queued else "success",
                f"Generated {r.written} of {r.requested}: **{len(r.queued)} waiting for review**, "
                f"{r.duplicates_dropped} near-duplicates dropped, {r.declines_dropped} decline questions "
                f"dropped (the documents cover them), {r.flagged_general} flagged as general knowledge, "
                f"{r.failed} failed. Cost ${r.cost_usd:.4f} (estimated ${r.estimate.cost_usd:.4f})"
                + ("; cancelled" if r.cancelled else "")
                + (f". Error: {ui.md(r.errors[0])}" if r.errors else "."),
            )
        st.rerun(scope="app")
        return
    label = {"writing": "Writing pairs", "checking": "Checking duplicates, declines and general knowledge"}
    st.progress(
        min(1.0, p.done / max(1, p.total)), text=f"{label.get(p.phase, p.phase)}: {p.done} of {p.total}"
    )
    if p.errors:
        st.caption(f"{p.errors} failed so far")
    if ws.can_cancel_generation(job_id):
        ui.cancel_button(
            "Cancel",
            key="gen.cancel",
            cancel=lambda: ws.cancel_generation(job_id),
            done="Cancelling… pairs already written will still be checked and queued.",
            help="Stop; pairs already written are kept.",
        )


st.subheader("Generate")
if not ws.can_generate:
    st.info(
        "Generating questions needs Claude, and no Anthropic API key is configured (set "
        "ANTHROPIC_API_KEY or add it to .streamlit/secrets.toml, then reload). Meanwhile, write "
        "questions by hand: download the template, fill it in, and import it on the Question sets page.",
        icon=":material/key_off:",
    )
    st.download_button(
        "Download the template CSV",
        ws.question_template_csv(),
        file_name="questions_template.csv",
        mime="text/csv",
        key="gen.template",
        on_click="ignore",
    )
    st.page_link(ui.QSETS_PAGE, label="Go to Question sets", icon=":material/arrow_forward:")
elif ss.get("gen.job"):
    live_generation(ss["gen.job"])
elif not ui.documents(collection):
    st.info(
        f"The collection '{ui.md(collection)}' has no documents yet: upload some on the Documents page first."
    )
else:
    docs = [d.name for d in ui.documents(collection)]
    ss["gen.documents"] = [d for d in ss.get("gen.documents", []) if d in docs]
    c = st.columns([3, 3])
    chosen_docs = c[0].multiselect("Documents (all when empty)", docs, key="gen.documents")
    try:
        pairs = ws.generation_sections(collection, chosen_docs)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        pairs = []
    by_label = {_section_label(d, s): (d, s) for d, s in pairs}
    ss["gen.sections"] = [s for s in ss.get("gen.sections", []) if s in by_label]
    chosen_sections = c[1].multiselect("Sections (all when empty)", list(by_label), key="gen.sections")
    c = st.columns([1, 3])
    n = c[0].number_input("How many", min_value=1, max_value=MAX_PAIRS, step=1, key="gen.n")
    kinds = c[1].multiselect(
        "Question kinds",
        [k.value for k in QuestionKind],
        key="gen.kinds",
        format_func=lambda v: QuestionKind(v).label,
    )
    try:
        plan = ws.plan_generation(
            collection, int(n), kinds, documents=chosen_docs, sections=[by_label[s] for s in chosen_sections]
        )
        est = ws.estimate_generation(plan, into=into)
    except RagError as exc:
        st.warning(ui.md(str(exc)), icon=":material/warning:")
        plan = None
    else:
        st.markdown(
            f"**Estimated Claude usage:** {est.calls} calls"
            + (f" ({est.cached} pairs already paid for, from the cache)" if est.cached else "")
            + f" · ~{est.input_tokens:,} input + ~{est.output_tokens:,} output tokens · "
            f"**~${est.cost_usd:.4f}** ({ui.md(est.model)})"
        )
    if st.button(
        "Generate", key="gen.start", type="primary", icon=":material/auto_awesome:", disabled=plan is None
    ):
        try:
            assert plan is not None
            ss["gen.job"] = ws.start_generation(plan, into=into)
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            st.rerun()

ui.flash("gen.flash")

# --- review queue ----------------------------------------------------------------------------------
st.divider()
queue = ws.review_queue(collection)
st.subheader(f"Review queue ({len(queue)})")


def _texts(pair_id: int, question: str, answer: str) -> tuple[str, str]:
    return ss.get(f"gen.q.{pair_id}", question), ss.get(f"gen.a.{pair_id}", answer)


def _save_edit(p) -> None:  # type: ignore[no-untyped-def]
    q, a = _texts(p.id, p.question, p.expected_answer)
    if (q, a) != (p.question, p.expected_answer):
        ws.edit_generated(p.id, q, a)


def _target() -> str | None:
    """The chosen question set, read from the widgets' state (a callback runs before the script)."""
    choice = ss.get("gen.into", NEW_SET)
    if choice != NEW_SET:
        return str(choice)
    return (ss.get("gen.new_set") or "").strip() or None


def _accept(ids: list[int]) -> None:
    into = _target()
    if not into:
        ss["gen.flash"] = ("error", "Choose a question set, or type the name of a new one, before accepting.")
        return
    try:
        for p in queue:
            if p.id in ids:
                _save_edit(p)
        accepted = ws.accept_generated(ids, into)
        info = accepted.info
    except RagError as exc:
        ss["gen.flash"] = ("error", ui.md(str(exc)))
        return
    for i in ids:
        ss.pop(f"gen.q.{i}", None)
        ss.pop(f"gen.a.{i}", None)
    ss["gen.flash"] = ("warning" if accepted.kept else "success", ui.md(accepted.summary))
    if ss.get("gen.into", NEW_SET) == NEW_SET:
        ss["gen.into"] = info.name
        ss["gen.new_set"] = ""


def _reject(pair_id: int) -> None:
    try:
        ws.reject_generated([pair_id])
    except RagError as exc:
        ss["gen.flash"] = ("error", ui.md(str(exc)))
        return
    ss["gen.flash"] = ("info", f"Rejected #{pair_id}.")


def _save(pair_id: int) -> None:
    p = next((x for x in queue if x.id == pair_id), None)
    if p is None:
        return
    try:
        _save_edit(p)
    except RagError as exc:
        ss["gen.flash"] = ("error", ui.md(str(exc)))
        return
    ss["gen.flash"] = ("success", f"Saved your edit of #{pair_id}.")


if not queue:
    st.caption("Nothing waiting for review in this collection.")
else:
    st.button(
        f"Accept all ({len(queue)})",
        key="gen.accept_all",
        icon=":material/done_all:",
        on_click=_accept,
        args=([p.id for p in queue],),
        help="Add every pair below (with your edits) to the chosen question set.",
    )
    for p in queue:
        with st.container(border=True, key=f"gen-pair-{p.id}"):
            head = f"**#{p.id}** · {QuestionKind(p.kind).label}"
            if str(p.expected) == "decline":
                head += " · expected: decline"
            st.markdown(head)
            for f in p.flags:
                st.warning(f"Flag: {FLAG_LABELS.get(f, f)}", icon=":material/flag:")
            ss.setdefault(f"gen.q.{p.id}", p.question)
            ss.setdefault(f"gen.a.{p.id}", p.expected_answer)
            st.text_area("Question", key=f"gen.q.{p.id}", height=68)
            st.text_area("Expected answer", key=f"gen.a.{p.id}", height=90)
            if p.sources:
                for s in p.sources:
                    where = f"{s.document}{SECTION_SEP}{s.section}" if s.section else s.document
                    page = f", p. {s.page}" if s.page else ""
                    st.markdown(f"Source: *{ui.md(where)}{page}* (v{s.version})")
                    st.caption(ui.md(s.passage[:900] + ("…" if len(s.passage) > 900 else "")))
            else:
                st.caption(
                    "No source passage: the documents do not answer this question (verified by retrieval)."
                )
            row = st.container(horizontal=True)
            row.button("Accept", key=f"gen.accept.{p.id}", type="primary", on_click=_accept, args=([p.id],))
            row.button("Save edit", key=f"gen.save.{p.id}", on_click=_save, args=(p.id,))
            row.button("Reject", key=f"gen.reject.{p.id}", on_click=_reject, args=(p.id,))
