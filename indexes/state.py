"""What one region's index holds: read-only look-ups on its documents and chunks, in every version.

:class:`IndexState` is the base of :class:`indexes.store.RegionIndex`, which adds the writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString

from psycopg import sql
from psycopg_pool import ConnectionPool

from groundwork.enums import PERMANENT_REASONS
from groundwork.records import IndexCounts, StoredState
from indexes.failures import FailureLog, Tombstones
from indexes.pooling import connection


class IndexState:
    """One region's documents, chunks and failures, in ``schema`` of the pool's database.

    ``schema`` holds the live index version (what search reads) and the tables that outlive
    versions (failures, erasures, audit). While a new version is being built (the configured model
    or chunking changed), ``build_schema`` holds its documents and chunks: content is written there,
    while removals and access changes apply to both versions at once, so the live one stays true to
    its sources' deletions and permissions until the switch.
    """

    def __init__(
        self, region: str, pool: ConnectionPool, schema: str, *, build_schema: str | None = None
    ) -> None:
        self.region = region
        self.pool = pool
        self.schema = schema
        self.build_schema = build_schema
        self._s = sql.Identifier(schema)
        self.failures = FailureLog(pool, schema)
        self.tombstones = Tombstones(pool, schema)

    @property
    def target_schema(self) -> str:
        """The schema that new and changed documents are written to."""
        return self.build_schema or self.schema

    @property
    def data_schemas(self) -> list[str]:
        """The schemas holding documents and chunks: the live version, and a new one being built."""
        return [self.schema] + ([self.build_schema] if self.build_schema else [])

    def _q(self, text: str, data: str | None = None) -> sql.Composed:
        """``text`` with ``{s}`` (this index's schema) and ``{d}`` (a version's, the target by default)."""
        return sql.SQL(text).format(s=self._s, d=sql.Identifier(data or self.target_schema))

    def document_states(self, source: str) -> dict[str, StoredState]:
        """The stored version and access digest of every document of ``source``, by document id.

        While a new version is built, documents only the live version has are marked ``stale``.
        """
        query = (
            "SELECT document_id::text, version, access_digest, source_id, fingerprint"
            " FROM {d}.documents WHERE source = %s"
        )
        states: dict[str, StoredState] = {}
        with connection(self.pool) as conn:
            for schema in reversed(self.data_schemas):  # the target first
                stale = schema != self.target_schema
                for doc_id, version, digest, source_id, fingerprint in conn.execute(
                    self._q(query, schema), (source,)
                ):
                    states.setdefault(
                        doc_id, StoredState(version, digest, source_id, fingerprint, stale=stale)
                    )
        return states

    def build_missing(self) -> int:
        """Live documents not yet in the version being built, failures a retry cannot cure aside."""
        if self.build_schema is None:
            return 0
        with connection(self.pool) as conn:
            row = conn.execute(
                self._q(
                    "SELECT count(*) FROM {s}.documents l"
                    " WHERE NOT EXISTS (SELECT 1 FROM {d}.documents b WHERE b.document_id = l.document_id)"
                    " AND NOT EXISTS (SELECT 1 FROM {s}.ingest_failures f WHERE f.source = l.source"
                    "   AND f.source_id = l.source_id AND f.reason = ANY(%s))"
                ),
                (sorted(PERMANENT_REASONS),),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def expired(self, source: str, cutoff: datetime) -> list[str]:
        """Ids of stored documents (in any version) of ``source`` last modified before ``cutoff``."""
        return self._ids_in_any_version("source = %s AND modified_at < %s", (source, cutoff))

    def _ids_in_any_version(self, where: LiteralString, params: tuple[Any, ...]) -> list[str]:
        """Ids of documents matching ``where`` in the live version or the one being built, once each."""
        found: list[str] = []
        with connection(self.pool) as conn:
            for schema in self.data_schemas:
                query = sql.SQL("SELECT document_id::text FROM {d}.documents WHERE {w}").format(
                    d=sql.Identifier(schema),
                    w=sql.SQL(where),
                )
                found += [r[0] for r in conn.execute(query, params) if r[0] not in found]
        return found

    def counts(self) -> IndexCounts:
        """How many documents and chunks the live version holds, and how many failures are recorded."""
        with connection(self.pool) as conn:
            row = conn.execute(
                self._q(
                    "SELECT (SELECT count(*) FROM {s}.documents), (SELECT count(*) FROM {s}.chunks),"
                    " (SELECT count(*) FROM {s}.ingest_failures)"
                )
            ).fetchone()
        assert row is not None
        return IndexCounts(documents=row[0], chunks=row[1], failures=row[2])

    def ungoverned_chunks(self) -> int:
        """Chunks (in any version) missing residency or access tags, or of another region (should be 0)."""
        bad = 0
        with connection(self.pool) as conn:
            for schema in self.data_schemas:
                row = conn.execute(
                    self._q(
                        "SELECT count(*) FROM {d}.chunks WHERE residency IS NULL OR residency <> %s"
                        " OR access IS NULL OR cardinality(access) = 0",
                        schema,
                    ),
                    (self.region,),
                ).fetchone()
                assert row is not None
                bad += int(row[0])
        return bad

    def sample_chunks(self, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` chunks (id, text) of each stored version, drawn at random, for a re-scan.

        The ids are drawn first (from the primary key alone), so only the sampled chunks' text is read.
        """
        if limit <= 0:
            return []
        out: list[tuple[str, str]] = []
        with connection(self.pool) as conn:
            for schema in self.data_schemas:
                query = self._q(
                    "SELECT chunk_id::text, text FROM {d}.chunks WHERE chunk_id IN"
                    " (SELECT chunk_id FROM {d}.chunks ORDER BY random() LIMIT %s) ORDER BY chunk_id",
                    schema,
                )
                out += [(r[0], r[1]) for r in conn.execute(query, (limit,))]
        return out

    def document_residencies(self) -> list[tuple[str, str, str]]:
        """(source, source id, residency) of every stored document, in any version, once each."""
        found: set[tuple[str, str, str]] = set()
        with connection(self.pool) as conn:
            for schema in self.data_schemas:
                query = self._q("SELECT source, source_id, residency FROM {d}.documents", schema)
                found.update((r[0], r[1], r[2]) for r in conn.execute(query))
        return sorted(found)

    def chunk_residency_mismatches(self) -> dict[str, int]:
        """Chunks (in any version) whose residency differs from their document's, counted by source."""
        counts: dict[str, int] = {}
        with connection(self.pool) as conn:
            for schema in self.data_schemas:
                query = self._q(
                    "SELECT d.source, count(*) FROM {d}.chunks c JOIN {d}.documents d USING (document_id)"
                    " WHERE c.residency <> d.residency GROUP BY d.source",
                    schema,
                )
                for source, n in conn.execute(query):
                    counts[source] = counts.get(source, 0) + int(n)
        return counts
