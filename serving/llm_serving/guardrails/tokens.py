"""Prompt token counting for the `maxPromptTokens` limit.

With the model's ``tokenizer.json`` mounted, counts are exact: the file is loaded
once with Hugging Face `tokenizers` (Rust, no download) and each text is encoded
without special tokens. Without it the count is an estimate, documented here because
users see it in rejections: one token per started four ASCII characters plus one
token per non-ASCII character. English prose runs at about four characters per token
in Llama-family BPE vocabularies, and CJK characters, emoji and accented letters cost
about one token each, so the estimate is close for prose and conservative (high) for
text with many non-ASCII characters. It is O(n) in C and costs about a microsecond
per kilobyte.
"""

from __future__ import annotations

import logging
import os

import tokenizers

logger = logging.getLogger(__name__)

ESTIMATE_CHARS_PER_TOKEN = 4


class TokenCounter:
    """Counts tokens exactly with a tokenizer, or estimates them (see the module docstring)."""

    def __init__(self, tokenizer: tokenizers.Tokenizer | None = None) -> None:
        self._tokenizer = tokenizer
        self.exact: bool = tokenizer is not None
        # The longest vocabulary entry bounds how many characters one token can cover,
        # which gives a cheap lower bound on the count of a huge text.
        self.max_chars_per_token: int = ESTIMATE_CHARS_PER_TOKEN
        if tokenizer is not None:
            vocab = tokenizer.get_vocab(with_added_tokens=True)
            self.max_chars_per_token = max((len(piece) for piece in vocab), default=1) or 1

    @classmethod
    def from_path(cls, tokenizer_json: str | None) -> TokenCounter:
        """Load `tokenizer_json` when given and present; otherwise fall back to the estimate.

        The estimate is ceil(ASCII characters / 4) plus one token per non-ASCII
        character (see the module docstring); `exact` tells which one is in use.
        """
        if tokenizer_json and os.path.isfile(tokenizer_json):
            try:
                return cls(tokenizers.Tokenizer.from_file(tokenizer_json))
            except Exception as exc:  # a corrupt file must not stop the gateway
                logger.warning(
                    "cannot load tokenizer %s (%s); estimating token counts instead",
                    tokenizer_json,
                    type(exc).__name__,
                )
        elif tokenizer_json:
            logger.info("tokenizer %s not found; estimating token counts", tokenizer_json)
        return cls(None)

    def count(self, text: str) -> int:
        """Number of tokens in `text` (exact with a tokenizer, else the estimate)."""
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return estimate(text)

    def exceeds(self, text: str, limit: int) -> int | None:
        """The token count when it is above `limit`, else None.

        Texts so long that even the longest token could not cover them in `limit`
        tokens are rejected without tokenizing (a 4 MiB body costs no encode time);
        the returned count is then the lower bound.
        """
        if len(text) > limit * self.max_chars_per_token:
            lower_bound = -(-len(text) // self.max_chars_per_token)
            if lower_bound > limit:
                return lower_bound
        count = self.count(text)
        return count if count > limit else None


def estimate(text: str) -> int:
    """ceil(ASCII characters / 4) + one per non-ASCII character."""
    if text.isascii():
        return -(-len(text) // ESTIMATE_CHARS_PER_TOKEN)
    ascii_chars = len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // ESTIMATE_CHARS_PER_TOKEN) + (len(text) - ascii_chars)
