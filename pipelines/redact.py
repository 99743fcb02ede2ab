"""PII redaction: every value of a configured entity type becomes ``<ENTITY_TYPE>``.

Detection (:mod:`pipelines.detectors`) turns each text into :class:`~pipelines.spans.Span` objects;
this module adds what a per-text detector cannot know (table columns of names, names found
elsewhere in the batch) and replaces the spans. Only counts by entity type leave it, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from groundwork.records import ParsedElement
from groundwork.settings import RedactionConfig
from pipelines.detectors import PERSON, Detector
from pipelines.names import (
    confirmed_names,
    drop_common_words,
    is_label,
    name_forms,
    spreadable,
    words_pattern,
)
from pipelines.spans import Span, SpanSource, Unit, apply

#: Where each element of a batch went: ("text", element, unit) or ("table", element, header units, rows).
Layout = list[list[tuple[Any, ...]]]


class Redactor:
    """Finds and replaces PII in text with typed placeholders such as ``<PERSON>``.

    :meth:`redact_documents` adds two safeguards on top of the detectors, because a small NER model
    misses names out of context: table columns whose header names a person are redacted whole, and
    every multi-word name found anywhere in the batch is redacted wherever else it appears.
    """

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self._detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        """The detectors, built on first use (loading spaCy takes a few seconds)."""
        if self._detector is None:
            self._detector = Detector(self.config)
        return self._detector

    def detect(self, texts: list[str]) -> list[list[Span]]:
        """The spans every detector finds in each text (no cross-text safeguards).

        A text longer than ``_WINDOW_CHARS`` (a log or an export on one line) is read in overlapping
        windows cut at whitespace, so no detector sees more than a window at once: spaCy refuses texts
        over a million characters, and memory stays bounded whatever the document.
        """
        if not texts:
            return []
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []
        for i, text in enumerate(texts):
            for start, end in windows(text):
                pieces.append(text[start:end])
                owners.append((i, start))
        found: list[list[Span]] = [[] for _ in texts]
        for (i, start), spans in zip(owners, self.detector.detect(pieces), strict=True):
            found[i].extend(Span(s.start + start, s.end + start, s.entity, s.score, s.source) for s in spans)
        return found

    def analyze_documents(self, documents: Sequence[Sequence[ParsedElement]]) -> list[list[Unit]]:
        """Every text unit of every document (element texts, table headers and cells) with its spans.

        Names found in one document are looked for in all of them (the batch is one run's documents).
        """
        layout, units = self._analyze(documents)
        return [[units[i] for i in _unit_ids(doc)] for doc in layout]

    def _analyze(self, documents: Sequence[Sequence[ParsedElement]]) -> tuple[Layout, list[Unit]]:
        person_columns = {_norm(c) for c in self.config.person_columns}
        units: list[Unit] = []
        layout: list[list[tuple[Any, ...]]] = []
        names: set[str] = set()
        for elements in documents:
            doc_layout: list[tuple[Any, ...]] = []
            for el in elements:
                if el.cells and len(el.cells) > 1:
                    headers = el.cells[0]
                    name_cols = {i for i, h in enumerate(headers) if _norm(h) in person_columns}
                    header_units = [_add(units, h) for h in headers]
                    rows = []
                    for row in el.cells[1:]:
                        cells = []
                        for i, value in enumerate(row):
                            idx = _add(units, value)
                            if i in name_cols and value.strip():
                                names.add(value.strip())
                                units[idx].spans.append(
                                    Span(0, len(value), PERSON, 1.0, SpanSource.PERSON_COLUMN)
                                )
                            cells.append(idx)
                        rows.append(cells)
                    doc_layout.append(("table", el, header_units, rows))
                else:
                    doc_layout.append(("text", el, _add(units, el.text)))
            layout.append(doc_layout)
        # Element texts are detected together, a document's consecutive elements joined by newlines, so a
        # name in a greeting or an address over several lines is seen in its context; table headers
        # and cells are detected on their own.
        groups = [g for doc in layout for g in _text_groups(doc, units)]
        singles = [
            i
            for doc in layout
            for entry in doc
            if entry[0] == "table"
            for i in (*entry[2], *(c for row in entry[3] for c in row))
            if not units[i].spans and units[i].text.strip()
        ]
        texts = ["\n".join(units[i].text for i in group) for group in groups]
        detected = self.detect(texts + [units[i].text for i in singles])
        for group, found in zip(groups, detected, strict=False):
            _spread(found, group, units)
        for i, found in zip(singles, detected[len(groups) :], strict=True):
            units[i].spans.extend(found)
        everything = "\n".join(u.text for u in units)
        drop_common_words(units, everything)
        for unit in units:
            names.update(
                form
                for sp in confirmed_names(unit.spans)
                for form in name_forms(unit.text[sp.start : sp.end])
            )
        names = spreadable({n for n in names if not is_label(n, everything)}, units, everything)
        if names:
            pattern = words_pattern(names)
            for unit in units:
                unit.spans.extend(
                    Span(m.start(), m.end(), PERSON, 1.0, SpanSource.PROPAGATION)
                    for m in pattern.finditer(unit.text)
                )
        return layout, units

    def redact_documents(
        self, documents: Sequence[Sequence[ParsedElement]], residencies: Sequence[str | None] | None = None
    ) -> list[tuple[list[ParsedElement], Counter[str]]]:
        """Redact several documents' elements together; returns redacted elements and counts per document.

        ``residencies`` (one per document) selects the identifiers of ``entities_by_residency`` that
        apply to each; a document without one gets all of them. Tables come back as one
        ``header: value`` line per row, without their cells.
        """
        layout, units = self._analyze(documents)
        result = []
        for n, doc_layout in enumerate(layout):
            self._keep_residency_ids(doc_layout, units, residencies[n] if residencies else None)
            redacted = {i: apply(units[i].text, units[i].spans) for i in _unit_ids(doc_layout)}
            counts: Counter[str] = Counter()
            for _, found in redacted.values():
                counts.update(found)
            out_elements = []
            for entry in doc_layout:
                if entry[0] == "text":
                    _, el, idx = entry
                    out_elements.append(ParsedElement(el.category, redacted[idx][0], el.page_number))
                    continue
                _, el, header_units, rows = entry
                headers = [redacted[i][0] for i in header_units]
                lines = []
                for row in rows:
                    parts = []
                    for col, idx in enumerate(row):
                        value = redacted[idx][0]
                        if value:
                            header = headers[col] if col < len(headers) else f"column {col + 1}"
                            parts.append(f"{header}: {value}")
                    lines.append("; ".join(parts))
                out_elements.append(ParsedElement(el.category, "\n".join(lines), el.page_number))
            result.append((out_elements, counts))
        return result

    def _keep_residency_ids(
        self, doc_layout: list[tuple[Any, ...]], units: list[Unit], residency: str | None
    ) -> None:
        """Drop the spans of identifiers that apply only to other residencies than the document's."""
        if residency is None:
            return
        by_residency = self.config.entities_by_residency
        applies = set(self.config.entities) | set(by_residency.get(residency, ()))
        foreign = set().union(*by_residency.values()) - applies
        if foreign:
            for i in _unit_ids(doc_layout):
                units[i].spans[:] = [s for s in units[i].spans if s.entity not in foreign]

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """Redact one text; returns the redacted text and counts by entity type."""
        [(out, counts)] = self.redact_many([text])
        return out, counts

    def redact_many(self, texts: Iterable[str]) -> list[tuple[str, Counter[str]]]:
        """Redact several texts in one batch (no cross-text safeguards); one (text, counts) per input."""
        texts = list(texts)
        return [apply(text, spans) for text, spans in zip(texts, self.detect(texts), strict=True)]


#: Shapes of identifiers redacted from audited queries even when a detector deems them test values
#: ("QQ 12 34 56 C", "123-45-6789") or lacks the context to be sure: any long run of digits too.
_IDENTIFIER_SHAPES = [
    (re.compile(r"\b[A-Z]{2}[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D]\b"), "<UK_NINO>"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "<US_SSN>"),
    (re.compile(r"(?<![\w>])\+?\d(?:[ ./-]?\d){5,}(?![\w<])"), "<NUMBER>"),
]


def redact_identifiers(text: str) -> str:
    """``text`` with every identifier-shaped value replaced, for records such as the audit of queries."""
    for pattern, placeholder in _IDENTIFIER_SHAPES:
        text = pattern.sub(placeholder, text)
    return text


#: Detectors read at most this many characters at once; consecutive windows overlap by
#: ``_WINDOW_OVERLAP`` so a value on a boundary is whole in one of them.
_WINDOW_CHARS = 50_000
_WINDOW_OVERLAP = 1_000


def windows(text: str, size: int = _WINDOW_CHARS, overlap: int = _WINDOW_OVERLAP) -> list[tuple[int, int]]:
    """``(start, end)`` of overlapping windows of at most ``size`` characters covering ``text``, cut at
    whitespace where there is some near the cut."""
    if len(text) <= size:
        return [(0, len(text))]
    out = []
    start = 0
    while True:
        end = min(len(text), start + size)
        if end < len(text):
            space = max(text.rfind(" ", end - overlap // 2, end), text.rfind("\n", end - overlap // 2, end))
            end = space if space > start else end
        out.append((start, end))
        if end >= len(text):
            return out
        nxt = end - overlap
        space = text.find(" ", nxt, nxt + overlap // 2)
        start = space + 1 if space != -1 else nxt


#: Element texts joined for detection are cut into groups of about this many characters.
_GROUP_CHARS = 20_000


def _text_groups(doc_layout: list[tuple[Any, ...]], units: list[Unit]) -> list[list[int]]:
    """A document's element units in order, cut into groups of at most about ``_GROUP_CHARS``."""
    groups: list[list[int]] = [[]]
    size = 0
    for entry in doc_layout:
        if entry[0] != "text" or not units[entry[2]].text.strip():
            continue
        if size and size + len(units[entry[2]].text) > _GROUP_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(entry[2])
        size += len(units[entry[2]].text) + 1
    return [g for g in groups if g]


def _spread(found: list[Span], group: list[int], units: list[Unit]) -> None:
    """Spans of a group's joined text, cut back into the units they cover."""
    start = 0
    for i in group:
        end = start + len(units[i].text)
        for span in found:
            a, b = max(span.start, start), min(span.end, end)
            if a < b:
                units[i].spans.append(Span(a - start, b - start, span.entity, span.score, span.source))
        start = end + 1


def _unit_ids(doc_layout: list[tuple[Any, ...]]) -> list[int]:
    ids: list[int] = []
    for entry in doc_layout:
        if entry[0] == "text":
            ids.append(entry[2])
        else:
            ids.extend(entry[2])
            ids.extend(i for row in entry[3] for i in row)
    return ids


def _norm(header: str) -> str:
    return " ".join(header.lower().replace("_", " ").split())


def _add(units: list[Unit], text: str) -> int:
    units.append(Unit(text))
    return len(units) - 1
