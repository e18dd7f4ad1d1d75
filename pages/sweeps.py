"""Sweeps: one question set × several configurations (picked, or a grid), cost first, run as one job,
then a leaderboard with confidence intervals and which configurations are significantly worse."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages._format import duration
from rag_core.access import Role
from rag_core.errors import RagError
from rag_core.experiment import DEFAULT_CONFIG_NAME
from rag_core.reporting.experiment_figures import leaderboard_figure
from rag_core.runs.request import default_suite
from rag_core.vocab import Backend, Suite, metric, suite_metrics
from rag_core.workspace import SAMPLE_SET_NAME

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
settings = ws.settings

st.title("Sweeps")
st.caption(
    "Run several assistant configurations over one question set and rank them. Identical retrievals, "
    "answers and scores are computed once for the whole sweep."
)
ui.flash("sweeps.flash")

active = ws.active_sweep_ids()
sweep_id: int | None = ss.get("sweeps.active_id")
if sweep_id is None and active:
    sweep_id = ss["sweeps.active_id"] = active[0]
running = sweep_id is not None and sweep_id in active


def _split(text: str) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


# --------------------------------------------------------------------------------------------
# New sweep
# --------------------------------------------------------------------------------------------
with st.container(border=True):
    sets = ui.question_sets()
    configs = ui.configs()
    names = [c.name for c in configs]
    labels = {c.name: c.label for c in configs}
    left, right = st.columns(2)
    with left:
        set_names = [s.name for s in sets]
        ui.ensure_choice("sweeps.set", set_names, default=SAMPLE_SET_NAME)
        qset = st.selectbox("Question set", set_names, key="sweeps.set", disabled=not set_names)
        ss.setdefault("sweeps.configs", names[:2])
        ss["sweeps.configs"] = [n for n in ss["sweeps.configs"] if n in names]
        chosen = st.multiselect(
            "Configurations", names, key="sweeps.configs", format_func=lambda n: labels.get(n, n)
        )
        st.page_link(ui.CONFIGS_PAGE, label="Create or edit configurations", icon=":material/tune:")
        name = st.text_input(
            "Sweep name (optional)", key="sweeps.name", placeholder="e.g. top-k × chunk size"
        )
    with right:
        with st.expander("Grid over a base configuration", expanded=not chosen):
            ui.ensure_choice("sweeps.base", names, default=DEFAULT_CONFIG_NAME)
            base = st.selectbox("Base", names, key="sweeps.base", format_func=lambda n: labels.get(n, n))
            g_topk = st.text_input("Top-k values", key="sweeps.grid_top_k", placeholder="2, 4, 8")
            g_chunk = st.text_input("Chunk sizes", key="sweeps.grid_chunk", placeholder="500, 900")
            g_model = st.text_input(
                "Answer models", key="sweeps.grid_model", placeholder="claude-haiku-4-5, claude-sonnet-4-5"
            )
            g_retrieval = st.multiselect("Retrieval", ["similarity", "mmr"], key="sweeps.grid_retrieval")
            st.caption(
                "Each combination becomes a configuration named after its values (saved when the sweep starts)."
            )
        backends = [b.value for b in Backend]
        ui.ensure_choice("sweeps.backend", backends, default=settings.default_backend)
        if not settings.has_key:
            ss["sweeps.backend"] = "offline"
        backend = st.radio(
            "Answers by", backends, key="sweeps.backend", horizontal=True, disabled=not settings.has_key
        )
        suites = [x.value for x in Suite if x != Suite.NONE and (x != Suite.JUDGE or settings.has_key)]
        ui.ensure_choice("sweeps.suite", suites, default=default_suite(settings).value)
        suite = st.selectbox("Metric suite", suites, key="sweeps.suite")

    grid: dict[str, list[str]] = {}
    for field, values in (
        ("top_k", _split(g_topk)),
        ("chunk_size", _split(g_chunk)),
        ("answer_model", _split(g_model)),
    ):
        if values:
            grid[field] = values
    if g_retrieval:
        grid["retrieval"] = list(g_retrieval)

    plan = None
    problem = None
    if running:
        problem = f"Sweep #{sweep_id} is in progress; wait for it or cancel it."
    elif not qset:
        problem = "Choose a question set."
    elif not chosen and not grid:
        problem = "Pick configurations, or give grid values."
    else:
        try:
            plan = ws.sweep_plan(
                qset,
                configs=chosen,
                grid=grid or None,
                base=base if grid else None,
                name=name,
                backend=backend,
                suite=suite,
                metrics=[m.name for m in suite_metrics(suite)],
            )
            plan.check(settings)
            est = ws.estimate_sweep(plan)
        except RagError as exc:
            problem = str(exc)
            plan = None
        else:
            lines = [
                f"**{len(plan.configs)} configurations × {len(plan.items)} questions**: "
                + ", ".join(ui.md(c.label) for c in plan.configs)
            ]
            if est.uses_claude:
                lines.append(
                    f"Estimated Claude usage: **{est.calls:,} calls · ≈ ${est.cost_usd:.2f}** "
                    f"(${est.alone_usd:.2f} as separate runs; cached judgements are free)."
                )
            else:
                lines.append("Offline: no API calls, no cost.")
            if est.builds:
                lines.append(
                    "First builds the chunked index: " + ", ".join(ui.md(b) for b in est.builds) + "."
                )
            st.info("  \n".join(lines), icon=":material/payments:")
    start = st.button(
        "Start sweep",
        key="sweeps.start",
        type="primary",
        disabled=plan is None or not ws.can(Role.ANALYST),
        icon=":material/play_arrow:",
        help=None if ws.can(Role.ANALYST) else "Starting sweeps needs the analyst role.",
    )
    if problem:
        st.caption(ui.md(problem))
    if start and plan is not None:
        try:
            new_id = ws.start_sweep(plan)
        except RagError as exc:
            st.error(ui.md(str(exc)))
        else:
            ss["sweeps.active_id"] = new_id
            ss["sweeps.show"] = new_id
            ss.pop("sweeps.refreshed", None)
            st.rerun()


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------
@st.fragment(run_every=1.0)
def sweep_progress(sid: int) -> None:
    p = ws.sweep_progress(sid)
    if p is None or p.finished:
        if ss.get("sweeps.refreshed") != sid:
            ss["sweeps.refreshed"] = sid
            st.rerun(scope="app")
        return
    run = p.run
    inner = f" · {run.phase}: {run.done}/{run.total}" if run is not None and run.total else ""
    frac = (p.done + (run.fraction if run is not None else 0.0)) / max(1, p.total)
    st.progress(
        min(1.0, frac),
        text=f"Configuration {min(p.done + 1, p.total)} of {p.total}: {ui.md(p.current_label)}{inner}",
    )
    st.caption(f"Elapsed {duration(p.elapsed_s)} · runs so far: " + ", ".join(f"#{r}" for r in p.run_ids))
    if ws.can_control_sweep(sid):  # its starter or an admin
        ui.cancel_button(
            "Cancel sweep",
            key="sweeps.cancel",
            cancel=lambda: ws.cancel_sweep(sid),
            done=f"Cancelling sweep #{sid}… finished runs are kept.",
        )


if running and sweep_id is not None:
    st.subheader(f"Sweep #{sweep_id} running")
    sweep_progress(sweep_id)

# --------------------------------------------------------------------------------------------
# Leaderboard
# --------------------------------------------------------------------------------------------
done = [s for s in ui.sweeps() if s.id not in active]
if not done:
    if not running:
        st.info("No sweeps yet: pick configurations above and start one.", icon=":material/info:")
    st.stop()

ids = [s.id for s in done]
by_id = {s.id: s for s in done}
if ss.get("sweeps.show") not in ids:
    ss["sweeps.show"] = ids[0]
shown = st.selectbox(
    "Sweep",
    ids,
    key="sweeps.show",
    format_func=lambda i: (
        f"#{i} · {by_id[i].name} · {by_id[i].created_at[:16].replace('T', ' ')} · {by_id[i].status}"
    ),
)
sweep = by_id[shown]
board = ui.leaderboard(shown)
c = sweep.counters
st.markdown(
    f"**{ui.md(sweep.name)}** · question set {ui.md(sweep.question_set or '—')} · {sweep.status} · "
    f"{duration(float(c.get('wall_s') or 0.0))}"
)
st.caption(
    f"Reused instead of recomputed: {c.get('retrievals_reused', 0)} retrievals, {c.get('answers_reused', 0)} "
    f"answers, {c.get('scores_reused', 0)} scorings, {c.get('embeddings_reused', 0)} embeddings, "
    f"{c.get('judge_cache_hits', 0)} judge-cache hits. Computed: {c.get('retrievals_computed', 0)} retrievals, "
    f"{c.get('answers_computed', 0)} answers, {c.get('scores_computed', 0)} scorings. Index builds: "
    f"{c.get('index_builds', 0)} ({duration(float(c.get('index_build_s') or 0.0))})."
)
if c.get("failure"):
    st.error(ui.md(c["failure"]))
ui.plot(leaderboard_figure(board), key="sweeps.fig_leaderboard")

rows = []
for pos, row in enumerate(board.rows, 1):
    item: dict[str, object] = {"#": pos, "Configuration": row.config, "Run": row.run_id}
    for mid in board.metric_ids:
        m = row.metrics.get(mid)
        if m is None or m.mean is None:
            item[metric(mid).label] = "—"
            continue
        mark = (
            " ▼ worse than best"
            if mid in row.worse
            else (" ★ best" if board.best.get(mid) == row.run_id else "")
        )
        ci = f" [{m.ci_low:.2f}, {m.ci_high:.2f}]" if m.ci_low is not None and m.ci_high is not None else ""
        item[metric(mid).label] = f"{m.mean:.3f}{ci}{mark}"
    item["Cost ($)"] = row.cost_usd
    item["Answer latency (s)"] = row.latency_s
    item["Status"] = row.status
    rows.append(item)
st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    width="stretch",
    key="sweeps.table",
    column_config={
        "Run": st.column_config.NumberColumn(format="#%d", width="small"),
        "Cost ($)": st.column_config.NumberColumn(format="$%.4f"),
        "Answer latency (s)": st.column_config.NumberColumn(format="%.2f"),
    },
)
worse = [(row, mid, d) for row in board.rows for mid, d in row.worse.items()]
if worse:
    st.warning(
        "  \n".join(
            f"**{ui.md(row.config)}** is significantly worse than the best on {ui.md(metric(mid).label)}: "
            f"{d.diff:+.3f} (95 % CI {d.ci_low:+.3f} to {d.ci_high:+.3f}, p = {d.p_holm:.3g} Holm)"
            for row, mid, d in worse
            if d.diff is not None and d.ci_low is not None and d.ci_high is not None and d.p_holm is not None
        ),
        icon=":material/trending_down:",
    )
else:
    st.success("No configuration is significantly worse than the best on any metric with these questions.")
st.caption(
    "Mean and 95 % bootstrap confidence interval over the questions. ▼: a paired test against the best "
    "configuration, Holm-corrected across the configurations, says it is worse. Cost is what each run was "
    "billed; answers and judgements reused from an earlier configuration of the sweep cost nothing again."
)
if len(board.rows) >= 2 and st.button(
    "Compare the top two in History", key="sweeps.compare", icon=":material/compare_arrows:"
):
    ss["history.baseline"] = board.rows[1].run_id
    ss["history.candidate"] = board.rows[0].run_id
    ss["history.last_tab"] = "Compare runs"
    st.switch_page(ui.HISTORY_PAGE)
