"""Run: choose a question set and options, launch, watch live progress, read the summary.

The run executes on the engine's loop thread; this page keeps only its id
(``st.session_state["run.active_id"]``) and finds the handle again by id, so a run keeps going and
its progress is still here after visiting another page.

Ownership (issue 15): the page adopts only runs its principal started — the same signed-in user
(any of their tabs) or, without sign-in, the same browser session. Other people's runs in progress
are shown read-only (progress, who started it; no Cancel). Viewers see no run form at all.
"""

from __future__ import annotations

import streamlit as st

from pages import _shared as ui
from pages._elsewhere import runs_elsewhere
from pages._format import duration, metric_line, retries_line, speedup_line
from rag_core.access import Role
from rag_core.errors import RagError
from rag_core.experiment import DEFAULT_CONFIG_NAME
from rag_core.models import DEFAULT_COLLECTION
from rag_core.runs.request import default_suite
from rag_core.summary import RunSummary
from rag_core.vocab import RUN_SUITES, Backend, Mode, Phase, RunStatus, Suite, suite_metrics
from rag_core.workspace import SAMPLE_SET_NAME

ui.ensure_routed(__file__)
ss = st.session_state
ws = ui.workspace()
settings = ws.settings

PHASES = {
    Phase.STARTING: "Starting",
    Phase.INDEXING: "Building the chunked index for this configuration (first use only)",
    Phase.RETRIEVAL: "Retrieving context",
    Phase.GENERATION_SEQUENTIAL: "Generating answers — sequential pass (timing baseline)",
    Phase.GENERATION: "Generating answers",
    Phase.BATCH_SUBMIT: "Sending the Message Batch to Anthropic",
    Phase.BATCH_WAIT: "Waiting for Anthropic to process the batch",
    Phase.BATCH_COLLECT: "Collecting the batch's answers",
    Phase.EVALUATION: "Scoring answers",
    Phase.DONE: "Finishing",
}
MODE_LABELS = {
    Mode.SEQUENTIAL: "Sequential — one request at a time",
    Mode.ASYNC: "Async — concurrent requests",
    Mode.COMPARE: "Compare — sequential then async, measures the speedup",
    Mode.BATCH: "Batch — Anthropic Message Batches: half price, minutes to hours",
}
SUITE_LABELS = {
    Suite.OFFLINE: "Offline metrics (local, no API calls)",
    Suite.JUDGE: f"Claude as judge · {settings.judge_model}",
    Suite.NONE: "No metrics (answers only)",
}
RESUMABLE = tuple(s.value for s in RunStatus if s.resumable)


