"""The long-lived parts one process needs, built lazily from the config: the edge passes this in."""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property

import psycopg

from connectors import Connector, build_connector
from groundwork.config import GroundworkConfig
from indexes.regions import RegionPools, RegionTarget, Role, ensure_extension, resolve_targets
from indexes.schema import ensure_schema, switch_version
from indexes.store import RegionIndex
from pipelines.embedding import Embedder
from pipelines.redact import Redactor

logger = logging.getLogger(__name__)

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure_offline() -> None:
    """Keep every library off the network: models and data come from installed packages."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class Services:
    """Connectors, region indexes, redactor and embedder for one config, each made on first use.

    ``role`` is the database role the index pools log in as: ``writer`` for ingest, ``reader`` for
    the retrieval API (row-level security applies to it).
    """

    def __init__(
        self,
        config: GroundworkConfig,
        *,
        role: Role = "writer",
        redactor: Redactor | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        configure_offline()
        self.config = config
        self.role: Role = role
        self._indexes: dict[str, RegionIndex] = {}
        self._builds: dict[str, str | None] = {}
        # Already-loaded models may be shared (a test session, a benchmark) instead of loading again.
        self._redactor = redactor
        self._embedder = embedder

    @cached_property
    def targets(self) -> dict[str, RegionTarget]:
        """Each region's database and schema (starts the embedded server when it is the default)."""
        return resolve_targets(self.config)

    @cached_property
    def pools(self) -> RegionPools:
        """Connection pools, one per region, opened on first use."""
        db = self.config.database
        return RegionPools(
            self.targets, role=self.role, max_size=db.pool_max_size, timeout=db.timeout_seconds
        )

    @cached_property
    def connectors(self) -> dict[str, Connector]:
        """One connector per source, by source name."""
        return {s.name: build_connector(s) for s in self.config.sources}

    @property
    def redactor(self) -> Redactor:
        """The Presidio redactor (its models load on first use)."""
        if self._redactor is None:
            self._redactor = Redactor(self.config.redaction)
        return self._redactor

    @property
    def embedder(self) -> Embedder:
        """The sentence-transformers embedder (its model loads on first use)."""
        if self._embedder is None:
            self._embedder = Embedder(self.config.embedding)
        return self._embedder

    def index_settings(self) -> dict[str, str]:
        """The settings this config builds an index version with (model, dimensions, chunking)."""
        return {
            "model": self.embedder.model_name,
            "dimensions": str(self.config.embedding.dimensions),
            "chunking": json.dumps(self.config.chunking.model_dump(), sort_keys=True),
        }

    def migrate(self, region: str) -> str | None:
        """Create or update ``region``'s schema, roles and policies, connecting as the owner.

        Returns the schema where a new index version is being built (the configured model or
        chunking differs from the live version's), or None. A reader never starts or drops a build.
        """
        target = self.targets[region]
        ensure_extension(target)
        db = self.config.database
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            build = ensure_schema(
                conn,
                target.schema,
                region=region,
                settings=self.index_settings(),
                reader=db.reader_role,
                writer=db.writer_role,
                builds=self.role != "reader",
            )
        if build is not None:
            logger.warning(
                "region %s: the configured model or chunking differs from the live index; building a "
                "new version in %s (the live one serves until it is complete)",
                region,
                build,
            )
        return build

    def index(self, region: str) -> RegionIndex:
        """The index of ``region`` (migrated on first use), reached as this process's role."""
        if region not in self._indexes:
            build = self.migrate(region)
            self._indexes[region] = RegionIndex(
                region, self.pools.pool(region), self.targets[region].schema, build_schema=build
            )
        return self._indexes[region]

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
            with psycopg.connect(self.targets[region].dsn, autocommit=True) as conn:
                settings = switch_version(conn, index.schema, reader=self.config.database.reader_role)
            index.build_schema = None
            switched.append(region)
            logger.info("region %s: switched to the new index version (model %s)", region, settings["model"])
        return switched

    def indexes(self) -> dict[str, RegionIndex]:
        """Every region's index."""
        return {r: self.index(r) for r in self.config.regions}

    def close(self) -> None:
        """Close database pools."""
        if "pools" in self.__dict__:
            self.pools.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
