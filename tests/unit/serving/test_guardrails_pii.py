"""PII recognisers: each entity kind, checksums, look-alikes left alone, overlap handling."""

from __future__ import annotations

import random

import pytest

from llm_serving import policy
from llm_serving.guardrails import pii

ALL = pii.PIIDetector(policy.ALL_PII_ENTITIES)


def found(text: str, detector: pii.PIIDetector = ALL) -> list[tuple[str, str]]:
    return [(span.kind, text[span.start : span.end]) for span in detector.find(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to ana.maria+tag@example.co.uk today", "email", "ana.maria+tag@example.co.uk"),
        ("call (415) 555-2671 now", "phone", "(415) 555-2671"),
        ("call 415.555.2671 now", "phone", "415.555.2671"),
        ("dial +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("toll free 1-800-555-0199", "phone", "1-800-555-0199"),
        ("phone: 020 7946 0958", "phone", "020 7946 0958"),
        ("visa 4111 1111 1111 1111 ok", "credit_card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005 ok", "credit_card", "3782-822463-10005"),
        ("mc 5555555555554444 ok", "credit_card", "5555555555554444"),
        ("iban DE89 3704 0044 0532 0130 00 ok", "iban", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432 ok", "iban", "GB82WEST12345698765432"),
        ("ssn 078-05-1120 ok", "us_ssn", "078-05-1120"),
        ("host 192.168.1.20 ok", "ip_address", "192.168.1.20"),
        ("host 2001:db8::8a2e:370:7334 ok", "ip_address", "2001:db8::8a2e:370:7334"),
        ("key AKIAIOSFODNN7EXAMPLE ok", "credential", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "credential",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "credential",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
            "credential",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        ),
        ("slack xoxb-1234567890-abcdefghij", "credential", "xoxb-1234567890-abcdefghij"),
        ("key sk-abcdefghijklmnopqrstuvwx1234", "credential", "sk-abcdefghijklmnopqrstuvwx1234"),
        (
            "g AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "credential",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        ),
        (
            "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "credential",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        ),
        ("Authorization: Bearer abcdef1234567890abcdef", "credential", "abcdef1234567890abcdef"),
        ("password=hunter2 done", "credential", "hunter2"),
        ('"client_secret": "s3cr3t-value-123"', "credential", "s3cr3t-value-123"),
    ],
)
def test_recognises(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]


def test_private_key_block() -> None:
    text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbCd\n-----END RSA PRIVATE KEY-----\nend"
    assert pii.apply(text, ALL.find(text)) == "key:\n[CREDENTIAL]\nend"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN DE88 3704 0044 0532 0130 00 has a wrong checksum",
        "IBAN GB82 WEST 1234 5698 7654 is too short",
        "SSN 000-12-3456 has area 000",
        "SSN 666-12-3456 and 912-12-3456 have invalid areas",
        "SSN 123-00-4567 and 123-45-0000 have zero groups",
        "released 2024-01-15 as version 1.2.3, build 20240115",
        "version 1.2.3.4 of the app",
        "order 123456789012 and tracking 1234 5678 9012 3456",
        "octets 256.1.1.1 are out of range",
        "12:30:45 and std::vector are not IPv6",
        "icon@2x.png and @decorator are not e-mail",
        "password: required",
        "max_tokens=512",
        "Population 1,204,551",
    ],
)
def test_look_alikes_not_flagged(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert pii.luhn_valid("4111111111111111")
    assert not pii.luhn_valid("4111111111111112")
    assert pii.iban_valid("DE89370400440532013000")
    assert not pii.iban_valid("DE89370400440532013001")
    assert not pii.iban_valid("DE8937040044053201300")  # wrong length for DE
    assert pii.ssn_valid("078", "05", "1120")
    assert not pii.ssn_valid("000", "05", "1120")
    assert not pii.ssn_valid("666", "05", "1120")
    assert not pii.ssn_valid("900", "05", "1120")


def test_redaction_placeholders() -> None:
    text = "mail a@b.io, card 4111-1111-1111-1111, ip 10.0.0.1, ssn 078-05-1120"
    assert pii.apply(text, ALL.find(text)) == (
        "mail [EMAIL], card [CREDIT_CARD], ip [IP_ADDRESS], ssn [US_SSN]"
    )


def test_entities_honoured() -> None:
    only_email = pii.PIIDetector([policy.PIIEntity.EMAIL])
    text = "a@b.io 4111 1111 1111 1111 10.0.0.1"
    assert found(text, only_email) == [("email", "a@b.io")]
    assert pii.PIIDetector([]).find(text) == []


def test_overlap_prefers_credential() -> None:
    text = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefgh"
    spans = ALL.find(text)
    assert len(spans) == 1
    assert spans[0].kind == "credential"


def test_resolve_and_apply() -> None:
    spans = [
        pii.Span(0, 5, "email", "[EMAIL]", 1),
        pii.Span(3, 9, "phone", "[PHONE]", 5),
        pii.Span(10, 12, "phone", "[PHONE]", 5),
    ]
    chosen = pii.resolve(spans)
    assert [(s.start, s.end) for s in chosen] == [(0, 5), (10, 12)]
    assert pii.apply("abcdefghijklm", chosen) == "[EMAIL]fghij[PHONE]m"
    assert pii.apply("unchanged", []) == "unchanged"


def test_digit_prefilter_is_exact() -> None:
    """Recognisers that need a digit are skipped without one; ``\\d`` also means non-ASCII."""
    assert pii._digit_bounds("no digits here, ünïcödé or not") is None
    assert pii._digit_bounds("no digits here") is None
    assert pii._digit_bounds("room 7, floor 12 of 30.") == (5, 21)
    assert pii._digit_bounds("عدد ٣ x") == (4, 6)  # an Arabic-Indic digit matches \d
    assert found("Grüße, card 4111 1111 1111 1111, ip 10.0.0.1") == [
        ("credit_card", "4111 1111 1111 1111"),
        ("ip_address", "10.0.0.1"),
    ]
    assert found("plain prose with no numbers and a phone keyword: call me") == []


def test_digit_bounds_only_narrow_the_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scanning between the first and last digit finds what scanning everything finds."""
    generator = random.Random(7)
    pieces = [
        "call +44 20 7946 0958", "(555) 010-4477", "card 4111-1111-1111-1111",
        "IBAN GB82 WEST 1234 5698 7654 32", "ssn 078-05-1120", "ip 192.168.10.20",
        "DE89370400440532013000", "v1.2.3", "room 12", "+(", " / ", "-", "..", "word",
        "Ünïcödé ٣٤٥", "0", "  ", "mail bob@example.com",
    ]  # fmt: skip
    texts = [
        "".join(generator.choice(pieces) + generator.choice(" ,.\n") for _ in range(count))
        for count in range(1, 12)
        for _ in range(40)
    ]
    detector = pii.PIIDetector(list(policy.PIIEntity))
    narrowed = [detector.find(text) for text in texts]
    monkeypatch.setattr(
        pii,
        "_digit_bounds",
        lambda text: (0, len(text) - 1) if pii._DIGIT.search(text) else None,
    )
    assert [detector.find(text) for text in texts] == narrowed
    assert any(narrowed)  # the pieces do hold entities


def _gate_texts() -> list[str]:
    """Texts made of gate words, their look-alikes and other scripts, cut anywhere."""
    generator = random.Random(11)
    gates = {
        gate
        for each in (pii._PHONE_GATES, pii._CASED_GATES, pii._LOWER_GATES)
        for gate in each.gates
    }
    pieces = [
        *gates, *(gate[:-1] for gate in gates), *(gate.upper() for gate in gates),
        "whatsapphone", "hotel", "cellar", "passport", "api_ke", "AKI", "sk", "eyJ.",
        "phone: 020 7946 0958", "password=hunter2", "tóken", "дом", "emoji 🙂", " ", "\n", "x",
    ]  # fmt: skip
    texts = ["", "a", "ab", "tel", "te", "ñtel", "дtel"]
    for count in range(1, 10):
        for _ in range(120):
            text = "".join(generator.choice(pieces) for _ in range(count))
            cut = generator.randrange(len(text) + 1)
            texts += [text, text[:cut], text[cut:]]
    return texts


@pytest.mark.skipif(pii._pii is None, reason="extension not built")
def test_compiled_gates_find_what_the_plain_scan_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _gate_texts()
    for gates in (pii._PHONE_GATES, pii._CASED_GATES, pii._LOWER_GATES):
        compiled = [gates.present(text) for text in texts]
        assert any(compiled)
        assert not all(compiled)
        monkeypatch.setattr(gates, "_needles", None)
        assert [gates.present(text) for text in texts] == compiled
        monkeypatch.undo()
    # Whole detections too, with every gate on the plain-Python path.
    detector = pii.PIIDetector(list(policy.PIIEntity))
    spans = [detector.find(text) for text in texts]
    assert any(spans)
    for gates in (pii._PHONE_GATES, pii._CASED_GATES, pii._LOWER_GATES):
        monkeypatch.setattr(gates, "_needles", None)
    assert [detector.find(text) for text in texts] == spans


@pytest.mark.skipif(pii._pii is None, reason="extension not built")
def test_needles_refuse_what_they_cannot_search() -> None:
    needles = pii._pii.Needles(("tel", "phone"))
    assert needles.found("a phone, a hotel") == 0b11
    assert needles.found("phon tel") == 0b01
    assert needles.found("дом tel") == -1  # two bytes per character: the caller asks str
    assert needles.found("ñ phone") == 0b10  # one byte per character, not ASCII
    with pytest.raises(ValueError, match="at least 3 characters"):
        pii._pii.Needles(("ab",))
    with pytest.raises(ValueError, match="at least 3 characters"):
        pii._pii.Needles(("tél",))
    with pytest.raises(ValueError, match="at most 64"):
        pii._pii.Needles(tuple(f"n{i:03d}" for i in range(65)))


@pytest.mark.skipif(pii._pii is None, reason="extension not built")
def test_compiled_digit_bounds_equal_the_plain_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*_gate_texts(), "", "7", "a7", "7a", "no digits", "x 1 y 22 z", "٣ 4", "ñ 5"]
    generator = random.Random(5)
    texts += ["".join(generator.choice("ab 0189.-") for _ in range(n)) for n in range(60)]
    compiled = [pii._digit_bounds(text) for text in texts]
    assert any(compiled)
    assert None in compiled
    module = pii._pii
    monkeypatch.setattr(pii, "_pii", None)
    assert [pii._digit_bounds(text) for text in texts] == compiled
    with pytest.raises(ValueError, match="one byte per character"):
        module.digit_bounds("дом 1")
