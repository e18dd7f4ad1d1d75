"""Handles of long-running work of this process, keyed by ``(namespace, id)``.

The engine owns one :class:`HandleRegistry` (``engine.runs``): a run is registered under
``(database, run id)`` when it starts and dropped the moment it ends, so finished runs and their
results never stay in memory, and two data directories in one process never see each other's runs.
A page keeps only the run id and finds a live handle here; once the run has ended it reads the
outcome from the history store instead.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["HandleRegistry"]

H = TypeVar("H")


class HandleRegistry(Generic[H]):
    """A thread-safe map ``(namespace, id) → handle`` of work still in progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, Hashable], H] = {}

    def add(self, namespace: str, key: Hashable, handle: H) -> None:
        """Register ``handle``; replaces an older handle under the same key."""
        with self._lock:
            self._items[(namespace, key)] = handle

    def drop(self, namespace: str, key: Hashable, handle: H | None = None) -> None:
        """Forget the handle under the key (only if it is ``handle``, when given). No-op if absent."""
        with self._lock:
            current = self._items.get((namespace, key))
            if current is not None and (handle is None or current is handle):
                del self._items[(namespace, key)]

    def get(self, namespace: str, key: Hashable) -> H | None:
        """The live handle under the key, or None."""
        with self._lock:
            return self._items.get((namespace, key))

    def live(self, namespace: str) -> list[tuple[Hashable, H]]:
        """``(key, handle)`` pairs of one namespace, in registration order."""
        with self._lock:
            return [(k, h) for (ns, k), h in self._items.items() if ns == namespace]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
