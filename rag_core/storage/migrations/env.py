"""Alembic environment: runs on the connection the store hands over (``config.attributes``).

The store opens the transaction (holding the database's write lock) before calling Alembic, so
two processes opening an old database never migrate it twice; Alembic runs inside it.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the store runs these migrations
    raise RuntimeError(
        "The history's migrations run when the store opens a database (rag_core.storage); "
        "open it with HistoryStore(path or RAG_DATABASE_URL) instead of the alembic command."
    )
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
