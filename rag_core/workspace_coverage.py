"""Coverage map and stale questions (issue 14) as methods of :class:`~rag_core.workspace.Workspace`.

Extends :class:`~rag_core.workspace_library.LibraryMixin` (documents and question sets) so that:
- ingestion links questions before a document's content is replaced and flags stale questions
  after (the :class:`~rag_core.coverage.service.StaleTracker` hook);
- saving a set re-links the questions whose expected answer (or expected behaviour) changed, which
  clears their stale flags; renaming a set keeps its links; deleting a document flags its links.
See :mod:`rag_core.coverage.service` for the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag_core.access import AuditAction, Role
from rag_core.coverage.report import CoverageReport, build_report
from rag_core.errors import InputError
from rag_core.models import DEFAULT_COLLECTION, QAItem
from rag_core.storage import QuestionSetInfo
from rag_core.storage.sources import LinkState
from rag_core.vocab import RunStatus
from rag_core.workspace_library import LibraryMixin, rows_to_items

if TYPE_CHECKING:  # plotly loads only when a figure is drawn
    import plotly.graph_objects as go

__all__ = ["CoverageMixin", "StaleQuestion"]

#: The flag shown on a stale question.
STALE_LABEL = "review: the policy changed"


@dataclass(frozen=True)
class StaleQuestion:
    """A question of a set whose supporting passage changed or disappeared in a newer version."""

    number: int
    """1-based position in the set."""
    question: str
    ground_truth: str
    links: tuple[LinkState, ...]
    """Its stale links: old passage (``link.passage``), new passage, reason, document, section."""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "question": self.question,
            "ground_truth": self.ground_truth,
            "flag": STALE_LABEL,
            "passages": [
                {
                    "collection": ls.link.collection,
                    "document": ls.link.document,
                    "section": ls.link.section,
                    "linked_version": ls.link.version,
                    "checked_version": ls.checked_version,
                    "reason": ls.reason,
                    "old_passage": ls.link.passage,
                    "new_passage": ls.new_passage or "",
                    "flagged_at": ls.stale_at,
                }
                for ls in self.links
            ],
        }


class CoverageMixin(LibraryMixin):
    """Coverage and stale-question methods of :class:`~rag_core.workspace.Workspace`."""

    # --- the ingest hook ------------------------------------------------------------------------
    def _version_hook(self) -> Any:
        from rag_core.coverage.service import StaleTracker

        return StaleTracker(self.store)

    # --- coverage -------------------------------------------------------------------------------
    def _set_collection(self, question_set: str, collection: str | None) -> str:
        info = next((s for s in self.question_sets() if s.name == question_set), None)
        if info is None:
            self.question_set(question_set)  # raises InputError naming the set
        return collection or (info.collection if info else None) or DEFAULT_COLLECTION

    def link_questions(self, question_set: str, collection: str | None = None) -> int:
        """Compute and store the missing links of a set's questions in ``collection`` (default: the
        set's bound collection, else the default one); returns how many questions got links.
        Raises :class:`InputError` for an unknown set or collection."""
        from rag_core.coverage.service import ensure_links

        collection = self._set_collection(question_set, collection)
        if collection not in self.collections():
            raise InputError(f"There is no document collection named '{collection}'.")
        if not self.has_documents(collection):
            return 0
        n = ensure_links(self.store, self._get_index(), question_set, collection)
        if n:
            self._touch()
        return n

    def latest_run_for(self, question_set: str, collection: str) -> int | None:
        """Id of the newest run of ``question_set`` on ``collection`` that is not running; None."""
        for run in self.store.list_runs():
            if (
                run.question_set == question_set
                and run.config.get("collection", DEFAULT_COLLECTION) == collection
                and run.status != RunStatus.RUNNING
            ):
                return run.id
        return None

    def coverage(self, question_set: str, collection: str | None = None) -> CoverageReport:
        """Which sections of ``collection`` the set tests (links computed first where missing),
        with the latest run's correctness and the untested sections (see
        :mod:`rag_core.coverage.report`). Raises :class:`InputError` for an unknown set or
        collection."""
        from rag_core.coverage.links import content_sections
        from rag_core.runs.correctness import correctness

        collection = self._set_collection(question_set, collection)
        self.link_questions(question_set, collection)
        items = self.question_set(question_set)
        sections = {}
        for d in self.documents(collection):
            digests = self.store.version_sections(collection, d.name, d.version) or {}
            sections[d.name] = content_sections(digests)
        run_id = self.latest_run_for(question_set, collection)
        correct: dict[str, bool | None] = {}
        if run_id is not None:
            verdicts = self.store.get_verdicts(run_id)
            for r in self.store.get_results(run_id):
                correct[r.question] = correctness(r, verdicts.get(r.index)).correct
        links = self.store.link_states(question_set)
        return build_report(question_set, collection, items, links, sections, correct, run_id)

    @staticmethod
    def coverage_figure(report: CoverageReport) -> go.Figure:
        """The coverage heat map (:func:`rag_core.coverage.figure.coverage_heatmap`)."""
        from rag_core.coverage.figure import coverage_heatmap

        return coverage_heatmap(report)

    # --- stale questions ------------------------------------------------------------------------
    def stale_questions(self, question_set: str) -> list[StaleQuestion]:
        """The set's questions flagged "review: the policy changed", in set order, with their old
        and new passages; ``[]`` when none. Raises :class:`InputError` for an unknown set."""
        items = self.question_set(question_set)
        stale: dict[str, list[LinkState]] = {}
        for ls in self.store.link_states(question_set, stale_only=True):
            stale.setdefault(ls.question, []).append(ls)
        return [
            StaleQuestion(n, it.question, it.ground_truth, tuple(stale[it.question]))
            for n, it in enumerate(items, 1)
            if it.question in stale
        ]

    def stale_flags(self, question_set: str | None, since: str | None = None) -> dict[str, str]:
        """``{question text: reason}`` of a set's stale questions (``{}`` for no or an unknown set),
        for markers on run results. With ``since`` (a run's start, ISO-8601 UTC) only flags raised
        at or before it count: that run was answered from the changed policy."""
        if not question_set:
            return {}
        out: dict[str, str] = {}
        for ls in self.store.link_states(question_set, stale_only=True):
            if since is None or (ls.stale_at or "") <= since:
                out.setdefault(ls.question, ls.reason)
        return out

    def confirm_question(self, question_set: str, number: int) -> int:
        """The analyst confirms that question ``number`` (1-based) still has the right expected
        answer: its stale links are re-linked to the current passages. Returns the links cleared.
        Raises :class:`InputError` for an unknown set, a number out of range or a question that is
        not flagged."""
        from rag_core.coverage.service import confirm_question

        self._require(Role.ANALYST, "confirm expected answers")
        items = self.question_set(question_set)
        if not 1 <= number <= len(items):
            raise InputError(
                f"Question {number} does not exist: '{question_set}' has {len(items)} questions."
            )
        question = items[number - 1].question
        if question not in self.stale_flags(question_set):
            raise InputError(f"Question {number} of '{question_set}' is not flagged; nothing to confirm.")
        index = self._get_index()
        cleared = confirm_question(self.store, index, index.chunks_of, question_set, question)
        self._audit(AuditAction.SOURCES_CONFIRM, f"{question_set} / question {number}", f"{cleared} links")
        self._touch()
        return cleared

    # --- overrides of the library: keep links in step -----------------------------------------
    def save_question_set(
        self, name: str, rows: Iterable[QAItem | Mapping[str, Any]], *, note: str = ""
    ) -> QuestionSetInfo:
        """:meth:`LibraryMixin.save_question_set`, then re-link each question whose expected answer
        or behaviour changed and that had links (this clears its stale flags)."""
        items = [r if isinstance(r, QAItem) else rows_to_items([r])[0] for r in rows]
        try:
            before = {
                it.question: (it.ground_truth, str(it.expected)) for it in self.store.get_question_set(name)
            }
        except InputError:
            before = {}
        info = super().save_question_set(name, items, note=note)
        linked = {ls.question for ls in self.store.link_states(info.name)}
        changed = [
            it.question.strip()
            for it in items
            if it.question.strip() in before
            and it.question.strip() in linked
            and before[it.question.strip()] != (it.ground_truth.strip(), str(it.expected))
        ]
        if changed:
            from rag_core.coverage.service import relink_question

            index = self._get_index()
            for question in changed:
                relink_question(self.store, index, info.name, question)
            self._touch()
        return info

    def rename_question_set(self, old: str, new: str) -> QuestionSetInfo:
        """:meth:`LibraryMixin.rename_question_set`, keeping the set's links (and flags)."""
        states = self.store.link_states(old)
        info = super().rename_question_set(old, new)
        if states and info.name != old:
            from rag_core.coverage.service import restore_links

            restore_links(self.store, info.name, states)
        return info

    def delete_document(self, name: str, collection: str = DEFAULT_COLLECTION) -> int:
        """:meth:`LibraryMixin.delete_document`; links to it are flagged "document removed"."""
        removed = super().delete_document(name, collection)
        from rag_core.coverage.service import mark_document_removed

        if mark_document_removed(self.store, collection, name):
            self._touch()
        return removed
