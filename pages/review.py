"""Review: the analyst marks answers correct / partly / wrong, one at a time, from the keyboard.

Each verdict is saved the moment it is given (``Workspace.label``) and the page moves on to the
next answer without a verdict, so closing the tab loses nothing and coming back resumes where the
review stopped. Keys: 1 correct · 2 partly · 3 wrong · ← previous · → next (Streamlit button
shortcuts; they do not fire while typing in the comment box). Once the run has enough verdicts the
agreement of every metric with them is shown below.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import streamlit as st

from pages import _shared as ui
from rag_core.access import Role
from rag_core.errors import RagError
from rag_core.evaluation.agreement import DISAGREE_KAPPA, MIN_VERDICTS
from rag_core.evaluation.agreement import warm as warm_agreement
from rag_core.runs.correctness import correctness
from rag_core.storage import ResultRecord
from rag_core.vocab import Expected, Verdict
from rag_core.vocab import metric as metric_spec

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
CAN_LABEL = ws.can(Role.ANALYST)  # viewers read the answers and verdicts only
warm_agreement()  # scikit-learn loads in the background while the analyst reads the first answers

#: Keyboard shortcut and button label per verdict.
VERDICT_KEYS = {Verdict.CORRECT: "1", Verdict.PARTLY: "2", Verdict.WRONG: "3"}
VERDICT_LABELS = {Verdict.CORRECT: "Correct", Verdict.PARTLY: "Partly", Verdict.WRONG: "Wrong"}
VERDICT_ICONS = {
    Verdict.CORRECT: ":material/check_circle:",
    Verdict.PARTLY: ":material/contrast:",
    Verdict.WRONG: ":material/cancel:",
}
_CITATION = re.compile(r"\(([^()]+?),\s*p\.\s*(\d+)\)")


def pos_key(run_id: int) -> str:
    return f"review.pos.{run_id}"


def comment_key(run_id: int, index: int) -> str:
    return f"review.comment.{run_id}.{index}"


# --- callbacks (run before the script: they save at once and move on) ------------------------
def _give(run_id: int, index: int, verdict: str) -> None:
    comment = ss.get(comment_key(run_id, index)) or ""
    try:
        ws.label(run_id, index, verdict, comment)
    except RagError as exc:
        ss["review.flash"] = ("error", ui.md(str(exc)))
        return
    ss["review.flash"] = ("saved", f"Q{index + 1}: {verdict}")
    nxt = ws.next_to_review(run_id, after=index)
    if nxt is not None:
        ss[pos_key(run_id)] = nxt


def _comment_changed(run_id: int, index: int) -> None:
    """A comment edited on an answer that already has a verdict of its own is saved at once."""
    own = ws.verdicts(run_id).get(index)
    if own is not None and not own.inherited:
        _keep_position = ss.get(pos_key(run_id))
        try:
            ws.label(run_id, index, str(own.verdict), ss.get(comment_key(run_id, index)) or "")
        except RagError as exc:
            ss["review.flash"] = ("error", ui.md(str(exc)))
            return
        ss["review.flash"] = ("saved", f"Q{index + 1}: comment saved")
        ss[pos_key(run_id)] = _keep_position


def _move(run_id: int, order: list[int], step: int) -> None:
    current = ss.get(pos_key(run_id), order[0])
    i = order.index(current) if current in order else 0
    ss[pos_key(run_id)] = order[(i + step) % len(order)]


def _clear(run_id: int, index: int) -> None:
    try:
        ws.clear_label(run_id, index)
    except RagError as exc:
        ss["review.flash"] = ("error", ui.md(str(exc)))
        return
    ss.pop(comment_key(run_id, index), None)
    ss["review.flash"] = ("saved", f"Q{index + 1}: verdict cleared")


# --------------------------------------------------------------------------------------------
st.title("Review answers")
flash = ss.pop("review.flash", None)
if flash:
    kind, text = flash
    if kind == "error":
        st.error(text)
    else:
        st.toast(f"Saved · {text}", icon=":material/done:")

runs = [r for r in ui.runs() if r.status != "running"]
if not runs:
    st.info("No finished runs yet — start one on the Run page, then review its answers here.")
    st.page_link(ui.RUN_PAGE, label="Go to Run", icon=":material/arrow_forward:")
    st.stop()
by_id = {r.id: r for r in runs}
ids = [r.id for r in runs]
ui.ensure_choice("review.run", ids, default=ids[0])
run_id = st.selectbox(
    "Run", ids, key="review.run", format_func=lambda i: ui.run_label(by_id[i]), persist_state="session"
)

results: list[ResultRecord] = ui.results(run_id)
verdicts = ui.verdicts(run_id)
order = [r.index for r in results if r.answer is not None]
if not order:
    st.info("This run has no answers to review.")
    st.stop()
if ss.get(pos_key(run_id)) not in order:  # first visit (or the question is gone): resume
    ss[pos_key(run_id)] = ws.next_to_review(run_id) if ws.next_to_review(run_id) is not None else order[0]
index: int = ss[pos_key(run_id)]
r = results[index]
v = verdicts.get(index)

# --- progress --------------------------------------------------------------------------------
done = sum(1 for i in order if i in verdicts)
inherited = sum(1 for i in order if i in verdicts and verdicts[i].inherited)
summary = ui.summary(run_id)
st.progress(
    done / len(order),
    text=f"Reviewed {done} of {len(order)} answers"
    + (f" ({inherited} inherited from identical earlier answers)" if inherited else "")
    + (f" · {summary.headline.text}" if summary.headline else ""),
)
if done == len(order):
    st.success("Every answer of this run has a verdict. You can still change any of them.")

# --- the answer under review -------------------------------------------------------------------
with st.container(border=True, key="review.card"):
    expected = "decline (the policy does not cover it)" if r.expected == Expected.DECLINE else "answer"
    st.markdown(f"#### Q{index + 1} of {len(results)}")
    st.caption(f"Expected: {expected} · position {order.index(index) + 1} of {len(order)} answers")
    if r.question in ws.stale_flags(by_id[run_id].question_set, since=by_id[run_id].created_at):  # issue 14
        st.warning(
            "Review: the policy changed — the expected answer may be out of date.", icon=":material/warning:"
        )
    st.markdown(f"**Question**  \n{ui.md(r.question)}")
    st.markdown(f"**Expected answer**  \n{ui.md(r.ground_truth) if r.ground_truth else '—'}")
    st.markdown(f"**Answer**  \n{ui.md(r.answer or '')}")
    auto = correctness(r)
    auto_text = {True: "correct", False: "not correct", None: "not checked"}[auto.correct]
    facts = r.scores.get("answer_key_facts")
    fact_line = ""
    if facts is not None and facts.reason and facts.value is not None:
        try:
            detail = json.loads(facts.reason)
            found = ", ".join(f["fact"] for f in detail.get("found", [])) or "none"
            missing = ", ".join(f["fact"] for f in detail.get("missing", [])) or "none"
            fact_line = f" · key facts found: {ui.md(found)} · missing: {ui.md(missing)}"
        except (ValueError, TypeError, KeyError):
            fact_line = ""
    st.caption(f"Automatic check: {auto_text} ({auto.basis}){fact_line}")

    if v is None:
        st.markdown("**Your verdict:** none yet")
    elif v.inherited:
        st.markdown(
            f"**Verdict:** {v.verdict} — inherited from run #{v.inherited_from} (identical answer), "
            f"{v.labelled_at[:16].replace('T', ' ')} UTC"
            + (f" · {ui.md(v.comment)}" if v.comment else "")
            + ". Give your own verdict to override it."
        )
    else:
        st.markdown(
            f"**Your verdict:** {v.verdict} · {v.labelled_at[:16].replace('T', ' ')} UTC"
            + (f" · {ui.md(v.comment)}" if v.comment else "")
        )

    ckey = comment_key(run_id, index)
    if ckey not in ss:
        ss[ckey] = v.comment if v is not None and not v.inherited else ""
    st.text_input(
        "Comment (optional)",
        key=ckey,
        placeholder="e.g. right number, wrong notice period",
        on_change=_comment_changed,
        args=(run_id, index),
        disabled=not CAN_LABEL,
    )
    buttons = st.container(horizontal=True, key="review.buttons")
    for verdict in Verdict:
        buttons.button(
            f"{VERDICT_LABELS[verdict]} ({VERDICT_KEYS[verdict]})",
            key=f"review.verdict.{verdict}",
            on_click=_give,
            args=(run_id, index, str(verdict)),
            shortcut=VERDICT_KEYS[verdict],
            icon=VERDICT_ICONS[verdict],
            type="primary" if v is not None and not v.inherited and v.verdict == verdict else "secondary",
            disabled=not CAN_LABEL,
        )
    buttons.button(
        "Previous (←)", key="review.prev", on_click=_move, args=(run_id, order, -1), shortcut="Left"
    )
    buttons.button("Next (→)", key="review.next", on_click=_move, args=(run_id, order, 1), shortcut="Right")
    if CAN_LABEL and v is not None and not v.inherited:
        buttons.button(
            "Clear verdict", key="review.clear", on_click=_clear, args=(run_id, index), type="tertiary"
        )
    st.caption(
        "Keys: 1 correct · 2 partly · 3 wrong · ← previous · → next. A verdict is saved at once and "
        "the next answer without one opens. To comment, type in the box first (Enter saves it), then "
        "give the verdict."
    )

# --- scores and passages ---------------------------------------------------------------------
left, right = st.columns([2, 3])
with left:
    st.markdown("**Scores**")
    rows = []
    for name, sc in r.scores.items():
        spec = metric_spec(name, by_id[run_id].suite)
        shown = "skipped" if sc.skipped else ("failed" if sc.value is None else f"{sc.value:.2f}")
        rows.append({"Metric": spec.label, "Score": shown})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="review.scores")
    else:
        st.caption("Not scored.")
with right:
    cited = {(src.strip(), int(page)) for src, page in _CITATION.findall(r.answer or "")}
    ctxs = sorted(
        enumerate(r.contexts, 1),
        key=lambda nc: (str(nc[1].get("source", "")), int(nc[1].get("page", 0) or 0)) not in cited,
    )
    st.markdown(f"**Passages** ({len(r.contexts)} retrieved, {len(cited)} cited in the answer)")
    for n, ctx in ctxs:
        is_cited = (str(ctx.get("source", "")), int(ctx.get("page", 0) or 0)) in cited
        with st.expander(
            f"{'Cited · ' if is_cited else ''}{n}. {ui.md(ctx.get('source', '?'))} · page {ctx.get('page', '?')}",
            expanded=is_cited,
        ):
            st.markdown(ui.md(ctx.get("text", "")))

# --- agreement ------------------------------------------------------------------------------
st.subheader("Do the metrics agree with you?")
n_verdicts = sum(1 for i in order if i in verdicts)
if n_verdicts < MIN_VERDICTS:
    st.caption(
        f"Each metric's agreement with your verdicts appears once this run has {MIN_VERDICTS} "
        f"verdicts ({n_verdicts} so far)."
    )
else:
    report = ui.agreement((run_id,))
    table = pd.DataFrame(
        {
            "Metric": [("⚠ " if m.disagrees else "") + m.label for m in report.metrics],
            "Answers": [m.n for m in report.metrics],
            "κ (best cut-off)": pd.Series([m.kappa for m in report.metrics], dtype=float),
            "Cut-off": pd.Series([m.cutoff for m in report.metrics], dtype=float),
            "Spearman ρ": pd.Series([m.spearman for m in report.metrics], dtype=float),
            "You correct: pass / fail": [
                f"{m.confusion[0][0]} / {m.confusion[0][1]}" for m in report.metrics
            ],
            "You not correct: pass / fail": [
                f"{m.confusion[1][0]} / {m.confusion[1][1]}" for m in report.metrics
            ],
            "Note": [m.note for m in report.metrics],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="review.agreement",
        column_config={
            "κ (best cut-off)": st.column_config.NumberColumn(format="%.2f"),
            "Cut-off": st.column_config.NumberColumn(format="≥ %.2f"),
            "Spearman ρ": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    st.caption(
        f"Over {report.n_verdicts} answers with a verdict. κ compares your 'correct' with the metric "
        "passing at the cut-off that agrees best (1 = always agrees, 0 = chance); ρ ranks the score "
        f"against wrong < partly < correct. ⚠ marks a metric with κ below {DISAGREE_KAPPA}: it "
        "disagrees with you and is flagged in History's comparison and charts."
    )
