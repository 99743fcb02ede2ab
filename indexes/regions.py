"""Residency routing: which database and schema hold each region's index, and pools to reach them."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg_pool import ConnectionPool

from groundwork.config import GroundworkConfig, redact_dsn
from groundwork.errors import ConfigError, IndexError_
from indexes.embedded import EmbeddedServer

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "groundwork"


@dataclass(frozen=True, slots=True)
class RegionTarget:
    """Where one region's index lives: a DSN and a schema inside that database."""

    region: str
    dsn: str
    schema: str

    def __repr__(self) -> str:
        return f"RegionTarget(region={self.region!r}, dsn={redact_dsn(self.dsn)!r}, schema={self.schema!r})"


def embedded_data_dir(config: GroundworkConfig) -> Path:
    """The data folder of the embedded server for this config."""
    return config.database.embedded.data_dir or (config.state_dir / "pgdata")


def uses_embedded(config: GroundworkConfig) -> bool:
    """True when no database URL is configured, so the embedded server holds the indexes."""
    return config.database.url is None and not config.database.urls


def resolve_targets(config: GroundworkConfig) -> dict[str, RegionTarget]:
    """Map every region named by a source to its database, starting the embedded server if used.

    - ``database.urls``: one database per region, schema ``groundwork``;
    - ``database.url``: one database for all, one schema per region (``groundwork_<region>``);
    - neither: the embedded server, one database per region (``groundwork_<region>``).
    """
    db = config.database
    if db.urls:
        return {r: RegionTarget(r, db.urls[r].get_secret_value(), DEFAULT_SCHEMA) for r in config.regions}
    if db.url is not None:
        url = db.url.get_secret_value()
        return {r: RegionTarget(r, url, f"{DEFAULT_SCHEMA}_{r}") for r in config.regions}
    server = EmbeddedServer(embedded_data_dir(config))
    server.start()
    targets = {}
    for region in config.regions:
        name = f"groundwork_{region}"
        _ensure_database(server.dsn("postgres"), name)
        targets[region] = RegionTarget(region, server.dsn(name), DEFAULT_SCHEMA)
    return targets


def _ensure_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                logger.info("created database %s", name)
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it first


def _ensure_extension(target: RegionTarget) -> None:
    # The pool's configure hook registers the vector type, which must exist first.
    try:
        with psycopg.connect(target.dsn, autocommit=True, connect_timeout=15) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise IndexError_(
            f"cannot prepare the {target.region!r} index database at {redact_dsn(target.dsn)}: "
            f"{type(exc).__name__}: {exc.diag.message_primary or 'connection failed'}"
        ) from exc


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)


class RegionPools:
    """One connection pool per region, opened on first use. ``opened`` counts pools per region."""

    def __init__(self, targets: dict[str, RegionTarget], *, max_size: int = 8) -> None:
        self.targets = targets
        self.max_size = max_size
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
            _ensure_extension(target)
            pool = ConnectionPool(
                target.dsn,
                min_size=1,
                max_size=self.max_size,
                configure=_configure,
                open=False,
                name=f"groundwork-{region}",
            )
            try:
                pool.open(wait=True, timeout=15)
            except Exception as exc:  # psycopg_pool raises PoolTimeout wrapping the real cause
                pool.close()
                raise IndexError_(
                    f"cannot connect to the {region!r} index database at {redact_dsn(target.dsn)}: "
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

    def __enter__(self) -> RegionPools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
