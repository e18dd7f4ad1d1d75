"""What changed between two runs (:func:`diff_runs`) or two configurations (:func:`config_diff`).

Shown above every comparison, so a difference in scores comes with its likely causes:

- **configuration**: each field of the pinned assistant configurations that differs (prompts as a
  line diff), and which configuration version each run pinned;
- **run settings**: backend, execution mode, metric suite and metrics, judge model, judge repeats;
- **questions**: added, removed, edited (same question with another expected answer, or a question
  reworded — matched when the texts are at least :data:`REWORD_SIMILARITY` alike), taken from each
  run's own copy of its questions, plus the question-set name and version;
- **documents**: added, removed or changed (another sha256) between the runs' document versions;
- **code**: package version and git commit.

Runs recorded before identities existed have no configuration, documents or code version: the
diff says so (:attr:`RunDiff.unknown`) instead of guessing. Pure functions over stored records.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.experiment import CONFIG_FIELDS, AssistantConfig, RunIdentity
from rag_core.storage.records import ResultRecord, RunRecord

__all__ = [
    "REWORD_SIMILARITY",
    "DocumentChange",
    "FieldChange",
    "QuestionChange",
    "RunDiff",
    "config_diff",
    "diff_runs",
    "identity_facts",
    "text_diff",
]

REWORD_SIMILARITY = 0.8
"""A removed and an added question this alike (difflib ratio) are one edited question."""


@dataclass(frozen=True)
class FieldChange:
    """One value that differs."""

    field: str
    """Machine name, e.g. ``"top_k"``."""
    label: str
    """Display name, e.g. ``"Top-k"``."""
    before: Any
    """Baseline (a) value."""
    after: Any
    """Candidate (b) value."""
    text_diff: tuple[str, ...] = ()
    """For long text (prompts): unified diff lines (``-`` removed, ``+`` added)."""

    def to_json(self) -> dict[str, Any]:
        out = {"field": self.field, "label": self.label, "before": self.before, "after": self.after}
        if self.text_diff:
            out["diff"] = list(self.text_diff)
        return out


@dataclass(frozen=True)
class QuestionChange:
    """A question added, removed or edited between the runs."""

    kind: str
    """``"added"``, ``"removed"``, ``"edited"`` (expected answer changed) or ``"reworded"``."""
    question: str
    """The question (the candidate's wording when reworded)."""
    before: str | None = None
    """Removed: its expected answer; edited: the old expected answer; reworded: the old question."""
    after: str | None = None
    """Added: its expected answer; edited: the new expected answer; reworded: the new question."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "question": self.question, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class DocumentChange:
    """A document that differs between the runs' document versions."""

    name: str
    kind: str
    """``"added"``, ``"removed"`` or ``"changed"`` (same name, other sha256)."""
    before: str | None = None
    """Baseline sha256."""
    after: str | None = None
    """Candidate sha256."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class RunDiff:
    """Everything that differs between a baseline (a) and a candidate (b) run."""

    baseline: int
    candidate: int
    config: tuple[FieldChange, ...] = ()
    """Assistant configuration: the version pinned and each differing field."""
    run: tuple[FieldChange, ...] = ()
    """Backend, mode, suite, metrics, judge model, judge repeats."""
    question_set: tuple[FieldChange, ...] = ()
    """Question-set name, version, fingerprint."""
    questions: tuple[QuestionChange, ...] = ()
    documents: tuple[DocumentChange, ...] = ()
    code: tuple[FieldChange, ...] = ()
    unknown: tuple[str, ...] = field(default_factory=tuple)
    """What cannot be compared (e.g. a run recorded before identities existed)."""

    @property
    def same(self) -> bool:
        """True when nothing that is known differs."""
        return not (
            self.config or self.run or self.question_set or self.questions or self.documents or self.code
        )

    def lines(self) -> list[str]:
        """One plain sentence per change, for the CLI and summaries (prompt diffs summarised)."""
        out = []
        for c in (*self.config, *self.run, *self.question_set, *self.code):
            if c.text_diff:
                added = sum(1 for line in c.text_diff if line.startswith("+") and not line.startswith("+++"))
                removed = sum(
                    1 for line in c.text_diff if line.startswith("-") and not line.startswith("---")
                )
                out.append(f"{c.label}: text changed (+{added} / -{removed} lines)")
            else:
                out.append(f"{c.label}: {_show(c.before)} → {_show(c.after)}")
        for q in self.questions:
            if q.kind == "reworded":
                out.append(f"question reworded: {_short(q.before)} → {_short(q.after)}")
            elif q.kind == "edited":
                out.append(f"expected answer edited: {_short(q.question)}")
            else:
                out.append(f"question {q.kind}: {_short(q.question)}")
        for d in self.documents:
            out.append(f"document {d.kind}: {d.name}")
        out.extend(self.unknown)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "same": self.same,
            "config": [c.to_json() for c in self.config],
            "run": [c.to_json() for c in self.run],
            "question_set": [c.to_json() for c in self.question_set],
            "questions": [q.to_json() for q in self.questions],
            "documents": [d.to_json() for d in self.documents],
            "code": [c.to_json() for c in self.code],
            "unknown": list(self.unknown),
        }


def _show(v: Any) -> str:
    return "—" if v is None or v == "" else str(v)


def _short(text: str | None, limit: int = 80) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def text_diff(before: str, after: str) -> tuple[str, ...]:
    """Unified diff lines (no file headers) from ``before`` to ``after``; ``()`` when equal."""
    if before == after:
        return ()
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
    return tuple(line for line in lines if not line.startswith(("---", "+++")))


def config_diff(a: AssistantConfig, b: AssistantConfig) -> list[FieldChange]:
    """The fields of ``b`` that differ from ``a``, in display order (prompts with a line diff)."""
    ja, jb = a.to_json(), b.to_json()
    out = []
    for f in CONFIG_FIELDS:
        if ja[f.name] == jb[f.name]:
            continue
        diff = text_diff(str(ja[f.name] or ""), str(jb[f.name] or "")) if f.long_text else ()
        out.append(FieldChange(f.name, f.label, ja[f.name], jb[f.name], diff))
    return out


def _key(q: str) -> str:
    return " ".join(str(q).split()).casefold()


def _question_changes(a: Sequence[ResultRecord], b: Sequence[ResultRecord]) -> list[QuestionChange]:
    qa = {_key(r.question): r for r in reversed(a)}  # the first occurrence wins
    qb = {_key(r.question): r for r in reversed(b)}
    out: list[QuestionChange] = []
    for k, rb in qb.items():
        ra = qa.get(k)
        if ra is not None and ra.ground_truth.strip() != rb.ground_truth.strip():
            out.append(QuestionChange("edited", rb.question, ra.ground_truth, rb.ground_truth))
    removed = [qa[k] for k in qa if k not in qb]
    added = [qb[k] for k in qb if k not in qa]
    for ra in list(removed):  # a reworded question: a removed and an added one that are alike
        best, score = None, 0.0
        for rb in added:
            s = difflib.SequenceMatcher(None, _key(ra.question), _key(rb.question)).ratio()
            if s > score:
                best, score = rb, s
        if best is not None and score >= REWORD_SIMILARITY:
            out.append(QuestionChange("reworded", best.question, ra.question, best.question))
            removed.remove(ra)
            added.remove(best)
    out.extend(QuestionChange("removed", r.question, r.ground_truth, None) for r in removed)
    out.extend(QuestionChange("added", r.question, None, r.ground_truth) for r in added)
    order = {"reworded": 0, "edited": 1, "removed": 2, "added": 3}
    return sorted(out, key=lambda c: order[c.kind])


def _change(name: str, label: str, a: Any, b: Any) -> list[FieldChange]:
    return [] if a == b else [FieldChange(name, label, a, b)]


def diff_runs(
    run_a: RunRecord, run_b: RunRecord, results_a: Sequence[ResultRecord], results_b: Sequence[ResultRecord]
) -> RunDiff:
    """What changed from ``run_a`` (baseline) to ``run_b`` (candidate); see the module docstring."""
    ia, ib = run_a.identity, run_b.identity
    unknown: list[str] = []
    missing = [r.id for r, i in ((run_a, ia), (run_b, ib)) if i is None]
    if missing:
        unknown.append(
            f"Run{'s' if len(missing) > 1 else ''} {' and '.join(f'#{m}' for m in missing)} "
            "predate run identities: configuration details, documents and code version are not known for "
            f"{'them' if len(missing) > 1 else 'it'}."
        )

    config: list[FieldChange] = []
    ca = ia.config if ia else None
    cb = ib.config if ib else None
    if ca is not None and cb is not None:
        if (ca.name, ca.version) != (cb.name, cb.version):
            config.append(FieldChange("config", "Configuration", ca.label, cb.label))
        config.extend(config_diff(ca.config, cb.config))
    else:  # only what the run config has always recorded
        config.extend(_change("top_k", "Top-k", run_a.config.get("top_k"), run_b.config.get("top_k")))

    ja = run_a.summary.judge if run_a.summary else None
    jb = run_b.summary.judge if run_b.summary else None
    run = [
        *_change("backend", "Backend", run_a.backend, run_b.backend),
        *_change("mode", "Execution mode", run_a.mode, run_b.mode),
        *_change("suite", "Metric suite", run_a.suite, run_b.suite),
        *_change(
            "metrics",
            "Metrics",
            ", ".join(run_a.config.get("metrics") or []) or "all",
            ", ".join(run_b.config.get("metrics") or []) or "all",
        ),
        *_change("judge_model", "Judge model", ja.model if ja else None, jb.model if jb else None),
        *_change(
            "judge_repeats",
            "Judge repeats",
            int(run_a.config.get("judge_repeats") or 1),
            int(run_b.config.get("judge_repeats") or 1),
        ),
    ]
    if ia and ib and ia.collection != ib.collection:
        run.append(FieldChange("collection", "Index collection", ia.collection, ib.collection))

    qset = [*_change("question_set", "Question set", run_a.question_set, run_b.question_set)]
    if ia and ib:
        qset += _change(
            "question_set_version", "Question-set version", ia.question_set_version, ib.question_set_version
        )
        if ia.questions_sha256 != ib.questions_sha256 and not qset:
            qset.append(
                FieldChange(
                    "questions_sha256", "Questions", ia.questions_sha256[:12], ib.questions_sha256[:12]
                )
            )

    documents: list[DocumentChange] = []
    code: list[FieldChange] = []
    if ia and ib:
        da = {d.name: d.sha256 for d in ia.documents}
        db = {d.name: d.sha256 for d in ib.documents}
        for name in sorted(set(da) | set(db), key=str.casefold):
            if name not in db:
                documents.append(DocumentChange(name, "removed", da[name], None))
            elif name not in da:
                documents.append(DocumentChange(name, "added", None, db[name]))
            elif da[name] != db[name]:
                documents.append(DocumentChange(name, "changed", da[name], db[name]))
        if ia.code and ib.code and ia.code.label != ib.code.label:
            code.append(FieldChange("code", "Code version", ia.code.label, ib.code.label))

    return RunDiff(
        baseline=run_a.id,
        candidate=run_b.id,
        config=tuple(config),
        run=tuple(run),
        question_set=tuple(qset),
        questions=tuple(_question_changes(results_a, results_b)),
        documents=tuple(documents),
        code=tuple(code),
        unknown=tuple(unknown),
    )


def identity_facts(identity: RunIdentity | None) -> dict[str, str]:
    """A run's identity as label → text, for the run details view."""
    if identity is None:
        return {}
    out = {}
    if identity.config is not None:
        c = identity.config.config
        out["Configuration"] = identity.config.label
        out["Answer model"] = c.answer_model
        out["Top-k"] = f"{c.top_k} ({c.retrieval})"
        out["Chunking"] = f"{c.chunk_size} / {c.chunk_overlap} characters"
    if identity.question_set:
        v = f" v{identity.question_set_version}" if identity.question_set_version else ""
        out["Question set"] = f"{identity.question_set}{v} · {identity.questions_sha256[:12]}"
    if identity.documents:
        out["Documents"] = ", ".join(f"{d.name} ({d.sha256[:8]})" for d in identity.documents)
    if identity.collection:
        out["Index collection"] = identity.collection
    if identity.code is not None:
        out["Code"] = identity.code.label
    if identity.sweep_id is not None:
        out["Sweep"] = f"#{identity.sweep_id}"
    return out
