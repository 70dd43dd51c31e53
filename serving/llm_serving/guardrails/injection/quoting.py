"""Attack phrases mentioned rather than used: short quotations framed as text to talk about.

Most false positives of the rules come from prompts that quote an attack phrase to
talk about it: a request to translate "ignore all previous instructions", a security
lesson with an example, a slogan, a regex to detect the phrase. `mentioned` finds such
a prompt: it has a short quotation (at most `MAX_QUOTE` characters, in straight, curly,
angle or corner quotes: a phrase, not a message) and, outside the quotations, a word
that frames text as text (translate, phrase, slogan, example, regex, ...), and nothing
outside them asks for the quoted text to be carried out (do what it says, act on it,
follow it, treat it as, join the parts ...). It returns the prompt with those quotations emptied and
the quotations. The detector then keeps the lower score only when the emptied prompt
fires no rule at all and every rule the whole prompt fired also fires on a quotation
alone (a rule whose match runs across a quotation mark, as in "enter 'X mode'", uses
the quotation rather than mentioning it). What the prompt asks outside the quotes is
still checked in full, and a longer quoted text (a document, an e-mail, a review that
may carry an indirect injection the model will read) is never emptied. Linear: bounded
quotations, each found once from its opening mark.
"""

from __future__ import annotations

import re

MAX_QUOTE = 64
USED_FAMILIES = frozenset({"indirect", "delimiter"})
"""Rule families whose hits are never discounted: a quotation that addresses the model
("Bot, forget your guidelines") or fakes a system turn is what an indirect injection
looks like inside a document the model is asked to translate or summarise."""
_QUOTED = re.compile(
    rf"(?<![\w'])'(?:[^'\n]|(?<=\w)'(?=\w)){{1,{MAX_QUOTE}}}'(?!\w)"
    rf'|"[^"\n]{{1,{MAX_QUOTE}}}"'
    rf"|\u201c[^\u201d\n]{{1,{MAX_QUOTE}}}\u201d"
    rf"|\u2018[^\u2019\n]{{1,{MAX_QUOTE}}}\u2019(?!\w)"
    rf"|\u00ab[^\u00bb\n]{{1,{MAX_QUOTE}}}\u00bb"
    rf"|\u300c[^\u300d\n]{{1,{MAX_QUOTE}}}\u300d"
    rf"|\u300e[^\u300f\n]{{1,{MAX_QUOTE}}}\u300f"
)
_MENTION = re.compile(
    r"\b(?:translat\w*|tradu\w*|übersetz\w*|how\s+do\s+(?:you|i)\s+say|mean(?:s|t|ing)?"
    r"|says|said|shout\w*|yell\w*|lines?|prompts?\s+like|block\w*|fixture|test\s+cases?"
    r"|bedeutet|phrases?|sentences?|words?|wording|slogans?|taglines?|mottos?|headlines?"
    r"|titles?|album|lyrics?|song|poster|caption|subtitles?|quotes?|quoted|quotation"
    r"|examples?|such\s+as|regex\w*|pattern|detects?|detecting|flags?|flagged"
    r"|string|quiz|meme|expression)\b"
    r"|翻訳|翻译|表現|言い換え|意味",
    re.IGNORECASE,
)
_ACT = re.compile(
    r"\b(?:do\s+(?:what|as)\b[^.!?\n]{0,24}?\bsays?|now\s+do|act\s+on|follow\s+(?:it|them|this"
    r"|that|these)|obey|execute|carry\s+(?:it\s+|them\s+)?out|comply|then\s+do|do\s+it"
    r"|apply\s+it|perform\s+it|treat\s+(?:it|this|that|the\s+\w+)\s+as|respond\s+to\s+it|concatenat\w*|combin\w*|join\w*|assembl\w*|put\s+together)\b",
    re.IGNORECASE,
)


def _phrase(quote: str) -> bool:
    """Two words or more (four characters or more in a script written without spaces)."""
    return len(quote.split()) >= 2 or (not quote.isascii() and len(quote.strip()) >= 4)


def mentioned(text: str) -> tuple[str, list[str]] | None:
    """`text` with its short quoted phrases (two words or more) emptied, and the phrases,
    when it frames them as text to talk about and does not ask for them to be carried
    out; None otherwise."""
    quotes = [match.group()[1:-1] for match in _QUOTED.finditer(text)]
    phrases = [quote for quote in quotes if _phrase(quote)]
    if not phrases:
        return None  # only single tokens quoted (markup such as 'display:none', names)
    outside = _QUOTED.sub(" ", text)
    if not _MENTION.search(outside) or _ACT.search(outside):
        return None

    def empty(match: re.Match[str]) -> str:
        quoted = match.group()
        return quoted[0] + quoted[-1] if _phrase(quoted[1:-1]) else quoted

    return _QUOTED.sub(empty, text), phrases
