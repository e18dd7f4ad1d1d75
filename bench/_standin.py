"""Helpers for benchmarks: the Messages API stand-in in a separate process.

Running the stand-in in its own process keeps its CPU work (aiohttp, JSON) off the benchmark
process's GIL, so what we measure is the client side: the SDK plus the engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StandIn:
    """A running stand-in: where it listens, and its counters on demand."""

    base_url: str
    process: subprocess.Popen[str] | None = None

    def stats(self) -> dict[str, Any]:
        """``GET /_fake/stats``: count, in_flight, peak_concurrency, by_fault."""
        with urllib.request.urlopen(self.base_url + "/_fake/stats", timeout=5) as resp:
            return json.loads(resp.read().decode())


@contextmanager
def standin_process(*, startup_timeout_s: float = 60.0, **options: Any) -> Iterator[StandIn]:
    """Run ``python -m tests.support.anthropic_server`` with ``--<option> value`` flags.

    Option names use underscores (``rate_429=0.1`` → ``--rate-429 0.1``); ``True`` passes a bare
    flag (``ragas=True`` → ``--ragas``), ``None``/``False`` nothing. Raises RuntimeError if
    the server does not print its READY line within ``startup_timeout_s``. The process is
    terminated (then killed after 5 s) on exit.
    """
    args = [sys.executable, "-m", "tests.support.anthropic_server", "--port", "0"]
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = f"--{name.replace('_', '-')}"
        args += [flag] if value is True else [flag, str(value)]
    # `-m` from the project root puts the root on the child's sys.path: no PYTHONPATH needed.
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(startup_timeout_s)
    try:
        if not line or not line[0].startswith("READY "):
            raise RuntimeError(f"stand-in did not start (got {line[:1]!r}, exit code {proc.poll()})")
        yield StandIn(line[0].split()[1].strip(), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
