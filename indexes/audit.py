"""The retrieval audit: one append-only row per search and region searched, the query redacted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import sql

from groundwork.enums import AuthMethod, Decision, Reason
from indexes.pooling import connection
from indexes.store import RegionIndex


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one search is recorded with; ``query_redacted`` has already been through redaction."""

    request_id: uuid.UUID
    principal: str
    auth_method: AuthMethod
    regions: list[str]
    query_redacted: str
    k: int
    decision: Decision
    reasons: list[Reason]
    confidence: float


def write_audit(index: RegionIndex, record: AuditRecord, chunk_ids: list[uuid.UUID]) -> None:
    """Append ``record`` to ``index``'s audit with the ids of the chunks it returned from there."""
    with connection(index.pool) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.retrieval_audit (request_id, principal, auth_method, regions, query_redacted,"
                " k, chunk_ids, decision, reasons, confidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(sql.Identifier(index.schema)),
            (
                record.request_id,
                record.principal,
                record.auth_method,
                record.regions,
                record.query_redacted,
                record.k,
                chunk_ids,
                record.decision,
                list(record.reasons),
                record.confidence,
            ),
        )
