"""Stopping an ingest: the user's Cancel and the per-file time budget, checked at every step.

Parsing reports progress per page (``"reading"``, ``"ocr"``) and embedding per batch of chunks
(``"embedding"``, :func:`embed_batch_size` chunks at a time). :meth:`IngestControl.progress` wraps
the caller's progress callback so that every report first checks whether the user cancelled
(:class:`IngestCancelled`) or the file's wall-clock budget (``settings.ingest_budget_s``,
``RAG_INGEST_BUDGET_S``) is spent (:class:`IngestTimedOut`). Both are :class:`IngestError` s naming
the file and the step reached; raised from inside :meth:`~rag_core.ingest.index.PolicyIndex.add_document`
they make it remove the chunks written so far, and the service records nothing, so the index and
the history catalog stay as they were before that file.

Test hooks (read from the environment only when set; documented in the README):
``RAG_EMBED_BATCH`` — chunks per embedding batch (default :data:`EMBED_BATCH`, 1–256);
``RAG_TEST_EMBED_DELAY_S`` — an extra pause after each embedding batch (0–5 s), so a browser test can
click Cancel while an ingest is deterministically still running. Never set it in production.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from rag_core.errors import IngestError

__all__ = [
    "EMBED_BATCH",
    "IngestCancelled",
    "IngestControl",
    "IngestTimedOut",
    "embed_batch_size",
    "embed_delay_s",
    "step_text",
    "unstoppable",
]

#: Chunks embedded and written per batch: ~2-3 s on a shared 2-core box, so a Cancel lands quickly,
#: and the vectors in memory at once stay small (64 × 384 floats).
EMBED_BATCH = 64
#: Upper bound on ``RAG_EMBED_BATCH``.
MAX_EMBED_BATCH = 256
#: Upper bound on ``RAG_TEST_EMBED_DELAY_S``.
MAX_TEST_DELAY_S = 5.0

ProgressFn = Callable[[str, int, int], None]

_STEPS = {"reading": "reading page", "ocr": "OCR of scanned page", "embedding": "embedding chunk"}


class IngestCancelled(IngestError):
    """The user cancelled the ingest; the file being read was not indexed."""


class IngestTimedOut(IngestError):
    """A file took longer than its time budget; it was not indexed."""


def embed_batch_size() -> int:
    """Chunks per embedding batch: ``RAG_EMBED_BATCH`` when set (clamped to 1–256), else 64."""
    raw = os.environ.get("RAG_EMBED_BATCH", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return min(int(raw), MAX_EMBED_BATCH)
    return EMBED_BATCH


def embed_delay_s() -> float:
    """Seconds to pause after each embedding batch (test hook ``RAG_TEST_EMBED_DELAY_S``; 0 unless set)."""
    raw = os.environ.get("RAG_TEST_EMBED_DELAY_S", "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        return 0.0
    return min(max(value, 0.0), MAX_TEST_DELAY_S)


def step_text(stage: str, done: int, total: int) -> str:
    """``"embedding chunk 65 of 2,000"`` — the step being worked on (1-based)."""
    if total <= 0:
        return "starting"
    return f"{_STEPS.get(stage, stage)} {min(done + 1, total):,} of {total:,}"


class IngestControl:
    """A Cancel switch (thread-safe) and the per-file time budget for one ingest of one or more files.

    Call :meth:`start_file` before each file; :meth:`check` (or the callback returned by
    :meth:`progress`) raises :class:`IngestCancelled` / :class:`IngestTimedOut` at the next step.
    """

    def __init__(self, budget_s: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = budget_s
        """Seconds allowed per file (None: no limit)."""
        self._clock = clock
        self._cancel = threading.Event()
        self._started = clock()

    # --- the switch -------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the ingest to stop at its next step (safe from any thread or a signal handler)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # --- checks -----------------------------------------------------------------------------
    def start_file(self) -> None:
        """Restart the budget clock for the next file."""
        self._started = self._clock()

    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def check(self, name: str, stage: str = "", done: int = 0, total: int = 0) -> None:
        """Raise when the user cancelled or ``name``'s budget is spent; the message says where."""
        where = f" while {step_text(stage, done, total)}" if stage and total else ""
        if self._cancel.is_set():
            raise IngestCancelled(f"{name}: cancelled{where} — nothing of it was indexed.")
        if self.budget_s is not None and self.elapsed_s() > self.budget_s:
            raise IngestTimedOut(
                f"{name}: indexing took longer than the {self.budget_s:g} s limit (stopped{where}); "
                "nothing of it was indexed. Split the document into smaller files (e.g. one per "
                "policy), or raise RAG_INGEST_BUDGET_S."
            )

    def progress(self, name: str, on_progress: ProgressFn | None) -> ProgressFn:
        """A progress callback that checks first, then reports to ``on_progress``."""

        def report(stage: str, done: int, total: int) -> None:
            self.check(name, stage, done, total)
            if on_progress is not None:
                on_progress(stage, done, total)

        return report


def unstoppable(on_progress: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
    """``on_progress`` without its Cancel / time-budget stop (progress is still reported): for a
    write that must finish once started (its old version was already removed)."""
    if on_progress is None:
        return None

    def report(done: int, total: int) -> None:
        try:
            on_progress(done, total)
        except (IngestCancelled, IngestTimedOut):
            pass

    return report
