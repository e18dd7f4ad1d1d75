"""Run ownership: which process is executing a ``"running"`` run, and whether it is still alive.

A run stores the token of the process that created (or resumed) it: ``host|boot id|pid|start
ticks``. The pid alone is not enough (pids are reused); the start time in clock ticks since boot
(Linux ``/proc``) and the boot id tell a live owner from a dead one. Best effort, never raises.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["owner_alive", "owner_token"]


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
