"""Learned prompt-injection scorer: logistic regression stacked on the rules and similarity.

The hand-written rules and the corpus similarity of `injection` are precise but only
catch phrasings someone thought of. This module adds a linear model trained offline
(``hack/train_injection_model.py``) on a separate, larger labelled set
(``data/injection_train.jsonl``) and shipped as a small JSON file of weights
(``data/injection_model.json``); scoring needs nothing but dictionaries.

Features, computed by `features` for training and by `Model.logit` at run time (a
unit test holds the two equal):

* **Words**: unigrams and bigrams of the normalised prompt's word tokens. Words of
  other languages in a small glossary (`GLOSS`, `CJK_GLOSS`) are replaced by their
  English equivalent first, so weights learned on English attacks carry over
  ("ignoriere alle vorherigen anweisungen" reads as "ignore all previous
  instructions"). Punctuation is left out on purpose: with it the model learned the
  style of the training prompts (full stops, quotes, brackets) and flagged code and
  markup; delimiter tricks are the rules' job, and their verdict is a feature.
* **Characters**: 3- to 5-grams of each word token (first 24 characters, with ``<``
  and ``>`` marking its ends), for inflections, misspellings and unknown words.
* **Evidence from the other scorers**: one indicator per fired rule, the rules plus
  similarity score, and the scaled corpus similarity. The model therefore learns how
  far to trust each rule on phrasing the rules were not tuned on.

Each group of counts is divided by its total count to the power `NORM_POWER` (0.75,
between the square root that favours long texts and the mean that dilutes a short
attack; chosen by cross-validation together with a check on long benign text), with
the total floored at about eight words' worth so one or two words cannot decide a
prompt alone. Word and character features are scored
over windows of `WINDOW` tokens (stride `STRIDE`) and the best window counts, so an
attack buried in a long document is not diluted; the rule evidence is for the whole
prompt. The window logit minus the shipped offset goes through a sigmoid: the result
is in 0..1, and 0.5 is the operating point chosen by cross-validation. Per-token work
(gloss, unigram weight, character-gram sum) is cached by token, so a typical prompt
costs one dictionary lookup per token, and long texts add prefix sums over the tokens.
With the compiled module the values of the words the model knows, its bigram weights
and its character n-gram weights sit in flat tables (`_learned.Vocabulary`): one
probe, usually one cache line, per word, which matters most on a core whose caches
went cold while it idled. A word the model does not know gets its n-gram sum there
too, and is remembered for the next time.

The model reads the rules' and the corpus' verdicts, so changing `rules`, the corpus
or the features here changes what it was trained on: a unit test retrains from the
shipped data and fails until ``hack/train_injection_model.py`` is run again.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib.resources
import itertools
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from llm_serving.guardrails.injection import _learned
except ImportError:  # built without a C compiler: the plain-Python loops below
    _learned = None  # type: ignore[assignment]

WINDOW = 128
STRIDE = 64
CHAR_MIN = 3
CHAR_MAX = 5
CHAR_WORD_CHARS = 24
#: Each feature group is divided by max(its total count, its minimum) ** NORM_POWER.
NORM_POWER = 0.75
#: Minimum totals: a prompt of a word or two is scaled like one of about eight words,
#: so a single word cannot carry a whole prompt's worth of evidence.
MIN_WORD_TOTAL = 15
MIN_CHAR_TOTAL = 96
FORMAT = 1
#: Names of the non-text features (besides ``rule:<name>`` indicators).
HEURISTIC = "heuristic"
SIMILARITY = "similarity"
_CACHE_LIMIT = 1 << 16
"""Words cached besides the model's own vocabulary; the cache is reset when it is full."""
_COMPILED_CACHE_LIMIT = 1 << 14
"""The same for the compiled tables: 64 bytes a word in a table at most half full (4 MiB),
plus a copy of the table as built, to go back to when it is full."""
_TOKEN = re.compile(r"\w+")
_NO_FOLLOWERS: dict[str, float] = {}

