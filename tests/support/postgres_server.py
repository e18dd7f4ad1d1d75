"""A real PostgreSQL server for tests: ``initdb`` in a temp dir, ``pg_ctl start`` on a free loopback port.

One server per test session (:func:`pg_server`), a fresh database per test (:func:`pg_url`, copied
from a template database the store has already migrated, so each test starts empty and fast).

The binaries are found on PATH or in Debian's ``/usr/lib/postgresql/<version>/bin`` (not on PATH).
Without them the PostgreSQL tests are skipped locally, and fail in CI (``CI`` set): ``.ci/run``
installs Debian's ``postgresql`` package. ``initdb`` refuses to run as root: as root the server
runs as the ``postgres`` user (created by the Debian package) in a temp dir it owns.

Also usable on its own: ``python -m tests.support.postgres_server`` starts a server and prints its
URL until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PostgresServer", "find_pg_bin", "pg_server", "pg_url", "start_postgres", "store_target"]

USER = "rag"


def find_pg_bin() -> Path | None:
    """The folder holding initdb / pg_ctl (PATH first, then the newest Debian version), or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway server: ``url(dbname)`` gives a SQLAlchemy URL (trust auth, no password)."""

    bin_dir: Path
    root: Path
    port: int
    run_as: str | None
    _counter: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def create_database(self, template: str | None = None) -> str:
        """A new, empty database (a copy of ``template`` when given); returns its URL."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        self.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(Exception):
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args], self.run_as, check)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.pg_ctl("stop", "-m", "fast", "-w", "-t", "30", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(cmd: list[str], run_as: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, Any] = {}
    if run_as:
        pw = pwd.getpwnam(run_as)
        kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], env={**os.environ, "HOME": pw.pw_dir})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/", **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


def start_postgres(bin_dir: Path | None = None, *, fsync: bool = False) -> PostgresServer:
    """initdb + pg_ctl start on a free 127.0.0.1 port; raises RuntimeError when it cannot.

    ``fsync=False`` (tests) trades durability for speed; benchmarks can keep the default (on)."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql")
    run_as = None
    if os.geteuid() == 0:  # initdb refuses root: use the unprivileged postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError("running as root and there is no 'postgres' user to run the server") from exc
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    try:
        (root / "sock").mkdir()
        if run_as:
            pw = pwd.getpwnam(run_as)
            for p in (root, root / "sock"):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        server = PostgresServer(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(server.data_dir),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
        )
        options = (
            f"-p {server.port} -k {server.socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=60"
        )
        if not fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for attempt in range(3):  # the free port may be taken between probe and start
            proc = server.pg_ctl(
                "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start", check=False
            )
            if proc.returncode == 0:
                break
            server.port = _free_port()
            options = options.replace(options.split()[1], str(server.port), 1)
            time.sleep(0.2 * (attempt + 1))
        else:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stdout}{proc.stderr}\n{log[-2000:]}")
        return server
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


# --- pytest fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (skipped locally without the binaries)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb) are missing in CI: .ci/run installs 'postgresql'.")
        pytest.skip("PostgreSQL binaries (initdb) not installed; `apt-get install postgresql` to run these")
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """A database the store has migrated once: the template of every test's fresh database."""
    from rag_core.storage import HistoryStore

    url = pg_server.create_database()
    HistoryStore(url).close()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def pg_url(pg_server: PostgresServer, pg_template: str) -> Iterator[str]:
    """The URL of a fresh, migrated, empty history database on the session's server."""
    url = pg_server.create_database(template=pg_template)
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's history store lives: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "history-store" / "history.sqlite3"
    return str(request.getfixturevalue("pg_url"))


if __name__ == "__main__":  # pragma: no cover - manual use
    srv = start_postgres()
    try:
        print(srv.create_database(), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
