"""Residency routing: which database and schema hold each region's index, and pools to reach them.

Each region has a DSN per duty: the owner's (migrations), the writer's (ingest) and the reader's
(the API), and where the API appends its records (the audit and the agents' ledger, as the reader
role: the reader's own DSN unless the reader's is a read-only replica). A process is given only the
duty it needs, and a config may leave out the DSNs of the duties it does not serve. Pools open on first use and are counted, so a caller's request opens only
the regions it may read.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from groundwork.enums import Role
from groundwork.errors import ConfigError, IndexError_
from groundwork.settings import GroundworkConfig, redact_dsn
from indexes.embedded import EmbeddedServer

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "groundwork"


@dataclass(frozen=True, slots=True)
class RegionTarget:
    """Where one region's index lives: DSNs per role and the schema inside that database."""

    region: str
    dsn: str | None
    schema: str
    reader_dsn: str | None
    writer_dsn: str | None
    #: Where the API appends audit and ledger rows as the reader role, when not the reader's DSN.
    audit_dsn: str | None = None

    def dsn_for(self, role: Role) -> str:
        """The DSN to connect with as ``role``; a clear error when the config gives none."""
        dsn = {Role.OWNER: self.dsn, Role.READER: self.reader_dsn, Role.WRITER: self.writer_dsn}[role]
        if dsn is None:
            setting = {
                Role.OWNER: "database.url (or GROUNDWORK_DATABASE_URL)",
                Role.READER: "database.reader_url (or GROUNDWORK_DATABASE_READER_URL)",
                Role.WRITER: "database.writer_url (or GROUNDWORK_DATABASE_WRITER_URL)",
            }[role]
            raise ConfigError(f"no database URL for the {role} role of region {self.region!r}: set {setting}")
        return dsn

    @property
    def owner_dsn(self) -> str:
        """The owner's DSN (migrations, version switches, table rewrites)."""
        return self.dsn_for(Role.OWNER)

    def __repr__(self) -> str:
        shown = redact_dsn(self.dsn) if self.dsn else None
        return f"RegionTarget(region={self.region!r}, dsn={shown!r}, schema={self.schema!r})"


def as_user(dsn: str, user: str) -> str:
    """``dsn`` with its user replaced and any password removed."""
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    params["user"] = user
    return make_conninfo(**params)  # type: ignore[arg-type]  # psycopg's stub is narrower than its API


def embedded_data_dir(config: GroundworkConfig) -> Path:
    """The data folder of the embedded server for this config."""
    return config.database.embedded.data_dir or (config.state_dir / "pgdata")


def uses_embedded(config: GroundworkConfig) -> bool:
    """True when no database URL is configured for any duty, so the embedded server holds the indexes."""
    db = config.database
    urls = (
        db.url,
        db.urls,
        db.reader_url,
        db.writer_url,
        db.reader_urls,
        db.writer_urls,
        db.audit_url,
        db.audit_urls,
    )
    return not any(urls)


