"""History: every run in a table, baseline-vs-candidate comparison, charts, per-question drill-down."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages._format import duration, metric_line, speedup_line
from rag_core.errors import RagError
from rag_core.reporting import figures, frames
from rag_core.vocab import metric as metric_spec

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
RECENT_FOR_BARS = 20

st.title("History")
ui.flash("history.flash")
runs = ui.runs()
if not runs:
    st.info("No runs yet — start one on the Run page.", icon=":material/info:")
    st.page_link(ui.RUN_PAGE, label="Go to Run", icon=":material/arrow_forward:")
    st.stop()

by_id = {r.id: r for r in runs}
ids = [r.id for r in runs]  # newest first


def label(run_id: int) -> str:
    r = by_id.get(run_id)
    return ui.run_label(r) if r else f"#{run_id}"


# --------------------------------------------------------------------------------------------
# Runs table
# --------------------------------------------------------------------------------------------
table = ui.runs_table()
metric_cols = [
    c
    for c in table.columns
    if c
    not in {
        "Run",
        "Date",
        "Question set",
        "Collection",
        "Backend",
        "Mode",
        "Suite",
        "Status",
        "Questions",
        "Errors",
        "Speedup",
        "Cost ($)",
        "Time (s)",
    }
]
config = {
    "Run": st.column_config.NumberColumn("Run", format="#%d", width="small"),
    "Backend": st.column_config.TextColumn(width="small"),
    "Mode": st.column_config.TextColumn(width="small"),
    "Suite": st.column_config.TextColumn(width="small"),
    "Questions": st.column_config.NumberColumn(width="small"),
    "Errors": st.column_config.NumberColumn(width="small"),
    "Date": st.column_config.DatetimeColumn("Date (UTC)", format="YYYY-MM-DD HH:mm"),
    "Speedup": st.column_config.NumberColumn("Speedup", format="%.1f×"),
    "Cost ($)": st.column_config.NumberColumn("Cost ($)", format="$%.4f"),
    "Time (s)": st.column_config.NumberColumn("Time (s)", format="%.1f"),
    **{c: st.column_config.NumberColumn(c, format="%.2f") for c in metric_cols},
}
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=min(420, 38 + 35 * len(table)),
    column_config=config,
    key="history.table",
)
st.caption(
    f"{len(runs)} run{'s' if len(runs) != 1 else ''}. Metric columns are means over the questions "
    "each metric could score."
)

TABS = ["Compare runs", "Charts", "Run details"]


def _remember_tab() -> None:
    ss["history.last_tab"] = ss.get("history.tab")


# Tabs track which one is open (on_change), so only the open tab's charts are computed and sent.
last_tab = ss.get("history.last_tab")
compare_tab, charts_tab, details_tab = st.tabs(
    TABS,
    key="history.tab",
    on_change=_remember_tab,
    default=last_tab if last_tab in TABS else ("Compare runs" if len(runs) > 1 else "Charts"),
)

# --------------------------------------------------------------------------------------------
# Compare
# --------------------------------------------------------------------------------------------
with compare_tab:
    if compare_tab.open:
        if len(ids) < 2:
            st.info("Comparing needs two runs — start another one on the Run page (e.g. with other options).")
        else:
            ui.ensure_choice("history.baseline", ids, default=ids[1])
            ui.ensure_choice("history.candidate", ids, default=ids[0])
            c1, c2 = st.columns(2)
            base_id = c1.selectbox(
                "Baseline", ids, key="history.baseline", format_func=label, persist_state="session"
            )
            cand_id = c2.selectbox(
                "Candidate", ids, key="history.candidate", format_func=label, persist_state="session"
            )
            try:
                cmp = ui.compare(base_id, cand_id)
            except RagError as exc:
                st.error(ui.md(str(exc)))
                cmp = None
            if cmp is not None:
                for w in cmp.warnings:
                    st.warning(ui.md(w), icon=":material/warning:")
                ui.plot(
                    figures.metric_compare_figure(cmp.baseline_row, cmp.candidate_row),
                    key="history.fig_compare",
                )
                deltas = cmp.deltas
                metrics = [c.split(":", 1)[1] for c in deltas.columns if c.startswith("delta:")]
                if deltas.empty or not metrics:
                    st.caption("No per-question scores to compare.")
                else:
                    if cmp.regressions:
                        st.warning(
                            f"{cmp.regressions} question{'s' if cmp.regressions != 1 else ''} regressed by "
                            f"more than {frames.REGRESSION_THRESHOLD:.2f} on at least one metric (flagged ▼)."
                        )
                    else:
                        st.success(
                            f"No question dropped by more than {frames.REGRESSION_THRESHOLD:.2f} on any metric."
                        )
                    view = pd.DataFrame(
                        {
                            "Q": [f"Q{int(i) + 1}" for i in deltas["index"]],
                            "Flag": ["▼ regression" if r else "" for r in deltas["regression"]],
                            "Question": deltas["question"],
                        }
                    )
                    col_cfg: dict = {"Question": st.column_config.TextColumn("Question", width="large")}
                    for m in metrics:
                        name = frames.metric_label(m)
                        view[f"{name} base"] = deltas[f"base:{m}"]
                        view[f"{name} cand"] = deltas[f"cand:{m}"]
                        view[f"{name} Δ"] = deltas[f"delta:{m}"]
                        col_cfg[f"{name} base"] = st.column_config.NumberColumn(format="%.2f")
                        col_cfg[f"{name} cand"] = st.column_config.NumberColumn(format="%.2f")
                        col_cfg[f"{name} Δ"] = st.column_config.NumberColumn(format="%+.2f")
                    only_reg = st.toggle(
                        "Show regressions only", key="history.only_regressions", persist_state="session"
                    )
                    if only_reg:
                        view = view[deltas["regression"].to_numpy()]
                    st.dataframe(
                        view, hide_index=True, width="stretch", column_config=col_cfg, key="history.deltas"
                    )

# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------
with charts_tab:
    if charts_tab.open:
        runs_df = ui.runs_frame()
        recent = runs_df.tail(RECENT_FOR_BARS)
        ui.plot(figures.speedup_figure(recent), key="history.fig_speedup")
        ui.plot(figures.phase_figure(recent), key="history.fig_phases")
        if len(runs_df) > RECENT_FOR_BARS:
            st.caption(f"Bar charts show the latest {RECENT_FOR_BARS} runs; trends show all {len(runs_df)}.")
        ui.plot(figures.metric_trend_figure(runs_df), key="history.fig_trend")

        st.markdown("#### One run in detail")
        ui.ensure_choice("history.timeline_run", ids, default=ss.get("history.candidate", ids[0]))
        tl_id = st.selectbox(
            "Run", ids, key="history.timeline_run", format_func=label, persist_state="session"
        )
        ui.plot(
            figures.timeline_figure(frames.timeline_frame(ui.requests(tl_id))), key="history.fig_timeline"
        )
        st.caption(
            "Each bar is one request, from start to end. With async execution the bars overlap — "
            "that overlap is the speedup."
        )
        ui.plot(figures.heatmap_figure(ui.results_frame(tl_id)), key="history.fig_heatmap")

# --------------------------------------------------------------------------------------------
# Run details and drill-down
# --------------------------------------------------------------------------------------------
with details_tab:
    if details_tab.open:
        ui.ensure_choice("history.run", ids, default=ss.get("history.candidate", ids[0]))
        run_id = st.selectbox("Run", ids, key="history.run", format_func=label, persist_state="session")
        run = by_id[run_id]
        s = ui.summary(run_id)
        cfg = run.config or {}
        st.markdown(
            f"**Status:** {run.status} · **Questions:** {run.n_questions} · **Backend:** {run.backend} · "
            f"**Mode:** {run.mode} · **Concurrency:** {cfg.get('concurrency', '—')} · **Top-k:** "
            f"{cfg.get('top_k', '—')} · **Suite:** {run.suite} · **Total time:** "
            f"{duration(s.timings.total_s)}"
            + (f" over {s.timings.attempts} attempts" if s.timings.attempts > 1 else "")
        )
        facts = [f"**{ui.md(m.label)}:** {metric_line(m)}" for m in s.metrics]
        line = speedup_line(s.generation)
        if line:
            facts.append(f"**Speedup:** {line}")
        if s.usage.cost_usd:
            facts.append(
                f"**Cost:** ≈ ${s.usage.cost_usd:.4f} (answers ${s.usage.answer_cost_usd:.4f} in "
                f"{s.usage.answer_calls} calls, judge ${s.usage.judge_cost_usd:.4f} in {s.usage.judge_calls} calls)"
            )
        if s.failure:
            facts.append(f"**Failure:** {ui.md(s.failure)}")
        used = cfg.get("documents") or []
        if cfg.get("collection"):
            listed = ", ".join(f"{ui.md(d.get('name'))} v{d.get('version')}" for d in used[:8])
            more = f", … ({len(used)} in all)" if len(used) > 8 else ""
            facts.append(f"**Documents:** {ui.md(cfg['collection'])} — {listed}{more}")
        if facts:
            st.markdown("  \n".join(facts))

        slug = f"run-{run_id}"
        row = st.container(horizontal=True)
        try:
            row.download_button(
                "Export CSV",
                ui.export_run(run_id, "csv"),
                file_name=f"{slug}.csv",
                mime="text/csv",
                key="history.export_csv",
                on_click="ignore",
                icon=":material/download:",
            )
            row.download_button(
                "Export JSON",
                ui.export_run(run_id, "json"),
                file_name=f"{slug}.json",
                mime="application/json",
                key="history.export_json",
                on_click="ignore",
                icon=":material/download:",
            )
        except RagError as exc:
            st.error(ui.md(str(exc)))
        if run.status in ("cancelled", "interrupted", "failed") and row.button(
            "Resume", key="history.resume", icon=":material/replay:"
        ):
            try:
                ss["run.active_id"] = ws.resume_run(run_id)
                ss.pop("run.refreshed", None)
            except RagError as exc:
                st.error(ui.md(str(exc)))
            else:
                st.switch_page(ui.RUN_PAGE)
        if row.button("Delete…", key="history.delete", icon=":material/delete:"):
            ss["history.confirm_delete"] = run_id
        if ss.get("history.confirm_delete") == run_id:
            st.warning(
                f"Delete run #{run_id} with all its answers, scores and timings? This cannot be undone."
            )
            confirm = st.container(horizontal=True)
            if confirm.button(f"Yes, delete run #{run_id}", key="history.delete_confirm", type="primary"):
                try:
                    ws.delete_run(run_id)
                except RagError as exc:
                    st.error(ui.md(str(exc)))
                else:
                    ss.pop("history.confirm_delete", None)
                    for k in ("history.run", "history.baseline", "history.candidate", "history.timeline_run"):
                        if ss.get(k) == run_id:
                            ss.pop(k, None)
                    if ss.get("run.active_id") == run_id:
                        ss.pop("run.active_id", None)
                    ss["history.flash"] = ("success", f"Deleted run #{run_id}.")
                    st.rerun()
            if confirm.button("Keep it", key="history.delete_cancel"):
                ss.pop("history.confirm_delete", None)
                st.rerun()

        res = ui.results(run_id)
        frame = ui.results_frame(run_id)
        if not res:
            st.caption("This run has no results.")
            st.stop()
        overview = pd.DataFrame(
            {
                "Q": [f"Q{r.index + 1}" for r in res],
                "Question": [r.question for r in res],
                "Answer": [r.answer if r.answer is not None else f"⚠ {r.error or r.status}" for r in res],
                "Latency (s)": [r.latency_s for r in res],
                "Tokens": [r.input_tokens + r.output_tokens for r in res],
            }
        )
        for col in frames.metric_columns(frame):
            overview[frames.metric_label(col)] = frame[col].to_numpy()
        st.dataframe(
            overview,
            hide_index=True,
            width="stretch",
            key="history.results",
            column_config={
                "Question": st.column_config.TextColumn(width="medium"),
                "Answer": st.column_config.TextColumn(width="large"),
                "Latency (s)": st.column_config.NumberColumn(format="%.2f"),
                **{
                    frames.metric_label(c): st.column_config.NumberColumn(format="%.2f")
                    for c in frames.metric_columns(frame)
                },
            },
        )

        st.markdown("#### Question drill-down")
        qids = [r.index for r in res]
        ui.ensure_choice("history.question", qids)
        q_idx = st.selectbox(
            "Question",
            qids,
            key="history.question",
            persist_state="session",
            format_func=lambda i: f"Q{i + 1} · " + re.sub(r"\s+", " ", res[i].question)[:90],
        )
        r = res[q_idx]
        with st.container(border=True):
            st.markdown(f"**Question**  \n{ui.md(r.question)}")
            st.markdown(f"**Ground truth**  \n{ui.md(r.ground_truth) if r.ground_truth else '—'}")
            if r.answer is not None:
                st.markdown(f"**Answer**  \n{ui.md(r.answer)}")
            else:
                st.error(
                    f"No answer ({ui.md(r.error_kind or r.status)}): {ui.md(r.error or 'not answered yet')}"
                )
            lat = "—" if r.latency_s is None or not math.isfinite(r.latency_s) else f"{r.latency_s:.2f} s"
            st.caption(
                f"Latency {lat} · {r.attempts} attempt{'s' if r.attempts != 1 else ''} · "
                f"{r.input_tokens:,} input / {r.output_tokens:,} output tokens · model {ui.md(r.model or '—')}"
            )
        if r.scores:
            st.markdown("**Metrics**")
            table = pd.DataFrame(
                {
                    "Metric": [metric_spec(name, run.suite).label for name in r.scores],
                    "Value": pd.Series([sc.value for sc in r.scores.values()], dtype=float),
                    "± stdev": pd.Series([sc.stdev for sc in r.scores.values()], dtype=float),
                    "Reason or error": [sc.reason or sc.error or "" for sc in r.scores.values()],
                    "Cached": [sc.cached for sc in r.scores.values()],
                }
            )
            if table["± stdev"].isna().all():  # judged once: no spread to show
                table = table.drop(columns="± stdev")
            st.dataframe(
                table,
                hide_index=True,
                width="stretch",
                key="history.scores",
                column_config={
                    "Value": st.column_config.NumberColumn(format="%.3f"),
                    "± stdev": st.column_config.NumberColumn(format="%.3f"),
                    "Reason or error": st.column_config.TextColumn(width="large"),
                },
            )
            for name, sc in r.scores.items():
                detail = sc.reason or sc.error
                if not detail:
                    continue
                with st.expander(
                    f"Why {metric_spec(name, run.suite).label} = "
                    f"{'failed' if sc.value is None else f'{sc.value:.2f}'}"
                ):
                    try:
                        st.json(json.loads(detail), expanded=2)
                    except ValueError:
                        st.markdown(ui.md(detail))
        st.markdown(f"**Retrieved chunks** ({len(r.contexts)})")
        version_of = {d.get("sha256"): d.get("version") for d in used}
        for n_chunk, ctx in enumerate(r.contexts, 1):
            page_no = int(ctx.get("page") or 0)
            section = str(ctx.get("section") or "")
            v = version_of.get(ctx.get("doc_sha256"))
            # "1. handbook.pdf · page 3 · score 0.512 · 2. Annual Leave · v1" (no page for Word/HTML)
            with st.expander(
                f"{n_chunk}. {ui.md(ctx.get('source', '?'))}"
                + (f" · page {page_no}" if page_no else "")
                + f" · score {float(ctx.get('score', 0.0)):.3f}"
                + (f" · {ui.md(section)}" if section else "")
                + (f" · v{v}" if v else "")
            ):
                st.markdown(ui.md(ctx.get("text", "")))
