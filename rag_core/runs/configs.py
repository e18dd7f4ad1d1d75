"""Assistant configurations as an analyst uses them: the default one, picking one for a run,
import and export, grids of variations.

Rules
- The configuration named :data:`~rag_core.experiment.DEFAULT_CONFIG_NAME` ("default") *is* the app's
  settings (``RAG_ANSWER_MODEL``, ``RAG_ANSWER_MAX_TOKENS``, ``RAG_TOP_K``, ``RAG_CHUNK_SIZE``,
  ``RAG_CHUNK_OVERLAP``, the built-in system prompt, no extra instructions, no temperature,
  similarity retrieval): a run with it behaves exactly as runs did before configurations existed.
  :func:`ensure_default` saves it (a new version when the settings changed); it cannot be edited —
  clone it to change something (:func:`save_config` refuses).
- Any other name is the analyst's: every save that changes a field is a new version
  (:meth:`~rag_core.storage.experiments.ExperimentsStore.save_config`).
- Files (:func:`parse_config_file`, :func:`export_configs`): JSON, one configuration
  ``{"name": …, "note": …, "config": {field: value}}`` or a list of them; a bare ``{field: value}``
  object needs a name from the caller. Fields missing from a file keep the default's values.
- A grid (:func:`expand_grid`) varies top-k, chunk size, overlap, model, temperature, max tokens,
  retrieval or the prompt (system prompt text files) of a base configuration; each point is a
  configuration named ``"<base> · top_k=2 · chunk_size=500"``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rag_core.answer.prompt import SYSTEM_PROMPT
from rag_core.errors import InputError
from rag_core.experiment import (
    CONFIG_FIELDS,
    DEFAULT_CONFIG_NAME,
    AssistantConfig,
    ConfigVersion,
    config_name,
)
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.vocab import Retrieval

__all__ = [
    "GRID_KEYS",
    "default_config",
    "ensure_default",
    "expand_grid",
    "export_configs",
    "parse_config_file",
    "parse_grid",
    "resolve_config",
    "save_config",
]

#: ``--grid`` keys → configuration field (``model`` and ``prompt`` are short forms).
GRID_KEYS: dict[str, str] = {
    "top_k": "top_k",
    "chunk_size": "chunk_size",
    "chunk_overlap": "chunk_overlap",
    "overlap": "chunk_overlap",
    "model": "answer_model",
    "answer_model": "answer_model",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "retrieval": "retrieval",
    "prompt": "system_prompt",
    "system_prompt": "system_prompt",
}


def default_config(settings: Settings) -> AssistantConfig:
    """The configuration that reproduces the app's settings (see the module rules)."""
    return AssistantConfig(
        answer_model=settings.answer_model,
        system_prompt=SYSTEM_PROMPT,
        instructions="",
        temperature=None,
        max_tokens=settings.answer_max_tokens,
        top_k=settings.top_k,
        retrieval=Retrieval.SIMILARITY,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    ).validate()


def ensure_default(store: HistoryStore, settings: Settings) -> ConfigVersion:
    """The "default" configuration as of the current settings (saved as a new version when they
    changed since the last one)."""
    return store.save_config(
        DEFAULT_CONFIG_NAME, default_config(settings), note="The app's settings (environment / secrets.toml)."
    )


def save_config(store: HistoryStore, name: str, config: AssistantConfig, *, note: str = "") -> ConfigVersion:
    """Save ``config`` under ``name`` (a new version when it changed). Raises :class:`InputError`
    for the reserved "default" name or an invalid field."""
    name = config_name(name)
    if name.casefold() == DEFAULT_CONFIG_NAME:
        raise InputError(
            f"'{DEFAULT_CONFIG_NAME}' follows the app's settings and cannot be edited: clone it under "
            "another name and change the clone."
        )
    return store.save_config(name, config, note=note)


def resolve_config(
    store: HistoryStore, settings: Settings, name: str | None = None, version: int | None = None
) -> ConfigVersion:
    """The configuration a run should pin: ``name`` at ``version`` (latest when None); "default"
    (or no name) is brought up to date with the settings first. ``name`` may be ``"NAME@3"``.
    Raises :class:`InputError` naming an unknown configuration or version."""
    if name and "@" in name and version is None:
        base, _, ver = name.rpartition("@")
        if ver.isdigit():
            name, version = base, int(ver)
    if not name or name.strip().casefold() == DEFAULT_CONFIG_NAME:
        current = ensure_default(store, settings)
        return current if version is None else store.get_config(DEFAULT_CONFIG_NAME, version)
    return store.get_config(config_name(name), version)


