"""Who may call what on the workspace: the role guard, run ownership, the audit trail, the roles file.

Mixed into :class:`rag_core.workspace.Workspace`. The guard API every mutating facade method uses:

- ``self._require(Role.ANALYST, "start a run")`` → the acting :class:`~rag_core.access.Principal`,
  or :class:`~rag_core.errors.AccessDeniedError` naming the action, the role it needs and the
  person's role (the refusal itself is written to the audit trail as ``access.denied``).
- ``self._require_run_control(run_id, "cancel")`` → the principal when they may cancel / resume /
  delete that run: an analyst who started it, or an admin; :class:`AccessDeniedError` otherwise.
- ``self._audit(AuditAction.X, target, detail)`` → appends one audit entry as the acting
  principal, in the code path of the action, after it succeeded.
- The decorator :func:`requires` does ``_require`` for a whole method:
  ``@requires(Role.ANALYST, "generate questions")``.

The acting principal is :attr:`AccessMixin.principal`: the one given to :meth:`AccessMixin.acting_as`
(the app wraps the shared workspace once per browser session and script run), else the
workspace's own default (``Workspace(settings, principal=...)``; :data:`~rag_core.access.LOCAL_ADMIN`
when not given, :data:`~rag_core.access.CLI_ADMIN` in the CLI).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rag_core.access import (
    EXAMPLE_ROLES,
    AuditAction,
    Principal,
    Role,
    RoleMap,
    acting_as,
    current_principal,
    owner_display,
)
from rag_core.errors import AccessDeniedError, InputError, RagError
from rag_core.reporting.export import csv_text
from rag_core.settings import Settings
from rag_core.storage import AuditEntry, HistoryStore

__all__ = ["AccessMixin", "ActingWorkspace", "requires"]

F = TypeVar("F", bound=Callable[..., Any])


def requires(role: Role, action: str) -> Callable[[F], F]:
    """Decorate a facade method so it runs only for principals with ``role`` (see the module)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(self: AccessMixin, *args: Any, **kwargs: Any) -> Any:
            self._require(role, action)
            return fn(self, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


class ActingWorkspace:
    """The shared workspace as seen by one principal: every public method call runs
    :func:`~rag_core.access.acting_as` that principal. Attributes (``settings``, ``store``…) are the
    workspace's own; nothing is copied, so caches and the index stay shared."""

    __slots__ = ("_principal", "_ws")

    def __init__(self, ws: Any, principal: Principal) -> None:
        self._ws = ws
        self._principal = principal

    @property
    def principal(self) -> Principal:
        return self._principal

    @property
    def workspace(self) -> Any:
        """The shared workspace underneath (acting as its default principal)."""
        return self._ws

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ws, name)
        if name.startswith("_") or not callable(attr) or isinstance(attr, type):
            return attr
        principal = self._principal

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with acting_as(principal):
                return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"{self._ws!r} acting as {self._principal.id!r}"


