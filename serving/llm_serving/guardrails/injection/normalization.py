"""Prompt normalisation against obfuscation, and the payloads a prompt carries, decoded.

`normalize` lower-cases and folds a prompt: Unicode compatibility forms, accents,
zero-width characters, Cyrillic and Greek look-alikes inside Latin words, leetspeak
digits, hyphens and underscores inside words, letters spaced out one by one.
`decoded_views` finds what the prompt hides (base64 and hex blobs, %-escapes, HTML
entities, ROT13 when the prompt mentions it, the reversed text when it asks for
reversal). `prepare_in_python` adds the sentence marks and rule tokens the detector
reads (`_normalization.prepare_ascii` is its compiled twin for ASCII text). Every step is
linear in the text: no pattern here can backtrack over a long run (see
``docs/guardrails.md``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse

from llm_serving.guardrails.injection import rules

_INVISIBLE_AND_QUOTES: dict[int, str | None] = {
    **dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064"), None),
    **dict.fromkeys(map(ord, "\ufeff\u00ad\u180e\u034f\u115f\u1160\u3164"), None),
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\u02bc`\u00b4"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
}
# Cyrillic and Greek letters that look like Latin ones; applied only to words that mix
# scripts, so Russian or Greek text itself is left alone.
_CONFUSABLES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04cf\u0501\u051b\u051d"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406\u0408\u0405"
    "\u03bf\u03b1\u03b5\u03b9\u03ba\u03bd\u03c1\u03c4\u03c5\u03c7\u039f\u0391\u0392\u0395"
    "\u0397\u0399\u039a\u039c\u039d\u03a1\u03a4\u03a5\u03a7\u0396",
    "aeopcyxijsldqwABEKMHOPCTXIJSoaeiknptuxOABEHIKMNPTYXZ",
)
# Where a Latin letter meets a Greek or Cyrillic one. The word around each junction is
# found by `_fold_mixed_words` with two scans that cannot backtrack: a pattern with
# `\w*` on both sides of the junction retried `\w*` from every position of a long run
# of letters (CJK text has no spaces), which took time growing with the square of it.
_MIXED_JUNCTION = re.compile(
    r"[a-zA-Z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][a-zA-Z]"
)
_WORD_RUN = re.compile(r"\w*+")
_COMBINING = re.compile(r"(?<=[A-Za-z])[\u0300-\u036f]+")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "_": " "}
)
_INTRAWORD_HYPHEN = re.compile(r"-(?<=[a-z]-)(?=[a-z])")
_SPACED_HINT = re.compile(r"[ .\-*][a-z][ .\-*][a-z][ .\-*]")
_SPACED_LETTERS = re.compile(r"[a-z](?<![a-z][a-z])(?:[ .\-*][a-z](?![a-z])){2,}")
_WORD = re.compile(r"\w+")


def _collapse(match: re.Match[str]) -> str:
    return match.group()[::2]


def _fold_mixed_words(text: str) -> str:
    """`text` with Greek and Cyrillic look-alikes made Latin in each word (maximal run of
    word characters) that has a Latin letter next to a Greek or Cyrillic one.

    Linear: each junction is found once, a word's end by a possessive scan forwards and
    its start by the same scan over the reversed text, and junctions inside a word
    already folded are skipped.
    """
    backwards = text[::-1]
    size = len(text)
    parts: list[str] = []
    done = 0
    for junction in _MIXED_JUNCTION.finditer(text):
        at = junction.start()
        if at < done:
            continue
        run = _WORD_RUN.match(backwards, size - at)
        start = at - (run.end() - run.start()) if run else at
        end = _WORD_RUN.match(text, at).end()  # type: ignore[union-attr]
        parts.append(text[done:start])
        parts.append(text[start:end].translate(_CONFUSABLES))
        done = end
    parts.append(text[done:])
    return "".join(parts)


def normalize(text: str) -> str:
    """Lower-case ASCII-folded text with common obfuscations undone (see module docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE_AND_QUOTES)
        if not text.isascii():
            decomposed = unicodedata.normalize("NFKD", text)
            if _COMBINING.search(decomposed):
                text = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))
            if _MIXED_JUNCTION.search(text):
                text = _fold_mixed_words(text)
    text = text.lower().translate(_LEET)
    if "-" in text:
        text = _INTRAWORD_HYPHEN.sub("", text)
    if _SPACED_HINT.search(text):
        text = _SPACED_LETTERS.sub(_collapse, text)
    return text


