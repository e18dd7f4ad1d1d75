"""Questions written from the policies themselves (issue 14): plan → Claude through the engine →
local checks → review queue.

- :mod:`~rag_core.authoring.plan` — :class:`QuestionKind`, which passages each pair is written from.
- :mod:`~rag_core.authoring.prompt` — the prompts, the tool, parsing, cache keys.
- :mod:`~rag_core.authoring.checks` — near-duplicates, decline verification, general-knowledge flag.
- :mod:`~rag_core.authoring.job` — :class:`GenerationJob` (engine calls, cache, cancel, progress),
  the estimate and the report; :mod:`~rag_core.authoring.client` — the Claude client (cache, engine call).

Sits above ``runs`` and below the workspace in the import layers.
"""

from rag_core.authoring.job import GenerationEstimate, GenerationJob, GenerationProgress, GenerationReport
from rag_core.authoring.plan import MAX_PAIRS, GenerationPlan, QuestionKind, parse_kinds

__all__ = [
    "MAX_PAIRS",
    "GenerationEstimate",
    "GenerationJob",
    "GenerationPlan",
    "GenerationProgress",
    "GenerationReport",
    "QuestionKind",
    "parse_kinds",
]
