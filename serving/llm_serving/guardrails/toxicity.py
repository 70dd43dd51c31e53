"""Toxicity scoring of generated text with alt-profanity-check's model, on a fast path.

`alt-profanity-check` ships a TF-IDF vectorizer and a calibrated linear SVM ensemble
(five LinearSVC models, each with a sigmoid calibrator, probabilities averaged).
Calling it through scikit-learn costs milliseconds per text, so at start-up the
vocabulary, IDF weights, coefficients and calibration parameters are extracted once
and a text is scored with a few numpy operations. `ToxicityModel.probability` gives
the same numbers as ``profanity_check.predict_prob`` (a unit test holds them equal).

The model was trained on short comments, so a completion is scored per segment: a
segment ends at a sentence end (``.``, ``!`` or ``?`` before whitespace), a newline,
or after 64 words, and the score is the highest segment probability. The same
segmentation runs incrementally in `ToxicityTracker` for streams, so a whole
completion and the same completion streamed in any chunking get the same segment
scores (the tracker also scores the still-open segment at each step, so a stream is
never less strict).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import operator
import os
import re
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    from llm_serving.guardrails import _tables, _toxicity
except ImportError:  # built at install; the regular-expression split is the fallback
    _tables = _toxicity = None  # type: ignore[assignment]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SEGMENT_WORDS = 64
#: Up to this many known words `score` sums in plain Python: below it, numpy's fixed
#: cost per call (about 30 µs in all) is more than the whole sum.
SMALL_TEXT_WORDS = 32
_TOKEN = re.compile(r"\w\w+|[.!?](?=\s)|\n")
_WHITESPACE = re.compile(r"\s")


class ToxicityModel:
    """Linear TF-IDF scorer equivalent to alt-profanity-check's `predict_prob`."""

    def __init__(
        self,
        vocabulary: dict[str, int],
        idf: FloatArray,
        coef: FloatArray,
        intercept: FloatArray,
        calibration_a: FloatArray,
        calibration_b: FloatArray,
    ) -> None:
        self._vocabulary = vocabulary
        # The same vocabulary in a flat table, for the compiled split of ASCII text.
        self._lexicon = None if _tables is None else _tables.Lexicon(vocabulary)
        self._idf = idf
        self._coef = coef  # (models, features)
        self._intercept = intercept
        self._a = calibration_a
        self._b = calibration_b
        self._features = len(idf)
        self._models = len(intercept)
        self._intercepts = [float(x) for x in intercept]
        self._as = [float(x) for x in calibration_a]
        self._bs = [float(x) for x in calibration_b]
        # Per-term (idf^2, idf * coef of each model): the streaming path's running sums.
        scaled = (coef * idf).T
        self._rows: list[tuple[float, tuple[float, ...]]] = [
            (float(idf[i] * idf[i]), tuple(float(x) for x in scaled[i])) for i in range(len(idf))
        ]
        # The same numbers per model and per term, for the short-text path of `score`.
        self._idf2 = [row[0] for row in self._rows]
        self._weights = [list(col) for col in zip(*(row[1] for row in self._rows), strict=True)]

    @classmethod
    def from_profanity_check(cls) -> ToxicityModel:
        """Extract the model that ships inside the `alt-profanity-check` package.

        The package directory is located without importing it (its ``__init__``
        would load a second copy of the model through scikit-learn).
        """
        import joblib  # heavy (imports scikit-learn): only needed here

        spec = importlib.util.find_spec("profanity_check")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("alt-profanity-check is not installed")
        data = os.path.join(next(iter(spec.submodule_search_locations)), "data")
        vectorizer = joblib.load(os.path.join(data, "vectorizer.joblib"))
        model = joblib.load(os.path.join(data, "model.joblib"))
        return cls.from_sklearn(vectorizer, model)

    @classmethod
    def from_sklearn(cls, vectorizer: Any, model: Any) -> ToxicityModel:
        """Build from a fitted TfidfVectorizer and CalibratedClassifierCV (sigmoid, binary)."""
        params = vectorizer.get_params()
        expected = {
            "analyzer": "word",
            "lowercase": True,
            "ngram_range": (1, 1),
            "token_pattern": r"(?u)\b\w\w+\b",
            "norm": "l2",
            "use_idf": True,
            "sublinear_tf": False,
            "binary": False,
            "preprocessor": None,
            "tokenizer": None,
            "strip_accents": None,
        }
        for key, value in expected.items():
            if params.get(key) != value:
                raise RuntimeError(f"unsupported profanity vectorizer: {key}={params.get(key)!r}")
        if getattr(model, "method", None) != "sigmoid" or len(model.classes_) != 2:
            raise RuntimeError("unsupported profanity model: expected binary sigmoid calibration")
        coef, intercept, a, b = [], [], [], []
        for calibrated in model.calibrated_classifiers_:
            estimator = calibrated.estimator
            coef.append(np.asarray(estimator.coef_, dtype=np.float64).reshape(-1))
            intercept.append(float(np.asarray(estimator.intercept_).reshape(-1)[0]))
            (calibrator,) = calibrated.calibrators
            a.append(float(calibrator.a_))
            b.append(float(calibrator.b_))
        vocabulary = {str(term): int(index) for term, index in vectorizer.vocabulary_.items()}
        return cls(
            vocabulary,
            np.asarray(vectorizer.idf_, dtype=np.float64),
            np.vstack(coef),
            np.asarray(intercept, dtype=np.float64),
            np.asarray(a, dtype=np.float64),
            np.asarray(b, dtype=np.float64),
        )

    def ids(self, words: list[str]) -> list[int]:
        """Vocabulary indices of the known words (lowercased tokens), in order."""
        get = self._vocabulary.get
        return [index for word in words if (index := get(word)) is not None]

    def probability(self, text: str) -> float:
        """P(toxic) of the whole text, exactly as alt-profanity-check computes it."""
        words = [t for t in _TOKEN.findall(text.lower()) if len(t) > 1]
        return float(self.segment_probabilities([self.ids(words)], include_empty=True)[0])

    def segment_probabilities(
        self, segments: list[list[int]], *, include_empty: bool = False
    ) -> FloatArray:
        """P(toxic) for each segment (a list of vocabulary indices with repeats).

        Empty segments score 0.0 unless `include_empty` (then the model's bias alone).
        """
        count = len(segments)
        result = np.zeros(count, dtype=np.float64)
        lengths = np.fromiter((len(s) for s in segments), dtype=np.int64, count=count)
        total = int(lengths.sum())
        if total:
            flat = np.fromiter((i for s in segments for i in s), dtype=np.int64, count=total)
            owner = np.repeat(np.arange(count, dtype=np.int64), lengths)
            keys, counts = np.unique(owner * self._features + flat, return_counts=True)
            seg = keys // self._features
            feature = keys % self._features
            values = counts * self._idf[feature]
            norms = np.sqrt(np.bincount(seg, weights=values * values, minlength=count))
            present = np.flatnonzero(norms)
            weighted = self._coef[:, feature] * values  # (models, entries)
            starts = np.searchsorted(seg, present)
            dots = np.add.reduceat(weighted, starts, axis=1) / norms[present]
            decision = dots + self._intercept[:, None]
            probs = 1.0 / (1.0 + np.exp(self._a[:, None] * decision + self._b[:, None]))
            result[present] = probs.mean(axis=0)
        if include_empty:
            empty = lengths == 0
            if empty.any():
                bias = 1.0 / (1.0 + np.exp(self._a * self._intercept + self._b))
                result[empty] = bias.mean()
        return result

    def segments(self, text: str) -> list[list[int]]:
        """Known-word ids of each segment of `text` (see the module docstring)."""
        if self._lexicon is not None and _toxicity is not None and text.isascii():
            return _toxicity.toxicity_segments(text, self._lexicon, SEGMENT_WORDS)
        return self.segments_in_python(text)

    def segments_in_python(self, text: str) -> list[list[int]]:
        """`segments` with the regular expression: the fallback, and the reference for
        `_toxicity.toxicity_segments`."""
        get = self._vocabulary.get
        segments: list[list[int]] = []
        current: list[int] = []
        words = 0
        for token in _TOKEN.findall(text.lower()):
            if len(token) == 1:
                if current:
                    segments.append(current)
                current, words = [], 0
                continue
            index = get(token)
            if index is not None:
                current.append(index)
            words += 1
            if words == SEGMENT_WORDS:
                if current:
                    segments.append(current)
                current, words = [], 0
        if current:
            segments.append(current)
        return segments

    def score(self, text: str) -> float:
        """Highest segment probability of `text` (0.0 when it has no known words)."""
        segments = self.segments(text)
        if not segments:
            return 0.0
        if sum(len(segment) for segment in segments) <= SMALL_TEXT_WORDS:
            return max(self._segment_probability(segment) for segment in segments)
        return float(self.segment_probabilities(segments).max())

    def _segment_probability(self, segment: list[int]) -> float:
        """P(toxic) of one non-empty segment in plain Python, for short texts.

        The same sums as `segment_probabilities`, without numpy's fixed cost per call.
        """
        counts: dict[int, int] = {}
        for index in segment:
            counts[index] = counts.get(index, 0) + 1
        terms = list(counts)
        tfs = list(counts.values())
        idf2 = self._idf2
        norm2 = sum(tf * tf * idf2[term] for term, tf in counts.items())
        inverse = 1.0 / math.sqrt(norm2)
        total = 0.0
        for weights, intercept, a, b in zip(
            self._weights, self._intercepts, self._as, self._bs, strict=True
        ):
            dot = sum(map(operator.mul, tfs, map(weights.__getitem__, terms)))
            total += 1.0 / (1.0 + math.exp(a * (dot * inverse + intercept) + b))
        return total / self._models

    def tracker(self) -> ToxicityTracker:
        """Incremental scorer for one stream."""
        return ToxicityTracker(self)


