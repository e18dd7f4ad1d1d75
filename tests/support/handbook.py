"""Changed copies of the sample handbook (issue 14's stale questions), built from its Markdown
source with ``scripts/build_sample_pdf.py`` — shared by tests and ``bench/coverage.py``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDBOOK_MD = ROOT / "data" / "sample" / "handbook.md"
BUILDER = ROOT / "scripts" / "build_sample_pdf.py"

#: Two policy changes, each in a section one sample question is grounded in:
#: "2. Annual Leave" (Q2, carry-over) and "8. Remote and Hybrid Working" (Q7, days at home).
STALE_EDITS: dict[str, str] = {
    "You may carry over up to five days of unused holiday": "You may carry over up to eight days of unused holiday",
    "may work from home on up to three days each week and must be in their usual office on at least two days": (
        "may work from home on up to two days each week and must be in their usual office on at least three days"
    ),
}
#: The sections :data:`STALE_EDITS` change, and the sample questions (1-based) grounded in them.
STALE_SECTIONS = ("2. Annual Leave", "8. Remote and Hybrid Working")
STALE_QUESTIONS = (2, 7)
#: A change in a section no sample question tests ("11. Grievances"): flags nothing.
UNTESTED_EDIT = {
    "The People Team will acknowledge it within five working days": "The People Team will acknowledge it within three working days"
}


def _builder():
    if "build_sample_pdf" in sys.modules:
        return sys.modules["build_sample_pdf"]
    spec = importlib.util.spec_from_file_location("build_sample_pdf", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def handbook_pdf(edits: Mapping[str, str] | None = None) -> bytes:
    """The sample handbook as a PDF with ``edits`` ({old text: new text}, each must occur) applied."""
    text = HANDBOOK_MD.read_text(encoding="utf-8")
    for old, new in (edits or {}).items():
        assert old in text, f"not in the handbook: {old!r}"
        text = text.replace(old, new)
    builder = _builder()
    return bytes(builder.build_pdf(builder.parse_markdown(text)))
