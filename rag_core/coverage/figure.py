"""The coverage heat map: documents (columns) × sections (rows, in document order); colour = how
many questions test the section, the cell text = that count and the latest run's correctness,
hover = the question numbers and stale flags. Untested sections are 0 (the palette's white end)."""

from __future__ import annotations

import plotly.graph_objects as go

from rag_core.coverage.report import CoverageReport

__all__ = ["coverage_heatmap"]

#: White for 0 questions, darker blue for more.
COLORSCALE = [[0.0, "#fff4f2"], [0.0001, "#dbe9f6"], [1.0, "#08519c"]]
_MAX_LABEL = 48


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def coverage_heatmap(report: CoverageReport) -> go.Figure:
    """The heat map of ``report`` (an empty figure with a title when it has no sections)."""
    docs = report.documents()
    rows: list[str] = []
    seen: set[str] = set()
    for s in report.sections:  # a row label per (document, section); documents in order
        label = s.label if len(docs) == 1 else f"{s.document} › {s.label}"
        label = _short(label)
        while label in seen:  # two identical labels would merge rows
            label += " "
        seen.add(label)
        rows.append(label)
    z: list[list[float | None]] = [[None] * len(docs) for _ in rows]
    text: list[list[str]] = [[""] * len(docs) for _ in rows]
    hover: list[list[str]] = [[""] * len(docs) for _ in rows]
    for i, s in enumerate(report.sections):
        j = docs.index(s.document)
        z[i][j] = float(s.n_questions)
        if s.n_questions:
            score = f" · {s.correct}/{s.in_run} correct" if s.in_run else ""
            stale = f" · {s.stale} ⚠" if s.stale else ""
            text[i][j] = f"{s.n_questions} q{score}{stale}"
        else:
            text[i][j] = "untested"
        numbers = ", ".join(f"Q{n}" for n in s.questions) or "none"
        last = (
            f"{s.correct} of {s.in_run} correct in run #{report.run_id}"
            if s.in_run and report.run_id is not None
            else "not in the latest run"
            if report.run_id is not None
            else "no run yet"
        )
        hover[i][j] = f"{s.document}<br>{s.label}<br>questions: {numbers}<br>latest run: {last}" + (
            f"<br>stale (policy changed): {s.stale}" if s.stale else ""
        )
    top = max((s.n_questions for s in report.sections), default=0)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_short(d, 40) for d in docs],
            y=rows,
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=COLORSCALE,
            zmin=0,
            zmax=max(1, top),
            colorbar={"title": {"text": "questions"}, "dtick": 1 if top <= 10 else None},
            xgap=2,
            ygap=2,
        )
    )
    covered = f"{report.covered} of {report.total} sections tested"
    fig.update_layout(
        title={
            "text": f"Coverage of {_short(report.question_set, 40)} · {covered}",
            "y": 0.98,
            "yanchor": "top",
        },
        height=max(260, 34 * len(rows) + 140),
        margin={"l": 10, "r": 10, "t": 100, "b": 10},
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"side": "top", "automargin": True},
    )
    return fig
