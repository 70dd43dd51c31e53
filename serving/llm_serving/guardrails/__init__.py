"""Guardrail checks for the gateway sidecar: a pure, fast library with no I/O except the judge.

`pipeline` is the API the gateway calls (`InputGuard`, `OutputGuard`,
`StreamScanner`, `Finding`, `TextResult`); the checks live in their own modules:
the `injection` package (normalisation, weighted rules read from
``data/injection_rules.yaml``, similarity to a shipped attack corpus, and `learned`, a
logistic regression over words and character n-grams trained offline by
`hack/train_injection_model.py`, whose score is final), `pii` (regular
expressions with checksums), `toxicity` (alt-profanity-check's model on a numpy fast
path), `patterns` (operator deny patterns), `tokens` (prompt length, exact with a
mounted ``tokenizer.json``), and `judge` (an optional Llama-Guard-style model over
HTTP). Everything is compiled when a guard is built, so a check on a 1 KB prompt
costs a fraction of a millisecond, and every check is linear in its text
(``docs/guardrails.md``).
"""
