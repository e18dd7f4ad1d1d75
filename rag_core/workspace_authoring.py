"""Generating questions from the documents and reviewing them (issue 14), as methods of
:class:`~rag_core.workspace.Workspace` (see that module's contracts; the rules of a generation are
in :mod:`rag_core.authoring`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag_core.access import AuditAction, Principal, Role, acting_as
from rag_core.authoring.job import (
    GenerationEstimate,
    GenerationJob,
    GenerationProgress,
    GenerationReport,
    find,
    register,
)
from rag_core.authoring.plan import MAX_PAIRS, GenerationPlan, QuestionKind, build_plan, parse_kinds
from rag_core.errors import InputError
from rag_core.models import GeneratedPair, QAItem
from rag_core.reporting.export import questions_csv
from rag_core.settings import Settings
from rag_core.storage import HistoryStore, QuestionSetInfo
from rag_core.vocab import Expected

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.ingest.index import PolicyIndex

__all__ = ["TEMPLATE_ROWS", "AcceptedPairs", "AuthoringMixin"]


@dataclass(frozen=True)
class AcceptedPairs:
    """What accepting generated pairs did: the set now, and which pairs were already in it."""

    info: QuestionSetInfo
    added: int
    """Pairs added as new questions (with their source links)."""
    kept: tuple[int, ...] = ()
    """Ids of pairs whose question was already in the set: it kept its own expected answer, links
    and flags (the pair is marked accepted)."""

    @property
    def summary(self) -> str:
        """One line for the page and the CLI."""
        text = f"Added {self.added} to '{self.info.name}' ({self.info.n_items} questions now)."
        if self.kept:
            ids = ", ".join(f"#{i}" for i in self.kept)
            text += (
                f" {ids} {'was' if len(self.kept) == 1 else 'were'} already in the set and kept "
                "the set's expected answer; edit it in the question-set editor if it should change."
            )
        return text


#: The rows of the question template CSV offered when generation is not available.
TEMPLATE_ROWS = (
    QAItem(
        "How many days of annual leave do full-time employees get?",
        "Full-time employees get 25 days of annual leave a year plus public holidays.",
    ),
    QAItem(
        "An employee who is ill for ten days — what do they need to provide?",
        "Absences longer than seven calendar days need a fit note from a doctor.",
    ),
    QAItem(
        "Does the company offer a company car allowance?",
        "The handbook does not cover company cars or car allowances.",
        Expected.DECLINE,
    ),
)


class AuthoringMixin:
    """Generation and review-queue methods of :class:`~rag_core.workspace.Workspace`."""

    settings: Settings
    store: HistoryStore
    _lock: threading.RLock

    if TYPE_CHECKING:

        @property
        def engine(self) -> Engine: ...
        def _touch(self) -> None: ...
        def _get_index(self) -> PolicyIndex: ...
        def _check_index(self) -> None: ...
        def collections(self) -> list[str]: ...
        def question_sets(self) -> list[QuestionSetInfo]: ...
        def question_set(self, name: str) -> list[QAItem]: ...
        def _require(self, role: Role, action: str) -> Principal: ...
        def _audit(self, action: AuditAction, target: str = "", detail: str = "") -> None: ...
        def _require_starter(self, started_by: str, action: str, what: str) -> Principal: ...
        def _may_control(self, started_by: str) -> bool: ...

    # --- availability ---------------------------------------------------------------------------
    @property
    def can_generate(self) -> bool:
        """True when an API key is configured (generation needs Claude)."""
        return self.settings.has_key

    @staticmethod
    def question_kinds() -> list[QuestionKind]:
        return list(QuestionKind)

    @staticmethod
    def question_template_csv() -> str:
        """A question-set CSV (question, ground_truth, expected) with example rows to fill by hand."""
        return questions_csv(TEMPLATE_ROWS)

    # --- planning -------------------------------------------------------------------------------
    def generation_sections(self, collection: str, documents: Sequence[str] = ()) -> list[tuple[str, str]]:
        """``(document, section path)`` of the collection's chunks in document order (a section
        without a heading is ``""``)."""
        out: dict[tuple[str, str], None] = {}
        for name, chunks in self._chunks_by_document(collection).items():
            if documents and name not in documents:
                continue
            for c in chunks:
                out.setdefault((name, c.section), None)
        return list(out)

    def _chunks_by_document(self, collection: str) -> dict[str, list[Any]]:
        if collection not in self.collections():
            raise InputError(
                f"There is no document collection named '{collection}'. Collections: {', '.join(self.collections())}."
            )
        self._check_index()
        docs = self.store.list_documents(collection)
        index = self._get_index()
        return {d.name: list(index.chunks_of(d.name, collection)) for d in docs}

    def plan_generation(
        self,
        collection: str,
        n: int,
        kinds: Iterable[str] | str | None = None,
        *,
        documents: Sequence[str] = (),
        sections: Sequence[tuple[str, str]] = (),
    ) -> GenerationPlan:
        """What a generation would write (see :mod:`rag_core.authoring.plan`). Raises
        :class:`InputError` for an unknown collection, document, section or kind, ``n`` outside
        1…:data:`MAX_PAIRS`, or an empty collection."""
        chosen = parse_kinds(kinds if not isinstance(kinds, (list, tuple)) else list(kinds))
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise InputError(
                f"The number of questions must be a whole number between 1 and {MAX_PAIRS}."
            ) from None
        by_doc = self._chunks_by_document(collection)
        versions = {d.name: d.version for d in self.store.list_documents(collection)}
        queue = self.store.generated_pairs(status=None, collection=collection)
        used = [(p.kind, tuple(s.chunk_id for s in p.sources)) for p in queue]
        return build_plan(
            collection=collection,
            chunks_by_document=by_doc,
            versions=versions,
            n=n,
            kinds=chosen,
            documents=documents,
            sections=sections,
            used=used,
            declines_so_far=sum(1 for p in queue if p.kind == QuestionKind.DECLINE),
        )

    def _existing_questions(self, collection: str, into: str | None) -> list[str]:
        """Questions a new pair must not duplicate: the target set's and the queue's (not rejected)."""
        out = [
            p.question
            for p in self.store.generated_pairs(status=None, collection=collection)
            if p.status != "rejected"
        ]
        if into and any(s.name == into for s in self.question_sets()):
            out += [it.question for it in self.question_set(into)]
        return list(dict.fromkeys(out))

    def estimate_generation(self, plan: GenerationPlan, *, into: str | None = None) -> GenerationEstimate:
        """The cost of ``plan`` before it starts (cache hits are free)."""
        from rag_core.authoring.job import estimate

        return estimate(
            self.settings,
            self.store,
            plan,
            model=self.settings.answer_model,
            avoid=self._existing_questions(plan.collection, into),
        )

    # --- running -----------------------------------------------------------------------------------
    def start_generation(
        self,
        plan: GenerationPlan,
        *,
        into: str | None = None,
        accept_all: bool = False,
        closed_book: bool = True,
    ) -> str:
        """Start writing ``plan``'s pairs in the background; returns the job id at once.

        The pairs land in the review queue (with ``accept_all`` they are accepted into ``into`` at
        once). Raises :class:`InputError` without an API key, or ``accept_all`` without ``into``;
        needs the analyst role.
        """
        me = self._require(Role.ANALYST, "generate questions")
        if not self.can_generate:
            raise InputError(
                "Generating questions needs Claude, and no Anthropic API key is configured. Set "
                "ANTHROPIC_API_KEY (or add it to .streamlit/secrets.toml), or write questions by hand "
                "from the template CSV."
            )
        if accept_all and not (into or "").strip():
            raise InputError(
                "Accepting every generated question needs a question set to put them in (--into)."
            )
        collection = plan.collection

        def search(questions: list[str]) -> list[list[Any]]:
            return self._get_index().query(questions, 4, collection)

        def accept(pairs: list[GeneratedPair]) -> str | None:
            assert into is not None
            with acting_as(me):  # the job's thread acts as the analyst who started it
                self.accept_generated([p.id for p in pairs], into)
            return into

        job = GenerationJob(
            plan,
            settings=self.settings,
            store=self.store,
            engine=self.engine,
            model=self.settings.answer_model,
            search=search,
            existing=self._existing_questions(collection, into),
            closed_book=closed_book,
            accept=accept if accept_all else None,
        )
        job.started_by = me.owner_key
        register(job)
        job.start()
        self._audit(
            AuditAction.QUESTIONS_GENERATE,
            collection,
            f"{plan.n} pairs, job {job.id}" + (f", into '{into}'" if into else ""),
        )
        self._touch()
        return job.id

    def generation_progress(self, job_id: str) -> GenerationProgress | None:
        """Progress of a generation of this process; None when unknown."""
        job = find(job_id)
        if job is None:
            return None
        p = job.progress()
        if p.finished:
            self._touch()
        return p

    def cancel_generation(self, job_id: str) -> bool:
        """Stop a generation (pairs already written are still checked and queued). Only the analyst
        who started it or an admin may cancel it."""
        job = find(job_id)
        if job is None:
            return False
        self._require_starter(job.started_by, "cancel", f"question generation {job_id}")
        if job.done():
            return False
        job.cancel()
        self._audit(AuditAction.QUESTIONS_GENERATE_CANCEL, job.plan.collection, f"job {job_id}")
        return True

    def can_cancel_generation(self, job_id: str) -> bool:
        """Whether the acting principal may cancel the generation ``job_id`` (pages hide the button)."""
        job = find(job_id)
        return job is not None and self._may_control(job.started_by)

    def wait_generation(self, job_id: str, timeout: float | None = None) -> GenerationReport | None:
        """Block until a generation ends (CLI, tests); its report, or None if still running/unknown."""
        job = find(job_id)
        if job is None:
            return None
        report = job.wait(timeout)
        self._touch()
        return report

    # --- review ------------------------------------------------------------------------------------
    def review_queue(
        self, collection: str | None = None, status: str | None = "pending"
    ) -> list[GeneratedPair]:
        """Generated pairs waiting for review (or with another ``status``; None = all), oldest first."""
        return self.store.generated_pairs(status=status, collection=collection)

    def edit_generated(self, pair_id: int, question: str, expected_answer: str) -> GeneratedPair:
        """Save the analyst's edit of a pending pair. Raises :class:`InputError` for an empty
        question or expected answer, or an unknown / already reviewed pair."""
        self._require(Role.ANALYST, "edit generated questions")
        question, expected_answer = " ".join((question or "").split()), (expected_answer or "").strip()
        if not question:
            raise InputError("The question cannot be empty.")
        if not expected_answer:
            raise InputError("The expected answer cannot be empty.")
        pair = self.store.generated_pair(pair_id)
        if pair.status != "pending":
            raise InputError(f"Generated question #{pair_id} was already {pair.status}.")
        try:
            edited = self.store.edit_generated_pair(pair_id, question, expected_answer)
        finally:
            self._touch()
        self._audit(AuditAction.QUESTIONS_REVIEW, f"generated question #{pair_id}", "edited")
        return edited

    def reject_generated(self, pair_ids: Iterable[int]) -> int:
        """Reject pairs (they stay in the queue's history, never in a set); returns how many."""
        self._require(Role.ANALYST, "reject generated questions")
        ids = [int(i) for i in pair_ids]
        for i in ids:
            self.store.generated_pair(i)
        try:
            rejected = self.store.set_generated_status(ids, "rejected")
        finally:
            self._touch()
        if ids:
            self._audit(
                AuditAction.QUESTIONS_REVIEW,
                ", ".join(f"#{i}" for i in ids[:20])
                + (f" and {len(ids) - 20} more" if len(ids) > 20 else ""),
                f"rejected {rejected}",
            )
        return rejected

    def accept_generated(self, pair_ids: Iterable[int], into: str) -> AcceptedPairs:
        """Add pending pairs to the question set ``into`` (created, and bound to the pairs'
        collection, when new) with their source links; returns the set's info and what was kept.

        A question already in the set is not added twice: it keeps its expected answer, its links
        and any stale flag (the pair is marked accepted). Raises
        :class:`InputError` for an empty set name, an unknown or already reviewed pair, a set bound
        to another collection, or a set that would not validate (nothing is saved then).
        """
        self._require(Role.ANALYST, "accept generated questions")
        into = (into or "").strip()
        if not into:
            raise InputError("Choose or type the name of the question set to add the questions to.")
        pairs = [self.store.generated_pair(int(i)) for i in pair_ids]
        done = [p for p in pairs if p.status != "pending"]
        if done:
            raise InputError(
                f"Generated question #{done[0].id} was already {done[0].status}; refresh the review queue."
            )
        if not pairs:
            raise InputError("No generated questions were chosen.")
        info_now = next((s for s in self.question_sets() if s.name == into), None)
        other = next(
            (p for p in pairs if info_now and info_now.collection and p.collection != info_now.collection),
            None,
        )
        if other is not None and info_now is not None:
            raise InputError(
                f"The question set '{into}' is bound to the collection '{info_now.collection}', but "
                f"generated question #{other.id} was written from '{other.collection}'. Choose another set "
                "or a new one."
            )
        with self._lock:
            exists = info_now is not None
            items = list(self.question_set(into)) if exists else []
            have = {it.question for it in items}
            added: list[GeneratedPair] = []
            for p in pairs:
                if p.question not in have:
                    items.append(QAItem(p.question, p.expected_answer, p.expected))
                    have.add(p.question)
                    added.append(p)
            info = self.store.save_question_set(into, items)
            if not exists:
                collections = {p.collection for p in pairs}
                if len(collections) == 1:
                    info = self.store.bind_question_set(into, collections.pop())
            for p in added:  # a question already in the set keeps its own links and flags
                self.store.set_question_sources(into, p.question, list(p.sources))
            self.store.set_generated_status([p.id for p in pairs], "accepted", into)
        self._touch()
        self._audit(
            AuditAction.QUESTION_SET_SAVE,
            info.name,
            f"{'edited' if exists else 'created'}, {info.n_items} questions; accepted {len(pairs)} "
            f"generated ({len(added)} added"
            + (f", {len(pairs) - len(added)} already in the set" if len(added) < len(pairs) else "")
            + ")",
        )
        return AcceptedPairs(info, len(added), tuple(p.id for p in pairs if p not in added))
