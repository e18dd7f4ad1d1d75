"""The history's experiment records: configuration versions, question-set versions, run identity and
labels, sweeps, and the migration of a database written before them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.errors import InputError, StorageError
from rag_core.experiment import (
    AssistantConfig,
    CodeVersion,
    ConfigVersion,
    DocumentVersion,
    RunIdentity,
    questions_fingerprint,
)
from rag_core.models import QAItem
from rag_core.storage import HistoryStore
from rag_core.storage.schema import MIGRATIONS, SCHEMA_VERSION

ITEMS = [QAItem("How many days of leave?", "25 days."), QAItem("Who approves expenses?", "Your manager.")]
BASE = AssistantConfig(answer_model="claude-sonnet-4-5", system_prompt="You answer HR questions.")

#: Shaped like an Anthropic key (built at run time so nothing key-like is committed).
FAKE_ANT_KEY = "sk-" + "ant-" + "api03-" + "x" * 26


# On a SQLite file, then on a fresh PostgreSQL database (tests/support/postgres_server.py).
@pytest.fixture
def store(store_target: Path | str) -> Iterator[HistoryStore]:
    s = HistoryStore(store_target)
    yield s
    s.close()


# --- configurations ----------------------------------------------------------------------------------
def test_saving_a_changed_config_makes_a_new_version_and_an_unchanged_one_does_not(
    store: HistoryStore,
) -> None:
    v1 = store.save_config("terse", BASE, note="first")
    assert (v1.name, v1.version, v1.note) == ("terse", 1, "first")
    again = store.save_config("terse", BASE)
    assert again.version == 1  # same fields → no new version
    v2 = store.save_config("terse", BASE.replace(top_k=8))
    assert v2.version == 2 and v2.config.top_k == 8
    assert store.get_config("terse").version == 2
    assert store.get_config("terse", 1).config == BASE  # old versions never change
    assert [v.version for v in store.config_versions("terse")] == [1, 2]
    assert [c.label for c in store.list_configs()] == ["terse v2"]


def test_unknown_configs_and_versions_are_named(store: HistoryStore) -> None:
    store.save_config("mine", BASE)
    with pytest.raises(InputError, match=r"no configuration named 'other'.*'mine'"):
        store.get_config("other")
    with pytest.raises(InputError, match="has no version 7"):
        store.get_config("mine", 7)
    assert store.config_versions("other") == []
    assert store.delete_config("mine") is True and store.delete_config("mine") is False


def test_config_fields_are_validated_and_secrets_refused(store: HistoryStore) -> None:
    with pytest.raises(InputError, match="Top-k"):
        BASE.replace(top_k=0)
    with pytest.raises(InputError, match="overlap"):
        BASE.replace(chunk_overlap=900, chunk_size=900)
    with pytest.raises(InputError, match="Temperature"):
        BASE.replace(temperature=1.5)
    with pytest.raises(InputError, match="Unknown configuration field"):
        AssistantConfig.from_json({"answer_model": "m", "system_prompt": "p", "topk": 3})
    with pytest.raises(StorageError):
        store.save_config("leaky", BASE.replace(instructions="use " + FAKE_ANT_KEY))
    with pytest.raises(InputError, match="name"):
        store.save_config("  ", BASE)


def test_config_values_are_coerced_from_form_strings() -> None:
    cfg = AssistantConfig(
        answer_model=" m ",
        system_prompt="p\r\nq",
        temperature="",
        max_tokens="512",
        top_k="3",
        retrieval="mmr",
    )
    assert (cfg.answer_model, cfg.system_prompt, cfg.temperature, cfg.max_tokens, cfg.top_k) == (
        "m",
        "p\nq",
        None,
        512,
        3,
    )
    assert str(cfg.retrieval) == "mmr"
    assert cfg.fingerprint() == AssistantConfig.from_json(cfg.to_json()).fingerprint()
    assert cfg.differs_from(cfg.replace(top_k=4)) == ["top_k"]


# --- question-set versions ----------------------------------------------------------------------------
def test_every_changed_save_of_a_set_is_a_new_version(store: HistoryStore) -> None:
    store.save_question_set("S", ITEMS)
    store.save_question_set("S", ITEMS)  # unchanged
    assert store.question_set_version("S") == (1, questions_fingerprint(ITEMS))
    edited = [ITEMS[0], QAItem("Who approves expenses?", "The budget holder.")]
    store.save_question_set("S", edited)
    assert store.question_set_version("S") == (2, questions_fingerprint(edited))
    assert [v["version"] for v in store.question_set_versions("S")] == [1, 2]
    # a run that uses the first content is matched to version 1
    assert store.question_set_version("S", ITEMS) == (1, questions_fingerprint(ITEMS))
    assert store.question_set_version("S", [QAItem("other?", "x")]) is None
    assert store.question_set_version("never saved") is None


# --- run identity and labels ----------------------------------------------------------------------------
def test_a_run_keeps_its_identity_name_and_note(store: HistoryStore) -> None:
    run_id = store.create_run(
        question_set="S", backend="offline", mode="async", suite="offline", config={}, items=ITEMS
    )
    assert store.get_run(run_id).identity is None
    identity = RunIdentity(
        config=ConfigVersion("terse", 2, BASE, created_at="2026-12-01T00:00:00+00:00"),
        question_set="S",
        question_set_version=1,
        questions_sha256=questions_fingerprint(ITEMS),
        documents=(DocumentVersion("handbook.pdf", "ab" * 32),),
        collection="policies",
        code=CodeVersion("0.1.0", "c" * 40, False),
        sweep_id=None,
    )
    store.set_run_identity(run_id, identity)
    store.label_run(run_id, name="  baseline   for Q4 ", note="before the prompt change")
    run = store.get_run(run_id)
    assert run.identity == identity
    assert (run.name, run.note) == ("baseline for Q4", "before the prompt change")
    store.label_run(run_id, name="", note=None)
    assert (store.get_run(run_id).name, store.get_run(run_id).note) == (None, None)
    with pytest.raises(InputError, match="no run #999"):
        store.label_run(999, name="x", note=None)
    with pytest.raises(StorageError):
        store.set_run_identity(999, identity)


# --- sweeps ---------------------------------------------------------------------------------------------
def test_sweeps_are_recorded_and_interrupted_ones_marked(store: HistoryStore) -> None:
    sid = store.create_sweep(
        name="k sweep", question_set="S", plan={"configs": [{"name": "a", "version": 1}]}
    )
    store.update_sweep(sid, run_ids=[4, 5], counters={"answers_reused": 3})
    sw = store.get_sweep(sid)
    assert (sw.name, sw.status, sw.run_ids, sw.counters["answers_reused"]) == (
        "k sweep",
        "running",
        (4, 5),
        3,
    )
    assert store.mark_sweeps_interrupted(exclude={sid}) == []
    assert store.mark_sweeps_interrupted() == [sid]
    assert store.get_sweep(sid).status == "interrupted"
    store.update_sweep(sid, status="completed", finished=True)
    assert store.list_sweeps()[0].finished_at
    with pytest.raises(InputError):
        store.get_sweep(sid + 1)
    with pytest.raises(StorageError):
        store.update_sweep(sid, status="nonsense")


# --- migration -----------------------------------------------------------------------------------------
def test_a_database_from_before_experiments_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        for statement in migration:
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    raw.execute(
        "INSERT INTO runs(created_at, backend, mode, suite, status, config, n_questions) "
        "VALUES ('2026-11-01T00:00:00+00:00', 'offline', 'async', 'offline', 'completed', '{\"top_k\": 4}', 1)"
    )
    raw.commit()
    raw.close()
    with HistoryStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        (run,) = store.list_runs()
        assert (run.identity, run.name, run.note, run.config["top_k"]) == (None, None, None, 4)
        assert store.list_configs() == [] and store.list_sweeps() == []
