"""Dagster sensors: start an ingest when a source changes."""

import json
from typing import Any

import dagster as dg

from connectors import build_connector
from groundwork.settings import GroundworkConfig


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
