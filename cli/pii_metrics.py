"""Scoring redaction as a detector: gold values located in the partitioned text, against the spans
that were replaced. Plain functions, no I/O.

A gold value counts as *caught* when the replaced spans cover every character of it, whatever type
they gave it (a mistyped placeholder still protects the person); *partly* when they cover some of it.
A replaced span is a *true hit* when it overlaps a gold value of a scored type, *ignored* when it
overlaps only a gold value of an unscored type (a date, an organisation), and a *false hit* otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipelines.spans import Span, merge

#: Gold and detector type names, mapped onto the categories that are scored; others are unscored.
CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        ["PERSON", "PER", "NAME", "FIRST_NAME", "LAST_NAME", "NAME_FIRST", "NAME_LAST"], "PERSON"
    ),
    **dict.fromkeys(["STREET_ADDRESS", "ADDRESS", "STREET"], "ADDRESS"),
    **dict.fromkeys(["POSTCODE", "ZIP_CODE", "ZIPCODE", "UK_POSTCODE", "POSTAL_CODE"], "POSTCODE"),
    **dict.fromkeys(["PHONE_NUMBER", "PHONE"], "PHONE_NUMBER"),
    **dict.fromkeys(["EMAIL_ADDRESS", "EMAIL"], "EMAIL_ADDRESS"),
    **dict.fromkeys(["CREDIT_CARD"], "CREDIT_CARD"),
    **dict.fromkeys(["IBAN_CODE", "IBAN"], "IBAN_CODE"),
    **dict.fromkeys(["BANK_ACCOUNT", "US_BANK_NUMBER", "UK_SORT_CODE", "SORT_CODE"], "BANK_ACCOUNT"),
    **dict.fromkeys(
        [
            "NATIONAL_ID",
            "US_SSN",
            "UK_NINO",
            "UK_NHS",
            "US_PASSPORT",
            "US_DRIVER_LICENSE",
            "UK_PASSPORT",
            "UK_DRIVING_LICENCE",
            "PASSPORT",
            "DRIVER_LICENSE",
            "ES_NIF",
            "ES_NIE",
            "IT_FISCAL_CODE",
            "PL_PESEL",
            "FI_PERSONAL_IDENTITY_CODE",
            "US_ITIN",
        ],
        "NATIONAL_ID",
    ),
    **dict.fromkeys(["IP_ADDRESS"], "IP_ADDRESS"),
}


def category(entity: str) -> str | None:
    """The scored category of a gold or detected type, or None when it is not scored."""
    return CATEGORIES.get(entity.upper())


@dataclass(frozen=True, slots=True)
class GoldValue:
    """A personal value in a document: every occurrence of ``value`` is of type ``entity``."""

    entity: str
    value: str


@dataclass(slots=True)
class Tally:
    """Counts for one category (or all together)."""

    gold: int = 0
    caught: int = 0
    partly: int = 0
    values: int = 0
    survived: int = 0
    hits: int = 0
    true_hits: int = 0

    @property
    def recall(self) -> float:
        """Share of gold occurrences whose every character was replaced."""
        return self.caught / self.gold if self.gold else float("nan")

    @property
    def precision(self) -> float:
        """Share of replaced spans that overlap a gold value."""
        return self.true_hits / self.hits if self.hits else float("nan")

    @property
    def f2(self) -> float:
        """F-beta with beta 2: recall weighs four times as much as precision."""
        p, r = self.precision, self.recall
        if p != p or r != r or p + r == 0:  # NaN or both zero
            return float("nan") if p != p or r != r else 0.0
        return 5 * p * r / (4 * p + r)

    @property
    def survival(self) -> float:
        """Share of a document's distinct gold values still found verbatim in its stored (redacted) text."""
        return self.survived / self.values if self.values else float("nan")


