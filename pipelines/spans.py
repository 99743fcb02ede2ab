"""Detected PII as character spans, and the one way spans become placeholders in text.

Every detector (Presidio's recognizers, the name propagation, table name columns) produces
:class:`Span` objects; overlapping spans are merged before replacement, so a value found by two
detectors is replaced once, and the evaluation sees exactly what was replaced.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)>")
_UUID = re.compile(r"(?<![\w-])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![\w-])")


class SpanSource(StrEnum):
    """Where a span came from, beside the names of Presidio's own pattern recognizers."""

    TAGGER = "tagger"
    SPACY = "SpacyRecognizer"  # Presidio's name for its spaCy NER recognizer
    PROPAGATION = "propagation"
    ADDRESS_GAP = "address_gap"
    PERSON_COLUMN = "person_column"
    NAME_PARTS = "name_parts"  # detected parts of a name joined with what lies between them
    NUMBER_PARTS = "number_parts"  # a number's country code, extension or separated groups
    GIVEN_NAME = "given_name"  # a listed given name (pipelines.given_names)


@dataclass(frozen=True, slots=True)
class Span:
    """One detected value: ``text[start:end]`` is of type ``entity`` (``PERSON``, ``IBAN_CODE`` ...)."""

    start: int
    end: int
    entity: str
    score: float
    source: str = ""


#: A country calling code before a phone number the recognizer found without it ("+1 (322) 928-6459").
_CALLING_CODE = re.compile(r"\+\d{1,3}[ .-]?(?:\(0\)[ ]?)?$")
#: A North American trunk prefix before an area code in brackets ("1 (604) 555-0182").
_TRUNK_ONE = re.compile(r"(?<![\w.+-])1[ .-]?$")
#: An extension after a phone number: "x390", "ext. 12", "extension 4471".
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extn\.?|extension)[ ]?\d{1,6}\b", re.IGNORECASE)
#: Types whose detected pieces, separated by one hyphen or space, are one number ("29-849", "927").
_GROUPED = frozenset({"NATIONAL_ID", "PHONE_NUMBER", "BANK_ACCOUNT", "CREDIT_CARD", "UK_NINO"})


def number_parts(text: str, spans: Sequence[Span]) -> list[Span]:
    """Spans that complete detected numbers: a phone number with its country calling code or its
    extension, and two detected pieces of a number separated by a single hyphen or space (typed by
    the first)."""
    out: list[Span] = []
    for span in spans:
        if span.entity != "PHONE_NUMBER":
            continue
        code = _CALLING_CODE.search(text, max(0, span.start - 9), span.start)
        if not code and text.startswith("(", span.start):
            code = _TRUNK_ONE.search(text, max(0, span.start - 2), span.start)
        extension = _EXTENSION.match(text, span.end)
        if code or extension:
            start = code.start() if code else span.start
            end = extension.end() if extension else span.end
            out.append(Span(start, end, span.entity, span.score, SpanSource.NUMBER_PARTS))
    ordered = sorted((s for s in spans if s.entity in _GROUPED), key=lambda s: s.start)
    for a, b in itertools.pairwise(ordered):
        if b.start == a.end + 1 and text[a.end] in "- ":
            out.append(Span(a.start, b.end, a.entity, min(a.score, b.score), SpanSource.NUMBER_PARTS))
    return out


def merge(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans joined into one, typed by a pattern recognizer's part if there is one, else
    by its highest-scoring part (then the longest)."""
    merged: list[Span] = []
    group: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if group and span.start < max(s.end for s in group):
            group.append(span)
            continue
        if group:
            merged.append(_join(group))
        group = [span]
    if group:
        merged.append(_join(group))
    return merged


#: Sources that guess a type from context; a pattern recognizer's type (checksums, formats) wins.
_CONTEXTUAL = frozenset(SpanSource)


def _join(group: list[Span]) -> Span:
    best = max(group, key=lambda s: (s.source not in _CONTEXTUAL, s.score, s.end - s.start))
    start, end = min(s.start for s in group), max(s.end for s in group)
    # Address parts joined into one address (a street, a town and a postcode) are one street address,
    # unless a pattern recognizer's value holds them all (pieces of an IBAN the tagger took for postcodes).
    joined = any(s.source == SpanSource.ADDRESS_GAP for s in group)
    whole = best.source not in _CONTEXTUAL and (best.start, best.end) == (start, end)
    entity = "STREET_ADDRESS" if joined and not whole else best.entity
    return Span(start, end, entity, best.score, best.source)


def apply(text: str, spans: Sequence[Span]) -> tuple[str, Counter[str]]:
    """``text`` with every span replaced by ``<ENTITY>``, and the number of placeholders by type."""
    out: list[str] = []
    counts: Counter[str] = Counter()
    at = 0
    for span in merge(spans):
        out.append(text[at : span.start])
        out.append(f"<{span.entity}>")
        counts[span.entity] += 1
        at = span.end
    out.append(text[at:])
    return "".join(out), counts


def placeholder_counts(text: str) -> Counter[str]:
    """How many placeholders of each type a redacted text holds (a chunk's own redaction counts)."""
    return Counter(_PLACEHOLDER.findall(text))


@dataclass(slots=True)
class Unit:
    """One piece of text that is redacted on its own: an element's text, a table header or cell."""

    text: str
    spans: list[Span] = field(default_factory=list)


def in_a_uuid(text: str, span: Span) -> bool:
    """Whether ``span`` overlaps a UUID in ``text`` (an identifier of a thing, not a number of a person)."""
    return any(
        m.start() < span.end and span.start < m.end()
        for m in _UUID.finditer(text, max(0, span.start - 36), min(len(text), span.end + 36))
    )
