"""Offline prompt-injection and jailbreak detection: rules, corpus similarity, learned model.

A prompt is first normalised against obfuscation (Unicode compatibility forms,
accents, zero-width characters, Cyrillic look-alikes inside Latin words, leetspeak
digits, hyphens and underscores inside words, letters spaced out one by one), and
payloads it carries are decoded and appended (base64 and hex blobs, %-escapes, HTML
entities, ROT13 when the prompt mentions it, the reversed text when it asks for
reversal). Then three scorers run:

* **Rules** (`rules`): 88 precompiled regular expressions in ten families
  (instruction override, role-play personas, system prompt extraction, fake
  delimiters, encoded payloads, indirect injection, exfiltration, safety bypass,
  other languages, weak signals), each with a weight. A rule is tried only on the
  sentences that contain a word from each of its trigger groups, so a benign prompt
  pays for a few set operations rather than eighty regex scans. Fired rules combine
  as a noisy-OR, so several weak signals add up.
* **Similarity**: TF-IDF cosine similarity of word unigrams and bigrams to a corpus
  of attack exemplars shipped as package data (``data/injection_corpus.json``), over
  windows of 32 words (stride 16) so an attack buried in a long document is not
  diluted. IDF weights come from the attacks plus a background set of ordinary
  prompts. The best cosine is mapped linearly from [0.35, 0.75] onto [0, 1]: 0.35 is
  above the highest cosine any background prompt reaches, and leave-one-out attack
  exemplars reach a median of about 0.12, so this is a paraphrase net for close
  variants of known attacks, not the main detector.
* **Learned model** (`learned`): a logistic regression over the prompt's words,
  word pairs and character n-grams plus the two scores above and the names of the
  fired rules, trained offline on ``data/injection_train.jsonl`` (a set written apart
  from the rules' evaluation set). The rules were tuned on their own evaluation set;
  on prompts phrased by someone else they miss about half of the attacks. The model
  learns from many phrasings how much each piece of evidence is worth, and gives the
  final score.

``1 - (1 - rules) * (1 - similarity)`` is kept as `Verdict.heuristic`. The verdict's
score is the model's, in 0..1 with 0.5 as the cross-validated operating point, except
that a heuristic score at or above `RULE_FLOOR` (several strong rules at once) is
never overruled. The caller compares the score with the policy threshold (0.5 by
default). Everything is compiled or loaded at construction. The inner loops of the
similarity windows, the learned model, the token scan and (for ASCII text) the
normalisation run compiled (`_fastscore`, built at install) and fall back to the
plain-Python versions here, which give the same results to the last bit. The
compiled similarity and learned-model loops read their weights from flat tables (one
cache line per word, where dictionaries take several), which matters most when the
core's caches went cold while it idled. Scoring a benign 1 KB prompt takes about
0.08 ms on one core with the compiled loops (about 0.22 ms without), and the cost
grows linearly with the text. Nothing here logs or stores prompt text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import dataclasses
import functools
import html
import importlib.resources
import itertools
import json
import math
import operator
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from llm_serving.guardrails import learned, rules

try:
    from llm_serving.guardrails import _fastscore
except ImportError:  # built without a C compiler: the plain-Python loops here
    _fastscore = None  # type: ignore[assignment]

# --------------------------------------------------------------------------- normalisation

_INVISIBLE_AND_QUOTES: dict[int, str | None] = {
    **dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064"), None),
    **dict.fromkeys(map(ord, "\ufeff\u00ad\u180e\u034f\u115f\u1160\u3164"), None),
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\u02bc`\u00b4"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
}
# Cyrillic and Greek letters that look like Latin ones; applied only to words that mix
# scripts, so Russian or Greek text itself is left alone.
_CONFUSABLES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04cf\u0501\u051b\u051d"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406\u0408\u0405"
    "\u03bf\u03b1\u03b5\u03b9\u03ba\u03bd\u03c1\u03c4\u03c5\u03c7\u039f\u0391\u0392\u0395"
    "\u0397\u0399\u039a\u039c\u039d\u03a1\u03a4\u03a5\u03a7\u0396",
    "aeopcyxijsldqwABEKMHOPCTXIJSoaeiknptuxOABEHIKMNPTYXZ",
)
# Where a Latin letter meets a Greek or Cyrillic one. The word around each junction is
# found by `_fold_mixed_words` with two scans that cannot backtrack: a pattern with
# `\w*` on both sides of the junction retried `\w*` from every position of a long run
# of letters (CJK text has no spaces), which took time growing with the square of it.
_MIXED_JUNCTION = re.compile(
    r"[a-zA-Z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][a-zA-Z]"
)
_WORD_RUN = re.compile(r"\w*+")
_COMBINING = re.compile(r"(?<=[A-Za-z])[\u0300-\u036f]+")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "_": " "}
)
_INTRAWORD_HYPHEN = re.compile(r"-(?<=[a-z]-)(?=[a-z])")
_SPACED_HINT = re.compile(r"[ .\-*][a-z][ .\-*][a-z][ .\-*]")
_SPACED_LETTERS = re.compile(r"[a-z](?<![a-z][a-z])(?:[ .\-*][a-z](?![a-z])){2,}")
_WORD = re.compile(r"\w+")


def _collapse(match: re.Match[str]) -> str:
    return match.group()[::2]


def _fold_mixed_words(text: str) -> str:
    """`text` with Greek and Cyrillic look-alikes made Latin in each word (maximal run of
    word characters) that has a Latin letter next to a Greek or Cyrillic one.

    Linear: each junction is found once, a word's end by a possessive scan forwards and
    its start by the same scan over the reversed text, and junctions inside a word
    already folded are skipped.
    """
    backwards = text[::-1]
    size = len(text)
    parts: list[str] = []
    done = 0
    for junction in _MIXED_JUNCTION.finditer(text):
        at = junction.start()
        if at < done:
            continue
        run = _WORD_RUN.match(backwards, size - at)
        start = at - (run.end() - run.start()) if run else at
        end = _WORD_RUN.match(text, at).end()  # type: ignore[union-attr]
        parts.append(text[done:start])
        parts.append(text[start:end].translate(_CONFUSABLES))
        done = end
    parts.append(text[done:])
    return "".join(parts)


def normalize(text: str) -> str:
    """Lower-case ASCII-folded text with common obfuscations undone (see module docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE_AND_QUOTES)
        if not text.isascii():
            decomposed = unicodedata.normalize("NFKD", text)
            if _COMBINING.search(decomposed):
                text = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))
            if _MIXED_JUNCTION.search(text):
                text = _fold_mixed_words(text)
    text = text.lower().translate(_LEET)
    if "-" in text:
        text = _INTRAWORD_HYPHEN.sub("", text)
    if _SPACED_HINT.search(text):
        text = _SPACED_LETTERS.sub(_collapse, text)
    return text


