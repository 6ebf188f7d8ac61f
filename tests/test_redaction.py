"""Masking of PII and secrets in stored payloads."""

from __future__ import annotations

from collections import Counter

import pytest

from workbench.core.redaction import redact, redact_value

MASKED = [
    ("write to jo.doe+x@example.co.uk today", "email"),
    ("call +1 415 555 2671 now", "phone"),
    ("or (415) 555-2671", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "card"),
    ("card 4111111111111111", "card"),
    ("amex 3782 822463 10005", "card"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
    ("key sk-ant-abcdefghijklmnopqrstuv", "secret"),
    ("aws AKIAABCDEFGHIJKLMNOP", "secret"),
    # formats the red-team review found unmasked
    ('mail "jo doe"@example.com', "email"),
    ("mail josé@exämple.de", "email"),
    ("mail 用户@例子.广告", "email"),
    ("tel +33 1 23 45 67 89", "phone"),
    ("tel +44 20 7946 0958", "phone"),
    ("iban fr76 3000 6000 0112 3456 7890 189", "iban"),
    ("iban DE89-3704-0044-0532-0130-00", "iban"),
    ("token hf_" + "a1B2c3D4e5" * 4, "secret"),
    ("token glpat-" + "xYz12" * 5, "secret"),
    ("stripe sk_live_" + "A1b2C3d4" * 3, "secret"),
    ("github github_pat_" + "11ABCDEFG0" * 4, "secret"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk", "secret"),
]
KEPT = [
    "on 2026-11-22 at 10:30, 42 tokens, version 0.3.36",
    "span started at 1795365941857147233 ns",  # 19 digits and Luhn-valid: a timestamp
    "card 4111 1111 1111 1112 fails the Luhn check",
    "IBAN DE00 3704 0044 0532 0130 00 has a bad checksum",
    "version 1.2.3.4 of the build, step 10 of 12",
    "the header eyJ alone is not a token",
]


@pytest.mark.parametrize("text,kind", MASKED)
def test_masked(text, kind):
    counts: Counter[str] = Counter()
    out = redact(text, counts)
    assert f"[REDACTED:{kind}]" in out
    assert counts == Counter({kind: 1})


@pytest.mark.parametrize("text", KEPT)
def test_kept(text):
    assert redact(text) == text


def test_nested_values():
    counts: Counter[str] = Counter()
    value = {"messages": [{"role": "user", "content": "I am jo@example.com"}], "n": 3}
    assert redact_value(value, counts) == {
        "messages": [{"role": "user", "content": "I am [REDACTED:email]"}],
        "n": 3,
    }
    assert counts["email"] == 1