def show_summary(run_id: int) -> None:
    """The stored outcome of a finished run: status, metrics, speedup, timings, cost."""
    try:
        run = ws.run(run_id)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        ss.pop("run.active_id", None)
        return
    s = ws.summary(run_id)
    t = s.timings
    n = s.n_questions
    ident = run.identity
    if run.name or (ident is not None and ident.config is not None):
        cfg = ident.config.label if ident is not None and ident.config is not None else "—"
        st.caption(ui.md(f"{run.name or 'Unnamed run'} · configuration {cfg}"))
    if run.status == RunStatus.COMPLETED:
        st.success(
            f"Run #{run.id} completed: {n} questions in {duration(t.total_s)}"
            + (f" over {t.attempts} attempts" if t.attempts > 1 else "")
            + (f" · {s.errors} answers failed" if s.errors else "")
            + "."
        )
    elif run.status == RunStatus.CANCELLED:
        st.warning(
            f"Run #{run.id} was cancelled. Finished answers and scores are kept; resume it to "
            "complete the rest."
        )
    elif run.status == RunStatus.INTERRUPTED:
        st.warning(
            f"Run #{run.id} was interrupted (the app stopped). Finished work is kept; resume it "
            "to complete the rest."
        )
    elif run.status == RunStatus.FAILED:
        st.error(f"Run #{run.id} failed: {ui.md(s.failure or 'see the server log.')}")
    else:
        st.info(
            f"Run #{run.id} is running in another process (e.g. the command line). Its results "
            "appear in History when it finishes."
        )
        return

    if s.headline is not None and s.headline.total:
        st.markdown(f"### {ui.md(s.headline.text)}")
        st.caption(
            "Correct = your verdict on the Review page when there is one; otherwise every key fact "
            "of the expected answer is stated (or a question the policy does not cover was declined)."
        )
    decline_line(s)
    if s.metrics:
        cols = st.columns(min(len(s.metrics), 4))
        for i, m in enumerate(s.metrics):
            with cols[i % len(cols)]:
                st.metric(
                    m.label,
                    "—" if m.mean is None else f"{m.mean:.2f}",
                    border=True,
                    help=f"{m.id}: mean over the questions it could score",
                )
                st.caption(metric_line(m))
    elif run.suite != Suite.NONE and run.status == RunStatus.COMPLETED:
        st.caption("No metric scores were recorded.")

    g = s.generation
    facts = []
    line = speedup_line(g)
    if line:
        facts.append(f"**Speedup:** {line}")
    if g.sequential_s is not None and g.async_s is not None:
        facts.append(
            f"sequential {duration(g.sequential_s)} → async {duration(g.async_s)} "
            f"at concurrency {g.concurrency}"
        )
    facts.append(
        f"**Time:** retrieval {duration(t.retrieval_s)} · generation "
        f"{duration(t.generation_s)} · evaluation {duration(t.evaluation_s)} · "
        f"total {duration(t.total_s)}"
    )
    u = s.usage
    if u.passes and u.cost_usd:
        parts = [
            f"{p.kind} {p.calls:,} calls, {p.input_tokens + p.estimated_input_tokens:,} in / "
            f"{p.output_tokens:,} out" + (" at Message Batches price" if p.batch else "")
            for p in u.passes
        ]
        facts.append(f"**Cost:** ≈ ${u.cost_usd:.4f} ({'; '.join(parts)})")
    else:
        facts.append("**Cost:** none (offline)")
    j = s.judge
    if j.calls or j.cache_hits:
        facts.append(f"**Judge:** {ui.md(j.model)} · {j.calls} calls · {j.cache_hits} cache hits")
    retried = retries_line(s.retries)
    if retried:
        facts.append(f"**Retries:** {ui.md(retried)}")
    st.markdown("  \n".join(facts))
    if run.backend == Backend.OFFLINE and (g.speedup_measured or 2.0) < 1.5:
        st.caption(
            "Offline answers are computed on this machine's CPU, so concurrency barely speeds "
            "them up; with Claude the requests wait on the network and overlap."
        )

    row = st.container(horizontal=True)
    if s.answered and row.button("Review answers", key="run.review", icon=":material/rate_review:"):
        ss["review.run"] = run.id
        st.switch_page(ui.REVIEW_PAGE)
    if row.button("Open in History", key="run.open_history", icon=":material/monitoring:"):
        ss["history.candidate"] = run.id
        ss["history.run"] = run.id
        ss["history.timeline_run"] = run.id
        ss["history.last_tab"] = "Run details"
        st.switch_page(ui.HISTORY_PAGE)
    if (
        run.status in RESUMABLE
        and ws.can_control_run(run.id)
        and row.button("Resume", key="run.resume", icon=":material/replay:")
    ):
        resume(run.id)


def decline_line(s: RunSummary) -> None:
    """The decline counts; answers to questions that should have been declined in red."""
    d = s.declines
    if d is None or not (d.should_decline or d.declined_when_should_answer):
        return
    risky = d.answered_when_should_decline
    parts = [
        f"**Declined when it should:** {d.declined_when_should} of {d.should_decline}"
        + (f" ({d.recall:.0%})" if d.recall is not None else ""),
        (
            f":red[**Answered when it should have declined: {risky}**]"
            if risky
            else "**Answered when it should have declined:** 0"
        ),
    ]
    if d.declined_when_should_answer:
        parts.append(f"**Declined a question the policy covers:** {d.declined_when_should_answer}")
    st.markdown(" · ".join(parts) + f" · detected by {d.method}")


def resume(run_id: int) -> None:
    try:
        rid = ws.resume_run(run_id)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        return
    ss["run.active_id"] = rid
    ss.pop("run.refreshed", None)
    st.rerun()


