"""Issue 15, item 5: a missing or replaced index folder is noticed before serving or running.

Before: with ``data_dir/chroma`` deleted under a running app, the Documents page kept listing the
recorded documents and searches/runs were answered from the unlinked files of the still-open
Chroma client, while the CLI on the same folder said "no documents indexed".
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.errors import RetrievalError
from rag_core.ingest.index import PolicyIndex
from rag_core.models import QAItem
from rag_core.runs.executor import retrieve_contexts
from rag_core.settings import Settings
from rag_core.workspace import Workspace

LEAVE = b"Annual leave. Every employee gets 25 days of annual leave per year, plus public holidays."
REMOTE = b"Remote work. Staff may work from home up to two days a week with their manager's approval."
PARKING = b"Parking. The staff car park is free of charge for permit holders on weekdays."


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    w = Workspace(settings)
    outcomes = w.ingest_files([("leave.txt", LEAVE), ("remote.txt", REMOTE)])
    assert [o.status for o in outcomes] == ["added", "added"], outcomes
    yield w
    w.close()


def _names(w: Workspace) -> list[str]:
    return [d.name for d in w.documents()]


def test_a_deleted_index_folder_is_reported_not_served(ws: Workspace, settings: Settings) -> None:
    assert _names(ws) == ["leave.txt", "remote.txt"]
    assert ws.search("How many days of leave?")[0].chunk.source == "leave.txt"  # the index is open
    ws.save_question_set("s", [QAItem("How many days of leave?", "25 days")])

    shutil.rmtree(settings.chroma_dir)  # deleted while the app runs

    for call in (ws.documents, ws.has_documents, lambda: ws.search("leave"), lambda: ws.chunks("leave.txt")):
        with pytest.raises(RetrievalError, match="is missing") as info:
            call()
        assert str(settings.chroma_dir) in str(info.value) and "2 recorded documents" in str(info.value)
        assert "upload the documents again" in str(info.value)
    with pytest.raises(RetrievalError, match="is missing"):
        ws.start_run("s")
    assert ws.runs() == []  # nothing was started
    with pytest.raises(RetrievalError, match="is missing"):  # a run's own retrieval checks too
        retrieve_contexts(settings, ["How many days of leave?"], 2)
    assert not settings.chroma_dir.exists()  # and does not create an empty index as a side effect

    # Uploading again creates a new index, and the list shows what it holds (nothing stale).
    assert ws.ingest_files([("parking.txt", PARKING)])[0].status == "added"
    assert _names(ws) == ["parking.txt"]
    assert ws.search("Where can I park?")[0].chunk.source == "parking.txt"


def test_an_index_folder_replaced_while_open_is_reopened(
    ws: Workspace, settings: Settings, tmp_path: Path
) -> None:
    other_settings = settings.replace(data_dir=tmp_path / "other")
    other = Workspace(other_settings)
    try:
        assert other.ingest_files([("parking.txt", PARKING)])[0].status == "added"
    finally:
        other.close()
    assert ws.search("How many days of leave?")[0].chunk.source == "leave.txt"
    held = PolicyIndex(settings)  # e.g. a run's retrieval, open while the folder is swapped
    assert held.count() > 0

    shutil.move(settings.chroma_dir, tmp_path / "old-chroma")
    shutil.copytree(other_settings.chroma_dir, settings.chroma_dir)

    with pytest.raises(RetrievalError, match="was replaced"):  # never read from the unlinked files
        held.list_documents()
    held.close()
    assert _names(ws) == ["parking.txt"]  # reopened; the recorded documents follow the index
    assert ws.search("Where can I park?")[0].chunk.source == "parking.txt"
