"""The workspace's experiment methods: configurations, run names, what-changed, sweeps, leaderboards.

Mixed into :class:`rag_core.workspace.Workspace` (same contracts: "empty" is ``[]``, only
:class:`~rag_core.errors.RagError` subclasses are raised, with messages an analyst can act on).
Kept apart so the facade stays small; the logic lives in :mod:`rag_core.runs.configs`,
:mod:`rag_core.runs.sweep`, :mod:`rag_core.reporting.diff` and :mod:`rag_core.reporting.significance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rag_core.access import AuditAction, Principal, Role
from rag_core.errors import InputError
from rag_core.experiment import DEFAULT_CONFIG_NAME, AssistantConfig, ConfigVersion, SweepRecord, config_name
from rag_core.reporting.diff import FieldChange, config_diff
from rag_core.reporting.significance import Leaderboard, comparison_json, leaderboard
from rag_core.runs import configs as cfgs
from rag_core.runs.sweep import (
    SweepEstimate,
    SweepPlan,
    SweepProgress,
    estimate_sweep,
    live_sweep,
    live_sweeps,
    start_sweep,
)
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.vocab import Backend, Mode, Suite, choice

if TYPE_CHECKING:
    from rag_core.engine import Engine

__all__ = ["ExperimentsMixin"]


class ExperimentsMixin:
    """Experiment methods of :class:`~rag_core.workspace.Workspace`."""

    settings: Settings
    store: HistoryStore

    if TYPE_CHECKING:

        @property
        def engine(self) -> Engine: ...

        def _touch(self) -> None: ...

        def _require(self, role: Role, action: str) -> Principal: ...

        def _audit(self, action: AuditAction, target: str = "", detail: str = "") -> None: ...
        @property
        def principal(self) -> Principal: ...
        def _require_run_control(self, run_id: int, action: str) -> Principal: ...
        def _require_starter(self, started_by: str, action: str, what: str) -> Principal: ...
        def _may_control(self, started_by: str) -> bool: ...

        def question_set(self, name: str) -> Any: ...

        def has_documents(self) -> bool: ...

    # --- configurations ------------------------------------------------------------------------
    def configs(self) -> list[ConfigVersion]:
        """The latest version of every configuration, "default" first (brought up to date with the
        settings)."""
        default = cfgs.ensure_default(self.store, self.settings)
        rest = [c for c in self.store.list_configs() if c.name != DEFAULT_CONFIG_NAME]
        return [default, *rest]

    def config(self, name: str, version: int | None = None) -> ConfigVersion:
        """A configuration version (latest when None). Raises :class:`InputError` when unknown."""
        return cfgs.resolve_config(self.store, self.settings, name, version)

    def config_versions(self, name: str) -> list[ConfigVersion]:
        """Every version of ``name``, oldest first; ``[]`` when unknown."""
        if name == DEFAULT_CONFIG_NAME:
            cfgs.ensure_default(self.store, self.settings)
        return self.store.config_versions(name)

    def save_config(
        self, name: str, fields: AssistantConfig | Mapping[str, Any], *, note: str = ""
    ) -> ConfigVersion:
        """Save ``fields`` (a configuration, or field → value from a form) as the next version of
        ``name``; unchanged fields are no new version. Raises :class:`InputError` naming the field,
        or for "default" (clone it instead). Needs the analyst role."""
        self._require(Role.ANALYST, "save configurations")
        if isinstance(fields, AssistantConfig):
            cfg = fields
        else:
            base = self.config(name).config if self._exists(name) else cfgs.default_config(self.settings)
            cfg = AssistantConfig.from_json(dict(fields), base=base)
        out = cfgs.save_config(self.store, name, cfg, note=note)
        self._touch()
        self._audit(AuditAction.CONFIG_SAVE, out.label, note)
        return out

    def clone_config(self, source: str, new_name: str, *, version: int | None = None) -> ConfigVersion:
        """Save a copy of ``source`` (at ``version``) as version 1 of ``new_name``.

        Raises :class:`InputError` when ``new_name`` is taken or reserved. Needs the analyst role.
        """
        self._require(Role.ANALYST, "save configurations")
        new_name = config_name(new_name)
        if self._exists(new_name) or new_name.casefold() == DEFAULT_CONFIG_NAME:
            raise InputError(f"A configuration named '{new_name}' already exists; pick another name.")
        src = self.config(source, version)
        out = cfgs.save_config(self.store, new_name, src.config, note=f"Cloned from {src.label}.")
        self._touch()
        self._audit(AuditAction.CONFIG_SAVE, out.label, f"cloned from {src.label}")
        return out

    def delete_config(self, name: str) -> bool:
        """Delete every version of ``name`` (runs keep their copy). False when it did not exist.
        Needs the admin role."""
        self._require(Role.ADMIN, "delete configurations")
        if name == DEFAULT_CONFIG_NAME:
            raise InputError("'default' follows the app's settings and cannot be deleted.")
        try:
            deleted = self.store.delete_config(name)
        finally:
            self._touch()
        if deleted:
            self._audit(AuditAction.CONFIG_DELETE, name)
        return deleted

    @staticmethod
    def config_changes(a: ConfigVersion, b: ConfigVersion) -> list[FieldChange]:
        """The fields of ``b`` that differ from ``a`` (prompts with a line diff)."""
        return config_diff(a.config, b.config)

    def export_configs(self, names: Sequence[str]) -> str:
        """The named configurations (latest versions) as JSON that :meth:`import_configs` reads."""
        return cfgs.export_configs([self.config(n) for n in names])

    def import_configs(self, filename: str, data: bytes, *, name: str | None = None) -> list[ConfigVersion]:
        """Save every configuration of a JSON file (each a new version when it changed). Fields
        missing from the file keep the default's values. Raises :class:`InputError` naming the file.
        Needs the analyst role."""
        self._require(Role.ANALYST, "save configurations")
        parsed = cfgs.parse_config_file(
            data, source=filename, base=cfgs.default_config(self.settings), name=name
        )
        out = [cfgs.save_config(self.store, n, c, note=note) for n, c, note in parsed]
        self._touch()
        for cv in out:
            self._audit(AuditAction.CONFIG_SAVE, cv.label, f"imported from {filename}")
        return out

    def _exists(self, name: str) -> bool:
        return bool(self.store.config_versions(name))

    # --- runs: names and comparisons ----------------------------------------------------------
    def label_run(self, run_id: int, *, name: str | None, note: str | None) -> None:
        """Set or clear a run's name and note. Needs the analyst role."""
        self.store.get_run(run_id)  # an unknown run is an InputError, not a refusal
        self._require_run_control(run_id, "rename")
        self.store.label_run(run_id, name=name, note=note)
        self._touch()
        self._audit(AuditAction.RUN_RENAME, f"run #{run_id}", f"name: {name or ''}")

    def compare_json(self, baseline_id: int, candidate_id: int) -> dict[str, Any]:
        """The ``compare --json`` document of two runs (what changed + per-metric statistics)."""
        cmp = self.compare(baseline_id, candidate_id)  # type: ignore[attr-defined]
        return comparison_json(cmp.baseline, cmp.candidate, cmp.stats, cmp.changes, cmp.warnings)

    # --- sweeps ---------------------------------------------------------------------------------
    def sweep_plan(
        self,
        question_set: str,
        *,
        configs: Sequence[str | ConfigVersion] = (),
        grid: Mapping[str, Sequence[Any]] | None = None,
        base: str | None = None,
        name: str = "",
        backend: str = "offline",
        mode: str = "async",
        concurrency: int | None = None,
        suite: str = "offline",
        metrics: Sequence[str] | None = None,
        judge_repeats: int = 1,
    ) -> SweepPlan:
        """A sweep of the saved set over ``configs`` (names, ``NAME@version`` or versions) and/or a
        ``grid`` over ``base``. Grid points are unsaved configurations (version 0) until
        :meth:`start_sweep` saves them, so estimating a plan writes nothing. Raises :class:`InputError`."""
        items = self.question_set(question_set)
        chosen = [c if isinstance(c, ConfigVersion) else self.config(c) for c in configs]
        if grid:
            origin = (
                self.config(base) if base else (chosen[0] if chosen else self.config(DEFAULT_CONFIG_NAME))
            )
            known = {c.config.fingerprint() for c in chosen}
            for point_name, cfg in cfgs.expand_grid(origin, grid):
                if cfg.fingerprint() in known:
                    continue
                known.add(cfg.fingerprint())
                saved = self.store.config_versions(point_name)
                if saved and saved[-1].config.fingerprint() == cfg.fingerprint():
                    chosen.append(saved[-1])  # this grid point was saved by an earlier sweep
                else:
                    chosen.append(ConfigVersion(point_name, 0, cfg, note=f"Grid point of {origin.label}."))
        return SweepPlan(
            items=tuple(items),
            configs=tuple(chosen),
            question_set=question_set,
            name=name,
            backend=choice(Backend, backend, "backend"),
            mode=choice(Mode, mode, "mode"),
            concurrency=int(concurrency or self.settings.concurrency),
            suite=choice(Suite, suite, "metric suite"),
            metrics=tuple(metrics) if metrics else None,
            judge_repeats=int(judge_repeats),
        )

    def estimate_sweep(self, plan: SweepPlan, *, check_index: bool = True) -> SweepEstimate:
        """:func:`~rag_core.runs.sweep.estimate_sweep` with this workspace's settings."""
        return estimate_sweep(plan, self.settings, check_index=check_index and self.has_documents())

    def start_sweep(self, plan: SweepPlan) -> int:
        """Start a sweep in the background; returns its id. Raises :class:`InputError` (nothing
        stored) when no document is indexed or the plan cannot run. Needs the analyst role."""
        self._require(Role.ANALYST, "start a sweep")
        if not self.has_documents():
            raise InputError(
                "No documents are indexed yet: upload policy documents on the Documents page first."
            )
        plan.check(self.settings)
        if any(not c.saved for c in plan.configs):  # grid points: saved now, so the runs pin a version
            saved = tuple(
                c if c.saved else self.store.save_config(c.name, c.config, note=c.note) for c in plan.configs
            )
            plan = dataclasses.replace(plan, configs=saved)
        me = self.principal

        def on_created(sweep_id: int) -> None:
            self._audit(AuditAction.SWEEP_START, f"sweep #{sweep_id}", f"{len(plan.configs)} configurations")

        def on_run_start(
            sweep_id: int, run_id: int
        ) -> None:  # on the sweep's thread: the starter captured here
            self.store.set_run_started_by(
                run_id,
                me.owner_key,
                audit=(me.id, str(me.role), AuditAction.RUN_START, f"run #{run_id}", f"sweep #{sweep_id}"),
            )

        handle = start_sweep(
            plan,
            settings=self.settings,
            store=self.store,
            engine=self.engine,
            started_by=me.owner_key,
            on_created=on_created,
            on_run_start=on_run_start,
        )
        self._touch()
        return handle.sweep_id

    def sweep_progress(self, sweep_id: int) -> SweepProgress | None:
        """Live progress of a sweep executing in this process; None once it has ended."""
        h = live_sweep(self.engine, self.store, sweep_id)
        return h.progress() if h is not None else None

    def cancel_sweep(self, sweep_id: int) -> bool:
        """Stop a sweep (its current run keeps its finished work). False when it is not running here."""
        h = live_sweep(self.engine, self.store, sweep_id)
        if h is None:
            return False
        self._require_starter(h.started_by, "cancel", f"sweep #{sweep_id}")
        h.cancel()
        self._touch()
        self._audit(AuditAction.SWEEP_CANCEL, f"sweep #{sweep_id}")
        return True

    def can_control_sweep(self, sweep_id: int) -> bool:
        """Whether the acting principal may cancel the live sweep ``sweep_id`` (its starter or an admin)."""
        h = live_sweep(self.engine, self.store, sweep_id)
        return h is not None and self._may_control(h.started_by)

    def wait_sweep(self, sweep_id: int, timeout: float | None = None) -> bool:
        """Block until a sweep of this process ends (tests, scripts). True when it has ended."""
        h = live_sweep(self.engine, self.store, sweep_id)
        if h is None:
            return True
        done = h.wait(timeout)
        self._touch()
        return done

    def active_sweep_ids(self) -> list[int]:
        """Ids of this data dir's sweeps executing in this process, newest first."""
        return sorted((h.sweep_id for h in live_sweeps(self.engine, self.store)), reverse=True)

    def sweeps(self, limit: int | None = None) -> list[SweepRecord]:
        """Sweeps newest first; ``[]`` when none."""
        return self.store.list_sweeps(limit)

    def sweep(self, sweep_id: int) -> SweepRecord:
        """One sweep. Raises :class:`InputError` when unknown."""
        return self.store.get_sweep(sweep_id)

    def leaderboard(self, sweep_id: int) -> Leaderboard:
        """The sweep's leaderboard (see :func:`rag_core.reporting.significance.leaderboard`)."""
        sweep = self.store.get_sweep(sweep_id)
        runs = [self.store.get_run(rid) for rid in sweep.run_ids]
        return leaderboard(runs, {r.id: self.store.get_results(r.id) for r in runs})
