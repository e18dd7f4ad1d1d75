"""A baseline run next to a candidate run, and the History page's runs table (pure pandas).

A comparison leads with each run's headline ("N of M answers correct", from fresh summaries, so
verdicts given after the runs count), then the metrics; metrics that disagree with the analyst's
verdicts on these runs are named in :attr:`Comparison.warnings` and in
:attr:`Comparison.disagreeing`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from rag_core.evaluation.agreement import AgreementReport
from rag_core.reporting.diff import RunDiff, diff_runs
from rag_core.reporting.frames import (
    metric_columns,
    metric_label,
    per_question_deltas,
    results_frame,
    runs_frame,
)
from rag_core.reporting.significance import compare_stats
from rag_core.runs.statistics import PairedDiff
from rag_core.storage.records import ResultRecord, RunRecord, VerdictRecord
from rag_core.summary import Headline, JudgeStats, RunSummary
from rag_core.vocab import RunStatus, Suite, metric

__all__ = ["Comparison", "compare_runs", "document_warnings", "run_documents", "runs_table"]


@dataclass
class Comparison:
    """A baseline run next to a candidate run."""

    baseline: RunRecord
    candidate: RunRecord
    baseline_row: pd.Series
    """The baseline's row of :func:`~rag_core.reporting.frames.runs_frame`."""
    candidate_row: pd.Series
    deltas: pd.DataFrame
    """:func:`~rag_core.reporting.frames.per_question_deltas` (``regression`` flags drops > threshold),
    plus ``base:correct`` / ``cand:correct`` (True/False/None) per question."""
    warnings: list[str] = field(default_factory=list)
    """Why the numbers may not be comparable (different suites, judge models, question sets…),
    and which metrics disagree with the analyst."""
    stats: list[PairedDiff] = field(default_factory=list)
    """Per metric scored in both runs: paired difference, 95 % CI, Holm-corrected test, verdict
    (:func:`rag_core.reporting.significance.compare_stats`)."""
    changes: RunDiff | None = None
    """What changed between the runs (:func:`rag_core.reporting.diff.diff_runs`)."""
    baseline_headline: Headline | None = None
    """"N of M answers correct" for the baseline (None for runs recorded before headlines)."""
    candidate_headline: Headline | None = None
    agreement: AgreementReport | None = None
    """Every metric's agreement with the analyst's verdicts on both runs (None when not computed)."""

    @property
    def regressions(self) -> int:
        return int(self.deltas["regression"].sum()) if "regression" in self.deltas else 0

    @property
    def disagreeing(self) -> frozenset[str]:
        """Ids of metrics that disagree with the analyst (empty below the verdicts needed)."""
        return self.agreement.disagreeing if self.agreement is not None else frozenset()


def _judge(run: RunRecord) -> JudgeStats:
    if run.summary is not None:
        return run.summary.judge
    return JudgeStats(suite=Suite(run.suite))


def compare_runs(
    base: RunRecord,
    cand: RunRecord,
    base_results: Sequence[ResultRecord],
    cand_results: Sequence[ResultRecord],
    *,
    base_summary: RunSummary | None = None,
    cand_summary: RunSummary | None = None,
    base_verdicts: Mapping[int, VerdictRecord] | None = None,
    cand_verdicts: Mapping[int, VerdictRecord] | None = None,
    agreement: AgreementReport | None = None,
) -> Comparison:
    """Compare two runs: headlines, summary rows, per-question deltas and correctness, which metrics
    disagree with the analyst, and what makes the runs incomparable.

    ``*_summary`` replace the stored summaries (pass fresh ones: verdicts change the headline
    after a run ends); ``*_verdicts`` give the per-question correctness; ``agreement`` (over both
    runs) flags metrics that disagree with the analyst.
    """
    if base_summary is not None:
        base = dataclasses.replace(base, summary=base_summary)
    if cand_summary is not None:
        cand = dataclasses.replace(cand, summary=cand_summary)
    frame = runs_frame([base, cand])
    rows = {int(r["id"]): r for _, r in frame.iterrows()}
    base_frame = results_frame(base_results, suite=base.suite, verdicts=base_verdicts)
    cand_frame = results_frame(cand_results, suite=cand.suite, verdicts=cand_verdicts)
    deltas = per_question_deltas(base_frame, cand_frame)
    deltas["base:correct"] = _by_question(deltas, base_frame)
    deltas["cand:correct"] = _by_question(deltas, cand_frame)
    warnings: list[str] = []
    if base.id == cand.id:
        warnings.append("Baseline and candidate are the same run: pick two different runs.")
    mismatch = _judge(base).mismatch(_judge(cand))
    if mismatch:
        warnings.append(mismatch + " Their scores are not comparable.")
    if (base.question_set or "") != (cand.question_set or ""):
        warnings.append(
            f"The runs used different question sets ('{base.question_set or '—'}' vs "
            f"'{cand.question_set or '—'}'); only questions present in both have deltas."
        )
    warnings.extend(document_warnings(base, cand))
    for r in (base, cand):
        if r.status != RunStatus.COMPLETED:
            warnings.append(f"Run #{r.id} is {r.status}: some questions may be missing or unscored.")
    if agreement is not None:
        for m in agreement.metrics:
            if m.metric_id in agreement.disagreeing:
                warnings.append(
                    f"{metric(m.metric_id).label} disagrees with the analyst: κ = {m.kappa:.2f} over "
                    f"{m.n} answers with a verdict (flagged ⚠)."
                )
    return Comparison(
        base,
        cand,
        rows[base.id],
        rows[cand.id],
        deltas,
        warnings,
        stats=compare_stats(base, cand, base_results, cand_results),
        changes=diff_runs(base, cand, base_results, cand_results),
        baseline_headline=base.summary.headline if base.summary else None,
        candidate_headline=cand.summary.headline if cand.summary else None,
        agreement=agreement,
    )