@dataclass(slots=True)
class Score:
    """A set's tallies by category, and what was missed or falsely hit (for ``--dump``)."""

    by_category: dict[str, Tally] = field(default_factory=dict)
    unlocated: int = 0
    misses: list[dict[str, str]] = field(default_factory=list)
    false_hits: list[dict[str, str]] = field(default_factory=list)

    def tally(self, name: str) -> Tally:
        """The tally of one category, created on first use."""
        return self.by_category.setdefault(name, Tally())

    @property
    def overall(self) -> Tally:
        """All scored categories together."""
        total = Tally()
        for t in self.by_category.values():
            for f in ("gold", "caught", "partly", "values", "survived", "hits", "true_hits"):
                setattr(total, f, getattr(total, f) + getattr(t, f))
        return total


def occurrences(text: str, value: str) -> list[tuple[int, int]]:
    """Every (start, end) of ``value`` in ``text``."""
    found, at = [], text.find(value)
    while value and at >= 0:
        found.append((at, at + len(value)))
        at = text.find(value, at + 1)
    return found


def score_document(
    score: Score,
    units: Sequence[tuple[str, Sequence[Span]]],
    gold: Iterable[GoldValue],
    redacted_text: str,
    context: int = 40,
) -> None:
    """Add one document to ``score``: its text units with the spans replaced in each, its gold values,
    and its whole redacted text (for the verbatim-survival check)."""
    gold = list(gold)
    intervals: list[list[tuple[int, int, str | None]]] = [[] for _ in units]
    for g in gold:
        cat = category(g.entity)
        located = False
        # A value over several lines (an address) may be split into several elements by partitioning:
        # then each of its lines is located on its own.
        parts = [g.value] if any(g.value in text for text, _ in units) else _lines(g.value)
        for part in parts:
            for u, (text, _) in enumerate(units):
                for start, end in occurrences(text, part):
                    intervals[u].append((start, end, cat))
                    located = True
        if cat is None:
            continue
        if not located:
            score.unlocated += 1
            continue
        tally = score.tally(cat)
        tally.values += 1
        if g.value in redacted_text:
            tally.survived += 1
    for u, (text, spans) in enumerate(units):
        merged = merge(spans)
        for start, end, cat in intervals[u]:
            if cat is None:
                continue
            tally = score.tally(cat)
            tally.gold += 1
            covered = sum(max(0, min(end, s.end) - max(start, s.start)) for s in merged)
            if covered >= end - start:
                tally.caught += 1
            else:
                tally.partly += covered > 0
                score.misses.append(
                    {
                        "type": cat,
                        "value": text[start:end],
                        "context": text[max(0, start - context) : end + context],
                        "left": _uncovered(text, start, end, merged),
                    }
                )
        for s in merged:
            overlapping = [c for a, b, c in intervals[u] if a < s.end and s.start < b]
            if overlapping and all(c is None for c in overlapping):
                continue  # only an unscored gold value (a date, an organisation): neither right nor wrong
            tally = score.tally(category(s.entity) or "OTHER")
            tally.hits += 1
            if overlapping:
                tally.true_hits += 1
            else:
                score.false_hits.append(
                    {
                        "type": s.entity,
                        "source": s.source,
                        "value": text[s.start : s.end],
                        "context": text[max(0, s.start - context) : s.end + context],
                    }
                )


def _uncovered(text: str, start: int, end: int, merged: Sequence[Span]) -> str:
    """The characters of ``text[start:end]`` no span covers, covered ones shown as ``█``."""
    chars = list(text[start:end])
    for s in merged:
        for i in range(max(start, s.start), min(end, s.end)):
            chars[i - start] = "█"
    return "".join(chars)


def _lines(value: str) -> list[str]:
    return [line.strip(" ,") for line in value.splitlines() if len(line.strip(" ,")) >= 2]


def false_hits_per_1000_words(units: Sequence[tuple[str, Sequence[Span]]]) -> tuple[float, Counter[str], int]:
    """On PII-free text: replaced spans per 1,000 words, by type, and the number of words."""
    words = sum(len(text.split()) for text, _ in units)
    by_type: Counter[str] = Counter(s.entity for _, spans in units for s in merge(spans))
    return (1000 * sum(by_type.values()) / words if words else 0.0), by_type, words