_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX_BLOB = re.compile(r"(?:[0-9a-fA-F]{2}){10,}")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_MAX_BLOBS = 8
_MAX_BLOB_CHARS = 8192


def _printable_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if " " not in text:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def decoded_views(text: str, lowered: str, longest_word: int) -> list[str]:
    """Texts hidden in `text`: decoded base64/hex blobs, %-escapes, entities, ROT13, reversal."""
    views: list[str] = []
    if longest_word >= 16:
        for count, match in enumerate(_BASE64_BLOB.finditer(text)):
            if count >= _MAX_BLOBS:
                break
            blob = match.group()[:_MAX_BLOB_CHARS]
            if blob.isalpha() and (blob.islower() or blob.isupper()):
                continue  # a long plain word, not base64
            try:
                raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            decoded = _printable_text(raw)
            if decoded:
                views.append(decoded)
    if longest_word >= 20:
        for count, match in enumerate(_HEX_BLOB.finditer(text)):
            if count >= _MAX_BLOBS:
                break
            decoded = _printable_text(bytes.fromhex(match.group()[:_MAX_BLOB_CHARS]))
            if decoded:
                views.append(decoded)
    if "%" in text and _PERCENT.search(text):
        views.append(urllib.parse.unquote(text))
    if "&" in text and ";" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            views.append(unescaped)
    if "rot13" in lowered or "rot-13" in lowered or "rot 13" in lowered:
        views.append(codecs.encode(text, "rot13"))
    if "revers" in lowered or "backward" in lowered:
        views.append(text[::-1])
    return views


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Result of one prompt: score in 0..1, rule names that fired, best corpus cosine.

    `score` is the learned model's (see `learned`), which weighs the rules and the
    similarity together with the prompt's words; `heuristic` is the rules plus
    similarity score on its own, for diagnostics.
    """

    score: float
    rules: tuple[str, ...]
    similarity: float
    heuristic: float = 0.0


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the learned model reads about one prompt (see `Detector.evidence`)."""

    tokens: Sequence[str]
    """Model tokens of the normalised prompt and of the payloads decoded from it."""
    rules: tuple[str, ...]
    """Names of the rules that fired."""
    heuristic: float
    """Rules and similarity combined by noisy-OR, in 0..1."""
    similarity: float
    """Best cosine to the attack corpus."""
    extras: dict[str, float]
    """The non-text features of `learned.extra_features`."""


