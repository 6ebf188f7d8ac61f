"""Masking of PII and secrets in text: e-mail addresses, phone numbers, card numbers (Luhn
checked), IBANs and API-key-like secrets. Used for stored payloads and, later, documents."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

__all__ = ["redact", "redact_value"]

# Local part: dot-atoms or a quoted string; domain: labels in any script (IDN), so that
# "jo doe"@example.com and josé@exämple.de are found as well as jo@example.com.
_EMAIL = re.compile(
    r'(?:"[^"\n]{1,64}"|[\w.%+\'-]+)@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,}',
)
_SECRET = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
    # JSON Web Tokens: base64url header and payload, both JSON objects ("eyJ" is '{"'), and a signature
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# Upper or lower case, grouped by spaces or dashes in fours; the mod-97 check below decides.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{4}){2,7}(?:[ -]?[A-Za-z0-9]{1,3})?\b")
# Cards: 13-16 digits in one run, or in groups of four (Amex 4-6-5). Longer runs are left
# alone: nanosecond timestamps have 19 digits and one in ten would pass the Luhn check.
_CARD = re.compile(r"\b(?:\d{13,16}|(?:\d{4}[ -]){3}\d{1,4}|\d{4}[ -]\d{6}[ -]\d{5})\b")
# National-id-like numbers: US SSN (AAA-GG-SSSS, area not 000/666/9xx) and UK NINO (AB123456C).
_NATIONAL_ID = re.compile(
    r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b|\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE = re.compile(
    r"(?<![\w+(])(?<!\d[ -])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}\b(?![ -]?\d)"
    # international numbers written in pairs or other groups: +33 1 23 45 67 89, +44 20 7946 0958
    r"|(?<![\w+])\+\d{1,3}(?:[ .-]\d{1,4}){3,6}\b(?![ -]?\d)"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").replace("-", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def redact(text: str, counts: Counter[str] | None = None) -> str:
    """Return ``text`` with each finding replaced by ``[REDACTED:<kind>]``."""

    def masker(kind: str, check: Any = None):
        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            if check is not None and not check(found):
                return found
            if counts is not None:
                counts[kind] += 1
            return f"[REDACTED:{kind}]"

        return replace

    text = _SECRET.sub(masker("secret"), text)
    text = _EMAIL.sub(masker("email"), text)
    text = _IBAN.sub(masker("iban", _iban_ok), text)
    text = _CARD.sub(masker("card", lambda s: _luhn_ok(re.sub(r"\D", "", s))), text)
    text = _NATIONAL_ID.sub(masker("national_id"), text)
    text = _PHONE.sub(masker("phone"), text)
    return text


def redact_value(value: Any, counts: Counter[str] | None = None) -> Any:
    """Redact every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value, counts)
    if isinstance(value, dict):
        return {key: redact_value(item, counts) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, counts) for item in value]
    return value
