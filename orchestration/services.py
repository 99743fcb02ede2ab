"""The long-lived parts an ingest process needs, built lazily from the config: the edge passes this in."""

from __future__ import annotations

from functools import cached_property

from connectors import Connector, build_connector
from groundwork.enums import Role
from groundwork.settings import GroundworkConfig
from indexes.catalog import IndexCatalog
from indexes.regions import RegionTarget
from indexes.schema import version_settings
from indexes.store import RegionIndex
from pipelines.detectors import policy_version
from pipelines.embedding import Embedder
from pipelines.partition_pool import PartitionPool, shared_pool
from pipelines.redact import Redactor
from pipelines.streaming import Parts
from telemetry import Telemetry


class Services:
    """Connectors, region indexes (as the writer), redactor and embedder for one config.

    Each part is made on first use. Already-loaded models may be shared (a test session, a
    benchmark) instead of loading them again.
    """

    def __init__(
        self,
        config: GroundworkConfig,
        *,
        redactor: Redactor | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.catalog = IndexCatalog(config, role=Role.WRITER)
        self._redactor = redactor
        self._embedder = embedder

    @property
    def targets(self) -> dict[str, RegionTarget]:
        """Each region's database and schema."""
        return self.catalog.targets

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

    @property
    def partition_pool(self) -> PartitionPool:
        """The parser processes (shared by every run of this process, started on first use)."""
        return shared_pool(self.config.partitioning.workers, self.config.partitioning.memory_headroom_mb)

    def parts(self) -> Parts:
        """What a streaming ingest works with."""
        return Parts(
            config=self.config,
            connectors=self.connectors,
            redactor=self.redactor,
            embedder=self.embedder,
            pool=self.partition_pool,
            indexes=self.indexes(),
            tracer=self.telemetry.tracer("pipelines.streaming"),
        )

    @cached_property
    def telemetry(self) -> Telemetry:
        """Traces of this process's ingest stages (no-op tracers unless ``telemetry.enabled``)."""
        return Telemetry(self.config.telemetry)

    def index_settings(self) -> dict[str, str]:
        """What this config builds an index version with: model, dimensions, chunking, redaction policy."""
        return version_settings(self.config, redaction=policy_version(self.config.redaction))

    def migrate(self, *, repair: bool = False) -> dict[str, str | None]:
        """Bring every region's schema up to date as the owner (an ingest does this first).

        ``repair`` re-runs every statement even where the index is already up to date.
        """
        return self.catalog.migrate_all(self.index_settings(), repair=repair)

    def index(self, region: str) -> RegionIndex:
        """The index of ``region``, reached as the writer."""
        return self.catalog.index(region)

    def indexes(self) -> dict[str, RegionIndex]:
        """Every region's index."""
        return self.catalog.indexes()

    def finish_builds(self, regions: list[str]) -> list[str]:
        """Switch regions whose new index version is complete (see :class:`IndexCatalog`)."""
        return self.catalog.finish_builds(regions)

    def close(self) -> None:
        """Close database pools."""
        self.catalog.close()
        if "telemetry" in self.__dict__:
            self.telemetry.shutdown()  # exports what was decided

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
