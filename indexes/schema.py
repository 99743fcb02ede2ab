"""The per-region index schema: documents, chunks (pgvector, HNSW cosine) and ingest failures."""

from __future__ import annotations

import psycopg
from psycopg import sql

from groundwork.errors import IndexError_

SCHEMA_VERSION = "1"

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.index_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.documents (
    document_id    uuid PRIMARY KEY,
    source         text NOT NULL,
    source_id      text NOT NULL,
    source_uri     text NOT NULL,
    version        text NOT NULL,
    content_type   text NOT NULL,
    residency      text NOT NULL CHECK (residency <> ''),
    access         text[] NOT NULL CHECK (cardinality(access) > 0),
    access_digest  text NOT NULL,
    redactions     jsonb NOT NULL DEFAULT '{{}}',
    element_count  integer NOT NULL,
    chunk_count    integer NOT NULL,
    ingested_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);

CREATE TABLE IF NOT EXISTS {schema}.chunks (
    chunk_id     uuid PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES {schema}.documents (document_id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    text         text NOT NULL,
    page_number  integer,
    embedding    vector({dims}) NOT NULL,
    residency    text NOT NULL CHECK (residency <> ''),
    access       text[] NOT NULL CHECK (cardinality(access) > 0),
    source       text NOT NULL,
    source_uri   text NOT NULL,
    version      text NOT NULL,
    redactions   jsonb NOT NULL DEFAULT '{{}}',
    UNIQUE (document_id, seq)
);

CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw
    ON {schema}.chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS chunks_access_gin ON {schema}.chunks USING gin (access);

CREATE TABLE IF NOT EXISTS {schema}.ingest_failures (
    source       text NOT NULL,
    source_id    text NOT NULL,
    source_uri   text NOT NULL,
    version      text NOT NULL,
    stage        text NOT NULL,
    reason       text NOT NULL,
    message      text NOT NULL,
    attempts     integer NOT NULL DEFAULT 1,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_id)
);
"""


def ensure_schema(conn: psycopg.Connection, schema: str, *, dimensions: int, model: str) -> None:
    """Create the schema if new, and refuse one built for another embedding model or size."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        # Serialise concurrent first runs: DDL with IF NOT EXISTS still races on catalog rows.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"groundwork-schema:{schema}",))
        conn.execute(sql.SQL(_DDL).format(schema=ident, dims=sql.Literal(dimensions)))
        rows: dict[str, str] = dict(
            conn.execute(sql.SQL("SELECT key, value FROM {}.index_meta").format(ident)).fetchall()
        )
        wanted = {"schema_version": SCHEMA_VERSION, "model": model, "dimensions": str(dimensions)}
        if not rows:
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {}.index_meta (key, value) VALUES (%s, %s)").format(ident),
                    list(wanted.items()),
                )
            return
        for key, value in wanted.items():
            if rows.get(key) != value:
                raise IndexError_(
                    f"index schema {schema!r} was built with {key}={rows.get(key)!r}, "
                    f"but this configuration uses {value!r}; rebuild the index or use another database"
                )
