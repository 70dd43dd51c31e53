"""Type stubs of `_normalization.pyx`, the compiled twin of `normalization.prepare_in_python`."""

from llm_serving.guardrails._tables import Tokens

def prepare_ascii(
    text: str, fold: bytes, separators: bytes
) -> tuple[str, str, Tokens, bool] | None: ...
