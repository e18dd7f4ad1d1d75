"""Issue 15: roles from e-mail / groups (and a malformed roles file), the facade's role guard for each
role, run ownership, and the append-only audit trail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rag_core.access import CLI_ADMIN, LOCAL_ADMIN, AuditAction, Principal, Role, RoleMap, acting_as
from rag_core.errors import AccessDeniedError, InputError
from rag_core.models import QAItem
from rag_core.runs.executor import store_key
from rag_core.runs.handle import RunHandle
from rag_core.settings import Settings
from rag_core.storage import HistoryStore
from rag_core.workspace import Workspace

ITEMS = [QAItem("How many days of leave?", "25 days."), QAItem("Can I work from home?", "Two days a week.")]

VIEWER = Principal(id="vera@example.org", name="Vera", role=Role.VIEWER)
ANALYST = Principal(id="ana@example.org", name="Ana", role=Role.ANALYST)
ANALYST_B = Principal(id="bob@example.org", name="Bob", role=Role.ANALYST)
ADMIN = Principal(id="adam@example.org", name="Adam", role=Role.ADMIN)

ROLES = """
[roles]
admins = ["Adam@Example.org"]
analysts = ["ana@example.org", "@hr.example.org"]
viewers = ["vera@example.org"]
groups = { "hr-admins" = "admin", "hr-analysts" = "analyst" }
default = "viewer"
"""


@pytest.fixture
def ws(settings: Settings):
    w = Workspace(settings)
    yield w
    w.close()


def _run(ws: Workspace, who: Principal) -> int:
    """A finished run started by ``who`` written straight into the store (no engine, no model)."""
    run_id = ws.store.create_run(
        question_set="s", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    ws.store.update_run(run_id, status="completed", finished=True)
    ws.store.set_run_started_by(run_id, who.owner_key)
    return run_id


# --- role mapping ----------------------------------------------------------------------------
def test_roles_from_email_domain_and_groups_highest_wins():
    roles = RoleMap.parse(ROLES)
    assert roles.role_for("adam@example.org") == Role.ADMIN  # case-insensitive
    assert roles.role_for("ANA@example.org") == Role.ANALYST
    assert roles.role_for("someone@hr.example.org") == Role.ANALYST  # the domain
    assert roles.role_for("vera@example.org") == Role.VIEWER
    assert roles.role_for("stranger@example.com") == Role.VIEWER  # default
    assert roles.role_for("vera@example.org", ["hr-admins"]) == Role.ADMIN  # group beats listing
    assert roles.role_for("x@example.com", ["other", "hr-analysts"]) == Role.ANALYST
    assert RoleMap.parse('[roles]\ndefault = "analyst"').role_for("x@y.org") == Role.ANALYST
    assert (
        RoleMap.parse("[roles]\nadmins = ['a@x.org']\nanalysts = ['a@x.org']").role_for("a@x.org")
        == Role.ADMIN
    )


def test_missing_roles_file_means_everyone_is_a_viewer(tmp_path: Path):
    roles = RoleMap.load(tmp_path / "roles.toml")
    assert roles.role_for("anyone@example.org", ["hr-admins"]) == Role.VIEWER


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[roles\nadmins = 1", "not valid TOML"),
        ('[roles]\nadmins = "a@x.org"', "roles.admins must be a list"),
        ('[roles]\nanalysts = ["not-an-email"]', "not an e-mail"),
        ('[roles]\ngroups = { "g" = "boss" }', "'boss' is not a role"),
        ('[roles]\ndefault = "owner"', "roles.default"),
        ('[roles]\nadmin = ["a@x.org"]', "unknown key(s) admin"),
    ],
)
def test_malformed_roles_file_is_refused_with_a_message_naming_it(tmp_path: Path, text: str, says: str):
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        RoleMap.load(path)
    assert says in str(exc.value)
    assert str(path) in str(exc.value)


def test_principal_for_a_signed_in_user_reads_the_roles_file(ws: Workspace):
    ws.roles_path.parent.mkdir(parents=True, exist_ok=True)
    ws.roles_path.write_text(ROLES)
    p = ws.principal_for("Ana@Example.org", "Ana", [])
    assert (p.id, p.role, p.owner_key) == ("ana@example.org", Role.ANALYST, "ana@example.org")
    assert ws.principal_for("x@example.com", "", ["hr-admins"]).role == Role.ADMIN
    ws.roles_path.write_text("[roles]\nadmins = 3")
    with pytest.raises(InputError, match=r"roles\.admins must be a list"):
        ws.principal_for("adam@example.org")


def test_roles_file_from_env(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    other = tmp_path / "elsewhere" / "roles.toml"
    monkeypatch.setenv("RAG_ROLES_FILE", str(other))
    assert ws.roles_path == other


# --- the facade's guard ------------------------------------------------------------------------
def test_viewer_can_read_but_every_change_is_refused_naming_action_and_role(ws: Workspace):
    ws.save_question_set("s", ITEMS)  # as the default local admin
    run_id = _run(ws, ANALYST)
    v = ws.acting_as(VIEWER)
    assert v.question_set("s") and v.runs() and v.results(run_id)  # reading is fine
    refused = {
        "save_question_set": lambda: v.save_question_set("s2", ITEMS),
        "delete_question_set": lambda: v.delete_question_set("s"),
        "ingest_files": lambda: v.ingest_files([("a.txt", b"Leave is 25 days.")]),
        "start_run": lambda: v.start_run("s"),
        "delete_run": lambda: v.delete_run(run_id),
        "resume_run": lambda: v.resume_run(run_id),
        "label": lambda: v.label(run_id, 0, "correct"),
        "save_config": lambda: v.save_config("c", {"top_k": 3}),
        "create_collection": lambda: v.create_collection("Harbour"),
        "save_roles": lambda: v.save_roles("[roles]"),
        "audit_trail": lambda: v.audit_trail(),
    }
    for name, call in refused.items():
        with pytest.raises(AccessDeniedError) as exc:
            call()
        msg = str(exc.value)
        assert msg.startswith("You cannot "), (name, msg)
        assert "viewer" in msg, (name, msg)
    assert ws.question_set("s") and ws.store.get_run(run_id)  # nothing changed
    denied = ws.audit_trail(actions=[AuditAction.DENIED])
    assert len(denied) == len(refused) and {e.actor for e in denied} == {VIEWER.id}
    assert "start a run" in {e.target for e in denied}


def test_analyst_edits_and_runs_but_cannot_delete_sets_documents_or_configs(ws: Workspace):
    a = ws.acting_as(ANALYST)
    a.save_question_set("s", ITEMS)
    a.save_config("short", {"top_k": 2})
    a.create_collection("Harbour Lane")
    with pytest.raises(AccessDeniedError, match="needs the admin role"):
        a.delete_question_set("s")
    with pytest.raises(AccessDeniedError, match="needs the admin role"):
        a.delete_config("short")
    with pytest.raises(AccessDeniedError, match="needs the admin role"):
        a.delete_document("x.pdf")
    with pytest.raises(AccessDeniedError, match="needs the admin role"):
        a.audit_trail()
    assert ws.acting_as(ADMIN).delete_question_set("s") is True
    assert ws.acting_as(ADMIN).delete_config("short") is True


def test_the_cli_acts_as_local_admin_and_audit_command_prints_it(
    settings: Settings, capsys: pytest.CaptureFixture[str]
):
    from rag_core import cli

    assert Workspace(settings).principal == LOCAL_ADMIN  # a bare workspace: single-user
    cli_ws = Workspace(settings, principal=CLI_ADMIN)
    try:
        cli_ws.save_question_set("s", ITEMS)
    finally:
        cli_ws.close()
    assert cli.main(["--data-dir", str(settings.data_dir), "audit", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["actor"], d["action"], d["target"]) for d in data] == [
        ("local-admin (CLI)", "question_set.save", "s")
    ]
    out = settings.data_dir / "audit.csv"
    assert (
        cli.main(["--data-dir", str(settings.data_dir), "audit", "--csv", str(out), "--since", "2000-01-01"])
        == 0
    )
    assert out.read_text().splitlines()[0] == "id,at,actor,role,action,target,detail"
    qfile = settings.data_dir / "q.json"
    qfile.write_text(json.dumps([{"question": "How many days of leave?", "ground_truth": "25 days."}]))
    assert (
        cli.main(
            ["--data-dir", str(settings.data_dir), "questions", "import", str(qfile), "--name", "cli set"]
        )
        == 0
    )
    assert (
        cli.main(["--data-dir", str(settings.data_dir), "audit", "--action", "question_set.save", "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after the import's own line
    assert (data[0]["actor"], data[0]["target"]) == ("local-admin (CLI)", "cli set")
    assert "imported from q.json" in data[0]["detail"]
    assert cli.main(["--data-dir", str(settings.data_dir), "audit", "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err


# --- run ownership ---------------------------------------------------------------------------
def test_only_the_owner_or_an_admin_can_delete_or_resume_a_run(ws: Workspace):
    mine = _run(ws, ANALYST)
    theirs = _run(ws, ANALYST_B)
    legacy = _run(ws, ANALYST)
    ws.store.set_run_started_by(legacy, "")  # recorded before sign-in: unknown
    a = ws.acting_as(ANALYST)
    assert a.can_control_run(mine) and not a.can_control_run(theirs) and not a.can_control_run(legacy)
    with pytest.raises(AccessDeniedError) as exc:
        a.delete_run(theirs)
    assert "started by bob@example.org" in str(exc.value) and "only they or an admin" in str(exc.value)
    with pytest.raises(AccessDeniedError, match="resume run #"):
        a.resume_run(theirs)
    with pytest.raises(AccessDeniedError, match="unknown"):
        a.delete_run(legacy)
    assert a.delete_run(mine) is True
    assert ws.acting_as(ADMIN).delete_run(theirs) is True
    assert ws.acting_as(ADMIN).run_owner(legacy) == "unknown"


def test_cancel_only_by_owner_or_admin_and_other_sessions_never_adopt(ws: Workspace):
    """Two sessions of the local admin (single-user mode) and two signed-in analysts: a live run is
    'mine' only for the principal (or browser session) that started it."""
    run_id = _run(ws, ANALYST)
    handle = RunHandle(run_id)
    handle.started_by = ANALYST.owner_key
    ws.engine.runs.add(store_key(ws.store), run_id, handle)
    try:
        a, b = ws.acting_as(ANALYST), ws.acting_as(ANALYST_B)
        assert a.active_run_ids() == b.active_run_ids() == [run_id]  # everyone sees it
        assert a.active_run_ids(mine=True) == [run_id]
        assert b.active_run_ids(mine=True) == []  # ... but B never adopts it
        with pytest.raises(AccessDeniedError, match="cancel run"):
            b.cancel_run(run_id)
        assert not handle.cancelled
        assert a.cancel_run(run_id) is True and handle.cancelled
        # single-user mode: the same local admin in two browser sessions
        s1 = dataclasses.replace(LOCAL_ADMIN, session="tab1")
        s2 = dataclasses.replace(LOCAL_ADMIN, session="tab2")
        handle.started_by = s1.owner_key
        assert ws.acting_as(s1).active_run_ids(mine=True) == [run_id]
        assert ws.acting_as(s2).active_run_ids(mine=True) == []
    finally:
        ws.engine.runs.drop(store_key(ws.store), run_id, handle)


# --- the audit trail -------------------------------------------------------------------------
def test_actions_are_audited_with_who_what_and_when(ws: Workspace):
    a = ws.acting_as(ANALYST)
    a.save_question_set("Leave", ITEMS)
    a.save_question_set("Leave", ITEMS[:1])
    a.save_config("short", {"top_k": 2})
    run_id = _run(ws, ANALYST)
    ws.store.save_answer(run_id, 0, answer="25 days", contexts=[], latency_s=0.1, attempts=1)
    a.label(run_id, 0, "correct")
    a.delete_run(run_id)
    ws.acting_as(ADMIN).delete_question_set("Leave")
    entries = ws.acting_as(ADMIN).audit_trail()
    got = [(e.actor, e.action, e.target) for e in reversed(entries)]
    assert got == [
        ("ana@example.org", "question_set.save", "Leave"),
        ("ana@example.org", "question_set.save", "Leave"),
        ("ana@example.org", "config.save", "short v1"),
        ("ana@example.org", "answer.label", f"run #{run_id} question 1"),
        ("ana@example.org", "run.delete", f"run #{run_id}"),
        ("adam@example.org", "question_set.delete", "Leave"),
    ]
    assert "created" in entries[-1].detail and "edited" in entries[-2].detail
    assert entries[2].detail == "correct"
    assert all(e.at.startswith("20") and e.role for e in entries)
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)


def test_audit_trail_is_append_only_and_exports_guarded(ws: Workspace):
    store = ws.store
    assert not [
        m for m in dir(store) if "audit" in m and any(w in m for w in ("delete", "update", "clear", "edit"))
    ]
    store.append_audit(actor="=cmd|' /C calc'!A0", role="admin", action="roles.change", target="@SUM(1)")
    ws.delete_run(999)  # absent: nothing to delete, nothing audited
    csv_text = ws.export_audit("csv")
    assert "'=cmd" in csv_text and "'@SUM(1)" in csv_text  # formula-guarded
    data = json.loads(ws.export_audit("json"))
    assert data[0]["actor"].startswith("=cmd") and data[0]["action"] == "roles.change"
    # filters
    store.append_audit(actor="ana@example.org", role="analyst", action="run.start", target="run #1")
    assert [e.actor for e in ws.audit_trail(actor="ANA")] == ["ana@example.org"]
    assert [e.action for e in ws.audit_trail(actions=["roles.change"])] == ["roles.change"]
    assert ws.audit_trail(since="2999-01-01") == []


def _revision_sql(number: str) -> str:
    """The statements of Alembic revision ``number`` (rag_core/storage/migrations/versions/)."""
    import importlib.util

    path = next((Path(__file__).parents[2] / "rag_core/storage/migrations/versions").glob(f"{number}_*.py"))
    spec = importlib.util.spec_from_file_location(f"revision_{number}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return " ".join(module.STATEMENTS)


def test_migration_is_one_portable_entry():
    last = _revision_sql("0009")
    assert "started_by" in last and "audit_log" in last
    for bad in ("AUTOINCREMENT", "WITHOUT ROWID", "PRAGMA", " REAL", "strftime", "datetime(", "OR REPLACE"):
        assert bad not in last


def test_existing_runs_get_an_unknown_starter(tmp_path: Path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    try:
        rid = store.create_run(
            question_set="s", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
        )
        assert store.run_started_by(rid) == ""
        assert store.runs_started_by() == {rid: ""}
    finally:
        store.close()


def test_roles_editing_by_an_admin_is_validated_audited_and_cannot_lock_them_out(ws: Workspace):
    adm = ws.acting_as(ADMIN)
    assert "[roles]" in adm.roles_text()  # the example when there is no file yet
    with pytest.raises(InputError, match="not valid TOML"):
        adm.save_roles("[roles\n")
    with pytest.raises(InputError, match="would no longer be an admin"):
        adm.save_roles('[roles]\nadmins = ["someone-else@example.org"]')
    assert not ws.roles_path.exists()  # nothing saved
    adm.save_roles(ROLES)
    assert ws.role_map().role_for("adam@example.org") == Role.ADMIN
    [entry] = adm.audit_trail(actions=["roles.change"])
    assert entry.actor == ADMIN.id and "admins 1" in entry.detail
    with acting_as(ANALYST), pytest.raises(AccessDeniedError, match="change roles"):
        ws.save_roles(ROLES)


# --- what else a person starts: uploads, names of runs -----------------------------------------
def test_an_upload_is_cancelled_only_by_its_starter_or_an_admin_and_audited(ws: Workspace):
    a, b = ws.acting_as(ANALYST), ws.acting_as(ANALYST_B)
    job = a.start_ingest([("leave.txt", b"Annual leave\n\nStaff get 25 days of annual leave a year.\n" * 20)])
    with pytest.raises(AccessDeniedError, match=r"started by ana@example\.org"):
        b.cancel_ingest(job)
    with pytest.raises(AccessDeniedError, match="analyst role"):
        ws.acting_as(VIEWER).cancel_ingest(job)
    assert ws.wait_ingest(job, 120)
    assert a.cancel_ingest(job) is False  # finished: nothing to cancel
    denied = ws.acting_as(ADMIN).audit_trail(actions=["access.denied"])
    assert [e.actor for e in reversed(denied)] == ["bob@example.org", "vera@example.org"]
    assert "cancel the upload of leave.txt" in denied[-1].target


def test_only_the_owner_or_an_admin_renames_a_run(ws: Workspace):
    theirs = _run(ws, ANALYST_B)
    with pytest.raises(AccessDeniedError, match="rename run #"):
        ws.acting_as(ANALYST).label_run(theirs, name="mine now", note=None)
    assert ws.run(theirs).name in (None, "")
    ws.acting_as(ANALYST_B).label_run(theirs, name="Bob's run", note=None)
    ws.acting_as(ADMIN).label_run(theirs, name="Renamed by admin", note=None)
    assert ws.run(theirs).name == "Renamed by admin"
    with pytest.raises(InputError, match="no run #999"):
        ws.acting_as(ANALYST).label_run(999, name="x", note=None)


def test_an_upload_being_indexed_is_cancelled_by_its_starter_and_audited(ws: Workspace, monkeypatch):
    """A stand-in indexer that waits for Cancel (bounded), so the job is still running when asked."""
    import threading

    started = threading.Event()

    def slow_ingest(files, *, collection, control, **_):
        started.set()
        for _ in range(200):  # ≤ 20 s
            if control.cancelled:
                return []
            threading.Event().wait(0.1)
        return []

    monkeypatch.setattr(ws, "ingest_files", slow_ingest)
    a = ws.acting_as(ANALYST)
    job = a.start_ingest([("leave.txt", b"Staff get 25 days of annual leave a year.")])
    assert started.wait(10)
    with pytest.raises(AccessDeniedError):
        ws.acting_as(ANALYST_B).cancel_ingest(job)
    assert a.cancel_ingest(job) is True
    assert ws.wait_ingest(job, 30)
    [entry] = ws.acting_as(ADMIN).audit_trail(actions=["document.upload_cancel"])
    assert (entry.actor, entry.target) == ("ana@example.org", "All documents / leave.txt")


def test_reviewing_generated_questions_is_guarded_and_audited(ws: Workspace):
    from rag_core.models import GeneratedPair

    a_pair, b_pair = ws.store.add_generated_pairs(
        [
            GeneratedPair(0, "j", "All documents", "factual", "Q1?", "A1."),
            GeneratedPair(0, "j", "All documents", "factual", "Q2?", "A2."),
        ]
    )
    with pytest.raises(AccessDeniedError, match="analyst role"):
        ws.acting_as(VIEWER).reject_generated([a_pair.id])
    a = ws.acting_as(ANALYST)
    a.edit_generated(a_pair.id, "Q1 edited?", "A1.")
    assert a.reject_generated([b_pair.id]) == 1
    got = [(e.actor, e.action, e.target, e.detail) for e in reversed(ws.acting_as(ADMIN).audit_trail())]
    assert got[-2:] == [
        ("ana@example.org", "questions.review", f"generated question #{a_pair.id}", "edited"),
        ("ana@example.org", "questions.review", f"#{b_pair.id}", "rejected 1"),
    ]
