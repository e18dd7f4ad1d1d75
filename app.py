"""HR Policy RAG Evaluation — the router (``streamlit run app.py``).

Routes to the pages and draws the sidebar (mode, key status, data location, first-run hints, a
run in progress). Everything else lives in ``pages/`` (UI) and ``rag_core/`` (logic).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import streamlit as st

from pages import _shared as ui
from rag_core.access import Role

# The tab icon is a bundled SVG (sent inline as a data: URL): a ":material/…:" page icon makes the
# browser fetch it from fonts.gstatic.com, and the app must work with no internet at all. Icons
# elsewhere (":material/…:" on pages and buttons) use the font Streamlit serves itself.
FAVICON = str(Path(__file__).resolve().parent / "assets" / "favicon.svg")
st.set_page_config(page_title="HR Policy RAG Evaluation", page_icon=FAVICON, layout="wide")
# Sign-in first: with [auth] configured nobody sees a page before signing in; without it the app
# refuses to serve on a non-loopback address (see ui.access_gate).
me = ui.access_gate()
if ui.auth_configured() and not st.session_state.get("auth.recorded"):
    ui.workspace().record_sign_in()  # the audit trail says who opened a session, and when
    st.session_state["auth.recorded"] = True

# Explicit, lower-case URL paths (the default page is served at "/").
documents_page = st.Page(
    ui.DOCUMENTS_PAGE, title="Documents", icon=":material/description:", default=True, url_path=""
)
qsets_page = st.Page(ui.QSETS_PAGE, title="Question sets", icon=":material/quiz:", url_path="question_sets")
run_page = st.Page(ui.RUN_PAGE, title="Run", icon=":material/play_circle:", url_path="run")
history_page = st.Page(ui.HISTORY_PAGE, title="History", icon=":material/monitoring:", url_path="history")
configs_page = st.Page(
    ui.CONFIGS_PAGE, title="Configurations", icon=":material/tune:", url_path="configurations"
)
sweeps_page = st.Page(ui.SWEEPS_PAGE, title="Sweeps", icon=":material/leaderboard:", url_path="sweeps")
review_page = st.Page(ui.REVIEW_PAGE, title="Review", icon=":material/rate_review:", url_path="review")
generate_page = st.Page(
    ui.GENERATE_PAGE, title="Generate questions", icon=":material/auto_awesome:", url_path="generate"
)
coverage_page = st.Page(ui.COVERAGE_PAGE, title="Coverage", icon=":material/grid_on:", url_path="coverage")
admin_page = st.Page(ui.ADMIN_PAGE, title="Admin", icon=":material/admin_panel_settings:", url_path="admin")
#: Every URL path a page answers to, folded to lower case ("/documents" names the default page too).
PAGES_BY_PATH = {
    "documents": (ui.DOCUMENTS_PAGE, documents_page),
    "question_sets": (ui.QSETS_PAGE, qsets_page),
    "run": (ui.RUN_PAGE, run_page),
    "history": (ui.HISTORY_PAGE, history_page),
    "configurations": (ui.CONFIGS_PAGE, configs_page),
    "sweeps": (ui.SWEEPS_PAGE, sweeps_page),
    "review": (ui.REVIEW_PAGE, review_page),
    "generate": (ui.GENERATE_PAGE, generate_page),
    "coverage": (ui.COVERAGE_PAGE, coverage_page),
    **({"admin": (ui.ADMIN_PAGE, admin_page)} if me.can(Role.ADMIN) else {}),
}


def case_alias() -> tuple[st.Page | None, st.Page | None]:
    """``(hidden alias, page)`` when the browser asked for one of our pages in another spelling.

    Streamlit matches URL paths exactly, so ``/Run``, ``/HISTORY`` or ``/documents`` would open
    "Page not found". The requested spelling is registered as a hidden page for this run, so the
    navigation resolves it; the router then switches to the real page (the address bar then shows
    its canonical path). ``(None, None)`` for every other URL, and under AppTest (no URL).
    """
    requested = urlparse(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
    file, page = PAGES_BY_PATH.get(requested.casefold(), (None, None))
    if page is None or requested == page.url_path:
        return None, None
    return st.Page(file, title=page.title, url_path=requested, visibility="hidden"), page


alias, aliased = case_alias()
nav = st.navigation(
    [
        documents_page,
        qsets_page,
        generate_page,
        run_page,
        history_page,
        review_page,
        coverage_page,
        configs_page,
        sweeps_page,
        *([admin_page] if me.can(Role.ADMIN) else []),
        *([alias] if alias else []),
    ]
)
if alias is not None and nav is alias:
    st.switch_page(aliased)
intended = st.session_state.pop("app.intended_page", None)
if intended:  # a deep link that arrived before the router ran (see ui.ensure_routed)
    st.switch_page(intended)

ws = ui.workspace()
settings = ws.settings


@st.fragment(run_every=2.0)
def active_runs_panel() -> None:
    """Runs of this server in progress; refreshes itself, so a finished run drops off."""
    mine = set(ws.active_run_ids(mine=True))
    for run_id in ws.active_run_ids():
        p = ws.progress(run_id)
        detail = f" · {p.done}/{p.total}" if p is not None and p.total else ""
        whose = "" if run_id in mine else f" · {ws.run_owner(run_id)}"
        st.page_link(
            run_page, label=f"Run #{run_id} running{detail}{whose}", icon=":material/progress_activity:"
        )


with st.sidebar:
    st.markdown("### HR Policy RAG Evaluation")
    if ui.auth_configured():
        st.markdown(f"**Signed in:** {ui.md(me.label)} · {me.role}")
        if st.button("Sign out", key="auth.logout", icon=":material/logout:"):
            st.logout()
        if ui.roles_problem():
            st.error(
                f"{ui.md(ui.roles_problem())} Until it is fixed everyone can only read.",
                icon=":material/error:",
            )
    else:
        st.caption("Single user (no sign-in): you are the local admin.")
    if settings.has_key:
        st.markdown(f"**Mode:** Claude · {ui.md(settings.answer_model)}")
        st.caption("API key: configured")
    else:
        st.markdown("**Mode:** Offline")
        st.caption("API key: not set — answers and metrics run locally. Set ANTHROPIC_API_KEY to use Claude.")
    st.caption(f"Data: {ui.md(settings.data_dir)}")

    active_runs_panel()

    if not ui.documents(quiet=True):  # a page that lists documents shows why there are none
        st.info(
            "First step: upload your policy documents (or index the sample handbook) on the Documents page.",
            icon=":material/lightbulb:",
        )
        st.page_link(documents_page, label="Go to Documents", icon=":material/arrow_forward:")
    elif not ui.question_sets():
        st.info("Next: create a question set on the Question sets page.", icon=":material/lightbulb:")
        st.page_link(qsets_page, label="Go to Question sets", icon=":material/arrow_forward:")
    elif not ui.runs():
        st.info("Ready: start your first evaluation on the Run page.", icon=":material/lightbulb:")
        st.page_link(run_page, label="Go to Run", icon=":material/arrow_forward:")

nav.run()
