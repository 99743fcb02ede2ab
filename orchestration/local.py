"""Every stage in order without Dagster, in this process: tests, benchmarks and the backfill's steps.

The Dagster ``ingest`` job runs the same stages, one asset each.
"""

from __future__ import annotations

from groundwork.records import Batch, EmbeddedDocument
from orchestration.services import Services
from pipelines.batches import chunk_all, embed_all, partition_all, redact_all
from pipelines.planning import Plan, plan_run
from pipelines.writing import IndexReport, index_all


def finish_builds(services: Services, plan: Plan, regions: list[str]) -> list[str]:
    """After a run: switch regions whose new index version is complete.

    Not after a run in which a source could not be listed: its documents were not rebuilt.
    """
    if plan.source_errors:
        return []
    return services.finish_builds(regions)


def process(services: Services, plan: Plan) -> tuple[Batch[EmbeddedDocument], list[IndexReport]]:
    """Partition, redact, chunk, embed and index a plan's documents in this process, in memory."""
    config = services.config
    parsed = partition_all(plan, services.connectors, config)
    embedded = embed_all(chunk_all(redact_all(parsed, services.redactor), config), services.embedder)
    return embedded, index_all(embedded, plan, config.regions, services.indexes())


def run_all(services: Services) -> tuple[Plan, list[IndexReport]]:
    """Migrate, then every stage in order, holding the ingest run lock of every region."""
    services.migrate()
    with services.catalog.run_lock():
        plan = plan_run(services.config, services.connectors, services.indexes())
        _, reports = process(services, plan)
        finish_builds(services, plan, services.config.regions)
    return plan, reports
