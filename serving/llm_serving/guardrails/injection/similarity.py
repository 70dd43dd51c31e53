"""Similarity of a prompt to a corpus of attack exemplars: TF-IDF over sliding windows.

Word unigrams and bigrams of the normalised prompt are compared by cosine with the
attack exemplars shipped as package data (``data/injection_corpus.json``), over windows
of `WINDOW` words (stride `STRIDE`) so an attack buried in a long document is not
diluted. IDF weights come from the attacks plus a background set of ordinary prompts.
The detector maps the best cosine linearly from [`SIMILARITY_LOW`, `SIMILARITY_HIGH`]
onto [0, 1]: 0.35 is above the highest cosine any background prompt reaches, and
leave-one-out attack exemplars reach a median of about 0.12, so this is a paraphrase
net for close variants of known attacks, not the main detector. The window loop runs
compiled (`_similarity.best`, weights in flat tables) or in plain Python
(`best_in_python`, the reference), with the same results.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import json
import math
import operator
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from llm_serving.guardrails.injection import normalization, rules

try:
    from llm_serving.guardrails.injection import _similarity
except ImportError:  # built without a C compiler: the plain-Python loops here
    _similarity = None  # type: ignore[assignment]

FloatArray = npt.NDArray[np.float32]
WINDOW = 32
STRIDE = 16
SIMILARITY_LOW = 0.35
SIMILARITY_HIGH = 0.75
_STOPWORDS_TEXT = (
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "it its this that these those i me my we our you your he she they them his her their "
    "do does did so than then there here what which who whom how why when where can could "
    "would should will shall may might must not no yes just very also only about into over "
    "up down out off again once all any some such own same too s t d ll m re ve please"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Attack exemplars and background prompts used by the similarity scorer."""

    attacks: tuple[str, ...]
    background: tuple[str, ...]

    @classmethod
    def load_default(cls) -> Corpus:
        """The corpus shipped with the package (``llm_serving/data/injection_corpus.json``)."""
        resource = importlib.resources.files("llm_serving") / "data" / "injection_corpus.json"
        document = json.loads(resource.read_text(encoding="utf-8"))
        return cls(
            tuple(str(item["text"]) for item in document["attacks"]),
            tuple(str(text) for text in document["background"]),
        )


