"""A responder for :class:`tests.support.anthropic_server.FakeAnthropic` that answers RAGAS' judge calls.

RAGAS 0.4 collections metrics ask for structured output through ``instructor`` in Anthropic
*tools* mode: each request carries ``tools=[{name, description, input_schema}]`` and
``tool_choice={"type": "tool", "name": ...}``, and instructor validates the ``input`` of the
single ``tool_use`` block in the reply against the pydantic model. This responder therefore:

1. finds the forced tool (``tool_choice.name``, else the first tool) and its JSON schema;
2. parses the ``input: {...}`` block at the end of the RAGAS prompt (the sample being judged);
3. *generates* a schema-valid ``input`` from the schema (``$ref``/``$defs``, ``anyOf``, ``enum``,
   ``const``, arrays, objects, scalars), filling well-known fields from the sample so the
   judgement is plausible rather than constant:

   - ``statements: list[str]``            → the sentences of the prompt's ``answer``
   - ``[{statement, reason, verdict}]``     → one per prompt ``statements`` item (NLI step)
   - ``classifications: [{statement, reason, attributed}]`` → one per sentence of ``answer``
   - ``verdict`` / ``attributed``           → the verdict policy (see below)
   - ``question`` / ``noncommittal``        → a question about the response; 1 only for
     evasive responses ("do not cover", "I don't know")

   Unknown schemas still get a valid instance (schema-driven, not per-prompt hard-coding).

Verdict policy (``verdict=``): ``"overlap"`` (default: 1 when at least half of the statement's
content words occur in the context), a fixed ``0``/``1``, or ``callable(statement, context) -> int``
(e.g. an ``itertools.cycle`` to create judge variance for repeat tests).

Non-judge requests (no ``tools``, e.g. the answerer's own calls) go to ``fallback`` (default: the
stand-in's :func:`~tests.support.anthropic_server.default_responder`), so one server can serve a
whole claude-backend run with judge metrics. Thread-safe counters: ``calls`` (total) and
``by_tool`` (tool name → count; ``"text"`` for non-judge requests).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

_INPUT_RE = re.compile(r"input:\s*(\{.*\})\s*Output:\s*$", re.S)
_SENT_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"[a-z0-9]+")
_EVASIVE = ("do not cover", "don't know", "do not know", "not sure", "cannot answer", "unaware")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "by",
        "at",
        "as",
        "it",
        "its",
        "this",
        "that",
        "from",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "does",
        "do",
        "not",
        "no",
        "can",
        "may",
        "must",
        "will",
        "shall",
        "their",
        "they",
        "them",
        "your",
        "you",
    ]
)
_MAX_ITEMS = 30
_MAX_DEPTH = 8

Verdict = int | str | Callable[[str, str], int]


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after ``.!?``), stripped, empty ones dropped; at most 30."""
    parts = [s.strip() for s in _SENT_RE.split(" ".join(text.split()))]
    return [s for s in parts if s][:_MAX_ITEMS]


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def overlap_verdict(statement: str, context: str) -> int:
    """1 when ≥ half of the statement's content words occur in ``context`` (1 when it has none)."""
    words = _content_words(statement)
    if not words:
        return 1
    return int(len(words & _content_words(context)) / len(words) >= 0.5)


