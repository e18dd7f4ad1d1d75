"""Issue 15 in the app: the sign-in page, role-aware pages (a viewer sees no Run or Delete controls,
the Admin page only for admins) and the refusal to serve a non-loopback address without sign-in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, _clear_caches, _workspace, all_text, texts, wait_for_runs
from tests.app.test_run_and_history_pages import _open_tab
from tests.conftest import ROOT

RUN = "pages/run.py"
HISTORY = "pages/history.py"
DOCUMENTS = "pages/documents.py"
ADMIN = "pages/admin.py"

AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret-not-real",
    "client_id": "rag-eval",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ROLES = """
[roles]
admins = ["adam@example.org"]
analysts = ["ana@example.org"]
"""


@pytest.fixture
def signed_in_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    """``signed_in_app(data_dir, user)`` → AppTest of app.py with ``[auth]`` configured and
    ``user`` (a dict of claims, or None = nobody signed in), already run once."""
    from streamlit import config

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("RAG_ALLOW_UNAUTHENTICATED", raising=False)
    monkeypatch.chdir(ROOT)
    previous = config.get_option("runner.enforceSerializableSessionState")
    _clear_caches()

    def make(data_dir: Path, user: dict | None, *, auth: bool = True, roles: str = ROLES) -> AppTest:
        monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
        (data_dir / "roles.toml").write_text(roles)
        at = AppTest.from_file(APP, default_timeout=60)
        if auth:
            at.secrets["auth"] = dict(AUTH)
        at.user = {"is_logged_in": True, **user} if user else {"is_logged_in": False}
        config.set_option("runner.enforceSerializableSessionState", False)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    try:
        yield make
    finally:
        _clear_caches()
        config.set_option("runner.enforceSerializableSessionState", previous)


def test_nobody_signed_in_sees_only_the_sign_in_page(signed_in_app, history_dir: Path) -> None:
    at = signed_in_app(history_dir, None)
    assert [b.key for b in at.button] == ["auth.login"]
    assert "sign in" in " ".join(texts(at, "markdown")).lower()
    assert not at.title or "Documents" not in [t.value for t in at.title]
    assert "Sample: staff handbook" not in all_text(at)  # no data leaks before sign-in


def test_viewer_sees_no_run_or_delete_controls(signed_in_app, history_dir: Path) -> None:
    at = signed_in_app(history_dir, {"email": "vera@example.org", "name": "Vera"})
    side = " ".join(texts(at, "markdown"))
    assert "Vera <vera@example.org> · viewer" in side
    assert any(b.key == "auth.logout" for b in at.sidebar.button)
    keys = {b.key for b in at.button}
    assert "docs.delete" not in keys and "docs.reindex" not in keys
    assert at.button(key="docs.sample").disabled
    at.switch_page(RUN).run()
    assert not at.exception
    assert "run.start" not in {b.key for b in at.button}
    assert any("a viewer" in t for t in texts(at, "info"))
    at.switch_page(HISTORY).run()
    _open_tab(at, "Run details")
    assert not at.exception
    assert any("Started by local-admin" in c for c in texts(at, "caption"))  # made by the fixture
    keys = {b.key for b in at.button}
    assert "history.delete" not in keys and "history.resume" not in keys
    at.switch_page(ADMIN).run()  # typed URL: the page itself refuses
    assert any("needs the admin role" in e for e in texts(at, "error"))
    assert not at.get("dataframe") or all(
        getattr(d, "key", None) != "admin.audit_table" for d in at.dataframe
    )


def test_admin_page_only_for_admins_and_shows_the_audit_trail(signed_in_app, history_dir: Path) -> None:
    analyst = signed_in_app(history_dir, {"email": "ana@example.org", "name": "Ana"})
    assert "Admin" not in all_text(analyst)  # not in the navigation
    assert {"run.start"} <= {b.key for b in analyst.switch_page(RUN).run().button}
    _clear_caches()
    at = signed_in_app(history_dir, {"email": "adam@example.org", "name": "Adam"})
    assert "admin" in " ".join(texts(at, "markdown"))
    at.switch_page(HISTORY).run()
    _open_tab(at, "Run details")
    assert {"history.delete"} <= {b.key for b in at.button}  # an admin may delete anyone's run
    at.switch_page(ADMIN).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "adam@example.org" in at.text_area(key="admin.roles_text").value
    assert at.dataframe  # the audit table (empty so far)


def test_non_loopback_address_without_sign_in_is_refused(
    signed_in_app, history_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit import config

    previous = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = signed_in_app(history_dir, None, auth=False)
        errors = " ".join(texts(at, "error"))
        assert "0.0.0.0" in errors and "[auth]" in errors and "RAG_ALLOW_UNAUTHENTICATED=1" in errors
        assert "127.0.0.1" in errors
        assert not at.button  # nothing to use
        _clear_caches()
        monkeypatch.setenv("RAG_ALLOW_UNAUTHENTICATED", "1")  # the documented opt-out
        at = signed_in_app(history_dir, None, auth=False)
        assert not texts(at, "error")
        assert "Single user" in " ".join(texts(at, "caption"))
    finally:
        config.set_option("server.address", previous)


def test_single_user_second_session_sees_the_run_read_only_and_never_adopts_it(
    app, indexed_dir: Path
) -> None:
    """The issue's "Why": session B's Run page picked up A's run and its Cancel cancelled it. Now,
    without sign-in, another browser session (the same local admin) sees it read-only."""
    from tests.app.test_run_and_history_pages import _start

    a = app(indexed_dir)
    run_id = _start(a, mode="sequential", question_set="Sample: staff handbook")
    b = AppTest.from_file(APP, default_timeout=60)  # a second browser session, same server
    b.run()
    b.switch_page(RUN).run()
    try:
        assert not b.exception, [e.value for e in b.exception]
        probe = _workspace(indexed_dir)
        live = run_id in probe.active_run_ids()
        probe.close()
        if live:  # (a very fast machine may have finished the 10 questions already)
            assert "run.active_id" not in b.session_state  # never adopted
            assert "run.cancel" not in {x.key for x in b.button}
            assert any(f"Run #{run_id}" in m and "read-only" in m for m in texts(b, "markdown"))
            assert not b.button(key="run.start").disabled  # B can still start its own run
        assert "run.cancel" in {x.key for x in a.button} or not live  # the owner keeps Cancel
    finally:
        wait_for_runs(indexed_dir)


def test_malformed_roles_file_is_named_and_everyone_can_only_read(signed_in_app, history_dir: Path) -> None:
    at = signed_in_app(
        history_dir, {"email": "adam@example.org", "name": "Adam"}, roles="[roles]\nadmins = 'adam'"
    )
    errors = " ".join(texts(at, "error"))
    assert "roles.toml" in errors and "roles.admins must be a list" in errors and "can only read" in errors
    assert "· viewer" in " ".join(texts(at, "markdown"))  # fail closed: not an admin
    assert "run.start" not in {b.key for b in at.switch_page(RUN).run().button}


def test_a_signed_in_admin_can_stop_an_analysts_run(signed_in_app, indexed_dir: Path) -> None:
    from rag_core.access import Principal, Role

    at = signed_in_app(indexed_dir, {"email": "adam@example.org", "name": "Adam"})
    ws = _workspace(indexed_dir)
    try:
        ana = ws.acting_as(Principal(id="ana@example.org", name="Ana", role=Role.ANALYST))
        run_id = ana.start_run("Sample: staff handbook", mode="sequential")
        at.switch_page(RUN).run()
        stop = [b for b in at.button if b.key == f"run.admin_cancel.{run_id}"]
        if run_id in ws.active_run_ids():  # (unless the machine already finished 10 questions)
            assert stop, [b.key for b in at.button]
            stop[0].click().run()
            assert not at.exception, [e.value for e in at.exception]
            wait_for_runs(indexed_dir)
            assert ws.run(run_id).status == "cancelled"
            assert [(e.actor, e.action) for e in ws.audit_trail(actions=["run.cancel"])] == [
                ("adam@example.org", "run.cancel")
            ]
    finally:
        wait_for_runs(indexed_dir)
        ws.close()