class SimilarityIndex:
    """TF-IDF unigram+bigram vectors of the attack exemplars, scored over sliding windows."""

    def __init__(self, corpus: Corpus) -> None:
        documents = [self._tokens(normalization.normalize(text)) for text in corpus.attacks]
        background = [self._tokens(normalization.normalize(text)) for text in corpus.background]
        vocabulary: dict[str, int] = {}
        for tokens in documents + background:
            for token in tokens:
                vocabulary.setdefault(token, len(vocabulary))
        self._vocabulary = vocabulary
        self._oov = len(vocabulary)
        width = len(vocabulary) + 1
        self._width = width
        # Document frequencies over attacks and background together.
        all_docs = documents + background
        unigram_df: dict[int, int] = {}
        bigram_df: dict[int, int] = {}
        encoded = [self._ids(tokens) for tokens in all_docs]
        for ids in encoded:
            for index in set(ids):
                unigram_df[index] = unigram_df.get(index, 0) + 1
            for key in set(self._pairs(ids)):
                bigram_df[key] = bigram_df.get(key, 0) + 1
        n = len(all_docs)
        self._max_idf = math.log((n + 1) / 1) + 1.0

        def idf(df: int) -> float:
            return math.log((n + 1) / (df + 1)) + 1.0

        stop_ids = {vocabulary[w] for w in _STOPWORDS if w in vocabulary}
        unigram_weight = np.full(width, self._max_idf, dtype=np.float32)
        for index, df in unigram_df.items():
            unigram_weight[index] = 0.0 if index in stop_ids else idf(df)
        self._unigram_weight = unigram_weight
        bigram_keys = np.array(sorted(bigram_df), dtype=np.int64)
        self._bigram_keys = bigram_keys
        self._bigram_weight = np.array(
            [idf(bigram_df[int(k)]) for k in bigram_keys], dtype=np.float32
        )
        # Exemplar matrix, rows = features (unigrams then bigrams), columns = attacks,
        # each column L2-normalised, each row pre-multiplied by the query's feature weight.
        attacks = encoded[: len(documents)]
        count = len(attacks)
        unigram_matrix = np.zeros((width, count), dtype=np.float32)
        bigram_matrix = np.zeros((len(bigram_keys), count), dtype=np.float32)
        for column, ids in enumerate(attacks):
            for index in ids:
                unigram_matrix[index, column] += unigram_weight[index]
            for key in self._pairs(ids):
                row = int(np.searchsorted(bigram_keys, key))
                bigram_matrix[row, column] += self._bigram_weight[row]
        norms = np.sqrt((unigram_matrix**2).sum(axis=0) + (bigram_matrix**2).sum(axis=0))
        norms[norms == 0] = 1.0
        unigram_matrix /= norms
        bigram_matrix /= norms
        unigram_matrix *= unigram_weight[:, None]
        bigram_matrix *= self._bigram_weight[:, None]
        # Scoring walks sparse rows (compiled, or in plain Python): a feature occurs in
        # one or two exemplars on average, and a prompt matches a few dozen features, so
        # work proportional to the matches beats a dozen small-array numpy calls.
        unigram_norm2 = unigram_weight**2
        bigram_norm2 = self._bigram_weight**2
        # bigram key -> (squared weight, (exemplar, contribution)...); a pair the corpus
        # lacks weighs as much as the rarest feature.
        self._unknown_bigram: _BigramEntry = (self._max_idf**2, ())
        followers: dict[int, dict[str, _BigramEntry]] = {}
        pairs: dict[tuple[int, int], _BigramEntry] = {}
        tokens_by_id = {index: token for token, index in vocabulary.items()}
        for row, key in enumerate(bigram_keys.tolist()):
            first, second = divmod(key, width)
            entry = (float(bigram_norm2[row]), _sparse(bigram_matrix[row]))
            followers.setdefault(first, {})[tokens_by_id[second]] = entry
            pairs[first, second] = entry
        # token -> (squared unigram weight, (exemplar, contribution)..., next token -> bigram)
        self._oov_entry: _TokenEntry = (float(unigram_norm2[self._oov]), (), {})
        self._token_entries: dict[str, _TokenEntry] = {
            token: (
                float(unigram_norm2[index]),
                _sparse(unigram_matrix[index]),
                followers.get(index, {}),
            )
            for token, index in vocabulary.items()
        }
        self.size = count
        # The compiled path reads the same values from flat tables (`_similarity.Features`).
        self._features: _similarity.Features | None = None
        if _similarity is not None:
            words = {
                token: (index, *self._token_entries[token][:2])
                for token, index in vocabulary.items()
            }
            self._features = _similarity.Features(
                words, pairs, self._oov_entry[0], self._unknown_bigram[0]
            )

    @staticmethod
    def _tokens(normalized: str) -> list[str]:
        return rules.tokenize(normalized)

    def _ids(self, tokens: Iterable[str]) -> list[int]:
        get = self._vocabulary.get
        oov = self._oov
        return [get(token, oov) for token in tokens]

    def _pairs(self, ids: list[int]) -> list[int]:
        oov = self._oov
        width = self._width
        return [a * width + b for a, b in itertools.pairwise(ids) if a != oov and b != oov]

    def best(self, tokens: Sequence[str]) -> float:
        """Highest cosine between any window of `tokens` and any attack exemplar.

        A window is two consecutive blocks of STRIDE tokens (the whole text when it
        has at most WINDOW tokens). Every position adds its squared unigram weight and
        the squared weight of the bigram ending there to its block's norm (unknown
        features at the highest IDF); only positions whose feature occurs in an
        exemplar add to the block's dot products.
        """
        if self._features is not None and _similarity is not None:
            return _similarity.best(tokens, self._features, WINDOW, STRIDE, self.size)
        return self.best_in_python(tokens)

    def best_in_python(self, tokens: Sequence[str]) -> float:
        """`best` in plain Python: the fallback, and the reference for `_similarity.best`."""
        total = len(tokens)
        if not total:
            return 0.0
        entries = map(self._token_entries.get, tokens, itertools.repeat(self._oov_entry))
        norm2, unigram_rows, followers = zip(*entries, strict=True)
        # bigrams[i] is the pair ending at token i + 1.
        bigrams = map(dict.get, followers, tokens[1:], itertools.repeat(self._unknown_bigram))
        bigram_norm2, bigram_rows = zip(*bigrams, strict=True) if total > 1 else ((), ())
        norm2 = (norm2[0], *map(operator.add, norm2[1:], bigram_norm2))
        # Dot products per block (one block when the text fits a window): exemplar -> sum.
        stride = STRIDE if total > WINDOW else total
        dots: dict[int, dict[int, float]] = {}
        for position in itertools.compress(range(total), unigram_rows):
            _add(dots, position // stride, unigram_rows[position])
        for position in itertools.compress(range(total - 1), bigram_rows):
            _add(dots, (position + 1) // stride, bigram_rows[position])
        if not dots:
            return 0.0
        if total <= WINDOW:
            norm = math.sqrt(sum(norm2))
            (only,) = dots.values()
            return max(only.values()) / norm if norm > 0 else 0.0
        block_norm2 = [sum(norm2[start : start + STRIDE]) for start in range(0, total, STRIDE)]
        last = len(block_norm2) - 2  # first block of the last window
        best = 0.0
        for first in sorted({b for block in dots for b in (block - 1, block) if 0 <= b <= last}):
            one, two = dots.get(first), dots.get(first + 1)
            if one is None or two is None:
                top = max((one or two or {}).values())
            else:
                get = one.get
                top = max(max(one.values()), *(get(k, 0.0) + v for k, v in two.items()))
            norm = math.sqrt(block_norm2[first] + block_norm2[first + 1]) or 1.0
            best = max(best, top / norm)
        return best


_Row = tuple[tuple[int, float], ...]
_BigramEntry = tuple[float, _Row]
_TokenEntry = tuple[float, _Row, dict[str, _BigramEntry]]


def _sparse(row: FloatArray) -> tuple[tuple[int, float], ...]:
    """The non-zero entries of one feature row: (exemplar, contribution) pairs."""
    return tuple((int(column), float(row[column])) for column in np.flatnonzero(row))


def _add(dots: dict[int, dict[int, float]], block: int, row: tuple[tuple[int, float], ...]) -> None:
    target = dots.get(block)
    if target is None:
        target = dots[block] = {}
    for exemplar, value in row:
        target[exemplar] = target.get(exemplar, 0.0) + value