# Foreign words (normalised: lower case, accents folded) and their English reading.
_GLOSS_TEXT: dict[str, str] = {
    "ignore": "ignora ignoren ignorez ignorer ignoriere ignorieren ignoriert ignoreer negeer "
    "zignoruj ignoruj игнорируй игнорировать игнорируйте ignorera ignorati abaikan ignorar",
    "forget": "olvida olvides olvidate oublie oubliez oublier vergiss vergessen esqueca esquece "
    "dimentica dimenticare vergeet zapomnij забудь забудьте glom unohda unut",
    "previous": "anteriores anterior precedenti precedentes precedente vorherigen vorherige "
    "bisherigen eerdere vorige poprzednie предыдущие прежние прошлые tidigare aiemmat onceki",
    "instructions": "instrucciones instruccion consignes anweisungen anweisung instrucoes "
    "istruzioni instructies instrukcje инструкции указания инструкций instruktioner ohjeet "
    "talimatlari instructiunile instruksi instruksjoner indicaciones orientacoes",
    "rules": "reglas regles regeln regras regole regels zasady правила правил regler kurallari",
    "system": "sistema systeme systemowy системный системные системная sistem",
    "prompt": "systemprompt systeemprompt промпт",
    "reveal": "revela revele revelar muestra muestrame mostre mostra mostrami mostrar montre "
    "affiche zeige zeig pokaz покажи выведи покажите nayta goster tampilkan",
    "hidden": "ocultas ocultos oculto oculta cachees cachee versteckten versteckte nascoste "
    "verborgen скрытые",
    "secret": "secreto secreta secretas secretos secretes geheimen geheime geheim segreto "
    "segreta segrete секретные",
    "restrictions": "restricciones einschrankungen restricoes restrizioni beperkingen "
    "ograniczen ограничений ограничения begransningar",
    "filters": "filtros filtres filtri filtry фильтров фильтры",
    "censorship": "censura censure zensur цензуры",
    "without": "sin sans ohne senza zonder bez без utan",
    "now": "ahora maintenant jetzt agora teraz теперь сейчас",
    "developer": "desarrollador developpeur entwickler desenvolvedor sviluppatore ontwikkelaar "
    "разработчика разработчик",
    "creators": "creadores createurs schopfer criadores creatori создателей создатели",
    "mode": "modo modus modalita режим режиме godmodus",
    "pretend": "finge finja fingi imagina представь",
    "grandmother": "abuela grandmere oma avo nonna babcia бабушка mormor",
    "deceased": "fallecida fallecido decedee verstorbene falecida defunta zmarla покойная",
    "story": "historia histoire geschichte storia verhaal история",
    "explains": "explica explique erklart spiega объясняет",
    "step": "paso schritt passo krok шаг",
    "bomb": "bomba bombe бомбу",
    "explosives": "explosivos explosifs sprengstoff esplosivi взрывчатку взрывчатка",
    "answer": "responde reponds antworte responda rispondi odpowiadaj отвечай svara",
    "everything": "tout alles tudo tutto wszystko всё",
    "all": "todas todos toutes tous tutte tutti wszystkie все tum kaikki",
    "ai": "ia ki ии",
    "safety": "seguridad securite sicherheit seguranca sicurezza безопасности",
    "repeat": "repite repete wiederhole repita ripeti herhaal powtorz повтори",
    "verbatim": "textualmente wortlich дословно",
    "disabled": "desactivado desactive deaktiviert desativado disattivato отключены сняты",
}
GLOSS: dict[str, str] = {
    word: english for english, words in _GLOSS_TEXT.items() for word in words.split()
}
"""Normalised foreign word -> English token, for the word features."""
CJK_GLOSS: dict[str, str] = {
    "忽略": "ignore",
    "无视": "ignore",
    "不要理会": "ignore",
    "無視": "ignore",
    "무시": "ignore",
    "忘记": "forget",
    "忘れて": "forget",
    "잊고": "forget",
    "之前": "previous",
    "以前": "previous",
    "先前": "previous",
    "이전": "previous",
    "指令": "instructions",
    "指示": "instructions",
    "지시": "instructions",
    "지침": "instructions",
    "规则": "rules",
    "規則": "rules",
    "ルール": "rules",
    "규칙": "rules",
    "系统提示词": "system prompt",
    "系统提示": "system prompt",
    "系統提示": "system prompt",
    "システムプロンプト": "system prompt",
    "시스템 프롬프트": "system prompt",
    "시스템프롬프트": "system prompt",
    "隐藏": "hidden",
    "隠された": "hidden",
    "숨겨진": "hidden",
    "秘密": "secret",
    "没有任何限制": "without restrictions",
    "没有限制": "without restrictions",
    "制限なし": "without restrictions",
    "制限のない": "without restrictions",
    "제한 없는": "without restrictions",
    "제한없는": "without restrictions",
    "开发者模式": "developer mode",
    "開発者モード": "developer mode",
    "개발자 모드": "developer mode",
    "开发者": "developer",
    "開発者": "developer",
    "개발자": "developer",
    "显示": "show",
    "表示": "show",
    "보여": "show",
    "告诉我": "tell me",
    "教えて": "tell me",
    "输出": "print",
    "출력": "print",
    "原文": "verbatim",
    "逐字": "verbatim",
    "一字一句": "verbatim",
    "그대로": "verbatim",
    "奶奶": "grandmother",
    "祖母": "grandmother",
    "할머니": "grandmother",
    "炸弹": "bomb",
    "爆弾": "bomb",
    "폭탄": "bomb",
    "所有": "all",
    "すべての": "all",
    "모든": "all",
}
"""Words of languages written without spaces -> English, substituted before tokenising."""
_CJK_PATTERN = re.compile("|".join(map(re.escape, sorted(CJK_GLOSS, key=len, reverse=True))))


