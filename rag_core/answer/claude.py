"""Answering questions with Claude, from retrieved policy excerpts.

- :class:`Answerer` is the small interface every answerer implements (Claude here, the offline
  extractive one in :mod:`rag_core.answer.extractive`).
- :func:`~rag_core.answer.prompt.build_messages` builds the prompt once for both twins: the sync :meth:`ClaudeAnswerer.answer_sync`
  (``anthropic.Anthropic``) and the async :meth:`ClaudeAnswerer.answer` (``anthropic.AsyncAnthropic``).
- The SDK's own retries are off (``max_retries=0``): each request is one
  :func:`~rag_core.engine.remote_call`, so the engine owns the retry budget, the backoff, the
  ``retry-after`` wait and the shared concurrency limit of the API key (see :func:`gate_key`). The
  SDK timeout is the per-request timeout.
- The system prompt is marked for Anthropic's prompt cache when it is long enough
  (:func:`~rag_core.answer.prompt.system_param`; ``settings.prompt_cache``).
- Every ``anthropic`` exception is mapped to :mod:`rag_core.errors` by
  :func:`~rag_core.answer.api_errors.map_api_error`, with a message an HR analyst can act on. The
  API key never appears in a message.


The prompt and its prompt-injection stance are in :mod:`rag_core.answer.prompt`.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rag_core.answer.api_errors import DEFAULT_API_URL, map_api_error, requests_remaining
from rag_core.answer.extractive import NOT_COVERED
from rag_core.answer.prompt import build_messages, system_param
from rag_core.engine import remote_call, report_requests_remaining
from rag_core.errors import AuthError, GenerationError, RagError
from rag_core.models import Answer, ScoredChunk
from rag_core.usage import estimate_tokens, request_done, request_sent

if TYPE_CHECKING:
    import anthropic

    from rag_core.settings import Settings

__all__ = ["Answerer", "ClaudeAnswerer", "gate_key"]


def gate_key(settings: Settings) -> str:
    """The name of the engine gate shared by every call made with this API key at this endpoint:
    a digest of the key (never the key) and the base URL."""
    digest = hashlib.sha256((settings.api_key.get() or "").encode()).hexdigest()[:16]
    return f"anthropic:{digest}@{settings.base_url or DEFAULT_API_URL}"


@runtime_checkable
class Answerer(Protocol):
    """What the pipeline needs from an answerer.

    ``answer`` returns an :class:`~rag_core.models.Answer` (``covered=False`` when the policy does
    not cover the question) or raises a :class:`~rag_core.errors.RagError` subclass.
    """

    name: str
    """Backend name, e.g. ``"claude"`` or ``"offline"``."""
    model: str
    """Model that writes the answers (stored with each answer)."""

    async def answer(self, question: str, contexts: list[ScoredChunk]) -> Answer: ...


# --- Claude -------------------------------------------------------------------------------------------
class ClaudeAnswerer:
    """Answers with Claude over the Messages API.

    ``answer`` (async) uses one ``AsyncAnthropic`` client per running event loop, created lazily
    (normally the engine's loop); ``answer_sync`` uses one sync ``Anthropic`` client. Both use the
    settings' key, ``base_url``, ``request_timeout_s`` and ``max_retries=0``; model and max_tokens
    come from the settings (``answer_model``, ``answer_max_tokens``) unless given here; an assistant configuration may
    also set the system prompt, answer instructions and ``temperature`` (never ``top_p``).

    Raises :class:`~rag_core.errors.AuthError` (fatal) when no key is configured, and the mapped
    errors of :func:`~rag_core.answer.api_errors.map_api_error` otherwise.
    """

    name = "claude"

    def __init__(
        self,
        settings: Settings,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
        instructions: str = "",
        temperature: float | None = None,
    ) -> None:
        # Importing the SDK takes seconds; do it here, in the caller's thread, so the first
        # answer does not stall the engine's event loop (and every other batch on it).
        import anthropic  # noqa: F401

        self.settings = settings
        self.model: str = model or settings.answer_model
        self.max_tokens: int = int(max_tokens or settings.answer_max_tokens)
        # An assistant configuration's prompt and sampling (rag_core.experiment); the defaults send
        # the built-in prompt and no temperature, as before configurations existed.
        self.system_prompt = system_prompt
        self.instructions = instructions
        self.temperature = temperature
        self._lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anthropic.AsyncAnthropic
        ] = weakref.WeakKeyDictionary()
        self._sync_client: anthropic.Anthropic | None = None

    def __repr__(self) -> str:
        return f"ClaudeAnswerer(model={self.model!r}, base_url={self.settings.base_url!r})"

    # --- clients --------------------------------------------------------------------------------
    def _key(self) -> str:
        key = self.settings.api_key.get()
        if not key:
            raise AuthError(
                "No Anthropic API key is configured. Set ANTHROPIC_API_KEY (or add it to "
                ".streamlit/secrets.toml), or use the offline backend."
            )
        return key

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self._key(),
            "base_url": self.settings.base_url or None,
            "max_retries": 0,
            "timeout": float(self.settings.request_timeout_s),
        }

    def _async_client(self) -> anthropic.AsyncAnthropic:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import anthropic

            with self._lock:
                client = self._async_clients.get(loop)
                if client is None:
                    client = anthropic.AsyncAnthropic(**self._client_kwargs())
                    self._async_clients[loop] = client
        return client

    def _sync(self) -> anthropic.Anthropic:
        with self._lock:
            if self._sync_client is None:
                import anthropic

                self._sync_client = anthropic.Anthropic(**self._client_kwargs())
            return self._sync_client

    # --- shared core ------------------------------------------------------------------------------
    def _request(self, question: str, contexts: Sequence[ScoredChunk]) -> dict[str, Any]:
        system, messages = build_messages(
            question, contexts, system_prompt=self.system_prompt, instructions=self.instructions
        )
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system_param(system, model=self.model, cache=self.settings.prompt_cache),
            "messages": messages,
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        return request

    def _map(self, exc: BaseException) -> RagError:
        return map_api_error(
            exc,
            model=self.model,
            base_url=self.settings.base_url,
            timeout_s=float(self.settings.request_timeout_s),
            secret=self.settings.api_key.get(),
        )

    def _to_answer(self, message: Any, headers: Any = None) -> Answer:
        report_requests_remaining(requests_remaining(headers))
        text = "".join(
            getattr(block, "text", "")
            for block in (message.content or [])
            if getattr(block, "type", "") == "text"
        ).strip()
        if not text:
            raise GenerationError(
                f"Claude returned no text (stop reason: {getattr(message, 'stop_reason', None)}). "
                "Try again, or raise RAG_ANSWER_MAX_TOKENS."
            )
        usage = getattr(message, "usage", None)
        return Answer(
            text=text,
            model=str(getattr(message, "model", None) or self.model),
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            covered=not text.startswith(NOT_COVERED.rstrip(".")),
        )

    # --- the twins ---------------------------------------------------------------------------------
    async def answer(self, question: str, contexts: list[ScoredChunk]) -> Answer:
        """Answer on the running event loop (normally the engine's). Raises mapped RagErrors."""
        import anthropic

        client = self._async_client()
        request = self._request(question, contexts)
        est = estimate_tokens(request.get("system"), request.get("messages"))

        async def send() -> Any:  # one attempt; remote_call owns retries, timeout and the gate slot
            await request_sent(self.model, est)  # counted from the moment it is sent (rag_core.usage)
            try:
                raw = await client.messages.with_raw_response.create(**request)
                message = await raw.parse()
            except anthropic.APIStatusError as exc:
                request_done(self.model, est)  # an error response is not billed
                raise self._map(exc) from exc
            except anthropic.AnthropicError as exc:
                request_done(self.model, est, responded=False)
                raise self._map(exc) from exc
            except BaseException:  # cancelled or timed out in flight: it may have been billed
                request_done(self.model, est, responded=False)
                raise
            request_done(self.model, est, usage=getattr(message, "usage", None))
            report_requests_remaining(requests_remaining(raw.headers))
            return message

        return self._to_answer(await remote_call(send, label="answer"))

    def answer_sync(self, question: str, contexts: list[ScoredChunk]) -> Answer:
        """Answer from plain sync code (one request, blocking). Raises mapped RagErrors."""
        import anthropic

        client = self._sync()
        try:
            raw = client.messages.with_raw_response.create(**self._request(question, contexts))
            message = raw.parse()
        except anthropic.AnthropicError as exc:
            raise self._map(exc) from exc
        return self._to_answer(message, raw.headers)

    async def aclose(self) -> None:
        """Close the async client of the running loop (if any)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._async_clients.pop(loop, None)
        if client is not None:
            await client.close()

    def close(self) -> None:
        """Close the sync client (async clients close with their loop or via :meth:`aclose`)."""
        with self._lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()
