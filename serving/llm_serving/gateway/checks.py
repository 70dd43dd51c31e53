"""The checks of a request's texts and of a whole answer, as pure steps run anywhere.

`plan_request` decides, from the policy's `limits`, whether a request's texts are
refused for their length, scored whole, or sampled (`pipeline.sample_windows`);
`InputGuard.check_request` then scores them, on the event loop or in a worker
process (`workers`), and `apply_request` writes the redactions back into the
request. `check_answer` does the same for a whole (non-streamed) answer: every text
field of every choice (`texts.response_slots`) and the tokens of its logprobs, in
place. Neither records metrics nor raises: the caller gets the findings and the
first block, so the same function serves the loop and the workers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_serving import policy
from llm_serving.gateway import texts
from llm_serving.guardrails import pipeline, streaming


@dataclasses.dataclass(frozen=True)
class RequestPlan:
    """What to score of a request's texts: all, windows of them, or nothing (refused)."""

    texts: list[str]
    chars: int
    windows: pipeline.Windows | None
    refused: pipeline.Finding | None


def plan_request(slots: list[texts.Slot], limits: policy.CheckLimits) -> RequestPlan:
    """The plan for the texts of `slots` under `limits`."""
    strings = [slot.text for slot in slots]
    chars = sum(map(len, strings))
    refused = pipeline.over_limit(chars, limits, "prompt")
    windows = None
    if refused is None:
        windows = pipeline.sample_windows([len(s) for s in strings], limits.max_checked_chars)
    return RequestPlan(strings, chars, windows, refused)


def apply_request(
    slots: list[texts.Slot], plan: RequestPlan, result: pipeline.RequestResult
) -> tuple[list[pipeline.Finding], pipeline.Finding | None, bool]:
    """Write redactions back; the findings in order, the first block, and whether any changed.

    Stops at the first text holding a block (its findings are the last returned).
    """
    if result.length is not None:
        return [result.length], result.length, False
    findings: list[pipeline.Finding] = []
    changed = False
    for index, (slot, results) in enumerate(zip(slots, result.results, strict=True)):
        for one in results:
            findings.extend(one.findings)
        blocked = next((b for one in results if (b := one.blocked) is not None), None)
        if blocked is not None:
            return findings, blocked, changed
        if plan.windows is None:
            new = results[0].text
        else:
            new = pipeline.patch(slot.text, plan.windows[index], results)
        if new != slot.text:
            slot.replace(new)
            changed = True
    return findings, None, changed


@dataclasses.dataclass(frozen=True)
class AnswerResult:
    """What the output checks found in a whole answer."""

    findings: list[pipeline.Finding]
    blocked: pipeline.Finding | None
    changed: bool


def answer_chars(data: dict[str, Any], chat: bool) -> int:
    """Characters of text in an answer's choices (and their logprobs tokens)."""
    choices = data.get("choices")
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            total += sum(len(slot.text) for slot in texts.response_slots(choice, chat))
            tokens = texts.LogprobTokens(choice.get("logprobs"), chat)
            total += sum(len(entry.text) for entry in tokens.entries)
    return total


def check_answer(
    guard: pipeline.OutputGuard, data: dict[str, Any], chat: bool, limits: policy.CheckLimits
) -> AnswerResult:
    """Check every text of every choice of `data` in place (see the module docstring).

    Over `limits.maxCheckedChars`: refused, or the texts are sampled and the logprobs
    tokens are left unchecked.
    """
    choices = data.get("choices")
    if not isinstance(choices, list):
        return AnswerResult([], None, False)
    choices = [choice for choice in choices if isinstance(choice, dict)]
    slots = [slot for choice in choices for slot in texts.response_slots(choice, chat)]
    chars = answer_chars(data, chat)
    refused = pipeline.over_limit(chars, limits, "answer")
    if refused is not None:
        return AnswerResult([refused], refused, False)
    sampled = chars > limits.max_checked_chars
    lengths = [len(s.text) for s in slots]
    windows = pipeline.sample_windows(lengths, limits.max_checked_chars) if sampled else None
    findings: list[pipeline.Finding] = []
    changed = False
    for index, slot in enumerate(slots):
        spans = [(0, len(slot.text))] if windows is None else windows[index]
        results = [guard.check(slot.text[a:b]) for a, b in spans]
        for result in results:
            findings.extend(result.findings)
            if result.blocked is not None:
                return AnswerResult(findings, result.blocked, changed)
        new = pipeline.patch(slot.text, spans, results)
        if new != slot.text:
            slot.replace(new)
            changed = True
    if not sampled:
        for choice in choices:
            blocked = _check_logprobs(guard, choice, chat)
            if isinstance(blocked, pipeline.Finding):
                return AnswerResult(findings, blocked, changed)
            changed |= blocked
    return AnswerResult(findings, None, changed)


def _check_logprobs(
    guard: pipeline.OutputGuard, choice: dict[str, Any], chat: bool
) -> bool | pipeline.Finding:
    """Redact the tokens of a choice's logprobs like its text: whether any changed, or
    the block (their findings are the text's, already counted)."""
    tokens = texts.LogprobTokens(choice.get("logprobs"), chat)
    if not tokens.entries:
        return False
    scanner = streaming.TokenScanner(guard)
    released = scanner.feed([entry.text for entry in tokens.entries])
    final = scanner.finish()
    for result in (released, final):
        if result.blocked is not None:
            return result.blocked
    changed = False
    for position, text in released.released + final.released:
        if text is not None:
            tokens.redact(tokens.entries[position], text)
            changed = True
    if changed:
        tokens.fix_offsets(0)
    return changed
