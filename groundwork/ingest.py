"""Run the ingest job as a real Dagster run, recorded in the Dagster instance under ``DAGSTER_HOME``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import GroundworkConfig

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def dagster_home(config: GroundworkConfig) -> Path:
    """``$DAGSTER_HOME``, else the project's ``dagster_home/``, else one under the state folder."""
    env = os.environ.get("DAGSTER_HOME")
    if env:
        return Path(env).resolve()
    bundled = PROJECT_ROOT / "dagster_home"
    if (bundled / "dagster.yaml").is_file():
        return bundled
    return config.state_dir / "dagster_home"


def _use_dagster_home(config: GroundworkConfig) -> None:
    """Create the Dagster instance folder if needed and point ``DAGSTER_HOME`` at it."""
    home = dagster_home(config)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)


@dataclass(slots=True)
class IngestSummary:
    """What an ingest run did, from its materialization metadata."""

    run_id: str
    success: bool
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def run_ingest(config_path: Path, config: GroundworkConfig) -> IngestSummary:
    """Materialize every asset of the ingest job once, in process, and summarise the run."""
    _use_dagster_home(config)
    import dagster as dg

    from pipelines.definitions import INGEST_JOB, build_definitions

    defs = build_definitions(config_path, config)
    job = defs.resolve_job_def(INGEST_JOB)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            # Dagster's console logger prints every step event at debug level; keep problems only.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    summary = IngestSummary(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        summary.assets[mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items() if not isinstance(v.value, str) or "\n" not in v.value
        }
    for evaluation in result.get_asset_check_evaluations():
        summary.checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.passed
    return summary


def run_backfill(config_path: Path, config: GroundworkConfig, sources: list[str]) -> list[IngestSummary]:
    """Run the backfill job once per source (a partition), shards in parallel processes."""
    _use_dagster_home(config)
    import dagster as dg

    from groundwork.services import Services

    # Start the embedded server (if it is the default) and prepare every region's schema here, once,
    # rather than in every step process at the same moment.
    with Services(config) as services:
        for region in config.regions:
            services.migrate(region)
    previous = os.environ.get("GROUNDWORK_CONFIG")
    # The step processes rebuild the job from the config this names.
    os.environ["GROUNDWORK_CONFIG"] = str(config_path)
    try:
        summaries = _backfill_runs(dg, sources)
    finally:
        if previous is None:
            os.environ.pop("GROUNDWORK_CONFIG", None)
        else:
            os.environ["GROUNDWORK_CONFIG"] = previous
    return summaries


def _backfill_runs(dg: Any, sources: list[str]) -> list[IngestSummary]:
    from pipelines.definitions import backfill_job

    summaries = []
    with dg.DagsterInstance.get() as instance:
        for source in sources:
            logger.info("backfill of source %s", source)
            with dg.execute_job(
                dg.reconstructable(backfill_job),
                instance=instance,
                tags={"dagster/partition": source},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            ) as result:
                summary = IngestSummary(run_id=result.run_id, success=result.success)
                if result.success:
                    summary.assets[source] = result.output_for_node("finish_source")
            summaries.append(summary)
    return summaries
