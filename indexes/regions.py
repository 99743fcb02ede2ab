"""Residency routing: which database and schema hold each region's index, and pools to reach them.

Each region has an owner DSN (migrations) and role DSNs: the API's pools log in as the reader role,
ingest's as the writer role. Pools open on first use and are counted, so a caller's request opens
only the regions it may read.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from groundwork.config import GroundworkConfig, redact_dsn
from groundwork.errors import ConfigError, IndexError_
from indexes.embedded import EmbeddedServer

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "groundwork"

#: Which database role a process connects as: the API reads, ingest writes, migrations own.
Role = Literal["reader", "writer", "owner"]


@dataclass(frozen=True, slots=True)
class RegionTarget:
    """Where one region's index lives: DSNs per role and the schema inside that database."""

    region: str
    dsn: str
    schema: str
    reader_dsn: str
    writer_dsn: str

    def dsn_for(self, role: Role) -> str:
        """The DSN to connect with as ``role``."""
        return {"owner": self.dsn, "reader": self.reader_dsn, "writer": self.writer_dsn}[role]

    def __repr__(self) -> str:
        return f"RegionTarget(region={self.region!r}, dsn={redact_dsn(self.dsn)!r}, schema={self.schema!r})"


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
    """True when no database URL is configured, so the embedded server holds the indexes."""
    return config.database.url is None and not config.database.urls


def resolve_targets(config: GroundworkConfig) -> dict[str, RegionTarget]:
    """Map every region to its database, starting the embedded server if it is the default.

    - ``database.urls``: one database per region, schema ``groundwork``;
    - ``database.url``: one database for all, one schema per region (``groundwork_<region>``);
    - neither: the embedded server, one database per region (``groundwork_<region>``).
    """
    db = config.database
    owner: dict[str, tuple[str, str]] = {}
    if db.urls:
        owner = {r: (db.urls[r].get_secret_value(), DEFAULT_SCHEMA) for r in config.regions}
    elif db.url is not None:
        url = db.url.get_secret_value()
        owner = {r: (url, f"{DEFAULT_SCHEMA}_{r}") for r in config.regions}
    else:
        server = EmbeddedServer(embedded_data_dir(config))
        server.start()
        for region in config.regions:
            name = f"groundwork_{region}"
            _ensure_database(server.dsn("postgres"), name)
            owner[region] = (server.dsn(name), DEFAULT_SCHEMA)

    def role_dsn(explicit: dict[str, object], region: str, dsn: str, user: str) -> str:
        given = explicit.get(region)
        return given.get_secret_value() if given is not None else as_user(dsn, user)  # type: ignore[attr-defined]

    return {
        r: RegionTarget(
            region=r,
            dsn=dsn,
            schema=schema,
            reader_dsn=role_dsn(dict(db.reader_urls), r, dsn, db.reader_role),
            writer_dsn=role_dsn(dict(db.writer_urls), r, dsn, db.writer_role),
        )
        for r, (dsn, schema) in owner.items()
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
        with psycopg.connect(target.dsn, autocommit=True, connect_timeout=15) as conn, conn.transaction():
            # Processes preparing a new database at once (parallel backfill steps) take turns:
            # IF NOT EXISTS alone still races on the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('groundwork-extension'))")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise IndexError_(
            f"cannot prepare the {target.region!r} index database at {redact_dsn(target.dsn)}: "
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
        role: Role = "writer",
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
                configure=_configure_reader if self.role == "reader" else _configure,
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
