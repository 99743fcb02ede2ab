"""The per-region index schema, its roles and its row-level security.

Tables: documents, chunks (pgvector, HNSW cosine), ingest_failures, retrieval_audit, index_meta.

Who may do what is enforced by PostgreSQL, not by the application:

- the **reader** role (the retrieval API) can SELECT documents and chunks only through RLS policies
  that compare each row's ``access`` grants and ``residency`` with the caller's, which the API sets
  per transaction (``groundwork.grants``, ``groundwork.regions``). With nothing set, it sees nothing.
  It may INSERT into retrieval_audit and nothing else; it owns nothing and cannot bypass RLS.
- the **writer** role (ingest) may write documents, chunks and failures, and only rows whose
  residency is this index's region.
- retrieval_audit and erasures (the tombstones of forgotten and expired documents: who, when,
  which id, never content) are append-only for everyone, the owner included.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from groundwork.errors import IndexError_

SCHEMA_VERSION = "2"

_TABLES = """
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
ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX IF NOT EXISTS chunks_tsv_gin ON {schema}.chunks USING gin (tsv);

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

CREATE TABLE IF NOT EXISTS {schema}.retrieval_audit (
    audit_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      uuid NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    principal       text NOT NULL,
    auth_method     text NOT NULL,
    regions         text[] NOT NULL,
    query_redacted  text NOT NULL,
    k               integer NOT NULL,
    chunk_ids       uuid[] NOT NULL,
    decision        text NOT NULL,
    reasons         text[] NOT NULL,
    confidence      real NOT NULL
);

ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS modified_at timestamptz;

CREATE TABLE IF NOT EXISTS {schema}.erasures (
    erasure_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  uuid NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    by           text NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('forget', 'retention'))
);
CREATE INDEX IF NOT EXISTS erasures_document ON {schema}.erasures (document_id);

CREATE OR REPLACE FUNCTION {schema}.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

DROP TRIGGER IF EXISTS retrieval_audit_append_only ON {schema}.retrieval_audit;
CREATE TRIGGER retrieval_audit_append_only BEFORE UPDATE OR DELETE ON {schema}.retrieval_audit
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS erasures_append_only ON {schema}.erasures;
CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE ON {schema}.erasures
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
"""

_SECURITY = """
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {reader}, {writer};
GRANT SELECT ON {schema}.index_meta TO {reader}, {writer};
GRANT SELECT ON {schema}.documents, {schema}.chunks TO {reader};
GRANT INSERT ON {schema}.retrieval_audit TO {reader};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.documents, {schema}.chunks, {schema}.ingest_failures
    TO {writer};
GRANT SELECT, INSERT ON {schema}.erasures TO {writer};

ALTER TABLE {schema}.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE {schema}.chunks ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS reader_sees_granted ON {schema}.documents;
CREATE POLICY reader_sees_granted ON {schema}.documents FOR SELECT TO {reader}
    USING (access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ',')
           AND residency = ANY (string_to_array(nullif(current_setting('groundwork.regions', true), ''), ',')));
DROP POLICY IF EXISTS reader_sees_granted ON {schema}.chunks;
CREATE POLICY reader_sees_granted ON {schema}.chunks FOR SELECT TO {reader}
    USING (access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ',')
           AND residency = ANY (string_to_array(nullif(current_setting('groundwork.regions', true), ''), ',')));

DROP POLICY IF EXISTS writer_this_region ON {schema}.documents;
CREATE POLICY writer_this_region ON {schema}.documents FOR ALL TO {writer}
    USING (true) WITH CHECK (residency = {region});
DROP POLICY IF EXISTS writer_this_region ON {schema}.chunks;
CREATE POLICY writer_this_region ON {schema}.chunks FOR ALL TO {writer}
    USING (true) WITH CHECK (residency = {region});
"""


def ensure_roles(conn: psycopg.Connection, *roles: str) -> None:
    """Create the login roles if missing: no superuser, no BYPASSRLS, no CREATEROLE."""
    for role in roles:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            continue
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(
                        sql.Identifier(role)
                    )
                )
        except psycopg.errors.DuplicateObject:
            pass  # another region's migration created it first
        except psycopg.errors.InsufficientPrivilege as exc:
            raise IndexError_(
                f"role {role!r} does not exist and the configured database user may not create it; "
                f"create it (LOGIN NOBYPASSRLS) or set database.reader_role / writer_role"
            ) from exc


def ensure_schema(
    conn: psycopg.Connection,
    schema: str,
    *,
    region: str,
    dimensions: int,
    model: str,
    reader: str,
    writer: str,
) -> None:
    """Create or update the schema, grants and policies; refuse one built for another model or size."""
    ident = sql.Identifier(schema)
    ensure_roles(conn, reader, writer)
    with conn.transaction():
        # Serialise concurrent first runs: DDL with IF NOT EXISTS still races on catalog rows.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"groundwork-schema:{schema}",))
        conn.execute(sql.SQL(_TABLES).format(schema=ident, dims=sql.Literal(dimensions)))
        conn.execute(
            sql.SQL(_SECURITY).format(
                schema=ident,
                reader=sql.Identifier(reader),
                writer=sql.Identifier(writer),
                region=sql.Literal(region),
            )
        )
        rows: dict[str, str] = dict(
            conn.execute(sql.SQL("SELECT key, value FROM {}.index_meta").format(ident)).fetchall()
        )
        wanted = {"model": model, "dimensions": str(dimensions)}
        for key, value in wanted.items():
            if key in rows and rows[key] != value:
                raise IndexError_(
                    f"index schema {schema!r} was built with {key}={rows[key]!r}, "
                    f"but this configuration uses {value!r}; rebuild the index or use another database"
                )
        wanted["schema_version"] = SCHEMA_VERSION
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {}.index_meta (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                    " WHERE index_meta.value IS DISTINCT FROM EXCLUDED.value"
                ).format(ident),
                list(wanted.items()),
            )
