"""The product's logic: ingest → index → retrieval → answers → evaluation → history (see DESIGN.md).

Never imports streamlit (checked by import-linter, ``[tool.importlinter]`` in pyproject.toml).
"""

import os

# Offline and quiet by default, in one place. Python runs this before any rag_core submodule, so
# before rag_core imports chromadb, ragas, tokenizers or huggingface_hub (which read these at
# import or first use). setdefault: an explicit value in the environment wins.
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas sends usage analytics otherwise
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chromadb's product telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download from the Hugging Face hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warning from tokenizers' pool
# Tesseract (OCR, run as a subprocess that inherits this environment) starts OpenMP threads per
# page; on a shared 2-core machine they fight each other: one thread OCR'd 4 pages in 4.4 s instead
# of 17.6 s (bench/RESULTS.md). Only OpenMP programs read this; onnxruntime uses its own pool.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from rag_core import logs as _logs

_logs.install()  # every log record redacted; chatty libraries quiet (rag_core/logs.py)
