"""The guardrail policy: one pydantic model read by the gateway sidecar and embedded in the CRD.

`spec.guardrails` of an LLMDeployment is exactly a `GuardrailPolicy`. The operator
renders it to JSON in a ConfigMap mounted into the gateway container, and the
gateway loads that file with `GuardrailPolicy.model_validate_json`, so the API
server, `llm-operator render` and the gateway all accept the same documents.
Field descriptions become `kubectl explain` text.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import pydantic
import re2
from pydantic import alias_generators

Fraction = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]


class FieldError(ValueError):
    """A cross-field validation error that knows which field (relative path) to blame."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def error_lines(exc: pydantic.ValidationError, prefix: str = "") -> list[str]:
    """One readable line per error, each starting with the camelCase field path."""
    lines = []
    for error in exc.errors():
        parts = [prefix] if prefix else []
        parts += [str(part) for part in error["loc"]]
        message = error["msg"]
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            parts.append(cause.path)
            message = cause.message
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        path = ".".join(p for p in parts if p)
        lines.append(f"{path or '<root>'}: {message}")
    return lines


class Model(pydantic.BaseModel):
    """Base for every API model: camelCase on the wire, unknown fields refused."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        use_enum_values=False,
        validate_default=True,
    )


class Action(enum.StrEnum):
    """What the gateway does when a check fires."""

    BLOCK = "block"
    REDACT = "redact"
    MONITOR = "monitor"


class FailMode(enum.StrEnum):
    """What the gateway does when the judge model cannot be reached in time."""

    OPEN = "open"
    CLOSED = "closed"


class PIIEntity(enum.StrEnum):
    """Kinds of personal or secret data the PII check recognises."""

    EMAIL = "email"
    PHONE = "phone"
    CREDIT_CARD = "credit_card"
    IBAN = "iban"
    US_SSN = "us_ssn"
    IP_ADDRESS = "ip_address"
    CREDENTIAL = "credential"


ALL_PII_ENTITIES: tuple[PIIEntity, ...] = tuple(PIIEntity)


def _no_redact_rule(check: str) -> dict[str, Any]:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.action != 'redact'",
                "message": f"{check} cannot be redacted; use block or monitor",
                "fieldPath": ".action",
            }
        ]
    }


class PromptInjectionCheck(Model):
    """Offline prompt-injection and jailbreak detection on the prompt."""

    model_config = pydantic.ConfigDict(json_schema_extra=_no_redact_rule("prompt injection"))

    enabled: bool = pydantic.Field(True, description="Run the prompt-injection check.")
    action: Action = pydantic.Field(
        Action.BLOCK, description="block rejects the request with HTTP 400; monitor only counts it."
    )
    threshold: Fraction = pydantic.Field(
        0.5,
        description="Score in 0..1 at or above which a prompt counts as an injection attempt.",
    )

    @pydantic.field_validator("action")
    @classmethod
    def _no_redact(cls, value: Action) -> Action:
        if value is Action.REDACT:
            raise ValueError("prompt injection cannot be redacted; use block or monitor")
        return value


class PIICheck(Model):
    """Detection of personal data and credentials."""

    enabled: bool = pydantic.Field(True, description="Run the PII check.")
    action: Action = pydantic.Field(
        Action.REDACT,
        description="redact replaces each entity with a [TYPE] placeholder; block rejects; "
        "monitor only counts.",
    )
    entities: list[PIIEntity] = pydantic.Field(
        default_factory=lambda: list(ALL_PII_ENTITIES),
        description="Entity kinds to look for.",
    )


class ToxicityCheck(Model):
    """Toxicity classification of generated text."""

    model_config = pydantic.ConfigDict(json_schema_extra=_no_redact_rule("toxicity"))

    enabled: bool = pydantic.Field(True, description="Run the toxicity classifier on output.")
    action: Action = pydantic.Field(
        Action.BLOCK, description="block ends the response with an error; monitor only counts."
    )
    threshold: Fraction = pydantic.Field(
        0.8, description="Probability in 0..1 at or above which text counts as toxic."
    )

    @pydantic.field_validator("action")
    @classmethod
    def _no_redact(cls, value: Action) -> Action:
        if value is Action.REDACT:
            raise ValueError("toxicity cannot be redacted; use block or monitor")
        return value


class DenyPatternCheck(Model):
    """Regular expressions that must not appear."""

    patterns: list[str] = pydantic.Field(
        default_factory=list,
        description="Regular expressions in RE2 syntax, matched case-insensitively in time "
        "linear in the text (no lookaround or backreferences; \\w, \\d, \\s and \\b are "
        "ASCII, \\pL or \\p{Han} match other scripts).",
    )
    action: Action = pydantic.Field(
        Action.BLOCK, description="block, redact (replace the match) or monitor."
    )

    @pydantic.field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                compile_deny_pattern(pattern)
            except re2.error as exc:
                reason = (
                    exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                )
                raise ValueError(
                    f"patterns[{index}] is not a valid RE2 regular expression: {reason}"
                ) from exc
        return patterns


def compile_deny_pattern(pattern: str) -> Any:
    """`pattern` compiled by RE2, case-insensitive (raises `re2.error` when RE2 refuses it).

    RE2 runs in time linear in the text for every pattern it accepts, so an operator's
    pattern cannot stall the gateway (Python's `re` backtracks: ``(a+)+$`` takes seconds
    on thirty characters).
    """
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.never_capture = True  # only spans are used; groups would cost a second pass
    return re2.compile(pattern, options)


class JudgeCheck(Model):
    """An optional guard model (for example Llama Guard served by another LLMDeployment)."""

    enabled: bool = pydantic.Field(False, description="Ask the judge model about each prompt.")
    url: str = pydantic.Field(
        "",
        description="Base URL of an OpenAI-compatible server hosting the judge, "
        "e.g. http://llama-guard.default.svc.",
    )
    model: str = pydantic.Field("", description="Model name to send to the judge.")
    timeout_seconds: float = pydantic.Field(
        2.0, gt=0, le=60, description="How long to wait for the judge's verdict."
    )
    fail_mode: FailMode = pydantic.Field(
        FailMode.OPEN,
        description="open lets the request through when the judge fails; closed rejects it.",
    )
    action: Action = pydantic.Field(Action.BLOCK, description="block or monitor.")


class InputGuardrails(Model):
    """Checks applied to the prompt before it reaches the engine."""

    max_prompt_tokens: int | None = pydantic.Field(
        None,
        ge=1,
        description="Reject prompts longer than this many tokens, all texts of a request "
        "together. The gateway estimates the count (one token per four ASCII characters, one "
        "per other character); the operator mounts no tokenizer. Unset: the engine's context "
        "length when the spec states it (engine.maxModelLen), else no limit.",
    )
    prompt_injection: PromptInjectionCheck = pydantic.Field(
        default_factory=PromptInjectionCheck, description="Prompt-injection detection."
    )
    pii: PIICheck = pydantic.Field(default_factory=PIICheck, description="PII in the prompt.")
    deny_patterns: DenyPatternCheck = pydantic.Field(
        default_factory=DenyPatternCheck, description="Patterns refused in the prompt."
    )
    judge: JudgeCheck = pydantic.Field(
        default_factory=JudgeCheck, description="Optional guard model."
    )


class OutputGuardrails(Model):
    """Checks applied to generated text, incrementally when streaming."""

    pii: PIICheck = pydantic.Field(default_factory=PIICheck, description="PII in completions.")
    toxicity: ToxicityCheck = pydantic.Field(
        default_factory=ToxicityCheck, description="Toxicity in completions."
    )
    deny_patterns: DenyPatternCheck = pydantic.Field(
        default_factory=DenyPatternCheck, description="Patterns refused in completions."
    )
    stream_holdback_chars: int = pydantic.Field(
        64,
        ge=0,
        le=4096,
        description="Characters held back while streaming so an entity split across chunks "
        "is still caught.",
    )


class OverLimit(enum.StrEnum):
    """What the gateway does with text past `limits.maxCheckedChars`."""

    REFUSE = "refuse"
    SAMPLE = "sample"


class CheckLimits(Model):
    """How much text the checks score per request, and what happens past it."""

    max_checked_chars: int = pydantic.Field(
        1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Characters the checks score per request in each direction: all texts of "
        "the prompt together, and all texts of the answer together. Past it, overLimit decides.",
    )
    over_limit: OverLimit = pydantic.Field(
        OverLimit.REFUSE,
        description="refuse: a prompt over the limit gets HTTP 400 and an answer over it an "
        "error (an error event when streamed); sample: the checks score evenly spaced windows "
        "adding up to maxCheckedChars (the first maxCheckedChars characters of a stream) and "
        "the rest passes unchecked.",
    )


class APIKeys(Model):
    """Optional API keys with per-key rate limits."""

    enabled: bool = pydantic.Field(False, description="Require an API key on every request.")
    protect_metrics: bool = pydantic.Field(
        False,
        description="Also require an API key on /metrics and /metrics/engine (off: they stay "
        "open for Prometheus, and show counts, never text). /health and /ready stay open.",
    )
    secret_name: str = pydantic.Field(
        "",
        description="Secret whose data maps key ids to SHA-256 hex digests of the keys "
        "(mounted read-only into the gateway).",
    )
    requests_per_minute: int | None = pydantic.Field(
        None, ge=1, description="Per-key request budget; unset means unlimited."
    )
    tokens_per_minute: int | None = pydantic.Field(
        None, ge=1, description="Per-key token budget (prompt + completion); unset means unlimited."
    )


class EmbedderKind(enum.StrEnum):
    """Where the semantic cache gets its embeddings."""

    BUILTIN = "builtin"
    OPENAI = "openai"


class SemanticCache(Model):
    """Response cache keyed by exact match and embedding similarity."""

    enabled: bool = pydantic.Field(False, description="Serve repeated prompts from the cache.")
    similarity_threshold: Fraction = pydantic.Field(
        0.95, description="Cosine similarity in 0..1 above which a cached answer is reused."
    )
    ttl_seconds: int = pydantic.Field(3600, ge=1, description="How long an entry lives.")
    max_entries: int = pydantic.Field(
        10000, ge=1, description="Size bound; the least recently used entry is evicted."
    )
    embedder: EmbedderKind = pydantic.Field(
        EmbedderKind.BUILTIN,
        description="builtin runs all-MiniLM-L6-v2 on the CPU; openai calls embedderUrl.",
    )
    embedder_url: str = pydantic.Field(
        "", description="OpenAI-compatible /v1/embeddings base URL when embedder is openai."
    )
    cache_non_deterministic: bool = pydantic.Field(
        False, description="Also cache requests with temperature above 0."
    )


class Pricing(Model):
    """Prices used for the cost metric."""

    input_per_million_tokens: float = pydantic.Field(
        0.0, ge=0, description="Price of one million prompt tokens, in your currency."
    )
    output_per_million_tokens: float = pydantic.Field(
        0.0, ge=0, description="Price of one million completion tokens, in your currency."
    )


class GuardrailPolicy(Model):
    """Everything the gateway sidecar enforces in front of vLLM."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.apiKeys) || !self.apiKeys.enabled || "
                    "size(self.apiKeys.secretName) > 0",
                    "message": "apiKeys.secretName is required when apiKeys.enabled is true",
                    "fieldPath": ".apiKeys.secretName",
                },
                {
                    "rule": "!has(self.input) || !has(self.input.judge) || "
                    "!self.input.judge.enabled || size(self.input.judge.url) > 0",
                    "message": "input.judge.url is required when input.judge.enabled is true",
                    "fieldPath": ".input.judge.url",
                },
                {
                    "rule": "!has(self.cache) || self.cache.embedder != 'openai' || "
                    "size(self.cache.embedderUrl) > 0",
                    "message": "cache.embedderUrl is required when cache.embedder is openai",
                    "fieldPath": ".cache.embedderUrl",
                },
            ]
        }
    )

    enabled: bool = pydantic.Field(
        False,
        description="Run the guardrail gateway sidecar in every replica. vLLM then listens "
        "on 127.0.0.1 only, so every request passes the gateway.",
    )
    input: InputGuardrails = pydantic.Field(
        default_factory=InputGuardrails, description="Checks on prompts."
    )
    output: OutputGuardrails = pydantic.Field(
        default_factory=OutputGuardrails, description="Checks on completions."
    )
    api_keys: APIKeys = pydantic.Field(default_factory=APIKeys, description="API keys.")
    cache: SemanticCache = pydantic.Field(
        default_factory=SemanticCache, description="Semantic response cache."
    )
    pricing: Pricing = pydantic.Field(default_factory=Pricing, description="Cost metric prices.")
    limits: CheckLimits = pydantic.Field(
        default_factory=CheckLimits, description="How much text the checks score per request."
    )
    max_body_bytes: int = pydantic.Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted (HTTP 413 above)."
    )

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> GuardrailPolicy:
        if self.api_keys.enabled and not self.api_keys.secret_name:
            raise FieldError("apiKeys.secretName", "is required when apiKeys.enabled is true")
        if self.input.judge.enabled and not self.input.judge.url:
            raise FieldError("input.judge.url", "is required when input.judge.enabled is true")
        if self.cache.embedder is EmbedderKind.OPENAI and not self.cache.embedder_url:
            raise FieldError("cache.embedderUrl", "is required when cache.embedder is openai")
        return self


def load(data: dict[str, Any]) -> GuardrailPolicy:
    """Parse a policy document (camelCase keys) into a `GuardrailPolicy`."""
    return GuardrailPolicy.model_validate(data)
