"""Choose the offline answerer's "not covered" threshold on a held-out split (issue 10, item 7).

The threshold (:data:`rag_core.answer.extractive.MIN_SENTENCE_SCORE`) decides when the best quoted
sentence is too weak and the answer is "The policy documents provided do not cover this question."
It must not be tuned on the sample handbook the tests check it with, so it is chosen here on
``bench/data/calibration/`` — two policy documents written for this purpose, with 24 questions they
answer and 24 they do not — split alternately into a *fit* half, where the threshold maximising
(covered answered + uncovered refused) is chosen (the middle of the best interval), and a
*held-out* half, where it is reported. The sample handbook's questions are then scored as a test.

Usage: ``.venv/bin/python -m bench.calibrate_answerer [--out bench/results/calibration.json]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

from rag_core.answer.extractive import MIN_SENTENCE_SCORE, ExtractiveAnswerer
from rag_core.ingest.documents import parse_document
from rag_core.ingest.index import PolicyIndex
from rag_core.ingest.retrieval import retrieve
from rag_core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "bench" / "data" / "calibration"
SAMPLE_PDF = ROOT / "data" / "sample" / "northwind_staff_handbook.pdf"
SAMPLE_QUESTIONS = ROOT / "data" / "sample" / "questions.json"


def scores(docs: list[Path], questions: list[str], settings: Settings) -> list[float]:
    answerer = ExtractiveAnswerer()
    with PolicyIndex(settings) as index:
        for path in docs:
            index.add_document(parse_document(path.name, path.read_bytes(), settings))
        found = retrieve(index, questions, settings.top_k)
    return [answerer.best_score(q, ctx) for q, ctx in zip(questions, found, strict=True)]


def accuracy(covered: list[float], uncovered: list[float], t: float) -> tuple[int, int]:
    return sum(s >= t for s in covered), sum(s < t for s in uncovered)


def choose(covered: list[float], uncovered: list[float]) -> float:
    """The middle of the widest-scoring interval of thresholds (ties: the best interval first found)."""
    cuts = sorted(set(covered) | set(uncovered))
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(cuts)] or [0.5]
    best = max(sum(accuracy(covered, uncovered, t)) for t in candidates)
    good = [t for t in candidates if sum(accuracy(covered, uncovered, t)) == best]
    return round((min(good) + max(good)) / 2, 3)


def run() -> dict[str, Any]:
    spec = json.loads((CALIBRATION / "questions.json").read_text(encoding="utf-8"))
    covered_q = [q["question"] for q in spec["covered"]]
    uncovered_q = list(spec["uncovered"])
    with tempfile.TemporaryDirectory(prefix="rag-calibrate-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        got = scores(sorted(CALIBRATION.glob("*.md")), covered_q + uncovered_q, settings)
        cov, unc = got[: len(covered_q)], got[len(covered_q) :]
        fit_cov, held_cov = cov[0::2], cov[1::2]
        fit_unc, held_unc = unc[0::2], unc[1::2]
        threshold = choose(fit_cov, fit_unc)
        sample = json.loads(SAMPLE_QUESTIONS.read_text(encoding="utf-8"))
        settings2 = Settings(data_dir=Path(tmp) / "sample")
        sample_scores = scores([SAMPLE_PDF], [i["question"] for i in sample], settings2)
    out: dict[str, Any] = {"threshold": threshold, "current": MIN_SENTENCE_SCORE}
    for name, c, u in (("fit", fit_cov, fit_unc), ("held_out", held_cov, held_unc)):
        a, r = accuracy(c, u, threshold)
        out[name] = {"covered_answered": f"{a}/{len(c)}", "uncovered_refused": f"{r}/{len(u)}"}
        a, r = accuracy(c, u, MIN_SENTENCE_SCORE)
        out[name]["with_current"] = {
            "covered_answered": f"{a}/{len(c)}",
            "uncovered_refused": f"{r}/{len(u)}",
        }
    out["sample_handbook"] = [
        {"question": i["question"], "score": round(s, 3), "answered": s >= threshold}
        for i, s in zip(sample, sample_scores, strict=True)
    ]
    out["scores"] = {
        "covered": [round(s, 3) for s in cov],
        "uncovered": [round(s, 3) for s in unc],
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "calibration.json")
    args = parser.parse_args(argv)
    out = run()
    print(f"threshold chosen on the fit half: {out['threshold']} (in the code now: {out['current']})")
    for name in ("fit", "held_out"):
        print(f"  {name}: {out[name]}")
    answered = sum(r["answered"] for r in out["sample_handbook"])
    print(f"  sample handbook (test): {answered}/{len(out['sample_handbook'])} above the threshold")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