def run_documents(run: RunRecord) -> dict[str, tuple[int, str]]:
    """``{document name: (version, sha256)}`` a run retrieved from (``{}`` for runs stored before
    collections and versions existed)."""
    out: dict[str, tuple[int, str]] = {}
    for d in run.config.get("documents") or []:
        if isinstance(d, dict) and "name" in d:
            out[str(d["name"])] = (int(d.get("version") or 0), str(d.get("sha256") or ""))
    return out


def document_warnings(base: RunRecord, cand: RunRecord) -> list[str]:
    """Why two runs' answers may differ because of the documents, not the assistant: another
    collection, or other versions of the documents (added, removed or changed files)."""
    out: list[str] = []
    bc, cc = base.config.get("collection"), cand.config.get("collection")
    if bc and cc and bc != cc:
        out.append(f"The runs searched different document collections ('{bc}' vs '{cc}').")
    bd, cd = run_documents(base), run_documents(cand)
    if not bd or not cd:
        if bd or cd:
            old = base if not bd else cand
            out.append(
                f"Run #{old.id} was stored before document versions were recorded: it may have used "
                "other versions of the documents."
            )
        return out
    diffs: list[str] = []
    for name in sorted(set(bd) | set(cd), key=str.lower):
        b, c = bd.get(name), cd.get(name)
        if b is None:
            diffs.append(f"{name} only in #{cand.id} (v{c[0] if c else '?'})")
        elif c is None:
            diffs.append(f"{name} only in #{base.id} (v{b[0]})")
        elif b[1] != c[1]:
            diffs.append(f"{name} v{b[0]} in #{base.id} vs v{c[0]} in #{cand.id}")
    if diffs:
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        out.append(
            f"The runs used different document versions: {shown}. Differences in the answers may come "
            "from the documents, not the assistant."
        )
    return out


def _by_question(deltas: pd.DataFrame, frame: pd.DataFrame) -> list[bool | None]:
    """``frame``'s ``correct`` for each row of ``deltas`` (matched by question text)."""
    if frame.empty or deltas.empty:
        return [None] * len(deltas)
    by_q = {
        " ".join(str(q).split()).casefold(): c
        for q, c in zip(frame["question"], frame["correct"], strict=True)
    }
    return [by_q.get(" ".join(str(q).split()).casefold()) for q in deltas["question"]]


def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """The History table: one row per run, newest first.

    Columns: ``Run`` (id), ``Name`` (the analyst's, '' when none), ``Correct`` ("7 of 10", the headline; "—" for runs recorded before
    it), ``Correct by`` (the analyst's verdicts, key facts, or both), ``Answered, should
    decline`` (answers where the assistant should have declined: the risky number; NaN when not
    checked), ``Date`` (UTC datetime), ``Question set``, ``Backend``, ``Mode``, ``Suite``,
    ``Status``, ``Collection``, ``Config`` (the assistant configuration version), one column per metric named by its label (unique across suites: the offline and
    the judged context recall are two columns; mean, NaN when not scored), ``Speedup``
    (measured, else estimated; NaN when unknown), ``Cost ($)``, ``Time (s)``, ``Questions``,
    ``Errors``.
    """
    df = runs_frame(runs)
    by_id = {r.id: r for r in runs}
    correct = [
        "—" if pd.isna(c) or pd.isna(t) else f"{int(c)} of {int(t)}"
        for c, t in zip(df["correct"], df["correct_of"], strict=True)
    ]
    out = pd.DataFrame(
        {
            "Run": df["id"].astype(int),
            "Name": [by_id[int(i)].name or "" if int(i) in by_id else "" for i in df["id"]],
            "Correct": pd.Series(correct, index=df.index, dtype=object),
            "Correct by": df["correct_basis"].fillna("—"),
            "Answered, should decline": df["answered_when_should_decline"].astype(float),
            "Date": df["created_at"],
            "Question set": df["question_set"].fillna("—"),
            "Collection": df["id"].map({r.id: str(r.config.get("collection") or "—") for r in runs}),
            "Backend": df["backend"],
            "Mode": df["mode"],
            "Suite": df["suite"],
            "Status": df["status"],
            "Config": [_config_label(by_id.get(int(i))) for i in df["id"]],
        }
    )
    for col in metric_columns(df):
        out[metric_label(col)] = df[col].astype(float)
    out["Speedup"] = df["speedup_measured"].astype(float).fillna(df["speedup_estimated"].astype(float))
    out["Cost ($)"] = df["cost_usd"].astype(float)
    out["Time (s)"] = df["total_s"].astype(float)
    out["Questions"] = df["n_questions"].astype(int)
    out["Errors"] = df["errors"].astype(int)
    return out.iloc[::-1].reset_index(drop=True)


def _config_label(run: RunRecord | None) -> str:
    if run is None or run.identity is None or run.identity.config is None:
        return "—"
    return run.identity.config.label