_SENTENCE_MARK = "\x00"
# ASCII characters that are neither word characters, white space for `str.split`, nor
# punctuation in `rules.TOKEN_TABLE`: the only ones on which the two tokenisers differ.
_STRAY_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1b\x7f_]")
_SPACED_MARK = " \x00 "
_ASCII = "".join(map(chr, range(128)))
# For `_fastscore.prepare_ascii`: each ASCII code folded as `normalize` folds it, and
# the codes that split rule tokens (what `str.split` and `rules.TOKEN_TABLE` split on).
_ASCII_FOLD = _ASCII.lower().translate(_LEET).encode("ascii")
_ASCII_SEPARATORS = bytes(ch.isspace() or ch.translate(rules.TOKEN_TABLE) != ch for ch in _ASCII)


def _mark_sentences(text: str) -> str:
    """Replace sentence boundaries (line breaks; ``.``, ``!``, ``?`` before a space) by a marker."""
    if _SENTENCE_MARK in text:
        text = text.replace(_SENTENCE_MARK, " ")
    return (
        text.replace(". ", _SPACED_MARK)
        .replace("? ", _SPACED_MARK)
        .replace("! ", _SPACED_MARK)
        .replace("\n", _SPACED_MARK)
    )


# --------------------------------------------------------------------------- similarity

