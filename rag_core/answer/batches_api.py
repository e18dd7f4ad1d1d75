"""Anthropic's Message Batches API: the requests we send, the status we read, the client we use.

- :func:`batch_requests` builds a batch's ``requests`` (``custom_id = f"q{index}"``, params built
  by :func:`rag_core.answer.prompt.build_messages`, so the prompts are identical to the
  sequential/async modes); :func:`index_of` reads a ``custom_id`` back.
- :class:`MessageBatchClient` makes the four calls (create, retrieve, cancel, results) on a sync
  ``anthropic.Anthropic`` client with SDK retries off; every call raises mapped
  :class:`~rag_core.errors.RagError` subclasses (:mod:`rag_core.answer.api_errors`), HTTP 404
  becomes :class:`BatchNotFoundError`.
- :class:`BatchStatus` is plain data made from the SDK's ``MessageBatch``; :class:`BatchPolling`
  says how often to poll it.
- :func:`errored_result` turns an ``errored`` result into a message and an error kind.

The run-level orchestration (store the batch id, wait, collect, resume) is
:mod:`rag_core.runs.batch_mode`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag_core.answer.api_errors import DEFAULT_API_URL, ERROR_TYPES, map_api_error, redact
from rag_core.answer.prompt import build_messages, system_param
from rag_core.errors import AuthError, GenerationError, RagError
from rag_core.models import ScoredChunk

if TYPE_CHECKING:
    import anthropic

    from rag_core.settings import Settings

__all__ = [
    "CANCEL_WAIT_S",
    "MAX_POLL_FAILURES",
    "POLL_FACTOR",
    "POLL_INITIAL_S",
    "POLL_MAX_S",
    "BatchNotFoundError",
    "BatchPolling",
    "BatchStatus",
    "MessageBatchClient",
    "batch_requests",
    "custom_id",
    "errored_result",
    "index_of",
]

POLL_INITIAL_S = 2.0
"""First wait between two status polls, seconds."""
POLL_MAX_S = 60.0
"""Longest wait between two status polls, seconds."""
POLL_FACTOR = 1.5
"""Each wait is this many times the previous one (up to :data:`POLL_MAX_S`)."""
MAX_POLL_FAILURES = 6
"""Consecutive failed polls (429/5xx/timeouts) after which the run stops waiting (interrupted)."""
CANCEL_WAIT_S = 30.0
"""After a cancel, how long to wait for the batch to end so its finished answers are kept."""

_CUSTOM_ID_RE = re.compile(r"^q(\d{1,9})$")


@dataclass(frozen=True)
class BatchPolling:
    """How a batch is polled. The defaults are the module constants."""

    initial_s: float = POLL_INITIAL_S
    """First wait between polls, seconds."""
    max_s: float = POLL_MAX_S
    """Longest wait between polls, seconds."""
    factor: float = POLL_FACTOR
    """Growth of the wait per poll."""
    max_failures: int = MAX_POLL_FAILURES
    """Consecutive failed polls tolerated before giving up waiting (the run is interrupted)."""
    cancel_wait_s: float = CANCEL_WAIT_S
    """After a cancel, seconds to wait for the batch to end before leaving it."""

    def __post_init__(self) -> None:
        if not (
            0 < self.initial_s <= self.max_s
            and self.factor >= 1
            and self.max_failures >= 1
            and self.cancel_wait_s >= 0
        ):
            raise ValueError(f"invalid batch polling policy {self!r}")


@dataclass(frozen=True)
class BatchStatus:
    """A snapshot of one Message Batch (plain data made from the SDK's ``MessageBatch``)."""

    id: str
    """``msgbatch_…``"""
    processing_status: str
    """``"in_progress"``, ``"canceling"`` or ``"ended"``."""
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    @classmethod
    def from_sdk(cls, batch: Any) -> BatchStatus:
        counts = getattr(batch, "request_counts", None)

        def n(name: str) -> int:
            return int(getattr(counts, name, 0) or 0)

        return cls(
            id=str(batch.id),
            processing_status=str(batch.processing_status),
            processing=n("processing"),
            succeeded=n("succeeded"),
            errored=n("errored"),
            canceled=n("canceled"),
            expired=n("expired"),
        )


class BatchNotFoundError(GenerationError):
    """The Message Batch (or the batches endpoint) does not exist at the configured API."""


def custom_id(index: int) -> str:
    """The ``custom_id`` of question ``index`` (0-based) in a batch: ``"q<index>"``."""
    return f"q{int(index)}"


def index_of(cid: str) -> int | None:
    """The question index of a ``custom_id`` made by :func:`custom_id`; None for anything else."""
    m = _CUSTOM_ID_RE.match(cid or "")
    return int(m.group(1)) if m else None


def batch_requests(
    items: Sequence[tuple[int, str, Sequence[ScoredChunk]]],
    *,
    model: str,
    max_tokens: int,
    system_prompt: str | None = None,
    instructions: str = "",
    temperature: float | None = None,
    cache: bool = True,
) -> list[dict[str, Any]]:
    """The ``requests`` of a batch for ``(index, question, contexts)`` triples (order kept).

    The params are those of a Messages API call of the other modes (same system prompt, marked for
    the prompt cache by the same rule when ``cache``; same user message; the assistant
    configuration's ``temperature`` when it sets one), never ``top_p``.
    """
    out = []
    for index, question, contexts in items:
        system, messages = build_messages(
            question, list(contexts), system_prompt=system_prompt, instructions=instructions
        )
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": int(max_tokens),
            "system": system_param(system, model=model, cache=cache),
            "messages": messages,
        }
        if temperature is not None:
            params["temperature"] = temperature
        out.append({"custom_id": custom_id(index), "params": params})
    return out


