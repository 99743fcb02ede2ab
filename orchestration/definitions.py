"""The Dagster code location: wires assets, checks, the ingest job, its schedule and resources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from groundwork.offline import configure_offline
from groundwork.settings import GroundworkConfig, load_config, resolve_config_path
from orchestration.assets import (
    GROUP,
    build_index_assets,
    build_region_index_assets,
    expired_documents_purge,
    expired_records_purge,
    source_documents,
)
from orchestration.backfill import build_backfill_job
from orchestration.checks import build_index_checks
from orchestration.executors import build_executor, plan_io_manager, step_isolated
from orchestration.resources import BACKFILL_JOB, INGEST_JOB, RETENTION_JOB, GroundworkResource
from orchestration.sensors import build_source_change_sensor

__all__ = [
    "BACKFILL_JOB",
    "INGEST_JOB",
    "RETENTION_JOB",
    "backfill_job",
    "build_definitions",
    "defs",
    "ingest_job",
]


def build_definitions(config_path: Path, config: GroundworkConfig) -> dg.Definitions:
    """Definitions for one config: one index asset per residency region it names.

    The plan passes to the index assets through the in-memory IO manager, in process (it holds
    references, never content); the index assets stream the documents through every stage. Under a
    step-isolated executor (``orchestration.executor``) each region's index is a step of its own
    and the plan goes through the instance's storage (see :mod:`orchestration.executors`). The
    backfill job runs one source per partition with its shards in parallel processes; only shard
    numbers and counts go through its filesystem IO manager.
    """
    ingest = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        description="List sources, partition, redact, tag, chunk, embed and index new or changed documents.",
    )
    retention = dg.define_asset_job(
        RETENTION_JOB,
        selection=dg.AssetSelection.assets(expired_documents_purge, expired_records_purge),
        description="Erase documents past their source's retention period, and audit and ledger rows past theirs.",
    )
    resource = GroundworkResource(config_path=str(config_path))
    return dg.Definitions(
        assets=[
            source_documents,
            *(
                build_region_index_assets(config.regions)
                if step_isolated(config.orchestration)
                else [build_index_assets(config.regions)]
            ),
            expired_documents_purge,
            expired_records_purge,
        ],
        asset_checks=build_index_checks(config.regions),
        sensors=[build_source_change_sensor(config, ingest)],
        jobs=[ingest, retention, build_backfill_job(config, resource)],
        schedules=[
            dg.ScheduleDefinition(
                name="nightly_ingest",
                job=ingest,
                cron_schedule="0 2 * * *",
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.STOPPED,
            ),
            dg.ScheduleDefinition(
                name="daily_retention",
                job=retention,
                cron_schedule="0 3 * * *",
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            ),
        ],
        resources={
            "groundwork": resource,
            "io_manager": plan_io_manager(config.orchestration),
        },
        executor=build_executor(config.orchestration),
    )


def backfill_job(config_path: str) -> dg.JobDefinition:
    """The backfill job of the config at ``config_path`` (rebuilt in each step process)."""
    configure_offline()
    path = Path(config_path)
    return build_definitions(path, load_config(path)).resolve_job_def(BACKFILL_JOB)


def ingest_job(config_path: str) -> dg.JobDefinition:
    """The ingest job of the config at ``config_path`` (rebuilt in each step process)."""
    configure_offline()
    path = Path(config_path)
    return build_definitions(path, load_config(path)).resolve_job_def(INGEST_JOB)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location the Dagster UI loads, for the config named by ``$GROUNDWORK_CONFIG``."""
    configure_offline()
    path = resolve_config_path(None)
    return build_definitions(path, load_config(path))