def _cjk_word(match: re.Match[str]) -> str:
    return f" {CJK_GLOSS[match.group()]} "


def tokens(normalized: str) -> list[str]:
    """Model tokens of normalised text: runs of word characters (glossary applied to CJK)."""
    if not normalized.isascii():
        normalized = _CJK_PATTERN.sub(_cjk_word, normalized)
    return _TOKEN.findall(normalized)


def char_grams(token: str) -> list[str]:
    """Character 3- to 5-grams of a token, with ``<`` and ``>`` marking its ends."""
    word = f"<{token[:CHAR_WORD_CHARS]}>"
    size = len(word)
    return [word[i : i + n] for n in range(CHAR_MIN, CHAR_MAX + 1) for i in range(size - n + 1)]


def word_features(words: list[str]) -> list[str]:
    """Unigram and bigram keys of glossed tokens: ``"w"`` and ``"a b"``."""
    glossed = [GLOSS.get(token, token) for token in words]
    return glossed + [f"{a} {b}" for a, b in itertools.pairwise(glossed)]


@dataclasses.dataclass(frozen=True)
class Features:
    """Feature counts of one whole prompt, as the trainer sees it (no windows)."""

    words: dict[str, int]
    chars: dict[str, int]
    extras: dict[str, float]


def extra_features(rules: Iterable[str], heuristic: float, similarity: float) -> dict[str, float]:
    """The non-text features: fired rule indicators, heuristic score, scaled similarity."""
    extras = {f"rule:{name}": 1.0 for name in rules}
    extras[HEURISTIC] = heuristic
    extras[SIMILARITY] = similarity
    return extras


def features(words: list[str], extras: dict[str, float]) -> Features:
    """All features of a prompt's model tokens, for training and for checking `Model`."""
    chars: collections.Counter[str] = collections.Counter()
    for token in words:
        chars.update(char_grams(token))
    return Features(dict(collections.Counter(word_features(words))), dict(chars), extras)


def scaled(counts: Mapping[str, int], minimum: int) -> dict[str, float]:
    """Counts times max(total, `minimum`) ** -`NORM_POWER` (each group's normalisation)."""
    total = sum(counts.values())
    if not total:
        return {}
    scale = math.pow(max(total, minimum), -NORM_POWER)
    return {key: count * scale for key, count in counts.items()}


_TokenWeights = tuple[str, float, float, int, dict[str, float]]


def _window_value(word_sum: float, word_count: int, char_sum: float, char_count: int) -> float:
    """Word and character contributions of one window, scaled as `scaled` does."""
    value = word_sum * math.pow(max(word_count, MIN_WORD_TOTAL), -NORM_POWER)
    return value + char_sum * math.pow(max(char_count, MIN_CHAR_TOTAL), -NORM_POWER)


