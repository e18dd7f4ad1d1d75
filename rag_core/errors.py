"""The project's one exception tree.

Every error that can reach a page or the CLI is a ``RagError``; its message is written for
an HR analyst and says what to do next. Raw ``anthropic``/``chromadb``/``pypdf`` exceptions
are caught at the module boundary and re-raised as one of these (``raise ... from exc``).

    RagError
    ├── InputError          bad user input: question files, question sets, settings values
    ├── IngestError         a document cannot be read, split or indexed (names the file)
    ├── RetrievalError      the vector index cannot answer a query
    ├── GenerationError     an answer could not be produced
    │   ├── AuthError           the API key was rejected: stop the whole batch at once
    │   ├── ModelNotFoundError  the configured model name does not exist
    │   ├── BadRequestError     the request was malformed/too long: retrying will not help
    │   ├── RateLimitError      429 after the retry budget was spent        (retryable)
    │   ├── OverloadedError     529/5xx after the retry budget was spent    (retryable)
    │   ├── RequestTimeoutError no answer within the per-request timeout    (retryable)
    │   └── ConnectionFailedError  the API could not be reached             (retryable)
    ├── EvaluationError     a metric could not be computed
    ├── StorageError        the SQLite history store failed
    ├── AccessDeniedError   the acting person's role does not allow the action
    └── CancelledError      the user cancelled the run
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error this project raises on purpose."""

    #: Whether retrying the same request may succeed (used by the engine's retry budget).
    retryable: bool = False
    #: Whether the whole batch must stop at once (e.g. an invalid API key).
    fatal: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: Seconds the server asked us to wait before retrying, if it said so.
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        """Short machine-readable name, stored with failed results (e.g. ``"RateLimitError"``)."""
        return type(self).__name__


class InputError(RagError):
    """Bad user input: a question file, a question set row, a setting value."""


class IngestError(RagError):
    """A document could not be read, split or indexed. The message names the file."""


class RetrievalError(RagError):
    """The vector index could not answer a query."""


class GenerationError(RagError):
    """An answer could not be produced."""


class AuthError(GenerationError):
    """The API key was rejected (401/403). Fatal: the batch stops at once."""

    fatal = True


class ModelNotFoundError(GenerationError):
    """The configured model does not exist (404). Fatal: every request would fail the same."""

    fatal = True


class BadRequestError(GenerationError):
    """The API refused the request as malformed (400/413/422). Retrying will not help."""


class RateLimitError(GenerationError):
    """429: too many requests."""

    retryable = True


class OverloadedError(GenerationError):
    """529 overloaded or a 5xx server error."""

    retryable = True


class RequestTimeoutError(GenerationError):
    """No answer within the per-request timeout."""

    retryable = True


class ConnectionFailedError(GenerationError):
    """The API could not be reached (DNS, refused connection, network down)."""

    retryable = True


class EvaluationError(RagError):
    """A metric could not be computed for a sample."""


class StorageError(RagError):
    """The history store (SQLite) failed."""


class CancelledError(RagError):
    """The user cancelled the run; finished results are kept."""


class AccessDeniedError(RagError):
    """The acting person's role (or not owning the run) does not allow the action. The message
    names the action, the role it needs and the person's role (see :mod:`rag_core.access`)."""
