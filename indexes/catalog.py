"""Every region's index for one config and one database role: open, migrate, switch, verify.

A process makes one catalog for the duty it has. ``Role.READER`` (the API) only opens and checks
what exists; ``Role.WRITER`` (ingest) opens the indexes ``migrate`` prepared, with the version being
built if any. Schema changes, version switches and table rewrites connect as the owner, from
``groundwork migrate`` and from ingest, never from the API.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property

import psycopg

from groundwork.enums import Role
from groundwork.errors import IndexError_, IndexUnavailable, SchemaError
from groundwork.settings import GroundworkConfig, redact_dsn
from indexes.locks import RunLock
from indexes.regions import RegionPools, RegionTarget, ensure_extension, resolve_targets
from indexes.schema import SCHEMA_VERSION, build_schema_name, ensure_schema, read_meta, switch_version
from indexes.store import RegionIndex

logger = logging.getLogger(__name__)


class IndexCatalog:
    """The region indexes of ``config``, reached as ``role``, each opened on first use."""

    def __init__(
        self,
        config: GroundworkConfig,
        *,
        role: Role = Role.WRITER,
        targets: dict[str, RegionTarget] | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self._given_targets = targets
        self._indexes: dict[str, RegionIndex] = {}

    @cached_property
    def targets(self) -> dict[str, RegionTarget]:
        """Each region's database and schema (starts the embedded server when it is the default)."""
        if self._given_targets is not None:
            return self._given_targets
        return resolve_targets(self.config, create=self.role != Role.READER)

    @cached_property
    def _records_apart(self) -> IndexCatalog | None:
        """The regions whose audit and ledger live at another URL than their reader's, as a reader's catalog."""
        apart = {
            region: replace(target, reader_dsn=target.audit_dsn, audit_dsn=None)
            for region, target in self.targets.items()
            if target.audit_dsn is not None and target.audit_dsn != target.reader_dsn
        }
        if self.role != Role.READER or not apart:
            return None
        return IndexCatalog(self.config, role=Role.READER, targets=apart)

    def records(self, region: str) -> RegionIndex:
        """Where the API appends ``region``'s audit rows and agents' ledger, and reads the ledger back.

        The region's own index, unless ``database.audit_url(s)`` names another URL (the writable
        primary of a read-only replica the reader's URL points at).
        """
        apart = self._records_apart
        if apart is not None and region in apart.targets:
            return apart.index(region)
        return self.index(region)

    @cached_property
    def pools(self) -> RegionPools:
        """Connection pools, one per region, opened on first use."""
        db = self.config.database
        return RegionPools(
            self.targets, role=self.role, max_size=db.pool_max_size, timeout=db.timeout_seconds
        )

    @property
    def _connect_timeout(self) -> int:
        return max(1, int(self.config.database.timeout_seconds))

    @property
    def regions(self) -> list[str]:
        """The regions the config stores documents in."""
        return self.config.regions

    def index(self, region: str) -> RegionIndex:
        """The index of ``region`` as it stands; a missing or outdated schema is a :class:`SchemaError`."""
        if region not in self._indexes:
            target = self.targets[region]
            schema = target.schema
            # One plain connection first: on a database never migrated, a pool would retry until its
            # timeout (its connections cannot register the vector type) and then say less than this.
            try:
                with psycopg.connect(
                    target.dsn_for(self.role), connect_timeout=self._connect_timeout
                ) as conn:
                    meta = check_schema(conn, schema)
            except psycopg.OperationalError as exc:
                raise IndexUnavailable(
                    f"cannot connect to the {region!r} index database as the {self.role}: {connect_failure(exc)}"
                ) from exc
            pool = self.pools.pool(region)
            building = self.role != Role.READER and any(k.startswith("build.") for k in meta)
            self._indexes[region] = RegionIndex(
                region, pool, schema, build_schema=build_schema_name(schema) if building else None
            )
        return self._indexes[region]

    def indexes(self) -> dict[str, RegionIndex]:
        """Every region's index."""
        return {r: self.index(r) for r in self.regions}

    def migrate(self, region: str, settings: dict[str, str], *, repair: bool = False) -> str | None:
        """Create or update ``region``'s schema, roles and policies, connecting as the owner.

        ``settings`` are what the index version is built with (:func:`indexes.schema.version_settings`).
        Returns the schema where a new index version is being built (they differ from the live
        version's), or None. ``repair`` re-runs every statement on an index already up to date.
        """
        if self.role == Role.READER:
            raise IndexError_(
                "a reader never migrates: run `groundwork migrate` with the owner's credentials"
            )
        target = self.targets[region]
        ensure_extension(target)
        db = self.config.database
        with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
            build = ensure_schema(
                conn,
                target.schema,
                region=region,
                settings=settings,
                reader=db.reader_role,
                writer=db.writer_role,
                repair=repair,
            )
        if build is not None:
            logger.warning(
                "region %s: the configured model or chunking differs from the live index; building a "
                "new version in %s (the live one serves until it is complete)",
                region,
                build,
            )
        if region in self._indexes:
            self._indexes[region].build_schema = build
        return build

    def migrate_all(self, settings: dict[str, str], *, repair: bool = False) -> dict[str, str | None]:
        """Migrate every region; returns the schema of each region's version being built (or None)."""
        return {region: self.migrate(region, settings, repair=repair) for region in self.regions}

    def finish_builds(self, regions: list[str]) -> list[str]:
        """Switch every region among ``regions`` whose new index version is complete to it.

        Returns the regions switched. Complete means every live document is in the new version or
        failed there for a reason a retry cannot cure; until then the live version keeps serving.
        """
        switched = []
        for region in regions:
            index = self.index(region)
            if index.build_schema is None:
                continue
            missing = index.build_missing()
            if missing:
                logger.info("region %s: new index version still lacks %d live document(s)", region, missing)
                continue
            with psycopg.connect(self.targets[region].owner_dsn, autocommit=True) as conn:
                settings = switch_version(conn, index.schema, reader=self.config.database.reader_role)
            index.build_schema = None
            switched.append(region)
            logger.info("region %s: switched to the new index version (model %s)", region, settings["model"])
        return switched

    def run_lock(self, *, shared: bool = False) -> RunLock:
        """The ingest run lock over every region (exclusive for a run, shared for backfill shards)."""
        return RunLock(
            self.targets, {r: t.dsn_for(self.role) for r, t in self.targets.items()}, shared=shared
        )

    def verify_reader(self) -> dict[str, dict[str, str]]:
        """Check, before serving, that every region can be read safely; returns each region's settings.

        Refuses (:class:`SchemaError` or :class:`IndexError_`, saying what to do) when a region
        cannot be reached as the reader, its schema is missing or of another version, or the role
        could see past row-level security: a superuser, a ``BYPASSRLS`` role, or the tables' owner.
        Each check uses one short connection, so no region's pool is opened before a caller needs it.
        """
        found = {}
        for region, target in self.targets.items():
            dsn = target.dsn_for(Role.READER)
            try:
                with psycopg.connect(
                    dsn, connect_timeout=max(1, int(self.config.database.timeout_seconds))
                ) as conn:
                    _refuse_privileged(conn, region, target.schema)
                    found[region] = check_schema(conn, target.schema)
            except psycopg.OperationalError as exc:
                reason = connect_failure(exc)
                if "does not exist" in reason:
                    raise SchemaError(
                        f"region {region!r}: {reason} at {redact_dsn(dsn)}: run `groundwork migrate` "
                        "(or an ingest) with the owner's credentials first"
                    ) from exc
                raise IndexError_(
                    f"cannot connect to the {region!r} index database as the reader at {redact_dsn(dsn)}: {reason}"
                ) from exc
        if self._records_apart is not None:
            self._records_apart.verify_reader()
        return found

    def close(self) -> None:
        """Close database pools."""
        if "pools" in self.__dict__:
            self.pools.close()
        records = self.__dict__.get("_records_apart")
        if records is not None:
            records.close()

    def __enter__(self) -> IndexCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_failure(exc: psycopg.OperationalError) -> str:
    """The server's reason for refusing a connection (libpq's last ``FATAL:`` line; never a password)."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    _, fatal, reason = text.rpartition("FATAL:")
    return reason.strip() if fatal else exc.diag.message_primary or type(exc).__name__


def _refuse_privileged(conn: psycopg.Connection, region: str, schema: str) -> None:
    row = conn.execute(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:
        raise IndexError_(f"region {region!r}: the reader's role is not in pg_roles")
    user, superuser, bypass = row
    if superuser or bypass:
        raise SchemaError(
            f"region {region!r}: the serving role {user!r} is a superuser or has BYPASSRLS, so row-level "
            "security would not apply to it; serve as a role created NOSUPERUSER NOBYPASSRLS "
            "(database.reader_role, or database.reader_url)"
        )
    owner = conn.execute(
        "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'chunks'", (schema,)
    ).fetchone()
    if owner is not None and owner[0] == user:
        raise SchemaError(
            f"region {region!r}: the serving role {user!r} owns the index tables, so row-level security "
            "would not apply to it; serve as the reader role (database.reader_role, or database.reader_url)"
        )


def check_schema(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """The recorded settings of ``schema``'s index, read without changing anything.

    Raises :class:`SchemaError`, saying what to run, when the schema is missing or was made by
    another version of Groundwork: a process that only reads never creates or migrates it.
    """
    row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.index_meta",)).fetchone()
    if row is None or row[0] is None:
        raise SchemaError(
            f"the index schema {schema!r} does not exist in this database: run `groundwork migrate` "
            "(or an ingest) with the owner's credentials first"
        )
    try:
        meta = read_meta(conn, schema)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SchemaError(
            f"this role may not read {schema}.index_meta: run `groundwork migrate` to restore its grants"
        ) from exc
    found = meta.get("schema_version", "2")  # schema version 2 did not always record itself
    if found != SCHEMA_VERSION:
        raise SchemaError(
            f"the index schema {schema!r} is at version {found}, this Groundwork needs version "
            f"{SCHEMA_VERSION}: run `groundwork migrate` with the owner's credentials"
        )
    if "model" not in meta:
        raise SchemaError(f"the index schema {schema!r} records no embedding model: run `groundwork migrate`")
    return meta
