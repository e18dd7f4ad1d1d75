"""Our local MiniLM embeddings behind RAGAS' modern embeddings interface (``BaseRagasEmbedding``).

The class is built on first use (:func:`_embedding_cls`) so that importing this package does not
import RAGAS.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import anyio
import numpy as np

from rag_core.evaluation.base import _Embedder

_EMBED_MEMO_SIZE = 4096


def _ragas_embedding_class() -> type:
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalRagasEmbedding(BaseRagasEmbedding):
        """Our offline MiniLM embedder behind RAGAS' modern embeddings interface.

        Sync methods run inline (callers put them on a worker thread); async methods hop to a
        worker thread so the event loop is never blocked by ONNX inference. A small LRU memo
        avoids embedding the same text twice within a run (e.g. a question across metrics).
        """

        def __init__(self, embedder: _Embedder | None = None) -> None:
            super().__init__(cache=None)
            self._embedder = embedder
            self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
            self._lock = threading.Lock()

        @property
        def embedder(self) -> _Embedder:
            if self._embedder is None:
                from rag_core.ingest.embeddings import get_embedder

                self._embedder = get_embedder()
            return self._embedder

        def vectors(self, texts: list[str]) -> np.ndarray:
            """(n, d) float32 L2-normalised vectors, one batched call for the texts not memoised."""
            keys = [t or " " for t in texts]
            with self._lock:
                missing = list(dict.fromkeys(k for k in keys if k not in self._memo))
            if missing:
                got = np.asarray(self.embedder.embed(missing), dtype=np.float32)
                with self._lock:
                    for k, v in zip(missing, got, strict=True):
                        self._memo[k] = v
                        self._memo.move_to_end(k)
                    while len(self._memo) > _EMBED_MEMO_SIZE:
                        self._memo.popitem(last=False)
                    fresh = dict(zip(missing, got, strict=True))
            else:
                fresh = {}
            with self._lock:
                rows = [fresh[k] if k in fresh else self._memo[k] for k in keys]
            return np.stack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.vectors([text])[0].tolist()

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.vectors(list(texts)).tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return (await anyio.to_thread.run_sync(self.vectors, [text]))[0].tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return (await anyio.to_thread.run_sync(self.vectors, list(texts))).tolist()

    return LocalRagasEmbedding


@functools.cache
def _embedding_cls() -> type:
    return _ragas_embedding_class()
