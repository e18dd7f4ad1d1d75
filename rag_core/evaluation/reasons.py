"""Reasons kept with a score: compact JSON, shortened item by item, never cut mid-token.

:func:`_reason` turns RAGAS' structured judge outputs for one job into the JSON the drill-down
view shows (faithfulness verdicts per statement, generated questions, per-chunk verdicts, recall
classifications).
"""

from __future__ import annotations

import json
from typing import Any

MAX_REASON_CHARS = 4000
"""Longest reason kept per score (JSON is shortened item by item, never cut mid-token)."""


def _shorten_json(payload: dict[str, Any], list_key: str) -> str:
    """JSON of payload, dropping items of payload[list_key] from the end to fit MAX_REASON_CHARS."""
    text = json.dumps(payload, ensure_ascii=False)
    items = payload.get(list_key)
    if not isinstance(items, list):
        return text[:MAX_REASON_CHARS]
    kept = list(items)
    while len(text) > MAX_REASON_CHARS and kept:
        kept.pop()
        text = json.dumps(payload | {list_key: kept, "omitted": len(items) - len(kept)}, ensure_ascii=False)
    return text[:MAX_REASON_CHARS]


def _cut(s: Any, n: int = 300) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _reason(metric: str, outputs: list[Any]) -> str | None:
    """RAGAS' structured judge outputs for one job → compact JSON for the drill-down view."""
    dumps = [o.model_dump() if hasattr(o, "model_dump") else o for o in outputs]
    try:
        if metric == "faithfulness":
            verdicts: list[Any] = next(
                (
                    d["statements"]
                    for d in reversed(dumps)
                    if isinstance(d, dict) and d.get("statements") and isinstance(d["statements"][0], dict)
                ),
                [],
            )
            items = [
                {
                    "statement": _cut(v.get("statement", "")),
                    "verdict": int(v.get("verdict", 0)),
                    "reason": _cut(v.get("reason", ""), 200),
                }
                for v in verdicts
            ]
            return _shorten_json({"statements": items}, "statements")
        if metric == "answer_relevancy":
            items = [
                {"question": _cut(d.get("question", "")), "noncommittal": int(d.get("noncommittal", 0))}
                for d in dumps
                if isinstance(d, dict)
            ]
            return _shorten_json({"generated_questions": items}, "generated_questions")
        if metric == "context_precision":
            items = [
                {
                    "chunk": i + 1,
                    "verdict": int(d.get("verdict", 0)),
                    "reason": _cut(d.get("reason", ""), 200),
                }
                for i, d in enumerate(dumps)
                if isinstance(d, dict)
            ]
            return _shorten_json({"chunks": items}, "chunks")
        if metric == "context_recall":
            cls: list[Any] = next((d.get("classifications", []) for d in dumps if isinstance(d, dict)), [])
            items = [
                {
                    "statement": _cut(c.get("statement", "")),
                    "attributed": int(c.get("attributed", 0)),
                    "reason": _cut(c.get("reason", ""), 200),
                }
                for c in cls
            ]
            return _shorten_json({"statements": items}, "statements")
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return _shorten_json({"outputs": dumps}, "outputs") if dumps else None
