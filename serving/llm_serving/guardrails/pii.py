"""Detection of personal data and secrets in text: regular expressions plus checksums.

Each recogniser finds candidate spans with a precompiled pattern and then validates
them (the Luhn check for payment cards, ISO 13616 mod-97 and the national length for
IBANs, the SSA's invalid-area rules for US SSNs, octet ranges for IPv4, `ipaddress`
for IPv6), so look-alikes such as order numbers, dates and version strings are left
alone. Patterns start with a character class or a literal so that CPython's regex
engine can skip quickly to candidates, and recognisers whose trigger characters are
absent (``@`` for e-mail, ``AKIA`` for AWS keys, ...) do not run at all. The output is
a list of non-overlapping `Span` objects; redaction replaces each with its
``[TYPE]`` placeholder. Nothing here logs or keeps the matched text.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator

from llm_serving import policy

try:
    from llm_serving.guardrails import _pii
except ImportError:  # built at install; the plain-Python scans are the fallback
    _pii = None  # type: ignore[assignment]

PLACEHOLDERS: dict[policy.PIIEntity, str] = {
    policy.PIIEntity.EMAIL: "[EMAIL]",
    policy.PIIEntity.PHONE: "[PHONE]",
    policy.PIIEntity.CREDIT_CARD: "[CREDIT_CARD]",
    policy.PIIEntity.IBAN: "[IBAN]",
    policy.PIIEntity.US_SSN: "[US_SSN]",
    policy.PIIEntity.IP_ADDRESS: "[IP_ADDRESS]",
    policy.PIIEntity.CREDENTIAL: "[CREDENTIAL]",
}

# When two recognisers claim overlapping text, the earlier kind in this order wins.
_PRIORITY: dict[str, int] = {
    policy.PIIEntity.CREDENTIAL.value: 0,
    policy.PIIEntity.EMAIL.value: 1,
    policy.PIIEntity.IBAN.value: 2,
    policy.PIIEntity.CREDIT_CARD.value: 3,
    policy.PIIEntity.US_SSN.value: 4,
    policy.PIIEntity.PHONE.value: 5,
    policy.PIIEntity.IP_ADDRESS.value: 6,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """A half-open range ``[start, end)`` of text to report and possibly replace."""

    start: int
    end: int
    kind: str
    """`policy.PIIEntity` value, or ``"deny_pattern"`` for deny-pattern matches."""
    replacement: str
    priority: int = 9


def resolve(spans: Iterable[Span]) -> list[Span]:
    """Drop overlapping spans (higher priority, then longer, then earlier wins); sort by start."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.priority, s.start - s.end, s.start)):
        if all(span.end <= kept.start or span.start >= kept.end for kept in chosen):
            chosen.append(span)
    chosen.sort(key=lambda s: s.start)
    return chosen


def apply(text: str, spans: Iterable[Span]) -> str:
    """Replace each span (non-overlapping, sorted by start) with its replacement."""
    parts: list[str] = []
    last = 0
    for span in spans:
        parts.append(text[last : span.start])
        parts.append(span.replacement)
        last = span.end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


# --------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Lengths from the SWIFT IBAN registry, by country code.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    """True for an upper-case IBAN without spaces whose length and mod-97 checksum are right."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


# --------------------------------------------------------------------------- patterns
# Patterns begin with a character class or literal (lookbehinds come after the first
# character) so the regex engine's fast prefix scan applies.

_EMAIL_LOCAL = re.compile(r"[\w.%+\-]{1,64}$")
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+([^\W\d_]{2,24})(?![\w-])")
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "pdf"})

