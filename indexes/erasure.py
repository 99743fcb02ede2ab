"""Erasure: the right to be forgotten and retention periods.

Both delete a document's chunks, embeddings, document row and failure record from every region and
leave only a tombstone in ``erasures`` (who, when, which id, why; never content). A forgotten
document is never ingested again; an expired one is not re-ingested while it stays expired.

``forget`` goes further. It takes a document that only failed (a failure record, nothing stored)
as well as a stored one. Its tombstone also records the content's digest (sha256 of the fetched
bytes, see :func:`groundwork.ids.content_digest`), so the same content listed under another path
or source id stays out, and stored copies of that content are erased with it. In every region's
retrieval audit, the rows that returned one of its chunks lose those chunk ids and their query
text (``[erased]``): the audit keeps that a search happened, who made it, when, and its decision.
After deleting, the affected tables are rewritten (``VACUUM FULL``) so the removed rows and the
audit rows' old versions do not linger in the table files.

:func:`purge_old_records` keeps Groundwork's own records to their periods (``records`` in the
config): retrieval audit rows and agents' ledger rows older than theirs are deleted, in every region.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from connectors import Connector
from groundwork.enums import ErasureReason
from groundwork.errors import GroundworkError, IndexUnavailable
from groundwork.ids import chunk_id, content_digest
from groundwork.ids import document_id as document_id_of
from groundwork.records import DocumentRef
from indexes.catalog import IndexCatalog, check_schema, connect_failure
from indexes.ddl import RECORD_TABLES
from indexes.pooling import connection
from indexes.store import RegionIndex

logger = logging.getLogger(__name__)

_REWRITTEN_TABLES = ("chunks", "documents")  # in every index version, and ingest_failures
#: Chunk ids are scrubbed from the audit up to this many sequence numbers past the stored chunk
#: count: an earlier version of the document may have had more chunks, and the audit keeps their ids.
EARLIER_CHUNKS = 1024
#: What a scrubbed audit row's query becomes (the audit's trigger accepts no other value).
ERASED_QUERY = "[erased]"


@dataclass(slots=True)
class ErasureReport:
    """What an erasure removed, per region.

    ``erased``: documents whose stored copy was deleted; ``failures_cleared``: documents whose
    failure record was deleted; ``audit_scrubbed``: retrieval audit rows that lost chunk ids and
    query text; ``digests``: per document, whether its content digest is in the tombstone;
    ``same_content``: documents erased only because their content equals a forgotten one's.
    """

    erased: dict[str, list[str]] = field(default_factory=dict)
    failures_cleared: dict[str, list[str]] = field(default_factory=dict)
    audit_scrubbed: dict[str, int] = field(default_factory=dict)
    digests: dict[str, bool] = field(default_factory=dict)
    same_content: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Documents erased in all regions."""
        return sum(len(v) for v in self.erased.values())

    @property
    def documents(self) -> list[str]:
        """Every document id a tombstone was written for, once each."""
        return list(self.digests)


@dataclass(slots=True)
class _Target:
    """A document to forget: where it is stored or recorded as failed, and what it is."""

    document_id: str
    source: str
    source_id: str
    source_uri: str
    version: str
    chunk_count: int = 0
    stored_in: set[str] = field(default_factory=set)
    failed_in: set[str] = field(default_factory=set)
    digest: str | None = None


