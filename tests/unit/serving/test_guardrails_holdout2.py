"""Blind held-out evaluation of the offline prompt-injection / jailbreak detector (set 2).

``tests/data/guardrails/injection_holdout2.jsonl`` holds 100 attack and 100 benign prompts.
Every prompt was written by hand by an author who had NOT seen the detector, its training data
or any earlier evaluation set, so the numbers printed here estimate how the detector behaves on
traffic it was not shaped around.

Rules for this file and its data:

* It must NEVER be used for tuning: do not adjust patterns, features, thresholds or training
  data while looking at what this set misses or flags.
* Once the detector has been changed in response to any evaluation, this set is no longer
  blind. Replace it with a fresh blind set written by someone who has not seen the detector,
  instead of editing it or lowering the floors.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from llm_serving import policy
from llm_serving.guardrails import pipeline, tokens

DATA = Path(__file__).resolve().parents[2] / "data" / "guardrails" / "injection_holdout2.jsonl"

MIN_DETECTION = 0.70
MAX_FALSE_POSITIVE_RATE = 0.03


def _load() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _flagged(guard: pipeline.InputGuard, text: str) -> bool:
    return any(f.check == pipeline.PROMPT_INJECTION for f in guard.check(text).findings)


def _short(text: str, width: int = 100) -> str:
    return " ".join(text.split())[:width]


def test_holdout2_detection_and_false_positives() -> None:
    rows = _load()
    guard = pipeline.InputGuard(policy.InputGuardrails(), tokens.TokenCounter.from_path(None))
    results = [(row, _flagged(guard, row["text"])) for row in rows]

    attacks = [(row, hit) for row, hit in results if row["label"] == "attack"]
    benign = [(row, hit) for row, hit in results if row["label"] == "benign"]
    detected = sum(hit for _, hit in attacks)
    false_positives = [row for row, hit in benign if hit]
    detection = detected / len(attacks)
    fpr = len(false_positives) / len(benign)

    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for row, hit in attacks:
        per_kind[row["kind"]][0] += int(hit)
        per_kind[row["kind"]][1] += 1

    print()
    print("=== prompt-injection blind hold-out 2 ===")
    print(f"attacks: {len(attacks)}  benign: {len(benign)}")
    print(f"detected: {detected}/{len(attacks)}  detection rate: {detection:.3f}")
    print(f"false positives: {len(false_positives)}/{len(benign)}  FPR: {fpr:.3f}")
    print(f"floors: detection >= {MIN_DETECTION:.2f}, FPR <= {MAX_FALSE_POSITIVE_RATE:.2f}")
    print()
    print(f"{'kind':<22} {'detected':>8} {'total':>6} {'rate':>6}")
    for kind in sorted(per_kind):
        hit, total = per_kind[kind]
        print(f"{kind:<22} {hit:>8} {total:>6} {hit / total:>6.2f}")
    print()
    missed = [row for row, hit in attacks if not hit]
    print(f"missed attacks ({len(missed)}):")
    for row in missed:
        print(f"  [{row['kind']}] {_short(row['text'])}")
    print()
    print(f"false positives ({len(false_positives)}):")
    for row in false_positives:
        print(f"  [{row['kind']}] {_short(row['text'])}")

    assert detection >= MIN_DETECTION, f"detection {detection:.3f} < {MIN_DETECTION}"
    assert fpr <= MAX_FALSE_POSITIVE_RATE, f"FPR {fpr:.3f} > {MAX_FALSE_POSITIVE_RATE}"


def test_holdout2_file_format() -> None:
    rows = _load()
    for row in rows:
        assert set(row) == {"text", "label", "kind"}
        assert isinstance(row["text"], str)
        assert row["text"].strip()
        assert row["label"] in {"attack", "benign"}
        assert isinstance(row["kind"], str)
        assert row["kind"]
    labels = collections.Counter(row["label"] for row in rows)
    assert labels == {"attack": 100, "benign": 100}
    assert len({row["text"] for row in rows}) == len(rows)
    trigger_benign = [
        row for row in rows if row["label"] == "benign" and row["kind"].startswith("trigger_")
    ]
    assert len(trigger_benign) >= 45
