"""The guardrail pipeline the gateway calls: input checks, output checks, stream scanning.

`InputGuard` and `OutputGuard` are built once per policy (everything is compiled at
construction) and are pure afterwards, so one instance serves all requests
concurrently. A check returns a `TextResult`: the text after redactions plus the
`Finding` of each check that fired, in a fixed order; `TextResult.blocked` is the
first finding whose action is block. Findings carry the check name, the policy's
action, a score and, for PII, the entity kind; their messages never contain the
matched text, so they can go to clients, logs and metrics as they are.

`InputGuard` remembers the results of long texts (bounded, least recently used out):
chat clients send the system prompt and the history again with every turn.

A request's texts are checked together by `InputGuard.check_request`: the prompt
length over all of them, then each text, or each window of it that `sample_windows`
chose when the texts are longer together than the policy's `limits.maxCheckedChars`
and `overLimit` is sample (`over_limit` is the finding when it is refuse). The
result depends on the texts and the policy only, so it is the same computed on the
event loop or in a worker process.

Streams are checked incrementally by `streaming.StreamScanner` over an `OutputGuard`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

import aiohttp

from llm_serving import policy
from llm_serving.guardrails import injection, judge, patterns, pii, tokens, toxicity

logger = logging.getLogger(__name__)

PROMPT_INJECTION = "prompt_injection"
PII = "pii"
TOXICITY = "toxicity"
DENY_PATTERN = "deny_pattern"
PROMPT_LENGTH = "prompt_length"
JUDGE = "judge"
TEXT_LIMIT = "text_limit"
CHECKS = (PROMPT_INJECTION, PII, TOXICITY, DENY_PATTERN, PROMPT_LENGTH, JUDGE, TEXT_LIMIT)
#: A text at most this long is scored whole even when a request's texts are sampled.
SAMPLE_WHOLE_CHARS = 256
#: The widest window scored of a sampled text.
SAMPLE_WINDOW_CHARS = 4096
#: Input texts shorter than this are checked every time (they are cheap to check).
MEMO_MIN_CHARS = 256
#: At most this many input results are remembered per policy...
MEMO_ENTRIES = 4096
#: ...holding at most this many characters of prompt and redacted text together.
MEMO_CHARS = 8 * 1024 * 1024

_ENTITY_NAMES: dict[str, tuple[str, str]] = {
    policy.PIIEntity.EMAIL.value: ("email address", "email addresses"),
    policy.PIIEntity.PHONE.value: ("phone number", "phone numbers"),
    policy.PIIEntity.CREDIT_CARD.value: ("payment card number", "payment card numbers"),
    policy.PIIEntity.IBAN.value: ("IBAN", "IBANs"),
    policy.PIIEntity.US_SSN.value: ("US social security number", "US social security numbers"),
    policy.PIIEntity.IP_ADDRESS.value: ("IP address", "IP addresses"),
    policy.PIIEntity.CREDENTIAL.value: ("credential", "credentials"),
}
_VERBS = {
    policy.Action.BLOCK: "found",
    policy.Action.REDACT: "redacted",
    policy.Action.MONITOR: "detected",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check that fired."""

    check: str
    """One of `CHECKS`: "prompt_injection", "pii", "toxicity", "deny_pattern", "prompt_length",
    "judge", "text_limit"."""
    action: policy.Action
    """What the policy says to do: block, redact or monitor."""
    score: float
    """0..1; 1.0 for deterministic rules."""
    entity: str | None
    """The `policy.PIIEntity` value for PII findings; None otherwise."""
    message: str
    """Human-readable and safe for clients and logs: never contains the matched text."""


@dataclasses.dataclass(frozen=True)
class TextResult:
    """Text after redactions and the findings that produced it."""

    text: str
    findings: tuple[Finding, ...]
    spans: tuple[pii.Span, ...] = ()
    """The redactions applied, in the coordinates of the text checked."""
    source_chars: int | None = None
    """Streams: how many characters of the text fed so far this result covers (None: all)."""

    @property
    def blocked(self) -> Finding | None:
        """The first finding whose action is block, if any."""
        for finding in self.findings:
            if finding.action is policy.Action.BLOCK:
                return finding
        return None