@st.fragment(run_every=1.0)
def live_progress(run_id: int) -> None:
    """Polls the run's handle once a second; when it ends, shows the summary and refreshes the app."""
    p = ws.progress(run_id)
    if p is None or p.finished:
        show_summary(run_id)
        if ss.get("run.refreshed") != run_id:
            ss["run.refreshed"] = run_id
            st.rerun(scope="app")
        return
    phase = PHASES.get(p.phase, p.phase)
    text = f"{phase}: {p.done} of {p.total}" if p.total else f"{phase}…"
    st.progress(min(1.0, p.fraction), text=text)
    if p.note:
        st.caption(ui.md(p.note), help="Retries wait as long as the API asks, up to the run's deadline.")
    c = st.columns(6)
    c[0].metric("Done", f"{p.done}/{p.total}" if p.total else "—")
    c[1].metric(
        "In flight",
        p.in_flight,
        help=f"concurrency limit {p.concurrency_limit}" if p.concurrency_limit else None,
    )
    c[2].metric("Retries", p.retries)
    c[3].metric("Errors", p.errors)
    c[4].metric("Elapsed", duration(p.elapsed_s))
    c[5].metric("ETA", duration(p.eta_s) if p.eta_s is not None else "—")
    if ws.can_control_run(run_id):
        ui.cancel_button(
            "Cancel",
            key="run.cancel",
            cancel=lambda: ws.cancel_run(run_id),
            done=f"Cancelling run #{run_id}… finished work is kept.",
            help="Stop the run. Finished answers and scores are kept; you can resume later.",
        )


@st.fragment(run_every=2.0)
def others_progress() -> None:
    """Runs other people (or other browser sessions) started: progress only, read-only."""
    mine = set(ws.active_run_ids(mine=True))
    others = [r for r in ws.active_run_ids() if r not in mine]
    if not others:
        return
    st.subheader("Other runs in progress")
    for rid in others:
        p = ws.progress(rid)
        if p is None or p.finished:
            continue
        with st.container(border=True, key=f"run.other.{rid}"):
            st.markdown(f"**Run #{rid}** · started by {ui.md(ws.run_owner(rid))} · read-only")
            phase = PHASES.get(p.phase, p.phase)
            st.progress(
                min(1.0, p.fraction), text=f"{phase}: {p.done} of {p.total}" if p.total else f"{phase}…"
            )
            st.caption(f"Errors {p.errors} · elapsed {duration(p.elapsed_s)}")
            # A signed-in admin may stop anyone's run (without sign-in every session is the local
            # admin, and another tab must not stop this one: read-only there).
            if ui.auth_configured() and ws.can(Role.ADMIN):
                ui.cancel_button(
                    "Stop this run (admin)",
                    key=f"run.admin_cancel.{rid}",
                    cancel=lambda rid=rid: ws.cancel_run(rid),
                    done=f"Cancelling run #{rid}… finished work is kept.",
                )


# --------------------------------------------------------------------------------------------
st.title("Run an evaluation")
active = ws.active_run_ids()
mine = ws.active_run_ids(mine=True)  # only runs this principal started are ever adopted
if ss.get("run.active_id") is None and mine:
    ss["run.active_id"] = mine[0]  # e.g. started in another tab by the same signed-in user
if ss.get("run.active_id") in active and ss.get("run.active_id") not in mine:
    ss.pop("run.active_id")  # someone else's run: never this session's (shown read-only below)
run_id: int | None = ss.get("run.active_id")
runs_elsewhere(ws)  # runs of other app processes sharing the history: live, read-only
running = run_id is not None and run_id in mine
can_run = ws.can(Role.ANALYST)

sets = ui.question_sets()
docs = ui.documents()
if not docs:
    st.warning("No documents are indexed yet — upload policy documents first.", icon=":material/description:")
    st.page_link(ui.DOCUMENTS_PAGE, label="Go to Documents", icon=":material/arrow_forward:")
if not sets:
    st.warning("No question sets yet — create one first.", icon=":material/quiz:")
    st.page_link(ui.QSETS_PAGE, label="Go to Question sets", icon=":material/arrow_forward:")

if not can_run:
    st.info(
        f"You are {ui.md(ws.principal.label)}, a viewer: you can watch runs in progress and read "
        "History. Starting runs needs the analyst role; ask an admin.",
        icon=":material/visibility:",
    )
