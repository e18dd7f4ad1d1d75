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
from rag_core.evaluation.agreement import DISAGREE_KAPPA, MIN_VERDICTS, AgreementReport
from rag_core.evaluation.agreement import warm as warm_agreement
from rag_core.reporting import figures, frames
from rag_core.reporting.diff import identity_facts
from rag_core.reporting.experiment_figures import comparison_figure
from rag_core.vocab import metric as metric_spec
from rag_core.workspace import Comparison

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
warm_agreement()  # scikit-learn loads in the background before the comparison needs it
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


def _risky(value: object) -> str:
    """Red for answers given where the assistant should have declined."""
    return "color: #C8505B; font-weight: 700" if isinstance(value, (int, float)) and value > 0 else ""


def _tick(value: object) -> str:
    """✓ / ✗ for correct / not correct, ? when nothing decided it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return "✓" if bool(value) else "✗"


def agreement_table(report: AgreementReport) -> None:
    """Each metric's agreement with the analyst (κ, cut-off, ρ, confusion table), flagged ⚠."""
    if not report.enough:
        st.caption(
            f"Metric-vs-analyst agreement appears once these runs have {MIN_VERDICTS} answers with a "
            f"verdict ({report.n_verdicts} so far) — give verdicts on the Review page."
        )
        return
    st.markdown(f"**Do the metrics agree with the analyst?** ({report.n_verdicts} answers with a verdict)")
    st.dataframe(
        pd.DataFrame(
            {
                "Metric": [("⚠ " if m.disagrees else "") + m.label for m in report.metrics],
                "Answers": [m.n for m in report.metrics],
                "κ (best cut-off)": pd.Series([m.kappa for m in report.metrics], dtype=float),
                "Cut-off": pd.Series([m.cutoff for m in report.metrics], dtype=float),
                "Spearman ρ": pd.Series([m.spearman for m in report.metrics], dtype=float),
                "Analyst correct: pass / fail": [
                    f"{m.confusion[0][0]} / {m.confusion[0][1]}" for m in report.metrics
                ],
                "Analyst not correct: pass / fail": [
                    f"{m.confusion[1][0]} / {m.confusion[1][1]}" for m in report.metrics
                ],
                "Note": [m.note for m in report.metrics],
            }
        ),
        hide_index=True,
        width="stretch",
        key="history.agreement",
        column_config={
            "κ (best cut-off)": st.column_config.NumberColumn(format="%.2f"),
            "Cut-off": st.column_config.NumberColumn(format="≥ %.2f"),
            "Spearman ρ": st.column_config.NumberColumn(format="%.2f"),
        },
    )


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
        "Name",
        "Config",
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
        "Correct",
        "Correct by",
        "Answered, should decline",
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
    "Correct": st.column_config.TextColumn("Correct", help="N of M answers correct (the headline)"),
    "Correct by": st.column_config.TextColumn(
        "Correct by", help="Your verdicts (Review page), key facts and declines, or both"
    ),
    "Answered, should decline": st.column_config.NumberColumn(
        "Answered, should decline",
        format="%d",
        help="Questions the policy does not cover that the assistant answered anyway (guesses)",
    ),
    **{c: st.column_config.NumberColumn(c, format="%.2f") for c in metric_cols},
}
st.dataframe(
    table.style.map(_risky, subset=["Answered, should decline"]),
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
QUESTION_CHANGES = {
    "added": "added",
    "removed": "removed",
    "edited": "expected answer edited",
    "reworded": "reworded",
}


def show_changes(cmp: Comparison) -> None:
    """What changed between the two runs, above their comparison."""
    changes = cmp.changes
    if changes is None:
        return
    with st.container(border=True, key="history.changes"):
        st.markdown(f"**What changed from #{changes.baseline} to #{changes.candidate}**")
        if changes.same:
            st.caption(
                "Nothing that is recorded: same configuration, questions, documents, settings and code."
            )
        fields = [*changes.config, *changes.run, *changes.question_set, *changes.code]
        if fields:
            st.dataframe(
                pd.DataFrame(
                    {
                        "What": [c.label for c in fields],
                        "Baseline": [
                            "(text, see the diff)" if c.text_diff else str(c.before) for c in fields
                        ],
                        "Candidate": [
                            "(text, see the diff)" if c.text_diff else str(c.after) for c in fields
                        ],
                    }
                ),
                hide_index=True,
                width="stretch",
                key="history.changes_table",
            )
        for c in fields:
            if c.text_diff:
                with st.expander(f"{c.label}: text diff"):
                    st.code("\n".join(c.text_diff), language="diff")
        if changes.questions:
            counts = pd.Series([q.kind for q in changes.questions]).value_counts()
            summary = ", ".join(f"{n} {QUESTION_CHANGES[k]}" for k, n in counts.items())
            with st.expander(f"Questions: {summary}"):
                st.dataframe(
                    pd.DataFrame(
                        {
                            "Change": [QUESTION_CHANGES[q.kind] for q in changes.questions],
                            "Question": [q.question for q in changes.questions],
                            "Before": [q.before or "" for q in changes.questions],
                            "After": [q.after or "" for q in changes.questions],
                        }
                    ),
                    hide_index=True,
                    width="stretch",
                    key="history.changes_questions",
                )
        if changes.documents:
            st.markdown("Documents: " + "; ".join(f"{ui.md(d.name)} {d.kind}" for d in changes.documents))
        for line in changes.unknown:
            st.caption(ui.md(line))


def show_statistics(cmp: Comparison) -> None:
    """Per metric: both means with CIs, the paired difference, its test and verdict."""
    ui.plot(
        comparison_figure(cmp.stats, cmp.baseline.id, cmp.candidate.id)
        if cmp.stats
        else figures.metric_compare_figure(cmp.baseline_row, cmp.candidate_row, cmp.disagreeing),
        key="history.fig_compare",
    )
    if not cmp.stats:
        return
    table = pd.DataFrame(
        {
            "Metric": [s.label for s in cmp.stats],
            "Verdict": [str(s.verdict) for s in cmp.stats],
            "Baseline": [s.mean_a for s in cmp.stats],
            "Candidate": [s.mean_b for s in cmp.stats],
            "Δ": [s.diff for s in cmp.stats],
            "95 % CI of Δ": [
                "—" if s.ci_low is None or s.ci_high is None else f"{s.ci_low:+.3f} to {s.ci_high:+.3f}"
                for s in cmp.stats
            ],
            "p (Holm)": [s.p_holm for s in cmp.stats],
            "Questions": [s.n_paired for s in cmp.stats],
            "Smallest detectable Δ": [s.mde for s in cmp.stats],
        }
    )
    if any(s.judge_noise is not None for s in cmp.stats):
        table["Judge noise ±"] = [s.judge_noise for s in cmp.stats]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="history.stats",
        column_config={
            "Baseline": st.column_config.NumberColumn(format="%.3f"),
            "Candidate": st.column_config.NumberColumn(format="%.3f"),
            "Δ": st.column_config.NumberColumn(format="%+.3f"),
            "p (Holm)": st.column_config.NumberColumn(format="%.3g"),
            "Smallest detectable Δ": st.column_config.NumberColumn(format="%.3f"),
            "Judge noise ±": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(
        "Paired over the questions both runs scored: Δ = candidate − baseline with a 95 % bootstrap "
        "confidence interval; p from a paired permutation test, Holm-corrected across the metrics. "
        "*Better*/*worse* only when both agree; otherwise the difference is within what these questions "
        "can tell apart from noise (see the smallest detectable Δ)."
    )
    st.download_button(
        "Download the comparison (JSON)",
        json.dumps(ws.compare_json(cmp.baseline.id, cmp.candidate.id), indent=2),
        file_name=f"compare-{cmp.baseline.id}-{cmp.candidate.id}.json",
        mime="application/json",
        key="history.compare_json",
        on_click="ignore",
        icon=":material/download:",
    )


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
                heads = st.columns(2)
                for col, run_label_, h in (
                    (heads[0], f"Baseline #{base_id}", cmp.baseline_headline),
                    (heads[1], f"Candidate #{cand_id}", cmp.candidate_headline),
                ):
                    col.metric(
                        run_label_,
                        "—" if h is None else f"{h.correct} of {h.total} correct",
                        border=True,
                        help=None if h is None else h.text,
                    )
                    if h is not None:
                        col.caption(ui.md(h.text))
                for w in cmp.warnings:
                    st.warning(ui.md(w), icon=":material/warning:")
                show_changes(cmp)
                show_statistics(cmp)
                if cmp.agreement is not None:
                    agreement_table(cmp.agreement)
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
                            "Correct base": [_tick(c) for c in deltas["base:correct"]],
                            "Correct cand": [_tick(c) for c in deltas["cand:correct"]],
                            "Question": deltas["question"],
                        }
                    )
                    col_cfg: dict = {"Question": st.column_config.TextColumn("Question", width="large")}
                    for m in metrics:
                        name = frames.metric_label(m) + (" ⚠" if m in cmp.disagreeing else "")
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
        labelled = tuple(ws.runs_with_verdicts())
        trend_flags = ui.agreement(labelled).disagreeing if labelled else frozenset()
        ui.plot(figures.metric_trend_figure(runs_df, trend_flags), key="history.fig_trend")
        if trend_flags:
            st.caption(
                "⚠ marks metrics that disagree with the analyst's verdicts over every reviewed run "
                f"(κ below {DISAGREE_KAPPA})."
            )

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
        ui.plot(
            figures.heatmap_figure(ui.results_frame(tl_id), ui.agreement((tl_id,)).disagreeing),
            key="history.fig_heatmap",
        )

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
        if run.name or run.note:
            st.markdown(
                f"**{ui.md(run.name or 'Unnamed run')}**" + (f"  \n{ui.md(run.note)}" if run.note else "")
            )
        facts_id = identity_facts(run.identity)
        if facts_id:
            st.caption("  \n".join(f"{ui.md(k)}: {ui.md(v)}" for k, v in facts_id.items()))
        st.caption(f"Started by {ui.md(ws.run_owner(run_id))}")
        can_control = ws.can_control_run(run_id)  # its starter (an analyst) or an admin
        with (
            st.popover("Name / note", icon=":material/edit:", disabled=not can_control),
            st.form(f"history.label_form.{run_id}", border=False),
        ):
            new_name = st.text_input("Name", run.name or "", key=f"history.label_name.{run_id}")
            new_note = st.text_area("Note", run.note or "", key=f"history.label_note.{run_id}")
            if st.form_submit_button("Save", key=f"history.label_save.{run_id}"):
                try:
                    ws.label_run(run_id, name=new_name, note=new_note)
                except RagError as exc:
                    st.error(ui.md(str(exc)))
                else:
                    ss["history.flash"] = ("success", f"Saved the name and note of run #{run_id}.")
                    st.rerun()
        st.markdown(
            f"**Status:** {run.status} · **Questions:** {run.n_questions} · **Backend:** {run.backend} · "
            f"**Mode:** {run.mode} · **Concurrency:** {cfg.get('concurrency', '—')} · **Top-k:** "
            f"{cfg.get('top_k', '—')} · **Suite:** {run.suite} · **Total time:** "
            f"{duration(s.timings.total_s)}"
            + (f" over {s.timings.attempts} attempts" if s.timings.attempts > 1 else "")
        )
        if s.headline is not None and s.headline.total:
            st.markdown(f"#### {ui.md(s.headline.text)}")
        d = s.declines
        if d is not None and (d.should_decline or d.declined_when_should_answer):
            risky = d.answered_when_should_decline
            st.markdown(
                f"**Declined when it should:** {d.declined_when_should} of {d.should_decline} · "
                + (
                    f":red[**Answered when it should have declined: {risky}**]"
                    if risky
                    else "**Answered when it should have declined:** 0"
                )
                + (
                    f" · **Declined a question the policy covers:** {d.declined_when_should_answer}"
                    if d.declined_when_should_answer
                    else ""
                )
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
        if s.answered and row.button("Review answers", key="history.review", icon=":material/rate_review:"):
            ss["review.run"] = run_id
            st.switch_page(ui.REVIEW_PAGE)
        if (
            can_control
            and run.status in ("cancelled", "interrupted", "failed")
            and row.button("Resume", key="history.resume", icon=":material/replay:")
        ):
            try:
                ss["run.active_id"] = ws.resume_run(run_id)
                ss.pop("run.refreshed", None)
            except RagError as exc:
                st.error(ui.md(str(exc)))
            else:
                st.switch_page(ui.RUN_PAGE)
        if can_control and row.button("Delete…", key="history.delete", icon=":material/delete:"):
            ss["history.confirm_delete"] = run_id
        if can_control and ss.get("history.confirm_delete") == run_id:
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
                "Correct": [_tick(c) for c in frame["correct"]],
                "By": frame["correct_by"].to_numpy(),
                "Verdict": [v or "" for v in frame["verdict"]],
                "Question": [r.question for r in res],
                "Answer": [r.answer if r.answer is not None else f"⚠ {r.error or r.status}" for r in res],
                "Latency (s)": [r.latency_s for r in res],
                "Tokens": [r.input_tokens + r.output_tokens for r in res],
            }
        )
        for col in frames.metric_columns(frame):
            overview[frames.metric_label(col)] = frame[col].to_numpy()
        stale = ws.stale_flags(run.question_set, since=run.created_at)  # issue 14
        if stale:
            overview.insert(
                1, "Policy", ["⚠ review: the policy changed" if r.question in stale else "" for r in res]
            )
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
        if ss.get("history.question_run") != run_id:
            # Another run: same question number, new labels. The browser keeps the label it
            # shows until it is sent a value, so assign it (an assignment is sent; an unchanged
            # widget value is not) — else it would show, and send back, the old run's label.
            ss["history.question"] = ss["history.question"]
            ss["history.question_run"] = run_id
        q_idx = st.selectbox(
            "Question",
            qids,
            key="history.question",
            persist_state="session",
            format_func=lambda i: f"Q{i + 1} · " + re.sub(r"\s+", " ", res[i].question)[:90],
        )
        r = res[q_idx]
        with st.container(border=True):
            verdict = ui.verdicts(run_id).get(q_idx)
            decided = frame.loc[frame["index"] == q_idx]
            if not decided.empty:
                c_row = decided.iloc[0]
                st.caption(
                    f"Expected: {c_row['expected']} · correct: {_tick(c_row['correct'])} (by "
                    f"{c_row['correct_by']})"
                    + (
                        f" · verdict {verdict.verdict}"
                        + (f" (inherited from run #{verdict.inherited_from})" if verdict.inherited else "")
                        + (f": {ui.md(verdict.comment)}" if verdict.comment else "")
                        if verdict
                        else ""
                    )
                )
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
                    "Reason or error": [
                        ("skipped — " if sc.skipped else "") + (sc.reason or sc.error or "")
                        for sc in r.scores.values()
                    ],
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
                state = "skipped" if sc.skipped else ("failed" if sc.value is None else f"{sc.value:.2f}")
                with st.expander(f"Why {metric_spec(name, run.suite).label} = {state}"):
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
