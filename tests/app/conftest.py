"""AppTest fixtures: the app from app.py, a data dir per test, caches cleared between tests.

Slow set-up is done once per session and copied: ``indexed_dir`` (sample handbook ingested,
sample set + a 3-question set) and ``history_dir`` (the same plus two finished offline runs).
Each test gets its *own copy* in ``tmp_path``, so tests never see each other's writes.

AppTest note: with ``runner.enforceSerializableSessionState = true`` (our config.toml) AppTest
fails on its own internal key (it stores ``format_func`` lambdas in session_state), so the
option is switched off for AppTest and :func:`assert_plain_session_state` checks our keys instead.
"""

from __future__ import annotations

import pickle
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, SAMPLE_PDF

QUICK_SET = "Quick: 3 questions"
APP = str(ROOT / "app.py")


def _workspace(data_dir: Path):
    from rag_core.settings import Settings
    from rag_core.workspace import Workspace

    settings = Settings.load(env={"RAG_DATA_DIR": str(data_dir)}, secrets_path=data_dir / "none.toml")
    return Workspace(settings)


@pytest.fixture(scope="session")
def indexed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the sample PDF indexed, the sample set and a 3-question set."""
    from rag_core.models import QAItem

    d = tmp_path_factory.mktemp("indexed") / "data"
    ws = _workspace(d)
    try:
        outcome = ws.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())])[0]
        assert outcome.status == "added", outcome
        ws.ensure_sample_set()
        sample = ws.question_set("Sample: staff handbook")
        ws.save_question_set(QUICK_SET, [QAItem(i.question, i.ground_truth) for i in sample[:3]])
    finally:
        ws.close()
    return d


@pytest.fixture(scope="session")
def history_template(indexed_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``indexed_template`` plus two finished offline runs of the quick set (#1 async, #2 compare)."""
    d = tmp_path_factory.mktemp("history") / "data"
    shutil.copytree(indexed_template, d)
    ws = _workspace(d)
    try:
        for mode in ("async", "compare"):
            run_id = ws.start_run(QUICK_SET, mode=mode, concurrency=3, suite="offline")
            assert ws.wait_run(run_id, timeout=240)
            assert ws.run(run_id).status == "completed"
    finally:
        ws.close()
    return d


def _copy(template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(template, d)
    return d


@pytest.fixture
def indexed_dir(indexed_template: Path, tmp_path: Path) -> Path:
    return _copy(indexed_template, tmp_path)


@pytest.fixture
def history_dir(history_template: Path, tmp_path: Path) -> Path:
    return _copy(history_template, tmp_path)


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def _clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # calls Workspace.close via on_release


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], AppTest]]:
    """``app(data_dir)`` → an AppTest of app.py bound to ``data_dir`` (already run once)."""
    from streamlit import config

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)
    previous = config.get_option("runner.enforceSerializableSessionState")
    _clear_caches()

    def make(data_dir: Path) -> AppTest:
        monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
        at = AppTest.from_file(APP, default_timeout=60)
        config.set_option("runner.enforceSerializableSessionState", False)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    try:
        yield make
    finally:
        _clear_caches()
        config.set_option("runner.enforceSerializableSessionState", previous)


def assert_plain_session_state(at: AppTest) -> None:
    """Every value our pages keep in session_state pickles (the rule config.toml enforces)."""
    for key in at.session_state:
        if key.startswith("$$"):
            continue
        try:
            pickle.dumps(at.session_state[key])
        except Exception as exc:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"session_state[{key!r}] is not picklable: {exc}") from exc


def texts(at: AppTest, kind: str) -> list[str]:
    """Values of all elements of one kind (``"error"``, ``"warning"``, ``"markdown"``, …), with
    Markdown backslash escapes removed (i.e. the text as the user reads it)."""
    return [re.sub(r"\\(.)", r"\1", str(e.value)) for e in getattr(at, kind)]


def wait_for_runs(data_dir: Path, timeout: float = 240) -> None:
    """Block until every run of this process for ``data_dir`` has finished (fragments do not tick
    in AppTest, so tests wait on the handles themselves)."""
    from rag_core.engine import get_engine

    for _, handle in get_engine().runs.live(str((data_dir / "history.sqlite3").resolve())):
        assert handle.wait(timeout) is not None or handle.done(), f"run {handle.run_id} did not finish"


def all_text(at: AppTest) -> str:
    """Every element's protobuf text (labels, values, options…), for "never shown" checks."""
    out: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(out)
