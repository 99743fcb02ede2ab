"""Writes and state look-ups on one region's index. All SQL uses placeholders and identifiers."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from pipelines.ids import chunk_id
from pipelines.records import PERMANENT_REASONS, DocumentTask, EmbeddedDocument, Failure, Governance

logger = logging.getLogger(__name__)


_CHUNK_COLUMNS = sql.SQL(
    "chunk_id, document_id, seq, text, page_number, embedding, residency, access, source, source_uri,"
    " version, redactions"
)
#: Columns the database computes (the full-text vector): never copied between indexes.
_GENERATED_COLUMNS = {"tsv"}


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the index holds for one document: enough to tell whether it changed."""

    version: str
    access_digest: str
    #: Stored only in the live version while a new version (other model or chunking) is built:
    #: it must be processed again, and its embeddings must never be copied into the new version.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class IndexCounts:
    """Row counts of one region's index."""

    documents: int
    chunks: int
    failures: int


class RegionIndex:
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
        query = "SELECT document_id::text, version, access_digest FROM {d}.documents WHERE source = %s"
        states: dict[str, StoredState] = {}
        with self.pool.connection() as conn:
            for schema in reversed(self.data_schemas):  # the target first
                stale = schema != self.target_schema
                for doc_id, version, digest in conn.execute(self._q(query, schema), (source,)):
                    states.setdefault(doc_id, StoredState(version, digest, stale=stale))
        return states

    def build_missing(self) -> int:
        """Live documents not yet in the version being built, failures a retry cannot cure aside."""
        if self.build_schema is None:
            return 0
        with self.pool.connection() as conn:
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

    def failures_of(self, source: str) -> dict[str, tuple[str, str]]:
        """The recorded failures of ``source``: source id -> (version, reason)."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                self._q("SELECT source_id, version, reason FROM {s}.ingest_failures WHERE source = %s"),
                (source,),
            ).fetchall()
        return {source_id: (version, reason) for source_id, version, reason in rows}

    def write_document(self, doc: EmbeddedDocument) -> int:
        """Replace a document and its chunks in one transaction; returns the chunks written.

        Readers see either the old rows or the new ones, never a mix. A success clears any failure
        recorded for the document.
        """
        chunked = doc.chunked
        red = chunked.document
        task = red.task
        ref = task.ref
        gov = task.governance
        if gov.residency != self.region:
            raise ValueError(f"document of residency {gov.residency!r} sent to the {self.region!r} index")
        access = list(gov.access)
        doc_uuid = uuid.UUID(task.document_id)
        redactions = Jsonb(dict(sorted(red.redactions.items())))
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(self._q("DELETE FROM {d}.chunks WHERE document_id = %s"), (task.document_id,))
            conn.execute(
                self._q(
                    """
                    INSERT INTO {d}.documents (document_id, source, source_id, source_uri, version,
                        content_type, residency, access, access_digest, redactions, element_count,
                        chunk_count, modified_at, ingested_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                    ON CONFLICT (document_id) DO UPDATE SET
                        source_uri = EXCLUDED.source_uri, version = EXCLUDED.version,
                        content_type = EXCLUDED.content_type, residency = EXCLUDED.residency,
                        access = EXCLUDED.access, access_digest = EXCLUDED.access_digest,
                        redactions = EXCLUDED.redactions, element_count = EXCLUDED.element_count,
                        chunk_count = EXCLUDED.chunk_count, modified_at = EXCLUDED.modified_at,
                        ingested_at = now()
                    """
                ),
                (
                    task.document_id,
                    ref.source,
                    ref.source_id,
                    ref.uri,
                    ref.version,
                    red.content_type,
                    gov.residency,
                    access,
                    gov.digest,
                    redactions,
                    len(red.elements),
                    len(chunked.chunks),
                    ref.modified_at,
                ),
            )
            # COPY cannot load a table under row-level security, so rows go through a temporary
            # staging table and then INSERT ... SELECT, where the writer's residency policy applies.
            # It lives for one transaction: versions being built may differ in vector size.
            conn.execute(
                self._q("CREATE TEMP TABLE chunk_stage (LIKE {d}.chunks INCLUDING DEFAULTS) ON COMMIT DROP")
            )
            with (
                conn.cursor() as cur,
                cur.copy(
                    sql.SQL(
                        "COPY chunk_stage (chunk_id, document_id, seq, text, page_number, embedding, residency,"
                        " access, source, source_uri, version, redactions) FROM STDIN WITH (FORMAT BINARY)"
                    )
                ) as copy,
            ):
                copy.set_types(
                    [
                        "uuid",
                        "uuid",
                        "int4",
                        "text",
                        "int4",
                        "vector",
                        "text",
                        "text[]",
                        "text",
                        "text",
                        "text",
                        "jsonb",
                    ]
                )
                for chunk, vector in zip(chunked.chunks, doc.vectors, strict=True):
                    copy.write_row(
                        (
                            uuid.UUID(chunk.chunk_id),
                            doc_uuid,
                            chunk.seq,
                            chunk.text,
                            chunk.page_number,
                            vector,
                            gov.residency,
                            access,
                            ref.source,
                            ref.uri,
                            ref.version,
                            redactions,
                        )
                    )
            conn.execute(
                sql.SQL("INSERT INTO {d}.chunks ({cols}) SELECT {cols} FROM chunk_stage").format(
                    d=sql.Identifier(self.target_schema), cols=_CHUNK_COLUMNS
                )
            )
            conn.execute(
                self._q("DELETE FROM {s}.ingest_failures WHERE source = %s AND source_id = %s"),
                (ref.source, ref.source_id),
            )
        return len(chunked.chunks)

    def retag(self, document_id: str, governance: Governance) -> int:
        """Change a stored document's access tags in place, chunks included, without re-embedding.

        Returns the number of chunks re-tagged; both versions (live and being built) change in one
        transaction.
        """
        retagged = 0
        with self.pool.connection() as conn, conn.transaction():
            for schema in self.data_schemas:
                conn.execute(
                    self._q(
                        "UPDATE {d}.documents SET access = %s, access_digest = %s WHERE document_id = %s",
                        schema,
                    ),
                    (list(governance.access), governance.digest, document_id),
                )
                cur = conn.execute(
                    self._q("UPDATE {d}.chunks SET access = %s WHERE document_id = %s", schema),
                    (list(governance.access), document_id),
                )
                retagged = max(retagged, cur.rowcount)
        return retagged

    def export_document(self, document_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A stored document's row and its chunk rows (embeddings included), to move it elsewhere."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            doc = cur.execute(
                self._q("SELECT * FROM {d}.documents WHERE document_id = %s"), (document_id,)
            ).fetchone()
            if doc is None:
                return None
            chunks = cur.execute(
                self._q("SELECT * FROM {d}.chunks WHERE document_id = %s ORDER BY seq"), (document_id,)
            ).fetchall()
        return doc, chunks

    def import_document(
        self,
        doc: dict[str, Any],
        chunks: list[dict[str, Any]],
        governance: Governance,
        *,
        task: DocumentTask | None = None,
    ) -> int:
        """Store an exported document here under new tags, replacing any copy; returns chunks written.

        With ``task`` the document also takes that task's identity (a rename): its id, source id,
        URI and version and its chunks' ids change; its text and embeddings do not.
        """
        access = list(governance.access)
        if task is not None:
            identity: dict[str, Any] = {
                "document_id": uuid.UUID(task.document_id),
                "source_id": task.ref.source_id,
                "source_uri": task.ref.uri,
                "version": task.ref.version,
            }
            doc = {**doc, **identity}
            chunks = [
                {
                    **row,
                    **{k: v for k, v in identity.items() if k in row},
                    "chunk_id": uuid.UUID(chunk_id(task.document_id, row["seq"])),
                }
                for row in chunks
            ]
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(self._q("DELETE FROM {d}.documents WHERE document_id = %s"), (doc["document_id"],))
            cols = list(doc)
            values = {
                **doc,
                "residency": governance.residency,
                "access": access,
                "access_digest": governance.digest,
            }
            conn.execute(
                sql.SQL("INSERT INTO {d}.documents ({cols}) VALUES ({vals})").format(
                    d=sql.Identifier(self.target_schema),
                    cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
                    vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                [Jsonb(values[c]) if c == "redactions" else values[c] for c in cols],
            )
            if chunks:
                ccols = [c for c in chunks[0] if c not in _GENERATED_COLUMNS]
                with conn.cursor() as cur:
                    cur.executemany(
                        sql.SQL("INSERT INTO {d}.chunks ({cols}) VALUES ({vals})").format(
                            d=sql.Identifier(self.target_schema),
                            cols=sql.SQL(", ").join(map(sql.Identifier, ccols)),
                            vals=sql.SQL(", ").join(sql.Placeholder() * len(ccols)),
                        ),
                        [
                            [
                                Jsonb(row[c])
                                if c == "redactions"
                                else governance.residency
                                if c == "residency"
                                else access
                                if c == "access"
                                else row[c]
                                for c in ccols
                            ]
                            for row in chunks
                        ],
                    )
        return len(chunks)

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and its chunks from every version; returns whether it was here."""
        found = False
        with self.pool.connection() as conn, conn.transaction():
            for schema in self.data_schemas:
                cur = conn.execute(
                    self._q("DELETE FROM {d}.documents WHERE document_id = %s", schema), (document_id,)
                )
                found = found or cur.rowcount > 0
        return found

    def erased_ids(self, reason: str = "forget") -> set[str]:
        """Ids of documents erased for ``reason``: a forgotten document is never ingested again."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                self._q("SELECT DISTINCT document_id::text FROM {s}.erasures WHERE reason = %s"), (reason,)
            )
            return {r[0] for r in rows}

    def erase(self, document_id: str, *, by: str, reason: str) -> bool:
        """Delete a document, its chunks and its failure record, leaving a tombstone (who, when, id).

        Returns whether the document was stored here. The tombstone is written even when it was not,
        so a document that failed ingest or was never stored here is still kept out.
        """
        row = None
        with self.pool.connection() as conn, conn.transaction():
            for schema in self.data_schemas:
                row = (
                    conn.execute(
                        self._q(
                            "DELETE FROM {d}.documents WHERE document_id = %s RETURNING source, source_id",
                            schema,
                        ),
                        (document_id,),
                    ).fetchone()
                    or row
                )
            if row is not None:
                conn.execute(
                    self._q("DELETE FROM {s}.ingest_failures WHERE source = %s AND source_id = %s"), row
                )
            conn.execute(
                self._q("INSERT INTO {s}.erasures (document_id, by, reason) VALUES (%s, %s, %s)"),
                (document_id, by, reason),
            )
        return row is not None

    def find_documents(self, *, document_id: str | None = None, source_uri: str | None = None) -> list[str]:
        """Ids of stored documents (in any version) with this id or source URI."""
        return self._ids_in_any_version(
            "document_id::text = %s OR source_uri = %s", (document_id, source_uri)
        )

    def expired(self, source: str, cutoff: datetime) -> list[str]:
        """Ids of stored documents (in any version) of ``source`` last modified before ``cutoff``."""
        return self._ids_in_any_version("source = %s AND modified_at < %s", (source, cutoff))

    def _ids_in_any_version(self, where: LiteralString, params: tuple[Any, ...]) -> list[str]:
        """Ids of documents matching ``where`` in the live version or the one being built, once each."""
        found: list[str] = []
        with self.pool.connection() as conn:
            for schema in self.data_schemas:
                query = sql.SQL("SELECT document_id::text FROM {d}.documents WHERE {w}").format(
                    d=sql.Identifier(schema),
                    w=sql.SQL(where),
                )
                found += [r[0] for r in conn.execute(query, params) if r[0] not in found]
        return found

    def clear_failure(self, source: str, source_id: str) -> None:
        """Forget the failure record of one document."""
        with self.pool.connection() as conn:
            conn.execute(
                self._q("DELETE FROM {s}.ingest_failures WHERE source = %s AND source_id = %s"),
                (source, source_id),
            )

    def record_failure(self, failure: Failure) -> None:
        """Record (or update) a document's failure; the message must already be free of content."""
        ref = failure.task.ref
        with self.pool.connection() as conn:
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

    def failures(self) -> list[dict[str, object]]:
        """Every recorded failure, oldest first."""
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                self._q(
                    "SELECT source, source_id, version, stage, reason, message, attempts, first_seen, last_seen"
                    " FROM {s}.ingest_failures ORDER BY first_seen, source, source_id"
                )
            )
            cols = [c.name for c in cur.description or []]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> IndexCounts:
        """How many documents and chunks the live version holds, and how many failures are recorded."""
        with self.pool.connection() as conn:
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
        with self.pool.connection() as conn:
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
