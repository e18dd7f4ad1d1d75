"""Who is acting, and what they may do: roles, the acting principal, the roles file.

Rules
- Three roles, ordered: ``viewer`` < ``analyst`` < ``admin``. A role may do everything the roles
  below it may (:meth:`Role.covers`).

  ========  ==================================================================================
  viewer    read history, results, comparisons, coverage
  analyst   upload/replace documents, edit question sets and configurations, start runs and
            sweeps, cancel/resume/delete *their own* runs, label answers, generate questions
  admin     delete documents and question sets, cancel/resume/delete *anyone's* run, edit the
            roles file, read and export the audit trail
  ========  ==================================================================================
- A :class:`Principal` is the acting person (or the CLI). Signed-in users are mapped to a role by
  the roles file (:class:`RoleMap`): their e-mail, their e-mail's domain or one of their groups
  (the ``groups`` claim of the sign-in token); the highest role that matches wins; anyone else
  gets the file's ``default`` (``viewer`` unless set).
- Without sign-in the app is single-user: :data:`LOCAL_ADMIN` (one per browser session, see
  :attr:`Principal.session`); the CLI acts as :data:`CLI_ADMIN`.
- The acting principal of a facade call is :func:`current_principal`: the one set with
  :func:`acting_as` around the call (the app does this per browser session, see
  :meth:`rag_core.workspace_access.AccessMixin.acting_as`), else the workspace's own default.
- A roles file that cannot be read or parsed raises :class:`~rag_core.errors.InputError` naming the
  file, the line and what to fix; nothing is guessed.
"""

from __future__ import annotations

import contextlib
import contextvars
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rag_core.errors import InputError

__all__ = [
    "CLI_ADMIN",
    "LOCAL_ADMIN",
    "AuditAction",
    "Principal",
    "Role",
    "RoleMap",
    "acting_as",
    "current_principal",
]


