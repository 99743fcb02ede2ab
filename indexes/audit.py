"""The retrieval audit: one append-only row per search and region searched, the query redacted.

A search is answered only once its rows are committed. :func:`write_audits` commits several
searches' rows in one transaction (the API batches them); a row that cannot be written fails its
own search with :class:`AuditWriteError`, never silently.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from groundwork.enums import AuthMethod, Decision, Reason
from groundwork.errors import IndexError_, IndexUnavailable
from indexes.pooling import connection
from indexes.store import RegionIndex

logger = logging.getLogger(__name__)

_INSERT = (
    "INSERT INTO {}.retrieval_audit (request_id, principal, auth_method, regions, query_redacted,"
    " k, chunk_ids, decision, reasons, confidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


#: Records one search in the audit of each region searched (``{region: ids of the chunks returned
#: from there}``); returns once every row is committed and raises when one is not.
AuditSink = Callable[["AuditRecord", dict[str, list[uuid.UUID]]], None]


class AuditWriteError(IndexError_):
    """A search's audit row could not be committed, so the search must fail rather than go unrecorded."""


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


def _row(record: AuditRecord, chunk_ids: list[uuid.UUID]) -> tuple[object, ...]:
    return (
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
    )


def write_audit(index: RegionIndex, record: AuditRecord, chunk_ids: list[uuid.UUID]) -> None:
    """Append ``record`` to ``index``'s audit with the ids of the chunks it returned from there.

    Raises :class:`AuditWriteError` when the database refuses the row (``IndexUnavailable`` when it
    cannot be reached).
    """
    [error] = write_audits(index, [(record, chunk_ids)])
    if error is not None:
        raise error


def write_each(
    index_of: Callable[[str], RegionIndex], record: AuditRecord, chunk_ids: dict[str, list[uuid.UUID]]
) -> None:
    """An :data:`AuditSink` without batching: each region's row committed in its own transaction."""
    for region, ids in chunk_ids.items():
        write_audit(index_of(region), record, ids)


def write_audits(
    index: RegionIndex, entries: Sequence[tuple[AuditRecord, list[uuid.UUID]]]
) -> list[IndexError_ | None]:
    """Append several searches' rows to ``index``'s audit in one transaction; one outcome per entry.

    ``None`` means that entry's row is committed. When the database cannot be reached every entry
    gets an ``IndexUnavailable``; when it refuses the transaction (a revoked privilege, a dropped
    table) every entry gets an :class:`AuditWriteError`. A refusal that may be one row's own (a data
    or constraint error) is retried one row per transaction, so only the rows at fault fail.
    """
    if not entries:
        return []
    try:
        _insert(index, entries)
        return [None] * len(entries)
    except (IndexUnavailable, psycopg.Error) as exc:
        if len(entries) > 1 and isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
            return [_write_alone(index, entry) for entry in entries]
        _log(index, exc)
        return [_failure(index, exc) for _ in entries]


def _write_alone(index: RegionIndex, entry: tuple[AuditRecord, list[uuid.UUID]]) -> IndexError_ | None:
    try:
        _insert(index, [entry])
    except (IndexUnavailable, psycopg.Error) as exc:
        _log(index, exc)
        return _failure(index, exc)
    return None


def _insert(index: RegionIndex, entries: Sequence[tuple[AuditRecord, list[uuid.UUID]]]) -> None:
    with connection(index.pool) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            sql.SQL(_INSERT).format(sql.Identifier(index.schema)),
            [_row(record, chunk_ids) for record, chunk_ids in entries],
        )


def _log(index: RegionIndex, exc: Exception) -> None:
    # The class and SQLSTATE only: a server message may quote a value from the row.
    state = getattr(exc, "sqlstate", None) or "no SQLSTATE"
    logger.error(
        "audit write failed in %s: %s (%s)%s", index.schema, type(exc).__name__, state, _hint(index, exc)
    )


def _hint(index: RegionIndex, exc: Exception) -> str:
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return (
            f": that database is read-only (a replica?); set database.audit_urls.{index.region} to a "
            "writable URL of the same database"
        )
    return ""


def _failure(index: RegionIndex, exc: Exception) -> IndexError_:
    """A new error for one search whose row was not committed (each request raises its own)."""
    if isinstance(exc, IndexUnavailable):
        error: IndexError_ = IndexUnavailable(str(exc))
    else:
        state = getattr(exc, "sqlstate", None) or "no SQLSTATE"
        error = AuditWriteError(
            f"the {index.region!r} retrieval audit refused the search's record ({type(exc).__name__}, "
            f"{state}){_hint(index, exc)}"
        )
    error.__cause__ = exc
    return error
