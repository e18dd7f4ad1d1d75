"""Run page: runs executing in another app process sharing this history, shown live and read-only.

Several app processes behind a load balancer share one PostgreSQL history (README, "Scaling out");
a run executes in the process whose session started it. Here the others see its progress as it is
committed, refreshed every second, without Cancel (it is not theirs to stop), and a line when it
ends (open it in History).
"""

from __future__ import annotations

import streamlit as st

from pages._format import duration
from rag_core.vocab import Phase, RunStatus
from rag_core.workspace import Workspace

_SEEN = "run.elsewhere_seen"
_LABELS = {
    Phase.STARTING: "Starting",
    Phase.RETRIEVAL: "Retrieving context",
    Phase.GENERATION: "Generating answers",
    Phase.GENERATION_SEQUENTIAL: "Generating answers (sequential pass)",
    Phase.EVALUATION: "Scoring answers",
    Phase.DONE: "Finishing",
}


@st.fragment(run_every=1.0)
def runs_elsewhere(ws: Workspace) -> None:
    """One read-only progress box per run executing in another process (polled every second)."""
    seen: list[int] = st.session_state.setdefault(_SEEN, [])
    running = ws.runs_elsewhere()
    for rid in running:
        if rid not in seen:
            seen.append(rid)
    for rid in list(seen):
        p = ws.shared_progress(rid)
        if p is None:
            seen.remove(rid)
            continue
        with st.container(border=True, key=f"run-elsewhere-{rid}"):
            if p.status == RunStatus.RUNNING:
                st.markdown(
                    f"**Run #{rid}** is running in another process (another app server or the command line); read-only here."
                )
                label = _LABELS.get(p.phase, str(p.phase))
                st.progress(min(1.0, p.fraction), text=f"{label}: {p.done} of {p.total}")
                st.caption(f"Elapsed {duration(p.elapsed_s)} · {p.errors} errors")
            else:
                st.markdown(f"**Run #{rid}** ({p.total} questions) ended in another process: {p.status}.")
                st.caption("Open it in History for its results.")