def resolve_targets(config: GroundworkConfig, *, create: bool = True) -> dict[str, RegionTarget]:
    """Map every region to its database, starting the embedded server if it is the default.

    - ``database.urls`` (or only per-region role URLs): one database per region, schema ``groundwork``;
    - ``database.url`` (or only ``reader_url`` / ``writer_url``): one database for all, one schema
      per region (``groundwork_<region>``);
    - none: the embedded server, one database per region (``groundwork_<region>``), which serves all
      three duties. With ``create`` false (a process that only reads) no database is created.
    """
    db = config.database
    owner: dict[str, str | None] = {}
    per_region = bool(db.urls) or (
        db.url is None
        and db.reader_url is None
        and db.writer_url is None
        and bool(db.reader_urls or db.writer_urls)
    )
    if uses_embedded(config):
        server = EmbeddedServer(embedded_data_dir(config))
        server.start()
        for region in config.regions:
            name = f"groundwork_{region}"
            if create:
                _ensure_database(server.dsn("postgres"), name)
            owner[region] = server.dsn(name)
    elif db.urls:
        owner = {r: db.urls[r].get_secret_value() for r in config.regions}
    else:
        url = db.url.get_secret_value() if db.url is not None else None
        owner = dict.fromkeys(config.regions, url)

    def role_dsn(per: dict[str, object], one: object, region: str, dsn: str | None, user: str) -> str | None:
        given = per.get(region) or one
        if given is not None:
            return given.get_secret_value()  # type: ignore[attr-defined]
        return as_user(dsn, user) if dsn is not None else None

    return {
        r: RegionTarget(
            region=r,
            dsn=dsn,
            schema=DEFAULT_SCHEMA if per_region or uses_embedded(config) else f"{DEFAULT_SCHEMA}_{r}",
            reader_dsn=role_dsn(dict(db.reader_urls), db.reader_url, r, dsn, db.reader_role),
            writer_dsn=role_dsn(dict(db.writer_urls), db.writer_url, r, dsn, db.writer_role),
            audit_dsn=role_dsn(dict(db.audit_urls), db.audit_url, r, None, db.reader_role),
        )
        for r, dsn in owner.items()
    }


def _ensure_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                logger.info("created database %s", name)
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it first


def ensure_extension(target: RegionTarget) -> None:
    """Create the vector extension (as the owner) so pools can register the type."""
    try:
        with (
            psycopg.connect(target.owner_dsn, autocommit=True, connect_timeout=15) as conn,
            conn.transaction(),
        ):
            # Processes preparing a new database at once (parallel backfill steps) take turns:
            # IF NOT EXISTS alone still races on the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('groundwork-extension'))")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise IndexError_(
            f"cannot prepare the {target.region!r} index database at {redact_dsn(target.owner_dsn)}: "
            f"{type(exc).__name__}: {exc.diag.message_primary or 'connection failed'}"
        ) from exc


def _configure_reader(conn: psycopg.Connection) -> None:
    register_vector(conn)
    row = conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    conn.commit()
    if row is None or row[0]:
        raise IndexError_("the retrieval API's database role bypasses row-level security; refusing it")


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.commit()


class RegionPools:
    """One connection pool per region for one role, opened on first use; ``opened`` counts them."""

    def __init__(
        self,
        targets: dict[str, RegionTarget],
        *,
        role: Role = Role.WRITER,
        max_size: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self.targets = targets
        self.role = role
        self.max_size = max_size
        self.timeout = timeout
        self._pools: dict[str, ConnectionPool] = {}
        self.opened: Counter[str] = Counter()

    @property
    def regions(self) -> list[str]:
        """The regions these pools can reach."""
        return sorted(self.targets)

    def pool(self, region: str) -> ConnectionPool:
        """The pool for ``region``, opening it if needed."""
        if region not in self.targets:
            raise ConfigError(f"no database is configured for region {region!r}; known: {self.regions}")
        pool = self._pools.get(region)
        if pool is None:
            target = self.targets[region]
            dsn = target.dsn_for(self.role)
            pool = ConnectionPool(
                dsn,
                min_size=1,
                max_size=self.max_size,
                configure=_configure_reader if self.role == Role.READER else _configure,
                open=False,
                timeout=self.timeout,
                kwargs={"connect_timeout": max(1, int(self.timeout))},
                name=f"groundwork-{region}-{self.role}",
            )
            try:
                pool.open(wait=True, timeout=self.timeout)
            except Exception as exc:  # psycopg_pool raises PoolTimeout wrapping the real cause
                pool.close()
                raise IndexError_(
                    f"cannot connect to the {region!r} index database as {self.role} at {redact_dsn(dsn)}: "
                    f"{type(exc).__name__}"
                ) from exc
            self._pools[region] = pool
            self.opened[region] += 1
        return pool

    def close(self) -> None:
        """Close every open pool."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
