"""The statements that create one region's index: tables, grants and row-level security.

Templates for :mod:`psycopg.sql` (``{schema}``, ``{reader}``, ``{writer}``, ``{region}``,
``{dims}``); :func:`indexes.schema.ensure_schema` runs them. Every statement is idempotent, so
running them again brings an older index up to date in place.
"""

#: Groundwork's own records of processing, by kind (``records.<kind>_retention_days``): the tables
#: the daily purge keeps to their period.
RECORD_TABLES: dict[str, tuple[str, ...]] = {
    "audit": ("retrieval_audit",),
    "ledger": ("agent_searches", "action_checks", "agent_events"),
}

#: The tables of one index version: what a model or chunking change rebuilds.
DATA_TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};

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
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS modified_at timestamptz;
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS fingerprint text;
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS decided_by text;
-- The source's own permissions as grants (NULL: the source keeps none); a reader needs one of them
-- as well as one of ``access`` (the operator's policy).
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS source_access text[];
ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS source_access text[];
"""

#: The tables that outlive index versions: settings, failures, the audit trail and tombstones.
TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.index_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

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

CREATE TABLE IF NOT EXISTS {schema}.erasures (
    erasure_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  uuid NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    by           text NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('forget', 'retention'))
);
CREATE INDEX IF NOT EXISTS erasures_document ON {schema}.erasures (document_id);
-- A forgotten document's content digest (sha256 of the fetched bytes, never the content): the same
-- content under another path or source id stays out.
ALTER TABLE {schema}.erasures ADD COLUMN IF NOT EXISTS content_digest text;
CREATE INDEX IF NOT EXISTS erasures_content ON {schema}.erasures (content_digest)
    WHERE content_digest IS NOT NULL;

CREATE OR REPLACE FUNCTION {schema}.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- The one change the audit accepts: scrub_audit() removing a forgotten document's chunk ids from a
-- row and replacing its query by the marker; every other column stays as it was.
CREATE OR REPLACE FUNCTION {schema}.audit_scrub_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('groundwork.audit_scrub', true) IS DISTINCT FROM 'on'
       OR NEW.query_redacted IS DISTINCT FROM '[erased]'
       OR NOT (NEW.chunk_ids <@ OLD.chunk_ids)
       OR to_jsonb(NEW) - 'chunk_ids' - 'query_redacted' IS DISTINCT FROM to_jsonb(OLD) - 'chunk_ids' - 'query_redacted'
    THEN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION {schema}.scrub_audit(doc_chunk_ids uuid[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET groundwork.audit_scrub = 'on'
AS $$
DECLARE
    scrubbed integer;
BEGIN
    IF EXISTS (SELECT 1 FROM {schema}.chunks WHERE chunk_id = ANY (doc_chunk_ids)) THEN
        RAISE EXCEPTION 'scrub_audit: only the chunk ids of erased documents may be scrubbed';
    END IF;
    UPDATE {schema}.retrieval_audit a
    SET chunk_ids = ARRAY(SELECT u.c FROM unnest(a.chunk_ids) WITH ORDINALITY AS u(c, n)
                          WHERE NOT u.c = ANY (doc_chunk_ids) ORDER BY u.n),
        query_redacted = '[erased]'
    WHERE a.audit_id IN (SELECT x.audit_id FROM {schema}.retrieval_audit x, unnest(x.chunk_ids) AS c(id)
                         WHERE c.id IN (SELECT unnest(doc_chunk_ids)));
    GET DIAGNOSTICS scrubbed = ROW_COUNT;
    RETURN scrubbed;
END $$;

-- A row of the audit or the ledger may be deleted only by purge_records(), and only when older than
-- the cutoff it sets while it runs (the records' retention period): never a recent row, the
-- owner included. TG_ARGV[0] names the cutoff: 'audit' or 'ledger'.
CREATE OR REPLACE FUNCTION {schema}.refuse_unless_past_retention() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := nullif(current_setting('groundwork.' || TG_ARGV[0] || '_purge_before', true), '')::timestamptz;
BEGIN
    IF cutoff IS NULL OR OLD.at >= cutoff THEN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
    END IF;
    RETURN OLD;
END $$;

DROP TRIGGER IF EXISTS retrieval_audit_append_only ON {schema}.retrieval_audit;
CREATE TRIGGER retrieval_audit_append_only BEFORE DELETE ON {schema}.retrieval_audit
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_unless_past_retention('audit');
CREATE INDEX IF NOT EXISTS retrieval_audit_at ON {schema}.retrieval_audit USING brin (at);
DROP TRIGGER IF EXISTS retrieval_audit_scrub_only ON {schema}.retrieval_audit;
CREATE TRIGGER retrieval_audit_scrub_only BEFORE UPDATE ON {schema}.retrieval_audit
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_scrub_only();
DROP TRIGGER IF EXISTS erasures_append_only ON {schema}.erasures;
CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE ON {schema}.erasures
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS retrieval_audit_no_truncate ON {schema}.retrieval_audit;
CREATE TRIGGER retrieval_audit_no_truncate BEFORE TRUNCATE ON {schema}.retrieval_audit
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS erasures_no_truncate ON {schema}.erasures;
CREATE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON {schema}.erasures
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
"""

SECURITY = """
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {reader}, {writer};
GRANT SELECT ON {schema}.index_meta TO {reader}, {writer};
GRANT INSERT ON {schema}.retrieval_audit TO {reader};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.ingest_failures TO {writer};
GRANT SELECT, INSERT ON {schema}.erasures TO {writer};
REVOKE ALL ON FUNCTION {schema}.scrub_audit(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.scrub_audit(uuid[]) TO {writer};

-- What the API's /metrics reports about the live index: counts and the last write, no row.
CREATE OR REPLACE FUNCTION {schema}.index_stats(
    OUT documents bigint, OUT chunks bigint, OUT failed bigint, OUT last_ingest timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT count(*), max(ingested_at) INTO documents, last_ingest FROM {schema}.documents;
    SELECT count(*) INTO chunks FROM {schema}.chunks;
    SELECT count(*) INTO failed FROM {schema}.ingest_failures;
END $$;
REVOKE ALL ON FUNCTION {schema}.index_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.index_stats() TO {reader};
"""

#: Grants and row-level security of one index version's tables. The reader may read only the live
#: version (``reader_usage`` is empty for a version being built).
DATA_SECURITY = """
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {writer};
{reader_usage}
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.documents, {schema}.chunks TO {writer};

ALTER TABLE {schema}.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE {schema}.chunks ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS reader_sees_granted ON {schema}.documents;
CREATE POLICY reader_sees_granted ON {schema}.documents FOR SELECT TO {reader}
    USING (access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ',')
           AND (source_access IS NULL
                OR source_access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ','))
           AND residency = ANY (string_to_array(nullif(current_setting('groundwork.regions', true), ''), ',')));
DROP POLICY IF EXISTS reader_sees_granted ON {schema}.chunks;
CREATE POLICY reader_sees_granted ON {schema}.chunks FOR SELECT TO {reader}
    USING (access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ',')
           AND (source_access IS NULL
                OR source_access && string_to_array(nullif(current_setting('groundwork.grants', true), ''), ','))
           AND residency = ANY (string_to_array(nullif(current_setting('groundwork.regions', true), ''), ',')));

DROP POLICY IF EXISTS writer_this_region ON {schema}.documents;
CREATE POLICY writer_this_region ON {schema}.documents FOR ALL TO {writer}
    USING (true) WITH CHECK (residency = {region});
DROP POLICY IF EXISTS writer_this_region ON {schema}.chunks;
CREATE POLICY writer_this_region ON {schema}.chunks FOR ALL TO {writer}
    USING (true) WITH CHECK (residency = {region});
"""


#: The agents' ledger (in every region's schema; the API uses the ledger region's): a summary of
#: each search, the action gate's answers and the chain events agents report. No document text;
#: an event's ``detail`` is redacted before it is written. Append-only like the audit. The reader
#: role (the API) reads and appends only its caller's rows (``groundwork.principal``, set per
#: transaction); the brakes read totals over everyone's through one SECURITY DEFINER function. Rows
#: older than ``records.ledger_retention_days`` leave by the ``purge_records`` function (owner only).
LEDGER = """
CREATE TABLE IF NOT EXISTS {schema}.agent_searches (
    request_id       uuid PRIMARY KEY,
    principal        text NOT NULL,
    conversation_id  text,
    at               timestamptz NOT NULL DEFAULT now(),
    decision         text NOT NULL,
    confidence       real NOT NULL,
    reasons          text[] NOT NULL,
    sources          text[] NOT NULL,
    regions          text[] NOT NULL,
    context_tokens   integer NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_searches_conversation
    ON {schema}.agent_searches (principal, conversation_id);

CREATE TABLE IF NOT EXISTS {schema}.action_checks (
    principal        text NOT NULL,
    idempotency_key  text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    action           text NOT NULL,
    conversation_id  text,
    request_ids      uuid[] NOT NULL,
    inputs_digest    text NOT NULL,
    allowed          boolean NOT NULL,
    decision         text NOT NULL,
    reasons          text[] NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX IF NOT EXISTS action_checks_conversation
    ON {schema}.action_checks (principal, conversation_id);

CREATE TABLE IF NOT EXISTS {schema}.agent_events (
    event_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal        text NOT NULL,
    conversation_id  text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    kind             text NOT NULL,
    action           text,
    idempotency_key  text,
    latency_ms       double precision,
    cost             double precision,
    detail           text
);
CREATE INDEX IF NOT EXISTS agent_events_conversation ON {schema}.agent_events (principal, conversation_id);
CREATE INDEX IF NOT EXISTS agent_events_action ON {schema}.agent_events (action, at);

CREATE OR REPLACE FUNCTION {schema}.action_outcomes(p_action text, p_since timestamptz, p_day timestamptz)
RETURNS TABLE (executed bigint, failed bigint, cost double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*) FILTER (WHERE kind = 'action_executed' AND at >= p_since),
           count(*) FILTER (WHERE kind = 'action_failed' AND at >= p_since),
           coalesce(sum(cost) FILTER (WHERE at >= p_day), 0)::double precision
    FROM {schema}.agent_events
    WHERE action = p_action AND at >= least(p_since, p_day)
$$;
REVOKE ALL ON FUNCTION {schema}.action_outcomes(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.action_outcomes(text, timestamptz, timestamptz) TO {reader};

GRANT SELECT, INSERT ON {schema}.agent_searches, {schema}.action_checks, {schema}.agent_events TO {reader};
ALTER TABLE {schema}.agent_searches ENABLE ROW LEVEL SECURITY;
ALTER TABLE {schema}.action_checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE {schema}.agent_events ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS caller_rows ON {schema}.agent_searches;
CREATE POLICY caller_rows ON {schema}.agent_searches FOR ALL TO {reader}
    USING (principal = current_setting('groundwork.principal', true))
    WITH CHECK (principal = current_setting('groundwork.principal', true));
DROP POLICY IF EXISTS caller_rows ON {schema}.action_checks;
CREATE POLICY caller_rows ON {schema}.action_checks FOR ALL TO {reader}
    USING (principal = current_setting('groundwork.principal', true))
    WITH CHECK (principal = current_setting('groundwork.principal', true));
DROP POLICY IF EXISTS caller_rows ON {schema}.agent_events;
CREATE POLICY caller_rows ON {schema}.agent_events FOR ALL TO {reader}
    USING (principal = current_setting('groundwork.principal', true))
    WITH CHECK (principal = current_setting('groundwork.principal', true));

DROP TRIGGER IF EXISTS agent_searches_append_only ON {schema}.agent_searches;
CREATE TRIGGER agent_searches_append_only BEFORE UPDATE OR TRUNCATE ON {schema}.agent_searches
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS action_checks_append_only ON {schema}.action_checks;
CREATE TRIGGER action_checks_append_only BEFORE UPDATE OR TRUNCATE ON {schema}.action_checks
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS agent_events_append_only ON {schema}.agent_events;
CREATE TRIGGER agent_events_append_only BEFORE UPDATE OR TRUNCATE ON {schema}.agent_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change();
DROP TRIGGER IF EXISTS agent_searches_past_retention ON {schema}.agent_searches;
CREATE TRIGGER agent_searches_past_retention BEFORE DELETE ON {schema}.agent_searches
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_unless_past_retention('ledger');
DROP TRIGGER IF EXISTS action_checks_past_retention ON {schema}.action_checks;
CREATE TRIGGER action_checks_past_retention BEFORE DELETE ON {schema}.action_checks
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_unless_past_retention('ledger');
DROP TRIGGER IF EXISTS agent_events_past_retention ON {schema}.agent_events;
CREATE TRIGGER agent_events_past_retention BEFORE DELETE ON {schema}.agent_events
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_unless_past_retention('ledger');
CREATE INDEX IF NOT EXISTS agent_searches_at ON {schema}.agent_searches USING brin (at);
CREATE INDEX IF NOT EXISTS action_checks_at ON {schema}.action_checks USING brin (at);
CREATE INDEX IF NOT EXISTS agent_events_at ON {schema}.agent_events USING brin (at);

-- The daily purge of the audit's and the ledger's rows past their retention (``records.*`` in the
-- config; NULL: keep that kind). Only the owner runs it; the floors repeat the config's, so a
-- mistaken call cannot take what the brakes still read. Returns the rows deleted of each kind.
CREATE OR REPLACE FUNCTION {schema}.purge_records(
    p_audit_days integer, p_ledger_days integer, OUT audit bigint, OUT ledger bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz;
    n bigint;
BEGIN
    audit := 0;
    ledger := 0;
    IF p_audit_days IS NOT NULL THEN
        IF p_audit_days < 1 THEN
            RAISE EXCEPTION 'purge_records: the audit is kept at least 1 day, not %', p_audit_days;
        END IF;
        cutoff := now() - make_interval(days => p_audit_days);
        PERFORM set_config('groundwork.audit_purge_before', cutoff::text, true);
        DELETE FROM {schema}.retrieval_audit WHERE at < cutoff;
        GET DIAGNOSTICS audit = ROW_COUNT;
        PERFORM set_config('groundwork.audit_purge_before', '', true);
    END IF;
    IF p_ledger_days IS NOT NULL THEN
        IF p_ledger_days < 8 THEN
            RAISE EXCEPTION 'purge_records: the ledger is kept at least 8 days, not %', p_ledger_days;
        END IF;
        cutoff := now() - make_interval(days => p_ledger_days);
        PERFORM set_config('groundwork.ledger_purge_before', cutoff::text, true);
        DELETE FROM {schema}.agent_searches WHERE at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        ledger := ledger + n;
        DELETE FROM {schema}.action_checks WHERE at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        ledger := ledger + n;
        DELETE FROM {schema}.agent_events WHERE at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        ledger := ledger + n;
        PERFORM set_config('groundwork.ledger_purge_before', '', true);
    END IF;
END $$;
REVOKE ALL ON FUNCTION {schema}.purge_records(integer, integer) FROM PUBLIC;
"""
