"""Streamlit glue shared by app.py and the pages: the cached workspace, cached reads, safe text.

Not a page (``st.navigation`` lists the pages explicitly). Rules kept here once:
- Resources: one :class:`Workspace` per settings, ``st.cache_resource(on_release=close)``.
- Reads: ``st.cache_data`` keyed on the data dir and ``Workspace.version()``, which changes on
  every write (ours, a background run's, or another process's), so a write is never shown stale.
- Text from documents, questions, answers or set names is shown through :func:`md` (Markdown
  escaped) or as dataframe cells; never with ``unsafe_allow_html``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from rag_core.errors import RagError
from rag_core.experiment import ConfigVersion, SweepRecord
from rag_core.models import Chunk, DocumentInfo, DocumentVersion, QAItem, RequestTiming
from rag_core.reporting import frames
from rag_core.reporting.significance import Leaderboard
from rag_core.settings import Settings
from rag_core.storage import QuestionSetInfo, ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import RunSummary
from rag_core.workspace import AgreementReport, Comparison, Workspace

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
    ws = Workspace(_settings)
    ws.recover_interrupted()
    ws.ensure_sample_set()
    return ws


def workspace() -> Workspace:
    """The cached workspace of the current settings (shows the error and stops if it cannot open)."""
    settings = load_settings()
    try:
        return _open_workspace(repr(settings), settings)
    except RagError as exc:
        st.error(md(str(exc)))
        st.stop()
        raise  # pragma: no cover


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
    return workspace().version()


def _key() -> tuple[str, str]:
    ws = workspace()
    return str(ws.settings.data_dir), ws.version()


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _documents(data_dir: str, ver: str, collection: str | None) -> list[DocumentInfo]:
    return workspace().documents(collection)


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
    return workspace().collections()


def collections() -> list[str]:
    """Document collection names, the default first."""
    return _collections(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _document_versions(data_dir: str, ver: str, name: str, collection: str) -> list[DocumentVersion]:
    return workspace().document_versions(name, collection)


def document_versions(name: str, collection: str) -> list[DocumentVersion]:
    return _document_versions(*_key(), name, collection)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _question_sets(data_dir: str, ver: str) -> list[QuestionSetInfo]:
    return workspace().question_sets()


def question_sets() -> list[QuestionSetInfo]:
    return _question_sets(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _question_set(data_dir: str, ver: str, name: str) -> list[QAItem]:
    return workspace().question_set(name)


def question_set(name: str) -> list[QAItem]:
    return _question_set(*_key(), name)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner="Loading runs…")
def _runs(data_dir: str, ver: str) -> list[RunRecord]:
    return workspace().runs()


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
    return workspace().summary(run_id)


def summary(run_id: int) -> RunSummary:
    """A run's summary (computed from the store; cached until the next write)."""
    return _summary(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _results(data_dir: str, ver: str, run_id: int) -> list[ResultRecord]:
    return workspace().results(run_id)


def results(run_id: int) -> list[ResultRecord]:
    return _results(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _results_frame(data_dir: str, ver: str, run_id: int) -> pd.DataFrame:
    return frames.results_frame(
        _results(data_dir, ver, run_id),
        suite=workspace().run(run_id).suite,
        verdicts=_verdicts(data_dir, ver, run_id),
    )


def results_frame(run_id: int) -> pd.DataFrame:
    return _results_frame(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _verdicts(data_dir: str, ver: str, run_id: int) -> dict[int, VerdictRecord]:
    return workspace().verdicts(run_id)


def verdicts(run_id: int) -> dict[int, VerdictRecord]:
    """The analyst's verdicts on a run (question index → verdict, inherited ones included)."""
    return _verdicts(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Comparing the metrics with your verdicts…")
def _agreement(data_dir: str, ver: str, run_ids: tuple[int, ...]) -> AgreementReport:
    return workspace().agreement(run_ids)


def agreement(run_ids: tuple[int, ...]) -> AgreementReport:
    """Each metric's agreement with the analyst's verdicts on ``run_ids`` (cached until a write)."""
    return _agreement(*_key(), tuple(run_ids))


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _requests(data_dir: str, ver: str, run_id: int) -> list[RequestTiming]:
    return workspace().requests(run_id)


def requests(run_id: int) -> list[RequestTiming]:
    return _requests(*_key(), run_id)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Reading chunks…")
def _chunks(data_dir: str, ver: str, name: str, collection: str) -> list[Chunk]:
    return workspace().chunks(name, collection)


def chunks(name: str, collection: str) -> list[Chunk]:
    return _chunks(*_key(), name, collection)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _export_run(data_dir: str, ver: str, run_id: int, fmt: str) -> str:
    return workspace().export_run(run_id, fmt)


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
    return workspace().compare(baseline, candidate)


def compare(baseline: int, candidate: int) -> Comparison:
    return _compare(*_key(), baseline, candidate)


# --------------------------------------------------------------------------------------------
# Experiments (configurations, sweeps)
# --------------------------------------------------------------------------------------------
@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _configs(data_dir: str, ver: str) -> list[ConfigVersion]:
    return workspace().configs()


def configs() -> list[ConfigVersion]:
    """The latest version of every configuration, "default" first."""
    return _configs(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=32, show_spinner=False)
def _config_versions(data_dir: str, ver: str, name: str) -> list[ConfigVersion]:
    return workspace().config_versions(name)


def config_versions(name: str) -> list[ConfigVersion]:
    return _config_versions(*_key(), name)


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner=False)
def _sweeps(data_dir: str, ver: str) -> list[SweepRecord]:
    return workspace().sweeps()


def sweeps() -> list[SweepRecord]:
    return _sweeps(*_key())


@st.cache_data(ttl=_CACHE_TTL_S, max_entries=16, show_spinner="Ranking the configurations…")
def _leaderboard(data_dir: str, ver: str, sweep_id: int) -> Leaderboard:
    return workspace().leaderboard(sweep_id)


def leaderboard(sweep_id: int) -> Leaderboard:
    return _leaderboard(*_key(), sweep_id)