class MessageBatchClient:
    """The four Message Batches calls we use, on a sync ``anthropic.Anthropic`` client.

    The client uses the settings' key, ``base_url`` and ``request_timeout_s`` with
    ``max_retries=0`` (polling owns its retries). Every call raises mapped
    :class:`~rag_core.errors.RagError` subclasses, never ``anthropic`` exceptions; HTTP 404
    becomes :class:`BatchNotFoundError`. Raises :class:`AuthError` at construction when no key
    is configured.
    """

    def __init__(self, settings: Settings, *, model: str, client: anthropic.Anthropic | None = None) -> None:
        import anthropic

        self.settings = settings
        self.model = model
        key = settings.api_key.get()
        if client is None:
            if not key:
                raise AuthError(
                    "No Anthropic API key is configured. Set ANTHROPIC_API_KEY (or add it to "
                    ".streamlit/secrets.toml); batch mode needs the Claude backend."
                )
            client = anthropic.Anthropic(
                api_key=key,
                base_url=settings.base_url or None,
                max_retries=0,
                timeout=float(settings.request_timeout_s),
            )
            self._owned = True
        else:
            self._owned = False
        self._client = client

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def _map(self, exc: BaseException, what: str, batch_id: str | None = None) -> RagError:
        import anthropic

        if isinstance(exc, anthropic.NotFoundError):
            where = self.settings.base_url or DEFAULT_API_URL
            if batch_id:
                return BatchNotFoundError(
                    f"The message batch {batch_id} was not found at {where} (HTTP 404): it may have been "
                    "deleted, or its results are past Anthropic's 29-day retention. Start a new run."
                )
            return BatchNotFoundError(
                f"The Message Batches API is not available at {where} (HTTP 404). Check "
                "ANTHROPIC_BASE_URL, or use the async mode."
            )
        err = map_api_error(
            exc,
            model=self.model,
            base_url=self.settings.base_url,
            timeout_s=float(self.settings.request_timeout_s),
            secret=self.settings.api_key.get(),
        )
        err.args = (f"{what}: {err}",)
        return err

    def create(self, requests: list[dict[str, Any]]) -> BatchStatus:
        """Submit a batch. A timeout or dropped connection may still have created it: the
        message says so (we do not retry a create, which could pay for the batch twice)."""
        import anthropic

        try:
            return BatchStatus.from_sdk(self._client.messages.batches.create(requests=requests))  # type: ignore[arg-type]
        except anthropic.AnthropicError as exc:
            err = self._map(exc, "Submitting the message batch failed")
            if isinstance(exc, (anthropic.APITimeoutError, anthropic.APIConnectionError)):
                err.args = (
                    f"{err} A batch may have been created anyway: check the Anthropic console "
                    "before running again.",
                )
            raise err from exc

    def retrieve(self, batch_id: str) -> BatchStatus:
        import anthropic

        try:
            return BatchStatus.from_sdk(self._client.messages.batches.retrieve(batch_id))
        except anthropic.AnthropicError as exc:
            raise self._map(exc, f"Checking message batch {batch_id} failed", batch_id) from exc

    def cancel(self, batch_id: str) -> BatchStatus:
        import anthropic

        try:
            return BatchStatus.from_sdk(self._client.messages.batches.cancel(batch_id))
        except anthropic.AnthropicError as exc:
            raise self._map(exc, f"Cancelling message batch {batch_id} failed", batch_id) from exc

    def results(self, batch_id: str) -> Iterator[tuple[str, Any]]:
        """``(custom_id, result)`` pairs as the JSONL stream arrives (any order). ``result`` is the
        SDK's ``MessageBatchResult`` (``.type`` succeeded/errored/canceled/expired)."""
        import anthropic

        try:
            decoder = self._client.messages.batches.results(batch_id)
            try:
                for line in decoder:
                    yield str(line.custom_id), line.result
            finally:
                decoder.close()
        except anthropic.AnthropicError as exc:
            raise self._map(exc, f"Reading the results of message batch {batch_id} failed", batch_id) from exc


def errored_result(result: Any, secret: str | None) -> tuple[str, str]:
    """(message, error_kind) for an ``errored`` batch result (credentials redacted)."""
    inner = getattr(getattr(result, "error", None), "error", None)
    etype = str(getattr(inner, "type", "") or "api_error")
    detail = str(getattr(inner, "message", "") or "").strip()
    detail = redact(detail, secret)
    cls = ERROR_TYPES.get(etype, GenerationError)
    hint = {
        "BadRequestError": " Check the model and max_tokens settings; retrying will not help.",
        "ModelNotFoundError": " Check the model name setting (RAG_ANSWER_MODEL).",
        "AuthError": " Check the API key and the account's billing in the Anthropic console.",
    }.get(cls.__name__, " Resume the run with errors retried, or run these questions again.")
    said = f" The API said: {detail}" if detail else ""
    return f"Claude could not answer this question in the batch ({etype}).{said}{hint}", cls.__name__
