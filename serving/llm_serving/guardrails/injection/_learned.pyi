"""Type stubs of `_learned.pyx`, the compiled twin of `learned`."""

from collections.abc import Callable, Sequence

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
def char_gram_sum(
    token: str, weights: dict[str, float], smallest: int, largest: int, chars: int
) -> tuple[float, int]: ...
