"""Type stubs of the compiled scorer loops (`_fastscore.pyx`)."""

from collections.abc import Callable, Sequence
from typing import overload

class Tokens(Sequence[str]):
    @property
    def longest(self) -> int: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def stream(self) -> list[str]: ...

class Vocabulary:
    def __init__(
        self,
        words: dict[str, tuple[float, float, int, int]],
        pairs: dict[tuple[int, int], float],
        grams: dict[str, float],
        smallest: int,
        largest: int,
        chars: int,
        remember: int,
    ) -> None: ...

def vocabulary_logit(
    vocabulary: Vocabulary,
    words: Sequence[str],
    fallback: Callable[[str], tuple[float, float, int, int]],
    window: int,
    stride: int,
    min_word: int,
    min_char: int,
    power: float,
) -> float: ...

class Features:
    def __init__(
        self,
        words: dict[str, tuple[int, float, tuple[tuple[int, float], ...]]],
        pairs: dict[tuple[int, int], tuple[float, tuple[tuple[int, float], ...]]],
        oov_norm2: float,
        unknown_norm2: float,
    ) -> None: ...

def best(
    tokens: Sequence[str],
    features: Features,
    window: int,
    stride: int,
    exemplars: int,
) -> float: ...

class Triggers:
    def __init__(
        self, word_groups: dict[str, tuple[int, ...]], rule_groups: list[tuple[int, int]]
    ) -> None: ...

def scan(
    stream: list[str] | Tokens, triggers: Triggers, mark: str
) -> tuple[list[str] | Tokens, int, int, list[tuple[int, list[int]]]]: ...
def char_gram_sum(
    token: str, weights: dict[str, float], smallest: int, largest: int, chars: int
) -> tuple[float, int]: ...
def prepare_ascii(
    text: str, fold: bytes, separators: bytes
) -> tuple[str, str, Tokens, bool] | None: ...

class Needles:
    def __init__(self, needles: tuple[str, ...]) -> None: ...
    def found(self, text: str) -> int: ...

def digit_bounds(text: str) -> tuple[int, int] | None: ...

class Lexicon:
    def __init__(self, vocabulary: dict[str, int]) -> None: ...

def toxicity_segments(text: str, lexicon: Lexicon, segment_words: int) -> list[list[int]]: ...
