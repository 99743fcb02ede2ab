"""A whole ingest without Dagster, in this process: tests, benchmarks and the backfill's steps.

The Dagster ``ingest`` job runs the same: its ``source_documents`` asset plans, its index assets
carry out the plan.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from orchestration.services import Services
from pipelines.planning import Plan, plan_run
from pipelines.streaming import StreamReport, ingest_plan
from pipelines.writing import IndexReport

logger = logging.getLogger(__name__)


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


def process_region(services: Services, plan: Plan, region: str) -> StreamReport:
    """Carry out a plan in one region while other steps carry it out in theirs, at the same time.

    A document moving (or renamed) from here into another region is copied by that region's step,
    which then deletes the copy here: purging it here first could race the copy and lose its
    embeddings. This step deletes, in the same way, the old copies of what it moved in.
    """
    leaving = {(t.document_id, o) for t, o in plan.moves if o == region != t.governance.residency}
    leaving |= {(old, o) for t, old, o in plan.renames if o == region != t.governance.residency}
    view = replace(
        plan,
        purges=[p for p in plan.purges if p not in leaving],
        renames=[r for r in plan.renames if r[0].governance.residency == region],
    )
    report = ingest_plan(view, services.parts(), [region])
    failed = report.regions[region].failed_moves
    arrived = [(t.document_id, o) for t, o in plan.moves if t.governance.residency == region != o]
    arrived += [(old, o) for t, old, o in plan.renames if t.governance.residency == region != o]
    indexes = services.indexes()
    for doc_id, origin in arrived:
        if doc_id not in failed and indexes[origin].delete_document(doc_id):
            logger.info("deleted the %s copy of a document moved into %s", origin, region)
    return report


def run_all(services: Services) -> tuple[Plan, list[IndexReport]]:
    """Migrate, then plan and carry out the plan, holding the ingest run lock of every region;
    returns the plan and what each region's index got."""
    services.migrate()
    with services.catalog.run_lock():
        plan = plan_run(
            services.config, services.connectors, services.indexes(), run_id=f"local-{uuid.uuid4().hex}"
        )
        report = process(services, plan)
        finish_builds(services, plan, services.config.regions)
    return plan, list(report.regions.values())
