"""Anthropic API errors → :mod:`rag_core.errors`: the one place that knows the SDK's exceptions.

- :func:`map_api_error` turns an ``anthropic`` exception into a :class:`~rag_core.errors.RagError`
  subclass with a message an HR analyst can act on (used by the answerer, the judge and the
  Message Batches client).
- :data:`ERROR_TYPES` maps the API's error ``type`` strings (as found in an errored batch result)
  to the same classes.
- :func:`redact` (from :mod:`rag_core.redaction`, re-exported here) is the one redactor: the API
  key's value, ``x-api-key`` header values and ``Authorization`` / ``Bearer`` credentials never
  reach a message or a log line.
- :func:`retry_after` and :func:`requests_remaining` read the rate-limit response headers.
"""

from __future__ import annotations

from typing import Any

from rag_core.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    GenerationError,
    ModelNotFoundError,
    OverloadedError,
    RagError,
    RateLimitError,
    RequestTimeoutError,
)
from rag_core.redaction import REDACTED, redact

__all__ = [
    "DEFAULT_API_URL",
    "ERROR_TYPES",
    "REDACTED",
    "REMAINING_HEADER",
    "map_api_error",
    "redact",
    "requests_remaining",
    "retry_after",
]

DEFAULT_API_URL = "https://api.anthropic.com"
"""Where the SDK goes when ``ANTHROPIC_BASE_URL`` is not set (named in connection errors)."""
REMAINING_HEADER = "anthropic-ratelimit-requests-remaining"
"""Response header telling how many requests the rate-limit window still allows."""

ERROR_TYPES: dict[str, type[RagError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthError,
    "permission_error": AuthError,
    "billing_error": AuthError,
    "not_found_error": ModelNotFoundError,
    "rate_limit_error": RateLimitError,
    "timeout_error": RequestTimeoutError,
    "gateway_timeout_error": RequestTimeoutError,
    "api_error": OverloadedError,
    "overloaded_error": OverloadedError,
}
"""The API's error ``type`` (e.g. in an errored Message Batches result) → our error class."""


def _float_header(headers: Any, name: str) -> float | None:
    try:
        raw = headers.get(name) if headers is not None else None
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), or None."""
    ms = _float_header(headers, "retry-after-ms")
    if ms is not None and ms >= 0:
        return ms / 1000.0
    s = _float_header(headers, "retry-after")
    return s if s is not None and s >= 0 else None


def requests_remaining(headers: Any) -> int | None:
    """Requests the rate-limit window still allows (:data:`REMAINING_HEADER`), or None."""
    value = _float_header(headers, REMAINING_HEADER)
    return int(value) if value is not None else None


def map_api_error(
    exc: BaseException,
    *,
    model: str,
    base_url: str | None,
    timeout_s: float,
    secret: str | None = None,
) -> RagError:
    """The :mod:`rag_core.errors` equivalent of an ``anthropic`` exception (never raises).

    401/403 → AuthError (fatal), 402 → AuthError (billing, fatal), 404 → ModelNotFoundError (fatal),
    400/413/422 → BadRequestError, 429 → RateLimitError (``retry_after`` from the header),
    408 → RequestTimeoutError, 409/5xx/529 → OverloadedError, timeout → RequestTimeoutError,
    connection failure → ConnectionFailedError. The result has ``requests_remaining`` set when the
    response carried the rate-limit header. Credentials (``secret`` and header values) are
    scrubbed from the message by :func:`redact`.
    """
    import anthropic

    where = base_url or DEFAULT_API_URL
    err: RagError
    headers = None
    if isinstance(exc, anthropic.APITimeoutError):
        err = RequestTimeoutError(
            f"Claude did not answer within {timeout_s:g} s. The API may be slow or overloaded; "
            "try again, or raise RAG_REQUEST_TIMEOUT."
        )
    elif isinstance(exc, anthropic.APIConnectionError):
        err = ConnectionFailedError(
            f"Cannot reach the Anthropic API at {where}. Check the network connection, proxy and "
            "ANTHROPIC_BASE_URL, or use the offline backend."
        )
    elif isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        headers = exc.response.headers
        detail = (exc.api_message or "").strip()
        detail_txt = f" The API said: {detail}" if detail else ""
        if status in (401, 403):
            err = AuthError(
                f"The Anthropic API key was rejected (HTTP {status}). Check ANTHROPIC_API_KEY in the "
                "environment or .streamlit/secrets.toml, and that the key may use the Messages API."
            )
        elif status == 402:
            err = AuthError(
                "The Anthropic account cannot be billed (HTTP 402). Check the plan and credit "
                "balance in the Anthropic console."
            )
        elif status == 404:
            err = ModelNotFoundError(
                f"The model '{model}' was not found (HTTP 404). Check the model name setting "
                "(RAG_ANSWER_MODEL / RAG_JUDGE_MODEL)." + detail_txt
            )
        elif status == 429:
            err = RateLimitError(
                "The Anthropic API rate limit was reached (HTTP 429) and retries did not get through. "
                "Lower the concurrency (RAG_CONCURRENCY) or try again later.",
                retry_after=retry_after(headers),
            )
        elif status == 408:
            err = RequestTimeoutError(f"The Anthropic API timed out the request (HTTP 408).{detail_txt}")
        elif status == 413:
            err = BadRequestError(
                "The prompt is too large for the Anthropic API (HTTP 413). Lower RAG_TOP_K or "
                "RAG_CHUNK_SIZE." + detail_txt
            )
        elif status in (400, 422):
            err = BadRequestError(
                f"The Anthropic API refused the request as invalid (HTTP {status}). Check the model "
                f"and max_tokens settings; retrying will not help.{detail_txt}"
            )
        elif status == 529 or status >= 500 or status == 409:
            label = "overloaded" if status == 529 else "having a server problem"
            err = OverloadedError(
                f"The Anthropic API is {label} (HTTP {status}) and retries did not get through. "
                "Try again in a few minutes.",
                retry_after=retry_after(headers),
            )
        else:
            err = GenerationError(f"The Anthropic API returned HTTP {status}.{detail_txt}")
    else:
        err = GenerationError(
            f"Unexpected problem talking to the Anthropic API ({type(exc).__name__}). "
            "Try again; if it persists, check the anthropic package version."
        )
    err.args = (redact(str(err), secret),)
    remaining = requests_remaining(headers)
    if remaining is not None:
        err.requests_remaining = remaining  # type: ignore[attr-defined]  # read by the engine
    return err