class Role(StrEnum):
    """What a principal may do (see the module's table). Ordered: viewer < analyst < admin."""

    VIEWER = "viewer"
    ANALYST = "analyst"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def covers(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may."""
        return self.rank >= Role(needed).rank

    @classmethod
    def parse(cls, value: Any, where: str) -> Role:
        """``value`` as a role (case-insensitive, ``admins``/``analysts``/``viewers`` accepted);
        :class:`InputError` naming ``where`` otherwise."""
        text = str(value).strip().lower().removesuffix("s")
        try:
            return cls(text)
        except ValueError:
            raise InputError(f"{where}: {value!r} is not a role; use viewer, analyst or admin.") from None


_RANKS = {Role.VIEWER: 0, Role.ANALYST: 1, Role.ADMIN: 2}


class AuditAction(StrEnum):
    """What an audit-trail entry records (the ``action`` column; filters and exports use these)."""

    DOCUMENT_UPLOAD = "document.upload"
    DOCUMENT_REPLACE = "document.replace"
    DOCUMENT_REINDEX = "document.reindex"
    DOCUMENT_DELETE = "document.delete"
    DOCUMENT_UPLOAD_CANCEL = "document.upload_cancel"
    COLLECTION_CREATE = "collection.create"
    COLLECTION_DELETE = "collection.delete"
    QUESTION_SET_SAVE = "question_set.save"
    QUESTION_SET_RENAME = "question_set.rename"
    QUESTION_SET_BIND = "question_set.bind"
    QUESTION_SET_DELETE = "question_set.delete"
    CONFIG_SAVE = "config.save"
    CONFIG_DELETE = "config.delete"
    ANSWER_LABEL = "answer.label"
    ANSWER_UNLABEL = "answer.unlabel"
    RUN_START = "run.start"
    RUN_CANCEL = "run.cancel"
    RUN_RESUME = "run.resume"
    RUN_DELETE = "run.delete"
    RUN_RENAME = "run.rename"
    SWEEP_START = "sweep.start"
    SWEEP_CANCEL = "sweep.cancel"
    QUESTIONS_GENERATE = "questions.generate"
    QUESTIONS_GENERATE_CANCEL = "questions.generate_cancel"
    QUESTIONS_REVIEW = "questions.review"
    """A generated pair edited or rejected in the review queue (accepting one saves a question set)."""
    SOURCES_CONFIRM = "sources.confirm"
    """An analyst confirmed the expected answer of a question flagged stale."""
    ROLES_CHANGE = "roles.change"
    SIGN_IN = "session.sign_in"
    DENIED = "access.denied"


@dataclass(frozen=True)
class Principal:
    """The person (or program) acting."""

    id: str
    """Stable identity: the signed-in e-mail (lower case), or ``local-admin`` / ``local-admin (CLI)``."""
    name: str
    """Display name (the token's ``name`` claim, else the id)."""
    role: Role
    """What they may do."""
    session: str = ""
    """Single-user mode only: the browser session, so two tabs of the local admin do not adopt each
    other's runs. Empty for signed-in users (their runs follow them across tabs) and the CLI."""
    groups: tuple[str, ...] = field(default=(), compare=False)
    """Groups from the sign-in token (shown to admins; roles were derived from them)."""

    @property
    def owner_key(self) -> str:
        """What a run stores as its starter, and what ownership is compared on."""
        return f"{self.id}#{self.session}" if self.session else self.id

    @property
    def label(self) -> str:
        """``"Ana Lyst <ana@example.org>"`` or ``"local admin"`` (for the sidebar and audit views)."""
        if self.name and self.name != self.id and "@" in self.id:
            return f"{self.name} <{self.id}>"
        return self.name or self.id

    def can(self, needed: Role) -> bool:
        return self.role.covers(needed)

    def owns(self, started_by: str) -> bool:
        """Whether a run whose starter is ``started_by`` is this principal's own."""
        return bool(started_by) and started_by == self.owner_key


#: The single user of an app served without sign-in (on 127.0.0.1).
LOCAL_ADMIN = Principal(id="local-admin", name="local admin", role=Role.ADMIN)
#: The command line.
CLI_ADMIN = Principal(id="local-admin (CLI)", name="local-admin (CLI)", role=Role.ADMIN)


def owner_display(started_by: str) -> str:
    """A stored starter for people: ``''`` → ``"unknown"`` (runs recorded before sign-in, sweep runs), the session suffix
    of a local admin dropped."""
    if not started_by:
        return "unknown"
    return started_by.split("#", 1)[0]


# --------------------------------------------------------------------------------------------
# The acting principal of the current call
# --------------------------------------------------------------------------------------------
_CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("rag_principal", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Make ``principal`` the acting one for the calls inside the block (this thread/context only)."""
    token = _CURRENT.set(principal)
    try:
        yield principal
    finally:
        _CURRENT.reset(token)


def current_principal(default: Principal) -> Principal:
    """The principal set by :func:`acting_as`, else ``default``."""
    return _CURRENT.get() or default


# --------------------------------------------------------------------------------------------
# The roles file
# --------------------------------------------------------------------------------------------
#: Written when an admin opens the roles editor and no file exists yet.
EXAMPLE_ROLES = """\
# Who may do what once sign-in is on. E-mails are matched case-insensitively; an entry
# starting with "@" matches a whole domain. The highest matching role wins.
[roles]
admins = ["it-admin@example.org"]
analysts = ["@hr.example.org"]
viewers = []
# Groups from the sign-in token's "groups" claim (Entra ID: group object ids or names).
groups = { "hr-admins" = "admin", "hr-analysts" = "analyst" }
# Role of a signed-in user nobody listed.
default = "viewer"
"""

_LISTS = {"admins": Role.ADMIN, "analysts": Role.ANALYST, "viewers": Role.VIEWER}
_KEYS = {*_LISTS, "groups", "default", "groups_claim"}


@dataclass(frozen=True)
class RoleMap:
    """Who gets which role (parsed from the roles file; see :data:`EXAMPLE_ROLES`)."""

    emails: Mapping[str, Role] = field(default_factory=dict)
    """Lower-case e-mail (or ``@domain``) → role."""
    groups: Mapping[str, Role] = field(default_factory=dict)
    """Group name/id → role."""
    default: Role = Role.VIEWER
    """Role of a signed-in user nobody listed."""
    groups_claim: str = "groups"
    """The token claim holding the user's groups."""

    def role_for(self, email: str, groups: Iterable[str] = ()) -> Role:
        """The highest role ``email`` (or its domain) or one of ``groups`` has; else the default."""
        email = (email or "").strip().lower()
        found = [self.default]
        if email:
            found.append(self.emails.get(email, Role.VIEWER))
            if "@" in email:
                found.append(self.emails.get("@" + email.rsplit("@", 1)[1], Role.VIEWER))
        found += [self.groups.get(str(g), Role.VIEWER) for g in groups]
        return max(found, key=lambda r: r.rank)

    def admins(self) -> list[str]:
        return sorted(e for e, r in self.emails.items() if r == Role.ADMIN)

    @classmethod
    def parse(cls, text: str, source: str = "the roles file") -> RoleMap:
        """Parse roles TOML. Raises :class:`InputError` naming ``source`` and what is wrong."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{source} is not valid TOML ({exc}); fix it or restore the example.") from None
        roles = data.get("roles", {})
        if not isinstance(roles, dict):
            raise InputError(f"{source}: [roles] must be a table (see the README's Security section).")
        unknown = sorted(set(roles) - _KEYS)
        if unknown:
            raise InputError(
                f"{source}: unknown key(s) {', '.join(unknown)} in [roles]; use admins, analysts, "
                "viewers, groups, default, groups_claim."
            )
        emails: dict[str, Role] = {}
        for key in ("viewers", "analysts", "admins"):  # ascending, so a higher listing wins
            entries = roles.get(key, [])
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise InputError(f'{source}: roles.{key} must be a list of e-mails, e.g. ["a@example.org"].')
            for e in entries:
                e = e.strip().lower()
                if not e or ("@" not in e):
                    raise InputError(f"{source}: roles.{key} has {e!r}, which is not an e-mail or @domain.")
                emails[e] = _LISTS[key]
        groups_raw = roles.get("groups", {})
        if not isinstance(groups_raw, dict):
            raise InputError(f'{source}: roles.groups must be a table, e.g. {{ "hr-admins" = "admin" }}.')
        groups = {str(g): Role.parse(r, f"{source}: roles.groups.{g}") for g, r in groups_raw.items()}
        default = Role.parse(roles.get("default", "viewer"), f"{source}: roles.default")
        claim = roles.get("groups_claim", "groups")
        if not isinstance(claim, str) or not claim.strip():
            raise InputError(f'{source}: roles.groups_claim must be a claim name such as "groups".')
        return cls(emails=emails, groups=groups, default=default, groups_claim=claim.strip())

    @classmethod
    def load(cls, path: Path) -> RoleMap:
        """The roles in ``path``; an empty map (everyone the default, viewer) when there is no file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"The roles file {path} cannot be read ({exc}).") from None
        return cls.parse(text, f"The roles file {path}")
