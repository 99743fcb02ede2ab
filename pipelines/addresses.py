"""Rules that read the parts of a postal address together: nearby parts joined into one span with
the town between or after them, the town before a state and postcode, postcode digits before a town,
cities and states next to an address, and a number the tagger took for an address part left alone
when nothing of an address is near it.

Used by :mod:`pipelines.detectors` on each text's detected spans.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from pipelines.spans import Span, SpanSource

#: How far a city or state may sit from an address or postcode to go with it (alone, it is not personal).
_PLACE_GAP = re.compile(r"[\s,]{0,3}")
#: Address parts, and what may lie between two of them for the gap to be part of the address: a few
#: words (a town, a county) or short numbers (the 2 of a rural delivery's "RD 2", a box number),
#: commas and line breaks, no sentence end.
_ADDRESS_PARTS = frozenset({"STREET_ADDRESS", "POSTCODE", "UK_POSTCODE"})
_ADDRESS_GAP = re.compile(r"[\s,]*(?:(?:[^\W\d_][\w'.-]*|\d{1,4})[ \t]*){0,4}[\s,]*")
_MAX_ADDRESS_GAP = 40
_GLUED_BEFORE = re.compile(r"[^\W\d_]-?$")
_GLUED_AFTER = re.compile(r"-?[^\W\d_]")
_POSTCODE_LABEL = re.compile(r"(?i)\b(?:zip|post(?:al)?[ ]?code|plz|code postal|postleitzahl)\b")
_TOWN_AFTER_POSTCODE = re.compile(r",?[ ][A-Z][^\W\d_]+(?:[ -][A-Z][^\W\d_]+){0,2}(?![\w-])")
_TRAILING_TOWN = re.compile(
    r"[ ,]*(?:\d{4,5}(?:[ ][A-ZÄÖÜ][\w'.-]+){1,3}"
    # a Dutch postcode ("2523DF, Oosterland") or an Eircode ("D07 X2K4") after a street, its town optional
    r"|[1-9]\d{3}[ ]?[A-Z]{2}(?:,?[ ][A-Z][\w'.-]+){0,3}|(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ]?[AC-FHKNPRTV-Y0-9]{4})(?!\w)"
)
#: Digits of a postcode before a town in an address ("77403 Martel"), a Dutch postcode's letters ("2515 GU").
_POSTCODE_BEFORE = re.compile(r"(?<![\w.,:/-])\d{4,5}[ ]$")
_NL_LETTERS = re.compile(r"[ ]?[A-Z]{2}(?!\w)")


def digits_only_address(text: str, span: Span, spans: list[Span]) -> bool:
    """A tagger address part of digits and dots alone ("127.0.0.1", "5432") with no street, town or
    postcode beside it, or a postcode of digits glued to a word ("Zanzibar-7731"): a number."""
    if span.entity not in ("STREET_ADDRESS", "POSTCODE") or span.source != SpanSource.TAGGER:
        return False
    if any(c.isalpha() for c in text[span.start : span.end]):
        return False
    near = 3
    if span.entity == "POSTCODE":
        if _GLUED_BEFORE.search(text, 0, span.start) or _GLUED_AFTER.match(text, span.end):
            return True
        # Digits in groups ("96 80 18") may be a phone's; one run needs an address or a label near it.
        if not text[span.start : span.end].strip().isdigit() or _POSTCODE_LABEL.search(
            text, max(0, span.start - 40), span.start
        ):
            return False
        near = 40
    return not any(
        o is not span
        and o.entity in _ADDRESS_PARTS
        and any(c.isalpha() for c in text[o.start : o.end])
        and (abs(o.start - span.end) <= near or abs(span.start - o.end) <= near)
        for o in spans
    )


def address_gaps(text: str, spans: list[Span]) -> list[Span]:
    """Nearby parts of one address joined into one span with what lies between and after them (a town
    between a street and a postcode, the town after a postcode, a line of an address over several
    lines), so that an address becomes one placeholder."""
    parts = sorted((s for s in spans if s.entity in _ADDRESS_PARTS), key=lambda s: s.start)
    joined = []
    for a, b in itertools.pairwise(parts):
        gap = text[a.end : b.start]
        if 0 < len(gap) <= _MAX_ADDRESS_GAP and _ADDRESS_GAP.fullmatch(gap):
            joined.append(
                Span(a.start, b.end, "STREET_ADDRESS", min(a.score, b.score), SpanSource.ADDRESS_GAP)
            )
    for part in parts:
        # "Pieperweg 240, 50397 Eichstätt": the postcode and town after a street; "Lizelaan 5, 6641 PS,
        # Grou": the town after a postcode that follows a street.
        town = _TRAILING_TOWN.match(text, part.end)
        if not town and part.entity != "STREET_ADDRESS" and any(j.end == part.end for j in joined):
            town = _TOWN_AFTER_POSTCODE.match(text, part.end)
        if town and town.end() > part.end:
            joined.append(Span(part.start, town.end(), "STREET_ADDRESS", part.score, SpanSource.ADDRESS_GAP))
    return joined


#: A town before a state or province and its postcode: "East Tonya, QLD, 2920", "Lake Joshua, NC
#: 28401", "Port Kevin, VIC 3550" (Australian states, US states, Canadian provinces).
_REGION = (
    r"(?:NSW|VIC|Vic|QLD|Qld|SA|WA|TAS|Tas|NT|ACT"
    r"|A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|T[NX]"
    r"|UT|V[AT]|W[AIVY]|AB|BC|MB|NB|NL|NS|NU|ON|PE|QC|SK|YT)"
)
_TOWN_BEFORE_REGION = re.compile(
    rf"(?<![\w'-])(?:[A-Z][^\W\d_]+[ ]){{0,2}}[A-Z][^\W\d_]+,?[ ](?:{_REGION},?[ ])?$"
)
_STARTS_WITH_REGION = re.compile(rf"{_REGION}\b")


def town_before_region(text: str, spans: list[Span]) -> list[Span]:
    """An address or postcode that is, or follows, a state and postcode ("QLD, 2920", "NC 28401")
    joined with the town before it: "East Tonya, QLD, 2920" is one address line."""
    out = []
    for s in spans:
        if s.entity not in _ADDRESS_PARTS or not any(c.isdigit() for c in text[s.start : s.end]):
            continue
        town = _TOWN_BEFORE_REGION.search(text, max(0, s.start - 60), s.start)
        if town is None:
            continue
        has_region = _STARTS_WITH_REGION.match(text, s.start) or _STARTS_WITH_REGION.search(
            text, town.start(), s.start
        )
        if has_region:
            out.append(Span(town.start(), s.end, "STREET_ADDRESS", s.score, SpanSource.ADDRESS_GAP))
    return out


#: What may follow a street on its own line for the lines below to continue its address: a unit
#: ("66 West Interchange 47/"), a comma.
_STREET_LINE_REST = re.compile(r"[ \t,]*(?:\d{1,4}/?)?[ \t,/]*")
#: A unit or floor on its own line below a street ("47/", "Level 2"), with any marks before it.
_UNIT_LINE = re.compile(r"[^\w\n]*(?:\d{1,4}/|(?:Level|Floor|Unit|Suite|Flat|Apt\.?)[ ]\d{1,4})[ \t,]*")
#: A town, a state or a country on its own line: one to four words.
_PLACE_LINE = re.compile(r"[^\w\n]*[^\W\d_][\w'.-]*(?:[ ,]+[^\W\d_][\w'.-]*){0,3}[ \t,]*")
#: The last line of an address block: up to three words (a town, a state, a country), then a postcode
#: of four or five digits ("AUS 2619", "vietnam 2920", "2606").
_POSTCODE_LINE = re.compile(r"[^\w\n]*(?:[^\W\d_][\w'.-]*[ ,]+){0,3}(\d{4,5})[ \t]*")
#: How many lines below a street its address block may run, and how long such a line may be.
_BLOCK_LINES, _BLOCK_LINE_CHARS = 5, 40


def unit_slash(text: str, spans: list[Span]) -> list[Span]:
    """An Australian unit number's slash after an address part that ends in its digits ("116/" before
    a street on the next line, "Frontage 116/ North Kerri"): part of the address."""
    return [
        Span(s.start, s.end + 1, s.entity, s.score, s.source)
        for s in spans
        if s.entity == "STREET_ADDRESS"
        and text[s.end - 1 : s.end].isdigit()
        and text[s.end : s.end + 1] == "/"
        and (s.end + 1 == len(text) or text[s.end + 1].isspace())
    ]


def address_block(text: str, spans: list[Span]) -> list[Span]:
    """The lines of an address written one part to a line below its street: a unit or floor, the
    town, state and country, and the postcode that ends the block, joined with the street into one
    address ("16 Wilcox Corso / Level 2 / Nathanielstad / AUS 2619"). Without a postcode at its end,
    only a unit or floor on the line right below the street is taken."""
    out = []
    for s in spans:
        if s.entity != "STREET_ADDRESS" or not any(c.isalpha() for c in text[s.start : s.end]):
            continue
        eol = text.find("\n", s.end)
        if eol == -1 or not _STREET_LINE_REST.fullmatch(text, s.end, eol):
            continue
        block = _block_end(text, eol)
        if block is not None:
            out.append(Span(s.start, block, "STREET_ADDRESS", s.score, SpanSource.ADDRESS_GAP))
            continue
        next_end = text.find("\n", eol + 1)
        next_end = len(text) if next_end == -1 else next_end
        if _UNIT_LINE.fullmatch(text, eol + 1, next_end):
            out.append(Span(s.start, next_end, "STREET_ADDRESS", s.score, SpanSource.ADDRESS_GAP))
    return out


def _block_end(text: str, eol: int) -> int | None:
    """Where the postcode ending the address block below a street line (ending at ``eol``) ends, if
    the lines between are a unit or floor, places and at most one blank line at a time."""
    end, blank = eol, 0
    for n in range(_BLOCK_LINES):
        start = end + 1
        if start >= len(text):
            return None
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        line = text[start:end]
        if not line.strip():
            blank += 1
            if blank > 1:
                return None
            continue
        blank = 0
        postcode = _POSTCODE_LINE.fullmatch(line)
        if postcode:
            return start + postcode.end(1)
        if len(line) > _BLOCK_LINE_CHARS or not (
            (n == 0 and _UNIT_LINE.fullmatch(line)) or _PLACE_LINE.fullmatch(line)
        ):
            return None
    return None


def postcode_digits(text: str, spans: list[Span]) -> list[Span]:
    """The postcode digits before a town of an address, and the letters after a Dutch postcode's digits."""
    out = []
    for s in spans:
        value = text[s.start : s.end]
        if s.entity not in _ADDRESS_PARTS:
            continue
        before = _POSTCODE_BEFORE.search(text, max(0, s.start - 7), s.start)
        if before and value[:1].isupper():
            out.append(Span(before.start(), s.end, "STREET_ADDRESS", s.score, SpanSource.ADDRESS_GAP))
        letters = _NL_LETTERS.match(text, s.end) if len(value) == 4 and value.isdigit() else None
        if letters:
            out.append(Span(s.start, letters.end(), s.entity, s.score, s.source))
    return out


def places_in_addresses(text: str, tagged: list[Any], kept: list[Any]) -> list[Span]:
    """Cities and states the tagger found next to a kept address or postcode: part of the address."""
    anchors = [t for t in kept if t.label in ("STREET_ADDRESS", "POSTCODE")]
    places = []
    for t in tagged:
        if t.label != "LOCATION":
            continue
        for a in anchors:
            gap = text[a.end : t.start] if a.end <= t.start else text[t.end : a.start]
            if _PLACE_GAP.fullmatch(gap):
                places.append(Span(t.start, t.end, "STREET_ADDRESS", t.score, SpanSource.TAGGER))
                break
    return places
