"""Shared fixtures. Every test gets its own data dir; nothing touches the user's data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline by construction: importing rag_core sets the no-telemetry / no-hub-download defaults
# (rag_core/__init__.py) before any test module imports chromadb or ragas. No real API key.
import rag_core  # noqa: F401

os.environ.pop("ANTHROPIC_API_KEY", None)
os.environ.pop("ANTHROPIC_BASE_URL", None)
# Never read the developer's real .streamlit/secrets.toml from tests.
os.environ["RAG_SECRETS_FILE"] = os.devnull + ".no-secrets.toml"

# A real PostgreSQL server for the history store's tests (pg_server, pg_url, store_target).
pytest_plugins = ["tests.support.postgres_server"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
SAMPLE_QUESTIONS = ROOT / "data" / "sample" / "questions.json"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("RAG_DATA_DIR", str(d))
    return d


@pytest.fixture
def settings(data_dir: Path):
    from rag_core.settings import Settings

    return Settings.load(env={"RAG_DATA_DIR": str(data_dir)}, secrets_path=data_dir / "none.toml")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run real-browser tests last: Playwright's sync API keeps an asyncio loop marked as running
    in the main thread while its session fixture lives, which breaks tests that start their own
    loop (the engine's "notebook" test, ``anyio.run`` twins)."""
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid.replace("\\", "/"))