def export_configs(versions: Iterable[ConfigVersion]) -> str:
    """Configurations as the JSON :func:`parse_config_file` reads back (one object, or a list)."""
    items = [
        {"name": v.name, "version": v.version, "note": v.note, "config": v.config.to_json()} for v in versions
    ]
    return json.dumps(items[0] if len(items) == 1 else items, indent=2, ensure_ascii=False) + "\n"


def parse_config_file(
    data: bytes | str, *, source: str, base: AssistantConfig, name: str | None = None
) -> list[tuple[str, AssistantConfig, str]]:
    """``(name, config, note)`` for each configuration in a JSON file (see the module rules).

    ``name`` overrides the file's name (only for a file with one configuration). Raises
    :class:`InputError` naming ``source`` and the problem.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{source}: not valid JSON ({exc}).") from None
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        raise InputError(f"{source}: the file holds no configuration.")
    if name is not None and len(entries) != 1:
        raise InputError(
            f"{source}: --name works with a file of one configuration; this one has {len(entries)}."
        )
    out = []
    for n, entry in enumerate(entries, 1):
        where = f"{source}" + (f", configuration {n}" if len(entries) > 1 else "")
        if not isinstance(entry, Mapping):
            raise InputError(f"{where}: expected a JSON object.")
        fields = (
            entry.get("config")
            if "config" in entry
            else {k: v for k, v in entry.items() if k not in ("name", "note", "version")}
        )
        this_name = name or entry.get("name")
        if not this_name:
            raise InputError(f'{where}: no name; add "name" to the file or pass --name.')
        try:
            cfg = AssistantConfig.from_json(fields or {}, base=base)
            out.append((config_name(this_name), cfg, str(entry.get("note") or "")))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    return out


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["top_k=2,4,8", "prompt=a.txt,b.txt"]`` → field → values (prompt files are read here).

    Raises :class:`InputError` naming the bad spec (unknown key, no values, unreadable file).
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or key not in GRID_KEYS:
            raise InputError(
                f"--grid {spec!r}: expected KEY=V1,V2,… with KEY one of {', '.join(sorted(GRID_KEYS))}."
            )
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals:
            raise InputError(f"--grid {spec!r}: no values.")
        field = GRID_KEYS[key]
        if field == "system_prompt":
            read = []
            for v in vals:
                if v == "default":
                    read.append(SYSTEM_PROMPT)
                    continue
                try:
                    read.append(Path(v).read_text(encoding="utf-8"))
                except OSError as exc:
                    raise InputError(
                        f"--grid {spec!r}: cannot read the prompt file {v} ({exc.strerror})."
                    ) from None
            vals = read
        grid[field] = list(dict.fromkeys([*grid.get(field, []), *vals]))
    return grid


def _value_label(field: str, value: Any, index: int) -> str:
    if field == "system_prompt":
        return f"prompt{index + 1}"
    if field == "temperature" and value in (None, ""):
        return "temperature=default"
    return f"{field}={value}"


def expand_grid(base: ConfigVersion, grid: Mapping[str, Sequence[Any]]) -> list[tuple[str, AssistantConfig]]:
    """Every combination of ``grid`` applied to ``base`` → ``(name, config)`` (validated), in
    the order of the grid's values; duplicates (identical configurations) appear once."""
    known = {f.name for f in CONFIG_FIELDS}
    unknown = [k for k in grid if k not in known]
    if unknown:
        raise InputError(f"Unknown grid field(s) {', '.join(unknown)}.")
    fields = list(grid)
    out: list[tuple[str, AssistantConfig]] = []
    seen: set[str] = set()
    for combo in itertools.product(*(list(enumerate(grid[f])) for f in fields)):
        changes = {f: v for f, (_, v) in zip(fields, combo, strict=True)}
        cfg = base.config.replace(**changes)
        if cfg.fingerprint() in seen:
            continue
        seen.add(cfg.fingerprint())
        label = " · ".join(_value_label(f, v, i) for f, (i, v) in zip(fields, combo, strict=True))
        out.append((f"{base.name} · {label}" if label else base.name, cfg))
    return out