def _text_logit(entries: list[_TokenWeights]) -> float:
    """`Model.text_logit` over the token entries in plain Python (see `_learned`)."""
    count = len(entries)
    # C-level maps and sums: no Python frame per token.
    glossed, unigram, char_sum, char_count, following = zip(*entries, strict=True)
    # pair[i] is the weight of the bigram ending at token i + 1.
    pair = list(map(dict.get, following[:-1], glossed[1:], itertools.repeat(0.0)))
    if count <= WINDOW:
        return _window_value(
            sum(unigram) + sum(pair), 2 * count - 1, sum(char_sum), sum(char_count)
        )
    unigram_prefix = list(itertools.accumulate(unigram, initial=0.0))
    pair_prefix = list(itertools.accumulate(pair, initial=0.0))
    sum_prefix = list(itertools.accumulate(char_sum, initial=0.0))
    count_prefix = list(itertools.accumulate(char_count, initial=0))
    starts = list(range(0, count - WINDOW + 1, STRIDE))
    if starts[-1] != count - WINDOW:
        starts.append(count - WINDOW)
    best = -math.inf
    for start in starts:
        end = start + WINDOW
        word_sum = unigram_prefix[end] - unigram_prefix[start]
        word_sum += pair_prefix[end - 1] - pair_prefix[start]
        value = _window_value(
            word_sum,
            2 * WINDOW - 1,
            sum_prefix[end] - sum_prefix[start],
            count_prefix[end] - count_prefix[start],
        )
        best = max(best, value)
    return best


def compiled() -> bool:
    """Whether `Model.text_logit` runs the compiled loop (`_learned`)."""
    return _learned is not None


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, value))))


