"""Erasure: the right to be forgotten and retention periods.

Both delete a document's chunks, embeddings, document row and failure record from every region and
leave only a tombstone in ``erasures`` (who, when, which id, why; never content). A forgotten
document is never ingested again; an expired one is not re-ingested while it stays expired. After
deleting, the affected tables are rewritten (``VACUUM FULL``) so the removed rows do not linger in
the table files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from groundwork.enums import ErasureReason
from groundwork.errors import GroundworkError
from indexes.catalog import IndexCatalog

logger = logging.getLogger(__name__)

_REWRITTEN_TABLES = ("chunks", "documents")  # in every index version, and ingest_failures


@dataclass(slots=True)
class ErasureReport:
    """What an erasure removed, per region."""

    erased: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Documents erased in all regions."""
        return sum(len(v) for v in self.erased.values())


def forget(
    catalog: IndexCatalog, *, by: str, document_id: str | None = None, source_uri: str | None = None
) -> ErasureReport:
    """Erase one document, named by id or by source URI, from every region it is stored in."""
    if not document_id and not source_uri:
        raise GroundworkError("name the document to forget: --document ID or --uri URI")
    report = ErasureReport()
    for region in catalog.config.regions:
        index = catalog.index(region)
        for doc_id in index.find_documents(document_id=document_id, source_uri=source_uri):
            index.erase(doc_id, by=by, reason=ErasureReason.FORGET)
            report.erased.setdefault(region, []).append(doc_id)
    if not report.total:
        raise GroundworkError(
            f"no stored document has {'id ' + str(document_id) if document_id else 'URI ' + str(source_uri)}"
        )
    _rewrite(catalog, report)
    logger.info("forgot %d document(s) on request of %s", report.total, by)
    return report


def purge_expired(catalog: IndexCatalog, *, now: datetime | None = None) -> ErasureReport:
    """Erase every stored document older than its source's retention period."""
    now = now or datetime.now(UTC)
    report = ErasureReport()
    for source in catalog.config.sources:
        if not source.retention_days:
            continue
        cutoff = now - timedelta(days=source.retention_days)
        for region in catalog.config.regions:
            index = catalog.index(region)
            for doc_id in index.expired(source.name, cutoff):
                index.erase(doc_id, by="retention", reason=ErasureReason.RETENTION)
                report.erased.setdefault(region, []).append(doc_id)
    if report.total:
        _rewrite(catalog, report)
    return report


def _rewrite(catalog: IndexCatalog, report: ErasureReport) -> None:
    """Rewrite the tables a deletion touched, as the owner, so deleted tuples leave the files."""
    for region in report.erased:
        target = catalog.targets[region]
        index = catalog.index(region)
        tables = [(schema, t) for schema in index.data_schemas for t in _REWRITTEN_TABLES]
        with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
            for schema, table in [*tables, (target.schema, "ingest_failures")]:
                conn.execute(
                    sql.SQL("VACUUM FULL {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                )