def forget(
    catalog: IndexCatalog,
    *,
    by: str,
    document_id: str | None = None,
    source_uri: str | None = None,
    connectors: Mapping[str, Connector] | None = None,
) -> ErasureReport:
    """Erase one document, named by id or by source URI, from every region, and its audit traces.

    A document that is only recorded as failed is forgotten too. ``connectors`` lets the content
    digest of a document whose version is not already a digest be taken from its source.
    """
    if not document_id and not source_uri:
        raise GroundworkError("name the document to forget: --document ID or --uri URI")
    if document_id:
        try:
            document_id = str(uuid.UUID(document_id))
        except ValueError:
            raise GroundworkError(f"--document must be a document id (a UUID), not {document_id!r}") from None
    indexes = catalog.indexes()
    targets: dict[str, _Target] = {}
    for region, index in indexes.items():
        _find(index, region, targets, document_id=document_id, source_uri=source_uri)
    if not targets:
        named = f"id {document_id}" if document_id else f"URI {source_uri}"
        raise GroundworkError(f"no stored or failed document has {named}")
    for target in targets.values():
        target.digest = _digest_of(target, connectors)
    report = ErasureReport()
    for digest in sorted({t.digest for t in targets.values() if t.digest}):
        for region, index in indexes.items():
            before = set(targets)
            _find(index, region, targets, version=digest)
            for new in set(targets) - before:
                targets[new].digest = digest
                report.same_content.append(new)
    for region, index in indexes.items():
        _erase_in(index, region, list(targets.values()), by=by, report=report)
    _rewrite(catalog, report)
    logger.info(
        "forgot %d document(s) on request of %s: %d stored copies, %d failure records, %d audit rows scrubbed",
        len(targets),
        by,
        report.total,
        sum(len(v) for v in report.failures_cleared.values()),
        sum(report.audit_scrubbed.values()),
    )
    return report


def _find(
    index: RegionIndex,
    region: str,
    targets: dict[str, _Target],
    *,
    document_id: str | None = None,
    source_uri: str | None = None,
    version: str | None = None,
) -> None:
    """Add the documents of ``index`` (stored in any version, or failed) that match to ``targets``."""
    where = sql.SQL("version = %s" if version is not None else "document_id::text = %s OR source_uri = %s")
    params = (version,) if version is not None else (document_id, source_uri)
    with connection(index.pool) as conn:
        for schema in index.data_schemas:
            query = sql.SQL(
                "SELECT document_id::text, source, source_id, source_uri, version, chunk_count"
                " FROM {}.documents WHERE {}"
            ).format(sql.Identifier(schema), where)
            for doc_id, source, source_id, uri, ver, chunks in conn.execute(query, params):
                target = targets.setdefault(doc_id, _Target(doc_id, source, source_id, uri, ver))
                target.chunk_count = max(target.chunk_count, chunks)
                target.stored_in.add(region)
        failed = conn.execute(
            sql.SQL("SELECT source, source_id, source_uri, version FROM {}.ingest_failures").format(
                sql.Identifier(index.schema)
            )
        ).fetchall()
    for source, source_id, uri, ver in failed:
        doc_id = document_id_of(source, source_id)
        matches = ver == version if version is not None else doc_id == document_id or uri == source_uri
        if matches:
            targets.setdefault(doc_id, _Target(doc_id, source, source_id, uri, ver)).failed_in.add(region)


def _digest_of(target: _Target, connectors: Mapping[str, Connector] | None) -> str | None:
    """The content digest of what the document holds: its version when that is one, else its bytes."""
    if target.version.startswith("sha256:"):
        return target.version  # filesystem, SQL rows without updated-at, ...: a digest of the bytes
    connector = (connectors or {}).get(target.source)
    if connector is None:
        return None
    ref = DocumentRef(target.source, target.source_id, target.source_uri, target.version, 0)
    try:
        return content_digest(connector.fetch(ref))
    except Exception as exc:  # the source may have lost it: the id tombstone still keeps it out
        logger.warning(
            "forget: the content of a %s document could not be fetched for its digest (%s)",
            target.source,
            type(exc).__name__,
        )
        return None


