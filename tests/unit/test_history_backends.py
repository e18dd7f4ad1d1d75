"""The history store on its two databases: legacy SQLite files, Alembic revisions, PostgreSQL errors,
the write lock's guarantee, and ``RAG_DATABASE_URL``.

PostgreSQL tests use a real server started by tests/support/postgres_server.py.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from rag_core.errors import InputError, StorageError
from rag_core.experiment import AssistantConfig
from rag_core.models import QAItem
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.storage.dialects import WRITE_LOCK, to_pyformat
from rag_core.storage.migrate import MIGRATIONS_DIR
from rag_core.storage.schema import LEGACY_VERSION, MIGRATIONS, SCHEMA_VERSION
from tests.support.postgres_server import PostgresServer

ITEMS = [QAItem("How many days of leave?", "25 days."), QAItem("Who approves expenses?", "Your manager.")]


def _run(store: HistoryStore) -> int:
    return store.create_run(
        question_set=None, backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )


def _pg_admin(url: str, sql: str) -> None:
    """Run a statement on the test database as its (superuser) owner, outside the store."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


# --- migrations --------------------------------------------------------------------------------------
def test_the_legacy_list_is_frozen_and_new_schema_changes_are_revisions() -> None:
    assert len(MIGRATIONS) == LEGACY_VERSION, (
        "MIGRATIONS is frozen: turn the new entry into an Alembic revision "
        "(rag_core/storage/migrations/__init__.py says how)"
    )
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    assert files and files[0].startswith(f"{LEGACY_VERSION:04d}_")
    previous = None
    for name in files:
        text = (MIGRATIONS_DIR / "versions" / name).read_text()
        assert re.search(rf'^revision = "{name[:4]}"', text, re.M), name
        expected_down = "None" if previous is None else f'"{previous}"'
        assert re.search(rf"^down_revision = {expected_down}", text, re.M), name
        previous = name[:4]
    assert int(previous or 0) == SCHEMA_VERSION


@pytest.mark.parametrize("version", range(1, LEGACY_VERSION + 1))
def test_a_sqlite_file_of_every_legacy_version_opens_and_keeps_its_run(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.sqlite3"
    raw = sqlite3.connect(path)
    for migration in MIGRATIONS[:version]:
        for statement in migration:
            raw.execute(statement)
    raw.execute(f"PRAGMA user_version = {version}")
    raw.execute(
        "INSERT INTO runs(created_at, backend, mode, suite, status, config, n_questions) "
        "VALUES ('2026-11-01T00:00:00+00:00', 'offline', 'async', 'offline', 'completed', '{}', 1)"
    )
    raw.execute(
        "INSERT INTO results(run_id, idx, question, ground_truth, answer) VALUES (1, 0, 'Q?', 'A', 'A')"
    )
    raw.commit()
    raw.close()
    with HistoryStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        (run,) = store.list_runs()
        assert store.get_results(run.id)[0].answer == "A"
        new = _run(store)  # and it takes new runs, numbered after the old one
        assert new == run.id + 1
        store.save_verdict(run.id, 0, "correct")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (f"{SCHEMA_VERSION:04d}",)
        ]


def test_a_new_sqlite_file_matches_an_upgraded_legacy_one(tmp_path: Path) -> None:
    HistoryStore(tmp_path / "new.sqlite3").close()
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    for statement in MIGRATIONS[0]:
        old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    HistoryStore(tmp_path / "old.sqlite3").close()

    def schema(name: str) -> list[tuple[str, str]]:
        with sqlite3.connect(tmp_path / name) as raw:
            return raw.execute(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()

    assert schema("new.sqlite3") == schema("old.sqlite3")


def test_a_database_from_a_newer_app_is_refused(store_target: Path | str) -> None:
    with HistoryStore(store_target) as store, store._tx("test", write=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (f"{SCHEMA_VERSION + 3:04d}",))
    with pytest.raises(StorageError, match="newer version of this app"):
        HistoryStore(store_target)


# --- the write lock ---------------------------------------------------------------------------------
def test_read_then_write_transactions_never_interleave(store_target: Path | str) -> None:
    """Two connections (as two processes would) number attempts with MAX()+1 and configuration
    versions with latest+1 at the same time: every number is given once, no write fails."""
    a, b = HistoryStore(store_target), HistoryStore(store_target)
    run_id = _run(a)
    got: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=10)

    def work(store: HistoryStore, tag: str) -> None:
        try:
            barrier.wait()
            for i in range(25):
                got.append(store.start_attempt(run_id))
                store.save_config(
                    "shared", AssistantConfig(answer_model="claude-sonnet-4-5", system_prompt=f"{tag} {i}")
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, t)) for s, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert sorted(got) == list(range(1, 51))
        assert [v.version for v in a.config_versions("shared")] == list(range(1, 51))
    finally:
        a.close()
        b.close()


