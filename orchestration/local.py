"""A whole ingest without Dagster, in this process: tests, benchmarks and the backfill's steps.

The Dagster ``ingest`` job runs the same: its ``source_documents`` asset plans, its index assets
carry out the plan.
"""

from __future__ import annotations

from orchestration.services import Services
from pipelines.planning import Plan, plan_run
from pipelines.streaming import StreamReport, ingest_plan
from pipelines.writing import IndexReport


def finish_builds(services: Services, plan: Plan, regions: list[str]) -> list[str]:
    """After a run: switch regions whose new index version is complete.

    Not after a run in which a source could not be listed: its documents were not rebuilt.
    """
    if plan.source_errors:
        return []
    return services.finish_builds(regions)


def process(services: Services, plan: Plan, regions: list[str] | None = None) -> StreamReport:
    """Carry out a plan in ``regions`` (default: all), streaming micro-batches through every stage."""
    return ingest_plan(plan, services.parts(), services.config.regions if regions is None else regions)


def run_all(services: Services) -> tuple[Plan, list[IndexReport]]:
    """Migrate, then plan and carry out the plan, holding the ingest run lock of every region;
    returns the plan and what each region's index got."""
    services.migrate()
    with services.catalog.run_lock():
        plan = plan_run(services.config, services.connectors, services.indexes())
        report = process(services, plan)
        finish_builds(services, plan, services.config.regions)
    return plan, list(report.regions.values())