_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX_BLOB = re.compile(r"(?:[0-9a-fA-F]{2}){10,}")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_MAX_BLOBS = 8
_MAX_BLOB_CHARS = 8192


def _printable_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if " " not in text:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def decoded_views(text: str, lowered: str, longest_word: int) -> list[str]:
    """Texts hidden in `text`: decoded base64/hex blobs, %-escapes, entities, ROT13, reversal."""
    views: list[str] = []
    if longest_word >= 16:
        for count, match in enumerate(_BASE64_BLOB.finditer(text)):
            if count >= _MAX_BLOBS:
                break
            blob = match.group()[:_MAX_BLOB_CHARS]
            if blob.isalpha() and (blob.islower() or blob.isupper()):
                continue  # a long plain word, not base64
            try:
                raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            decoded = _printable_text(raw)
            if decoded:
                views.append(decoded)
    if longest_word >= 20:
        for count, match in enumerate(_HEX_BLOB.finditer(text)):
            if count >= _MAX_BLOBS:
                break
            decoded = _printable_text(bytes.fromhex(match.group()[:_MAX_BLOB_CHARS]))
            if decoded:
                views.append(decoded)
    if "%" in text and _PERCENT.search(text):
        views.append(urllib.parse.unquote(text))
    if "&" in text and ";" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            views.append(unescaped)
    if "rot13" in lowered or "rot-13" in lowered or "rot 13" in lowered:
        views.append(codecs.encode(text, "rot13"))
    if "revers" in lowered or "backward" in lowered:
        views.append(text[::-1])
    return views


SENTENCE_MARK = "\x00"
# ASCII characters that are neither word characters, white space for `str.split`, nor
# punctuation in `rules.TOKEN_TABLE`: the only ones on which the two tokenisers differ.
STRAY_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1b\x7f_]")
SPACED_MARK = " \x00 "
_ASCII = "".join(map(chr, range(128)))
# For `_normalization.prepare_ascii`: each ASCII code folded as `normalize` folds it, and
# the codes that split rule tokens (what `str.split` and `rules.TOKEN_TABLE` split on).
ASCII_FOLD = _ASCII.lower().translate(_LEET).encode("ascii")
ASCII_SEPARATORS = bytes(ch.isspace() or ch.translate(rules.TOKEN_TABLE) != ch for ch in _ASCII)


def mark_sentences(text: str) -> str:
    """Replace sentence boundaries (line breaks; ``.``, ``!``, ``?`` before a space) by a marker."""
    if SENTENCE_MARK in text:
        text = text.replace(SENTENCE_MARK, " ")
    return (
        text.replace(". ", SPACED_MARK)
        .replace("? ", SPACED_MARK)
        .replace("! ", SPACED_MARK)
        .replace("\n", SPACED_MARK)
    )


def prepare_in_python(text: str) -> tuple[str, str, list[str], bool]:
    """Normalised text, its marked sentences, its rule tokens, and whether the model may
    reuse those tokens (ASCII without `STRAY_CONTROL`); see `_normalization.prepare_ascii`."""
    normalized = normalize(text)
    marked = mark_sentences(normalized)
    stream = marked.translate(rules.TOKEN_TABLE).split()
    clean = normalized.isascii() and not STRAY_CONTROL.search(normalized)
    return normalized, marked, stream, clean