def _pii_findings(action: policy.Action, spans: list[pii.Span]) -> list[Finding]:
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.kind] = counts.get(span.kind, 0) + 1
    findings = []
    for kind, count in counts.items():
        singular, plural = _ENTITY_NAMES[kind]
        noun = singular if count == 1 else plural
        findings.append(Finding(PII, action, 1.0, kind, f"{count} {noun} {_VERBS[action]}"))
    return findings


def _deny_finding(action: policy.Action, matches: list[tuple[int, pii.Span]]) -> Finding:
    return Finding(
        DENY_PATTERN, action, 1.0, None, patterns.describe([index for index, _ in matches])
    )


class TextChecks:
    """Deny patterns and PII, shared by input and output (spans in one text)."""

    def __init__(self, pii_config: policy.PIICheck, deny: policy.DenyPatternCheck) -> None:
        self._deny = patterns.DenyPatterns(deny)
        self._pii_action = pii_config.action
        self._pii = pii.PIIDetector(pii_config.entities) if pii_config.enabled else None

    def scan(self, text: str) -> tuple[list[tuple[int, pii.Span]], list[pii.Span]]:
        """Deny matches and PII entities in `text` (PII overlaps already resolved)."""
        deny = self._deny.find(text) if self._deny else []
        entities = self._pii.find(text) if self._pii is not None and text else []
        return deny, entities

    def redactions(
        self, deny: list[tuple[int, pii.Span]], entities: list[pii.Span]
    ) -> list[pii.Span]:
        """The spans to replace under the configured actions."""
        spans: list[pii.Span] = []
        if self._deny.action is policy.Action.REDACT:
            spans.extend(span for _, span in deny)
        if self._pii_action is policy.Action.REDACT:
            spans.extend(entities)
        return pii.resolve(spans) if len(spans) > 1 else spans

    def findings(self, deny: list[tuple[int, pii.Span]], entities: list[pii.Span]) -> list[Finding]:
        """Findings in the fixed order: deny pattern first, then one per PII entity kind."""
        findings: list[Finding] = []
        if deny:
            findings.append(_deny_finding(self._deny.action, deny))
        if entities:
            findings.extend(_pii_findings(self._pii_action, entities))
        return findings

    @property
    def deny_action(self) -> policy.Action:
        return self._deny.action

    @property
    def has_deny_patterns(self) -> bool:
        return bool(self._deny)

    @property
    def pii_action(self) -> policy.Action:
        return self._pii_action


def _memo_size(text: str, result: TextResult) -> int:
    """Characters a remembered result holds: the prompt, and the redacted copy if any."""
    return len(text) + (len(result.text) if result.text is not text else 0)


