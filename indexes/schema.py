"""The per-region index schema, its roles and its row-level security.

Tables: documents, chunks (pgvector, HNSW cosine), ingest_failures, retrieval_audit, index_meta, and
the agents' ledger (agent_searches, action_checks, agent_events: see :data:`indexes.ddl.LEDGER`).

Who may do what is enforced by PostgreSQL, not by the application:

- the **reader** role (the retrieval API) can SELECT documents and chunks only through RLS policies
  that compare each row's ``access`` grants and ``residency`` with the caller's, which the API sets
  per transaction (``groundwork.grants``, ``groundwork.regions``). With nothing set, it sees nothing.
  It may INSERT into retrieval_audit and nothing else; it owns nothing and cannot bypass RLS.
- the **writer** role (ingest) may write documents, chunks and failures, and only rows whose
  residency is this index's region.
- retrieval_audit and erasures (the tombstones of forgotten and expired documents: who, when,
  which id, never content) are append-only for everyone, the owner included, but for the daily
  purge of audit rows past ``records.audit_retention_days`` (the ledger's likewise); tombstones stay.
"""

from __future__ import annotations

import hashlib
import json

import psycopg
from psycopg import sql

from groundwork.errors import IndexError_
from groundwork.settings import GroundworkConfig
from indexes import ddl

#: The layout this code reads and writes. ``groundwork migrate`` (and every ingest, which runs it
#: first) brings an older schema up to it in place: every statement in :mod:`indexes.ddl` is idempotent.
#: 3: documents.fingerprint (cheap listing), the audit and tombstones refuse TRUNCATE.
#: 4: the agents' ledger (agent_searches, action_checks, agent_events).
#: 5: lineage (documents.run_id, decided_by), the source's own permissions (source_access) and the
#: forgotten content's digest in its tombstone.
#: 6: audit and ledger rows past their retention (``records``) may leave, by ``purge_records`` only.
SCHEMA_VERSION = "6"


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


#: The settings an index version is built with; changing any of them builds a new version.
VERSION_SETTINGS = ("model", "dimensions", "chunking", "redaction")
#: Settings an index built before they were recorded is rebuilt for: what it was redacted with is
#: unknown, so its stored text is redacted again under the current policy.
_UNKNOWN_MEANS_CHANGED = frozenset({"redaction"})


def version_settings(config: GroundworkConfig, *, redaction: str) -> dict[str, str]:
    """The settings this config builds an index version with (see :data:`VERSION_SETTINGS`).

    ``redaction`` is the redaction policy version (a digest the redaction stage computes).

    The embedding backend is recorded in ``model`` and nowhere else: a backend other than torch
    appends its name (``...+onnx-int8``, see :attr:`EmbeddingConfig.model_name`), so switching it
    builds a new version, while torch keeps the name indexes were always recorded with and changes
    nothing for them. A separate key would not do: :func:`ensure_schema` compares only
    :data:`VERSION_SETTINGS`, and takes a key the live version never recorded to be the current one.
    """
    return {
        "model": config.embedding.model_name,
        "dimensions": str(config.embedding.dimensions),
        "chunking": json.dumps(config.chunking.model_dump(), sort_keys=True),
        "redaction": redaction,
    }


def build_schema_name(schema: str) -> str:
    """Where the next version of ``schema``'s index is built while the live one serves."""
    return f"{schema}__build"


def version_lock_key(schema: str) -> str:
    """Advisory lock key: searches hold it shared, the switch to a new version exclusively."""
    return f"groundwork-index:{schema}"


def _create_version(
    conn: psycopg.Connection, schema: str, *, dims: int, region: str, reader: str, writer: str, live: bool
) -> None:
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL(ddl.DATA_TABLES).format(schema=ident, dims=sql.Literal(dims)))
    reader_usage = (
        sql.SQL("GRANT SELECT ON {schema}.documents, {schema}.chunks TO {reader};").format(
            schema=ident, reader=sql.Identifier(reader)
        )
        if live
        else sql.SQL("")
    )
    conn.execute(
        sql.SQL(ddl.DATA_SECURITY).format(
            schema=ident,
            reader=sql.Identifier(reader),
            writer=sql.Identifier(writer),
            region=sql.Literal(region),
            reader_usage=reader_usage,
        )
    )


def _ddl_digest(*, region: str, reader: str, writer: str) -> str:
    """What an index's DDL depends on: the statements, the region and the role names."""
    parts = (
        SCHEMA_VERSION,
        ddl.TABLES,
        ddl.SECURITY,
        ddl.DATA_TABLES,
        ddl.DATA_SECURITY,
        ddl.LEDGER,
        region,
        reader,
        writer,
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _settled(
    conn: psycopg.Connection, schema: str, settings: dict[str, str], digest: str
) -> tuple[bool, str | None]:
    """(nothing to change, what :func:`ensure_schema` returns then) for an index already migrated."""
    if conn.execute("SELECT to_regclass(%s)", (f"{schema}.index_meta",)).fetchone() == (None,):
        return False, None
    meta = read_meta(conn, schema)
    if meta.get("schema_version") != SCHEMA_VERSION or meta.get("ddl_digest") != digest:
        return False, None
    building = any(k.startswith("build.") for k in meta)
    if not building and all(meta.get(k) == settings[k] for k in VERSION_SETTINGS):
        return True, None
    if building and all(meta.get(f"build.{k}") == settings[k] for k in VERSION_SETTINGS):
        return True, build_schema_name(schema)
    return False, None


def read_meta(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """The index's recorded settings: the live version's, and ``build.*`` for one being built."""
    return dict(conn.execute(sql.SQL("SELECT key, value FROM {}.index_meta").format(sql.Identifier(schema))))


def _forget_build(conn: psycopg.Connection, schema: str) -> None:
    """Drop the version being built beside ``schema`` (if any) and its recorded settings."""
    conn.execute(
        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(build_schema_name(schema)))
    )
    conn.execute(
        sql.SQL("DELETE FROM {}.index_meta WHERE key LIKE 'build.%%'").format(sql.Identifier(schema))
    )


def _put_meta(conn: psycopg.Connection, schema: str, values: dict[str, str]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {}.index_meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                " WHERE index_meta.value IS DISTINCT FROM EXCLUDED.value"
            ).format(sql.Identifier(schema)),
            list(values.items()),
        )


