"""A region's ingest failures and erasure tombstones: the tables that outlive index versions."""

from __future__ import annotations

from psycopg import sql
from psycopg_pool import ConnectionPool

from groundwork.enums import ErasureReason
from groundwork.records import Failure
from indexes.pooling import connection


class FailureLog:
    """The ``ingest_failures`` table of one region: one row per failed document, with its reason."""

    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self._s = sql.Identifier(schema)

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    def of_source(self, source: str) -> dict[str, tuple[str, str]]:
        """The recorded failures of ``source``: source id -> (version, reason)."""
        with connection(self.pool) as conn:
            rows = conn.execute(
                self._q("SELECT source_id, version, reason FROM {s}.ingest_failures WHERE source = %s"),
                (source,),
            ).fetchall()
        return {source_id: (version, reason) for source_id, version, reason in rows}

    def record(self, failure: Failure) -> None:
        """Record (or update) a document's failure; the message must already be free of content."""
        ref = failure.task.ref
        with connection(self.pool) as conn:
            conn.execute(
                self._q(
                    """
                    INSERT INTO {s}.ingest_failures (source, source_id, source_uri, version, stage, reason, message)
                    VALUES (%s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (source, source_id) DO UPDATE SET
                        source_uri = EXCLUDED.source_uri, version = EXCLUDED.version,
                        stage = EXCLUDED.stage, reason = EXCLUDED.reason, message = EXCLUDED.message,
                        attempts = {s}.ingest_failures.attempts + 1, last_seen = now()
                    """
                ),
                (
                    ref.source,
                    ref.source_id,
                    ref.uri,
                    ref.version,
                    failure.stage,
                    failure.reason,
                    failure.message,
                ),
            )

    def clear(self, source: str, source_id: str) -> None:
        """Forget the failure record of one document."""
        with connection(self.pool) as conn:
            conn.execute(
                self._q("DELETE FROM {s}.ingest_failures WHERE source = %s AND source_id = %s"),
                (source, source_id),
            )

    def all(self) -> list[dict[str, object]]:
        """Every recorded failure, oldest first."""
        with connection(self.pool) as conn, conn.cursor() as cur:
            cur.execute(
                self._q(
                    "SELECT source, source_id, version, stage, reason, message, attempts, first_seen, last_seen"
                    " FROM {s}.ingest_failures ORDER BY first_seen, source, source_id"
                )
            )
            cols = [c.name for c in cur.description or []]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


class Tombstones:
    """The append-only ``erasures`` table of one region: who erased which document, when and why."""

    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self._s = sql.Identifier(schema)

    def ids(self, reason: ErasureReason) -> set[str]:
        """Ids of documents erased for ``reason``: a forgotten document is never ingested again."""
        with connection(self.pool) as conn:
            rows = conn.execute(
                sql.SQL("SELECT DISTINCT document_id::text FROM {}.erasures WHERE reason = %s").format(
                    self._s
                ),
                (reason,),
            )
            return {r[0] for r in rows}

    def digests(self) -> set[str]:
        """Content digests of forgotten documents: the same content under another path stays out."""
        with connection(self.pool) as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT content_digest FROM {}.erasures"
                    " WHERE reason = %s AND content_digest IS NOT NULL"
                ).format(self._s),
                (ErasureReason.FORGET,),
            )
            return {r[0] for r in rows}
