"""National identifiers read by their check digit: Australian tax file numbers, Canadian social
insurance numbers and New Zealand IRD numbers, each typed ``NATIONAL_ID``.

Presidio has recognizers for the first two but ships them disabled, and none for the third. A run of
eight or nine digits passes a check digit about one time in ten, so a number written bare
("249787045") needs a context word as well ("SIN", "tax file number", "IRD"), while one written with
its usual separators ("249 787 045", "49-091-850") is taken on its check digit alone.

Imported by :class:`pipelines.detectors.Detector` when it loads Presidio; importing this module is
cheap (Presidio is imported by :func:`checked_id_recognizers`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_NOT_DIGIT = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    """The Luhn check (Canadian SIN, payment cards)."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def au_tfn_valid(digits: str) -> bool:
    """An Australian tax file number of nine digits: weighted sum divisible by 11."""
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10)
    return len(digits) == 9 and sum(int(c) * w for c, w in zip(digits, weights, strict=True)) % 11 == 0


def nz_ird_valid(digits: str) -> bool:
    """A New Zealand IRD number (eight or nine digits, 10,000,000-150,000,000), checked with Inland
    Revenue's two weight sets (the second when the first gives a check of 10)."""
    if len(digits) not in (8, 9):
        return False
    padded = digits.rjust(9, "0")
    if not 10_000_000 <= int(padded) <= 150_000_000:
        return False
    base, check = [int(c) for c in padded[:8]], int(padded[8])
    for weights in ((3, 2, 7, 6, 5, 4, 3, 2), (7, 4, 3, 2, 5, 2, 7, 6)):
        remainder = sum(d * w for d, w in zip(base, weights, strict=True)) % 11
        expected = 0 if remainder == 0 else 11 - remainder
        if expected != 10:
            return expected == check
    return False


def checked_id_recognizers() -> list[Any]:
    """The recognizers of this module, for English text (Presidio ``PatternRecognizer`` objects)."""
    from presidio_analyzer import Pattern, PatternRecognizer

    class CheckedIdRecognizer(PatternRecognizer):
        """A national identifier whose check digit decides: written with separators and valid, it is
        found with full confidence; written bare and valid, it keeps a low score that only a context
        word lifts over the threshold; invalid, it is dropped."""

        def __init__(
            self, name: str, *, written: str, bare: str, context: list[str], check: Callable[[str], bool]
        ) -> None:
            super().__init__(
                supported_entity="NATIONAL_ID",
                name=name,
                supported_language="en",
                patterns=[Pattern(f"{name} written", written, 0.5), Pattern(f"{name} bare", bare, 0.05)],
                context=context,
            )
            self._check = check

        def validate_result(self, pattern_text: str) -> bool | None:
            """True (full score) for a valid written number, None (score unchanged) for a valid bare one,
            False for an invalid one."""
            if not self._check(_NOT_DIGIT.sub("", pattern_text)):
                return False
            return None if pattern_text.isdigit() else True

    return [
        CheckedIdRecognizer(
            "AuTaxFileNumberRecognizer",
            written=r"\b\d{3}([- ])\d{3}\1\d{3}\b",
            bare=r"(?<![\w.,-])\d{9}(?![\w-]|[.,]\d)",
            context=["tfn", "tax", "file"],
            check=au_tfn_valid,
        ),
        CheckedIdRecognizer(
            "CaSocialInsuranceNumberRecognizer",
            written=r"\b[1-79]\d{2}([- ])\d{3}\1\d{3}\b",
            bare=r"(?<![\w.,-])[1-79]\d{8}(?![\w-]|[.,]\d)",
            context=["sin", "social", "insurance", "nas"],
            check=lambda digits: len(digits) == 9 and luhn_valid(digits),
        ),
        CheckedIdRecognizer(
            "NzIrdNumberRecognizer",
            written=r"\b\d{2,3}([- ])\d{3}\1\d{3}\b",
            bare=r"(?<![\w.,-])\d{8,9}(?![\w-]|[.,]\d)",
            context=["ird", "inland", "revenue", "tax", "social", "security"],
            check=nz_ird_valid,
        ),
    ]
