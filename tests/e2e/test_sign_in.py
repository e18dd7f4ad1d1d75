"""Issue 15: sign-in through a REAL OpenID Connect provider, roles, run ownership and the audit trail,
in Chromium.

``oidc-provider-mock`` (a real OIDC provider: discovery, authorize form, token endpoint, signed ID
tokens) serves on 127.0.0.1 (free port); the app is started with a generated secrets file holding
``[auth]`` (in the test's temp data dir, passed with ``--secrets.files``: the repository's
``.streamlit`` is never written) and a roles file (``ana`` analyst, ``adam`` admin, anyone else a
viewer). Three browser contexts (separate cookies) sign in through the provider's form:

1. the analyst starts a long sequential run;
2. the viewer sees it read-only on the Run page — who started it, its progress, no Cancel, no
   Start — and never adopts it;
3. the analyst cancels their own run;
4. the admin opens Admin → Audit trail and sees both users' sign-ins and the run's start and cancel.

Every non-loopback request (the provider's page links a CDN stylesheet) is aborted.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    APP_PATH,
    VIEWPORT,
    StreamlitServer,
    free_port,
    save_screenshot,
    wait_for_app,
)
from tests.e2e.test_user_journey import (
    SAMPLE_PDF,
    SAMPLE_SET,
    assert_no_exception,
    nav,
    open_tab,
    select_option,
)

pytestmark = pytest.mark.e2e

LONG_SET = "Long: 80 questions"
ROLES = """
[roles]
admins = ["adam@example.org"]
analysts = ["ana@example.org"]
"""
USERS = {
    "ana@example.org": "Ana Analyst",
    "vera@example.org": "Vera Viewer",
    "adam@example.org": "Adam Admin",
}
LOOPBACK = re.compile(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?/")


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """oidc-provider-mock on 127.0.0.1 (free port) with the three users predefined; its base URL."""
    werkzeug = pytest.importorskip("werkzeug.serving")
    oidc = pytest.importorskip("oidc_provider_mock")
    app = oidc.app(
        user_claims=[
            oidc.User(sub=email, claims={"email": email, "name": name}) for email, name in USERS.items()
        ]
    )
    server = werkzeug.make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def signed_server(oidc_provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """The app with ``[auth]`` pointing at the provider, the sample handbook indexed and a long set."""
    from rag_core.models import QAItem
    from rag_core.settings import Settings
    from rag_core.workspace import Workspace

    data = tmp_path_factory.mktemp("signin") / "data"
    data.mkdir()
    server = StreamlitServer(APP_PATH, data)
    (data / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{server.port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "rag-eval"\n'
        f'client_secret = "{secrets.token_hex(8)}"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n'
    )
    (data / "roles.toml").write_text(ROLES)
    ws = Workspace(Settings.load(env={"RAG_DATA_DIR": str(data)}, secrets_path=data / "none.toml"))
    try:
        assert ws.ingest_files([(SAMPLE_PDF.name, SAMPLE_PDF.read_bytes())])[0].status == "added"
        ws.ensure_sample_set()
        sample = ws.question_set(SAMPLE_SET)
        long = [
            QAItem(f"{it.question} (variant {n})", it.ground_truth, it.expected)
            for n in range(8)
            for it in sample
        ]
        ws.save_question_set(LONG_SET, long)
    finally:
        ws.close()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _context(browser: Any) -> Any:
    ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(30_000)
    ctx.route(
        re.compile(r"^https?://"),
        lambda route: route.continue_() if LOOPBACK.match(route.request.url) else route.abort(),
    )
    return ctx


def sign_in(page: Any, url: str, email: str) -> float:
    """Open the app, click Sign in, pick ``email`` on the provider's form, land back in the app;
    returns the seconds from the click on Sign in to the signed-in sidebar."""
    page.goto(url)
    wait_for_app(page)
    started = time.monotonic()
    page.locator(".st-key-auth-login button").click()
    page.get_by_role("button", name=email, exact=True).click()  # the provider's predefined user
    page.wait_for_url(re.compile(rf"^{re.escape(url)}/?(\?.*)?$"))
    wait_for_app(page)
    page.locator("[data-testid='stSidebar']").get_by_text(f"{USERS[email]} <{email}>", exact=False).wait_for()
    return time.monotonic() - started


def test_sign_in_roles_ownership_and_audit_in_a_real_browser(browser, signed_server: StreamlitServer):
    url = signed_server.url
    contexts = [_context(browser) for _ in range(3)]
    analyst, viewer, admin = (ctx.new_page() for ctx in contexts)
    try:
        # Nobody gets a page before signing in.
        viewer.goto(url)
        wait_for_app(viewer)
        assert viewer.locator(".st-key-auth-login button").is_visible()
        assert viewer.get_by_text("Documents in").count() == 0
        viewer.goto(f"{url}/history")  # a deep link too
        wait_for_app(viewer)
        assert viewer.locator(".st-key-auth-login button").is_visible()
        assert viewer.get_by_role("heading", name="History").count() == 0

        # 1. The analyst signs in and starts a long sequential run.
        took = [sign_in(analyst, url, "ana@example.org")]
        assert analyst.get_by_text("· analyst").first.is_visible()
        nav(analyst, "Run", "Run an evaluation")
        select_option(analyst, "run-set", LONG_SET)
        analyst.locator(".st-key-run-mode").get_by_text("Sequential", exact=False).first.click()
        wait_for_app(analyst)
        analyst.locator(".st-key-run-start button").click()
        analyst.get_by_role("heading", name="Run #1").first.wait_for()
        analyst.locator(".st-key-run-cancel button").first.wait_for()

        # 2. The viewer sees it read-only: who started it and its progress, no Cancel, no Start.
        took.append(sign_in(viewer, url, "vera@example.org"))
        assert viewer.get_by_text("· viewer").first.is_visible()
        nav(viewer, "Run", "Run an evaluation")
        other = viewer.locator(".st-key-run-other-1")
        other.get_by_text("started by ana@example.org", exact=False).wait_for()
        other.get_by_role("progressbar").wait_for()
        assert viewer.locator(".st-key-run-cancel").count() == 0
        assert viewer.locator(".st-key-run-admin_cancel-1").count() == 0
        assert viewer.locator(".st-key-run-start").count() == 0
        assert viewer.get_by_role("heading", name="Run #1", exact=True).count() == 0  # never adopted
        assert viewer.get_by_text("a viewer", exact=False).first.is_visible()
        assert viewer.locator("[data-testid='stSidebarNav']").get_by_text("Admin").count() == 0
        assert_no_exception(viewer)
        save_screenshot(viewer, "sign-in-viewer-read-only")

        # 3. The owner cancels their own run (the viewer could not).
        analyst.locator(".st-key-run-cancel button").first.click()
        analyst.get_by_text("Run #1 was cancelled", exact=False).first.wait_for(timeout=60_000)
        assert_no_exception(analyst)

        # 4. The admin sees both users and the run's start and cancel in the audit trail.
        took.append(sign_in(admin, url, "adam@example.org"))
        nav(admin, "Admin")
        open_tab(admin, "Audit trail")
        admin.get_by_text(re.compile(r"\d+ entr(y|ies) \(newest first")).first.wait_for()
        admin.locator("[data-testid='stDataFrame']").first.wait_for()
        save_screenshot(admin, "sign-in-admin-audit")
        from rag_core.storage import HistoryStore

        store = HistoryStore(signed_server.data_dir / "history.sqlite3")
        try:
            entries = store.audit_entries()
            assert store.run_started_by(1) == "ana@example.org"
        finally:
            store.close()
        seen = {(e.actor, e.action) for e in entries}
        assert {
            ("ana@example.org", "session.sign_in"),
            ("vera@example.org", "session.sign_in"),
            ("adam@example.org", "session.sign_in"),
            ("ana@example.org", "run.start"),
            ("ana@example.org", "run.cancel"),
        } <= seen, seen
        assert not [e for e in entries if e.actor == "vera@example.org" and e.action != "session.sign_in"]
        # The table the admin sees holds them too (the grid is a canvas: read its CSV download).
        with admin.expect_download() as dl:
            admin.locator(".st-key-admin-export_csv button").click()
        csv_text = Path(dl.value.path()).read_text()
        assert "vera@example.org,viewer,session.sign_in" in csv_text
        assert "ana@example.org,analyst,run.start,run #1" in csv_text
        assert "ana@example.org,analyst,run.cancel,run #1" in csv_text
        assert_no_exception(admin)
        print(f"\nsign-in round trips through the provider: {', '.join(f'{t:.1f} s' for t in took)}")
    finally:
        for ctx in contexts:
            ctx.close()