# --- PostgreSQL: errors an analyst can act on ---------------------------------------------------------
def test_a_held_write_lock_is_reported_as_locked_by_another_process(pg_url: str) -> None:
    store = HistoryStore(pg_url, busy_timeout_s=0.3)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as other:  # another process in the middle of a write
        other.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        with pytest.raises(StorageError, match="locked by another process") as info:
            _run(store)
        assert "PostgreSQL history database" in str(info.value)
        assert store.list_runs() == []  # reads never wait for a writer
    assert _run(store) == 1  # the lock is gone: nothing was half-written
    store.close()


def test_an_unreachable_server_is_named_and_its_password_never_shown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    password = "pw-" + "z" * 12
    with pytest.raises(StorageError) as info:
        HistoryStore(f"postgresql+psycopg://rag:{password}@127.0.0.1:{port}/rag", busy_timeout_s=2)
    text = str(info.value)
    assert f"cannot reach the PostgreSQL server at 127.0.0.1:{port}" in text
    assert "RAG_DATABASE_URL" in text and password not in text and "***" in text


def test_a_missing_database_is_named(pg_server: PostgresServer) -> None:
    with pytest.raises(StorageError, match="has no database 'no_such_db'"):
        HistoryStore(pg_server.url("no_such_db"))


def test_a_read_only_database_is_reported(pg_url: str) -> None:
    with HistoryStore(pg_url) as store:
        _run(store)
    _pg_admin(pg_url, f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
    with HistoryStore(pg_url) as store:
        assert len(store.list_runs()) == 1  # reading still works
        with pytest.raises(StorageError, match="is read-only"):
            _run(store)


def test_a_dropped_connection_is_reopened(pg_url: str) -> None:
    with HistoryStore(pg_url) as store:
        _run(store)
        _pg_admin(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rag-history'",
        )
        assert len(store.list_runs()) == 1  # e.g. the server restarted: the next call reconnects
        assert _run(store) == 2


def test_ids_come_from_the_database_and_nul_characters_are_stored(pg_url: str) -> None:
    with HistoryStore(pg_url) as store:
        ids = [_run(store) for _ in range(3)]
        assert ids == [1, 2, 3]
        store.delete_run(3, force=True)
        assert _run(store) == 4  # never reused, like SQLite's AUTOINCREMENT
        store.save_answer(1, 0, answer="before\x00after")
        assert store.get_results(1)[0].answer == "before\ufffdafter"  # PostgreSQL refuses NUL in text


# --- SQL translation and settings ------------------------------------------------------------------
def test_qmark_sql_is_translated_outside_quotes_only() -> None:
    sql = "SELECT '?', \"a?b\", x FROM t WHERE y = ? AND z LIKE 'p%' AND w = ?"
    assert to_pyformat(sql) == "SELECT '?', \"a?b\", x FROM t WHERE y = %s AND z LIKE 'p%%' AND w = %s"
    assert to_pyformat("SELECT 'it''s ?' WHERE a = ?") == "SELECT 'it''s ?' WHERE a = %s"


def test_database_url_setting(tmp_path: Path) -> None:
    password = "pw-" + "q" * 12
    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_DATABASE_URL": f"postgres://rag:{password}@db:5432/rag"}
    s = Settings.load(env=env, secrets_path=tmp_path / "none.toml")
    assert s.history_target == f"postgresql+psycopg://rag:{password}@db:5432/rag"
    assert password not in repr(s)
    plain = Settings.load(env={"RAG_DATA_DIR": str(tmp_path)}, secrets_path=tmp_path / "none.toml")
    assert plain.history_target == plain.db_path
    with pytest.raises(InputError, match="RAG_DATABASE_URL must be a PostgreSQL URL"):
        Settings.load(env={**env, "RAG_DATABASE_URL": "mysql://x@y/z"}, secrets_path=tmp_path / "none.toml")


def test_a_run_of_another_host_is_alive_while_its_heartbeat_is_fresh(store_target: Path | str) -> None:
    """Several app processes on several hosts (or containers) share one history: a run executing
    elsewhere is never marked interrupted while it beats, and is once its heartbeat stops."""
    with HistoryStore(store_target) as store:
        run_id = _run(store)
        store.start_attempt(run_id)
        with store._tx("test", write=True) as conn:
            conn.execute("UPDATE runs SET owner = ? WHERE id = ?", ("another-host|boot|4242|99", run_id))
        assert store.mark_interrupted() == []
        with pytest.raises(StorageError, match="still running"):
            store.delete_run(run_id)
        with store._tx("test", write=True) as conn:
            conn.execute("UPDATE run_attempts SET heartbeat_at = ?", ("2026-01-01T00:00:00+00:00",))
        assert store.mark_interrupted() == [run_id]
        assert store.get_run(run_id).status == "interrupted"


def test_another_process_sees_a_runs_progress_as_it_is_committed(
    store_target: Path | str, settings: Settings
) -> None:
    """What the Run page of another app process shows of a run it does not execute."""
    from rag_core.models import MetricScore
    from rag_core.workspace import Workspace

    writer = HistoryStore(store_target)  # the process executing the run
    ws = Workspace(settings, store=HistoryStore(store_target))  # another app process
    try:
        run_id = _run(writer)
        _owned_by_another_process(writer, run_id)
        attempt = writer.start_attempt(run_id)
        assert ws.runs_elsewhere() == [run_id]
        writer.save_answer(run_id, 0, answer="25 days.")
        writer.save_attempt(
            run_id, attempt, {"elapsed_s": 2.0, "phases": {"retrieval": 0.1, "generation": 1.9}}
        )
        p = ws.shared_progress(run_id)
        assert p is not None and (p.phase, p.done, p.total, p.finished) == ("generation", 1, 2, False)
        writer.save_answer(run_id, 1, error="timed out", error_kind="Timeout")
        writer.save_scores(run_id, 0, [MetricScore("rouge_l", 0.5)])
        writer.save_attempt(
            run_id, attempt, {"elapsed_s": 3.0, "phases": {"generation": 2.0, "evaluation": 1.0}}
        )
        p = ws.shared_progress(run_id)
        assert p is not None and (p.phase, p.done, p.errors) == ("evaluation", 1, 1)
        writer.update_run(run_id, status="completed", finished=True)
        p = ws.shared_progress(run_id)
        assert p is not None and p.finished and ws.runs_elsewhere() == []
        assert ws.shared_progress(run_id + 100) is None
    finally:
        ws.close()
        writer.close()


def _owned_by_another_process(store: HistoryStore, run_id: int) -> None:
    """Make ``run_id`` look created by another process (its stored owner token)."""
    with store._tx("test", write=True) as conn:
        conn.execute("UPDATE runs SET owner = ? WHERE id = ?", ("another-host|boot|4242|99", run_id))


def test_a_run_this_process_is_starting_is_never_another_processs(
    store_target: Path | str, settings: Settings
) -> None:
    """Six browser sessions starting runs at once (bench/team_load.py): a run is committed as
    running a moment before its process registers it as live. Another session of the same process
    polling in that moment labelled it "running in another process", and kept that label for the
    rest of the run. Only runs another process created or resumed are elsewhere."""
    from rag_core.workspace import Workspace

    ws = Workspace(settings, store=HistoryStore(store_target))
    try:
        starting = _run(ws.store)  # stored as running by this process; no live handle yet
        assert ws.runs_elsewhere() == []
        other = _run(ws.store)
        _owned_by_another_process(ws.store, other)
        assert ws.runs_elsewhere() == [other]
        assert ws.store.running_run_ids() == [starting, other]
    finally:
        ws.close()


def test_an_unknown_user_is_reported_as_refused(pg_server: PostgresServer) -> None:
    url = pg_server.url("postgres").replace("//rag@", "//nobody@")
    with pytest.raises(StorageError, match="refused the user 'nobody'"):
        HistoryStore(url)


class _PgError(Exception):
    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "text", "expected"),
    [
        (
            "53100",
            "could not extend file: No space left on device",
            "the disk of the PostgreSQL server at db:5432 is full",
        ),
        ("40001", "could not serialize access", "conflicting concurrent write. Try again"),
        ("25006", "cannot execute UPDATE in a read-only transaction", "is read-only"),
        ("28P01", 'password authentication failed for user "rag"', "refused the user 'rag'"),
        (
            "57P01",
            "terminating connection due to administrator command",
            "cannot reach the PostgreSQL server",
        ),
    ],
)
def test_postgresql_errors_become_clear_messages(sqlstate: str, text: str, expected: str) -> None:
    from rag_core.storage.dialects import PostgresDialect

    password = "pw-" + "k" * 12
    dialect = PostgresDialect(f"postgresql+psycopg://rag:{password}@db:5432/rag", 10.0)
    message = str(dialect.error(_PgError(sqlstate, text + f" (dsn had {password})"), "save the answer"))
    assert message.startswith("Could not save the answer") and expected in message
    assert password not in message


def test_the_revision_template_runs_on_both_databases(tmp_path: Path, store_target: Path | str) -> None:
    """The documented way to add a schema change (versions/TEMPLATE.txt → versions/0007_x.py)
    upgrades a database built by the baseline, on SQLite and PostgreSQL alike."""
    import shutil

    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head, nxt = f"{SCHEMA_VERSION:04d}", f"{SCHEMA_VERSION + 1:04d}"
    template = (scripts / "versions" / "TEMPLATE.txt").read_text()
    template = template.replace('revision = "0007"', f'revision = "{nxt}"')
    template = template.replace('down_revision = "0006"', f'down_revision = "{head}"')
    (scripts / "versions" / f"{nxt}_example.py").write_text(template)
    HistoryStore(store_target).close()  # built by the real revisions (up to the head)
    url = store_target if isinstance(store_target, str) else f"sqlite:///{store_target}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(scripts))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == nxt
            conn.exec_driver_sql("INSERT INTO example(id, name) VALUES (1, 'x')")
            assert conn.exec_driver_sql("SELECT name FROM example").scalar() == "x"
    finally:
        engine.dispose()
    with pytest.raises(StorageError, match="newer version of this app"):
        HistoryStore(store_target)  # and this code (one revision older) refuses the upgraded database
