"""Type stubs of `_similarity.pyx`, the compiled twin of `similarity`."""

from collections.abc import Sequence

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
