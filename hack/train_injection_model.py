"""Train the learned prompt-injection scorer and write ``data/injection_model.json``.

Reads the labelled prompts in ``serving/llm_serving/data/injection_train.jsonl``, runs
each through `injection.Detector.evidence` (normalisation, decoded payloads, rules,
corpus similarity), builds the features of `learned.features`, and fits a
scikit-learn logistic regression (L2, C=100, balanced classes, lbfgs). Grouped,
stratified 5-fold cross-validation, repeated with three shuffles, gives out-of-fold
decision values; the offset written with the model is the lowest threshold at which
the pooled out-of-fold false-positive rate (counting the detector's rule floor, see
`injection.RULE_FLOOR`) stays at or below `TARGET_FPR`, so a score of 0.5 is that
operating point. Groups join prompts that share a run of seven words, so variants of
one document never sit on both sides of a fold.

The training prompts were written by hand for this project (the indirect-injection
documents combine hand-written carriers with hand-written planted lines), in many
phrasings per attack family, with benign prompts that use the same trigger words,
code, documents and other languages; none of them is in the rules' evaluation set
(a unit test checks). C, the normalisation power and the feature set were chosen by
this cross-validation together with a check that long benign text (chunks of this
repository's docs and code) is not flagged.

scikit-learn is needed here only; the gateway scores with `learned.Model`. Run from
the repository root::

    .venv/bin/python hack/train_injection_model.py            # train, cross-validate, write
    .venv/bin/python hack/train_injection_model.py --check    # retrain and compare, no write
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
import sklearn
import sklearn.linear_model
import sklearn.model_selection

from llm_serving.guardrails import injection
from llm_serving.guardrails.injection import learned, rules

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "serving" / "llm_serving" / "data"
TRAIN = DATA / "injection_train.jsonl"
MODEL = DATA / "injection_model.json"
C = 100.0
MIN_DF = 2
TARGET_FPR = 0.015
FOLDS = 5
REPEATS = 3
SHINGLE = 7
DIGITS = 4
"""Weights are rounded to this many decimals; smaller ones are dropped."""


def load(path: pathlib.Path = TRAIN) -> list[dict[str, str]]:
    """The labelled rows: ``label`` (attack or benign), ``category``, ``text``."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def featurize(texts: Sequence[str]) -> list[learned.Features]:
    """Features of each text, exactly as the gateway computes them."""
    detector = injection.Detector(model=learned.Model.empty())
    found = []
    for text in texts:
        evidence = detector.evidence(text)
        found.append(learned.features(evidence.tokens, evidence.extras))
    return found


