"""Documents and chunks of one region's index: writes and state look-ups.

All SQL uses placeholders and identifiers. The failures and tombstones of a region live in
:mod:`indexes.failures`; a :class:`RegionIndex` carries both, as the stages expect
(:class:`pipelines.ports.RegionStore`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from groundwork.enums import ErasureReason
from groundwork.faults import fault_point
from groundwork.ids import chunk_id
from groundwork.records import DocumentTask, EmbeddedDocument, Governance
from indexes.pooling import connection
from indexes.state import IndexState

logger = logging.getLogger(__name__)


#: The columns a chunk row is written with, in order.
_CHUNK_COLUMN_NAMES = (
    "chunk_id",
    "document_id",
    "seq",
    "text",
    "page_number",
    "embedding",
    "residency",
    "access",
    "source",
    "source_uri",
    "version",
    "redactions",
    "source_access",
)
_CHUNK_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, _CHUNK_COLUMN_NAMES))
#: Columns the database computes (the full-text vector): never copied between indexes.
_GENERATED_COLUMNS = {"tsv"}


class RegionIndex(IndexState):
    """One region's index with its writes: replace, re-tag, move, rename, delete and erase documents.

    Content is written to :attr:`target_schema` (the version being built, if any); removals and
    access changes apply to every version at once, so the live one stays true to its sources.
    """

    def write_document(self, doc: EmbeddedDocument, *, run_id: str = "") -> int:
        """Replace a document and its chunks in one transaction; returns the chunks written.

        Readers see either the old rows or the new ones, never a mix. A success clears any failure
        recorded for the document. ``run_id`` (the ingest run writing it) and the policy part that
        tagged it are kept for lineage.
        """
        chunked = doc.chunked
        red = chunked.document
        task = red.task
        ref = task.ref
        gov = task.governance
        if gov.residency != self.region:
            raise ValueError(f"document of residency {gov.residency!r} sent to the {self.region!r} index")
        access = list(gov.access)
        source_access = list(gov.source_access) if gov.source_access is not None else None
        doc_uuid = uuid.UUID(task.document_id)
        redactions = Jsonb(dict(sorted(red.redactions.items())))
        # Pipeline mode: the statements go out together and the transaction costs one round trip.
        with connection(self.pool) as conn, conn.pipeline(), conn.transaction():
            conn.execute(self._q("DELETE FROM {d}.chunks WHERE document_id = %s"), (task.document_id,))
            conn.execute(
                self._q(
                    """
                    INSERT INTO {d}.documents (document_id, source, source_id, source_uri, version,
                        content_type, residency, access, access_digest, redactions, element_count,
                        chunk_count, modified_at, fingerprint, run_id, decided_by, source_access, ingested_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                    ON CONFLICT (document_id) DO UPDATE SET
                        source_uri = EXCLUDED.source_uri, version = EXCLUDED.version,
                        content_type = EXCLUDED.content_type, residency = EXCLUDED.residency,
                        access = EXCLUDED.access, access_digest = EXCLUDED.access_digest,
                        redactions = EXCLUDED.redactions, element_count = EXCLUDED.element_count,
                        chunk_count = EXCLUDED.chunk_count, modified_at = EXCLUDED.modified_at,
                        fingerprint = EXCLUDED.fingerprint, run_id = EXCLUDED.run_id,
                        decided_by = EXCLUDED.decided_by, source_access = EXCLUDED.source_access,
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
                    ref.fingerprint,
                    run_id or None,
                    gov.decided_by or None,
                    source_access,
                ),
            )
            # One INSERT per chunk, sent together (psycopg's pipeline mode: one round trip), so the
            # writer's residency policy applies to each row (COPY cannot load a table under row-level
            # security, and a staging table per document cost more than the rows on short documents).
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {d}.chunks ({cols}) VALUES ({values})").format(
                        d=sql.Identifier(self.target_schema),
                        cols=_CHUNK_COLUMNS,
                        values=sql.SQL(", ").join(sql.Placeholder() * len(_CHUNK_COLUMN_NAMES)),
                    ),
                    [
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
                            Jsonb(chunk.redactions),
                            source_access,
                        )
                        for chunk, vector in zip(chunked.chunks, doc.vectors, strict=True)
                    ],
                )
            conn.execute(
                self._q("DELETE FROM {s}.ingest_failures WHERE source = %s AND source_id = %s"),
                (ref.source, ref.source_id),
            )
            fault_point("document_mid_write")
        return len(chunked.chunks)

    def retag(self, document_id: str, governance: Governance) -> int:
        """Change a stored document's access tags in place, chunks included, without re-embedding.

        Returns the number of chunks re-tagged; both versions (live and being built) change in one
        transaction.
        """
        retagged = 0
        source_access = list(governance.source_access) if governance.source_access is not None else None
        with connection(self.pool) as conn, conn.transaction():
            for schema in self.data_schemas:
                conn.execute(
                    self._q(
                        "UPDATE {d}.documents SET access = %s, source_access = %s, access_digest = %s,"
                        " decided_by = coalesce(%s, decided_by) WHERE document_id = %s",
                        schema,
                    ),
                    (
                        list(governance.access),
                        source_access,
                        governance.digest,
                        governance.decided_by or None,
                        document_id,
                    ),
                )
                cur = conn.execute(
                    self._q(
                        "UPDATE {d}.chunks SET access = %s, source_access = %s WHERE document_id = %s", schema
                    ),
                    (list(governance.access), source_access, document_id),
                )
                retagged = max(retagged, cur.rowcount)
        return retagged

    def export_document(self, document_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A stored document's row and its chunk rows (embeddings included), to move it elsewhere."""
        with connection(self.pool) as conn, conn.cursor(row_factory=dict_row) as cur:
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
            if "fingerprint" in doc:
                identity["fingerprint"] = task.ref.fingerprint
            doc = {**doc, **identity}
            chunks = [
                {
                    **row,
                    **{k: v for k, v in identity.items() if k in row},
                    "chunk_id": uuid.UUID(chunk_id(task.document_id, row["seq"])),
                }
                for row in chunks
            ]
        with connection(self.pool) as conn, conn.transaction():
            conn.execute(self._q("DELETE FROM {d}.documents WHERE document_id = %s"), (doc["document_id"],))
            cols = list(doc)
            values = {
                **doc,
                "residency": governance.residency,
                "access": access,
                "access_digest": governance.digest,
                "source_access": list(governance.source_access)
                if governance.source_access is not None
                else None,
            }
            if "decided_by" in values and governance.decided_by:
                values["decided_by"] = governance.decided_by
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
                tags = {
                    "residency": governance.residency,
                    "access": access,
                    "source_access": values["source_access"],
                }
                with conn.cursor() as cur:
                    cur.executemany(
                        sql.SQL("INSERT INTO {d}.chunks ({cols}) VALUES ({vals})").format(
                            d=sql.Identifier(self.target_schema),
                            cols=sql.SQL(", ").join(map(sql.Identifier, ccols)),
                            vals=sql.SQL(", ").join(sql.Placeholder() * len(ccols)),
                        ),
                        [
                            [Jsonb(r[c]) if c == "redactions" else {**r, **tags}[c] for c in ccols]
                            for r in chunks
                        ],
                    )
        return len(chunks)

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and its chunks from every version; returns whether it was here."""
        found = False
        with connection(self.pool) as conn, conn.transaction():
            for schema in self.data_schemas:
                cur = conn.execute(
                    self._q("DELETE FROM {d}.documents WHERE document_id = %s", schema), (document_id,)
                )
                found = found or cur.rowcount > 0
        return found

    def erase(self, document_id: str, *, by: str, reason: ErasureReason) -> bool:
        """Delete a document, its chunks and its failure record, leaving a tombstone (who, when, id).

        Returns whether the document was stored here. The tombstone is written even when it was not,
        so a document that failed ingest or was never stored here is still kept out.
        """
        row = None
        with connection(self.pool) as conn, conn.transaction():
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
