"""``.streamlit/config.toml``: every option is one Streamlit knows (a misspelt option is ignored
with only a log line, silently undoing what it was for)."""

from __future__ import annotations

import tomllib

from streamlit import config

from tests.conftest import ROOT


def _options() -> dict[str, object]:
    data = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    return {f"{section}.{key}": value for section, values in data.items() for key, value in values.items()}


def test_every_option_in_config_toml_exists_in_this_streamlit() -> None:
    known = config.get_config_options()
    unknown = [name for name in _options() if name not in known]
    assert unknown == []


def test_no_forced_garbage_collection_after_each_script_run() -> None:
    """Streamlit's default gc.collect(2) after every run, fragment reruns included, made idle Run
    pages (progress fragments polling once a second) cost ~0.3 CPU-seconds per second each."""
    assert _options()["runner.postScriptGC"] is False
