"""Toxicity: the numpy fast path equals alt-profanity-check, segments, and stream equivalence."""

from __future__ import annotations

import random

import pytest

from llm_serving.guardrails import toxicity

SAMPLES = [
    "you are a stupid idiot",
    "have a lovely day, friend",
    "what the fuck is this shit",
    "The city council met on Tuesday to debate the new bike lane proposal.",
    "I hate this damn printer so much",
    "Thanks for the thoughtful review of my pull request!",
    "shut up you worthless piece of garbage",
    "",
    "zzqx",
    "Bonjour tout le monde",
]


@pytest.fixture(scope="module")
def model() -> toxicity.ToxicityModel:
    return toxicity.shared()


def test_matches_the_package(model: toxicity.ToxicityModel) -> None:
    from profanity_check import profanity_check

    expected = profanity_check.predict_prob(SAMPLES)
    for text, reference in zip(SAMPLES, expected, strict=True):
        assert model.probability(text) == pytest.approx(float(reference), abs=1e-9), text


def test_short_text_path_equals_the_numpy_path(model: toxicity.ToxicityModel) -> None:
    """`score` sums short texts in plain Python; it must give the vectorised numbers."""
    rng = random.Random(7)
    vocabulary = sorted(model._vocabulary)
    texts = [*SAMPLES, "idiot idiot idiot stupid. damn you idiot!\nhello there"]
    texts += [" ".join(rng.choice(vocabulary) for _ in range(n)) for n in (1, 5, 20, 32, 33, 80)]
    for text in texts:
        segments = model.segments(text)
        expected = float(model.segment_probabilities(segments).max()) if segments else 0.0
        assert model.score(text) == pytest.approx(expected, abs=1e-12), text


def test_segments_catch_a_toxic_sentence_in_long_text(model: toxicity.ToxicityModel) -> None:
    benign = "The committee reviewed the budget and approved the new library hours. " * 12
    text = benign + "You are a worthless fucking idiot. " + benign
    assert model.probability(text) < 0.8  # diluted over the whole text
    assert model.score(text) > 0.9  # but its own segment is toxic
    assert model.score(benign) < 0.5
    assert model.score("") == 0.0


def test_stream_tracker_matches_whole_text(model: toxicity.ToxicityModel) -> None:
    """Closed segments score the same in any chunking; open prefixes may only add strictness."""
    text = (
        "Here is the plan. First we gather data!\nThen, you stupid idiot, we analyse it? "
        "Finally we write the report and go home " * 3
    )
    whole = model.score(text)
    generator = random.Random(7)
    for _ in range(20):
        tracker = model.tracker()
        position = 0
        while position < len(text):
            size = generator.randint(1, 12)
            tracker.feed(text[position : position + size])
            position += size
        assert tracker.finish() >= whole - 1e-9
    sentence_aligned = model.tracker()
    for sentence in text.split(". "):
        sentence_aligned.feed(sentence + ". ")
    benign = "The weather is nice today. We walked to the park and fed the ducks. " * 3
    tracker = model.tracker()
    for word in benign.split(" "):
        tracker.feed(word + " ")
    assert tracker.finish() == pytest.approx(model.score(benign), abs=0.05)


def test_tracker_scores_open_segment_early(model: toxicity.ToxicityModel) -> None:
    tracker = model.tracker()
    score = tracker.feed("you are a fucking idiot and ")
    assert score > 0.9  # before any sentence end arrives


@pytest.mark.skipif(toxicity._toxicity is None, reason="extension not built")
def test_compiled_split_equals_the_regular_expression(model: toxicity.ToxicityModel) -> None:
    """The compiled split of ASCII text gives the regular expression's segments."""
    rng = random.Random(3)
    vocabulary = sorted(word for word in model._vocabulary if word.isascii())
    pieces = [
        *rng.sample(vocabulary, 200), *(word.upper() for word in rng.sample(vocabulary, 50)),
        "a", "I", "x1", "_", "__", "snake_case_word", "Word99", "z" * 30, "Idiot" * 7,
        ".", "!", "?", "...", "\n", "\t", " ", "  ", "\x0b", "\x0c", "\r", "\x1c", "\x1f",
        "-", ",", "'", "e.g.", "ok.\n", "why?!",
    ]  # fmt: skip
    texts = [*SAMPLES, "", "." * 5, "a. b! c?\nd", "end.", "end. ", "end.\x1cnext"]
    texts += [
        "".join(rng.choice(pieces) for _ in range(n)) for n in range(1, 200) for _ in range(5)
    ]
    texts += [" ".join(rng.choice(vocabulary) for _ in range(n)) for n in (63, 64, 65, 130, 200)]
    ascii_texts = [text for text in texts if text.isascii()]
    assert len(ascii_texts) > 900
    found = 0
    for text in ascii_texts:
        expected = model.segments_in_python(text)
        assert model.segments(text) == expected, repr(text)
        found += len(expected)
    assert found > 300
    assert model._lexicon is not None
    with pytest.raises(ValueError, match="ASCII"):
        toxicity._toxicity.toxicity_segments("naïve", model._lexicon, 64)
    assert model.segments("naïve idiot") == model.segments_in_python("naïve idiot")