else:
    with st.container(border=True):
        left, right = st.columns(2)
        with left:
            names = [s.name for s in sets]
            counts = {s.name: s.n_items for s in sets}
            ui.ensure_choice("run.set", names, default=SAMPLE_SET_NAME)
            chosen_set = st.selectbox(
                "Question set", names, key="run.set", persist_state="session", disabled=not names
            )
            if chosen_set:
                st.caption(f"{counts.get(chosen_set, 0)} questions")
            bound = next((s.collection for s in sets if s.name == chosen_set), None)
            collections = ui.collections()
            if bound and bound in collections:
                ss["run.collection"] = bound
            ui.ensure_choice("run.collection", collections, default=DEFAULT_COLLECTION)
            collection = st.selectbox(
                "Document collection",
                collections,
                key="run.collection",
                disabled=bool(bound),
                help="Retrieval searches only this collection's documents.",
            )
            n_docs = len(ui.documents(collection))
            st.caption(
                ("Bound to this set · " if bound else "")
                + f"{n_docs} document{'s' if n_docs != 1 else ''} in {ui.md(collection)}"
            )
            if chosen_set and chosen_set in ss.get("qsets.drafts", {}):
                st.caption(
                    "This set has unsaved edits on the Question sets page; the run uses the saved version."
                )

            backends = [b.value for b in Backend]
            ui.ensure_choice("run.backend", backends, default=settings.default_backend)
            if not settings.has_key:
                ss["run.backend"] = "offline"
            backend = st.radio(
                "Answers by",
                backends,
                key="run.backend",
                persist_state="session",
                disabled=not settings.has_key,
                format_func=lambda b: (
                    "Offline (extractive, no API key)"
                    if b == "offline"
                    else f"Claude · {settings.answer_model}"
                ),
            )
            if not settings.has_key:
                st.caption(
                    "Claude needs an Anthropic API key: set ANTHROPIC_API_KEY (or add it to "
                    ".streamlit/secrets.toml) and restart the app."
                )
            modes = [m.value for m in Mode if m != Mode.BATCH or backend == Backend.CLAUDE]
            ui.ensure_choice("run.mode", modes, default="async")
            mode = st.radio(
                "Execution",
                modes,
                key="run.mode",
                persist_state="session",
                format_func=lambda m: MODE_LABELS.get(m, m),
            )
            if mode == "batch":
                st.caption(
                    "The batch keeps going at Anthropic if you close the app; resume the run to "
                    "collect its answers."
                )
        with right:
            ss.setdefault("run.concurrency", min(settings.concurrency, 32))
            concurrency = st.slider(
                "Concurrency",
                1,
                32,
                key="run.concurrency",
                persist_state="session",
                disabled=mode in ("sequential", "batch"),
                help="Requests in flight at once (async and compare modes).",
            )
            configs = {c.name: c for c in ui.configs()}
            ui.ensure_choice("run.config", list(configs), default=DEFAULT_CONFIG_NAME)
            config_name = st.selectbox(
                "Assistant configuration",
                list(configs),
                key="run.config",
                persist_state="session",
                format_func=lambda n: configs[n].label if n in configs else n,
                help="Model, prompts, top-k, retrieval and chunking. The run records this exact version.",
            )
            cv = configs.get(config_name) if config_name else None
            top_k = cv.config.top_k if cv is not None else settings.top_k
            if cv is not None:
                c = cv.config
                facts = f"top-k {c.top_k} · {c.retrieval} · chunks {c.chunk_size}/{c.chunk_overlap}"
                if backend == "claude":
                    temp = "default" if c.temperature is None else f"{c.temperature:g}"
                    facts = f"{c.answer_model} · temperature {temp} · max {c.max_tokens} tokens · " + facts
                st.caption(ui.md(facts))
            st.page_link(ui.CONFIGS_PAGE, label="Edit configurations", icon=":material/tune:")
            suites = [x.value for x in RUN_SUITES if x != Suite.JUDGE or settings.has_key]
            ui.ensure_choice("run.suite", suites, default=default_suite(settings).value)
            suite = st.selectbox(
                "Metric suite",
                suites,
                key="run.suite",
                persist_state="session",
                format_func=lambda x: SUITE_LABELS.get(x, x),
            )
            if not settings.has_key:
                st.caption("Claude-as-judge metrics need an API key.")
            specs = {m.name: m for m in suite_metrics(suite)}
            all_metrics = list(specs)
            metrics: list[str] = []
            judge_repeats, fresh = 1, False
            if all_metrics:
                mkey = f"run.metrics.{suite}"
                ss.setdefault(mkey, all_metrics)
                ss[mkey] = [m for m in ss[mkey] if m in all_metrics]
                metrics = st.multiselect(
                    "Metrics",
                    all_metrics,
                    key=mkey,
                    persist_state="session",
                    format_func=lambda m: specs[m].label,
                )
            if suite == Suite.OFFLINE:
                st.caption("Key facts and declines are scored with every suite (locally, no API calls).")
            elif suite == Suite.JUDGE:
                st.caption(
                    "Key facts and declines are scored with every suite; with the judge, Claude also "
                    "checks each answer for a decline (one call per answer)."
                )
            if suite == "judge":
                ss.setdefault("run.judge_repeats", 1)
                judge_repeats = int(
                    st.number_input(
                        "Judge repeats",
                        1,
                        5,
                        step=1,
                        key="run.judge_repeats",
                        persist_state="session",
                        help="Judge each answer several times; shows mean ± stdev.",
                    )
                )
                fresh = st.checkbox(
                    "Fresh judgements (ignore the judge cache)", key="run.fresh", persist_state="session"
                )

        n_questions = counts.get(chosen_set, 0) if chosen_set else 0
        if backend == "claude" or suite == "judge":
            est = ws.estimate(
                n_questions=n_questions,
                backend=backend,
                mode=mode,
                suite=suite,
                metrics=metrics or None,
                top_k=top_k,
                judge_repeats=judge_repeats,
                config=config_name,
            )
            cached = (
                f" + ~{est.cache_read_tokens + est.cache_write_tokens:,} read from the prompt cache"
                if est.cache_read_tokens or est.cache_write_tokens
                else ""
            )
            saved = (
                f" (≈ ${est.full_price_usd:.2f} without prompt caching and Message Batches)"
                if est.full_price_usd > est.cost_usd + 0.005
                else ""
            )
            st.info(
                f"Estimated Claude usage: **{est.calls:,} calls** ({est.answer_calls:,} answers + "
                f"{est.judge_calls:,} judge) · ~{est.input_tokens:,} input{cached} / ~{est.output_tokens:,} "
                f"output tokens · **≈ ${est.cost_usd:.2f}**{saved}. An upper estimate: cached judgements "
                "cost nothing.",
                icon=":material/payments:",
            )
        else:
            st.caption(f"Offline run of {n_questions} questions: no API calls, no cost.")

        with st.expander("Name and note (optional)"):
            run_name = st.text_input("Run name", key="run.name", placeholder="e.g. shorter prompt, try 2")
            run_note = st.text_area("Note", key="run.note", height=68, placeholder="What are you testing?")

        problem = None
        if running:
            problem = f"Run #{run_id} is in progress; wait for it or cancel it."
        elif not docs:
            problem = "Index documents first."
        elif not ui.documents(collection):
            problem = f"The collection '{collection}' has no documents: upload some or choose another."
        elif not chosen_set:
            problem = "Choose a question set."
        elif all_metrics and not metrics:
            problem = "Pick at least one metric (or choose 'No metrics')."
        start = st.button(
            "Start run",
            key="run.start",
            type="primary",
            disabled=problem is not None,
            icon=":material/play_arrow:",
        )
        if problem and not running:
            st.caption(problem)
        if start and problem is None and chosen_set:
            try:
                new_id = ws.start_run(
                    chosen_set,
                    backend=backend,
                    mode=mode,
                    concurrency=concurrency,
                    suite=suite,
                    metrics=metrics or None,
                    judge_repeats=judge_repeats,
                    fresh=fresh,
                    collection=collection,
                    config=config_name,
                    run_name=run_name or None,
                    note=run_note or None,
                )
            except RagError as exc:
                st.error(ui.md(str(exc)))
            else:
                ss["run.active_id"] = new_id
                ss.pop("run.refreshed", None)
                st.rerun()


if run_id is not None:
    st.subheader(f"Run #{run_id}")
    if running:
        live_progress(run_id)
    else:
        show_summary(run_id)

others_progress()

resumable = [
    r
    for r in ui.runs()[:50]
    if r.status in RESUMABLE and r.id != run_id and can_run and ws.can_control_run(r.id)
][:3]
if resumable:
    with st.expander(f"Unfinished runs ({len(resumable)})"):
        for r in resumable:
            c1, c2 = st.columns([4, 1])
            c1.markdown(ui.md(f"{ui.run_label(r)} · {r.status}"))
            if c2.button("Resume", key=f"run.resume.{r.id}"):
                resume(r.id)
