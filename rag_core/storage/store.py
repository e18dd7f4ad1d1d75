"""History store (a SQLite file, or PostgreSQL with ``RAG_DATABASE_URL``): question sets, documents, runs, per-question results, scores, timelines.

Written incrementally, so a crash loses nothing that finished: :meth:`HistoryStore.create_run`
inserts one ``"pending"`` result row per question up front, each answer and each score is
committed as soon as it arrives, and :meth:`HistoryStore.mark_interrupted` (called at app / CLI
start) turns runs whose process died into visible ``"interrupted"`` partial runs that
:meth:`HistoryStore.missing_items` can resume.

Contracts shared by every method
--------------------------------
* "Empty" is ``[]`` (or ``{}``), never ``None``.
* Asking for something that does not exist (``get_run``, ``get_results``, ``get_requests``,
  ``get_question_set``, ``missing_items``) raises :class:`InputError` naming the run or set: it is
  an id or name the user picked. Writing into a run or question that no longer exists
  (``save_answer``, ``save_scores``, ``save_requests``, ``update_run``) raises
  :class:`StorageError` naming the run. Deleting something absent is a no-op returning ``False``.
* Every ``sqlite3`` error is re-raised as :class:`StorageError` with a message saying what to do
  (e.g. "locked by another process"). A damaged file (found by ``PRAGMA quick_check`` when the
  store opens and before a run is created, or by any query) gets one message: move it aside or
  restore a backup.
* A write either commits whole or not at all (one transaction each): a full disk, a read-only
  file or a lock held too long raises :class:`StorageError` and leaves nothing half-written.
* NaN / infinity never reach the database: a non-finite metric value is stored as a *failed*
  score (``value`` NULL, error ``"metric returned NaN"``), and JSON columns are written with
  ``allow_nan=False`` after replacing non-finite floats by ``null``.
* Secrets never reach storage: there is no column for an API key, and run config / timings /
  summary dicts holding a key such as ``api_key`` (or a :class:`Secret`, or an ``sk-ant-`` string)
  are refused with :class:`StorageError`.

Concurrency
-----------
One store is shared by Streamlit script threads and the engine's loop thread (``on_result``
callbacks), and the same file may be opened by two processes (the app and a CLI run).

*In-process:* a single connection opened with ``check_same_thread=False`` and guarded by an
``RLock``. Chosen over one connection per thread (``threading.local``) because Streamlit starts a
new script thread for every rerun: per-thread connections would pile up (one per rerun) until the
garbage collector closes them, whereas one connection is opened once and closed once
(``st.cache_resource(on_release=store.close)``). Serialising in-process access costs little: every
statement here takes milliseconds and nothing is held across user code.

*Across processes:* WAL journal mode (readers never block the writer and vice versa),
``busy_timeout`` (a writer waits up to :data:`~rag_core.storage.schema.BUSY_TIMEOUT_S` for the other process's write to
finish), and short write transactions opened with ``BEGIN IMMEDIATE`` (the write lock is taken up
front, so a read-then-write transaction can never fail half-way with SQLITE_BUSY).

Layout: :class:`HistoryStore` is assembled from one class per topic — the connection, migrations
and error translation (:mod:`~rag_core.storage.connection`), question sets and documents
(:mod:`~rag_core.storage.catalog`), runs (:mod:`~rag_core.storage.runs_store`), results and timeline
(:mod:`~rag_core.storage.results_store`), run attempts (:mod:`~rag_core.storage.attempts`), the judge cache (:mod:`~rag_core.storage.judge_cache`)
and experiments — configurations, question-set versions, run identity, sweeps (:mod:`~rag_core.storage.experiments`),
and the analyst's verdicts (:mod:`~rag_core.storage.verdicts`).
"""

from __future__ import annotations

from rag_core.storage.attempts import AttemptsStore
from rag_core.storage.audit import AuditStore
from rag_core.storage.authoring import AuthoringStore
from rag_core.storage.catalog import CatalogStore
from rag_core.storage.dialects import PostgresDialect
from rag_core.storage.experiments import ExperimentsStore
from rag_core.storage.judge_cache import JudgeCacheStore
from rag_core.storage.progress import ProgressStore
from rag_core.storage.results_store import ResultsStore
from rag_core.storage.runs_store import RunsStore
from rag_core.storage.sources import SourcesStore
from rag_core.storage.verdicts import VerdictsStore

__all__ = ["HistoryStore"]


class HistoryStore(
    CatalogStore,
    RunsStore,
    ResultsStore,
    AttemptsStore,
    JudgeCacheStore,
    ExperimentsStore,
    VerdictsStore,
    SourcesStore,
    AuthoringStore,
    AuditStore,
    ProgressStore,
):
    """The project's history (SQLite file or PostgreSQL URL). Safe to share between threads and processes.

    Opening creates the folder and the database if needed, checks the file's structure
    (``PRAGMA quick_check``, also run before each new run is created) and migrates an older schema.
    Raises :class:`StorageError` when the file cannot be opened, is damaged or is not a SQLite
    database, or was written by a newer version of the app.
    """

    def __repr__(self) -> str:
        return f"HistoryStore({self.location!r})"

    @property
    def location(self) -> str:
        """Where the history lives (its resolved file path, or the server's URL without its
        password): the namespace of its live runs."""
        if isinstance(self._dialect, PostgresDialect):
            return self._dialect.safe_url
        assert self.db_path is not None
        return str(self.db_path.resolve())

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
