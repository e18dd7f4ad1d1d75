"""What a run is made of, captured when it starts (:func:`capture_identity`), and the code version.

The identity (:class:`~rag_core.experiment.RunIdentity`) is stored with the run so that History can
say what changed between two runs: the configuration version it pinned (with a copy of its
fields), the question set's version and fingerprint, the documents indexed at the time (name +
sha256), the index collection it retrieved from, and the code (package version + git commit).
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import tomllib

from rag_core.experiment import CodeVersion, DocumentVersion, RunIdentity, questions_fingerprint
from rag_core.runs.request import RunRequest
from rag_core.settings import PROJECT_ROOT, Settings
from rag_core.storage import HistoryStore

__all__ = ["GIT_TIMEOUT_S", "capture_identity", "code_version", "package_version"]

GIT_TIMEOUT_S = 5.0
"""Longest wait for ``git`` when reading the commit."""
PACKAGE = "hr-rag-eval"


@functools.cache
def package_version() -> str:
    """The project's version: pyproject.toml when running from a checkout, else the installed one."""
    try:
        with (PROJECT_ROOT / "pyproject.toml").open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> CodeVersion:
    """The package version, and the git commit (with whether tracked files were changed) when the
    code runs from a git checkout; never raises."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    return CodeVersion(package=package_version(), commit=commit or None, dirty=dirty)


def capture_identity(
    store: HistoryStore, settings: Settings, request: RunRequest, *, sweep_id: int | None = None
) -> RunIdentity:
    """The identity of a run about to start with ``request`` (see the module docstring)."""
    from rag_core.ingest.variants import collection_for

    assistant = request.pinned_assistant(settings)
    set_version = None
    if request.question_set:
        found = store.question_set_version(request.question_set, list(request.items))
        set_version = found[0] if found else None
    return RunIdentity(
        config=assistant,
        question_set=request.question_set,
        question_set_version=set_version,
        questions_sha256=questions_fingerprint(request.items),
        documents=tuple(DocumentVersion(d.name, d.sha256) for d in store.list_documents()),
        collection=collection_for(settings, assistant.config.chunk_size, assistant.config.chunk_overlap),
        code=code_version(),
        sweep_id=sweep_id,
    )
