"""The tables added with issues 14 and 15 (source links and stale flags, the review queue and the
generation cache, the audit trail and run starters) work the same on SQLite and PostgreSQL."""

from __future__ import annotations

from rag_core.models import GeneratedPair, QAItem, SourceLink
from rag_core.storage import HistoryStore


def _link(text: str, origin: str = "generated") -> SourceLink:
    return SourceLink("All documents", "h.pdf", 1, "2 Leave", 3, "c1", text, "f" * 64, origin)


def test_source_links_and_stale_flags(store_target) -> None:
    with HistoryStore(store_target) as store:
        store.save_question_set("Leave", [QAItem("How many days?", "25 days."), QAItem("Carry over?", "5")])
        long_question = "Why? " * 2000  # 10,000 characters: longer than a PostgreSQL B-tree key allows
        store.set_question_sources("Leave", "How many days?", [_link("25 days"), _link("plus holidays")])
        store.set_question_sources("Leave", long_question, [_link("x", "matched")])
        links = store.question_sources("Leave")
        assert [link.passage for link in links["How many days?"]] == ["25 days", "plus holidays"]
        assert links[long_question][0].origin == "matched"

        store.record_link_check(
            "Leave",
            "How many days?",
            0,
            stale=True,
            checked_version=2,
            reason="passage changed",
            new_passage="30 days",
            stale_at="2026-12-01T10:00:00+00:00",
        )
        stale = store.link_states("Leave", stale_only=True)
        assert [(s.question, s.reason, s.new_passage) for s in stale] == [
            ("How many days?", "passage changed", "30 days")
        ]
        assert store.clear_stale("Leave", "How many days?") >= 1
        assert store.link_states("Leave", stale_only=True) == []

        store.delete_question_set("Leave")
        assert store.question_sources("Leave") == {}


def test_review_queue_cache_and_audit(store_target) -> None:
    with HistoryStore(store_target) as store:
        pair = GeneratedPair(0, "job1", "All documents", "factual", "Q?", "A.", sources=(_link("A."),))
        first, second = store.add_generated_pairs([pair, pair])
        assert second.id == first.id + 1
        store.edit_generated_pair(first.id, "Q edited?", "A edited.")
        assert store.set_generated_status([second.id], "rejected") == 1
        assert [p.question for p in store.generated_pairs(status="pending")] == ["Q edited?"]
        assert store.generated_pair(first.id).sources[0].passage == "A."

        store.generation_cache_put("k", "model", {"pairs": [1]}, 10, 5)
        store.generation_cache_put("k", "model", {"pairs": [2]}, 10, 5)  # the first answer stays
        assert store.generation_cache_get("k") == ({"pairs": [1]}, 10, 5)
        assert store.generation_cache_has(["k", "other"]) == {"k"}

        a = store.append_audit(actor="ana@example.org", role="analyst", action="run.start", target="run #1")
        b = store.append_audit(actor="bo@example.org", role="admin", action="run.delete", target="run #1")
        assert b.id == a.id + 1
        assert [e.action for e in store.audit_entries()] == ["run.delete", "run.start"]
        assert [e.actor for e in store.audit_entries(actor="ANA")] == ["ana@example.org"]
