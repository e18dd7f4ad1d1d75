"""Logging defaults of every process that imports rag_core: quiet libraries, redacted records.

- :func:`install` (run once by ``import rag_core``): every log record of the process is passed
  through the one redactor (:func:`rag_core.redaction.redact`) as it is created — its message and
  any traceback text — so no handler anywhere (the CLI's, Streamlit's server log, a test's
  capture) can print a credential; and the chatty libraries on the judge and answer paths
  (:data:`QUIET_LOGGERS`: instructor, ragas, httpx, httpcore, anthropic) only pass CRITICAL records.
  A failed request is reported once, in the run's results and summary (retries are counted per
  run and per metric), not as a line per attempt.
- :func:`configure` (the CLI): one stderr handler; ``verbose=True`` shows rag_core's INFO lines
  (each retry: what, why, how long the wait) and the libraries' warnings and errors.

Everything here is idempotent and thread-safe enough to call from several entry points.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from rag_core.redaction import redact

__all__ = ["QUIET_LOGGERS", "configure", "install", "unconfigure"]

QUIET_LOGGERS = (
    "instructor",
    "ragas",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "anthropic",
)
"""Libraries whose per-request log lines are silenced unless ``verbose``."""

_lock = threading.Lock()
_installed = False
_handler: logging.Handler | None = None


def _redacting(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return record
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    make.__rag_core_redacting__ = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Redact every log record and quiet :data:`QUIET_LOGGERS` (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "__rag_core_redacting__", False):
            logging.setLogRecordFactory(_redacting(factory))
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _installed = True


def configure(*, verbose: bool = False, stream: Any = None) -> None:
    """The CLI's logging: WARNING and above on stderr; ``verbose`` adds rag_core's INFO lines
    (every retry) and the libraries' warnings. Calling it again replaces the previous setup."""
    global _handler
    install()
    root = logging.getLogger()
    with _lock:
        if _handler is not None:
            root.removeHandler(_handler)
        _handler = logging.StreamHandler(stream or sys.stderr)
        _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(_handler)
        root.setLevel(logging.WARNING)
        logging.getLogger("rag_core").setLevel(logging.INFO if verbose else logging.WARNING)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.CRITICAL)


def unconfigure() -> None:
    """Undo :func:`configure` (remove its handler; libraries quiet again, rag_core's level unset)."""
    global _handler
    with _lock:
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None
        logging.getLogger("rag_core").setLevel(logging.NOTSET)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
