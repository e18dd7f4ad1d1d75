"""The stand-in's answers to question-generation requests (issue 14), schema-valid like the real API's.

A generation request (``rag_core.authoring.prompt.write_request``) forces the tool
``record_question_pair``; the real API then answers with one ``tool_use`` block whose ``input``
matches the tool's ``input_schema``. :func:`generation_reply` does the same from the prompt alone
(no rag_core import): it reads ``<kind>`` and the ``<passage id=… document=… section=…>`` blocks
and writes a question from a fact-bearing sentence of the passage(s), the expected answer being
that sentence (so the pair is grounded in the passage, as a real one would be). Decline requests get
one of :data:`DECLINE_QUESTIONS` (HR topics the sample handbook does not cover) picked by
``<variant>`` and skipping those under ``<avoid>``. A closed-book request (``<closed_book>``) is
answered ``UNKNOWN`` unless the question is in :data:`GENERAL_KNOWLEDGE` (then with its answer).
Deterministic: the same request gets the same reply.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

TOOL_NAME = "record_question_pair"
_PASSAGE_RE = re.compile(
    r'<passage id="(P\d+)" document="([^"]*)" section="([^"]*)"(?: page="\d+")?>\n(.*?)\n</passage>', re.S
)
_SENT_RE = re.compile(r"(?<=[.!?])\s+")
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
        "be",
        "by",
        "at",
        "as",
        "it",
        "its",
        "this",
        "that",
        "your",
        "you",
    ]
)

#: Plausible HR questions the sample handbook does not answer.
DECLINE_QUESTIONS = (
    "Does the organisation pay for a gym membership?",
    "Can I bring my dog to the office?",
    "Is there an on-site crèche for staff children?",
    "Does Northwind offer a cycle-to-work scheme?",
    "Can I get a season ticket loan for my train fare?",
    "Do staff get free parking at head office?",
    "Is there a staff discount at local shops?",
    "Does the organisation offer private medical insurance?",
    "Can I buy extra days of holiday through salary sacrifice?",
    "Is there a long-service award after ten years?",
    "Does the organisation reimburse professional membership fees?",
    "Is there a company choir or social club?",
)
#: Closed-book questions the stand-in "knows" (to exercise the general-knowledge flag).
GENERAL_KNOWLEDGE: dict[str, str] = {}


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return "\n".join(
                    b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text"
                )
    return ""


def is_generation(body: dict[str, Any]) -> bool:
    return any(isinstance(t, dict) and t.get("name") == TOOL_NAME for t in body.get("tools") or [])


def is_closed_book(body: dict[str, Any]) -> bool:
    return "<closed_book>" in _last_user_text(body)


def _fact_sentence(text: str, skip: int = 0) -> str:
    sentences = [s.strip() for s in _SENT_RE.split(" ".join(text.split())) if len(s.split()) >= 6]
    with_numbers = [s for s in sentences if re.search(r"\d", s)]
    ordered = with_numbers + [s for s in sentences if s not in with_numbers]
    if not ordered:
        return " ".join(text.split())[:300]
    return ordered[skip % len(ordered)][:400]


def _topic(sentence: str, n: int = 7) -> str:
    words = [w.strip(",.;:()'\"") for w in sentence.split()]
    content = [w for w in words if w and w.lower() not in _STOP]
    return " ".join(content[:n])


def _heading(section: str) -> str:
    last = section.split(" › ")[-1].strip()
    return re.sub(r"^\d+(\.\d+)*\.?\s*", "", last) or "this policy"


def generation_reply(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_use`` content of a generation request (see the module docstring)."""
    text = _last_user_text(body)
    kind = (re.search(r"<kind>(\w+)</kind>", text) or [None, "factual"])[1]
    passages = [
        (pid, html.unescape(doc), html.unescape(sec), html.unescape(body_))
        for pid, doc, sec, body_ in _PASSAGE_RE.findall(text)
    ]
    if kind == "decline" or not passages:
        variant = int((re.search(r"<variant>(\d+)</variant>", text) or [None, "0"])[1])
        block = re.search(r"<avoid>\n(.*?)</avoid>", text, re.S)
        avoid = {
            html.unescape(a).strip() for a in re.findall(r"^- (.*)$", block.group(1) if block else "", re.M)
        }
        options = [q for q in DECLINE_QUESTIONS if q not in avoid] or list(DECLINE_QUESTIONS)
        q = options[variant % len(options)]
        data = {
            "question": q,
            "expected_answer": "The handbook does not cover this; ask HR.",
            "passage_ids": [],
        }
    else:
        pid, _doc, sec, passage = passages[0]
        fact = _fact_sentence(passage)
        topic = _topic(fact)
        if kind == "multi_passage" and len(passages) > 1:
            pid2, _doc2, sec2, passage2 = passages[1]
            fact2 = _fact_sentence(passage2)
            q = (
                f"How do the rules on {_heading(sec).lower()} ({topic}) combine with those on "
                f"{_heading(sec2).lower()} ({_topic(fact2, 5)})?"
            )
            data = {"question": q, "expected_answer": f"{fact} {fact2}", "passage_ids": [pid, pid2]}
        elif kind == "scenario":
            fact = _fact_sentence(passage, skip=1)  # another sentence than a factual question's
            q = (
                f"A colleague in my team is dealing with {_heading(sec).lower()} and mentions "
                f"{_topic(fact, 5).lower()}; which rule applies to them?"
            )
            data = {"question": q, "expected_answer": fact, "passage_ids": [pid]}
        else:
            q = f"What does the handbook say about {_heading(sec).lower()}, in particular {topic}?"
            data = {"question": q, "expected_answer": fact, "passage_ids": [pid]}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return [{"type": "tool_use", "id": f"toolu_gen_{digest}", "name": TOOL_NAME, "input": data}]


def closed_book_reply(body: dict[str, Any]) -> str:
    m = re.search(r"<question>(.*?)</question>", _last_user_text(body), re.S)
    q = html.unescape(m.group(1)).strip() if m else ""
    return GENERAL_KNOWLEDGE.get(q, "UNKNOWN")
