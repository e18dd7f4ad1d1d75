"""Run ownership: which process is executing a ``"running"`` run, and whether it is still alive.

A run stores the token of the process that created (or resumed) it: ``host|boot id|pid|start
ticks``. A process on another host (several app processes sharing one PostgreSQL history, or
containers) cannot be probed: its run counts as alive while its heartbeat is recent
(:func:`heartbeat_recent`). The pid alone is not enough (pids are reused); the start time in clock ticks since boot
(Linux ``/proc``) and the boot id tell a live owner from a dead one. Best effort, never raises.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["REMOTE_STALE_S", "heartbeat_recent", "owner_alive", "owner_on_this_host", "owner_token"]

#: A run owned by a process on another host (or container) counts as alive while its attempt's
#: heartbeat (written every few seconds while it executes) is younger than this.
REMOTE_STALE_S = 120.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' when unknown/absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()  # fields after "(comm)" start at field 3
    return fields[19] if len(fields) > 19 else ""  # field 22: starttime


def owner_token(pid: int | None = None) -> str:
    """``host|boot id|pid|start ticks``: identifies a process even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}|{_boot_id()}|{pid}|{_start_ticks(pid)}"


def owner_on_this_host(owner: str) -> bool:
    """Whether ``owner`` names a process of this host (or container): only those can be probed."""
    return owner.split("|", 1)[0] == socket.gethostname()


def heartbeat_recent(at: str | None, now: datetime | None = None) -> bool:
    """Whether an ISO timestamp (a run's last heartbeat) is younger than :data:`REMOTE_STALE_S`."""
    if not at:
        return False
    try:
        t = datetime.fromisoformat(at)
    except ValueError:
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - t).total_seconds() < REMOTE_STALE_S


def owner_alive(owner: str) -> bool:
    """Whether the process that wrote ``owner`` is still running (best effort, never raises)."""
    parts = owner.split("|")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    host, boot, pid_s, ticks = parts
    pid = int(pid_s)
    if host != socket.gethostname() or boot != _boot_id():
        return False  # another machine / container or a reboot: that process is gone
    if ticks:
        return _start_ticks(pid) == ticks
    if os.name == "nt":  # no /proc, and os.kill(pid, 0) would terminate the process on Windows
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
