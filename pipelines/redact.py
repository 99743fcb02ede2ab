"""PII redaction: every value of a configured entity type becomes ``<ENTITY_TYPE>``.

Detection (:mod:`pipelines.detectors`) turns each text into :class:`~pipelines.spans.Span` objects;
this module adds what a per-text detector cannot know (table columns of names, names found
elsewhere in the batch) and replaces the spans. Only counts by entity type leave it, never values.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from groundwork.enums import FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.records import ParsedElement
from groundwork.settings import RedactionConfig
from pipelines.detectors import PERSON, Detector
from pipelines.names import (
    confirmed_names,
    drop_unlikely_names,
    is_label,
    name_forms,
    spread_names,
    spreadable,
)
from pipelines.spans import Span, SpanSource, Unit, apply

#: Where each element of a batch went: ("text", element, unit) or ("table", element, header units, rows).
Layout = list[list[tuple[Any, ...]]]

#: One document's redacted elements and its counts by entity type.
Redacted = tuple[list[ParsedElement], Counter[str]]


class Redactor:
    """Finds and replaces PII in text with typed placeholders such as ``<PERSON>``.

    :meth:`redact_documents` adds two safeguards on top of the detectors, because a small NER model
    misses names out of context: table columns whose header names a person are redacted whole, and
    every multi-word name found anywhere in the batch is redacted wherever else it appears.
    An already-loaded ``detector`` of the same detection settings may be shared (other limits).
    """

    def __init__(self, config: RedactionConfig, *, detector: Detector | None = None) -> None:
        self.config = config
        self._detector = detector
        self._spent: dict[int, float] = {}
        #: Detection seconds charged to each document of the last :meth:`redact_batch` call: what
        #: ``redaction.timeout_seconds`` is compared with (0 for a document refused for its size).
        self.document_seconds: list[float] = []

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
        return self._detect(texts, None)[0]

    def _detect(self, texts: list[str], owners: Sequence[int] | None) -> tuple[list[list[Span]], set[int]]:
        """:meth:`detect`; with ``owners`` (the document of each text), under the time limit.

        Timed, windows go to the detectors in slices of about ``_WINDOW_CHARS`` characters and each
        slice's time is charged to its documents by size. A document past ``redaction.timeout_seconds``
        is not read further; the set of those documents is returned beside the spans.
        """
        pieces: list[str] = []
        placed: list[tuple[int, int]] = []
        for i, text in enumerate(texts):
            for start, end in windows(text):
                pieces.append(text[start:end])
                placed.append((i, start))
        over: set[int] = set()
        if owners is None:
            detected = self.detector.detect(pieces) if pieces else []
        else:
            detected, over = self._detect_timed(pieces, [owners[i] for i, _ in placed])
        found: list[list[Span]] = [[] for _ in texts]
        for (i, start), spans in zip(placed, detected, strict=True):
            found[i].extend(Span(s.start + start, s.end + start, s.entity, s.score, s.source) for s in spans)
        return found, over

    def _detect_timed(self, pieces: list[str], owners: list[int]) -> tuple[list[list[Span]], set[int]]:
        limit = self.config.timeout_seconds
        spent: dict[int, float] = {}
        pace: dict[int, float] = {}
        over: set[int] = set()
        out: list[list[Span]] = [[] for _ in pieces]
        start = 0
        while start < len(pieces):
            end, size = start, 0
            while end < len(pieces) and (end == start or size + len(pieces[end]) <= _WINDOW_CHARS):
                size += len(pieces[end])
                end += 1
            # A document whose next window would take it past its limit at its pace so far stops now.
            ahead = {owners[k]: pace.get(owners[k], 0.0) * len(pieces[k]) for k in range(start, end)}
            over |= {o for o, cost in ahead.items() if spent.get(o, 0.0) + cost > limit}
            todo = [k for k in range(start, end) if owners[k] not in over]
            if not todo:
                start = end
                continue
            began = time.monotonic()
            for k, spans in zip(todo, self.detector.detect([pieces[k] for k in todo]), strict=True):
                out[k] = spans
            elapsed = time.monotonic() - began
            share = sum(len(pieces[k]) for k in todo) or 1
            for k in todo:
                spent[owners[k]] = spent.get(owners[k], 0.0) + elapsed * len(pieces[k]) / share
                pace[owners[k]] = elapsed / share  # seconds per character in this slice
            over |= {o for o, t in spent.items() if t > limit}
            start = end
        self._spent = spent
        return out, over

    def analyze_documents(self, documents: Sequence[Sequence[ParsedElement]]) -> list[list[Unit]]:
        """Every text unit of every document (element texts, table headers and cells) with its spans.

        Names found in one document are looked for in all of them (the batch is one run's documents).
        """
        layout, units, _ = self._analyze(documents)
        return [[units[i] for i in _unit_ids(doc)] for doc in layout]

    def _analyze(
        self, documents: Sequence[Sequence[ParsedElement]], *, timed: bool = False
    ) -> tuple[Layout, list[Unit], set[int]]:
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
        owner_of = {i: n for n, doc in enumerate(layout) for i in _unit_ids(doc)}
        owners = [owner_of[group[0]] for group in groups] + [owner_of[i] for i in singles]
        detected, over = self._detect(texts + [units[i].text for i in singles], owners if timed else None)
        for group, found in zip(groups, detected, strict=False):
            _spread(found, group, units)
        for i, found in zip(singles, detected[len(groups) :], strict=True):
            units[i].spans.extend(found)
        everything = "\n".join(u.text for u in units)
        drop_unlikely_names(units, everything)
        for unit in units:
            names.update(
                form
                for sp in confirmed_names(unit.spans)
                for form in name_forms(unit.text[sp.start : sp.end])
            )
        spread_names(spreadable({n for n in names if not is_label(n, everything)}, units, everything), units)
        return layout, units, over

    def redact_batch(
        self, documents: Sequence[Sequence[ParsedElement]], residencies: Sequence[str | None] | None = None
    ) -> list[Redacted | DocumentError]:
        """:meth:`redact_documents` under the per-document limits: each document over
        ``redaction.max_document_chars`` of text, or past ``redaction.timeout_seconds`` of detection,
        gets a :class:`DocumentError` in its place and the others are redacted without it."""
        limit = self.config.max_document_chars
        errors: dict[int, DocumentError] = {}
        for n, elements in enumerate(documents):
            chars = sum(len(el.text) + sum(len(c) for row in el.cells or () for c in row) for el in elements)
            if chars > limit:
                errors[n] = DocumentError(
                    f"{chars:,} characters of text, above the {limit:,} limit (redaction.max_document_chars)",
                    stage=Stage.REDACT,
                    reason=FailureReason.TOO_LARGE,
                )
        kept = [n for n in range(len(documents)) if n not in errors]
        self._spent = {}
        results, over = self._redact(
            [documents[n] for n in kept], [residencies[n] for n in kept] if residencies else None, timed=True
        )
        for k in over:
            errors[kept[k]] = DocumentError(
                f"redaction stopped after the {self.config.timeout_seconds:g}-second limit (redaction.timeout_seconds)",
                stage=Stage.REDACT,
                reason=FailureReason.TIME_LIMIT,
            )
        self.document_seconds = [0.0] * len(documents)
        for k, n in enumerate(kept):
            self.document_seconds[n] = self._spent.get(k, 0.0)
        by_doc: dict[int, Redacted | DocumentError] = dict(zip(kept, results, strict=True))
        by_doc.update(errors)
        return [by_doc[n] for n in range(len(documents))]

    def redact_documents(
        self, documents: Sequence[Sequence[ParsedElement]], residencies: Sequence[str | None] | None = None
    ) -> list[Redacted]:
        """Redact several documents' elements together; returns redacted elements and counts per document.

        ``residencies`` (one per document) selects the identifiers of ``entities_by_residency`` that
        apply to each; a document without one gets all of them. Tables come back as one
        ``header: value`` line per row, without their cells.
        """
        return self._redact(documents, residencies, timed=False)[0]

    def _redact(
        self,
        documents: Sequence[Sequence[ParsedElement]],
        residencies: Sequence[str | None] | None,
        *,
        timed: bool,
    ) -> tuple[list[Redacted], set[int]]:
        layout, units, over = self._analyze(documents, timed=timed)
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
        return result, over

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
#: ``_WINDOW_OVERLAP`` so a value on a boundary is whole in one of them. The time limit is checked
#: between slices of this size, so it also bounds how far past the limit a document can run (about
#: a second and a half of detection on one core).
_WINDOW_CHARS = 20_000
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
