"""One typed settings object, read from environment variables, `.streamlit/secrets.toml`, defaults.

Precedence (highest first): explicit keyword overrides → environment → secrets.toml → defaults.
The secrets file is ``.streamlit/secrets.toml`` (git-ignored) unless ``RAG_SECRETS_FILE`` names another.
The API key is held in a :class:`Secret` whose ``repr``/``str`` never show its value; code that
needs it calls ``settings.api_key.get()`` at the last moment (when building the SDK client).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_core.errors import InputError
from rag_core.redaction import remember_secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: USD per million tokens (input, output). Batch API is half of these.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku-latest": (0.8, 4.0),
}

DEFAULT_ANSWER_MODEL = "claude-sonnet-4-5"
DEFAULT_JUDGE_MODEL = "claude-sonnet-4-5"


class Secret:
    """A string that never shows itself in repr, str, logs or f-strings.

    Its value is remembered by :mod:`rag_core.redaction`, so it is scrubbed from every error
    message and log line of the process even where no header name surrounds it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None
        remember_secret(self._value)

    def get(self) -> str | None:
        """The real value; call only where it is handed to the SDK."""
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret(None)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Build with :meth:`Settings.load`; never holds the key in plain."""

    data_dir: Path = PROJECT_ROOT / "data" / "workspace"
    """Where the Chroma index, the SQLite history and uploaded files live (``RAG_DATA_DIR``)."""
    api_key: Secret = field(default_factory=lambda: Secret(None))
    """Anthropic API key (``ANTHROPIC_API_KEY`` or secrets.toml); its value is never shown."""
    base_url: str | None = None
    """Anthropic API base URL (``ANTHROPIC_BASE_URL``), e.g. the loopback stand-in in tests."""
    answer_model: str = DEFAULT_ANSWER_MODEL
    """Claude model that answers questions (``RAG_ANSWER_MODEL``)."""
    judge_model: str = DEFAULT_JUDGE_MODEL
    """Claude model that judges answers for RAGAS metrics (``RAG_JUDGE_MODEL``)."""
    answer_max_tokens: int = 1024
    """max_tokens for answers (``RAG_ANSWER_MAX_TOKENS``)."""
    judge_max_tokens: int = 4096
    """max_tokens for judge calls; 1024 truncates Faithfulness JSON (``RAG_JUDGE_MAX_TOKENS``)."""
    chunk_size: int = 900
    """Characters per chunk (``RAG_CHUNK_SIZE``)."""
    chunk_overlap: int = 150
    """Characters shared by neighbouring chunks (``RAG_CHUNK_OVERLAP``)."""
    top_k: int = 4
    """Chunks retrieved per question (``RAG_TOP_K``)."""
    concurrency: int = 8
    """Requests in flight at once for async runs (``RAG_CONCURRENCY``)."""
    request_timeout_s: float = 60.0
    """Per-request timeout, seconds (``RAG_REQUEST_TIMEOUT``)."""
    max_retries: int = 4
    """Retries per request after the first attempt, owned by the engine (``RAG_MAX_RETRIES``)."""
    retry_after_cap_s: float = 600.0
    """Safety ceiling on a server-requested retry-after, seconds (``RAG_RETRY_AFTER_CAP``): far
    above normal values, so a real request is honoured up to the run's deadline."""
    run_deadline_s: float = 1800.0
    """A run's whole-batch deadline, seconds (``RAG_RUN_DEADLINE``); it also bounds how long a
    server-requested ``retry-after`` is honoured."""
    prompt_cache: bool = True
    """Mark the static part of judge prompts (and answer system prompts long enough to be cached)
    for Anthropic's prompt cache (``RAG_PROMPT_CACHE``; 0/false/no/off disables it)."""
    max_upload_mb: int = 50
    """Largest accepted upload, MB (``RAG_MAX_UPLOAD_MB``)."""
    max_pdf_pages: int = 2000
    """PDFs with more pages are refused (``RAG_MAX_PDF_PAGES``)."""
    max_text_mb: int = 5
    """Largest accepted TXT/Markdown/HTML file, MB (``RAG_MAX_TEXT_MB``): 6 000–11 000 chunks (below
    the 20 000-chunk cap), minutes to embed; refused from its size before it is read."""
    ingest_budget_s: float = 900.0
    """Wall-clock seconds allowed to read and embed one uploaded file (``RAG_INGEST_BUDGET_S``)."""
    chroma_host: str | None = None
    """Chroma server host; unset = embedded persistent store under data_dir (``RAG_CHROMA_HOST``)."""
    chroma_port: int = 8000
    """Chroma server port (``RAG_CHROMA_PORT``)."""
    collection: str = "policies"
    """Chroma collection name (``RAG_COLLECTION``): the one index holding every document
    collection (document collections are a label on each chunk, not separate Chroma collections)."""
    tesseract_cmd: str = "tesseract"
    """The Tesseract OCR program, a name on PATH or a path (``RAG_TESSERACT_CMD``)."""
    database_url: Secret = field(default_factory=lambda: Secret(None))
    """Where the history lives when not in the SQLite file under data_dir: a PostgreSQL URL such as
    ``postgresql+psycopg://rag:PASSWORD@db.example:5432/rag`` (``RAG_DATABASE_URL``). Held like the
    API key: never shown (its password is scrubbed from logs and messages)."""
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    """USD per million (input, output) tokens, by model name prefix."""

    # --- derived paths -------------------------------------------------------------------
    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def history_target(self) -> Path | str:
        """What to open the history store on: ``RAG_DATABASE_URL`` when set, else :attr:`db_path`."""
        return self.database_url.get() or self.db_path

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def default_backend(self) -> str:
        """``"claude"`` when a key is configured, else ``"offline"``."""
        return "claude" if self.has_key else "offline"

    def price(self, model: str) -> tuple[float, float]:
        """USD per million (input, output) tokens for ``model`` (longest matching prefix)."""
        best = ""
        for name in self.prices:
            if model.startswith(name) and len(name) > len(best):
                best = name
        return self.prices.get(best, (3.0, 15.0))

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float:
        p_in, p_out = self.price(model)
        return (input_tokens * p_in + output_tokens * p_out) / 1_000_000

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        env: dict[str, str] | None = None,
        secrets_path: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``) and secrets.toml, then overrides.

        Raises :class:`InputError` naming the variable when a value does not parse.
        """
        env = dict(os.environ if env is None else env)
        if secrets_path is None:
            secrets_path = Path(env.get("RAG_SECRETS_FILE") or PROJECT_ROOT / ".streamlit" / "secrets.toml")
        secrets = _read_secrets(secrets_path)
        for k, v in secrets.items():  # env wins over secrets.toml
            if isinstance(v, (str, int, float)):
                env.setdefault(k, str(v))

        kw: dict[str, Any] = {}
        spec: dict[str, tuple[str, Callable[[str], Any]]] = {
            "RAG_DATA_DIR": ("data_dir", Path),
            "ANTHROPIC_BASE_URL": ("base_url", str),
            "RAG_ANSWER_MODEL": ("answer_model", str),
            "RAG_JUDGE_MODEL": ("judge_model", str),
            "RAG_ANSWER_MAX_TOKENS": ("answer_max_tokens", int),
            "RAG_JUDGE_MAX_TOKENS": ("judge_max_tokens", int),
            "RAG_CHUNK_SIZE": ("chunk_size", int),
            "RAG_CHUNK_OVERLAP": ("chunk_overlap", int),
            "RAG_TOP_K": ("top_k", int),
            "RAG_CONCURRENCY": ("concurrency", int),
            "RAG_REQUEST_TIMEOUT": ("request_timeout_s", float),
            "RAG_MAX_RETRIES": ("max_retries", int),
            "RAG_RETRY_AFTER_CAP": ("retry_after_cap_s", float),
            "RAG_RUN_DEADLINE": ("run_deadline_s", float),
            "RAG_PROMPT_CACHE": ("prompt_cache", _flag),
            "RAG_MAX_UPLOAD_MB": ("max_upload_mb", int),
            "RAG_MAX_PDF_PAGES": ("max_pdf_pages", int),
            "RAG_MAX_TEXT_MB": ("max_text_mb", int),
            "RAG_INGEST_BUDGET_S": ("ingest_budget_s", float),
            "RAG_CHROMA_HOST": ("chroma_host", str),
            "RAG_CHROMA_PORT": ("chroma_port", int),
            "RAG_COLLECTION": ("collection", str),
            "RAG_TESSERACT_CMD": ("tesseract_cmd", str),
        }
        for var, (attr, typ) in spec.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                kw[attr] = typ(raw)
            except ValueError:
                what = getattr(typ, "__name__", "value")
                raise InputError(f"Setting {var}={raw!r} is not a valid {what}.") from None
        kw["api_key"] = Secret(env.get("ANTHROPIC_API_KEY", "").strip() or None)
        kw["database_url"] = _database_url(env.get("RAG_DATABASE_URL", "").strip() or None)
        kw.update(overrides)
        if isinstance(kw.get("database_url"), str) or kw.get("database_url") is None:
            kw["database_url"] = _database_url(kw.get("database_url"))
        if isinstance(kw.get("api_key"), str) or kw.get("api_key") is None:
            kw["api_key"] = Secret(kw.get("api_key"))
        if "data_dir" in kw:
            kw["data_dir"] = Path(kw["data_dir"]).expanduser().resolve()
        s = cls(**kw)
        s.validate()
        return s

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first setting out of range."""
        checks = [
            (self.chunk_size >= 100, "RAG_CHUNK_SIZE must be at least 100 characters"),
            (0 <= self.chunk_overlap < self.chunk_size, "RAG_CHUNK_OVERLAP must be below RAG_CHUNK_SIZE"),
            (1 <= self.top_k <= 50, "RAG_TOP_K must be between 1 and 50"),
            (1 <= self.concurrency <= 256, "RAG_CONCURRENCY must be between 1 and 256"),
            (self.request_timeout_s > 0, "RAG_REQUEST_TIMEOUT must be positive"),
            (self.max_retries >= 0, "RAG_MAX_RETRIES must be 0 or more"),
            (self.max_text_mb >= 1, "RAG_MAX_TEXT_MB must be at least 1"),
            (self.ingest_budget_s > 0, "RAG_INGEST_BUDGET_S must be positive"),
            (len(self.collection) >= 3, "RAG_COLLECTION must have at least 3 characters"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg + ".")


def _database_url(url: str | None) -> Secret:
    """``RAG_DATABASE_URL`` as a :class:`Secret` (its password remembered for redaction).

    Raises :class:`InputError` when it is not a ``postgresql`` URL.
    """
    if not url:
        return Secret(None)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise InputError(
            f"Setting RAG_DATABASE_URL must be a PostgreSQL URL such as "
            f"postgresql+psycopg://user:password@host:5432/rag (got one starting '{scheme[:20]}')."
        )
    if scheme.split("+")[0] == "postgres":  # libpq's spelling; SQLAlchemy wants postgresql
        url = "postgresql+psycopg://" + rest
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    if ":" in userinfo:
        remember_secret(userinfo.split(":", 1)[1])
    return Secret(url)


def _flag(raw: str) -> bool:
    """``1/true/yes/on`` → True, ``0/false/no/off`` → False (case-insensitive); else ValueError."""
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_flag.__name__ = "flag (1/0, true/false, yes/no, on/off)"


def _read_secrets(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
