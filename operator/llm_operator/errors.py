"""The operator's exceptions: one base, and one class per way a pass can stop.

`OperatorError` is the base. `InvalidSpecError` is a spec the user must change (the
handlers turn it into `kopf.PermanentError` after status and an Event say why);
`InsufficientGPUMemoryError` is one whose model the memory planner finds does not fit
its GPUs (the same handling, its own status reason);
`RenderError` is the same for files given to `llm-operator render`;
`KindUnavailableError` is a kind the API server does not serve (a CRD such as KEDA's
that is not installed); `NotLeaderError` is a write refused because this process no
longer holds the leader Lease (it is stepping down), and `LeadershipLostError` ends
`llm-operator run` after that. Anything else is unexpected and propagates, so kopf retries.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidSpecError(OperatorError):
    """The spec cannot be served as written; `lines` say what to change, one per problem."""

    reason = "InvalidSpec"

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class InsufficientGPUMemoryError(InvalidSpecError):
    """The model, its KV cache and one full-length sequence do not fit the GPUs asked for."""

    reason = "InsufficientGPUMemory"


class RenderError(InvalidSpecError):
    """A file given to `llm-operator render` holds no valid LLMDeployment."""

    def __str__(self) -> str:
        return "\n".join(self.lines)


class KindUnavailableError(OperatorError):
    """The API server does not serve this kind (its CRD is not installed)."""


class NotLeaderError(OperatorError):
    """A write refused before it was sent: this process does not hold the leader Lease."""


class LeadershipLostError(OperatorError):
    """The leader could not renew its Lease within the renew deadline and stopped."""
