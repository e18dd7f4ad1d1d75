"""CLI: ``audit [--json | --csv] [--since DATE] [--until DATE] [--actor TEXT] [--action NAME]``.

The CLI acts as the local admin (:data:`~rag_core.access.CLI_ADMIN`, "local-admin (CLI)"): it may do
everything, and what it changes is written to the audit trail under that name. ``audit`` prints the
trail newest first (tab-separated), or writes it as JSON (``--json``, to stdout or a file) or as CSV
through the project's one formula-guarded writer (``--csv FILE``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rag_core.access import CLI_ADMIN, AuditAction
from rag_core.errors import InputError
from rag_core.settings import Settings

__all__ = ["add_parsers", "cli_workspace", "cmd_audit", "record_cli_action", "record_cli_run"]


def add_parsers(sub: Any) -> None:
    """Register ``audit`` on the CLI's sub-parsers."""
    s = sub.add_parser("audit", help="show or export the audit trail (who did what, when)")
    s.add_argument("--since", help="only entries at or after this date/time (ISO, e.g. 2026-12-01)")
    s.add_argument("--until", help="only entries before this date/time (ISO)")
    s.add_argument("--actor", help="only entries whose actor contains this text (e.g. an e-mail)")
    s.add_argument(
        "--action",
        action="append",
        default=[],
        choices=[a.value for a in AuditAction],
        metavar="ACTION",
        help=f"only this action (repeatable): {', '.join(a.value for a in AuditAction)}",
    )
    s.add_argument("--limit", type=int, default=None, help="at most this many entries (newest first)")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON (to FILE, or stdout)")
    out.add_argument("--csv", metavar="FILE", help="write CSV (formula-guarded) to FILE ('-' = stdout)")
    s.set_defaults(func=cmd_audit)


def _iso(value: str | None, flag: str) -> str | None:
    if not value:
        return None
    from datetime import datetime

    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{flag} {value!r}: use an ISO date or date-time such as 2026-12-01 or 2026-12-01T09:30."
        ) from None
    return value


def cli_workspace(settings: Settings) -> Any:
    """The workspace as the CLI's admin (``local-admin (CLI)`` in the audit trail): every command
    that changes something through the workspace uses this one."""
    from rag_core.workspace import Workspace

    return Workspace(settings, principal=CLI_ADMIN)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    ws = cli_workspace(settings)
    try:
        entries = ws.audit_trail(
            since=_iso(args.since, "--since"),
            until=_iso(args.until, "--until"),
            actor=args.actor,
            actions=args.action or None,
            limit=args.limit,
        )
        if args.json is not None or args.csv is not None:
            fmt, dest = ("json", args.json) if args.json is not None else ("csv", args.csv)
            text = ws.export_audit(fmt, entries)
            if dest == "-":
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
            else:
                from pathlib import Path

                Path(dest).write_text(text, encoding="utf-8", newline="")
                print(f"{len(entries)} audit entries written to {dest}", file=sys.stderr)
            return 0
        if not entries:
            print("no audit entries", file=sys.stderr)
        for e in entries:
            print("\t".join(str(v) for v in e.row()))
        return 0
    finally:
        ws.close()


def record_cli_action(store: Any, action: AuditAction, target: str, detail: str = "") -> None:
    """Write one audit entry as the CLI (``local-admin (CLI)``) for a change made from the command line."""
    p = CLI_ADMIN
    store.append_audit(actor=p.id, role=str(p.role), action=str(action), target=target, detail=detail)


def record_cli_run(store: Any, run_id: int, action: AuditAction, detail: str = "") -> None:
    """Record that the CLI started (or resumed) ``run_id``: its starter and the audit entry."""
    p = CLI_ADMIN
    if action == AuditAction.RUN_START:
        store.set_run_started_by(
            run_id, p.owner_key, audit=(p.id, str(p.role), str(action), f"run #{run_id}", detail)
        )
    else:
        store.append_audit(
            actor=p.id, role=str(p.role), action=str(action), target=f"run #{run_id}", detail=detail
        )
