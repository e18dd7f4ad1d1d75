"""What an analyst asks a run to do (:class:`RunRequest`) and what a running run reports
(:class:`RunProgress`). Plain, validated records; nothing here runs anything."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag_core.answer.batches_api import BatchPolling
from rag_core.errors import InputError
from rag_core.experiment import DEFAULT_CONFIG_NAME, ConfigVersion
from rag_core.models import DEFAULT_COLLECTION, QAItem
from rag_core.settings import Settings
from rag_core.vocab import Backend, Mode, Phase, RunStatus, Suite, choice, suite_metrics

__all__ = [
    "LONG_WAIT_NOTE_S",
    "MAX_JUDGE_REPEATS",
    "RunOptions",
    "RunProgress",
    "RunRequest",
    "default_suite",
]

MAX_JUDGE_REPEATS = 10
"""Most judge repeats a run may ask for."""
LONG_WAIT_NOTE_S = 5.0
"""A server-requested wait at least this long shows in the progress ("rate limited: waiting 30 s")."""


def default_suite(settings: Settings) -> Suite:
    """Judge metrics when a key is configured, else the offline suite."""
    return Suite.JUDGE if settings.has_key else Suite.OFFLINE


@dataclass(frozen=True)
class RunRequest:
    """A run to start. Strings are accepted for the enum fields; unknown values raise
    :class:`InputError` naming the choices. :meth:`check` validates against the settings."""

    items: tuple[QAItem, ...]
    """The questions, in order."""
    backend: Backend = Backend.OFFLINE
    """Who answers: the offline extractive answerer or Claude."""
    mode: Mode = Mode.ASYNC
    """How answers are generated (see :class:`~rag_core.vocab.Mode`)."""
    concurrency: int = 8
    """Requests in flight at once in async mode."""
    top_k: int = 4
    """Chunks retrieved per question."""
    suite: Suite = Suite.OFFLINE
    """Which metrics score the answers."""
    metrics: tuple[str, ...] | None = None
    """Subset of the suite's metric names; ``None`` means all of them."""
    question_set: str | None = None
    """Name of the saved question set, if the questions came from one."""
    fresh: bool = False
    """Bypass the judge cache (still writes to it)."""
    judge_repeats: int = 1
    """Judge each (question, metric) this many times and keep mean ± stdev."""
    collection: str = DEFAULT_COLLECTION
    """The document collection retrieval searches (only that one)."""
    assistant: ConfigVersion | None = None
    """The assistant configuration version the run pins (its ``top_k`` wins over :attr:`top_k`);
    ``None`` = the app's settings with :attr:`top_k` (an unsaved "default")."""
    run_name: str | None = None
    """The analyst's name for the run (optional)."""
    note: str | None = None
    """The analyst's note about the run (optional)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", choice(Backend, self.backend, "backend"))
        object.__setattr__(self, "mode", choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "suite", choice(Suite, self.suite, "metric suite"))
        object.__setattr__(self, "items", tuple(self.items))
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics) or None)
        if self.assistant is not None:
            object.__setattr__(self, "top_k", self.assistant.config.top_k)

    def pinned_assistant(self, settings: Settings) -> ConfigVersion:
        """The configuration this run uses: :attr:`assistant`, or the settings' one with :attr:`top_k`."""
        if self.assistant is not None:
            return self.assistant
        from rag_core.runs.configs import default_config

        cfg = default_config(settings)
        return ConfigVersion(
            DEFAULT_CONFIG_NAME, 0, cfg if cfg.top_k == self.top_k else cfg.replace(top_k=self.top_k)
        )

    def replace(self, **changes: Any) -> RunRequest:
        return dataclasses.replace(self, **changes)

    def check(self, settings: Settings) -> None:
        """Raise :class:`InputError` naming the first problem."""
        if not self.items:
            raise InputError("The question set is empty: add at least one question.")
        if self.mode == Mode.BATCH and self.backend != Backend.CLAUDE:
            raise InputError(
                "Batch mode sends the questions to Anthropic's Message Batches API: choose "
                "the Claude backend, or another mode for the offline backend."
            )
        if not 1 <= self.concurrency <= 256:
            raise InputError("Concurrency must be between 1 and 256.")
        if not 1 <= self.top_k <= 50:
            raise InputError("Top-k must be between 1 and 50.")
        if self.assistant is not None:
            self.assistant.config.validate()
        if not 1 <= self.judge_repeats <= MAX_JUDGE_REPEATS:
            raise InputError(f"Judge repeats must be between 1 and {MAX_JUDGE_REPEATS}.")
        allowed = [m.name for m in suite_metrics(self.suite)]
        unknown = [m for m in self.metrics or () if m not in allowed]
        if unknown:
            raise InputError(
                f"Unknown {self.suite} metric(s) {', '.join(map(repr, unknown))}: choose from "
                f"{', '.join(allowed) or 'nothing (no metrics)'}."
            )
        needs_key = self.backend == Backend.CLAUDE or self.suite == Suite.JUDGE
        if needs_key and not settings.has_key:
            raise InputError(
                "The Claude backend and the judge metrics need an Anthropic API key: set "
                "ANTHROPIC_API_KEY (or add it to .streamlit/secrets.toml), or choose the offline "
                "backend and offline metrics."
            )

    def config(self) -> dict[str, Any]:
        """The settings of this run as stored with it (never contains a secret)."""
        return {
            "backend": str(self.backend),
            "mode": str(self.mode),
            "concurrency": self.concurrency,
            "top_k": self.top_k,
            "suite": str(self.suite),
            "metrics": list(self.metrics) if self.metrics else None,
            "fresh": self.fresh,
            "judge_repeats": self.judge_repeats,
            "collection": self.collection,
            # Key facts and declines are scored alongside every scoring suite (rag_core.vocab).
            "facts": self.suite != Suite.NONE,
        }


@dataclass(frozen=True)
class RunOptions:
    """How a run executes, apart from what it asks for: injection points for benchmarks and tests."""

    adaptive: bool = True
    """Lower the concurrency on repeated 429s and raise it back (AIMD); False keeps it fixed."""
    batch_polling: BatchPolling | None = None
    """How batch mode polls the Message Batch (None: :class:`BatchPolling`'s defaults)."""
    on_batch_created: Callable[[int, str], None] | None = None
    """Called as ``(run_id, batch_id)`` right after batch mode stored a new batch id."""


@dataclass
class RunProgress:
    """A snapshot of a run for the progress view. Plain data: safe to keep in session_state."""

    run_id: int
    phase: Phase
    status: RunStatus
    done: int = 0
    total: int = 0
    in_flight: int = 0
    retries: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    phase_elapsed_s: float = 0.0
    eta_s: float | None = None
    concurrency_limit: int = 0
    throttled_s: float = 0.0
    """Seconds the current phase's calls have spent waiting before retries, summed."""
    note: str = ""
    """What the run is waiting for right now, when it is worth saying: ``"rate limited: waiting
    30 s"`` (a long server-requested wait), or the judge's message batch round in batch mode."""
    message: str = ""
    """Error message when the run failed."""

    @property
    def finished(self) -> bool:
        return self.status != RunStatus.RUNNING

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0
