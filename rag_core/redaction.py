"""The one redactor: no credential reaches a message, a log line, the database or an export.

:func:`redact` replaces, in any text:

- every secret this process knows — each :class:`~rag_core.settings.Secret` registers its value
  here when it is made (:func:`remember_secret`), so an API key echoed back by a server without a
  header name around it is caught too — and an explicitly given ``secret``;
- the value of an ``x-api-key`` or ``Authorization`` header (``x-api-key: …``,
  ``'authorization': 'Bearer …'``, ``x-api-key=…``) and any ``Bearer <token>``.

It is used by the Anthropic error mapper (:mod:`rag_core.answer.api_errors`), the judge's error
mapping, the engine's "unexpected error" messages and every log record of the process
(:func:`rag_core.logs.install_redaction`).
"""

from __future__ import annotations

import re
import threading

__all__ = ["REDACTED", "redact", "remember_secret"]

REDACTED = "[redacted]"
"""What a credential is replaced with."""

MIN_SECRET_CHARS = 8
"""Shorter values are not remembered process-wide (they would match ordinary words)."""

_VALUE = r"""(?!\[redacted\])[^\s'",;}\]]+"""
_X_API_KEY = re.compile(r"""(?i)(\bx-api-key['"]?\s*[:=]\s*['"]?)""" + _VALUE)
_AUTHORIZATION = re.compile(
    r"""(?i)(\bauthorization['"]?\s*[:=]\s*['"]?(?:bearer\s+)?)(?!bearer\s)""" + _VALUE
)
_BEARER = re.compile(r"""(?i)(\bbearer\s+)(?!\[redacted\])[A-Za-z0-9._~+/=-]{8,}""")

_lock = threading.Lock()
_known: tuple[str, ...] = ()


def remember_secret(value: str | None) -> None:
    """Scrub ``value`` from everything :func:`redact` sees from now on (values under
    :data:`MIN_SECRET_CHARS` characters are ignored). Idempotent, thread-safe."""
    global _known
    if not value or len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if value not in _known:
            # Longest first, so a key that contains another known key is replaced whole.
            _known = tuple(sorted({*_known, value}, key=len, reverse=True))


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with credentials replaced by :data:`REDACTED` (idempotent, never raises).

    Replaces ``secret`` (when at least 4 characters), every remembered secret, header values of
    ``x-api-key`` / ``Authorization`` and any ``Bearer <token>``.
    """
    if not isinstance(text, str):
        text = str(text)
    if secret and len(secret) >= 4:
        text = text.replace(secret, REDACTED)
    for known in _known:
        if known in text:
            text = text.replace(known, REDACTED)
    low = text.lower()
    if "api-key" in low or "authorization" in low or "bearer" in low:  # skip the regexes otherwise
        text = _X_API_KEY.sub(lambda m: m.group(1) + REDACTED, text)
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return text
