"""The engine: one event-loop thread per process and a resilient batch runner on it.

- :mod:`~rag_core.engine.loop` — :class:`Engine` (the loop thread: ``call`` and ``submit``) and
  :func:`get_engine` (the process-wide one).
- :mod:`~rag_core.engine.batch` — :class:`BatchHandle` (one running batch: limiter, retries,
  timeouts, deadline, AIMD, cancel) and :func:`report_requests_remaining`.
- :mod:`~rag_core.engine.policy` — :class:`BatchPolicy`, :class:`ItemResult`, :class:`Progress`
  and the default limits.
- :mod:`~rag_core.engine.registry` — :class:`HandleRegistry`: ``engine.runs``, the runs executing
  in this process.

Import public names from here: ``from rag_core.engine import Engine, BatchPolicy``.
"""

from rag_core.engine.batch import BatchHandle, report_requests_remaining
from rag_core.engine.loop import Engine, get_engine
from rag_core.engine.policy import (
    AIMD_DECREASE_WINDOW_S,
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_AFTER_CAP_S,
    DEFAULT_TIMEOUT_S,
    BatchPolicy,
    ItemResult,
    Progress,
)
from rag_core.engine.registry import HandleRegistry

__all__ = [
    "AIMD_DECREASE_WINDOW_S",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_AFTER_CAP_S",
    "DEFAULT_TIMEOUT_S",
    "BatchHandle",
    "BatchPolicy",
    "Engine",
    "HandleRegistry",
    "ItemResult",
    "Progress",
    "get_engine",
    "report_requests_remaining",
]
