"""Per-chunk lineage: where a stored chunk came from and what decided how it is stored.

chunk -> document (source, URI, version, content fingerprint) -> the ingest run that wrote it
(Dagster run id, time) -> the redaction policy version and counts -> the model and index version ->
residency and access as decided, and which part of the policy decided them. Metadata only: never
the chunk's text.

Read as the writer (the ``groundwork lineage`` command on the ingest host: every chunk) or as the
reader for a caller (the API's steward route), where row-level security shows only chunks the
caller may read, in the caller's regions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from indexes.catalog import IndexCatalog
from indexes.pooling import connection
from indexes.schema import VERSION_SETTINGS, read_meta
from indexes.search import set_caller

_QUERY = """
SELECT c.chunk_id::text, c.seq, c.page_number, c.redactions AS chunk_redactions,
       c.residency, c.access,
       d.document_id::text, d.source, d.source_id, d.source_uri, d.version, d.content_type,
       d.fingerprint, d.modified_at, d.element_count, d.chunk_count, d.redactions AS document_redactions,
       d.run_id, d.ingested_at, d.decided_by, d.source_access
FROM {s}.chunks c JOIN {s}.documents d USING (document_id)
WHERE c.chunk_id = %s
"""


def version_id(settings: dict[str, str]) -> str:
    """A short id of an index version: a digest of the settings it was built with."""
    payload = json.dumps({k: settings.get(k, "") for k in VERSION_SETTINGS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _shape(region: str, row: dict[str, Any], meta: dict[str, str]) -> dict[str, Any]:
    run_id = row["run_id"] or ""
    return {
        "chunk": {
            "chunk_id": row["chunk_id"],
            "seq": row["seq"],
            "page_number": row["page_number"],
            "redactions": row["chunk_redactions"],
        },
        "document": {
            "document_id": row["document_id"],
            "source": row["source"],
            "source_id": row["source_id"],
            "source_uri": row["source_uri"],
            "version": row["version"],
            "content_type": row["content_type"],
            "fingerprint": row["fingerprint"],
            "modified_at": _iso(row["modified_at"]),
            "elements": row["element_count"],
            "chunks": row["chunk_count"],
        },
        "ingest_run": {
            "run_id": run_id or None,
            "orchestrator": "dagster"
            if run_id and not run_id.startswith("local-")
            else "local"
            if run_id
            else None,
            "written_at": _iso(row["ingested_at"]),
        },
        "redaction": {"policy_version": meta.get("redaction"), "counts": row["document_redactions"]},
        "index": {
            "region": region,
            "version": version_id(meta),
            "embedding_model": meta.get("model"),
            "dimensions": int(meta["dimensions"]) if meta.get("dimensions") else None,
            "chunking": json.loads(meta["chunking"]) if meta.get("chunking") else None,
            "schema_version": meta.get("schema_version"),
        },
        "governance": {
            "residency": row["residency"],
            "access": sorted(row["access"]),
            "source_access": sorted(row["source_access"]) if row["source_access"] is not None else None,
            "decided_by": row["decided_by"],
        },
    }


def chunk_lineage(
    catalog: IndexCatalog,
    chunk_id: str,
    *,
    regions: list[str] | None = None,
    grants: list[str] | None = None,
) -> dict[str, Any] | None:
    """The lineage of ``chunk_id`` from the live index versions of ``regions`` (all by default).

    With ``grants`` the caller's grants and regions are set for row-level security first (the
    reader's connection), so a chunk the caller may not read is as absent as one that does not
    exist. None when no region holds a chunk with this id that the connection may see.
    """
    try:
        wanted = uuid.UUID(chunk_id)
    except ValueError:
        raise ValueError("a chunk id is a UUID") from None
    searched = [r for r in catalog.regions if regions is None or r in regions]
    for region in searched:
        index = catalog.index(region)
        with connection(index.pool) as conn, conn.transaction():
            if grants is not None:
                set_caller(conn, grants, searched)
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    sql.SQL(_QUERY).format(s=sql.Identifier(index.schema)), (wanted,)
                ).fetchone()
            if row is not None:
                return _shape(region, row, read_meta(conn, index.schema))
    return None
