"""Whether a detected value is personal data at all: the checks a detected span passes before it
becomes a placeholder (a section number, a decimal, a date, a reference number, a loopback address or
the identifier of a thing is none)."""

from __future__ import annotations

import ipaddress
import re

from pipelines.names import PERSON, shaped_like_a_name
from pipelines.spans import Span, SpanSource, in_a_uuid

#: Numbers the tagger may mistake a decimal or a word for; a real one has digits and is no decimal.
_NUMBERED = frozenset({"NATIONAL_ID", "PHONE_NUMBER", "BANK_ACCOUNT", "POSTCODE"})
_DECIMAL = re.compile(r"\d+\.\d+")
#: A year, a hyphen and a number ("2025-031877", "2019-0042"): a reference (a case, an invoice, a
#: ticket); no national id, account, phone number or postcode is written so.
_REFERENCE = r"(?:1[89]|20)\d{2}-(\d{3,8})"
#: "06.03.2025", "02/03 21", "2025-031877": dates, times and references that phone parsing accepts;
#: "4913-9775" is an Australian local number.
_DATE_LIKE = re.compile(rf"\d{{1,2}}[./-]\d{{1,2}}(?:[./-]\d{{2,4}}|[ ]\d{{1,2}})|{_REFERENCE}")
#: A reference within a text. The tagger scores such numbers near its threshold, so without this
#: check its reading of them would turn on the last bits of its arithmetic.
_YEAR_REFERENCE = re.compile(rf"(?<![\d-]){_REFERENCE}(?![\d-])")


def plausible(text: str, span: Span) -> bool:
    """Whether a detected number, address or name is one: not a section number, a decimal, a loopback
    or an identifier."""
    value = text[span.start : span.end]
    if span.entity == "IP_ADDRESS":
        return _personal_ip(text, span, value)
    if span.entity == "PHONE_NUMBER" and _DATE_LIKE.fullmatch(value):
        return False
    if span.entity == PERSON:
        return shaped_like_a_name(text, span)
    if span.entity in _NUMBERED and in_a_uuid(text, span):
        return False  # "fe3e1db5-6454-46d6-a14c-071208ebe4b1" names a file system, not a person
    if span.entity in _NUMBERED and span.source == SpanSource.TAGGER:
        digits = sum(c.isdigit() for c in value)
        return digits >= 2 and not _DECIMAL.fullmatch(value) and not _in_a_year_reference(text, span)
    return True


def _in_a_year_reference(text: str, span: Span) -> bool:
    """Whether the span lies within a year-and-number reference ("Reference 2025-031877") and covers
    part of its number."""
    # A reference is at most 13 characters: look only around the span, then check the edges in the
    # whole text (a window's end would read as the number's end).
    low, high = max(0, span.start - 13), min(len(text), span.end + 9)
    return any(
        m.start() <= span.start
        and span.end <= m.end()
        and span.end > m.start(1)
        and not (m.end() < len(text) and text[m.end()] in "-0123456789")
        for m in _YEAR_REFERENCE.finditer(text, low, high)
    )


def _personal_ip(text: str, span: Span, value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return True  # the recognizer's match is not parseable: keep it (fail closed)
    if address.is_loopback or address.is_unspecified:
        return False
    # "9.15.1.1. xmlcomment": a numbered heading, not an address.
    line_start = text.rfind("\n", 0, span.start) + 1
    return not (not text[line_start : span.start].strip() and text[span.end : span.end + 2] == ". ")
