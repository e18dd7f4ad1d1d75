"""Issue 15, item 5 in the app: a deleted index folder is reported, not listed from stale records."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.app.conftest import texts


def test_documents_and_run_pages_say_the_index_folder_is_missing(app, indexed_dir: Path) -> None:
    at = app(indexed_dir)
    assert any("Document" in df.value.columns for df in at.dataframe)  # the list is shown

    shutil.rmtree(indexed_dir / "chroma")  # deleted while the app runs
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("Document" in df.value.columns for df in at.dataframe)  # no stale list
    errors = " ".join(texts(at, "error"))
    assert "policy index folder" in errors and "is missing" in errors

    at.switch_page("pages/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "is missing" in " ".join(texts(at, "error"))
