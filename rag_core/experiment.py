"""The records of an experiment: assistant configurations and what a run was made of.

- :class:`AssistantConfig` — what an analyst can change about the assistant: the answer model,
  system prompt, answer instructions, temperature, max tokens, top-k, retrieval (similarity or MMR),
  chunk size and overlap. Plain, validated, frozen; its :meth:`~AssistantConfig.fingerprint` says
  whether two configurations would behave the same.
- :class:`ConfigVersion` — a configuration saved under a name. Editing never changes a saved
  version: it creates the next one (:mod:`rag_core.storage.experiments`), and a run pins the exact
  version it used.
- :class:`RunIdentity` — everything a run was made of, stored with it: configuration version (and a
  full copy of it), question-set version and fingerprint, document versions, index collection, code
  version, sweep. History diffs two identities to say *what changed* between two runs.
- :class:`SweepRecord` — a sweep (several configurations over one question set) as stored.

Records only: nothing here does I/O. JSON exists at the storage boundary (``to_json`` /
``from_json``); ``from_json`` of an older or partial dict never raises for missing optional parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rag_core.errors import InputError
from rag_core.models import QAItem
from rag_core.vocab import Retrieval, choice

__all__ = [
    "CONFIG_FIELDS",
    "DEFAULT_CONFIG_NAME",
    "MAX_CONFIG_NAME_CHARS",
    "AssistantConfig",
    "CodeVersion",
    "ConfigField",
    "ConfigVersion",
    "DocumentVersion",
    "RunIdentity",
    "SweepRecord",
    "config_name",
    "questions_fingerprint",
]

#: Name of the configuration that reproduces the app's settings (``RAG_ANSWER_MODEL``, ``RAG_TOP_K``…).
DEFAULT_CONFIG_NAME = "default"
#: Longest configuration name accepted.
MAX_CONFIG_NAME_CHARS = 80
#: Longest system prompt / answer instructions accepted, in characters.
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class ConfigField:
    """One field of :class:`AssistantConfig`, as forms, diffs and grids show it."""

    name: str
    """Attribute name (also the JSON key and the ``--grid`` key)."""
    label: str
    """Display name."""
    help: str
    """One sentence for an HR analyst."""
    used_offline: bool
    """Whether the offline (extractive) answerer is affected by it."""
    long_text: bool = False
    """Prompt text: diffed line by line instead of shown as a value."""


#: The fields of a configuration in display order.
CONFIG_FIELDS: tuple[ConfigField, ...] = (
    ConfigField("answer_model", "Answer model", "The Claude model that writes the answers.", False),
    ConfigField(
        "system_prompt",
        "System prompt",
        "The assistant's role and rules, sent with every question.",
        False,
        long_text=True,
    ),
    ConfigField(
        "instructions",
        "Answer instructions",
        "Extra guidance added after each question (tone, length, format); empty = none.",
        False,
        long_text=True,
    ),
    ConfigField(
        "temperature", "Temperature", "Randomness of the answers (0–1); empty = the model's default.", False
    ),
    ConfigField("max_tokens", "Max tokens", "Longest answer the model may write, in tokens.", False),
    ConfigField("top_k", "Top-k", "Policy passages retrieved per question.", True),
    ConfigField(
        "retrieval",
        "Retrieval",
        "similarity: the most similar passages; mmr: similar but not near-duplicates of each other.",
        True,
    ),
    ConfigField("chunk_size", "Chunk size", "Characters per indexed passage.", True),
    ConfigField("chunk_overlap", "Chunk overlap", "Characters shared by neighbouring passages.", True),
)
_FIELD_NAMES = tuple(f.name for f in CONFIG_FIELDS)


def config_name(name: object) -> str:
    """A configuration name with whitespace collapsed; :class:`InputError` when empty or too long."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("A configuration needs a name.")
    clean = " ".join(name.split())
    if len(clean) > MAX_CONFIG_NAME_CHARS:
        raise InputError(f"A configuration name can have at most {MAX_CONFIG_NAME_CHARS} characters.")
    return clean


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, not {value!r}.")
    try:
        f = float(str(value).strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, not {value!r}.") from None
    if not math.isfinite(f) or f != int(f):
        raise InputError(f"{what} must be a whole number, not {value!r}.")
    return int(f)


def _temperature(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InputError(f"Temperature must be a number between 0 and 1, not {value!r}.")
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"Temperature must be a number between 0 and 1, not {value!r}.") from None
    if not math.isfinite(t):
        raise InputError(f"Temperature must be a number between 0 and 1, not {value!r}.")
    return t


@dataclass(frozen=True)
class AssistantConfig:
    """What the assistant is made of (see :data:`CONFIG_FIELDS`). Built from strings too (forms,
    files): values are coerced, and :meth:`validate` names the first field out of range."""

    answer_model: str
    """Claude model that writes the answers (not used by the offline answerer)."""
    system_prompt: str
    """System prompt of every answer request."""
    instructions: str = ""
    """Answer instructions appended to each question's message; ``""`` = none."""
    temperature: float | None = None
    """Sampling temperature in [0, 1]; ``None`` = not sent (the model's default)."""
    max_tokens: int = 1024
    """max_tokens of an answer request."""
    top_k: int = 4
    """Chunks retrieved per question."""
    retrieval: Retrieval = Retrieval.SIMILARITY
    """How chunks are picked: plain similarity or maximal marginal relevance."""
    chunk_size: int = 900
    """Characters per chunk of the index this configuration retrieves from."""
    chunk_overlap: int = 150
    """Characters shared by neighbouring chunks."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "answer_model", str(self.answer_model or "").strip())
        set_(self, "system_prompt", str(self.system_prompt or "").replace("\r\n", "\n").strip())
        set_(self, "instructions", str(self.instructions or "").replace("\r\n", "\n").strip())
        set_(self, "temperature", _temperature(self.temperature))
        set_(self, "max_tokens", _int(self.max_tokens, "Max tokens"))
        set_(self, "top_k", _int(self.top_k, "Top-k"))
        set_(self, "retrieval", choice(Retrieval, self.retrieval, "retrieval"))
        set_(self, "chunk_size", _int(self.chunk_size, "Chunk size"))
        set_(self, "chunk_overlap", _int(self.chunk_overlap, "Chunk overlap"))

    def validate(self) -> AssistantConfig:
        """Return self; raise :class:`InputError` naming the first field out of range."""
        checks = [
            (bool(self.answer_model) and len(self.answer_model) <= 200, "Answer model must be a model name."),
            (bool(self.system_prompt), "The system prompt cannot be empty."),
            (
                len(self.system_prompt) <= MAX_PROMPT_CHARS and len(self.instructions) <= MAX_PROMPT_CHARS,
                f"The system prompt and the answer instructions can have at most {MAX_PROMPT_CHARS:,} characters.",
            ),
            (
                self.temperature is None or 0.0 <= self.temperature <= 1.0,
                "Temperature must be between 0 and 1 (or empty for the model's default).",
            ),
            (1 <= self.max_tokens <= 64_000, "Max tokens must be between 1 and 64,000."),
            (1 <= self.top_k <= 50, "Top-k must be between 1 and 50."),
            (100 <= self.chunk_size <= 20_000, "Chunk size must be between 100 and 20,000 characters."),
            (
                0 <= self.chunk_overlap < self.chunk_size,
                "Chunk overlap must be 0 or more and below the chunk size.",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self

    def replace(self, **changes: Any) -> AssistantConfig:
        """A copy with ``changes`` applied (validated). Unknown field → :class:`InputError`."""
        unknown = sorted(set(changes) - set(_FIELD_NAMES))
        if unknown:
            raise InputError(
                f"Unknown configuration field(s) {', '.join(unknown)}: choose from {', '.join(_FIELD_NAMES)}."
            )
        return dataclasses.replace(self, **changes).validate()

    # --- identity -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Field name → plain value, in :data:`CONFIG_FIELDS` order."""
        return {f: (str(getattr(self, f)) if f == "retrieval" else getattr(self, f)) for f in _FIELD_NAMES}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, base: AssistantConfig | None = None) -> AssistantConfig:
        """Parse :meth:`to_json`'s dict (e.g. an imported file). Fields missing from ``data`` come from
        ``base``; without a base they are an error. Unknown keys are an error (a typo must not be
        silently ignored). Raises :class:`InputError` naming the field."""
        if not isinstance(data, Mapping):
            raise InputError("A configuration must be a JSON object of field → value.")
        unknown = sorted(set(data) - set(_FIELD_NAMES))
        if unknown:
            raise InputError(
                f"Unknown configuration field(s) {', '.join(map(repr, unknown))}: the fields are "
                f"{', '.join(_FIELD_NAMES)}."
            )
        values = base.to_json() if base is not None else {}
        values.update(data)
        missing = [f for f in ("answer_model", "system_prompt") if f not in values]
        if missing:
            raise InputError(f"The configuration lacks {', '.join(missing)}.")
        return cls(**values).validate()

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: equal fingerprints ⇔ the configurations behave the same."""
        return _sha(self.to_json())

    def answer_fingerprint(self) -> str:
        """sha256 of what shapes a Claude answer besides its contexts (model, prompts, sampling)."""
        return _sha({k: self.to_json()[k] for k in _FIELD_NAMES if k in _ANSWER_FIELDS})

    def differs_from(self, other: AssistantConfig) -> list[str]:
        """Names of the fields whose values differ, in display order."""
        a, b = self.to_json(), other.to_json()
        return [f for f in _FIELD_NAMES if a[f] != b[f]]


_ANSWER_FIELDS = ("answer_model", "system_prompt", "instructions", "temperature", "max_tokens")


def _sha(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConfigVersion:
    """A configuration saved under a name (``version >= 1``), or an unsaved one (``version == 0``)."""

    name: str
    """The configuration's name (unique)."""
    version: int
    """1, 2, 3… per name; 0 for an unsaved (ad-hoc) configuration."""
    config: AssistantConfig
    """The fields of this version."""
    created_at: str = ""
    """ISO-8601 UTC timestamp of when this version was saved."""
    note: str = ""
    """What the analyst wrote about this version (optional)."""

    @property
    def saved(self) -> bool:
        return self.version > 0

    @property
    def label(self) -> str:
        """``"default v2"``, or ``"default (unsaved)"`` for an ad-hoc configuration."""
        return f"{self.name} v{self.version}" if self.saved else f"{self.name} (unsaved)"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "note": self.note,
            "config": self.config.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigVersion:
        return cls(
            name=str(data.get("name") or DEFAULT_CONFIG_NAME),
            version=int(data.get("version") or 0),
            config=AssistantConfig(**dict(data["config"])),
            created_at=str(data.get("created_at") or ""),
            note=str(data.get("note") or ""),
        )