class InputGuard:
    """Checks on prompts: length, deny patterns, prompt injection, PII; plus the judge."""

    def __init__(self, config: policy.InputGuardrails, tokens: tokens.TokenCounter) -> None:
        self._config = config
        self._tokens = tokens
        self.text_checks = TextChecks(config.pii, config.deny_patterns)
        injection_config = config.prompt_injection
        self._injection = injection.shared() if injection_config.enabled else None
        self._threshold = injection_config.threshold
        self._injection_action = injection_config.action
        self._memo: collections.OrderedDict[str, TextResult] = collections.OrderedDict()
        self._memo_chars = 0

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` (exact with the model's tokenizer, else the documented estimate)."""
        return self._tokens.count(text)

    def check(self, text: str) -> TextResult:
        """All input checks except the judge; `prompt_length` counts the tokens of `text`.

        Results of texts of at least `MEMO_MIN_CHARS` are remembered (least recently
        used first out, at most `MEMO_ENTRIES` texts and `MEMO_CHARS` characters): a
        chat client sends the system prompt and the whole history again with every
        turn, and only the new message needs checking. The result depends on nothing
        but the text and this guard's policy, and a new policy builds a new guard.
        """
        if len(text) < MEMO_MIN_CHARS:
            return self._check(text)
        memo = self._memo
        result = memo.get(text)
        if result is not None:
            memo.move_to_end(text)
            return result
        result = self._check(text)
        size = _memo_size(text, result)
        if size <= MEMO_CHARS:
            memo[text] = result
            self._memo_chars += size
            while len(memo) > MEMO_ENTRIES or self._memo_chars > MEMO_CHARS:
                self._memo_chars -= _memo_size(*memo.popitem(last=False))
        return result

    def check_request(self, texts: list[str], windows: Windows | None = None) -> RequestResult:
        """The prompt length over all `texts`, then each text (or each of its `windows`).

        Stops at the length finding when the prompt is too long.
        """
        length = self.over_length(texts)
        if length is not None:
            return RequestResult(length, [])
        results = []
        for index, text in enumerate(texts):
            if windows is None:
                results.append([self.check(text)])
            else:
                results.append([self.check(text[a:b]) for a, b in windows[index]])
        return RequestResult(None, results)

    def over_length(self, texts: list[str]) -> Finding | None:
        """The `prompt_length` finding when `texts` together exceed `maxPromptTokens`."""
        limit = self._config.max_prompt_tokens
        if limit is None or not texts:
            return None
        over = self._tokens.exceeds(texts[0] if len(texts) == 1 else "\n".join(texts), limit)
        if over is None:
            return None
        noun = "prompt has" if len(texts) == 1 else "messages have"
        message = f"the {noun} {over} tokens together; the limit is {limit}"
        if not self._tokens.exact:
            message += " (estimated)"
        return Finding(PROMPT_LENGTH, policy.Action.BLOCK, 1.0, None, message)

    def _check(self, text: str) -> TextResult:
        limit = self._config.max_prompt_tokens
        if limit is not None:
            over = self._tokens.exceeds(text, limit)
            if over is not None:
                message = f"prompt has {over} tokens; the limit is {limit}"
                if not self._tokens.exact:
                    message += " (estimated)"
                finding = Finding(PROMPT_LENGTH, policy.Action.BLOCK, 1.0, None, message)
                return TextResult(text, (finding,))
        if not text:
            return TextResult(text, ())
        deny, entities = self.text_checks.scan(text)
        findings = []
        if deny:
            findings.append(_deny_finding(self.text_checks.deny_action, deny))
        if self._injection is not None:
            verdict = self._injection.score(text)
            if verdict.score >= self._threshold:
                reasons = ", ".join(verdict.rules[:3]) or "learned model"
                findings.append(
                    Finding(
                        PROMPT_INJECTION,
                        self._injection_action,
                        verdict.score,
                        None,
                        f"prompt-injection score {verdict.score:.2f} is at or above the "
                        f"threshold {self._threshold:.2f} ({reasons})",
                    )
                )
        if entities:
            findings.extend(_pii_findings(self.text_checks.pii_action, entities))
        redactions = self.text_checks.redactions(deny, entities)
        redacted = pii.apply(text, redactions) if redactions else text
        return TextResult(redacted, tuple(findings), tuple(redactions))

    async def judge(self, session: aiohttp.ClientSession, text: str) -> Finding | None:
        """Ask the judge model; a Finding when unsafe or failing closed, else None.

        POSTs to ``{url}/v1/chat/completions`` within ``timeoutSeconds``. On a
        timeout, network or HTTP error or an unparseable reply the policy's failMode
        decides: open returns None (the failure is logged), closed returns a finding
        with the judge's action and score 0.0 (no verdict was obtained).
        """
        config = self._config.judge
        if not config.enabled or not config.url:
            return None
        try:
            verdict = await judge.ask(session, config, text)
        except judge.JudgeError as exc:
            logger.warning("judge failed (%s); failing %s", exc.reason, config.fail_mode.value)
            if config.fail_mode is policy.FailMode.OPEN:
                return None
            return Finding(
                JUDGE,
                config.action,
                0.0,
                None,
                f"the judge model is unavailable ({exc.reason}); failing closed",
            )
        if verdict.safe:
            return None
        categories = ", ".join(verdict.categories) or "unspecified"
        return Finding(
            JUDGE,
            config.action,
            1.0,
            None,
            f"the judge model flagged the prompt as unsafe (categories: {categories})",
        )


class OutputGuard:
    """Checks on completions: deny patterns, PII, toxicity; whole or streamed."""

    def __init__(self, config: policy.OutputGuardrails) -> None:
        self._config = config
        self.text_checks = TextChecks(config.pii, config.deny_patterns)
        tox = config.toxicity
        self.toxicity_model = toxicity.shared() if tox.enabled else None
        self.toxicity_threshold = tox.threshold
        self.toxicity_action = tox.action
        self.holdback = config.stream_holdback_chars

    def toxicity_finding(self, score: float) -> Finding:
        return Finding(
            TOXICITY,
            self.toxicity_action,
            round(score, 4),
            None,
            f"toxicity score {score:.2f} is at or above the threshold "
            f"{self.toxicity_threshold:.2f}",
        )

    def check(self, text: str) -> TextResult:
        """Check a whole completion."""
        if not text:
            return TextResult(text, ())
        deny, entities = self.text_checks.scan(text)
        findings = self.text_checks.findings(deny, entities)
        if self.toxicity_model is not None:
            score = self.toxicity_model.score(text)
            if score >= self.toxicity_threshold:
                findings.append(self.toxicity_finding(score))
        redactions = self.text_checks.redactions(deny, entities)
        redacted = pii.apply(text, redactions) if redactions else text
        return TextResult(redacted, tuple(findings), tuple(redactions))


#: Per text, the ``(start, end)`` windows the checks score.
Windows = list[list[tuple[int, int]]]


@dataclasses.dataclass(frozen=True)
class RequestResult:
    """`InputGuard.check_request`: the length finding, or a result per window of each text."""

    length: Finding | None
    results: list[list[TextResult]]


def over_limit(chars: int, limits: policy.CheckLimits, what: str) -> Finding | None:
    """The `text_limit` finding when `chars` exceed `maxCheckedChars` and the policy refuses."""
    if chars <= limits.max_checked_chars or limits.over_limit is not policy.OverLimit.REFUSE:
        return None
    return Finding(
        TEXT_LIMIT,
        policy.Action.BLOCK,
        1.0,
        None,
        f"the {what} has {chars} characters of text; the checks score at most "
        f"{limits.max_checked_chars} (limits.maxCheckedChars)",
    )


def sample_windows(lengths: list[int], budget: int) -> Windows | None:
    """Windows of texts of `lengths` adding up to at most `budget` characters; None: all fit.

    Texts of at most `SAMPLE_WHOLE_CHARS` are scored whole (when they fit together);
    the rest of the budget is shared in proportion to what is left of each text, and a
    text longer than its share gets evenly spaced windows of at most
    `SAMPLE_WINDOW_CHARS`, the first at its start and the last at its end.
    """
    if sum(lengths) <= budget:
        return None
    floors = [min(n, SAMPLE_WHOLE_CHARS) for n in lengths]
    if sum(floors) > budget:
        floors = [0] * len(lengths)
    rest = budget - sum(floors)
    extra = sum(lengths) - sum(floors)
    windows: Windows = []
    for n, floor in zip(lengths, floors, strict=True):
        share = floor + rest * (n - floor) // extra
        if n <= share:
            windows.append([(0, n)])
            continue
        width = min(SAMPLE_WINDOW_CHARS, share)
        count = share // width if width else 0
        if count <= 1:
            windows.append([(0, width)] if width else [])
            continue
        step = (n - width) / (count - 1)
        windows.append([(round(i * step), round(i * step) + width) for i in range(count)])
    return windows


def patch(text: str, windows: list[tuple[int, int]], results: list[TextResult]) -> str:
    """`text` with each window replaced by its result's (redacted) text."""
    if all(r.text == text[a:b] for (a, b), r in zip(windows, results, strict=True)):
        return text
    parts = []
    cursor = 0
    for (start, end), result in zip(windows, results, strict=True):
        parts.append(text[cursor:start])
        parts.append(result.text)
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)