class ToxicityTracker:
    """Scores a text that arrives in pieces; `score` is the highest segment probability so far.

    The open segment is kept as running sums (term counts, squared norm, one dot
    product per ensemble member), so each new word costs O(1) and each `feed` only
    touches the new text.
    """

    def __init__(self, model: ToxicityModel) -> None:
        self._model = model
        self._rows = model._rows
        self._pending: list[str] = []  # text after the last whitespace seen
        self._counts: dict[int, int] = {}
        self._norm2 = 0.0
        self._dots = [0.0] * model._models
        self._words = 0
        self.score = 0.0

    def feed(self, text: str) -> float:
        """Add `text`; return the updated score (closed segments and the open one)."""
        cut = _last_whitespace(text)
        if cut < 0:
            self._pending.append(text)
            return self.score
        self._pending.append(text[: cut + 1])
        ready = "".join(self._pending)
        self._pending = [text[cut + 1 :]] if cut + 1 < len(text) else []
        self._consume(ready)
        return self.score

    def finish(self) -> float:
        """Score everything left (the text after the last whitespace and the open segment)."""
        ready = "".join(self._pending)
        self._pending = []
        self._consume(ready)
        self._close()
        return self.score

    def _consume(self, text: str) -> None:
        get = self._model._vocabulary.get
        rows = self._rows
        counts = self._counts
        changed = False
        for token in _TOKEN.findall(text.lower()):
            if len(token) == 1:  # a segment boundary
                self._close()
                changed = False
                continue
            index = get(token)
            if index is not None:
                seen = counts.get(index, 0)
                counts[index] = seen + 1
                idf2, weights = rows[index]
                self._norm2 += (2 * seen + 1) * idf2
                self._dots = [d + w for d, w in zip(self._dots, weights, strict=True)]
                changed = True
            self._words += 1
            if self._words == SEGMENT_WORDS:
                self._close()
                changed = False
        if changed:
            self.score = max(self.score, self._probability())

    def _close(self) -> None:
        if self._norm2 > 0.0:
            self.score = max(self.score, self._probability())
        self._counts = {}
        self._norm2 = 0.0
        self._dots = [0.0] * self._model._models
        self._words = 0

    def _probability(self) -> float:
        model = self._model
        inverse = 1.0 / math.sqrt(self._norm2)
        total = 0.0
        for dot, intercept, a, b in zip(
            self._dots, model._intercepts, model._as, model._bs, strict=True
        ):
            total += 1.0 / (1.0 + math.exp(a * (dot * inverse + intercept) + b))
        return total / model._models


def _last_whitespace(text: str) -> int:
    for index in range(len(text) - 1, max(-1, len(text) - 256), -1):
        if text[index].isspace():
            return index
    if len(text) > 256:
        matches = [m.start() for m in _WHITESPACE.finditer(text)]
        return matches[-1] if matches else -1
    return -1


@functools.cache
def shared() -> ToxicityModel:
    """The process-wide model (loaded on first use: about two seconds, mostly scikit-learn)."""
    return ToxicityModel.from_profanity_check()
