"""The workspace's view of runs executing in *other* processes sharing its history.

Several app processes can share one history (PostgreSQL, ``RAG_DATABASE_URL``; or one SQLite file
with the CLI next to the app). A run executes in the process whose session started it; the others
see its progress from what it has committed (answers and scores are committed one by one), read-only:
they never adopt, cancel or resume it while it runs.

Mixed into :class:`rag_core.workspace.Workspace` (same contracts: "empty" is ``[]``, only
:class:`~rag_core.errors.RagError` subclasses are raised).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rag_core.runs.request import RunProgress
from rag_core.storage import HistoryStore
from rag_core.vocab import Phase, RunStatus

__all__ = ["SharedRunsMixin"]

#: Phases whose progress counts scored questions (the others count answered ones).
_SCORING = {Phase.EVALUATION.value, Phase.DONE.value}


class SharedRunsMixin:
    """Methods of :class:`~rag_core.workspace.Workspace` about runs of other processes."""

    store: HistoryStore

    if TYPE_CHECKING:

        def active_run_ids(self) -> list[int]: ...

    def runs_elsewhere(self) -> list[int]:
        """Ids of runs executing in another process (status ``running``, created or resumed by
        another process and not run by this one). A run this process is just starting (stored,
        not yet registered as live) is never among them."""
        mine = set(self.active_run_ids())
        return [rid for rid in self.store.running_run_ids(others_only=True) if rid not in mine]

    def shared_progress(self, run_id: int) -> RunProgress | None:
        """Progress of a run as stored by the process executing it (any process); None when there
        is no such run. ``done`` counts answered questions while answering, scored ones while
        scoring; ``finished`` once its status is no longer ``running``."""
        p = self.store.stored_progress(run_id)
        if p is None:
            return None
        ledger = p["ledger"]
        phases = list((ledger.get("phases") or {}).keys())
        phase = phases[-1] if phases else Phase.STARTING.value
        try:
            phase_value = Phase(phase)
        except ValueError:
            phase_value = Phase.STARTING
        answered = p["answered"] + p["errors"]
        if answered and phase_value in (Phase.STARTING, Phase.INDEXING, Phase.RETRIEVAL):
            phase_value = Phase.GENERATION  # answers are being stored: the ledger lags a second
        done = p["scored"] if phase in _SCORING else answered
        elapsed = ledger.get("elapsed_s")
        if not isinstance(elapsed, (int, float)):
            try:
                elapsed = (datetime.now(UTC) - datetime.fromisoformat(p["created_at"])).total_seconds()
            except ValueError:
                elapsed = 0.0
        try:
            status = RunStatus(p["status"])
        except ValueError:
            status = RunStatus.FAILED
        return RunProgress(
            run_id=run_id,
            phase=phase_value,
            status=status,
            done=int(done),
            total=int(p["total"]),
            errors=int(p["errors"]),
            elapsed_s=float(max(0.0, elapsed)),
        )
