"""The design's one hard boundary, checked at run time: ``rag_core`` never imports streamlit.

import-linter (``[tool.importlinter]`` in pyproject.toml) checks the static imports; this test
checks what actually lands in ``sys.modules`` — lazy imports and third-party libraries included —
when the CLI, the workspace facade and the run executor are imported, in a fresh interpreter so
that nothing the test session imported (the app tests load streamlit) can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

ENTRY_POINTS = ("rag_core.workspace", "rag_core.cli", "rag_core.runs.executor")

PROBE = f"""
import json, sys
for name in {ENTRY_POINTS!r}:
    __import__(name)
print(json.dumps(sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))))
"""


def test_rag_core_entry_points_do_not_import_streamlit() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    leaked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert leaked == [], f"importing {', '.join(ENTRY_POINTS)} loaded streamlit: {leaked[:5]}"