class RagasResponder:
    """``responder(request_json) -> list[tool_use block] | str`` for the FakeAnthropic stand-in."""

    def __init__(
        self,
        *,
        verdict: Verdict = "overlap",
        text_only: bool = False,
        fallback: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        """``text_only=True`` answers judge requests with plain text (no tool call), which
        instructor rejects: use it to test the "judge returned malformed output" path."""
        if isinstance(verdict, str) and verdict != "overlap":
            raise ValueError("verdict must be 'overlap', 0, 1 or a callable")
        self._verdict = verdict
        self.text_only = text_only
        if fallback is None:
            from tests.support.anthropic_server import default_responder

            fallback = default_responder
        self._fallback = fallback
        self._lock = threading.Lock()
        self.calls = 0
        self.by_tool: dict[str, int] = {}

    # --- entry point ---------------------------------------------------------------------------
    def __call__(self, body: dict[str, Any]) -> list[dict[str, Any]] | str:
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        tool = next((t for t in tools if t.get("name") == choice.get("name")), tools[0] if tools else None)
        name = tool.get("name", "response") if tool else "text"
        with self._lock:
            self.calls += 1
            n = self.calls
            self.by_tool[name] = self.by_tool.get(name, 0) + 1
        if tool is None or name == "record_question_pair":  # question generation (issue 14): the fallback's
            return self._fallback(body)
        if self.text_only:
            return "I am a stand-in judge and have nothing structured to say."
        sample = _sample_of(body)
        schema = tool.get("input_schema") or {"type": "object"}
        value = _Gen(schema, sample, self.verdict).object_root()
        return [{"type": "tool_use", "id": f"toolu_fake_{n:06d}", "name": name, "input": value}]

    def verdict(self, statement: str, context: str) -> int:
        """The policy's 0/1 verdict for ``statement`` given ``context``."""
        v = self._verdict
        if v == "overlap":
            return overlap_verdict(statement, context)
        if callable(v):
            return 1 if int(v(statement, context)) else 0
        return 1 if int(v) else 0


def _sample_of(body: dict[str, Any]) -> dict[str, Any]:
    """The ``input: {...}`` JSON at the end of the last user message ({} when absent/unparsable)."""
    text = ""
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                text = "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
            break
    idx = text.rfind("input:")
    m = _INPUT_RE.search(text[idx:]) if idx >= 0 else None
    if not m:
        return {}
    try:
        value = json.loads(m.group(1))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class _Gen:
    """Builds one instance of a JSON schema, using the judged sample for well-known fields."""

    def __init__(self, root: dict[str, Any], sample: dict[str, Any], verdict: Callable[[str, str], int]):
        self.root = root
        self.sample = sample
        self.verdict = verdict
        self.context = str(sample.get("context", ""))
        answer = sample.get("answer") or sample.get("response") or sample.get("text") or ""
        self.answer_sentences = sentences(str(answer)) or ["The answer makes one statement."]

    def object_root(self) -> dict[str, Any]:
        value = self.build(self.root, name="", depth=0, hint=None)
        return value if isinstance(value, dict) else {"value": value}

    # --- schema helpers ----------------------------------------------------------------------
    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def build(self, schema: dict[str, Any], *, name: str, depth: int, hint: str | None) -> Any:
        schema = self.resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.enum(schema["enum"], name, hint)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(o) for o in schema[key]]
                non_null = [o for o in options if o.get("type") != "null"] or options
                return self.build(non_null[0], name=name, depth=depth + 1, hint=hint)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.build(merged, name=name, depth=depth + 1, hint=hint)
        typ = schema.get("type")
        if isinstance(typ, list):
            typ = next((t for t in typ if t != "null"), "null")
        if typ == "object" or (typ is None and "properties" in schema):
            return self.obj(schema, depth=depth, hint=hint)
        if typ == "array":
            return self.array(schema, name=name, depth=depth)
        if typ == "integer":
            return self.integer(schema, name, hint)
        if typ == "number":
            return float(self.integer(schema, name, hint))
        if typ == "boolean":
            return bool(self.integer(schema, name, hint))
        if typ == "null":
            return None
        return self.string(name, hint)

    def obj(self, schema: dict[str, Any], *, depth: int, hint: str | None) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        out: dict[str, Any] = {}
        for key in required:
            sub = props.get(key, {"type": "string"})
            out[key] = self.build(sub, name=key, depth=depth + 1, hint=hint)
        return out

    def array(self, schema: dict[str, Any], *, name: str, depth: int) -> list[Any]:
        items = self.resolve(schema.get("items") or {"type": "string"})
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", _MAX_ITEMS))
        item_props = (items.get("properties") or {}) if isinstance(items, dict) else {}
        if items.get("type") == "string" and name in ("statements", "sentences", "claims"):
            hints: list[str | None] = list(self.answer_sentences)
        elif "statement" in item_props:
            given = self.sample.get("statements")
            if isinstance(given, list) and given:
                hints = [str(s) for s in given]
            else:
                hints = list(self.answer_sentences)
        else:
            hints = [None] * 2
        hints = hints[: max(1, min(hi, _MAX_ITEMS))]
        while len(hints) < lo:
            hints.append(None)
        return [self.build(items, name=name.rstrip("s") or "item", depth=depth + 1, hint=h) for h in hints]

    def enum(self, values: list[Any], name: str, hint: str | None) -> Any:
        if name in ("verdict", "attributed") and {str(v) for v in values} >= {"0", "1"}:
            want = str(self.judge(hint))
            return next(v for v in values if str(v) == want)
        return values[0]

    def integer(self, schema: dict[str, Any], name: str, hint: str | None) -> int:
        if name in ("verdict", "attributed"):
            value = self.judge(hint)
        elif name == "noncommittal":
            text = str(self.sample.get("response", "")).lower()
            value = int(any(p in text for p in _EVASIVE))
        else:
            value = 1
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None:
            value = max(value, int(lo))
        if hi is not None:
            value = min(value, int(hi))
        return value

    def string(self, name: str, hint: str | None) -> str:
        if name in ("statement", "sentence", "claim"):
            return hint or self.answer_sentences[0]
        if name in ("statements", "sentences", "claims") and hint:
            return hint
        if name == "question":
            words = str(self.sample.get("response", "")).split()[:10]
            topic = " ".join(words).rstrip(".!?") or "this policy"
            return f"What does the policy say about {topic}?"
        if name == "reason":
            if hint is not None:
                ok = self.judge(hint)
                return ("The context states this." if ok else "The context does not state this.")[:200]
            return "Stand-in judgement based on word overlap with the context."
        return "stand-in value"

    def judge(self, hint: str | None) -> int:
        statement = hint if hint is not None else str(self.sample.get("answer", ""))
        return self.verdict(statement, self.context)