FloatArray = npt.NDArray[np.float32]
WINDOW = 32
STRIDE = 16
SIMILARITY_LOW = 0.35
SIMILARITY_HIGH = 0.75
RULE_FLOOR = 0.9
"""A rules+similarity score at or above this is kept even if the learned model disagrees.

On the model's training set, which the rules were never tuned on, one benign prompt in
about a thousand reaches it; the floor only guards the rules' most confident verdicts.
"""
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
        documents = [self._tokens(normalize(text)) for text in corpus.attacks]
        background = [self._tokens(normalize(text)) for text in corpus.background]
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
        # The compiled path reads the same values from flat tables (`_fastscore.Features`).
        self._features: _fastscore.Features | None = None
        if _fastscore is not None:
            words = {
                token: (index, *self._token_entries[token][:2])
                for token, index in vocabulary.items()
            }
            self._features = _fastscore.Features(
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
        if self._features is not None and _fastscore is not None:
            return _fastscore.best(tokens, self._features, WINDOW, STRIDE, self.size)
        return self.best_in_python(tokens)

    def best_in_python(self, tokens: Sequence[str]) -> float:
        """`best` in plain Python: the fallback, and the reference for `_fastscore.best`."""
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


# --------------------------------------------------------------------------- detector


class Detector:
    """Scores prompts for injection and jailbreak attempts (see the module docstring)."""

    def __init__(self, corpus: Corpus | None = None, model: learned.Model | None = None) -> None:
        self._model = model if model is not None else learned.shared()
        self._rules = rules.RULES
        self._trigger_words = frozenset().union(
            *(group for rule in rules.RULES for group in rule.need)
        )
        # The rules' trigger groups numbered rule by rule, and from each trigger word to
        # the groups that hold it (see `gate_in_python`).
        word_groups: dict[str, list[int]] = {}
        self._rule_groups: list[tuple[int, int]] = []
        first = 0
        for rule in rules.RULES:
            self._rule_groups.append((first, len(rule.need)))
            for number, group in enumerate(rule.need, start=first):
                for word in group:
                    word_groups.setdefault(word, []).append(number)
            first += len(rule.need)
        self._word_groups = {word: tuple(groups) for word, groups in word_groups.items()}
        self._triggers = (
            None
            if _fastscore is None
            else _fastscore.Triggers(self._word_groups, self._rule_groups)
        )
        owners: dict[str, list[int]] = {}
        for number, rule in enumerate(rules.RULES):
            for sub in rule.substrings:
                owners.setdefault(sub, []).append(number)
        self._substring_owner = {sub: tuple(rules) for sub, rules in owners.items()}
        # Rules that may run without a sentence holding all their groups: those counting
        # matches over the whole text, and those a substring lets in (see `_fire`).
        self._ungated = frozenset(
            number
            for number, rule in enumerate(rules.RULES)
            if rule.min_matches > 1 or rule.substrings
        )
        self._substrings = re.compile(
            "|".join(re.escape(sub) for sub in sorted(owners, key=len, reverse=True))
        )
        # A substring can only occur where its first character does: a few character
        # searches rule the regular expression out for most prompts (ASCII text can
        # hold none of the substrings of other scripts).
        self._substring_starts = "".join(sorted({sub[0] for sub in owners}))
        self._ascii_substring_starts = "".join(c for c in self._substring_starts if c.isascii())
        self._similarity = SimilarityIndex(corpus if corpus is not None else Corpus.load_default())

    def score(self, text: str) -> Verdict:
        """Score one prompt. Pure and thread-safe."""
        evidence = self.evidence(text)
        score = self._model.score(evidence.tokens, evidence.extras)
        if evidence.heuristic >= RULE_FLOOR:
            score = max(score, evidence.heuristic)
        return Verdict(
            round(score, 4),
            evidence.rules,
            round(evidence.similarity, 4),
            round(evidence.heuristic, 4),
        )

    def evidence(self, text: str) -> Evidence:
        """Normalise `text`, decode its payloads, run the rules and the similarity index."""
        prepared = None
        if _fastscore is not None and text.isascii():
            prepared = _fastscore.prepare_ascii(text, _ASCII_FOLD, _ASCII_SEPARATORS)
        normalized, marked, stream, clean = prepared or prepare_in_python(text)
        # `stream` is a `_fastscore.Tokens` from the compiled pass: the words as offsets
        # into `marked`, which the compiled scorers read without a string per word.
        tokens, longest, blocks, met = self._scan(stream)
        views = decoded_views(text, text.lower(), longest)
        model_text = normalized
        if views:
            plain = "\n".join(normalize(view) for view in views)
            model_text = normalized + "\n" + plain
            extra = _mark_sentences(plain)
            normalized = normalized + "\n" + extra
            marked = marked + _SPACED_MARK + extra
            whole = stream if isinstance(stream, list) else stream.stream()
            stream = [*whole, _SENTENCE_MARK, *extra.translate(rules.TOKEN_TABLE).split()]
            tokens, _, blocks, met = self._scan(stream)
        fired = self._fire(normalized, marked, blocks, met)
        miss = 1.0
        for rule in fired:
            miss *= 1.0 - rule.weight
        names = [rule.name for rule in fired]
        if "DAN" in text and rules.CASE_SENSITIVE_DAN.search(text):
            names.append("dan_name")
            miss *= 1.0 - rules.DAN_NAME_WEIGHT
        rule_score = 1.0 - miss
        similarity = self._similarity.best(tokens)
        scaled = (similarity - SIMILARITY_LOW) / (SIMILARITY_HIGH - SIMILARITY_LOW)
        similarity_score = min(1.0, max(0.0, scaled))
        heuristic = 1.0 - (1.0 - rule_score) * (1.0 - similarity_score)
        # The model's tokens are runs of word characters; for ASCII text without stray
        # control characters they are exactly the rule tokens, so the split is reused.
        if clean and (not views or not _STRAY_CONTROL.search(model_text)) and model_text.isascii():
            model_tokens = tokens
        else:
            model_tokens = learned.tokens(model_text)
        return Evidence(
            model_tokens,
            tuple(names),
            heuristic,
            similarity,
            learned.extra_features(names, heuristic, similarity_score),
        )

    def _scan(
        self, stream: list[str] | _fastscore.Tokens
    ) -> tuple[Sequence[str], int, int, list[tuple[int, list[int]]]]:
        """Words, longest token, blocks of 64 sentences, and the rules whose trigger
        groups meet with their sentences (see `_fastscore.scan`)."""
        if self._triggers is not None and _fastscore is not None:
            return _fastscore.scan(stream, self._triggers, _SENTENCE_MARK)
        if not isinstance(stream, list):
            stream = stream.stream()
        return scan_and_gate_in_python(
            stream, self._trigger_words, self._word_groups, self._rule_groups, _SENTENCE_MARK
        )

    def _fire(
        self,
        normalized: str,
        marked: str,
        blocks: int,
        met_rules: list[tuple[int, list[int]]],
    ) -> list[rules.Rule]:
        """Rules that match; each is tried only on sentences containing all its trigger groups.

        `marked` is the normalised text with sentence boundaries replaced by a marker;
        `met_rules` is what `_scan` finds in its tokens: the rules whose trigger
        groups all occur, with per block of 64 sentences the bits of the sentences
        that hold every group. A rule runs when every one of its trigger groups occurs
        in the prompt, or when one of its substrings does.
        """
        met = dict(met_rules)
        # A rule tried on its sentences alone cannot match when no sentence holds all
        # its groups (common words meet in a long prompt, but rarely in one sentence).
        ungated = self._ungated
        candidates = {number for number, wheres in met_rules if number in ungated or any(wheres)}
        starts = self._ascii_substring_starts if normalized.isascii() else self._substring_starts
        if any(start in normalized for start in starts):
            for found in self._substrings.findall(normalized):
                candidates.update(self._substring_owner[found])
        fired: list[rules.Rule] = []
        if not candidates:
            return fired
        sentences = marked.split(_SENTENCE_MARK)
        for number in sorted(candidates):
            rule = rules.RULES[number]
            if rule.min_matches > 1:
                if len(rule.pattern.findall(normalized)) >= rule.min_matches:
                    fired.append(rule)
                continue
            has_substring = bool(rule.substrings) and any(
                sub in normalized for sub in rule.substrings
            )
            wheres = met.get(number) or [0] * blocks
            if self._rule_fires(rule, sentences, wheres, has_substring=has_substring):
                fired.append(rule)
        return fired

    @staticmethod
    def _rule_fires(
        rule: rules.Rule,
        sentences: list[str],
        wheres: list[int],
        *,
        has_substring: bool,
    ) -> bool:
        """Try `rule` on the sentences `wheres` marks (bits per block of 64 sentences),
        and on those that hold one of its substrings."""
        for block, where in enumerate(wheres):
            base = block * 64
            if has_substring:
                for index, sentence in enumerate(sentences[base : base + 64]):
                    if any(sub in sentence for sub in rule.substrings):
                        where |= 1 << index
            index = base
            while where:
                if where & 1 and rule.pattern.search(sentences[index]):
                    return True
                where >>= 1
                index += 1
        return False


def compiled() -> bool:
    """Whether the scorers run their compiled loops (`_fastscore`) or the Python ones."""
    return _fastscore is not None and learned.compiled()


def prepare_in_python(text: str) -> tuple[str, str, list[str], bool]:
    """Normalised text, its marked sentences, its rule tokens, and whether the model may
    reuse those tokens (ASCII without `_STRAY_CONTROL`); see `_fastscore.prepare_ascii`."""
    normalized = normalize(text)
    marked = _mark_sentences(normalized)
    stream = marked.translate(rules.TOKEN_TABLE).split()
    clean = normalized.isascii() and not _STRAY_CONTROL.search(normalized)
    return normalized, marked, stream, clean


def scan_in_python(
    stream: list[str], trigger_words: frozenset[str], mark: str
) -> tuple[list[str], int, list[dict[str, int]]]:
    """Words, longest token, and the trigger words' sentences (with `gate_in_python`,
    the reference for `_fastscore.scan`).

    `stream` is the rule tokens of the marked text, `mark` standing for a sentence
    boundary. The last item holds, per block of 64 sentences, a dict from each trigger
    word present to the bit set of the block's sentences that contain it.
    """
    tokens = [token for token in stream if token != mark]
    present = trigger_words.intersection(tokens)
    block_masks: list[dict[str, int]] = [{}]
    masks = block_masks[0]
    number = 0
    for token in stream:
        if token == mark:
            number += 1
            if number == 64:
                number = 0
                masks = {}
                block_masks.append(masks)
        elif token in present:
            masks[token] = masks.get(token, 0) | (1 << number)
    return tokens, max(map(len, stream), default=0), block_masks


def gate_in_python(
    word_groups: dict[str, tuple[int, ...]],
    rule_groups: list[tuple[int, int]],
    block_masks: list[dict[str, int]],
) -> list[tuple[int, list[int]]]:
    """Rules whose trigger groups all occur, with the sentences holding all of them.

    `word_groups` maps a trigger word to the numbers of the groups that hold it (the
    groups numbered rule by rule), `rule_groups` holds per rule its first group and
    group count, and `block_masks` is `scan_in_python`'s per-block dict from trigger
    word to sentence bits. Returns, in rule order, each rule that has groups and
    meets every one somewhere in the prompt, with per block the bits of the sentences
    that meet all of them. Over `scan_in_python`, the plain-Python version of
    `_fastscore.scan`.
    """
    table: list[dict[int, int]] = []
    for masks in block_masks:
        groups: dict[int, int] = {}
        for word, bits in masks.items():
            for group in word_groups.get(word, ()):
                groups[group] = groups.get(group, 0) | bits
        table.append(groups)
    result = []
    for rule, (first, count) in enumerate(rule_groups):
        numbers = range(first, first + count)
        if count and all(any(groups.get(n) for groups in table) for n in numbers):
            wheres = []
            for groups in table:
                where = (1 << 64) - 1
                for n in numbers:
                    where &= groups.get(n, 0)
                wheres.append(where)
            result.append((rule, wheres))
    return result


def scan_and_gate_in_python(
    stream: list[str],
    trigger_words: frozenset[str],
    word_groups: dict[str, tuple[int, ...]],
    rule_groups: list[tuple[int, int]],
    mark: str,
) -> tuple[list[str], int, int, list[tuple[int, list[int]]]]:
    """`scan_in_python` then `gate_in_python`, shaped as `_fastscore.scan` returns them:
    words, longest token, blocks of 64 sentences, and the rules whose groups meet."""
    tokens, longest, block_masks = scan_in_python(stream, trigger_words, mark)
    met = gate_in_python(word_groups, rule_groups, block_masks)
    return tokens, longest, len(block_masks), met


@functools.cache
def shared() -> Detector:
    """The process-wide detector over the shipped corpus and model (built once, in about 60 ms)."""
    return Detector()
