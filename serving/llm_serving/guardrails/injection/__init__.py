"""Prompt-injection and jailbreak detection, offline: rules, corpus similarity, learned model.

The rooms: `normalization` (undoing obfuscation, decoding hidden payloads), `rules`
(the weighted patterns, loaded from ``data/injection_rules.yaml``), `similarity` (TF-IDF
windows against shipped attack exemplars), `learned` (the logistic regression whose
score is final) and `detector` (which runs them and returns a `Verdict`). The names
below are the package's API for the gateway and the tools; `detector`'s docstring
tells how the pieces add up.
"""

from __future__ import annotations

from llm_serving.guardrails.injection import detector, learned, normalization, rules, similarity

Detector = detector.Detector
Verdict = detector.Verdict
Evidence = detector.Evidence
RULE_FLOOR = detector.RULE_FLOOR
shared = detector.shared
compiled = detector.compiled
normalize = normalization.normalize
decoded_views = normalization.decoded_views
Corpus = similarity.Corpus
SimilarityIndex = similarity.SimilarityIndex

__all__ = [
    "RULE_FLOOR",
    "Corpus",
    "Detector",
    "Evidence",
    "SimilarityIndex",
    "Verdict",
    "compiled",
    "decoded_views",
    "detector",
    "learned",
    "normalization",
    "normalize",
    "rules",
    "shared",
    "similarity",
]
