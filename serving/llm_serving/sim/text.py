"""Token estimates, deterministic pseudo-words and toy embeddings for the engine simulator.

The simulator has no tokenizer and no weights, so it states its approximations:
a prompt costs one token per four characters (rounded up; OpenAI's rule of thumb
for English), a chat message adds four tokens of framing and the assistant
priming three more. Output tokens are pseudo-words from a fixed vocabulary, one
word per token, drawn by a `random.Random` seeded from the request, so a test can
predict the text exactly with `pseudo_words(seed, n)`. Embeddings are bag-of-words
feature hashing, normalised to unit length: texts sharing words are close, which
is enough for a semantic cache to have something to find.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
ASSISTANT_PRIMING_TOKENS = 3

# Soft consonants and two or three syllables: with one-syllable words and f, k, s, v
# the pseudo-words read as slang fragments often enough (about 3 completions of 16
# words in 1000) that a toxicity classifier in front of the simulator blocked them.
_CONSONANTS = "bdglmnprtz"
_VOWELS = "aeiou"


def _build_vocabulary(size: int = 512) -> tuple[str, ...]:
    rng = random.Random(20240601)  # noqa: S311 - not security relevant
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        syllables = rng.randint(2, 3)
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return tuple(words)


VOCABULARY: tuple[str, ...] = _build_vocabulary()


def estimate_tokens(text: str) -> int:
    """Tokens in `text`: one per four characters, rounded up (0 for empty text)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def chat_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Estimated prompt tokens of a chat request, framing included."""
    total = ASSISTANT_PRIMING_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        total += estimate_tokens(str(message.get("role", "")))
        total += estimate_tokens(message_text(message.get("content")))
    return total


def chat_prompt_text(messages: Sequence[dict[str, Any]]) -> str:
    """The messages flattened into one string, as a seed for deterministic output."""
    return "\n".join(
        f"<{message.get('role', '')}>{message_text(message.get('content'))}" for message in messages
    )


def request_seed(base_seed: int, prompt: str, seed: int | None) -> int:
    """A stable 64-bit seed from the simulator's seed, the prompt and the request's seed."""
    digest = hashlib.sha256(f"{base_seed}\x00{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def pseudo_word_stream(seed: int) -> Iterator[str]:
    """Endless deterministic words for one request; token i is the i-th word."""
    rng = random.Random(seed)  # noqa: S311 - not security relevant
    while True:
        yield VOCABULARY[rng.randrange(len(VOCABULARY))]


def pseudo_words(seed: int, count: int) -> list[str]:
    """The first `count` words `pseudo_word_stream(seed)` yields."""
    stream = pseudo_word_stream(seed)
    return [next(stream) for _ in range(count)]


def token_text(word: str, index: int, leading_space: bool) -> str:
    """The text of output token `index`: words are separated by one space."""
    if index == 0 and not leading_space:
        return word
    return " " + word


_WORD = re.compile(r"\w+", re.UNICODE)


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector for `text` by signed feature hashing of its lower-cased words."""
    vector = [0.0] * dimensions
    words: Iterable[str] = _WORD.findall(text.lower()) or [text]
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        index = value % dimensions
        sign = 1.0 if (value >> 63) & 1 else -1.0
        vector[index] += sign
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
