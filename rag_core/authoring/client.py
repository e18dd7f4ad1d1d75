"""The generation's Claude client: one ``AsyncAnthropic`` per event loop (SDK retries off), each
request one :func:`~rag_core.engine.remote_call` (gate slot, timeout, retry budget), answered from
the generation cache when the same request was paid for before (then cached at once)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag_core.answer.api_errors import map_api_error
from rag_core.authoring.prompt import request_key
from rag_core.engine import remote_call
from rag_core.errors import AuthError

if TYPE_CHECKING:
    from rag_core.settings import Settings
    from rag_core.storage import HistoryStore

__all__ = ["GenerationClient", "Usage"]


@dataclass
class Usage:
    """Requests sent and tokens billed by one generation (cache hits apart)."""

    calls: int = 0
    hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class GenerationClient:
    """One ``AsyncAnthropic`` per event loop (SDK retries off); requests through ``remote_call``."""

    def __init__(self, settings: Settings, store: HistoryStore, model: str, usage: Usage) -> None:
        import anthropic  # noqa: F401  (import here, not on the engine's loop)

        if not settings.api_key.get():
            raise AuthError(
                "Generating questions needs Claude: no Anthropic API key is configured. Set "
                "ANTHROPIC_API_KEY (or add it to .streamlit/secrets.toml), or write questions by hand "
                "from the template CSV."
            )
        self.settings, self.store, self.model, self.usage = settings, store, model, usage
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        import anthropic

        loop = asyncio.get_running_loop()
        c = self._clients.get(loop)
        if c is None:
            s = self.settings
            c = self._clients[loop] = anthropic.AsyncAnthropic(
                api_key=s.api_key.get(),
                base_url=s.base_url or None,
                max_retries=0,
                timeout=float(s.request_timeout_s),
            )
        return c

    async def call(
        self, request: dict[str, Any], label: str, validate: Callable[[dict[str, Any]], object] | None = None
    ) -> dict[str, Any]:
        """The response to ``request`` as a dict: from the cache, else one engine call. A fresh
        response is cached only when ``validate(response)`` does not raise (a malformed answer is
        paid once, not served from the cache forever)."""
        import anthropic

        key = request_key(request)
        hit = self.store.generation_cache_get(key)
        if hit is not None:
            with self.usage.lock:
                self.usage.hits += 1
            return hit[0]
        client = self._client()
        s = self.settings

        async def send() -> Any:
            try:
                return await client.messages.create(**request)
            except anthropic.AnthropicError as exc:
                raise map_api_error(
                    exc,
                    model=self.model,
                    base_url=s.base_url,
                    timeout_s=float(s.request_timeout_s),
                    secret=s.api_key.get(),
                ) from exc

        message = await remote_call(send, label=label)
        usage = getattr(message, "usage", None)
        n_in = int(getattr(usage, "input_tokens", 0) or 0)
        n_out = int(getattr(usage, "output_tokens", 0) or 0)
        with self.usage.lock:
            self.usage.calls += 1
            self.usage.input_tokens += n_in
            self.usage.output_tokens += n_out
        data = {
            "content": [b.model_dump(exclude_none=True) for b in message.content or []],
            "stop_reason": message.stop_reason,
        }
        if validate is not None:
            validate(data)
        self.store.generation_cache_put(key, self.model, data, n_in, n_out)
        return data