class AccessMixin:
    """Access methods of :class:`~rag_core.workspace.Workspace` (see the module docstring)."""

    settings: Settings
    store: HistoryStore
    _default_principal: Principal

    if TYPE_CHECKING:

        def _touch(self) -> None: ...

    # --- who is acting ---------------------------------------------------------------------------
    @property
    def principal(self) -> Principal:
        """The principal acting in the current call."""
        return current_principal(self._default_principal)

    def acting_as(self, principal: Principal) -> ActingWorkspace:
        """This workspace, every call made as ``principal`` (cheap: make one per script run)."""
        return ActingWorkspace(self, principal)

    def can(self, role: Role) -> bool:
        """Whether the acting principal has ``role`` (pages hide what they cannot do)."""
        return self.principal.can(role)

    def _require(self, role: Role, action: str) -> Principal:
        p = self.principal
        if p.can(role):
            return p
        self._deny(p, action, f"needs the {role} role")
        raise AssertionError("unreachable")  # pragma: no cover

    def _deny(self, p: Principal, action: str, why: str) -> None:
        try:
            self.store.append_audit(
                actor=p.id, role=p.role, action=AuditAction.DENIED, target=action, detail=why
            )
        except RagError:  # the refusal stands even when it cannot be recorded
            pass
        raise AccessDeniedError(
            f"You cannot {action}: it {why}, and {p.label} is {_article(p.role)} {p.role}. "
            "Ask an admin to change your role in the roles file."
            if why.startswith("needs")
            else f"You cannot {action}: {why}."
        )

    def _audit(self, action: AuditAction, target: str = "", detail: str = "") -> None:
        p = self.principal
        self.store.append_audit(actor=p.id, role=p.role, action=action, target=target, detail=detail)

    def record_sign_in(self) -> None:
        """Write a ``session.sign_in`` entry for the acting (signed-in) principal: the app calls it
        once per browser session."""
        p = self.principal
        self._audit(
            AuditAction.SIGN_IN,
            p.label,
            f"role {p.role}" + (f", groups {', '.join(p.groups)}" if p.groups else ""),
        )

    # --- run ownership ---------------------------------------------------------------------------
    def run_owner(self, run_id: int) -> str:
        """Who started ``run_id``, for people (``"unknown"`` when not recorded)."""
        return owner_display(self.store.run_started_by(run_id))

    def run_owners(self) -> dict[int, str]:
        """Run id → who started it, for people (History's "started by" column)."""
        return {rid: owner_display(who) for rid, who in self.store.runs_started_by().items()}

    def owns_run(self, run_id: int) -> bool:
        """Whether the acting principal started ``run_id`` (in single-user mode: in this browser
        session). Runs recorded before sign-in belong to no one."""
        return self.principal.owns(self.store.run_started_by(run_id))

    def can_control_run(self, run_id: int) -> bool:
        """Whether the acting principal may cancel, resume, rename or delete ``run_id``."""
        p = self.principal
        return p.can(Role.ADMIN) or self._may_control(self.store.run_started_by(run_id))

    def _require_run_control(self, run_id: int, action: str) -> Principal:
        """The principal when they may ``action`` (cancel / resume / delete / rename) ``run_id``."""
        return self._require_starter(self.store.run_started_by(run_id), action, f"run #{run_id}")

    def _require_starter(self, started_by: str, action: str, what: str) -> Principal:
        """The principal when they may ``action`` ``what`` (a run, sweep, upload or generation)
        that ``started_by`` started: its starter, if an analyst, or an admin."""
        p = self._require(Role.ANALYST, f"{action} {what}")
        if not p.can(Role.ADMIN) and not p.owns(started_by):
            self._deny(
                p,
                f"{action} {what}",
                f"it was started by {owner_display(started_by)}; only they or an admin can {action} it",
            )
        return p

    def _may_control(self, started_by: str) -> bool:
        """Whether the acting principal may cancel what ``started_by`` started (pages hide the button)."""
        p = self.principal
        return p.can(Role.ADMIN) or (p.can(Role.ANALYST) and p.owns(started_by))

    def _record_run_start(self, run_id: int, action: AuditAction, detail: str) -> None:
        """Store who started ``run_id`` and the audit entry, in one transaction."""
        p = self.principal
        self.store.set_run_started_by(
            run_id, p.owner_key, audit=(p.id, str(p.role), str(action), f"run #{run_id}", detail)
        )

    # --- roles -----------------------------------------------------------------------------------
    @property
    def roles_path(self) -> Path:
        """The roles file: ``RAG_ROLES_FILE``, else ``<data dir>/roles.toml``."""
        return Path(os.environ.get("RAG_ROLES_FILE") or self.settings.data_dir / "roles.toml")

    def role_map(self) -> RoleMap:
        """The roles file parsed. :class:`InputError` naming the file when it is malformed."""
        return RoleMap.load(self.roles_path)

    def principal_for(self, email: str, name: str = "", groups: Iterable[str] = ()) -> Principal:
        """The principal of a signed-in user, their role from the roles file. A malformed file
        raises :class:`InputError` (the app then treats everyone as a viewer and says why)."""
        email = (email or "").strip().lower()
        groups = tuple(str(g) for g in groups)
        role = self.role_map().role_for(email, groups)
        return Principal(id=email, name=name or email, role=role, groups=groups)

    def roles_text(self) -> str:
        """The roles file's text (an example when there is none yet). Admins only."""
        self._require(Role.ADMIN, "view the roles")
        try:
            return self.roles_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return EXAMPLE_ROLES
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"The roles file {self.roles_path} cannot be read ({exc}).") from None

    def save_roles(self, text: str) -> RoleMap:
        """Validate and save the roles file (atomically). Admins only. Raises :class:`InputError`
        naming the problem (nothing saved) when it does not parse, or when the signed-in admin saving
        it would no longer be an admin (they would lock themselves out)."""
        p = self._require(Role.ADMIN, "change roles")
        roles = RoleMap.parse(text, "The new roles")
        if "@" in p.id and not roles.role_for(p.id, p.groups).covers(Role.ADMIN):
            raise InputError(
                f"With these roles {p.id} would no longer be an admin and could not undo it; "
                "keep yourself in admins (or in an admin group). Nothing was saved."
            )
        path = self.roles_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"Could not save the roles file {path} ({exc}); nothing was changed.") from None
        self._audit(
            AuditAction.ROLES_CHANGE,
            str(path),
            f"admins {len(roles.admins())}, e-mail entries {len(roles.emails)}, "
            f"groups {len(roles.groups)}, default {roles.default}",
        )
        self._touch()
        return roles

    # --- the audit trail -------------------------------------------------------------------------
    def audit_trail(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        actor: str | None = None,
        actions: Sequence[str] | None = None,
        limit: int | None = 1000,
    ) -> list[AuditEntry]:
        """Audit entries newest first (filters as in
        :meth:`~rag_core.storage.audit.AuditStore.audit_entries`). Admins only."""
        self._require(Role.ADMIN, "view the audit trail")
        return self.store.audit_entries(since=since, until=until, actor=actor, actions=actions, limit=limit)

    def export_audit(self, fmt: str, entries: Sequence[AuditEntry] | None = None, **filters: Any) -> str:
        """The audit trail (``entries``, or read with ``filters``) as ``"csv"`` (the one
        formula-guarded CSV writer) or ``"json"``. Admins only."""
        self._require(Role.ADMIN, "export the audit trail")
        if fmt not in ("csv", "json"):
            raise InputError(f"Unknown export format {fmt!r}: choose csv or json.")
        rows = list(entries) if entries is not None else self.audit_trail(limit=None, **filters)
        if fmt == "csv":
            return csv_text(AuditEntry.HEADER, (e.row() for e in rows))
        return json.dumps([dict(zip(AuditEntry.HEADER, e.row(), strict=True)) for e in rows], indent=2)


def _article(role: Role) -> str:
    return "an" if str(role)[0] in "aeiou" else "a"
