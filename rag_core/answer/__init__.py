"""Phase 1 of a run: answers from retrieved policy excerpts.

- :mod:`~rag_core.answer.prompt` — the system prompt and user message every mode sends.
- :mod:`~rag_core.answer.claude` — the :class:`~rag_core.answer.claude.Answerer` interface and
  the Claude answerer (sync and async twins).
- :mod:`~rag_core.answer.extractive` — the offline answerer (quotes the best sentences).
- :mod:`~rag_core.answer.batches_api` — Anthropic's Message Batches API client.
- :mod:`~rag_core.answer.api_errors` — the one place Anthropic errors are mapped and credentials
  redacted.
"""
