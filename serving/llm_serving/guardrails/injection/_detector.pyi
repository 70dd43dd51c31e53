"""Type stubs of `_detector.pyx`, the compiled twin of the detector's scan."""

from llm_serving.guardrails._tables import Tokens

class Triggers:
    def __init__(
        self, word_groups: dict[str, tuple[int, ...]], rule_groups: list[tuple[int, int]]
    ) -> None: ...

def scan(
    stream: list[str] | Tokens, triggers: Triggers, mark: str
) -> tuple[list[str] | Tokens, int, int, list[tuple[int, list[int]]]]: ...
