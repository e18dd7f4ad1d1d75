"""Assistant configurations in use: the default one, files, grids, diffs, and what reaches the prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.answer.claude import ClaudeAnswerer
from rag_core.answer.prompt import SYSTEM_PROMPT, build_messages
from rag_core.errors import InputError
from rag_core.experiment import DEFAULT_CONFIG_NAME, AssistantConfig
from rag_core.models import Chunk, QAItem, ScoredChunk
from rag_core.reporting.diff import config_diff
from rag_core.runs import configs as cfgs
from rag_core.runs.request import RunRequest
from rag_core.runs.sweep import SweepPlan, estimate_sweep, execution_order
from rag_core.settings import Secret, Settings
from rag_core.storage import HistoryStore


@pytest.fixture
def store(settings: Settings) -> Iterator[HistoryStore]:
    s = HistoryStore(settings.db_path)
    yield s
    s.close()


def test_the_default_configuration_is_the_settings(settings: Settings, store: HistoryStore) -> None:
    d = cfgs.default_config(settings)
    assert (d.answer_model, d.max_tokens, d.top_k, d.chunk_size, d.chunk_overlap) == (
        settings.answer_model,
        settings.answer_max_tokens,
        settings.top_k,
        settings.chunk_size,
        settings.chunk_overlap,
    )
    assert d.system_prompt == SYSTEM_PROMPT and d.instructions == "" and d.temperature is None
    assert str(d.retrieval) == "similarity"
    v1 = cfgs.ensure_default(store, settings)
    assert v1.label == "default v1" and cfgs.ensure_default(store, settings).version == 1
    # the settings change (e.g. RAG_TOP_K=6): "default" follows them with a new version
    v2 = cfgs.ensure_default(store, settings.replace(top_k=6))
    assert v2.version == 2 and v2.config.top_k == 6
    with pytest.raises(InputError, match="cannot be edited"):
        cfgs.save_config(store, "Default", d.replace(top_k=2))


def test_a_request_without_a_configuration_runs_exactly_as_before(settings: Settings) -> None:
    req = RunRequest(items=(QAItem("q?", "a"),), top_k=settings.top_k)
    pinned = req.pinned_assistant(settings)
    assert (
        pinned.name == DEFAULT_CONFIG_NAME
        and pinned.version == 0
        and pinned.config == cfgs.default_config(settings)
    )
    assert RunRequest(items=(QAItem("q?", "a"),), top_k=7).pinned_assistant(settings).config.top_k == 7
    # with a configuration, its top-k wins
    with HistoryStore(settings.db_path) as store:
        cv = cfgs.ensure_default(store, settings)
    assert RunRequest(items=(QAItem("q?", "a"),), top_k=9, assistant=cv).top_k == settings.top_k


def test_resolve_accepts_name_at_version(settings: Settings, store: HistoryStore) -> None:
    base = cfgs.default_config(settings)
    cfgs.save_config(store, "k2", base.replace(top_k=2))
    cfgs.save_config(store, "k2", base.replace(top_k=3))
    assert cfgs.resolve_config(store, settings, "k2@1").config.top_k == 2
    assert cfgs.resolve_config(store, settings, "k2").config.top_k == 3
    assert cfgs.resolve_config(store, settings, None).name == "default"
    with pytest.raises(InputError, match="no configuration named 'nope'"):
        cfgs.resolve_config(store, settings, "nope")


def test_files_round_trip_and_missing_fields_keep_the_default(
    settings: Settings, store: HistoryStore
) -> None:
    base = cfgs.default_config(settings)
    v = cfgs.save_config(
        store, "short answers", base.replace(instructions="Answer in one sentence.", temperature=0.2)
    )
    text = cfgs.export_configs([v])
    parsed = cfgs.parse_config_file(text.encode(), source="x.json", base=base)
    assert parsed == [("short answers", v.config, "")]
    bare = json.dumps({"top_k": 2, "retrieval": "mmr"})
    ((name, cfg, _),) = cfgs.parse_config_file(bare, source="bare.json", base=base, name="mmr2")
    assert name == "mmr2" and cfg == base.replace(top_k=2, retrieval="mmr")
    with pytest.raises(InputError, match=r"bare\.json: no name"):
        cfgs.parse_config_file(bare, source="bare.json", base=base)
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        cfgs.parse_config_file(b"{", source="bad.json", base=base)
    with pytest.raises(InputError, match=r"two\.json, configuration 2: Top-k"):
        cfgs.parse_config_file(
            json.dumps([{"name": "a", "top_k": 2}, {"name": "b", "top_k": 99}]), source="two.json", base=base
        )


def test_grids_expand_to_named_configurations(
    settings: Settings, store: HistoryStore, tmp_path: Path
) -> None:
    prompt = tmp_path / "strict.txt"
    prompt.write_text("Answer only from the excerpts.", encoding="utf-8")
    grid = cfgs.parse_grid(["top_k=2,4", f"prompt=default,{prompt}"])
    assert grid["top_k"] == ["2", "4"] and grid["system_prompt"] == [
        SYSTEM_PROMPT,
        "Answer only from the excerpts.",
    ]
    base = cfgs.ensure_default(store, settings)
    points = cfgs.expand_grid(base, grid)
    assert [n for n, _ in points] == [
        "default · top_k=2 · prompt1",
        "default · top_k=2 · prompt2",
        "default · top_k=4 · prompt1",
        "default · top_k=4 · prompt2",
    ]
    assert points[1][1].top_k == 2 and points[1][1].system_prompt.startswith("Answer only")
    with pytest.raises(InputError, match="--grid 'colour=red'"):
        cfgs.parse_grid(["colour=red"])
    with pytest.raises(InputError, match="Top-k"):
        cfgs.expand_grid(base, {"top_k": ["0"]})


def test_config_diff_names_fields_and_diffs_prompts(settings: Settings) -> None:
    a = cfgs.default_config(settings)
    b = a.replace(top_k=8, system_prompt=a.system_prompt.replace("Be concise", "Be very concise"))
    changes = config_diff(a, b)
    assert [c.field for c in changes] == ["system_prompt", "top_k"]
    prompt = changes[0]
    assert any(line.startswith("-") and "Be concise" in line for line in prompt.text_diff)
    assert any(line.startswith("+") and "Be very concise" in line for line in prompt.text_diff)
    assert (changes[1].before, changes[1].after) == (4, 8)
    assert config_diff(a, a) == []


def test_prompt_and_sampling_reach_the_claude_request(settings: Settings) -> None:
    ctx = [ScoredChunk(Chunk("d:0", "Leave is 25 days.", "h.pdf", 2, 0, "d"), 0.9)]
    system, messages = build_messages("How much leave?", ctx)
    assert system == SYSTEM_PROMPT and "<instructions>" not in messages[0]["content"]
    system, messages = build_messages(
        "How much leave?", ctx, system_prompt="Be brief.", instructions="One sentence."
    )
    assert system == "Be brief."
    assert messages[0]["content"].endswith("</question>\n\n<instructions>\nOne sentence.\n</instructions>")
    s = settings.replace(api_key=Secret("sk-test"))
    plain = ClaudeAnswerer(s)._request("q?", ctx)
    assert "temperature" not in plain and plain["system"] == SYSTEM_PROMPT
    tuned = ClaudeAnswerer(
        s,
        model="claude-haiku-4-5",
        max_tokens=300,
        system_prompt="Be brief.",
        instructions="One sentence.",
        temperature=0.3,
    )._request("q?", ctx)
    assert (tuned["model"], tuned["max_tokens"], tuned["system"], tuned["temperature"]) == (
        "claude-haiku-4-5",
        300,
        "Be brief.",
        0.3,
    )
    assert "top_p" not in tuned


def test_sweep_plans_are_checked_ordered_and_estimated(settings: Settings, store: HistoryStore) -> None:
    base = cfgs.ensure_default(store, settings)
    k2 = cfgs.save_config(store, "k2", base.config.replace(top_k=2))
    k8 = cfgs.save_config(store, "k8", base.config.replace(top_k=8))
    prompt = cfgs.save_config(store, "other prompt", base.config.replace(system_prompt="Different."))
    items = (QAItem("q1?", "a"), QAItem("q2?", "b"))
    plan = SweepPlan(items=items, configs=(k2, base, k8, prompt))
    plan.check(settings)
    # largest top-k first within a chunking and retrieval method, so smaller ones reuse its query
    assert [plan.configs[i].name for i in execution_order(plan.configs)] == [
        "k8",
        "default",
        "other prompt",
        "k2",
    ]
    with pytest.raises(InputError, match="more than once"):
        SweepPlan(items=items, configs=(k2, k2)).check(settings)
    with pytest.raises(InputError, match="at least one configuration"):
        SweepPlan(items=items, configs=()).check(settings)
    with pytest.raises(InputError, match="API key"):
        SweepPlan(items=items, configs=(k2,), backend="claude").check(settings)
    # Claude: the prompt-only variant sends other requests (counted), identical ones would count once
    claude = settings.replace(api_key=Secret("sk-test"))
    est = estimate_sweep(
        SweepPlan(items=items, configs=(base, prompt, k2), backend="claude", suite="judge"),
        claude,
        check_index=False,
    )
    assert len(est.per_config) == 3 and est.cost_usd == pytest.approx(est.alone_usd, abs=1e-3)
    offline = estimate_sweep(SweepPlan(items=items, configs=(base, prompt)), settings, check_index=False)
    assert offline.calls == 0 and offline.cost_usd == 0.0


def test_identical_configurations_are_priced_once(settings: Settings, store: HistoryStore) -> None:
    base = cfgs.ensure_default(store, settings)
    twin = cfgs.save_config(store, "twin", AssistantConfig.from_json(base.config.to_json()))
    claude = settings.replace(api_key=Secret("sk-test"))
    est = estimate_sweep(
        SweepPlan(items=(QAItem("q?", "a"),), configs=(base, twin), backend="claude", suite="judge"),
        claude,
        check_index=False,
    )
    assert est.cost_usd == pytest.approx(est.alone_usd / 2, abs=1e-3)
