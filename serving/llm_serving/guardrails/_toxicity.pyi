"""Type stubs of `_toxicity.pyx`, the compiled twin of `toxicity`'s segment split."""

from llm_serving.guardrails._tables import Lexicon

def toxicity_segments(text: str, lexicon: Lexicon, segment_words: int) -> list[list[int]]: ...
