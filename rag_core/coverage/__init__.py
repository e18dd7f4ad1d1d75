"""Coverage and stale questions (issue 14): which sections of a collection a question set tests,
and which questions a new document version made stale.

- :mod:`~rag_core.coverage.links` — link each question to the passages that support its expected
  answer (stored links, else key facts, else the best match), and the sections of a passage.
- :mod:`~rag_core.coverage.stale` — compare links with a new document version; the ingest hook.
- :mod:`~rag_core.coverage.report` — the per document × section report (questions, latest
  correctness, untested sections).
- :mod:`~rag_core.coverage.figure` — the Plotly heat map.
"""
