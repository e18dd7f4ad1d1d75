from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.errors import InputError
from rag_core.settings import Secret, Settings

FAKE_KEY = "sk-test-not-a-real-key-1234567890"


def test_defaults_are_offline_without_a_key(tmp_path: Path) -> None:
    s = Settings.load(env={"RAG_DATA_DIR": str(tmp_path)}, secrets_path=tmp_path / "none.toml")
    assert not s.has_key and s.default_backend == "offline"
    assert s.data_dir == tmp_path.resolve()
    assert s.db_path.parent == s.chroma_dir.parent == tmp_path.resolve()


def test_key_is_never_shown(tmp_path: Path) -> None:
    s = Settings.load(env={"ANTHROPIC_API_KEY": FAKE_KEY}, secrets_path=tmp_path / "none.toml")
    assert s.has_key and s.default_backend == "claude"
    assert s.api_key.get() == FAKE_KEY
    for text in (repr(s), str(s), f"{s}", repr(s.api_key), f"{s.api_key}"):
        assert FAKE_KEY not in text


def test_secrets_toml_is_read_and_env_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'ANTHROPIC_API_KEY = "{FAKE_KEY}"\nRAG_TOP_K = 6\n')
    s = Settings.load(env={}, secrets_path=secrets)
    assert s.api_key.get() == FAKE_KEY and s.top_k == 6
    s = Settings.load(env={"RAG_TOP_K": "3"}, secrets_path=secrets)
    assert s.top_k == 3


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("RAG_TOP_K", "many", "RAG_TOP_K"),
        ("RAG_TOP_K", "0", "RAG_TOP_K"),
        ("RAG_CHUNK_OVERLAP", "5000", "RAG_CHUNK_OVERLAP"),
        ("RAG_CONCURRENCY", "0", "RAG_CONCURRENCY"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, var: str, value: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        Settings.load(env={var: value}, secrets_path=tmp_path / "none.toml")


def test_malformed_secrets_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "secrets.toml"
    bad.write_text("ANTHROPIC_API_KEY = \n")
    with pytest.raises(InputError, match=r"secrets\.toml"):
        Settings.load(env={}, secrets_path=bad)


def test_cost_uses_the_price_table() -> None:
    s = Settings()
    assert s.cost_usd("claude-sonnet-4-5-20250929", 1_000_000, 1_000_000) == pytest.approx(18.0)
    assert s.cost_usd("claude-haiku-4-5", 1_000_000, 0) == pytest.approx(1.0)


def test_secret_bool_and_equality() -> None:
    assert not Secret(None) and not Secret("") and Secret("x")
    assert Secret("x") == Secret("x") != Secret("y")
