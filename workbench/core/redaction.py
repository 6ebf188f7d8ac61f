"""Masking of PII and secrets in text: e-mail addresses, phone numbers, card numbers (Luhn
checked), IBANs and API-key-like secrets. Used for stored payloads and, later, documents."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

__all__ = ["redact", "redact_value"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SECRET = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# Cards: 13-16 digits in one run, or in groups of four (Amex 4-6-5). Longer runs are left
# alone: nanosecond timestamps have 19 digits and one in ten would pass the Luhn check.
_CARD = re.compile(r"\b(?:\d{13,16}|(?:\d{4}[ -]){3}\d{1,4}|\d{4}[ -]\d{6}[ -]\d{5})\b")
# National-id-like numbers: US SSN (AAA-GG-SSSS, area not 000/666/9xx) and UK NINO (AB123456C).
_NATIONAL_ID = re.compile(
    r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b|\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE = re.compile(
    r"(?<![\w+(])(?<!\d[ -])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}\b(?![ -]?\d)"
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
    compact = text.replace(" ", "")
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
