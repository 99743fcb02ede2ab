"""Dagster asset checks: the data steward's policy, per region index, in the Dagster UI.

- ``chunks_are_governed`` (blocking): every chunk carries this region's residency and an access grant.
- ``no_personal_data_after_redaction`` (not blocking): a random sample of stored chunks, redacted
  again with the configured redaction; anything it would replace now is a finding. An error when a
  pattern recognizer (an e-mail, a card, an IBAN, a phone number ...) finds one, a warning when only
  the contextual detectors do (names, places, addresses: on redacted text these also fire on
  labels and words beside the placeholders, so a finding is a lead to review, not proof).
- ``residency_as_policy_says`` (blocking): every stored document is of this region, and the current
  policy of its source would still place it here; every chunk is of its document's residency.
- ``failures_within_limit`` (warning): at most ``ingest.max_failure_share`` of documents failed.

Each result links to the steward report and says how to follow a chunk's lineage. Metadata holds
counts, entity types, source names and chunk ids, never a value or a chunk's text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import dagster as dg

from orchestration.assets import index_key, report_links
from orchestration.resources import GroundworkResource
from pipelines.verification import contextual, rescan, residency_violations

#: At most this many chunk ids with findings are listed in a check's metadata.
_LISTED_IDS = 20


def _governance_check(region: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=index_key(region), name="chunks_are_governed", blocking=True)
    def chunks_are_governed(groundwork: GroundworkResource) -> dg.AssetCheckResult:
        """Every chunk carries this region's residency and at least one access grant."""
        bad = groundwork.services.index(region).ungoverned_chunks()
        return dg.AssetCheckResult(
            passed=bad == 0, metadata={"ungoverned_chunks": bad, **report_links(groundwork)}
        )

    return chunks_are_governed


def _personal_data_check(region: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=index_key(region), name="no_personal_data_after_redaction")
    def no_personal_data_after_redaction(groundwork: GroundworkResource) -> dg.AssetCheckResult:
        """A random sample of stored chunks (``ingest.rescan_sample_chunks``), redacted again with the
        configured redaction, holds nothing it would replace now (placeholders aside)."""
        services = groundwork.services
        size = services.config.ingest.rescan_sample_chunks
        sample = services.index(region).sample_chunks(size)
        findings = rescan(services.redactor, sample, region) if sample else {}
        spans = [span for found in findings.values() for span in found]
        patterns = sum(not contextual(span) for span in spans)
        listed = sorted(findings)[:_LISTED_IDS]
        return dg.AssetCheckResult(
            passed=not findings,
            severity=dg.AssetCheckSeverity.ERROR if patterns else dg.AssetCheckSeverity.WARN,
            metadata={
                "sampled": len(sample),
                "sample_size": size,
                "chunks_with_findings": len(findings),
                "findings_by_type": dict(sorted(Counter(span.entity for span in spans).items())),
                "findings_by_pattern_recognizers": patterns,
                "findings_by_contextual_detectors": len(spans) - patterns,
                "chunk_ids_with_findings": dg.MetadataValue.json(listed),
                **report_links(groundwork),
            },
            description="re-scan off (ingest.rescan_sample_chunks: 0)"
            if size == 0
            else f"{len(findings)} of {len(sample)} sampled chunks hold values redaction would replace now"
            + (f"; follow one with `groundwork lineage {listed[0]}`" if listed else ""),
        )

    return no_personal_data_after_redaction


def _residency_check(region: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=index_key(region), name="residency_as_policy_says", blocking=True)
    def residency_as_policy_says(groundwork: GroundworkResource) -> dg.AssetCheckResult:
        """Every document here is of this region and its source's current policy would still place
        it here (a source removed from the config counts against it); every chunk is of its
        document's residency."""
        services = groundwork.services
        index = services.index(region)
        documents = index.document_residencies()
        violations = residency_violations(services.config, region, documents)
        chunks = index.chunk_residency_mismatches()
        by_reason: Counter[str] = Counter()
        for counts in violations.values():
            by_reason.update(counts)
        total = sum(by_reason.values())
        return dg.AssetCheckResult(
            passed=total == 0 and not chunks,
            metadata={
                "documents": len(documents),
                "documents_violating": total,
                "violations_by_reason": dict(sorted(by_reason.items())),
                "violations_by_source": {s: dict(sorted(c.items())) for s, c in sorted(violations.items())},
                "chunks_of_another_residency": sum(chunks.values()),
                "chunk_mismatches_by_source": dict(sorted(chunks.items())),
                **report_links(groundwork),
            },
            description=f"{total} of {len(documents)} documents are not where the policy puts them;"
            f" {sum(chunks.values())} chunks differ from their document's residency",
        )

    return residency_as_policy_says


def _failures_check(region: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=index_key(region), name="failures_within_limit")
    def failures_within_limit(groundwork: GroundworkResource) -> dg.AssetCheckResult:
        """At most ``ingest.max_failure_share`` of this region's documents are recorded as failed
        (failed over failed plus indexed); past it, a warning for the data steward."""
        counts = groundwork.services.index(region).counts()
        total = counts.documents + counts.failures
        share = counts.failures / total if total else 0.0
        limit = groundwork.services.config.ingest.max_failure_share
        return dg.AssetCheckResult(
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed": counts.failures,
                "indexed": counts.documents,
                "failed_share": round(share, 4),
                "limit": limit,
                **report_links(groundwork),
            },
            description=f"{counts.failures} of {total} documents failed (limit {limit:.0%}); see `groundwork failures`",
        )

    return failures_within_limit


#: Every check of a region's index, in the order the UI lists them.
CHECKS: tuple[Callable[[str], dg.AssetChecksDefinition], ...] = (
    _governance_check,
    _personal_data_check,
    _residency_check,
    _failures_check,
)


def build_index_checks(regions: list[str]) -> list[dg.AssetChecksDefinition]:
    """Per region: governance tags and residency (blocking), personal data left after redaction
    (error) and too many failed documents (warning)."""
    return [check(r) for r in regions for check in CHECKS]