def _erase_in(
    index: RegionIndex, region: str, targets: list[_Target], *, by: str, report: ErasureReport
) -> None:
    """In one transaction: delete the targets' rows here, write their tombstones, scrub the audit."""
    ids: list[uuid.UUID] = []
    with connection(index.pool) as conn, conn.transaction():
        for t in targets:
            ids += [uuid.UUID(chunk_id(t.document_id, s)) for s in range(t.chunk_count + EARLIER_CHUNKS)]
            if region not in t.stored_in | t.failed_in:
                continue
            for schema in index.data_schemas:
                conn.execute(
                    sql.SQL("DELETE FROM {}.documents WHERE document_id = %s").format(sql.Identifier(schema)),
                    (t.document_id,),
                )
            cur = conn.execute(
                sql.SQL("DELETE FROM {}.ingest_failures WHERE source = %s AND source_id = %s").format(
                    sql.Identifier(index.schema)
                ),
                (t.source, t.source_id),
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.erasures (document_id, by, reason, content_digest) VALUES (%s, %s, %s, %s)"
                ).format(sql.Identifier(index.schema)),
                (t.document_id, by, ErasureReason.FORGET, t.digest),
            )
            if region in t.stored_in:
                report.erased.setdefault(region, []).append(t.document_id)
            if cur.rowcount:
                report.failures_cleared.setdefault(region, []).append(t.document_id)
            report.digests[t.document_id] = report.digests.get(t.document_id, False) or t.digest is not None
        row = conn.execute(
            sql.SQL("SELECT {}.scrub_audit(%s)").format(sql.Identifier(index.schema)), (ids,)
        ).fetchone()
    scrubbed = int(row[0]) if row else 0
    if scrubbed:
        report.audit_scrubbed[region] = scrubbed


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


@dataclass(slots=True)
class RecordsPurge:
    """Rows of Groundwork's own records deleted past their retention, per region."""

    audit: dict[str, int] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)


def purge_old_records(catalog: IndexCatalog) -> RecordsPurge:
    """Delete, in every region, audit rows and ledger rows older than their retention periods.

    Connects as the owner and calls the schema's ``purge_records`` function, the only way past the
    tables' append-only triggers, which let it delete only rows older than the period it was given.
    An index not migrated to this code's schema is a :class:`~groundwork.errors.SchemaError`. The
    tables are vacuumed after (not rewritten: their rows hold no document text, and a rewrite
    would lock out the API's audit writes), so the space is reused.
    """
    records = catalog.config.records
    purge = RecordsPurge()
    if records.audit_retention_days is None and records.ledger_retention_days is None:
        return purge
    for region in catalog.config.regions:
        target = catalog.targets[region]
        schema = sql.Identifier(target.schema)
        try:
            conn = psycopg.connect(target.owner_dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(
                f"cannot purge the {region!r} index's records as the owner: {connect_failure(exc)}"
            ) from exc
        with conn:
            check_schema(conn, target.schema)
            row = conn.execute(
                sql.SQL("SELECT audit, ledger FROM {}.purge_records(%s, %s)").format(schema),
                (records.audit_retention_days, records.ledger_retention_days),
            ).fetchone()
            audit, ledger = (int(row[0]), int(row[1])) if row else (0, 0)
            vacuumed = (RECORD_TABLES["audit"] if audit else ()) + (RECORD_TABLES["ledger"] if ledger else ())
            for table in vacuumed:
                conn.execute(sql.SQL("VACUUM {}.{}").format(schema, sql.Identifier(table)))
        purge.audit[region] = audit
        purge.ledger[region] = ledger
        logger.info(
            "region %s: %d audit and %d ledger row(s) past their retention deleted", region, audit, ledger
        )
    return purge


def _rewrite(catalog: IndexCatalog, report: ErasureReport) -> None:
    """Rewrite the tables a deletion touched, as the owner, so deleted tuples leave the files."""
    regions = set(report.erased) | set(report.failures_cleared) | set(report.audit_scrubbed)
    for region in sorted(regions):
        target = catalog.targets[region]
        index = catalog.index(region)
        tables = [(schema, t) for schema in index.data_schemas for t in _REWRITTEN_TABLES]
        tables.append((target.schema, "ingest_failures"))
        if region in report.audit_scrubbed:
            tables.append((target.schema, "retrieval_audit"))
        with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
            for schema, table in tables:
                conn.execute(
                    sql.SQL("VACUUM FULL {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                )
