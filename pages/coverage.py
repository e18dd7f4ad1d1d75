"""Coverage: which documents and sections a question set tests, how the latest run did on them,
which sections no question tests, and which questions a new policy version made stale."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages import _stale
from rag_core.coverage.report import CoverageReport
from rag_core.errors import RagError

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()

#: The question-generation page (issue 14, built separately): the "generate" action needs it.
GENERATE_PAGE = "pages/generate.py"
ORIGINS = {
    "generated": "generated from it",
    "facts": "holds its key facts",
    "matched": "best match",
    "none": "no passage found",
    "decline": "— (to decline)",
}


@st.cache_data(ttl=600, max_entries=16, show_spinner="Linking questions to the policy passages…")
def _coverage(data_dir: str, ver: str, set_name: str, collection: str) -> CoverageReport:
    return ui.workspace().coverage(set_name, collection)


def _generate(collection: str, sections: list[tuple[str, str]]) -> None:
    """The "generate questions for these" contract: collection + (document, section) pairs."""
    ss["generate_collection"] = collection
    ss["generate_sections"] = [(d, s) for d, s in sections]


st.title("Coverage")
st.caption(
    "Which parts of the policies a question set tests. Each question is linked to the passages its "
    "expected answer rests on — the passage it was generated from, else the passage holding its key "
    "facts, else the best match — and counted in that passage's section."
)
ui.flash("coverage.flash")

sets = [s.name for s in ui.question_sets()]
if not sets:
    st.info("No question sets yet — create one on the Question sets page.")
    st.stop()
bound = {s.name: s.collection for s in ui.question_sets()}
collections = ui.collections()
cols = st.columns(2)
ui.ensure_choice("coverage.set", sets)
set_name: str = cols[0].selectbox("Question set", sets, key="coverage.set", persist_state="session")
default_collection = bound.get(set_name) or collections[0]
if ss.get("coverage.collection_for") != set_name or ss.get("coverage.collection") not in collections:
    ss["coverage.collection"] = default_collection if default_collection in collections else collections[0]
    ss["coverage.collection_for"] = set_name
collection: str = cols[1].selectbox("Document collection", collections, key="coverage.collection")

if not ui.documents(collection):
    st.info(f"The collection '{ui.md(collection)}' has no documents yet — upload them on the Documents page.")
    st.stop()
try:
    report = _coverage(str(ws.settings.data_dir), ws.version(), set_name, collection)
except RagError as exc:
    st.error(ui.md(str(exc)), icon=":material/error:")
    st.stop()

m = st.columns(3)
m[0].metric("Sections tested", f"{report.covered} of {report.total}")
m[1].metric("Latest run", f"#{report.run_id}" if report.run_id is not None else "none yet")
m[2].metric("Questions to review", len(report.stale_questions))
with st.container(key="coverage.map"):
    ui.plot(ws.coverage_figure(report), key="coverage.heatmap")
st.caption(
    "Colour: questions testing the section (white: none). Cell: questions · how many of them the latest run "
    "of this set on this collection answered correctly · stale ⚠. Hover for the question numbers."
)

st.subheader("Untested sections")
untested = report.untested
if not untested:
    st.success("Every section is tested by at least one question.")
else:
    st.dataframe(
        pd.DataFrame({"Document": [s.document for s in untested], "Section": [s.label for s in untested]}),
        hide_index=True,
        width="stretch",
        key="coverage.untested",
    )
    pairs = [(s.document, s.section) for s in untested]
    if st.button(
        f"Generate questions for these {len(pairs)} sections",
        key="coverage.generate",
        icon=":material/auto_awesome:",
        help=None
        if ws.can_generate
        else "Generating questions needs Claude (an Anthropic API key); without one the Generate "
        "questions page offers a template CSV to write them by hand.",
    ):
        _generate(collection, pairs)
        st.switch_page(GENERATE_PAGE)
    if not ws.can_generate:
        st.caption(
            "No API key: generating questions needs Claude. Write questions for these sections on the "
            "Question sets page, or start from the template CSV on the Generate questions page."
        )

st.subheader("Questions")
st.dataframe(
    pd.DataFrame(
        {
            "Q": [f"Q{q.number}" for q in report.questions],
            "Question": [q.question for q in report.questions],
            "Linked by": [ORIGINS.get(q.origin, q.origin) for q in report.questions],
            "Sections": [
                " · ".join(f"{d} › {s or '(before the first heading)'}" for d, s in q.sections)
                for q in report.questions
            ],
            "Latest": [{True: "✓", False: "✗", None: "—"}[q.correct] for q in report.questions],
            "Policy": [f"⚠ {_stale.FLAG}" if q.stale else "" for q in report.questions],
        }
    ),
    hide_index=True,
    width="stretch",
    key="coverage.questions",
    column_config={"Question": st.column_config.TextColumn(width="large")},
)
_stale.render(set_name, key="coverage.stale", flash_key="coverage.flash", edit_hint=False)
