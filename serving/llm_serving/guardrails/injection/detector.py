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
normalisation run compiled (the twins `_detector`, `_normalization`, `_similarity` and
`_learned`, built at install) and fall back to the plain-Python versions, which give
the same results to the last bit. The
compiled similarity and learned-model loops read their weights from flat tables (one
cache line per word, where dictionaries take several), which matters most when the
core's caches went cold while it idled. Scoring a benign 1 KB prompt takes about
0.08 ms on one core with the compiled loops (about 0.22 ms without), and the cost
grows linearly with the text. Nothing here logs or stores prompt text.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence

from llm_serving.guardrails.injection import learned, normalization, quoting, rules, similarity

try:
    from llm_serving.guardrails import _tables
    from llm_serving.guardrails.injection import _detector, _normalization
except ImportError:  # built without a C compiler: the plain-Python loops here
    _tables = _detector = _normalization = None  # type: ignore[assignment]

RULE_FLOOR = 0.9
"""A rules+similarity score at or above this is kept even if the learned model disagrees.

On the model's training set, which the rules were never tuned on, one benign prompt in
about a thousand reaches it; the floor only guards the rules' most confident verdicts.
"""


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


class Detector:
    """Scores prompts for injection and jailbreak attempts (see the module docstring)."""

    def __init__(
        self, corpus: similarity.Corpus | None = None, model: learned.Model | None = None
    ) -> None:
        self._model = model if model is not None else learned.shared()
        self._rules = rules.RULES
        self._families = {rule.name: rule.family for rule in rules.RULES}
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
            None if _detector is None else _detector.Triggers(self._word_groups, self._rule_groups)
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
        self._similarity = similarity.SimilarityIndex(
            corpus if corpus is not None else similarity.Corpus.load_default()
        )

    def score(self, text: str) -> Verdict:
        """Score one prompt. Pure and thread-safe.

        A prompt that only mentions an attack phrase in a short quotation (see
        `quoting`) is scored with the quotation emptied as well, and the lower score
        stands. Only prompts that fired a rule of a strong family are considered (a
        score from weak rules or from the learned model alone reads the whole text),
        and none whose rules speak to the model from inside text it reads
        (`quoting.USED_FAMILIES`).
        """
        verdict = self._score(text)
        families = {self._families.get(name, "weak") for name in verdict.rules}
        if families - {"weak"} and not families & quoting.USED_FAMILIES:
            found = quoting.mentioned(text)
            if found is not None:
                masked, quotes = found
                other = self._score(masked)
                if not other.rules and other.score < verdict.score:
                    inside = {name for quote in quotes for name in self.evidence(quote).rules}
                    if inside.issuperset(verdict.rules):
                        return other
        return verdict

    def _score(self, text: str) -> Verdict:
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
        if _normalization is not None and text.isascii():
            prepared = _normalization.prepare_ascii(
                text, normalization.ASCII_FOLD, normalization.ASCII_SEPARATORS
            )
        normalized, marked, stream, clean = prepared or normalization.prepare_in_python(text)
        # `stream` is a `_tables.Tokens` from the compiled pass: the words as offsets
        # into `marked`, which the compiled scorers read without a string per word.
        tokens, longest, blocks, met = self._scan(stream)
        views = normalization.decoded_views(text, text.lower(), longest)
        model_text = normalized
        if views:
            plain = "\n".join(normalization.normalize(view) for view in views)
            model_text = normalized + "\n" + plain
            extra = normalization.mark_sentences(plain)
            normalized = normalized + "\n" + extra
            marked = marked + normalization.SPACED_MARK + extra
            whole = stream if isinstance(stream, list) else stream.stream()
            stream = [
                *whole,
                normalization.SENTENCE_MARK,
                *extra.translate(rules.TOKEN_TABLE).split(),
            ]
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
        cosine = self._similarity.best(tokens)
        low, high = similarity.SIMILARITY_LOW, similarity.SIMILARITY_HIGH
        scaled = (cosine - low) / (high - low)
        similarity_score = min(1.0, max(0.0, scaled))
        heuristic = 1.0 - (1.0 - rule_score) * (1.0 - similarity_score)
        # The model's tokens are runs of word characters; for ASCII text without stray
        # control characters they are exactly the rule tokens, so the split is reused.
        stray = views and normalization.STRAY_CONTROL.search(model_text)
        if clean and not stray and model_text.isascii():
            model_tokens = tokens
        else:
            model_tokens = learned.tokens(model_text)
        return Evidence(
            model_tokens,
            tuple(names),
            heuristic,
            cosine,
            learned.extra_features(names, heuristic, similarity_score),
        )

    def _scan(
        self, stream: list[str] | _tables.Tokens
    ) -> tuple[Sequence[str], int, int, list[tuple[int, list[int]]]]:
        """Words, longest token, blocks of 64 sentences, and the rules whose trigger
        groups meet with their sentences (see `_detector.scan`)."""
        if self._triggers is not None and _detector is not None:
            return _detector.scan(stream, self._triggers, normalization.SENTENCE_MARK)
        if not isinstance(stream, list):
            stream = stream.stream()
        return scan_and_gate_in_python(
            stream,
            self._trigger_words,
            self._word_groups,
            self._rule_groups,
            normalization.SENTENCE_MARK,
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
        sentences = marked.split(normalization.SENTENCE_MARK)
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
    """Whether the scorers run their compiled twins or the plain-Python versions."""
    return _detector is not None and _normalization is not None and learned.compiled()


def scan_in_python(
    stream: list[str], trigger_words: frozenset[str], mark: str
) -> tuple[list[str], int, list[dict[str, int]]]:
    """Words, longest token, and the trigger words' sentences (with `gate_in_python`,
    the reference for `_detector.scan`).

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
    `_detector.scan`.
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
    """`scan_in_python` then `gate_in_python`, shaped as `_detector.scan` returns them:
    words, longest token, blocks of 64 sentences, and the rules whose groups meet."""
    tokens, longest, block_masks = scan_in_python(stream, trigger_words, mark)
    met = gate_in_python(word_groups, rule_groups, block_masks)
    return tokens, longest, len(block_masks), met


@functools.cache
def shared() -> Detector:
    """The process-wide detector over the shipped corpus and model (built once, in about 60 ms)."""
    return Detector()
