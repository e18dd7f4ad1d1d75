"""JSON safety at the storage boundary: the one place that cleans non-finite numbers and refuses secrets.

* :func:`finite` — a number or ``None``: NaN / infinity never reach the database.
* :func:`clean` / :func:`to_json` — a JSON-ready copy with every non-finite float replaced by
  ``null`` (paths, dates, dataclasses and numpy values converted), written with ``allow_nan=False``;
  anything else raises :class:`~rag_core.errors.StorageError` naming what was being saved.
* :func:`from_json` — the reverse; a damaged column raises :class:`~rag_core.errors.StorageError`.
* :func:`refuse_secrets` — raises :class:`~rag_core.errors.StorageError` for a :class:`Secret`, an
  ``sk-ant-`` string or a key named like a secret (:data:`SECRET_KEY_NAMES`, ``…apikey``,
  ``…secret``, ``…password``), anywhere in a nested value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rag_core.errors import StorageError
from rag_core.settings import Secret

__all__ = ["MAX_JSON_DEPTH", "SECRET_KEY_NAMES", "clean", "finite", "from_json", "refuse_secrets", "to_json"]

#: Deepest nesting accepted in a JSON column (config / timings / summary / contexts).
MAX_JSON_DEPTH = 32

SECRET_KEY_NAMES = frozenset(
    {
        "apikey",
        "xapikey",
        "authorization",
        "password",
        "passwd",
        "secret",
        "token",
        "accesstoken",
        "authtoken",
        "bearertoken",
        "secretkey",
        "clientsecret",
    }
)


def finite(x: Any) -> float | None:
    """``float(x)`` when it is a finite number, else ``None``."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def refuse_secrets(obj: Any, path: str, depth: int = 0) -> Any:
    """Return ``obj`` unchanged, or raise StorageError if it holds something that looks secret."""
    if depth > MAX_JSON_DEPTH:
        raise StorageError(f"Refusing to store {path}: it is nested too deeply.")
    refuse = (
        f"Refusing to store {path}: it looks like a secret. API keys and other secrets are never "
        "written to the history database; remove it from the run's configuration."
    )
    if isinstance(obj, Secret):
        raise StorageError(refuse)
    if isinstance(obj, str):
        if obj.startswith("sk-ant-"):
            raise StorageError(refuse)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            norm = re.sub(r"[^a-z0-9]", "", str(k).lower())
            sub = f"{path}.{k}"
            if norm in SECRET_KEY_NAMES or norm.endswith(("apikey", "secret", "password")):
                raise StorageError(
                    f"Refusing to store {sub}: it looks like a secret. API keys and other secrets are "
                    "never written to the history database; remove it from the run's configuration."
                )
            refuse_secrets(v, sub, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            refuse_secrets(v, f"{path}[{i}]", depth + 1)
    return obj


def clean(obj: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``obj`` with every non-finite float replaced by ``None``."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError("nested too deeply")
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [clean(v, depth + 1) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return clean(dataclasses.asdict(obj), depth + 1)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, without importing numpy
        return clean(obj.tolist(), depth + 1)
    raise TypeError(f"a {type(obj).__name__} is not JSON-serialisable")


def to_json(obj: Any, what: str) -> str:
    try:
        return json.dumps(clean(obj), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"Could not save {what}: {exc}.") from exc


def from_json(text: str | None, what: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StorageError(f"The stored {what} are damaged ({exc}); delete that run.") from exc
