"""Names across a batch: which detected names are spread to their other occurrences, and which
one-word "names" are words of the text.

A per-text detector cannot know that "Priya", found once in a greeting, is the same person in a later
paragraph, nor that "Git" opening a sentence is the command used a hundred times around it. These rules
read the whole batch (one run's documents) and work on :class:`~pipelines.spans.Unit` objects.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

from pipelines.spans import Span, SpanSource, Unit

PERSON = "PERSON"
#: One word of a personal name: a capital then lower-case letters (with an apostrophe or hyphen part:
#: "O'Neill", "Smith-Jones"), or an initial.
_NAME_WORD = re.compile(r"(?:[^\W\d_][.]|[^\W\d_][^\W\d_A-Z]+(?:['-][^\W\d_][^\W\d_A-Z]+)*)")

_MIN_NAME_PART = 4
#: One word of a name: letters, with apostrophes, hyphens or a dot ("O'Neill", "Smith-Jones", "J.").
_NAME_PART = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]|$))*\.?")
#: A name found in the batch is spread to its other occurrences when a detector found it in at least this
#: share of them, or when it occurs at most ``_ALWAYS_SPREAD`` times (chosen on the development sets).
_MIN_DETECTED_SHARE = 0.25
_ALWAYS_SPREAD = 3
#: A one-word name the batch mentions this often must have been found in ``_MIN_FREQUENT_SHARE`` of its
#: mentions: the models find a person's name in most of its mentions, while a product named as the
#: subject of a sentence ("Exim sends ...") is read as a person in a minority of them.
_FREQUENT = 20
_MIN_FREQUENT_SHARE = 0.5


#: What may stand between two parts of one name: a middle initial ("Janice A Richards", "D. Leleu") and
#: surname particles ("Timo A van Laon", "Coreth von und zu Coredo"), at least one of them.
_PARTICLES = r"(?:van|von|und|zu|de|der|den|da|di|du|le|la|del|della|ter|ten)"
_SURNAME_PARTICLES = r"(?:van|von|de|der|den|ter|ten)"
_INITIAL = r"[A-Z]\.?"
_NAME_GAP = re.compile(rf"[ ]+(?:(?:{_INITIAL}|{_PARTICLES})[ ]+)+")
#: A name part next to a name: an initial and a capitalised word after it, or a capitalised word and
#: an initial before it ("Damian" found, "Damian R Parsons" meant).
_WORD = r"[A-ZÀ-ÖØ-Þ][^\W\d_A-Z]+(?:[-'’][A-ZÀ-ÖØ-Þ][^\W\d_A-Z]+)*"
_INITIAL_AFTER = re.compile(rf"[ ]+{_INITIAL}[ ]+(?:{_PARTICLES}[ ]+)*{_WORD}(?!\w)")
_INITIAL_BEFORE = re.compile(rf"(?<![\w.])(?:{_WORD}[ ]+){_INITIAL}[ ]+(?:{_PARTICLES}[ ]+)*$")
_PARTICLES_BEFORE = re.compile(rf"(?<![\w.])(?:{_SURNAME_PARTICLES}[ ]+)+$")
#: A name found up to its middle initial ("Clive I" of "Clive I Perry"): the initial needs its surname.
_ENDS_WITH_INITIAL = re.compile(rf"\S[ ]+{_INITIAL}$")
_SURNAME_AFTER = re.compile(rf"[ ]+(?:{_PARTICLES}[ ]+)*{_WORD}(?!\w)")
#: A capitalised word right after or before a one-word name: its surname or first name ("Damian"
#: found, "Damian Parsons" meant), unless it is a greeting, a title, a label or a function word.
_WORD_AFTER = re.compile(rf"[ ]({_WORD})(?!\w|-|['’](?!s\b))")  # "Boyd's": Boyd
_WORD_BEFORE = re.compile(rf"(?<![\w'’.-])({_WORD})[ ]$")
_NOT_NAME_WORDS = frozenset(
    (  # noqa: SIM905  (a list of words reads better as words)
        "dear hi hello hey thanks thank cheers regards best yours sincerely mr mrs ms miss mx dr prof sir "
        "madam herr frau mme mlle monsieur madame rev agent customer user client caller signed from to cc "
        "attn team dept department ask call contact contacted met meet please note see"
    ).split()
)


def join_name_parts(text: str, spans: list[Span]) -> list[Span]:
    """Spans that make the detected parts of a name one name: two parts with only an initial or
    particles between them, and an initial with its surname or first name beside a part. The small
    models often find "Janice" and "Richards" of "Janice A Richards" but not the initial."""
    from spacy.lang.en.stop_words import STOP_WORDS

    people = sorted((s for s in spans if s.entity == PERSON), key=lambda s: s.start)
    out = []
    for a, b in itertools.pairwise(people):
        if a.end < b.start and (text[a.end : b.start] == " " or _NAME_GAP.fullmatch(text, a.end, b.start)):
            out.append(Span(a.start, b.end, PERSON, min(a.score, b.score), SpanSource.NAME_PARTS))
    for s in people:
        if "\n" in text[s.start : s.end]:
            continue
        after = _INITIAL_AFTER.match(text, s.end)
        if after is None and _ENDS_WITH_INITIAL.search(text, s.start, s.end):
            after = _SURNAME_AFTER.match(text, s.end)
        before = _INITIAL_BEFORE.search(text, max(0, s.start - 60), s.start) or _PARTICLES_BEFORE.search(
            text, max(0, s.start - 30), s.start
        )
        word_joined = " " not in text[s.start : s.end] and not (before or after)
        if word_joined:
            # a one-word name: its other part, if a capitalised word that is no greeting or label sits beside it
            word_after = _WORD_AFTER.match(text, s.end)
            word_before = _WORD_BEFORE.search(text, max(0, s.start - 40), s.start)
            after = word_after if word_after and _could_be_a_name(word_after.group(1), STOP_WORDS) else None
            before = (
                word_before if word_before and _could_be_a_name(word_before.group(1), STOP_WORDS) else None
            )
        start, end = (before.start() if before else s.start), (after.end() if after else s.end)
        if (start, end) != (s.start, s.end):
            # joined by an initial or particles, a name is as sure as its part (and may be spread)
            source = SpanSource.NAME_PARTS if word_joined else s.source
            out.append(Span(start, end, PERSON, s.score, source))
    return out


def _could_be_a_name(word: str, stop_words: set[str]) -> bool:
    return word.lower() not in stop_words and word.lower() not in _NOT_NAME_WORDS


def lines_of(text: str, span: Span) -> list[Span]:
    """A span cut at line breaks, one part per non-blank line."""
    parts, start = [], span.start
    for line in text[span.start : span.end].split("\n"):
        end = start + len(line)
        if line.strip():
            lead = len(line) - len(line.lstrip())
            parts.append(Span(start + lead, start + len(line.rstrip()), span.entity, span.score, span.source))
        start = end + 1
    return parts


def looks_like_a_name(text: str, span: Span) -> bool:
    """Whether a PERSON span only spaCy found reads as a personal name rather than a heading, a
    command or an identifier: capitalised words of letters, not a lone word opening a line."""
    value = text[span.start : span.end]
    words = value.split()
    if not words or not all(_NAME_WORD.fullmatch(w) and w[0].isupper() for w in words):
        return False
    if len(words) == 1:
        line_start = text.rfind("\n", 0, span.start) + 1
        if not text[line_start : span.start].strip() or text[span.end : span.end + 1] == ":":
            return False
    return True


_PARTICLE = re.compile(_PARTICLES)


def without_lower_case_tail(text: str, span: Span) -> Span:
    """A PERSON span without the lower-case words it ends with ("Exim behaves": "Exim"), unless
    they are surname particles ("Zoë West, van") or the text is written without capitals. Names are
    written with capitals; a verb after a product name read as a person is not part of it."""
    if span.entity != PERSON or written_without_capitals(text):
        return span
    value = text[span.start : span.end]
    words = value.split(" ")
    keep = len(words)
    while keep > 1 and words[keep - 1].isalpha() and words[keep - 1].islower():
        keep -= 1
    if keep == len(words) or all(_PARTICLE.fullmatch(w) for w in words[keep:]):
        return span
    return Span(span.start, span.start + len(" ".join(words[:keep])), span.entity, span.score, span.source)


#: Digits or code punctuation: an identifier ("gitignore(5)", "get_id"), not a name.
_CODE_MARKS = re.compile(r"[\d_()/\\=<>{}\[\]@#$%&*+|~`]")
#: What may come before a capital inside a name ("McDonald", "MacArthur", "DeShawn", "FitzGerald").
_NAME_PREFIXES = frozenset({"Mc", "Mac", "De", "Di", "Da", "Du", "Le", "La", "Van", "Von", "Fitz", "O", "St"})


def shaped_like_a_name(text: str, span: Span) -> bool:
    """Whether a PERSON span has the shape of a written name rather than of an identifier or a word:
    no digits or code punctuation, no capital after lower-case letters inside a word ("pushRemote",
    "LikeThis") but after a name prefix, and a capital somewhere unless the text around it is written
    without capitals (a lower-case chat message names people in lower case; technical prose that has
    capitals does not: "memset", "waldir", "orphan" are not people)."""
    value = text[span.start : span.end]
    if _CODE_MARKS.search(value) or any(_camel(word) for word in value.split()):
        return False
    return any(c.isupper() for c in value) or written_without_capitals(text)


def written_without_capitals(text: str) -> bool:
    """Whether ``text`` is written (nearly) without capitals, as a lower-case chat message is."""
    letters = sum(c.isalpha() for c in text)
    return letters > 0 and sum(c.isupper() for c in text) < 0.005 * letters


def _camel(word: str) -> bool:
    inner = next((i for i in range(1, len(word)) if word[i].isupper() and word[i - 1].islower()), None)
    return inner is not None and word[:inner].lstrip("'’") not in _NAME_PREFIXES


def is_label(name: str, batch_text: str) -> bool:
    """Whether a word is used as a field label somewhere in the batch ("Customer:", "Address:")."""
    return " " not in name and f"{name}:" in batch_text


def drop_unlikely_names(units: list[Unit], everything: str) -> None:
    """Drop the PERSON spans of ``units`` that the batch's own text shows are words, not names
    (:func:`drop_common_words`, :func:`drop_lower_case_terms`)."""
    drop_common_words(units, everything)
    drop_lower_case_terms(units, everything)


def drop_common_words(units: list[Unit], everything: str) -> None:
    """Drop one-word PERSON spans whose word the batch mostly uses otherwise.

    A one-word name is kept when a detector found it in at least ``_MIN_DETECTED_SHARE`` of the word's
    occurrences in the batch, whatever their case (``_MIN_FREQUENT_SHARE`` of them for a word with at
    least ``_FREQUENT``), or when it occurs at most ``_ALWAYS_SPREAD`` times.
    "Git" beside hundreds of "git" commands, or "daemon", is a word of the text, not a person.
    """
    single = []  # (unit, span, where its word starts, the word in lower case)
    for unit in units:
        for sp in unit.spans:
            value = unit.text[sp.start : sp.end]
            word = value.strip()
            if sp.entity == PERSON and sp.source != SpanSource.PERSON_COLUMN and word and " " not in word:
                single.append((unit, sp, sp.start + len(value) - len(value.lstrip()), word.lower()))
    words = {word for *_, word in single}
    if not words:
        return
    occurrences = Counter(m.group().lower() for m in words_pattern(words, re.IGNORECASE).finditer(everything))
    # an occurrence two detectors found counts once
    detected = Counter(word for _, _, word in {(id(unit), start, word) for unit, _, start, word in single})
    dropped = {
        w
        for w in words
        if occurrences[w] > _ALWAYS_SPREAD
        and detected[w]
        < (_MIN_FREQUENT_SHARE if occurrences[w] >= _FREQUENT else _MIN_DETECTED_SHARE) * occurrences[w]
    }
    doomed = {id(sp) for _, sp, _, word in single if word in dropped}
    # a name joined from parts is dropped with the word it was built on
    doomed |= {
        id(sp)
        for unit in units
        for sp in unit.spans
        if sp.source == SpanSource.NAME_PARTS and dropped & set(unit.text[sp.start : sp.end].lower().split())
    }
    if doomed:
        for unit in units:
            unit.spans[:] = [sp for sp in unit.spans if id(sp) not in doomed]


#: A word written in lower case, standing alone: not part of an e-mail address, a host or a path
#: ("john.smith@", "/home/anna"), where a person's name is written in lower case too.
_LOWER_WORD = re.compile(r"(?<![\w@./\\])[^\W\d_A-Z]+(?![\w@/\\]|[.][^\W\d_])")


#: Name sources a batch's lower-case words may overrule, unless the tagger read a name there too:
#: spaCy's NER and the given-name list.
_UNSURE = frozenset({SpanSource.SPACY, SpanSource.GIVEN_NAME})


def drop_lower_case_terms(units: list[Unit], everything: str) -> None:
    """Drop PERSON spans only spaCy or the given-name list saw (no tagger name overlaps them) whose
    every word the batch also writes in lower case, standing alone.

    A person's name is written with capitals, but a product, command or heading ("Emacs" beside
    ``emacs``, "Manual Page" beside "page" and "manual") is often written in lower case elsewhere in
    the same text. A name the tagger also read is kept whatever the batch writes.
    """
    lower = {m.group() for m in _LOWER_WORD.finditer(everything)}
    if not lower:
        return
    for unit in units:
        tagged = [t for t in unit.spans if t.entity == PERSON and t.source == SpanSource.TAGGER]
        unit.spans[:] = [
            sp
            for sp in unit.spans
            if not (
                sp.entity == PERSON
                and sp.source in _UNSURE
                and not any(t.start < sp.end and sp.start < t.end for t in tagged)
                and _written_in_lower_case(unit.text[sp.start : sp.end], lower)
            )
        ]


def _written_in_lower_case(name: str, lower: set[str]) -> bool:
    words = [w for w in re.split(r"[^\w]+", name) if w]
    return bool(words) and all(w.lower() in lower and not w.islower() for w in words)


def spreadable(names: set[str], units: list[Unit], everything: str) -> set[str]:
    """The names seen by a detector in at least ``_MIN_DETECTED_SHARE`` of their occurrences in the
    batch. A person's name is found directly in much of its text; a project or product name that a
    detector once took for part of a person ("Debian" in "Debian Almquist Shell") recurs far more often
    than it is detected, and is not spread."""
    if not names:
        return names
    pattern = words_pattern(names)
    occurrences = Counter(m.group() for m in pattern.finditer(everything))
    found_at = {  # an occurrence two detectors found counts once
        (m.start(), m.group(), id(unit))
        for unit in units
        for sp in unit.spans
        if sp.entity == PERSON and sp.source != SpanSource.PERSON_COLUMN
        for m in pattern.finditer(unit.text, sp.start, sp.end)
    }
    detected = Counter(name for _, name, _ in found_at)
    return {
        n
        for n in names
        if occurrences[n] <= _ALWAYS_SPREAD or detected[n] >= _MIN_DETECTED_SHARE * occurrences[n]
    }


def spread_names(names: set[str], units: list[Unit]) -> None:
    """Add a PERSON span at every occurrence of ``names`` in ``units``; a name spread as one word takes
    the rest of the name beside it ("Damian" found elsewhere, "Damian Parsons" here)."""
    if not names:
        return
    pattern = words_pattern(names)
    for unit in units:
        spread = [
            Span(m.start(), m.end(), PERSON, 1.0, SpanSource.PROPAGATION) for m in pattern.finditer(unit.text)
        ]
        if spread:
            unit.spans.extend(spread + join_name_parts(unit.text, spread))


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
