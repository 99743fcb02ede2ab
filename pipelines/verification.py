"""Re-checks of what ingest stored, as plain functions the asset checks call: redaction run again
over stored (already redacted) chunks, and stored documents compared with the current policy.

No Dagster and no SQL: the orchestration layer reads the rows and reports the results.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from groundwork.records import DocumentRef, ParsedElement
from groundwork.settings import GroundworkConfig
from pipelines.policy import PolicyError, governance_for
from pipelines.redact import Redactor
from pipelines.spans import Span, SpanSource, merge

#: A placeholder redaction wrote (``<PERSON>``, ``<EMAIL_ADDRESS>`` ...).
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")

#: Span sources that guess from context (the NER models, name propagation, address joining), as
#: opposed to Presidio's pattern recognizers (formats, checksums, context words).
_CONTEXTUAL = frozenset(s.value for s in SpanSource)


def rescan(redactor: Redactor, chunks: Sequence[tuple[str, str]], region: str) -> dict[str, list[Span]]:
    """What ``redactor`` would redact now in already-redacted chunks: the (merged) spans, by chunk id.

    The chunks are analysed together, as one ingest batch is (names found in one are looked for in
    the others), with the identifiers of ``redaction.entities_by_residency`` that apply to
    ``region``. A span made only of placeholders and the punctuation and spaces around them is no
    finding: what it covers is already replaced.
    """
    if not chunks:
        return {}
    config = redactor.config
    applies = set(config.entities) | set(config.entities_by_residency.get(region, ()))
    foreign = set().union(*config.entities_by_residency.values()) - applies
    analysed = redactor.analyze_documents([[ParsedElement("NarrativeText", text)] for _, text in chunks])
    findings: dict[str, list[Span]] = {}
    for (chunk_id, _), units in zip(chunks, analysed, strict=True):
        found = [
            span
            for unit in units
            for span in merge([s for s in unit.spans if s.entity not in foreign])
            if _beyond_placeholders(unit.text, span)
        ]
        if found:
            findings[chunk_id] = found
    return findings


def contextual(span: Span) -> bool:
    """Whether a finding comes from a detector that guesses from context, not from a pattern."""
    return span.source in _CONTEXTUAL


def _beyond_placeholders(text: str, span: Span) -> bool:
    """Whether ``span`` covers a letter or digit outside the placeholders of ``text``."""
    rest = _PLACEHOLDER.sub(lambda m: " " * len(m.group()), text[span.start : span.end])
    return any(c.isalnum() for c in rest)


def residency_violations(
    config: GroundworkConfig, region: str, documents: Iterable[tuple[str, str, str]]
) -> dict[str, Counter[str]]:
    """Stored documents of ``region`` that the current policy would not keep there, by source and reason.

    ``documents`` are (source, source id, residency). Reasons: ``other_residency`` (the row says
    another region), ``source_removed`` (no such source in the config), ``policy_moved`` (its
    source's policy now places it in another region), ``policy_no_residency`` (no region at all).
    A policy that refuses access but names this region is no residency violation.
    """
    sources = {s.name: s for s in config.sources}
    out: dict[str, Counter[str]] = {}
    for source_name, source_id, residency in documents:
        source = sources.get(source_name)
        reason = None
        if residency != region:
            reason = "other_residency"
        elif source is None:
            reason = "source_removed"
        else:
            ref = DocumentRef(source_name, source_id, uri="", version="", size_bytes=0)
            try:
                placed = governance_for(source, ref).residency
            except PolicyError as exc:
                placed = exc.residency
            if placed != region:
                reason = "policy_moved" if placed else "policy_no_residency"
        if reason is not None:
            out.setdefault(source_name, Counter())[reason] += 1
    return out
