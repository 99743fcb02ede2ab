"""Dagster sensors: start an ingest when a source changes, evaluate freshness checks."""

import json
from datetime import timedelta
from typing import Any

import dagster as dg

from connectors import build_connector
from groundwork.config import GroundworkConfig

#: An index not refreshed for this long fails its freshness check (the nightly schedule plus slack).
STALE_AFTER = timedelta(hours=26)


def build_source_change_sensor(config: GroundworkConfig, job: Any) -> dg.SensorDefinition:
    """A sensor that asks each connector for its change token and runs ``job`` when one moved.

    The cursor keeps the last token per source, so an unchanged source costs a stat walk, not a
    listing with content hashes.
    """

    @dg.sensor(
        name="source_change_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Runs the ingest job when a source's change token moves.",
    )
    def source_change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous: dict[str, str | None] = json.loads(context.cursor) if context.cursor else {}
        tokens = {s.name: build_connector(s).change_token() for s in config.sources}
        changed = sorted(
            name for name, token in tokens.items() if token is None or token != previous.get(name)
        )
        requests = []
        if changed:
            key = "|".join(f"{n}:{tokens[n]}" for n in changed)
            requests.append(
                dg.RunRequest(run_key=key, tags={"groundwork/changed_sources": ",".join(changed)})
            )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(tokens))

    return source_change_sensor


def build_freshness(
    index_keys: list[dg.AssetKey],
) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """Freshness checks on every region index (warn when stale) and the sensor that evaluates them."""
    checks = list(dg.build_last_update_freshness_checks(assets=index_keys, lower_bound_delta=STALE_AFTER))
    return checks, dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, name="index_freshness_sensor"
    )
