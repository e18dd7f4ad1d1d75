"""Streamlit glue shared by app.py and the pages: the cached workspace, cached reads, safe text.

Not a page (``st.navigation`` lists the pages explicitly). Rules kept here once:
- Resources: one :class:`Workspace` per settings, ``st.cache_resource(on_release=close)``.
- Reads: ``st.cache_data`` keyed on the data dir and ``Workspace.version()``, which changes on
  every write (ours, a background run's, or another process's), so a write is never shown stale.
- Text from documents, questions, answers or set names is shown through :func:`md` (Markdown
  escaped) or as dataframe cells; never with ``unsafe_allow_html``.
- Access (issue 15): :func:`principal` is who uses this browser session — the signed-in user
  (``st.user``, role from the roles file) when ``[auth]`` is configured, else the local admin of
  this session. :func:`workspace` returns the shared workspace *acting as* that principal, so
  every facade call is checked against their role (pages also hide what the role cannot do).
  Cached reads use the shared workspace directly (reading needs no role).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from rag_core.access import LOCAL_ADMIN, Principal, Role
from rag_core.errors import RagError
from rag_core.experiment import ConfigVersion, SweepRecord
from rag_core.models import Chunk, DocumentInfo, DocumentVersion, QAItem, RequestTiming
from rag_core.reporting import frames
from rag_core.reporting.significance import Leaderboard
from rag_core.settings import Settings
from rag_core.storage import QuestionSetInfo, ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import RunSummary
from rag_core.workspace import AgreementReport, Comparison, Workspace
from rag_core.workspace_access import ActingWorkspace

#: Page files, relative to app.py (used by st.navigation, st.page_link and st.switch_page).
DOCUMENTS_PAGE = "pages/documents.py"
QSETS_PAGE = "pages/question_sets.py"
RUN_PAGE = "pages/run.py"
HISTORY_PAGE = "pages/history.py"
CONFIGS_PAGE = "pages/configurations.py"
SWEEPS_PAGE = "pages/sweeps.py"
REVIEW_PAGE = "pages/review.py"
GENERATE_PAGE = "pages/generate.py"
COVERAGE_PAGE = "pages/coverage.py"
ADMIN_PAGE = "pages/admin.py"

#: Set to 1 to serve without sign-in on a non-loopback address (documented in the README).
ALLOW_UNAUTHENTICATED_ENV = "RAG_ALLOW_UNAUTHENTICATED"
#: Who the shared workspace acts as when no session principal is given: may only read.
_NOBODY = Principal(id="app", name="app (no session)", role=Role.VIEWER)


_CACHE_TTL_S = 600
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:=^])")


# --------------------------------------------------------------------------------------------
# Settings and the workspace
# --------------------------------------------------------------------------------------------
def load_settings() -> Settings:
    """Settings from the environment / secrets.toml; shows the problem and stops on a bad value."""
    try:
        return Settings.load()
    except RagError as exc:
        st.error(f"The app's settings are not valid: {md(str(exc))}")
        st.stop()
        raise  # pragma: no cover - st.stop() raises


def ensure_routed(page_file: str) -> None:
    """Send a page that runs without the router through app.py first.

    Because a ``pages/`` folder sits next to app.py, Streamlit starts each server process in its
    legacy multipage mode: until app.py has called ``st.navigation`` once, a deep link such as
    ``/history`` runs ``pages/history.py`` directly — without the page config, the sidebar, or
    the interrupted-run recovery. Such a run is bounced to app.py, which then opens the page
    that was asked for (``app.intended_page``). Costs one rerun, once per server process.

    Not under AppTest: it resets that mode before every ``run()`` and would lose the simulated
    interaction in the bounce (so AppTest runs pages after the first without app.py's sidebar).
    """
    from streamlit import config
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and not config.get_option("global.appTest"):
        st.session_state["app.intended_page"] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


def _close_workspace(ws: Workspace) -> None:
    ws.close()


@st.cache_resource(show_spinner="Opening the workspace…", on_release=_close_workspace)
def _open_workspace(fingerprint: str, _settings: Settings) -> Workspace:
    """One workspace per settings (``fingerprint`` is their repr, which never shows the key).

    On first use: runs whose process died are marked interrupted, and the sample question set
    is created when there is none.
    """
    ws = Workspace(_settings, principal=_NOBODY)
    ws.recover_interrupted()
    ws.ensure_sample_set()
    return ws


def _ws() -> Workspace:
    """The shared cached workspace of the current settings (shows the error and stops if it cannot
    open). It acts as nobody in particular (read-only): pages use :func:`workspace`."""
    settings = load_settings()
    try:
        return _open_workspace(repr(settings), settings)
    except RagError as exc:
        st.error(md(str(exc)))
        st.stop()
        raise  # pragma: no cover


def workspace() -> ActingWorkspace:
    """The shared workspace acting as this session's :func:`principal` (who must be signed in when
    sign-in is configured; :func:`access_gate` has shown the sign-in page otherwise)."""
    require_gate()
    ws = _ws()
    return ws.acting_as(principal(ws))


# --------------------------------------------------------------------------------------------
# Sign-in and the acting principal
# --------------------------------------------------------------------------------------------
def auth_configured() -> bool:
    """True when ``.streamlit/secrets.toml`` (or the secrets file given) has an ``[auth]`` section."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def server_address() -> str:
    """The address Streamlit listens on (``server.address``; empty = every interface)."""
    return str(st.get_option("server.address") or "")


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for empty (= every interface) or any other."""
    address = (address or "").strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def unauthenticated_allowed() -> bool:
    """True when the documented opt-out ``RAG_ALLOW_UNAUTHENTICATED=1`` is set."""
    return os.environ.get(ALLOW_UNAUTHENTICATED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _user_claim(name: str) -> Any:
    try:
        return st.user.get(name)
    except Exception:
        return None


def signed_in() -> bool:
    return bool(_user_claim("is_logged_in"))


def principal(ws: Workspace | None = None) -> Principal:
    """Who uses this browser session (see the module docstring). With sign-in configured but nobody
    signed in: a viewer with no identity (the gate stops the page before it gets here)."""
    if not auth_configured():
        sid = st.session_state.setdefault("auth.session", uuid.uuid4().hex[:12])
        return dataclasses.replace(LOCAL_ADMIN, session=str(sid))
    if not signed_in():
        return _NOBODY
    ws = ws or _ws()
    email = str(_user_claim("email") or _user_claim("preferred_username") or _user_claim("sub") or "")
    name = str(_user_claim("name") or email)
    try:
        claim = ws.role_map().groups_claim
    except RagError:
        claim = "groups"
    raw = _user_claim(claim) or []
    groups = [str(g) for g in raw] if isinstance(raw, (list, tuple)) else [str(raw)]
    try:
        p = ws.principal_for(email, name, groups)
    except RagError as exc:  # a malformed roles file: everyone may only read, and is told why
        st.session_state["auth.roles_problem"] = str(exc)
        return Principal(id=email.lower(), name=name, role=Role.VIEWER, groups=tuple(groups))
    st.session_state.pop("auth.roles_problem", None)
    return p


def access_gate() -> Principal:
    """Call first in app.py. Returns the session's principal, or shows the sign-in page (sign-in
    configured, nobody signed in) or the refusal page (no sign-in on a non-loopback address without
    the opt-out) and stops the script."""
    if auth_configured():
        if not signed_in():
            st.navigation(
                [st.Page(_sign_in_page, title="Sign in", url_path="sign_in")], position="hidden"
            ).run()
            st.stop()
    elif not is_loopback(server_address()) and not unauthenticated_allowed():
        st.navigation(
            [st.Page(_refusal_page, title="Sign-in required", url_path="refused")], position="hidden"
        ).run()
        st.stop()
    return principal()


def require_gate() -> None:
    """For pages: stop (the router shows the sign-in or refusal page) when the session may not be
    served (a page run directly, e.g. by AppTest, never bypasses the gate)."""
    if auth_configured() and not signed_in():
        st.warning("Sign in to continue.", icon=":material/login:")
        st.stop()
    if not auth_configured() and not is_loopback(server_address()) and not unauthenticated_allowed():
        _refusal_page()
        st.stop()


def _sign_in_page() -> None:
    st.title("HR Policy RAG Evaluation")
    st.markdown("This server is shared: sign in with your organisation account to continue.")
    if st.button("Sign in", key="auth.login", type="primary", icon=":material/login:"):
        st.login()


def _refusal_page() -> None:
    addr = server_address() or "every network interface (0.0.0.0)"
    st.title("Sign-in is required on this address")
    st.error(
        f"This app is listening on {md(addr)}, so other computers can reach it, and sign-in is not "
        "configured: anyone on the network could read and change your policies and evaluation "
        "history. It serves no pages until one of these is done (then restart it):\n\n"
        "1. **configure sign-in**: an `[auth]` section (OpenID Connect: `redirect_uri`, "
        "`cookie_secret`, `client_id`, `client_secret`, `server_metadata_url`) in "
        "`.streamlit/secrets.toml`, see the README's *Security* section;\n"
        "2. or **serve on this computer only**: `--server.address 127.0.0.1`;\n"
        f"3. or, behind a proxy that already authenticates everyone, set `{ALLOW_UNAUTHENTICATED_ENV}=1`.",
        icon=":material/lock:",
    )


def roles_problem() -> str | None:
    """Why the roles file could not be used this run (everyone is a viewer meanwhile), if so."""
    return st.session_state.get("auth.roles_problem")


def ensure_choice(key: str, options: list[Any], default: Any = None) -> None:
    """Initialise a selectbox/radio value with ``setdefault`` and repair it when its option is gone."""
    ss = st.session_state
    if not options:
        ss.pop(key, None)
        return
    fallback = default if default in options else options[0]
    if ss.get(key) not in options:
        ss[key] = fallback


# --------------------------------------------------------------------------------------------
# Cached reads (keyed on data dir + version)
# --------------------------------------------------------------------------------------------
def version() -> str:
    return _ws().version()


def _key() -> tuple[str, str]:
    ws = _ws()
    return str(ws.settings.data_dir), ws.version()


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _documents(data_dir: str, ver: str, collection: str | None) -> list[DocumentInfo]:
    return _ws().documents(collection)


def documents(collection: str | None = None, *, quiet: bool = False) -> list[DocumentInfo]:
    """Indexed documents of one collection (all when None); ``[]`` with the problem shown (unless
    ``quiet``) when the index cannot be used, e.g. its folder was deleted while the app was running
    (never a stale list)."""
    try:
        return _documents(*_key(), collection)
    except RagError as exc:
        if not quiet:
            st.error(md(str(exc)), icon=":material/error:")
        return []


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _collections(data_dir: str, ver: str) -> list[str]:
    return _ws().collections()


def collections() -> list[str]:
    """Document collection names, the default first."""
    return _collections(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _document_versions(data_dir: str, ver: str, name: str, collection: str) -> list[DocumentVersion]:
    return _ws().document_versions(name, collection)


def document_versions(name: str, collection: str) -> list[DocumentVersion]:
    return _document_versions(*_key(), name, collection)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _question_sets(data_dir: str, ver: str) -> list[QuestionSetInfo]:
    return _ws().question_sets()


def question_sets() -> list[QuestionSetInfo]:
    return _question_sets(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _question_set(data_dir: str, ver: str, name: str) -> list[QAItem]:
    return _ws().question_set(name)


def question_set(name: str) -> list[QAItem]:
    return _question_set(*_key(), name)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner="Loading runs…")
def _runs(data_dir: str, ver: str) -> list[RunRecord]:
    return _ws().runs()


def runs() -> list[RunRecord]:
    return _runs(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _runs_frame(data_dir: str, ver: str) -> pd.DataFrame:
    return frames.runs_frame(_runs(data_dir, ver))


def runs_frame() -> pd.DataFrame:
    return _runs_frame(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _runs_table(data_dir: str, ver: str) -> pd.DataFrame:
    return Workspace.runs_table(_runs(data_dir, ver))


def runs_table() -> pd.DataFrame:
    return _runs_table(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _summary(data_dir: str, ver: str, run_id: int) -> RunSummary:
    return _ws().summary(run_id)


def summary(run_id: int) -> RunSummary:
    """A run's summary (computed from the store; cached until the next write)."""
    return _summary(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _results(data_dir: str, ver: str, run_id: int) -> list[ResultRecord]:
    return _ws().results(run_id)


def results(run_id: int) -> list[ResultRecord]:
    return _results(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _results_frame(data_dir: str, ver: str, run_id: int) -> pd.DataFrame:
    return frames.results_frame(
        _results(data_dir, ver, run_id),
        suite=_ws().run(run_id).suite,
        verdicts=_verdicts(data_dir, ver, run_id),
    )


def results_frame(run_id: int) -> pd.DataFrame:
    return _results_frame(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _verdicts(data_dir: str, ver: str, run_id: int) -> dict[int, VerdictRecord]:
    return _ws().verdicts(run_id)


def verdicts(run_id: int) -> dict[int, VerdictRecord]:
    """The analyst's verdicts on a run (question index → verdict, inherited ones included)."""
    return _verdicts(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Comparing the metrics with your verdicts…")
def _agreement(data_dir: str, ver: str, run_ids: tuple[int, ...]) -> AgreementReport:
    return _ws().agreement(run_ids)


def agreement(run_ids: tuple[int, ...]) -> AgreementReport:
    """Each metric's agreement with the analyst's verdicts on ``run_ids`` (cached until a write)."""
    return _agreement(*_key(), tuple(run_ids))


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _requests(data_dir: str, ver: str, run_id: int) -> list[RequestTiming]:
    return _ws().requests(run_id)


def requests(run_id: int) -> list[RequestTiming]:
    return _requests(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Reading chunks…")
def _chunks(data_dir: str, ver: str, name: str, collection: str) -> list[Chunk]:
    return _ws().chunks(name, collection)


def chunks(name: str, collection: str) -> list[Chunk]:
    return _chunks(*_key(), name, collection)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _export_run(data_dir: str, ver: str, run_id: int, fmt: str) -> str:
    return _ws().export_run(run_id, fmt)


def export_run(run_id: int, fmt: str) -> str:
    return _export_run(*_key(), run_id, fmt)


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------
def md(text: Any) -> str:
    """``text`` with every Markdown/HTML-significant character backslash-escaped.

    Use for any user or document text placed in ``st.markdown``/``st.error``/labels: links,
    images, LaTeX (``$``), colour/icon directives (``:red[...]``) and HTML are shown literally.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def cancel_button(label: str, *, key: str, cancel: Any, done: str, help: str | None = None) -> bool:
    """A Cancel button: on click calls ``cancel()`` and shows ``done`` as a toast, or the refusal
    (e.g. not the starter) as an error. True when it was clicked and the cancel was accepted."""
    if not st.button(label, key=key, icon=":material/stop_circle:", help=help):
        return False
    try:
        accepted = cancel()
    except RagError as exc:
        st.error(md(str(exc)))
        return False
    st.toast(done)
    return bool(accepted)


def flash(key: str) -> None:
    """Show (once) a message a callback left in ``st.session_state[key]`` as ``(kind, text)``."""
    msg = st.session_state.pop(key, None)
    if not msg:
        return
    kind, text = msg
    {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(text)


def run_label(run: RunRecord) -> str:
    """``"#12 · 2026-11-22 10:03 · Sample: staff handbook · offline/async"`` (plain text).

    Only fields that never change: selectboxes map the browser's choice back by its label.
    """
    when = (run.created_at or "")[:16].replace("T", " ")
    qs = run.question_set or "ad-hoc questions"
    return f"#{run.id} · {when} · {qs} · {run.backend}/{run.mode}"


def plot(fig: Any, key: str) -> None:
    """A Plotly figure at full width (``width="stretch"``, the 1.67 API)."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Comparing runs…")
def _compare(data_dir: str, ver: str, baseline: int, candidate: int) -> Comparison:
    return _ws().compare(baseline, candidate)


def compare(baseline: int, candidate: int) -> Comparison:
    return _compare(*_key(), baseline, candidate)


# --------------------------------------------------------------------------------------------
# Experiments (configurations, sweeps)
# --------------------------------------------------------------------------------------------
@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _configs(data_dir: str, ver: str) -> list[ConfigVersion]:
    return _ws().configs()


def configs() -> list[ConfigVersion]:
    """The latest version of every configuration, "default" first."""
    return _configs(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _config_versions(data_dir: str, ver: str, name: str) -> list[ConfigVersion]:
    return _ws().config_versions(name)


def config_versions(name: str) -> list[ConfigVersion]:
    return _config_versions(*_key(), name)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _sweeps(data_dir: str, ver: str) -> list[SweepRecord]:
    return _ws().sweeps()


def sweeps() -> list[SweepRecord]:
    return _sweeps(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Ranking the configurations…")
def _leaderboard(data_dir: str, ver: str, sweep_id: int) -> Leaderboard:
    return _ws().leaderboard(sweep_id)


def leaderboard(sweep_id: int) -> Leaderboard:
    return _leaderboard(*_key(), sweep_id)