def ensure_schema(
    conn: psycopg.Connection,
    schema: str,
    *,
    region: str,
    settings: dict[str, str],
    reader: str,
    writer: str,
    repair: bool = False,
) -> str | None:
    """Create or update the schema, grants and policies; returns the schema of a version being built.

    A new index takes ``settings`` (see :data:`VERSION_SETTINGS`). An index built with other
    settings (another embedding model or size, other chunking) stays live and searchable while the
    next version is built beside it, in :func:`build_schema_name`; :func:`switch_version` makes that
    version live once it is complete. Returns that schema's name, or None when the live version
    already has these settings. Runs as the owner, from ``groundwork migrate`` (and ingest).

    An index this code already migrated (same schema version, statements, roles and settings) is
    left alone: its DDL would take exclusive table locks and could deadlock with a step of the same
    run that is writing to it. ``repair`` runs every statement anyway, re-creating what someone
    dropped by hand (``groundwork migrate`` does).
    """
    ident = sql.Identifier(schema)
    build = build_schema_name(schema)
    digest = _ddl_digest(region=region, reader=reader, writer=writer)
    ensure_roles(conn, reader, writer)
    with conn.transaction():
        # Serialise concurrent first runs: DDL with IF NOT EXISTS still races on catalog rows.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"groundwork-schema:{schema}",))
        if not repair:
            settled, pending = _settled(conn, schema, settings, digest)
            if settled:
                return pending
        conn.execute(sql.SQL(ddl.TABLES).format(schema=ident))
        conn.execute(
            sql.SQL(ddl.SECURITY).format(
                schema=ident, reader=sql.Identifier(reader), writer=sql.Identifier(writer)
            )
        )
        conn.execute(sql.SQL(ddl.LEDGER).format(schema=ident, reader=sql.Identifier(reader)))
        meta = read_meta(conn, schema)
        live_dims = int(meta.get("dimensions", settings["dimensions"]))
        _create_version(conn, schema, dims=live_dims, region=region, reader=reader, writer=writer, live=True)
        # A setting the live version never recorded (an index from before it was recorded) is
        # taken to be the current one.
        changed = [
            k
            for k in VERSION_SETTINGS
            if (k in meta and meta[k] != settings[k])
            or (k in _UNKNOWN_MEANS_CHANGED and k not in meta and "model" in meta)
        ]
        _put_meta(conn, schema, {"schema_version": SCHEMA_VERSION, "ddl_digest": digest})
        if not changed:
            _put_meta(conn, schema, settings)
            if any(k.startswith("build.") for k in meta):  # the change was undone: drop the build
                _forget_build(conn, schema)
            return None
        if any(meta.get(f"build.{k}") != settings[k] for k in VERSION_SETTINGS):
            # No build yet, or one for settings changed again since: start from empty.
            _forget_build(conn, schema)
        _create_version(
            conn,
            build,
            dims=int(settings["dimensions"]),
            region=region,
            reader=reader,
            writer=writer,
            live=False,
        )
        _put_meta(conn, schema, {f"build.{k}": settings[k] for k in VERSION_SETTINGS})
        return build


def switch_version(conn: psycopg.Connection, schema: str, *, reader: str) -> dict[str, str]:
    """Make the version built beside ``schema``'s live index live, and drop the old one, atomically.

    One transaction moves the old tables out, the new ones in, and updates the recorded settings;
    it waits for searches in flight (they hold the version lock shared) and searches that start
    meanwhile wait for it, so every search reads one version, never a mix. Returns the new settings.
    """
    ident = sql.Identifier(schema)
    build = sql.Identifier(build_schema_name(schema))
    old = sql.Identifier(f"{schema}__old")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (version_lock_key(schema),))
        meta = read_meta(conn, schema)
        new = {k: meta.get(f"build.{k}") for k in VERSION_SETTINGS}
        settings = {k: v for k, v in new.items() if v is not None}
        if len(settings) != len(VERSION_SETTINGS):
            raise IndexError_(f"no new version of index {schema!r} is being built")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE; CREATE SCHEMA {}").format(old, old))
        for table in ("chunks", "documents"):
            conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(ident, sql.Identifier(table), old))
        for table in ("documents", "chunks"):
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(build, sql.Identifier(table), ident)
            )
        conn.execute(
            sql.SQL("GRANT SELECT ON {s}.documents, {s}.chunks TO {r}").format(
                s=ident, r=sql.Identifier(reader)
            )
        )
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(old))
        _forget_build(conn, schema)  # its tables moved out: the schema is empty
        _put_meta(conn, schema, settings)
        # The next migration runs every statement again over the tables moved in.
        conn.execute(sql.SQL("DELETE FROM {}.index_meta WHERE key = 'ddl_digest'").format(ident))
    return settings