def groups(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Connected components of texts sharing a run of `SHINGLE` normalised words."""
    parent = list(range(len(texts)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first: dict[str, int] = {}
    for index, text in enumerate(texts):
        words = rules.tokenize(injection.normalize(text))
        for start in range(len(words) - SHINGLE + 1):
            shingle = " ".join(words[start : start + SHINGLE])
            if shingle in first:
                parent[find(index)] = find(first[shingle])
            else:
                first[shingle] = index
    return np.array([find(index) for index in range(len(texts))], dtype=np.int64)


class Vocabulary:
    """Column indices of the features seen in at least `MIN_DF` training prompts."""

    def __init__(self, found: Sequence[learned.Features]) -> None:
        frequency: collections.Counter[tuple[str, str]] = collections.Counter()
        for item in found:
            frequency.update(("word", key) for key in item.words)
            frequency.update(("char", key) for key in item.chars)
            frequency.update(("extra", key) for key in item.extras)
        kept = {key for key, count in frequency.items() if count >= MIN_DF}
        kept |= {("extra", learned.HEURISTIC), ("extra", learned.SIMILARITY)}
        self.columns = {key: index for index, key in enumerate(sorted(kept))}

    def matrix(self, found: Sequence[learned.Features]) -> scipy.sparse.csr_matrix:
        """Rows of scaled word and character counts plus the extras."""
        rows: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        for row, item in enumerate(found):
            groups_ = (
                ("word", learned.scaled(item.words, learned.MIN_WORD_TOTAL)),
                ("char", learned.scaled(item.chars, learned.MIN_CHAR_TOTAL)),
                ("extra", item.extras),
            )
            for kind, group in groups_:
                for key, value in group.items():
                    column = self.columns.get((kind, key))
                    if column is not None and value:
                        rows.append(row)
                        columns.append(column)
                        values.append(value)
        shape = (len(found), len(self.columns))
        return scipy.sparse.csr_matrix((values, (rows, columns)), shape=shape)


def fit(
    found: Sequence[learned.Features], labels: npt.NDArray[np.int64]
) -> tuple[Vocabulary, sklearn.linear_model.LogisticRegression]:
    """Vocabulary and logistic regression fitted on these rows."""
    vocabulary = Vocabulary(found)
    classifier = sklearn.linear_model.LogisticRegression(
        C=C, class_weight="balanced", max_iter=10_000, tol=1e-8
    )
    classifier.fit(vocabulary.matrix(found), labels)
    return vocabulary, classifier


def to_model(
    vocabulary: Vocabulary,
    classifier: sklearn.linear_model.LogisticRegression,
    offset: float,
    metadata: dict[str, Any],
) -> learned.Model:
    """A `learned.Model` with rounded weights (zeros dropped)."""
    parts: dict[str, dict[str, float]] = {"word": {}, "char": {}, "extra": {}}
    for (kind, key), column in vocabulary.columns.items():
        weight = round(float(classifier.coef_[0, column]), DIGITS)
        if weight:
            parts[kind][key] = weight
    words = parts["word"]
    return learned.Model(
        bias=round(float(classifier.intercept_[0]), DIGITS),
        offset=round(offset, DIGITS),
        unigrams={key: weight for key, weight in words.items() if " " not in key},
        bigrams={key: weight for key, weight in words.items() if " " in key},
        chars=parts["char"],
        extras=parts["extra"],
        metadata=metadata,
    )


def cross_validate(
    found: Sequence[learned.Features],
    labels: npt.NDArray[np.int64],
    group_ids: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Out-of-fold decision values, one column per repeat."""
    decisions = np.zeros((len(found), REPEATS))
    for repeat in range(REPEATS):
        splitter = sklearn.model_selection.StratifiedGroupKFold(
            FOLDS, shuffle=True, random_state=repeat
        )
        for train, test in splitter.split(np.zeros(len(found)), labels, group_ids):
            vocabulary, classifier = fit([found[i] for i in train], labels[train])
            matrix = vocabulary.matrix([found[i] for i in test])
            decisions[test, repeat] = classifier.decision_function(matrix)
    return decisions


def choose_offset(
    decisions: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    heuristic: npt.NDArray[np.float64],
) -> float:
    """Lowest threshold whose pooled out-of-fold FPR is at most `TARGET_FPR`.

    Prompts the rule floor flags anyway count as flagged at any threshold.
    """
    floored = np.where((heuristic >= injection.RULE_FLOOR)[:, None], np.inf, decisions)
    benign = np.sort(floored[labels == 0].ravel())
    allowed = math.floor(TARGET_FPR * len(benign))
    # Flag when decision >= offset: at most `allowed` benign values may reach it.
    return float(np.nextafter(benign[len(benign) - allowed - 1], np.inf))


def report(
    rows: Sequence[dict[str, str]],
    decisions: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    offset: float,
    heuristic: npt.NDArray[np.float64],
) -> dict[str, Any]:
    """Detection and FPR at the offset, overall and per category (pooled over repeats).

    As shipped, a prompt is flagged when the model's decision reaches the offset or its
    rules+similarity score (`heuristic`) reaches `injection.RULE_FLOOR`; the model
    alone and the rules+similarity score alone at 0.5 are reported for comparison.
    """
    model_only = decisions >= offset
    flagged = model_only | (heuristic >= injection.RULE_FLOOR)[:, None]
    rules_only = heuristic >= 0.5
    attack = labels == 1
    detection = float(flagged[attack].mean())
    fpr = float(flagged[~attack].mean())
    per_category: dict[str, dict[str, Any]] = {}
    for category in sorted({(row["label"], row["category"]) for row in rows}):
        mask = np.array([(row["label"], row["category"]) == category for row in rows])
        per_category[f"{category[0]}/{category[1]}"] = {
            "n": int(mask.sum()),
            "flagged": round(float(flagged[mask].mean()), 3),
        }
    return {
        "detection": round(detection, 4),
        "false_positive_rate": round(fpr, 4),
        "model_only_detection": round(float(model_only[attack].mean()), 4),
        "model_only_false_positive_rate": round(float(model_only[~attack].mean()), 4),
        "rules_only_detection": round(float(rules_only[attack].mean()), 4),
        "rules_only_false_positive_rate": round(float(rules_only[~attack].mean()), 4),
        "per_category": per_category,
    }


def train(
    rows: Sequence[dict[str, str]], *, validate: bool = True
) -> tuple[learned.Model, dict[str, Any]]:
    """Fit the shipped model on all rows; cross-validate to set the offset."""
    texts = [row["text"] for row in rows]
    labels = np.array([row["label"] == "attack" for row in rows], dtype=np.int64)
    found = featurize(texts)
    summary: dict[str, Any] = {}
    offset = 0.0
    if validate:
        decisions = cross_validate(found, labels, groups(texts))
        heuristic = np.array([item.extras[learned.HEURISTIC] for item in found])
        offset = choose_offset(decisions, labels, heuristic)
        summary = report(rows, decisions, labels, offset, heuristic)
    vocabulary, classifier = fit(found, labels)
    digest = hashlib.sha256(TRAIN.read_bytes()).hexdigest() if TRAIN.exists() else ""
    metadata = {
        "data": "injection_train.jsonl",
        "sha256": digest,
        "examples": len(rows),
        "attacks": int(labels.sum()),
        "C": C,
        "min_df": MIN_DF,
        "target_fpr": TARGET_FPR,
        "folds": FOLDS,
        "repeats": REPEATS,
        "cross_validation": {k: v for k, v in summary.items() if k != "per_category"},
        "sklearn": sklearn.__version__,
    }
    return to_model(vocabulary, classifier, offset, metadata), summary


def write(model: learned.Model, path: pathlib.Path = MODEL) -> None:
    """Write the model as compact JSON, one key per line at the top level."""
    document = model.to_document()
    lines = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in document.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare, no write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = load()
    if args.check:
        shipped = learned.Model.load_default()
        model, _ = train(rows, validate=False)
        model.offset = shipped.offset
        same = model.to_document() | {"training": None} == shipped.to_document() | {
            "training": None
        }
        print("identical" if same else "DIFFERENT from the shipped model")
        return 0 if same else 1
    model, summary = train(rows)
    write(model)
    print(json.dumps(summary, indent=1))
    print(
        f"offset {model.offset}; {len(model.unigrams)} unigrams, {len(model.bigrams)} bigrams, "
        f"{len(model.chars)} char grams, {len(model.extras)} extras; "
        f"{time.perf_counter() - started:.1f} s; wrote {MODEL.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
