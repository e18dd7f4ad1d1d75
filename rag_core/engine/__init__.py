"""The engine: one event-loop thread per process, shared adaptive limits and a resilient batch runner.

- :mod:`~rag_core.engine.loop` — :class:`Engine` (the loop thread: ``call``, ``submit`` and
  ``gate``) and :func:`get_engine` (the process-wide one).
- :mod:`~rag_core.engine.gate` — :class:`Gate` (an adaptive, priority-ordered limit shared by the
  calls made with one API key) and :class:`Aimd` (its pure rule).
- :mod:`~rag_core.engine.calls` — :func:`remote_call` (one remote call: slot, timeout, retry
  budget, ``retry-after``, timeline record) and :func:`report_requests_remaining`.
- :mod:`~rag_core.engine.batch` — :class:`BatchHandle` (one running batch: whole jobs retried, or
  jobs whose calls retry; deadline, fatal stop, cancel, progress).
- :mod:`~rag_core.engine.policy` — :class:`BatchPolicy`, :class:`ItemResult`, :class:`CallRecord`,
  :class:`Progress` and the default limits.
- :mod:`~rag_core.engine.registry` — :class:`HandleRegistry`: ``engine.runs``, the runs executing
  in this process.

Import public names from here: ``from rag_core.engine import Engine, BatchPolicy``.
"""

from rag_core.engine.batch import BatchHandle
from rag_core.engine.calls import remote_call, report_requests_remaining
from rag_core.engine.gate import Aimd, Gate
from rag_core.engine.loop import Engine, get_engine
from rag_core.engine.policy import (
    AIMD_DECREASE_WINDOW_S,
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_JOB_WINDOW_FACTOR,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_AFTER_CAP_S,
    DEFAULT_TIMEOUT_S,
    BatchPolicy,
    CallRecord,
    ItemResult,
    Progress,
)
from rag_core.engine.registry import HandleRegistry

__all__ = [
    "AIMD_DECREASE_WINDOW_S",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_JOB_WINDOW_FACTOR",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_AFTER_CAP_S",
    "DEFAULT_TIMEOUT_S",
    "Aimd",
    "BatchHandle",
    "BatchPolicy",
    "CallRecord",
    "Engine",
    "Gate",
    "HandleRegistry",
    "ItemResult",
    "Progress",
    "get_engine",
    "remote_call",
    "report_requests_remaining",
]