@dataclass(frozen=True)
class DocumentVersion:
    """One document as a run saw it."""

    name: str
    """File name in the index."""
    sha256: str
    """sha256 of the file's bytes: a different hash is a different version of the document."""


@dataclass(frozen=True)
class CodeVersion:
    """The code that ran: the package version and, in a git checkout, the commit."""

    package: str
    """``hr-rag-eval`` version (pyproject.toml)."""
    commit: str | None = None
    """Git commit (40 hex digits) when the app runs from a checkout; None otherwise."""
    dirty: bool | None = None
    """True when tracked files differed from the commit; None when unknown."""

    @property
    def label(self) -> str:
        """``"0.1.0 · 1a2b3c4d"`` (``+ local changes`` when dirty)."""
        if not self.commit:
            return self.package
        return f"{self.package} · {self.commit[:8]}" + (" + local changes" if self.dirty else "")


def questions_fingerprint(items: Iterable[QAItem]) -> str:
    """sha256 over the questions and expected answers, in order: equal ⇔ the same question set."""
    return _sha([[it.question, it.ground_truth] for it in items])


@dataclass(frozen=True)
class RunIdentity:
    """What a run was made of (stored with the run; :mod:`rag_core.reporting.diff` compares two)."""

    config: ConfigVersion | None = None
    """The configuration version the run pinned (with a full copy of its fields)."""
    question_set: str | None = None
    """Saved question set name, or the question file's name."""
    question_set_version: int | None = None
    """Version of the saved set (a new one each time its content changes); None for files."""
    questions_sha256: str = ""
    """:func:`questions_fingerprint` of the run's questions."""
    documents: tuple[DocumentVersion, ...] = ()
    """Every indexed document (name + sha256) when the run started."""
    collection: str | None = None
    """The index collection the run retrieved from (one per chunk size and overlap)."""
    code: CodeVersion | None = None
    """The code that ran the run."""
    sweep_id: int | None = None
    """The sweep the run belongs to, if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json() if self.config else None,
            "question_set": self.question_set,
            "question_set_version": self.question_set_version,
            "questions_sha256": self.questions_sha256,
            "documents": [dataclasses.asdict(d) for d in self.documents],
            "collection": self.collection,
            "code": dataclasses.asdict(self.code) if self.code else None,
            "sweep_id": self.sweep_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunIdentity | None:
        """The stored identity, or None for a run recorded before identities existed (``{}``)."""
        if not data:
            return None
        cfg = data.get("config")
        code = data.get("code")
        try:
            config = ConfigVersion.from_json(cfg) if cfg else None
        except (InputError, KeyError, TypeError, ValueError):
            config = None  # a config field this version no longer knows: keep the rest
        return cls(
            config=config,
            question_set=data.get("question_set"),
            question_set_version=_opt_int(data.get("question_set_version")),
            questions_sha256=str(data.get("questions_sha256") or ""),
            documents=tuple(
                DocumentVersion(str(d.get("name", "")), str(d.get("sha256", "")))
                for d in data.get("documents") or []
                if isinstance(d, Mapping)
            ),
            collection=data.get("collection"),
            code=CodeVersion(
                package=str(code.get("package", "")),
                commit=code.get("commit"),
                dirty=code.get("dirty"),
            )
            if isinstance(code, Mapping)
            else None,
            sweep_id=_opt_int(data.get("sweep_id")),
        )


def _opt_int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SweepRecord:
    """A sweep as stored: several configurations run over one question set."""

    id: int
    created_at: str
    finished_at: str | None
    name: str
    """The analyst's name for it (or a generated one)."""
    question_set: str | None
    status: str
    """``running``, ``completed``, ``cancelled``, ``failed`` or ``interrupted``."""
    plan: dict[str, Any] = field(default_factory=dict)
    """What was asked: configurations (name + version), backend, suite, metrics, options."""
    run_ids: tuple[int, ...] = ()
    """The sweep's runs, in the order of its configurations."""
    counters: dict[str, Any] = field(default_factory=dict)
    """Reuse counters (retrievals, answers, scores, embeddings computed vs reused), index builds,
    wall time."""