class Model:
    """Weights of the logistic regression and the windowed scorer over them."""

    def __init__(
        self,
        *,
        bias: float,
        offset: float,
        unigrams: Mapping[str, float],
        bigrams: Mapping[str, float],
        chars: Mapping[str, float],
        extras: Mapping[str, float],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.bias = bias
        self.offset = offset
        self.unigrams = dict(unigrams)
        self.bigrams = dict(bigrams)
        self.chars = dict(chars)
        self.extras = dict(extras)
        self.metadata = dict(metadata or {})
        following: dict[str, dict[str, float]] = {}
        pair_ids: dict[str, int] = {}
        pairs: dict[tuple[int, int], float] = {}
        for key, weight in self.bigrams.items():
            first, second = key.split(" ")
            following.setdefault(first, {})[second] = weight
            ids = (
                pair_ids.setdefault(first, len(pair_ids)),
                pair_ids.setdefault(second, len(pair_ids)),
            )
            pairs[ids] = weight
        self._following = following
        self._pair_ids = pair_ids
        self._token_cache: dict[str, _TokenWeights] = {}
        self._seed: dict[str, _TokenWeights] = {}
        # Words the model knows are computed once here and survive cache resets.
        for token in itertools.chain(self.unigrams, GLOSS, pair_ids):
            self._token(token)
        self._seed = dict(self._token_cache)
        # The compiled path reads the same values from flat tables (`_learned.Vocabulary`).
        self._vocabulary: _learned.Vocabulary | None = None
        if _learned is not None:
            words = {token: self._values(entry) for token, entry in self._seed.items()}
            self._vocabulary = _learned.Vocabulary(
                words,
                pairs,
                self.chars,
                CHAR_MIN,
                CHAR_MAX,
                CHAR_WORD_CHARS,
                _COMPILED_CACHE_LIMIT,
            )

    # ------------------------------------------------------------------ persistence

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Model:
        """A model from the JSON document `to_document` writes."""
        if document.get("format") != FORMAT:
            raise ValueError(f"unsupported injection model format {document.get('format')!r}")
        layout = [document.get(key) for key in ("window", "stride", "norm_power", "min_totals")]
        if layout != [WINDOW, STRIDE, NORM_POWER, [MIN_WORD_TOTAL, MIN_CHAR_TOTAL]]:
            raise ValueError(f"injection model trained for another feature layout: {layout}")
        return cls(
            bias=float(document["bias"]),
            offset=float(document["offset"]),
            unigrams=document["unigrams"],
            bigrams=document["bigrams"],
            chars=document["chars"],
            extras=document["extras"],
            metadata=document.get("training", {}),
        )

    def to_document(self) -> dict[str, Any]:
        """The JSON document of this model (keys sorted, so files diff well)."""
        return {
            "format": FORMAT,
            "window": WINDOW,
            "stride": STRIDE,
            "norm_power": NORM_POWER,
            "min_totals": [MIN_WORD_TOTAL, MIN_CHAR_TOTAL],
            "bias": self.bias,
            "offset": self.offset,
            "extras": dict(sorted(self.extras.items())),
            "unigrams": dict(sorted(self.unigrams.items())),
            "bigrams": dict(sorted(self.bigrams.items())),
            "chars": dict(sorted(self.chars.items())),
            "training": self.metadata,
        }

    @classmethod
    def load_default(cls) -> Model:
        """The model shipped with the package (``llm_serving/data/injection_model.json``)."""
        resource = importlib.resources.files("llm_serving") / "data" / "injection_model.json"
        return cls.from_document(json.loads(resource.read_text(encoding="utf-8")))

    @classmethod
    def empty(cls) -> Model:
        """A model with no weights (every prompt scores sigmoid(0) = 0.5); for training."""
        return cls(bias=0.0, offset=0.0, unigrams={}, bigrams={}, chars={}, extras={})

    # ------------------------------------------------------------------ scoring

    def _token(self, token: str) -> _TokenWeights:
        """Gloss, unigram weight, summed character-gram weight, gram count, bigram row."""
        if _learned is not None:
            gram_sum, gram_count = _learned.char_gram_sum(
                token, self.chars, CHAR_MIN, CHAR_MAX, CHAR_WORD_CHARS
            )
        else:
            grams = char_grams(token)
            get = self.chars.get
            gram_sum, gram_count = sum(get(gram, 0.0) for gram in grams), len(grams)
        glossed = GLOSS.get(token, token)
        entry = (
            glossed,
            self.unigrams.get(glossed, 0.0),
            gram_sum,
            gram_count,
            self._following.get(glossed, _NO_FOLLOWERS),
        )
        if len(self._token_cache) >= len(self._seed) + _CACHE_LIMIT:
            self._token_cache = dict(self._seed)
        self._token_cache[token] = entry
        return entry

    def _values(self, entry: _TokenWeights) -> tuple[float, float, int, int]:
        """A token entry as the compiled vocabulary holds it (the bigram row as a pair id)."""
        return entry[1], entry[2], entry[3], self._pair_ids.get(entry[0], -1)

    def _fallback(self, word: str) -> tuple[float, float, int, int]:
        """`_values` of a word the compiled vocabulary does not hold (through the cache)."""
        return self._values(self._token_cache.get(word) or self._token(word))

    def text_logit(self, words: Sequence[str]) -> float:
        """Best window's word plus character contribution (without bias or extras)."""
        if not words:
            return 0.0
        if self._vocabulary is not None and _learned is not None:
            return _learned.vocabulary_logit(
                self._vocabulary,
                words,
                self._fallback,
                WINDOW,
                STRIDE,
                MIN_WORD_TOTAL,
                MIN_CHAR_TOTAL,
                NORM_POWER,
            )
        entries: list[_TokenWeights | None] = list(map(self._token_cache.get, words))
        missing = -1
        with contextlib.suppress(ValueError):  # list.index: no (further) word to fill in
            while True:  # words not seen yet (names, numbers), one at a time
                missing = entries.index(None, missing + 1)
                entries[missing] = self._token(words[missing])
        return _text_logit(typing.cast(list[_TokenWeights], entries))

    def extras_logit(self, extras: Mapping[str, float]) -> float:
        """Contribution of the rule and similarity evidence."""
        weights = self.extras
        return math.fsum(weights.get(name, 0.0) * value for name, value in extras.items())

    def logit(self, words: Sequence[str], extras: Mapping[str, float]) -> float:
        """Decision value: bias, evidence and best text window, before the offset."""
        return self.bias + self.extras_logit(extras) + self.text_logit(words)

    def score(self, words: Sequence[str], extras: Mapping[str, float]) -> float:
        """Score in 0..1; 0.5 is the cross-validated operating point."""
        return _sigmoid(self.logit(words, extras) - self.offset)

    def dot(self, found: Features) -> float:
        """Decision value computed the slow, explicit way from `features` (for tests)."""
        unigram_or_bigram = {**self.unigrams, **self.bigrams}
        value = self.bias
        words = scaled(found.words, MIN_WORD_TOTAL)
        chars = scaled(found.chars, MIN_CHAR_TOTAL)
        value += math.fsum(unigram_or_bigram.get(k, 0.0) * v for k, v in words.items())
        value += math.fsum(self.chars.get(k, 0.0) * v for k, v in chars.items())
        return value + self.extras_logit(found.extras)


@functools.cache
def shared() -> Model:
    """The process-wide shipped model (loaded once)."""
    return Model.load_default()
