"""Experiments in the history: assistant configurations, question-set versions, run identity, sweeps.

Contracts (besides the store's, see :mod:`rag_core.storage.store`)
- A configuration version is immutable. :meth:`ExperimentsStore.save_config` adds version *n + 1*
  only when the fields differ from the latest version (same :meth:`AssistantConfig.fingerprint`
  → the latest version is returned unchanged, so saving twice never makes a "new" version).
- Every save of a question set whose content changed adds a ``question_set_versions`` row (version,
  sha256 of the questions and expected answers, size, time); :func:`record_set_version` is called
  inside :meth:`~rag_core.storage.catalog.CatalogStore.save_question_set`'s transaction.
- A run's identity (:class:`~rag_core.experiment.RunIdentity`) is written once, when it starts; its
  name and note can be changed at any time (:meth:`ExperimentsStore.label_run`).
- Unknown names and ids raise :class:`InputError` naming them; deleting something absent returns
  ``False``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rag_core.errors import InputError, StorageError
from rag_core.experiment import (
    AssistantConfig,
    ConfigVersion,
    RunIdentity,
    SweepRecord,
    config_name,
    questions_fingerprint,
)
from rag_core.models import QAItem
from rag_core.storage.connection import SqliteBase, TxConnection, _now
from rag_core.storage.jsonsafe import from_json, refuse_secrets, to_json
from rag_core.storage.owner import owner_alive, owner_on_this_host
from rag_core.storage.schema import RUN_STATUSES

__all__ = ["MAX_NOTE_CHARS", "MAX_RUN_NAME_CHARS", "ExperimentsStore", "record_set_version"]

#: Longest run name accepted.
MAX_RUN_NAME_CHARS = 200
#: Longest run / version note accepted.
MAX_NOTE_CHARS = 5000


def record_set_version(conn: TxConnection, name: str, items: Sequence[QAItem], now: str) -> int:
    """Inside an open write transaction: the version number of set ``name`` with ``items``,
    adding a version row when the content differs from the latest one (or there is none)."""
    sha = questions_fingerprint(items)
    row = conn.execute(
        "SELECT version, sha256 FROM question_set_versions WHERE set_name = ? ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    if row is not None and row[1] == sha:
        return int(row[0])
    version = (int(row[0]) if row else 0) + 1
    conn.execute(
        "INSERT INTO question_set_versions(set_name, version, sha256, n_items, created_at) VALUES (?, ?, ?, ?, ?)",
        (name, version, sha, len(items), now),
    )
    return version


class ExperimentsStore(SqliteBase):
    """Configuration, question-set version, run identity and sweep methods of the history store."""

    # --- assistant configurations ------------------------------------------------------------------
    def save_config(self, name: str, config: AssistantConfig, *, note: str = "") -> ConfigVersion:
        """Save ``config`` as the next version of ``name`` (created when new) and return it; when it
        equals the latest version, nothing is written and the latest version is returned.

        Raises :class:`InputError` for a bad name or field, :class:`StorageError` for a secret in it.
        """
        name = config_name(name)
        config = config.validate()
        note = _text(note, MAX_NOTE_CHARS, "A version note")
        fields = config.to_json()
        if any(isinstance(v, str) and "sk-ant-" in v for v in fields.values()):  # a key pasted into a prompt
            raise StorageError(
                f"Refusing to store configuration '{name}': its text contains what looks like an Anthropic "
                "API key (sk-ant-…). Keys are never written to the history database; remove it."
            )
        data = to_json(refuse_secrets(fields, "configuration"), f"configuration '{name}'")
        fp = config.fingerprint()
        now = _now()
        with self._tx(f"save configuration '{name}'", write=True) as conn:
            row = conn.execute(
                f"SELECT {_CFG_COLUMNS} FROM assistant_configs WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is not None and row[3] == fp:
                return _config_version(row)
            version = (int(row[1]) if row else 0) + 1
            conn.execute(
                "INSERT INTO assistant_configs(name, version, created_at, fingerprint, config, note) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, now, fp, data, note),
            )
        return ConfigVersion(name=name, version=version, config=config, created_at=now, note=note)

    def get_config(self, name: str, version: int | None = None) -> ConfigVersion:
        """Version ``version`` of configuration ``name`` (the latest when None).

        Raises :class:`InputError` naming the configuration (and the saved ones) when absent.
        """
        with self._tx(f"read configuration '{name}'", write=False) as conn:
            if version is None:
                row = conn.execute(
                    f"SELECT {_CFG_COLUMNS} FROM assistant_configs WHERE name = ? ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {_CFG_COLUMNS} FROM assistant_configs WHERE name = ? AND version = ?",
                    (name, int(version)),
                ).fetchone()
            if row is None:
                names = [
                    r[0] for r in conn.execute("SELECT DISTINCT name FROM assistant_configs ORDER BY name")
                ]
        if row is None:
            if version is not None and name in names:
                raise InputError(f"Configuration '{name}' has no version {version}.")
            shown = ", ".join(f"'{n}'" for n in names[:8]) or "none yet"
            raise InputError(f"There is no configuration named '{name}'. Saved configurations: {shown}.")
        return _config_version(row)

    def list_configs(self) -> list[ConfigVersion]:
        """The latest version of every configuration, sorted by name; ``[]`` when none."""
        with self._tx("list the configurations", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_CFG_COLUMNS} FROM assistant_configs c WHERE version = "
                "(SELECT MAX(version) FROM assistant_configs WHERE name = c.name) "
                "ORDER BY LOWER(name), name"
            ).fetchall()
        return [_config_version(r) for r in rows]

    def config_versions(self, name: str) -> list[ConfigVersion]:
        """Every version of ``name``, oldest first; ``[]`` when there is no such configuration."""
        with self._tx(f"read configuration '{name}'", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_CFG_COLUMNS} FROM assistant_configs WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
        return [_config_version(r) for r in rows]

    def delete_config(self, name: str) -> bool:
        """Delete every version of ``name``; runs keep their copy. ``False`` when it did not exist."""
        with self._tx(f"delete configuration '{name}'", write=True) as conn:
            return conn.execute("DELETE FROM assistant_configs WHERE name = ?", (name,)).rowcount > 0

    # --- question-set versions ------------------------------------------------------------------------
    def question_set_version(
        self, name: str, items: Sequence[QAItem] | None = None
    ) -> tuple[int, str] | None:
        """``(version, sha256)`` of set ``name``: its latest version, or — given the ``items`` a run
        uses — the version with exactly that content (recorded now if the set has none yet, e.g. a
        set saved before versions existed). None when ``items`` match no version of a versioned set
        or the set was never saved."""
        if items is None:
            with self._tx(f"read question set '{name}'", write=False) as conn:
                row = conn.execute(
                    "SELECT version, sha256 FROM question_set_versions WHERE set_name = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
            return (int(row[0]), str(row[1])) if row else None
        sha = questions_fingerprint(items)
        with self._tx(f"version question set '{name}'", write=True) as conn:
            row = conn.execute(
                "SELECT version FROM question_set_versions WHERE set_name = ? AND sha256 = ? "
                "ORDER BY version DESC LIMIT 1",
                (name, sha),
            ).fetchone()
            if row is not None:
                return int(row[0]), sha
            saved = conn.execute("SELECT 1 FROM question_sets WHERE name = ?", (name,)).fetchone()
            versioned = conn.execute(
                "SELECT 1 FROM question_set_versions WHERE set_name = ? LIMIT 1", (name,)
            ).fetchone()
            if saved is None or versioned is not None:
                return None
            return record_set_version(conn, name, items, _now()), sha

    def question_set_versions(self, name: str) -> list[dict[str, Any]]:
        """``{version, sha256, n_items, created_at}`` per saved version of set ``name``, oldest first."""
        with self._tx(f"read question set '{name}'", write=False) as conn:
            rows = conn.execute(
                "SELECT version, sha256, n_items, created_at FROM question_set_versions WHERE set_name = ? "
                "ORDER BY version",
                (name,),
            ).fetchall()
        return [{"version": r[0], "sha256": r[1], "n_items": r[2], "created_at": r[3]} for r in rows]

    # --- run identity and labels ----------------------------------------------------------------------
    def set_run_identity(self, run_id: int, identity: RunIdentity) -> None:
        """Store what run ``run_id`` is made of. Raises :class:`StorageError` when the run is gone."""
        data = to_json(refuse_secrets(identity.to_json(), "identity"), f"the identity of run #{run_id}")
        with self._tx(f"record run #{run_id}", write=True) as conn:
            if conn.execute("UPDATE runs SET identity = ? WHERE id = ?", (data, run_id)).rowcount == 0:
                raise StorageError(f"Run #{run_id} no longer exists (it was deleted).")

    def label_run(self, run_id: int, *, name: str | None, note: str | None) -> None:
        """Set (or clear, with ``""``/None) a run's name and note.

        Raises :class:`InputError` for an unknown run or text that is too long.
        """
        clean_name = _text(name or "", MAX_RUN_NAME_CHARS, "A run name", single_line=True) or None
        clean_note = _text(note or "", MAX_NOTE_CHARS, "A run note") or None
        with self._tx(f"rename run #{run_id}", write=True) as conn:
            cur = conn.execute(
                "UPDATE runs SET name = ?, note = ? WHERE id = ?", (clean_name, clean_note, run_id)
            )
            if cur.rowcount == 0:
                raise InputError(f"There is no run #{run_id} in the history (it may have been deleted).")

    # --- sweeps ---------------------------------------------------------------------------------------
    def create_sweep(self, *, name: str, question_set: str | None, plan: Mapping[str, Any]) -> int:
        """A new sweep with status ``running``, owned by this process; returns its id."""
        name = _text(name, MAX_RUN_NAME_CHARS, "A sweep name", single_line=True) or "sweep"
        data = to_json(refuse_secrets(plan, "plan"), "the sweep plan")
        with self._tx("create the sweep", write=True) as conn:
            cur = conn.execute(
                "INSERT INTO sweeps(created_at, name, question_set, status, plan, owner) "
                "VALUES (?, ?, ?, 'running', ?, ?) RETURNING id",
                (_now(), name, question_set, data, self._owner),
            )
            return int(cur.fetchone()[0])

    def update_sweep(
        self,
        sweep_id: int,
        *,
        status: str | None = None,
        run_ids: Sequence[int] | None = None,
        counters: Mapping[str, Any] | None = None,
        finished: bool = False,
    ) -> None:
        """Change a sweep (arguments left None are unchanged). Raises :class:`StorageError` when the
        sweep is gone or the status unknown."""
        sets: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in RUN_STATUSES:
                raise StorageError(
                    f"Unknown sweep status {status!r}; expected one of {', '.join(RUN_STATUSES)}."
                )
            sets.append("status = ?")
            params.append(status)
        if run_ids is not None:
            sets.append("run_ids = ?")
            params.append(to_json([int(i) for i in run_ids], "the sweep's runs"))
        if counters is not None:
            sets.append("counters = ?")
            params.append(to_json(refuse_secrets(counters, "counters"), "the sweep's counters"))
        if finished:
            sets.append("finished_at = ?")
            params.append(_now())
        if not sets:
            return
        with self._tx(f"update sweep #{sweep_id}", write=True) as conn:
            cur = conn.execute(f"UPDATE sweeps SET {', '.join(sets)} WHERE id = ?", (*params, sweep_id))
            if cur.rowcount == 0:
                raise StorageError(f"Sweep #{sweep_id} no longer exists; its update was not saved.")

    def get_sweep(self, sweep_id: int) -> SweepRecord:
        """One sweep. Raises :class:`InputError` naming it when it does not exist."""
        with self._tx(f"read sweep #{sweep_id}", write=False) as conn:
            row = conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise InputError(f"There is no sweep #{sweep_id} in the history.")
        return _sweep(row)

    def list_sweeps(self, limit: int | None = None) -> list[SweepRecord]:
        """Sweeps newest first (at most ``limit``); ``[]`` when none."""
        with self._tx("list the sweeps", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC"
                + ("" if limit is None else " LIMIT ?"),
                () if limit is None else (int(limit),),
            ).fetchall()
        return [_sweep(r) for r in rows]

    def mark_sweeps_interrupted(self, exclude: Collection[int] | None = None) -> list[int]:
        """Mark sweeps left ``running`` by a dead process (or by this one, unless in ``exclude``)
        as ``interrupted``; returns their ids."""
        skip = set(exclude or ())
        with self._tx("mark interrupted sweeps", write=True) as conn:
            rows = conn.execute("SELECT id, owner FROM sweeps WHERE status = 'running'").fetchall()
            ids = [
                int(sid)
                for sid, owner in rows
                # A sweep of another host (sharing the history) is left to that host.
                if sid not in skip
                and (owner == self._owner or (owner_on_this_host(owner) and not owner_alive(owner)))
            ]
            for sid in ids:
                conn.execute(
                    "UPDATE sweeps SET status = 'interrupted', finished_at = COALESCE(finished_at, ?) WHERE id = ?",
                    (_now(), sid),
                )
        return sorted(ids)


_CFG_COLUMNS = "name, version, created_at, fingerprint, config, note"
_SWEEP_COLUMNS = "id, created_at, finished_at, name, question_set, status, plan, run_ids, counters"


def _config_version(r: Sequence[Any]) -> ConfigVersion:
    data = from_json(r[4], f"configuration '{r[0]}' v{r[1]}", {})
    try:
        config = AssistantConfig(**data)
    except (InputError, TypeError) as exc:
        raise StorageError(
            f"Configuration '{r[0]}' v{r[1]} is damaged or was written by a newer version ({exc})."
        ) from exc
    return ConfigVersion(name=r[0], version=int(r[1]), config=config, created_at=r[2], note=r[5] or "")


def _sweep(r: Sequence[Any]) -> SweepRecord:
    what = f"data of sweep #{r[0]}"
    return SweepRecord(
        id=int(r[0]),
        created_at=r[1],
        finished_at=r[2],
        name=r[3],
        question_set=r[4],
        status=r[5],
        plan=from_json(r[6], what, {}),
        run_ids=tuple(int(i) for i in from_json(r[7], what, [])),
        counters=from_json(r[8], what, {}),
    )


def _text(value: str, limit: int, what: str, *, single_line: bool = False) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text.")
    text = " ".join(value.split()) if single_line else value.strip()
    if len(text) > limit:
        raise InputError(f"{what} can have at most {limit:,} characters.")
    return text
