"""Real-browser end-to-end fixtures: a Streamlit server on a free port + Debian's Chromium.

Follows the pattern of Streamlit's own ``e2e_playwright/conftest.py``: start ``streamlit run`` as
a subprocess on a free port, poll ``/_stcore/health`` (bounded), hand the URL to the tests, wait
for ``[data-test-script-state='notRunning']`` after every navigation/interaction, and stop the
server at the end.

- The browser is Debian's ``/usr/bin/chromium`` driven by the ``playwright`` pip package
  (``playwright install`` downloads browsers and does not work here). Install it with
  ``scripts/install_browser.sh``. When it is missing the tests are *skipped* locally and
  *fail* when ``CI`` is true, so CI can never pass by skipping.
- Each server gets its own temporary ``RAG_DATA_DIR``, an empty secrets file (a developer's real
  API key is never picked up), no ``ANTHROPIC_API_KEY`` and offline env flags.
- Screenshots go to ``tests/e2e/artifacts/`` (git-ignored by a ``.gitignore`` the helper writes
  there); with ``SAVE_README_SHOTS=1`` they are copied to ``docs/screenshots/`` too.

Every test in this directory is marked ``e2e`` automatically (select with ``-m e2e``, exclude
with ``-m "not e2e"``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
APP_PATH = ROOT / "app.py"
ARTIFACTS_DIR = E2E_DIR / "artifacts"
README_SHOTS_DIR = ROOT / "docs" / "screenshots"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
)
VIEWPORT = {"width": 1280, "height": 900}

#: Longest wait for the server's health endpoint, seconds.
SERVER_START_TIMEOUT_S = 60.0
#: Pause between health polls, seconds.
HEALTH_POLL_INTERVAL_S = 0.25
#: Longest wait for the server to exit after SIGTERM before it is killed, seconds.
SERVER_STOP_TIMEOUT_S = 10.0
#: Default Playwright timeout for one action / wait, milliseconds.
DEFAULT_TIMEOUT_MS = 30_000
#: Longest wait for a script run to finish in :func:`wait_for_app`, milliseconds.
APP_RUN_TIMEOUT_MS = 60_000


def in_ci() -> bool:
    """True when the ``CI`` environment variable says so (``true``/``1``/``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip the test locally; fail it in CI (a skipped browser test must not pass CI)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> Path:
    """Path of Debian's Chromium; skips (locally) or fails (CI) when it is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        skip_or_fail(f"{CHROMIUM} is missing: run scripts/install_browser.sh")
    return CHROMIUM


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamlitServer:
    """``python -m streamlit run <app>`` on a free loopback port, stopped by :meth:`stop`.

    Output goes to ``log_path``; if the server exits or is not healthy within
    ``SERVER_START_TIMEOUT_S``, :meth:`start` raises ``RuntimeError`` with the log's tail.
    """

    def __init__(
        self,
        app: Path,
        data_dir: Path,
        *,
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
        log_dir: Path = ARTIFACTS_DIR,
    ) -> None:
        self.app = app
        self.data_dir = data_dir
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        _ensure_artifacts_dir(log_dir)
        self.log_path = log_dir / f"streamlit-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
            env.pop(key, None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secrets = self.data_dir / "secrets.toml"
        secrets.touch()
        env.update(
            {
                "RAG_DATA_DIR": str(self.data_dir),
                "RAG_SECRETS_FILE": str(secrets),
                "RAGAS_DO_NOT_TRACK": "true",
                "ANONYMIZED_TELEMETRY": "False",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> str:
        """Start the server and block until ``/_stcore/health`` answers ``ok``; returns the URL."""
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(self.app),
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            "--secrets.files",
            str(self.data_dir / "secrets.toml"),
        ]
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.cwd,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()  # the child holds its own descriptor
        self._wait_healthy()
        return self.url

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        health = f"{self.url}/_stcore/health"
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {self.proc.returncode} before it was healthy.\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if resp.status == 200 and resp.read().strip() == b"ok":
                        return
                    last_error = f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(HEALTH_POLL_INTERVAL_S)
        self.stop()
        raise RuntimeError(
            f"streamlit was not healthy at {health} within {SERVER_START_TIMEOUT_S:.0f} s "
            f"(last: {last_error}).\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "--- streamlit log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, wait up to ``SERVER_STOP_TIMEOUT_S``, then SIGKILL. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=SERVER_STOP_TIMEOUT_S)


#: Resolves after the browser has painted twice more (the frame in progress and the next one).
NEXT_PAINT_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def next_paint(page) -> None:
    """Wait until the page has painted what it has received (two animation frames): an event,
    not a fixed sleep. Headless Chromium keeps producing frames, so this returns promptly."""
    page.evaluate(NEXT_PAINT_JS)


def wait_for_app(page, timeout_ms: int = APP_RUN_TIMEOUT_MS) -> None:
    """Block until the Streamlit app is connected and its script run has finished.

    Waits for ``[data-testid='stApp']`` and then for ``data-test-script-state='notRunning'``
    (Streamlit's own e2e signal that a run completed), then for the next paint so the last
    deltas are on screen. Call it after ``page.goto`` and after every interaction that triggers
    a rerun. Raises Playwright's ``TimeoutError`` if the run does not finish within ``timeout_ms``.
    """
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-connection-state='CONNECTED']",
        timeout=timeout_ms,
        state="attached",
    )
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-script-state='notRunning']",
        timeout=timeout_ms,
        state="attached",
    )
    next_paint(page)


def _ensure_artifacts_dir(path: Path = ARTIFACTS_DIR) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if path == ARTIFACTS_DIR and not ignore.exists():
        ignore.write_text("# Written by tests/e2e/conftest.py: screenshots and logs stay local.\n*\n")
    return path


def save_screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``tests/e2e/artifacts/<name>.png`` and return its path.

    ``name`` is reduced to ``[A-Za-z0-9_.-]``. With ``SAVE_README_SHOTS=1`` the PNG is also
    copied to ``docs/screenshots/<name>.png`` (for the README). Raises ``AssertionError`` if
    the file written is empty.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "screenshot"
    path = _ensure_artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 0, f"screenshot {path} is empty"
    if os.environ.get("SAVE_README_SHOTS") == "1":
        README_SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS_DIR / path.name)
    return path


# --------------------------------------------------------------------------- hooks & fixtures


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as ``e2e``."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., StreamlitServer]]:
    """Factory: ``start_server(app_path, **kw)`` starts a server (own temp data dir) and returns it.

    Every server started through it is stopped at the end of the session.
    """
    servers: list[StreamlitServer] = []

    def _start(app: Path, *, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> StreamlitServer:
        server = StreamlitServer(app, tmp_path_factory.mktemp("e2e-data"), cwd=cwd, env=env)
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="session")
def app_server(start_server: Callable[..., StreamlitServer]) -> StreamlitServer:
    """The real ``app.py`` served with a fresh temp ``RAG_DATA_DIR`` (skips/fails if app.py is absent)."""
    if not APP_PATH.is_file():
        skip_or_fail(f"{APP_PATH.name} does not exist yet")
    return start_server(APP_PATH)


@pytest.fixture(scope="session")
def app_url(app_server: StreamlitServer) -> str:
    """Base URL of :func:`app_server`, e.g. ``http://127.0.0.1:34567``."""
    return app_server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium (Debian's) driven by Playwright's sync API, shared by the session."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(
            executable_path=str(executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            timeout=DEFAULT_TIMEOUT_MS,
        )
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser context + page per test (no shared cookies/storage), closed afterwards."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def screenshot(page) -> Callable[..., Path]:
    """``screenshot(name)`` saves the current page (see :func:`save_screenshot`)."""
    return lambda name, **kw: save_screenshot(page, name, **kw)