_IBAN_PREFIX = re.compile(r"[A-Z]{2}\d\d ?$")
_CARD = re.compile(r"\d(?<![\w\-.]\d)(?:[ \-]?\d){12,18}(?![\w\-]|\.\d)")
_NANP = re.compile(
    r"[+(\d](?<![\w+\-.][+(\d])"
    r"(?:(?<=\+)1[ .\-]?(?:\(?[2-9]\d\d\)?)|(?<=\()[2-9]\d\d\)|(?<=1)[ .\-]?\(?[2-9]\d\d\)?"
    r"|(?<=\d)\d\d(?<=[2-9]\d\d))"
    r"[ .\-]?\d{3}[ .\-]\d{4}(?![\w\-]|\.\d)"
)
_INTL_PHONE = re.compile(r"\+(?<![\w+]\+)[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6}(?![\w\-]|\.\d)")
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "call", "fax", "whatsapp")
_PHONE_KEYWORD = re.compile("|".join(_PHONE_WORDS))
_CONTEXT_PHONE = re.compile(
    r"\b[^\d\n]{0,16}?(\(?0\d{1,4}\)?(?:[ .\-]?\d{2,4}){2,4})(?![\w\-]|\.\d)"
)
# Runs of digits and separators that hold a digit, each found once from its first
# character (the lookbehind refuses to start inside one, so no position is scanned
# twice); `PIIDetector.find` trims each to start at a digit, ``(`` or ``+`` and to end at
# its last digit, and keeps those long enough (7 characters) to hold a phone number,
# card, SSN or IPv4 address. The specific patterns run only inside these runs.
_NUMERIC_RUN = re.compile(r"(?<![\d \-.()/+])[ \-.()/+]*+\d[\d \-.()/+]*+")
_RUN_LEAD = " -.()/+"  # the non-digits a numeric run may start with
_RUN_SEPARATORS = " -./)"  # ... and those before its first digit, bracket or plus
_RUN_MIN = 7
_SSN = re.compile(r"\d(?<![\w\-.]\d)(\d\d)([\- ])(\d\d)\2(\d{4})(?![\w\-]|\.\d)")
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]){11,30}")
_IBAN_HEAD = re.compile(r"[A-Z]{2}\d\d")
_IPV4 = re.compile(r"\d(?<![\w.\-]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
_IPV4_VERSION_CONTEXT = re.compile(r"(?i:version|release|ver|v)\s*$")
_IPV6 = re.compile(
    r"[0-9A-Fa-f:](?<![\w:][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}"
    r"(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])"
)

# Credentials: (gate substrings, case-insensitive gate?, pattern, group to redact).
_CREDENTIALS: tuple[tuple[tuple[str, ...], bool, re.Pattern[str], int], ...] = (
    (("AKIA", "ASIA", "ABIA", "ACCA"), False,
     re.compile(r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])"), 0),
    (("aws", "secret"), True,
     re.compile(r"(?i:aws|secret)[\w\-. ]{0,30}?[\"']?\s*[:=]\s*[\"']?"
                r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), 1),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), False,
     re.compile(r"g(?<![\w]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})"),
     0),
    (("xox",), False, re.compile(r"x(?<![\w]x)ox[baprs]-[A-Za-z0-9\-]{10,250}"), 0),
    (("sk-",), False,
     re.compile(r"s(?<![\w\-]s)k-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,255}"), 0),
    (("AIza",), False, re.compile(r"A(?<![\w\-]A)Iza[0-9A-Za-z_\-]{35}(?![\w\-])"), 0),
    (("eyJ",), False,
     re.compile(r"e(?<![\w\-]e)yJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), 0),
    (("-----BEGIN",), False,
     re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?"
                r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL), 0),
    (("bearer",), True, re.compile(r"(?i:bearer)\s{1,8}([A-Za-z0-9\-._~+/]{16,4096}=*)"), 1),
)  # fmt: skip
_ASSIGNMENT_GATES = ("pass", "pwd", "secret", "token", "api_key", "apikey", "api-key")
_ASSIGNMENT = re.compile(
    r"(?i:(?<![a-z0-9])(?:[a-z0-9]{1,24}_){0,4}(password|passwd|pwd|passphrase|secret|client_secret"
    r"|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token))[\"']?\s*([:=])\s*"
    r"(?:\"([^\"\s]{4,200})\"|'([^'\s]{4,200})'|([^\s\"',;<>{}()\[\]]{4,200}))"
)
PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
"""Start of a private-key block; the stream scanner holds text back from here until END."""

_PASSWORD_KEYS = frozenset({"password", "passwd", "pwd", "passphrase"})


# --------------------------------------------------------------------------- recognisers


