"""Token counting: the documented estimate, the exact tokenizer path and the fast lower bound."""

from __future__ import annotations

import pathlib

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from llm_serving.guardrails import tokens


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A tiny byte-level BPE trained on the spot: no download."""
    tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]"], show_progress=False)
    corpus = ["the quick brown fox jumps over the lazy dog", "hello world, hello tokens"] * 50
    tokenizer.train_from_iterator(corpus, trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_estimate() -> None:
    assert tokens.estimate("") == 0
    assert tokens.estimate("abcd") == 1
    assert tokens.estimate("abcde") == 2
    assert tokens.estimate("日本語") == 3  # one per non-ASCII character
    assert tokens.estimate("ab日本") == 3


def test_missing_or_absent_tokenizer_falls_back(tmp_path: pathlib.Path) -> None:
    assert not tokens.TokenCounter.from_path(None).exact
    assert not tokens.TokenCounter.from_path(str(tmp_path / "nope.json")).exact
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    counter = tokens.TokenCounter.from_path(str(broken))
    assert not counter.exact
    assert counter.count("abcdefgh") == 2


def test_exact_counts_match_the_tokenizer(tokenizer_json: pathlib.Path) -> None:
    counter = tokens.TokenCounter.from_path(str(tokenizer_json))
    assert counter.exact
    reference = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    for text in ["the quick brown fox", "hello world", "zebra xylophone 12345", ""]:
        expected = len(reference.encode(text, add_special_tokens=False).ids)
        assert counter.count(text) == expected


def test_exceeds(tokenizer_json: pathlib.Path) -> None:
    counter = tokens.TokenCounter.from_path(str(tokenizer_json))
    assert counter.exceeds("hello world", 100) is None
    count = counter.count("hello world hello world")
    assert counter.exceeds("hello world hello world", count - 1) == count
    # Far too long: rejected on the lower bound without encoding.
    huge = "x" * (counter.max_chars_per_token * 50 + 1)
    bound = counter.exceeds(huge, 10)
    assert bound is not None
    assert bound > 10
    estimate = tokens.TokenCounter(None)
    assert estimate.exceeds("a" * 40, 10) is None
    assert estimate.exceeds("a" * 41, 10) == 11
