"""Run the Dagster jobs from the command line, recorded in this deployment's Dagster instance."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.settings import GroundworkConfig
from orchestration.services import Services

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


#: The instance settings every deployment's Dagster instance starts from (run concurrency, pools).
INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster_home" / "dagster.yaml"


def dagster_home(config: GroundworkConfig) -> Path:
    """This deployment's Dagster instance: ``$DAGSTER_HOME``, else ``dagster/`` in the config's state
    folder, so that the runs, materializations and lineage of one deployment never mix with another's
    (two configs that share a state folder share its embedded database and this instance too)."""
    env = os.environ.get("DAGSTER_HOME")
    if env:
        return Path(env).resolve()
    return config.state_dir / "dagster"


def prepare_dagster_home(config: GroundworkConfig) -> Path:
    """:func:`dagster_home`, created if needed; a new one gets the project's instance settings
    (``dagster_home/dagster.yaml``), which it then keeps as its own."""
    home = dagster_home(config)
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        template = (
            INSTANCE_TEMPLATE.read_text() if INSTANCE_TEMPLATE.is_file() else "telemetry:\n  enabled: false\n"
        )
        settings.write_text(template)
    return home


def _instance(config: GroundworkConfig) -> Any:
    """The Dagster instance of :func:`dagster_home`, created if needed (the environment is left as is)."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(prepare_dagster_home(config)))


@dataclass(slots=True)
class IngestSummary:
    """What an ingest run did, from its materialization metadata."""

    run_id: str
    success: bool
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def _check_not_busy(config: GroundworkConfig) -> None:
    """Fail fast, with a clear message, when another ingest run holds a region (before Dagster starts)."""
    with Services(config) as services:
        services.migrate()
        with services.catalog.run_lock():
            pass


def run_ingest(config_path: Path, config: GroundworkConfig) -> IngestSummary:
    """Materialize every asset of the ingest job once and summarise the run.

    In this process, step after step, unless ``orchestration.executor`` is ``multiprocess``: then
    each region's index runs in a process of its own. (A ``k8s`` config runs its steps here too:
    pods are for runs launched by the deployment.)
    """
    _check_not_busy(config)
    from orchestration.definitions import INGEST_JOB, build_definitions

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with _instance(config) as instance:
        if config.orchestration.executor == "multiprocess":
            import dagster as dg

            # The step processes rebuild the job from the config path they are given.
            job = dg.build_reconstructable_job(
                "orchestration.definitions",
                "ingest_job",
                reconstructable_kwargs={"config_path": str(config_path)},
            )
            with dg.execute_job(job, instance=instance, run_config=quiet) as result:
                return _summary(result)
        defs = build_definitions(config_path, config)
        # Dagster's console logger prints every step event at debug level; keep problems only.
        in_process = defs.resolve_job_def(INGEST_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet
        )
        return _summary(in_process)


def _summary(result: Any) -> IngestSummary:
    """What a finished ingest run did, from its events."""
    summary = IngestSummary(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        summary.assets[mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items() if not isinstance(v.value, str) or "\n" not in v.value
        }
    for evaluation in result.get_asset_check_evaluations():
        summary.checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.passed
    return summary


def run_backfill(config_path: Path, config: GroundworkConfig, sources: list[str]) -> list[IngestSummary]:
    """Run the backfill job once per source (a partition), shards in parallel processes."""
    import dagster as dg

    # Start the embedded server (if it is the default) and prepare every region's schema here, once,
    # rather than in every step process at the same moment.
    _check_not_busy(config)
    # The step processes rebuild the job from the config path they are given.
    job = dg.build_reconstructable_job(
        "orchestration.definitions", "backfill_job", reconstructable_kwargs={"config_path": str(config_path)}
    )
    summaries = []
    with _instance(config) as instance:
        for source in sources:
            logger.info("backfill of source %s", source)
            with dg.execute_job(
                job,
                instance=instance,
                tags={"dagster/partition": source},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            ) as result:
                summary = IngestSummary(run_id=result.run_id, success=result.success)
                if result.success:
                    summary.assets[source] = result.output_for_node("finish_source")
            summaries.append(summary)
    return summaries