def _emails(text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at != -1:
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            start = local.start()
            while start < at and text[start] in ".-+":
                start += 1
            if start < at and domain.group(1).lower() not in _NOT_TLDS:
                yield start, domain.end()
                at = text.find("@", domain.end())
                continue
        at = text.find("@", at + 1)


def _phones(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    for match in _NANP.finditer(text, start, end):
        yield match.start(), match.end()
    if "+" in text[start:end]:
        for match in _INTL_PHONE.finditer(text, start, end):
            digits = sum(char.isdigit() for char in match.group())
            if 8 <= digits <= 15:
                yield match.start(), match.end()


def _context_phones(text: str, lowered: str) -> Iterator[tuple[int, int]]:
    """National numbers (leading 0) right after a word such as phone, call or mobile."""
    present = _PHONE_GATES.present(lowered)
    if not present:
        return
    # The regular expression steps through every character; it starts at the first word.
    first = min(lowered.find(word) for word in present)
    for keyword in _PHONE_KEYWORD.finditer(lowered, first):
        match = _CONTEXT_PHONE.match(text, keyword.end())
        if match is not None:
            digits = sum(char.isdigit() for char in match.group(1))
            if 9 <= digits <= 12:
                yield match.start(1), match.end(1)


def _cards(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text, start, end):
        digits = match.group().replace(" ", "").replace("-", "")
        if digits[0] in "23456" and 13 <= len(digits) <= 19 and luhn_valid(digits):
            if _IBAN_PREFIX.search(text, max(0, match.start() - 5), match.start()):
                continue  # the tail of an IBAN-shaped string, not a card
            yield match.start(), match.end()


def _ibans(text: str, first: int, last: int) -> Iterator[tuple[int, int]]:
    """IBANs; `first` and `last` bound the digits in `text` (see `_digit_bounds`)."""
    head = _IBAN_HEAD.search(text, max(0, first - 2), last + 1)
    if head is None:  # every IBAN starts with two capital letters and two digits
        return
    for match in _IBAN.finditer(text, head.start()):
        candidate = match.group()
        length = IBAN_LENGTHS.get(candidate[:2])
        if length is None:
            continue
        compact: list[str] = []
        end = match.start()
        for offset, char in enumerate(candidate):
            if char != " ":
                compact.append(char)
                if len(compact) == length:
                    end = match.start() + offset + 1
                    break
        if len(compact) != length:
            continue
        if end < len(text) and text[end].isalnum():
            continue
        if iban_valid("".join(compact)):
            yield match.start(), end


def _ssns(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    for match in _SSN.finditer(text, start, end):
        area = text[match.start() : match.start() + 3]
        if ssn_valid(area, match.group(3), match.group(4)):
            yield match.start(), match.end()


def _ipv4(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    for match in _IPV4.finditer(text, start, end):
        octets = match.group().split(".")
        if all(len(o) == 1 or (o[0] != "0" and int(o) <= 255) for o in octets):
            if _IPV4_VERSION_CONTEXT.search(text, max(0, match.start() - 10), match.start()):
                continue
            yield match.start(), match.end()


def _ipv6(text: str) -> Iterator[tuple[int, int]]:
    for match in _IPV6.finditer(text):
        candidate = match.group()
        if "::" not in candidate and candidate.count(":") != 7 and "." not in candidate:
            continue
        groups = [g for g in candidate.split(":") if g]
        hex_digits = sum(len(g) for g in groups if "." not in g)
        if len(groups) < 3 and hex_digits < 6:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield match.start(), match.end()


# Letters by frequency in English prose, most frequent first; anything else is rarer.
_FREQUENT = "etaoinsrhldcumfpgwybvkxjqz"


class _Gates:
    """Which of some fixed strings (gates) occur in a text.

    Compiled (`_pii.Needles`), one pass over the text finds them all. The
    plain-Python fallback finds each gate's rarest character first (memchr costs far
    less than a substring search, and a gate cannot be present without it) and only
    then the gate.
    """

    def __init__(self, gates: Iterable[str]) -> None:
        self.gates = tuple(gates)

        def rarity(char: str) -> int:
            return _FREQUENT.find(char) if char in _FREQUENT else len(_FREQUENT)

        self._guarded = tuple((max(gate, key=rarity), gate) for gate in self.gates)
        self._needles = None if _pii is None else _pii.Needles(self.gates)

    def present(self, text: str) -> set[str]:
        """The gates `text` holds."""
        if self._needles is not None:
            found = self._needles.found(text)
            if found == 0:
                return set()
            if found > 0:
                return {gate for bit, gate in enumerate(self.gates) if found >> bit & 1}
        return {gate for char, gate in self._guarded if char in text and gate in text}


_PHONE_GATES = _Gates(_PHONE_WORDS)
_CASED_GATES = _Gates(
    gate for gates, insensitive, _p, _g in _CREDENTIALS if not insensitive for gate in gates
)
_LOWER_GATES = _Gates(
    sorted(
        {gate for gates, insensitive, _p, _g in _CREDENTIALS if insensitive for gate in gates}
        | set(_ASSIGNMENT_GATES)
    )
)


def _credentials(text: str, lowered: str) -> Iterator[tuple[int, int]]:
    cased = _CASED_GATES.present(text)
    lower = _LOWER_GATES.present(lowered)
    if not cased and not lower:
        return
    for gates, insensitive, pattern, group in _CREDENTIALS:
        if not (lower if insensitive else cased).isdisjoint(gates):
            for match in pattern.finditer(text):
                yield match.start(group), match.end(group)
    if not lower.isdisjoint(_ASSIGNMENT_GATES):
        for match in _ASSIGNMENT.finditer(text):
            value_group = 3 if match.group(3) else 4 if match.group(4) else 5
            value = match.group(value_group)
            key = match.group(1).lower()
            if value[0] in "$*" or set(value) <= {"*", "x", "X", "."}:
                continue
            if key not in _PASSWORD_KEYS and (len(value) < 6 or value.isdigit()):
                continue
            if value_group == 5 and match.group(2) == ":" and value.isalpha():
                continue  # prose such as "password: required"
            yield match.start(value_group), match.end(value_group)


_DIGIT = re.compile(r"\d")


def _digit_bounds(text: str) -> tuple[int, int] | None:
    """Index of the first and of the last character ``\\d`` matches, None without one.

    ASCII text takes one compiled pass from each end (twenty memchr scans without the
    compiled module); other text is bounded by its whole length once a digit is found.
    Numeric entities lie between the two (give or take the punctuation before a
    number), so the scans for them can skip the rest.
    """
    if not text.isascii():
        found = _DIGIT.search(text)
        return None if found is None else (found.start(), len(text) - 1)
    if _pii is not None:
        return _pii.digit_bounds(text)
    firsts = [index for index in map(text.find, "0123456789") if index >= 0]
    if not firsts:
        return None
    return min(firsts), max(map(text.rfind, "0123456789"))


_NUMERIC: dict[policy.PIIEntity, Callable[[str, int, int], Iterator[tuple[int, int]]]] = {
    policy.PIIEntity.CREDIT_CARD: _cards,
    policy.PIIEntity.US_SSN: _ssns,
    policy.PIIEntity.PHONE: _phones,
    policy.PIIEntity.IP_ADDRESS: _ipv4,
}


class PIIDetector:
    """Finds the configured entity kinds in text. Stateless after construction; thread-safe."""

    def __init__(self, entities: Iterable[policy.PIIEntity]) -> None:
        wanted = set(entities)
        self.entities: tuple[policy.PIIEntity, ...] = tuple(
            kind for kind in policy.PIIEntity if kind in wanted
        )
        # Looked up once here: an enum member's hash is a Python call, on every text.
        self._numeric = tuple((kind, _NUMERIC[kind]) for kind in _NUMERIC if kind in wanted)
        self._credentials = policy.PIIEntity.CREDENTIAL in wanted
        self._emails = policy.PIIEntity.EMAIL in wanted
        self._ibans = policy.PIIEntity.IBAN in wanted
        self._phones = policy.PIIEntity.PHONE in wanted
        self._ip_addresses = policy.PIIEntity.IP_ADDRESS in wanted

    def find(self, text: str) -> list[Span]:
        """All entities in `text`, overlaps resolved, sorted by start."""
        found: list[tuple[policy.PIIEntity, int, int]] = []
        lowered = text.lower()
        if self._credentials:
            kind = policy.PIIEntity.CREDENTIAL
            found.extend((kind, start, end) for start, end in _credentials(text, lowered))
        if self._emails and "@" in text:
            kind = policy.PIIEntity.EMAIL
            found.extend((kind, start, end) for start, end in _emails(text))
        # IBANs, cards, SSNs, IPv4 addresses and phone numbers all need a digit.
        digits = _digit_bounds(text)
        if self._ibans and digits is not None:
            kind = policy.PIIEntity.IBAN
            found.extend((kind, start, end) for start, end in _ibans(text, *digits))
        if self._numeric and digits is not None:
            length = len(text)
            # A run starts at a digit or at the brackets, signs and separators before one.
            first = len(text[: digits[0]].rstrip(_RUN_LEAD))
            for run in _NUMERIC_RUN.finditer(text, first, digits[1] + 1):
                chunk = run.group()
                start = run.start() + len(chunk) - len(chunk.lstrip(_RUN_SEPARATORS))
                stop = run.start() + len(chunk.rstrip(_RUN_LEAD))
                if stop - start < _RUN_MIN:
                    continue
                end = min(length, stop + 2)
                for kind, recognise in self._numeric:
                    found.extend((kind, s, e) for s, e in recognise(text, start, end))
        if self._phones and "0" in text:  # national numbers start with 0
            kind = policy.PIIEntity.PHONE
            found.extend((kind, start, end) for start, end in _context_phones(text, lowered))
        if self._ip_addresses and text.count(":") >= 2:
            kind = policy.PIIEntity.IP_ADDRESS
            found.extend((kind, start, end) for start, end in _ipv6(text))
        spans = [
            Span(start, end, kind.value, PLACEHOLDERS[kind], _PRIORITY[kind.value])
            for kind, start, end in found
        ]
        if len(spans) > 1:
            return resolve(spans)
        return spans
