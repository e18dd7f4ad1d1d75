"""A loopback stand-in of the Anthropic Messages API, for tests and benchmarks.

A real HTTP server (aiohttp) on ``127.0.0.1`` with an ephemeral port, running its own event loop in a
background thread, so the real ``anthropic`` SDK talks to it through ``base_url``::

    with FakeAnthropic(latency=1.0, faults=FaultPlan(schedule={0: "429"})) as srv:
        settings = settings.replace(base_url=srv.base_url, api_key=Secret("sk-test-not-a-real-key"))
        ...
        assert srv.peak_concurrency <= 8
        print(srv.requests)          # one RequestLog per request, in arrival order

What it does
- ``POST /v1/messages`` answers with valid Messages API JSON (``id``, ``type``, ``role``,
  ``content [{type: text, text}]``, ``model``, ``stop_reason``, ``usage``). The text comes from a
  *responder*: ``responder(request_json) -> str | list[block] | dict`` (a dict is merged over the
  default message, so a responder can return ``tool_use`` blocks). The default responder echoes the
  first sentence of the first ``<chunk source=".." page="..">`` in the prompt with a citation, or
  :data:`NOT_COVERED` when the prompt holds no chunk. Question-generation requests (a forced
  ``record_question_pair`` tool) get one schema-valid ``tool_use`` pair written from the prompt's
  passages (:mod:`tests.support.authoring_responder`).
- Latency: a fixed number of seconds or ``latency(n) -> seconds`` for the n-th request (0-based).
- Faults (:class:`FaultPlan`): by schedule (request number → fault) or by seeded random rates:
  ``"401"``, ``"403"``, ``"404"``, ``"400"``, ``"429"`` (with ``retry-after``), ``"529"``,
  ``"500"``, ``"hang"`` (no answer until the client gives up, capped by ``hang_s``).
- A load-driven limit: with ``max_concurrent=K`` a request arriving while K are in flight gets 429.
- Token accounting like the API's: ``usage.input_tokens`` counts tools, system and messages at
  characters / 4 (:func:`prompt_segments`); output tokens the reply's JSON / 4. Prompt caching:
  the prefix up to the last block with ``cache_control`` (tools → system → messages, the API's
  order), if at least 1,024 tokens (2,048 for Haiku models), is a cache *write* the first time
  (``cache_creation_input_tokens``) and a *read* when seen within 5 minutes
  (``cache_read_input_tokens``; a read refreshes the 5 minutes); those tokens are not in
  ``input_tokens``. Message Batches results are counted the same way.
- ``echo_headers=True``: every error body's message ends with the request's headers —
  ``Authorization`` / ``x-api-key`` included — like a careless proxy, to prove nothing echoes a key.
- ``anthropic-ratelimit-requests-remaining`` header when ``requests_remaining`` is set
  (an int, or ``requests_remaining(n) -> int|None``).
- Errors use Anthropic's error JSON shape ``{"type": "error", "error": {"type", "message"}}``.
- ``GET /_fake/stats`` returns the counters as JSON (for a server run in another process).
- Message Batches (:class:`_Batch`): ``POST /v1/messages/batches`` accepts ``{"requests": [{custom_id,
  params}]}`` and returns a ``MessageBatch`` (``msgbatch_…``, ``in_progress``); ``GET
  /v1/messages/batches/{id}`` reports ``ended`` ``batch_latency`` seconds after creation (with
  ``request_counts`` and an absolute ``results_url``); ``GET …/{id}/results`` streams JSONL lines
  ``{custom_id, result}`` in a shuffled order, answering ``succeeded`` requests with the same
  responder as ``/v1/messages`` (``batch_error_rate``/``batch_expired_rate`` inject ``errored`` /
  ``expired`` results); ``POST …/{id}/cancel`` cancels: requests not finished by then (request *i*
  of *n* finishes at ``created + batch_latency·(i+1)/n``) come back ``canceled``, and the batch is
  ``canceling`` for ``batch_cancel_latency`` s, then ``ended``. Batches live in the server
  object's memory (the standalone process keeps them for its lifetime, so a restarted client can
  resume). ``batch_faults={"retrieve": {1: "529"}}`` fails the n-th (0-based) call of an operation
  (``create``, ``retrieve``, ``results``, ``cancel``). Counters: ``batch_calls`` (per operation).

Bounds: at most ``max_requests`` requests are served (later ones get 503), a hang lasts at most
``hang_s`` seconds (and ends when the client disconnects), the request log keeps at most
``max_requests`` entries.

Run standalone (the CLI tests use this)::

    python -m tests.support.anthropic_server --port 0 --latency 1 [--ragas] [--batch-latency 5]
    # prints "READY http://127.0.0.1:PORT" on one line, then serves until killed
    # --ragas answers RAGAS judge (tool) calls too (tests.support.ragas_responder.RagasResponder)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import inspect
import json
import random
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

NOT_COVERED = "The policy documents provided do not cover this question."
"""Same sentence as ``rag_core.answer.claude.NOT_COVERED`` (kept literal: the fake imports no rag_core)."""

FAULTS = ("ok", "400", "401", "403", "404", "429", "500", "529", "hang")
"""Every fault name a :class:`FaultPlan` understands (``"ok"`` = answer normally)."""

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    400: "The request is malformed.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: not found",
    429: "Number of requests has exceeded your rate limit.",
    500: "Internal server error.",
    503: "The stand-in served its maximum number of requests.",
    529: "Overloaded",
}
_CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BATCH_OPS = ("create", "retrieve", "results", "cancel")
"""Message Batches operations (keys of ``batch_calls`` and ``batch_faults``)."""
_CHUNK_RE = re.compile(r'<chunk\b[^>]*?source="([^"]*)"[^>]*?page="([^"]*)"[^>]*>(.*?)</chunk>', re.S)
CACHE_TTL_S = 300.0
"""How long a cached prompt prefix lives after its last use (Anthropic's default 5 minutes)."""


def min_cache_tokens(model: str) -> int:
    """Shortest prefix the API caches: 2,048 tokens on Haiku models, 1,024 otherwise."""
    return 2048 if "haiku" in (model or "").lower() else 1024


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def prompt_segments(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The request's prompt in the API's cache order (tools, system, messages) as
    ``(text, ends_a_cache_breakpoint)`` parts; token counts are characters / 4 of these texts."""

    def block(b: Any) -> tuple[str, bool]:
        if not isinstance(b, dict):
            return str(b), False
        marked = "cache_control" in b
        if b.get("type") == "text":
            return str(b.get("text", "")), marked
        return json.dumps({k: v for k, v in b.items() if k != "cache_control"}, sort_keys=True), marked

    out: list[tuple[str, bool]] = [block(t) for t in body.get("tools") or [] if isinstance(t, dict)]
    system = body.get("system")
    if isinstance(system, str):
        out.append((system, False))
    elif isinstance(system, list):
        out.extend(block(b) for b in system)
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            out.append((content, False))
        elif isinstance(content, list):
            out.extend(block(b) for b in content)
    return out


@dataclass
class FaultPlan:
    """Which requests fail, and how.

    ``by_question`` maps a question text to a fault for every request asking it (retries too);
    ``schedule`` maps a 0-based request number to a fault name; both win over the rates. The rates
    are probabilities drawn from ``random.Random(seed)`` in arrival order (so a plan is
    reproducible for a given arrival order). ``retry_after`` is the ``retry-after`` header sent
    with 429 (and 529 when ``retry_after_on_529``); ``None`` sends no header.
    """

    schedule: Mapping[int, str] = field(default_factory=dict)
    by_question: Mapping[str, str] = field(default_factory=dict)
    """Fault for every request whose ``<question>`` text equals the key (wins over the rest)."""
    rate_401: float = 0.0
    rate_429: float = 0.0
    rate_529: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    seed: int = 0
    retry_after: float | None = 1.0
    retry_after_on_529: bool = False

    def __post_init__(self) -> None:
        bad = [f for f in (*self.schedule.values(), *self.by_question.values()) if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown fault(s) {bad}; expected one of {FAULTS}")
        self._rng = random.Random(self.seed)

    def fault_for(self, n: int, question: str | None = None) -> str:
        """The fault for the n-th request (0-based). Call once per request, in arrival order."""
        draw = self._rng.random()  # drawn even for scheduled requests, so rates stay reproducible
        if question is not None and question in self.by_question:
            return self.by_question[question]
        if n in self.schedule:
            return self.schedule[n]
        edge = 0.0
        for name, rate in (
            ("401", self.rate_401),
            ("429", self.rate_429),
            ("529", self.rate_529),
            ("500", self.rate_500),
            ("hang", self.rate_hang),
        ):
            edge += rate
            if draw < edge:
                return name
        return "ok"


@dataclass
class RequestLog:
    """One request as the stand-in saw it."""

    n: int
    """0-based arrival number."""
    fault: str
    """The fault applied (``"ok"`` when answered normally)."""
    status: int
    """HTTP status sent (0 when the client went away first, e.g. after a hang)."""
    start: float
    """Epoch seconds when the request arrived."""
    end: float | None = None
    """Epoch seconds when the response was sent (None while in flight)."""
    model: str | None = None
    """The ``model`` field of the request body."""
    question: str | None = None
    """Text of the ``<question>`` element of the last user message, if any."""
    retry_count: str | None = None
    """The SDK's ``x-stainless-retry-count`` header (should stay "0": the engine owns retries)."""
    has_key: bool = False
    """Whether a key was sent (``x-api-key`` or ``Authorization: Bearer``); never the value."""


@dataclass
class _Batch:
    """One Message Batch held by the stand-in."""

    id: str
    created: float
    """Epoch seconds."""
    latency: float
    """Seconds from creation until processing ends (unless cancelled)."""
    requests: list[tuple[str, dict[str, Any]]]
    """``(custom_id, params)`` in submission order."""
    planned: list[str]
    """Outcome per request if not cancelled: ``"succeeded"``, ``"errored"`` or ``"expired"``."""
    cancel_at: float | None = None
    cancel_latency: float = 0.0
    results: list[dict[str, Any]] | None = None
    """JSONL lines, built on the first results read (then served identically)."""
    echo: str = ""
    """With ``echo_headers``: the create request's headers, appended to errored results' messages."""

    def finish_time(self, i: int) -> float:
        return self.created + self.latency * (i + 1) / len(self.requests)

    def ended_at(self) -> float:
        end = self.created + self.latency
        if self.cancel_at is not None:
            end = min(end, self.cancel_at + self.cancel_latency)
        return end

    def outcome(self, i: int) -> str:
        if self.cancel_at is not None and self.finish_time(i) > self.cancel_at:
            return "canceled"
        return self.planned[i]

    def status(self, now: float) -> str:
        if now >= self.ended_at():
            return "ended"
        return "canceling" if self.cancel_at is not None else "in_progress"

    def to_json(self, now: float, base_url: str) -> dict[str, Any]:
        st = self.status(now)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if st == "ended":
            for i in range(len(self.requests)):
                counts[self.outcome(i)] += 1
        else:
            counts["processing"] = len(self.requests)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": st,
            "request_counts": counts,
            "created_at": _iso(self.created),
            "expires_at": _iso(self.created + 24 * 3600),
            "ended_at": _iso(self.ended_at()) if st == "ended" else None,
            "cancel_initiated_at": _iso(self.cancel_at) if self.cancel_at is not None else None,
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if st == "ended" else None,
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def default_responder(body: dict[str, Any]) -> Any:
    """Answer from the prompt: first sentence of the first chunk + citation, else NOT_COVERED.
    Question-generation requests (issue 14) get a schema-valid ``tool_use`` pair and closed-book
    checks a short reply (:mod:`tests.support.authoring_responder`)."""
    from tests.support import authoring_responder as gen

    if gen.is_generation(body):
        return gen.generation_reply(body)
    if gen.is_closed_book(body):
        return gen.closed_book_reply(body)
    text = _last_user_text(body)
    m = _CHUNK_RE.search(text)
    if not m:
        return NOT_COVERED
    source, page, chunk = html.unescape(m.group(1)), html.unescape(m.group(2)), html.unescape(m.group(3))
    chunk = " ".join(chunk.split())
    first = re.split(r"(?<=[.!?])\s", chunk, maxsplit=1)[0][:400].strip()
    if not first:
        return NOT_COVERED
    return f"{first} ({source}, p. {page})"


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
            )
    return ""


def _question_of(body: dict[str, Any]) -> str | None:
    m = re.search(r"<question>\s*(.*?)\s*</question>", _last_user_text(body), re.S)
    return html.unescape(m.group(1)) if m else None


class FakeAnthropic:
    """The stand-in server; use as a context manager (starts on enter, stops on exit).

    Attributes valid while running: ``base_url`` (``http://127.0.0.1:PORT``), ``port``,
    ``peak_concurrency``, ``in_flight``, ``requests`` (a copy of the log), ``count``.
    Thread-safe: counters are read under a lock.
    """

    def __init__(
        self,
        *,
        latency: float | Callable[[int], float] = 0.0,
        faults: FaultPlan | None = None,
        responder: Callable[[dict[str, Any]], Any] | None = None,
        requests_remaining: int | Callable[[int], int | None] | None = None,
        api_key: str | None = None,
        error_latency: float = 0.0,
        hang_s: float = 30.0,
        max_requests: int = 100_000,
        max_concurrent: int | None = None,
        port: int = 0,
        batch_latency: float = 1.0,
        batch_cancel_latency: float = 0.2,
        batch_error_rate: float = 0.0,
        batch_expired_rate: float = 0.0,
        batch_faults: Mapping[str, Mapping[int, str]] | None = None,
        batch_seed: int = 0,
        max_batches: int = 1000,
        echo_headers: bool = False,
    ) -> None:
        """``api_key``: when set, other keys get 401. ``error_latency``: delay before error replies.
        ``max_concurrent``: a load-driven rate limit — a request arriving while this many are
        already in flight gets 429 (with the plan's ``retry_after``), like a real concurrency cap.
        ``batch_*``: Message Batches behaviour (see the module docstring); at most ``max_batches``
        batches are kept (later creates get 429). ``echo_headers``: error messages end with the
        request's headers, credentials included (see the module docstring)."""
        self.latency = latency
        self.faults = faults or FaultPlan()
        self.responder = responder or default_responder
        self.requests_remaining = requests_remaining
        self.api_key = api_key
        self.error_latency = error_latency
        self.hang_s = min(float(hang_s), 300.0)
        self.max_requests = max_requests
        self.max_concurrent = max_concurrent
        self._port = port
        self._lock = threading.Lock()
        self._log: list[RequestLog] = []
        self._n = 0
        self._in_flight = 0
        self._peak = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self.batch_latency = float(batch_latency)
        self.batch_cancel_latency = float(batch_cancel_latency)
        self.batch_error_rate = float(batch_error_rate)
        self.batch_expired_rate = float(batch_expired_rate)
        self.batch_faults = {op: dict(v) for op, v in (batch_faults or {}).items()}
        bad = [op for op in self.batch_faults if op not in BATCH_OPS]
        if bad:
            raise ValueError(f"unknown batch operation(s) {bad}; expected one of {BATCH_OPS}")
        self.max_batches = int(max_batches)
        self._batch_rng = random.Random(batch_seed)
        self._batches: dict[str, _Batch] = {}
        self._batch_calls: dict[str, int] = dict.fromkeys(BATCH_OPS, 0)
        self._batch_msg_n = 0
        self.echo_headers = bool(echo_headers)
        self._cache: dict[str, float] = {}
        self._tokens = {"input": 0, "output": 0, "cache_write": 0, "cache_read": 0}

    # --- public -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def peak_concurrency(self) -> int:
        with self._lock:
            return self._peak

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return self._n

    @property
    def requests(self) -> list[RequestLog]:
        with self._lock:
            return [RequestLog(**asdict(r)) for r in self._log]

    @property
    def batch_calls(self) -> dict[str, int]:
        """Message Batches calls received so far, per operation (``create``, ``retrieve``, …)."""
        with self._lock:
            return dict(self._batch_calls)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A stored batch as the API would return it (KeyError when unknown)."""
        with self._lock:
            return self._batches[batch_id].to_json(time.time(), self.base_url)

    def batch_requests(self, batch_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The ``(custom_id, params)`` a batch was created with (KeyError when unknown)."""
        with self._lock:
            return list(self._batches[batch_id].requests)

    def stats(self) -> dict[str, Any]:
        """Counters as plain data (what ``GET /_fake/stats`` returns)."""
        with self._lock:
            by_fault: dict[str, int] = {}
            for r in self._log:
                by_fault[r.fault] = by_fault.get(r.fault, 0) + 1
            return {
                "count": self._n,
                "in_flight": self._in_flight,
                "peak_concurrency": self._peak,
                "by_fault": by_fault,
                "batch_calls": dict(self._batch_calls),
                "batches": len(self._batches),
                "tokens": dict(self._tokens),
            }

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens reported in responses so far: ``input``, ``output``, ``cache_write``, ``cache_read``."""
        with self._lock:
            return dict(self._tokens)

    def reset_stats(self) -> None:
        """Forget the log and the peak (the fault plan's random stream continues)."""
        with self._lock:
            self._log.clear()
            self._peak = self._in_flight

    def start(self) -> FakeAnthropic:
        """Start serving; returns once the port is bound (raises RuntimeError after 10 s)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # reported to start()
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not ready.wait(10.0) or errors:
            raise RuntimeError(f"fake Anthropic server did not start: {errors[:1]}")
        return self

    def close(self) -> None:
        """Stop serving (hanging requests are dropped); waits at most ~5 s."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- server -----------------------------------------------------------------------------
    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/batches", self._batch_create)
        app.router.add_get("/v1/messages/batches/{batch_id}", self._batch_retrieve)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self._batch_results)
        app.router.add_post("/v1/messages/batches/{batch_id}/cancel", self._batch_cancel)
        app.router.add_get("/_fake/stats", self._stats)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, backlog=1024)
        await site.start()
        sockets = runner.addresses
        self.port = int(sockets[0][1])
        self._runner = runner
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        t0 = time.time()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        question = _question_of(body)
        with self._lock:
            n = self._n
            self._n += 1
            over = n >= self.max_requests
            fault = "ok" if over else self.faults.fault_for(n, question)
            if fault == "ok" and self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
                fault = "429"
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            entry = RequestLog(
                n=n,
                fault=fault,
                status=0,
                start=t0,
                model=body.get("model") if isinstance(body.get("model"), str) else None,
                question=question,
                retry_count=request.headers.get("x-stainless-retry-count"),
                has_key=bool(_key_of(request)),
            )
            if len(self._log) < self.max_requests:
                self._log.append(entry)
        try:
            headers = self._common_headers(n)
            if over:
                resp = self._error(503, headers, request)
            elif self.api_key is not None and _key_of(request) != self.api_key:
                resp = await self._after(self.error_latency, self._error(401, headers, request))
            elif fault == "hang":
                await asyncio.sleep(self.hang_s)
                resp = self._error(529, headers, request)
            elif fault != "ok":
                status = int(fault)
                if (status == 429 or (status == 529 and self.faults.retry_after_on_529)) and (
                    self.faults.retry_after is not None
                ):
                    headers["retry-after"] = _fmt_seconds(self.faults.retry_after)
                resp = await self._after(self.error_latency, self._error(status, headers, request))
            else:
                await self._sleep_latency(n)
                resp = web.json_response(await self._message(n, body), headers=headers)
            entry.status = resp.status
            return resp
        finally:
            entry.end = time.time()
            with self._lock:
                self._in_flight -= 1

    # --- Message Batches ------------------------------------------------------------------------
    def _batch_gate(self, request: web.Request, op: str) -> web.Response | None:
        """Count the call; the error response for a key mismatch or a planned fault, else None."""
        with self._lock:
            k = self._batch_calls[op]
            self._batch_calls[op] = k + 1
        headers = {"request-id": f"req_fake_batch_{op}_{k:06d}"}
        if self.api_key is not None and _key_of(request) != self.api_key:
            return self._error(401, headers, request)
        fault = self.batch_faults.get(op, {}).get(k)
        if fault is not None and fault != "ok":
            if fault == "429" and self.faults.retry_after is not None:
                headers["retry-after"] = _fmt_seconds(self.faults.retry_after)
            return self._error(int(fault), headers, request)
        return None

    @staticmethod
    def _invalid(message: str) -> web.Response:
        payload = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        return web.json_response(payload, status=400)

    @staticmethod
    def _batch_missing(batch_id: str) -> web.Response:
        payload = {
            "type": "error",
            "error": {"type": "not_found_error", "message": f"message batch {batch_id} not found"},
        }
        return web.json_response(payload, status=404)

    async def _batch_create(self, request: web.Request) -> web.Response:
        denied = self._batch_gate(request, "create")
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._invalid("The request body is not valid JSON.")
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return self._invalid("requests: must be a non-empty list.")
        if len(reqs) > 100_000:
            return self._invalid("requests: at most 100000 requests per batch.")
        parsed: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for n, item in enumerate(reqs):
            cid = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(cid, str) or not _CUSTOM_ID_RE.match(cid):
                return self._invalid(f"requests.{n}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$.")
            if cid in seen:
                return self._invalid(f"requests.{n}.custom_id: duplicate custom_id {cid!r}.")
            if (
                not isinstance(params, dict)
                or not params.get("model")
                or not isinstance(params.get("messages"), list)
                or not isinstance(params.get("max_tokens"), int)
            ):
                return self._invalid(f"requests.{n}.params: model, max_tokens and messages are required.")
            seen.add(cid)
            parsed.append((cid, params))
        with self._lock:
            if len(self._batches) >= self.max_batches:
                return self._error(429, {"request-id": "req_fake_batch_full"})
            planned = []
            for _ in parsed:
                draw = self._batch_rng.random()
                if draw < self.batch_error_rate:
                    planned.append("errored")
                elif draw < self.batch_error_rate + self.batch_expired_rate:
                    planned.append("expired")
                else:
                    planned.append("succeeded")
            batch = _Batch(
                id=f"msgbatch_fake_{uuid.uuid4().hex[:20]}",
                created=time.time(),
                latency=self.batch_latency,
                requests=parsed,
                planned=planned,
                cancel_latency=self.batch_cancel_latency,
                echo=f" (request headers: {json.dumps(dict(request.headers))})" if self.echo_headers else "",
            )
            self._batches[batch.id] = batch
            payload = batch.to_json(time.time(), self.base_url)
        return web.json_response(payload)

    async def _batch_retrieve(self, request: web.Request) -> web.Response:
        denied = self._batch_gate(request, "retrieve")
        if denied is not None:
            return denied
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._batch_missing(batch_id)
            return web.json_response(batch.to_json(time.time(), self.base_url))

    async def _batch_cancel(self, request: web.Request) -> web.Response:
        denied = self._batch_gate(request, "cancel")
        if denied is not None:
            return denied
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._batch_missing(batch_id)
            now = time.time()
            if batch.cancel_at is None and batch.status(now) != "ended":
                batch.cancel_at = now
            return web.json_response(batch.to_json(now, self.base_url))

    async def _batch_results(self, request: web.Request) -> web.StreamResponse:
        denied = self._batch_gate(request, "results")
        if denied is not None:
            return denied
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._batch_missing(batch_id)
            if batch.status(time.time()) != "ended":
                return self._invalid(
                    f"Message batch {batch_id} has not ended yet; its results are not ready."
                )
            lines = batch.results
        if lines is None:
            lines = []
            for i, (cid, params) in enumerate(batch.requests):
                kind = batch.outcome(i)
                if kind == "succeeded":
                    with self._lock:
                        n = self._batch_msg_n
                        self._batch_msg_n += 1
                    result: dict[str, Any] = {"type": "succeeded", "message": await self._message(n, params)}
                    result["message"]["id"] = f"msg_fake_batch_{n:06d}"
                elif kind == "errored":
                    result = {
                        "type": "errored",
                        "error": {
                            "type": "error",
                            "request_id": None,
                            "error": {"type": "api_error", "message": "Internal server error." + batch.echo},
                        },
                    }
                else:
                    result = {"type": kind}
                lines.append({"custom_id": cid, "result": result})
            random.Random(batch_id).shuffle(lines)  # the API promises no order (seeded: reproducible)
            with self._lock:
                if batch.results is None:
                    batch.results = lines
                lines = batch.results
        resp = web.StreamResponse(status=200, headers={"content-type": "application/x-jsonl"})
        await resp.prepare(request)
        for k in range(0, len(lines), 200):
            await resp.write("".join(json.dumps(x) + "\n" for x in lines[k : k + 200]).encode())
        await resp.write_eof()
        return resp

    async def _sleep_latency(self, n: int) -> None:
        delay = self.latency(n) if callable(self.latency) else self.latency
        if delay > 0:
            await asyncio.sleep(min(float(delay), 300.0))

    @staticmethod
    async def _after(delay: float, resp: web.Response) -> web.Response:
        if delay > 0:
            await asyncio.sleep(min(delay, 300.0))
        return resp

    def _common_headers(self, n: int) -> dict[str, str]:
        headers = {"request-id": f"req_fake_{n:06d}"}
        rr = self.requests_remaining
        value = rr(n) if callable(rr) else rr
        if value is not None:
            headers["anthropic-ratelimit-requests-remaining"] = str(int(value))
        return headers

    def _error(
        self, status: int, headers: dict[str, str], request: web.Request | None = None
    ) -> web.Response:
        message = _ERROR_MESSAGES.get(status, "Error")
        if self.echo_headers and request is not None:
            message += f" (request headers: {json.dumps(dict(request.headers))})"
        payload = {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": headers.get("request-id"),
        }
        return web.json_response(payload, status=status, headers=headers)

    def _usage(self, body: dict[str, Any], content: Any) -> dict[str, int]:
        """The ``usage`` of a reply to ``body`` (see the module docstring: tokens and the cache)."""
        segs = prompt_segments(body)
        cum: list[int] = []
        keys: list[str] = []
        h = hashlib.sha256(str(body.get("model") or "").encode())
        total = 0
        for text, _ in segs:
            total += _tokens(text)
            h.update(b"\x00" + text.encode())
            cum.append(total)
            keys.append(h.hexdigest())
        breakpoints = [i for i, (_, marked) in enumerate(segs) if marked]
        minimum = min_cache_tokens(str(body.get("model") or ""))
        read = write = 0
        now = time.time()
        with self._lock:
            hit = next(
                (i for i in reversed(breakpoints) if cum[i] >= minimum and self._cache.get(keys[i], 0) > now),
                None,
            )
            if hit is not None:
                read = cum[hit]
                self._cache[keys[hit]] = now + CACHE_TTL_S
            if breakpoints and cum[breakpoints[-1]] >= minimum and (hit is None or hit < breakpoints[-1]):
                write = cum[breakpoints[-1]] - read
                self._cache[keys[breakpoints[-1]]] = now + CACHE_TTL_S
            usage = {
                "input_tokens": max(1, total - read - write),
                "output_tokens": max(1, len(json.dumps(content)) // 4),
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
            }
            self._tokens["input"] += usage["input_tokens"]
            self._tokens["output"] += usage["output_tokens"]
            self._tokens["cache_write"] += write
            self._tokens["cache_read"] += read
        return usage

    async def _message(self, n: int, body: dict[str, Any]) -> dict[str, Any]:
        out = self.responder(body)
        if inspect.isawaitable(out):
            out = await out
        model = body.get("model") or "claude-fake"
        msg: dict[str, Any] = {
            "id": f"msg_fake_{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        if isinstance(out, str):
            msg["content"] = [{"type": "text", "text": out}]
        elif isinstance(out, list):
            msg["content"] = out
            if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in out):
                msg["stop_reason"] = "tool_use"
        elif isinstance(out, dict):
            msg.update(out)
        else:
            raise TypeError(f"responder returned {type(out).__name__}; expected str, list or dict")
        if not (isinstance(out, dict) and "usage" in out):
            msg["usage"] = self._usage(body, msg["content"])
        return msg


def _key_of(request: web.Request) -> str | None:
    """The API key the client sent: ``x-api-key`` or ``Authorization: Bearer <key>`` (SDK 2.x)."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parse_schedule(text: str) -> dict[int, str]:
    """``"0:429,1:429,5:hang"`` → ``{0: "429", 1: "429", 5: "hang"}``."""
    out: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, _, v = part.partition(":")
        out[int(k)] = v.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT. Prints ``READY <base_url>`` when listening."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds per successful answer")
    p.add_argument("--error-latency", type=float, default=0.0)
    p.add_argument("--rate-401", type=float, default=0.0)
    p.add_argument("--rate-429", type=float, default=0.0)
    p.add_argument("--rate-529", type=float, default=0.0)
    p.add_argument("--rate-500", type=float, default=0.0)
    p.add_argument("--rate-hang", type=float, default=0.0)
    p.add_argument("--schedule", default="", help='e.g. "0:429,1:429,7:hang"')
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--hang-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--requests-remaining", type=int, default=None)
    p.add_argument("--api-key", default=None, help="accept only this key (others get 401)")
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--max-concurrent", type=int, default=None, help="429 when more are in flight")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long")
    p.add_argument(
        "--ragas",
        action="store_true",
        help="answer RAGAS judge (tool) calls too (tests.support.ragas_responder.RagasResponder)",
    )
    p.add_argument("--batch-latency", type=float, default=1.0, help="seconds until a message batch ends")
    p.add_argument("--batch-cancel-latency", type=float, default=0.2)
    p.add_argument("--batch-error-rate", type=float, default=0.0, help="share of 'errored' batch results")
    p.add_argument("--batch-expired-rate", type=float, default=0.0, help="share of 'expired' batch results")
    p.add_argument("--echo-headers", action="store_true", help="error messages end with the request headers")
    args = p.parse_args(argv)
    responder = None
    if args.ragas:
        from tests.support.ragas_responder import RagasResponder

        responder = RagasResponder()
    plan = FaultPlan(
        schedule=_parse_schedule(args.schedule),
        rate_401=args.rate_401,
        rate_429=args.rate_429,
        rate_529=args.rate_529,
        rate_500=args.rate_500,
        rate_hang=args.rate_hang,
        seed=args.seed,
        retry_after=args.retry_after,
    )
    srv = FakeAnthropic(
        latency=args.latency,
        faults=plan,
        requests_remaining=args.requests_remaining,
        api_key=args.api_key,
        error_latency=args.error_latency,
        hang_s=args.hang_s,
        max_requests=args.max_requests,
        max_concurrent=args.max_concurrent,
        port=args.port,
        responder=responder,
        batch_latency=args.batch_latency,
        batch_cancel_latency=args.batch_cancel_latency,
        batch_error_rate=args.batch_error_rate,
        batch_expired_rate=args.batch_expired_rate,
        batch_seed=args.seed,
        echo_headers=args.echo_headers,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with srv:
        print(f"READY {srv.base_url}", flush=True)
        stop.wait(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
