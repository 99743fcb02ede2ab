"""Names across a batch: which detected names are spread to their other occurrences, and which
one-word "names" are words of the text.

A per-text detector cannot know that "Priya", found once in a greeting, is the same person in a later
paragraph, nor that "Git" opening a sentence is the command used a hundred times around it. These rules
read the whole batch (one run's documents) and work on :class:`~pipelines.spans.Unit` objects.
"""

from __future__ import annotations

import re
from collections import Counter

from pipelines.detectors import PERSON
from pipelines.spans import Span, SpanSource, Unit

_MIN_NAME_PART = 4
#: One word of a name: letters, with apostrophes, hyphens or a dot ("O'Neill", "Smith-Jones", "J.").
_NAME_PART = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]|$))*\.?")
#: A name found in the batch is spread to its other occurrences when a detector found it in at least this
#: share of them, or when it occurs at most ``_ALWAYS_SPREAD`` times (chosen on the development sets).
_MIN_DETECTED_SHARE = 0.25
_ALWAYS_SPREAD = 3


def is_label(name: str, batch_text: str) -> bool:
    """Whether a word is used as a field label somewhere in the batch ("Customer:", "Address:")."""
    return " " not in name and f"{name}:" in batch_text


def drop_common_words(units: list[Unit], everything: str) -> None:
    """Drop one-word PERSON spans whose word the batch mostly uses otherwise.

    A one-word name is kept when a detector found it in at least ``_MIN_DETECTED_SHARE`` of the word's
    occurrences in the batch, whatever their case, or when it occurs at most ``_ALWAYS_SPREAD`` times.
    "Git" beside hundreds of "git" commands, or "daemon", is a word of the text, not a person.
    """
    single = [
        (unit, sp)
        for unit in units
        for sp in unit.spans
        if sp.entity == PERSON
        and sp.source != SpanSource.PERSON_COLUMN
        and " " not in unit.text[sp.start : sp.end].strip()
    ]
    words = {unit.text[sp.start : sp.end].strip().lower() for unit, sp in single} - {""}
    if not words:
        return
    occurrences = Counter(m.group().lower() for m in words_pattern(words, re.IGNORECASE).finditer(everything))
    detected = Counter(unit.text[sp.start : sp.end].strip().lower() for unit, sp in single)
    dropped = {
        w
        for w in words
        if occurrences[w] > _ALWAYS_SPREAD and detected[w] < _MIN_DETECTED_SHARE * occurrences[w]
    }
    doomed = {id(sp) for unit, sp in single if unit.text[sp.start : sp.end].strip().lower() in dropped}
    if doomed:
        for unit in units:
            unit.spans[:] = [sp for sp in unit.spans if id(sp) not in doomed]


def spreadable(names: set[str], units: list[Unit], everything: str) -> set[str]:
    """The names seen by a detector in at least ``_MIN_DETECTED_SHARE`` of their occurrences in the
    batch. A person's name is found directly in much of its text; a project or product name that a
    detector once took for part of a person ("Debian" in "Debian Almquist Shell") recurs far more often
    than it is detected, and is not spread."""
    if not names:
        return names
    pattern = words_pattern(names)
    occurrences = Counter(m.group() for m in pattern.finditer(everything))
    detected: Counter[str] = Counter()
    for unit in units:
        for sp in unit.spans:
            if sp.entity == PERSON and sp.source != SpanSource.PERSON_COLUMN:
                detected.update({m.group() for m in pattern.finditer(unit.text, sp.start, sp.end)})
    return {
        n
        for n in names
        if occurrences[n] <= _ALWAYS_SPREAD or detected[n] >= _MIN_DETECTED_SHARE * occurrences[n]
    }


def confirmed_names(spans: list[Span]) -> list[Span]:
    """Names sure enough to be looked for everywhere else: found by the tagger, or by spaCy where the
    tagger also saw a name. A product or command name that spaCy alone takes for a person is not
    spread through the batch."""
    tagged = [s for s in spans if s.entity == PERSON and s.source == SpanSource.TAGGER]
    return tagged + [
        s
        for s in spans
        if s.entity == PERSON
        and s.source == SpanSource.SPACY
        and any(t.start < s.end and s.start < t.end for t in tagged)
    ]


def name_forms(span: str) -> set[str]:
    """A detected name and, for a multi-word name, its longer parts ("Priya Raman" -> also "Priya")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    if "\n" in span.strip():
        return set()  # a name does not run over two lines: one side of it is something else
    span = " ".join(span.split())
    parts = span.split(" ")
    if len(parts) < 2:
        return set()  # single capitalised words are too often false positives to propagate
    if not all(_NAME_PART.fullmatch(p) for p in parts):
        return set()  # "Debian 8 Jessie", "Figure 3": a name has no digits or symbols
    forms = {span}
    forms.update(
        p for p in parts if len(p) >= _MIN_NAME_PART and p[0].isupper() and p.lower() not in STOP_WORDS
    )
    return forms


def words_pattern(words: set[str], flags: int = 0) -> re.Pattern[str]:
    """Every occurrence of one of ``words`` as a whole word (not inside a placeholder)."""
    return re.compile(
        r"(?<![\w<])(?:"
        + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        + r")(?![\w>])",
        flags,
    )
