"""Logging defaults (rag_core/logs.py) and the one redactor (rag_core/redaction.py)."""

from __future__ import annotations

import io
import logging

from rag_core import logs
from rag_core.redaction import REDACTED, redact
from rag_core.settings import Secret

KEY = "sk-test-logs-0123456789abcdef-not-real"


def test_every_log_record_is_redacted_message_args_and_traceback() -> None:
    Secret(KEY)  # a key the process knows is scrubbed even without a header name around it
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    log = logging.getLogger("some.library")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.warning(
            "request headers: %s", {"authorization": "Bearer " + "x" * 20, "x-api-key": "abcd1234efgh"}
        )
        log.error("server said: invalid key %s", KEY)
        try:
            raise RuntimeError(f"Error code: 401 - {{'message': 'bad key {KEY}'}}")
        except RuntimeError:
            log.exception("call failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert KEY not in text and "x" * 20 not in text and "abcd1234efgh" not in text
    assert text.count(REDACTED) >= 4 and "RuntimeError" in text  # the traceback is kept, scrubbed


def test_libraries_are_quiet_by_default_and_verbose_shows_retries() -> None:
    for name in logs.QUIET_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.CRITICAL
    stream = io.StringIO()
    try:
        logs.configure(verbose=True, stream=stream)
        logging.getLogger("rag_core.engine.calls").info("retry 1 of x in 1.0 s: 429")
        logging.getLogger("instructor").warning("library warning")
        logs.configure(verbose=False, stream=stream)
        logging.getLogger("rag_core.engine.calls").info("retry 2 of x in 1.0 s: 429")
        logging.getLogger("instructor").error("API call failed on attempt 1")
    finally:
        logs.unconfigure()
    out = stream.getvalue()
    assert "retry 1 of x" in out and "library warning" in out
    assert "retry 2 of x" not in out and "API call failed" not in out


def test_redact_replaces_header_values_and_bearer_tokens_and_is_idempotent() -> None:
    text = "x-api-key: sk-abcdefgh123; 'authorization': 'Bearer tok_0123456789'; bearer abcdefghijkl"
    once = redact(text)
    assert "sk-abcdefgh123" not in once and "tok_0123456789" not in once and "abcdefghijkl" not in once
    assert redact(once) == once
    assert redact("nothing to hide") == "nothing to hide"
