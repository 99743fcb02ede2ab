"""The example deployment under deploy/, checked by Dagster itself.

- deploy/dagster.yaml loads through Dagster's instance schema onto a real PostgreSQL (dagster-postgres
  with psycopg2), and a run of the ingest job's plan is recorded there and read back by another
  instance; the same file with a plain ``postgresql`` scheme fails (why the scheme is spelled out);
- deploy/workspace.yaml passes Dagster's workspace schema;
- deploy/groundwork.yaml is a valid Groundwork config whose ingest job runs on the k8s executor,
  and deploy/k8s/ingest_run_config.yaml passes that job's run-config schema (a typo does not);
- the Helm values agree with deploy/dagster.yaml, and their instance parts pass Dagster's schema;
- the Dockerfile installs what the Makefile installs, the same way, and runs offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml

from groundwork.settings import OrchestrationConfig, load_config
from orchestration.definitions import INGEST_JOB, build_definitions
from tests.conftest import PROJECT, copy_demo, demo_config_on, new_database
from tests.orchestration.pg_tcp import TcpServer, tcp_server

DEPLOY = PROJECT / "deploy"


@pytest.fixture(scope="module")
def dagster_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpServer]:
    """A PostgreSQL on 127.0.0.1 for Dagster's own storage."""
    with tcp_server(tmp_path_factory.mktemp("dagster_pg") / "pgdata") as server:
        yield server


def _home(
    tmp: Path, server: TcpServer, monkeypatch: pytest.MonkeyPatch, text: str | None = None
) -> tuple[Path, str]:
    """A DAGSTER_HOME holding deploy/dagster.yaml (or ``text``), its env pointing at a new database."""
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(text or (DEPLOY / "dagster.yaml").read_text())
    db = f"dagster_{tmp.name.lower()[-20:].replace('-', '_')}"
    server.create_database(db)
    monkeypatch.setenv("DAGSTER_PG_HOST", server.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(server.port))
    monkeypatch.setenv("DAGSTER_PG_DB", db)
    monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused-with-trust-auth")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home, db


def test_the_instance_config_runs_on_postgres(
    tmp_path: Path, dagster_pg: TcpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = _home(tmp_path, dagster_pg, monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.storage_directory() == str(home / "storage")
        limits = instance.get_concurrency_config()
        assert limits.run_queue_config is not None
        tags = {(t["value"], t["limit"]) for t in limits.run_queue_config.tag_concurrency_limits}
        assert tags == {("ingest", 1), ("backfill", 2)}
        assert limits.pool_config.default_pool_limit == 4


def test_a_run_is_recorded_in_postgres_and_read_back(
    tmp_path: Path, dagster_pg: TcpServer, pg_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    home, db = _home(tmp_path, dagster_pg, monkeypatch)
    config_path = copy_demo(tmp_path / "demo")
    config = demo_config_on(config_path, new_database(pg_server))
    job = build_definitions(config_path, config).resolve_job_def(INGEST_JOB)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The plan only: no models load, and the run still goes through every storage.
        result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("source_documents")])
    assert result.success
    # Another instance, from the same file, reads it back from PostgreSQL.
    with dg.DagsterInstance.from_config(str(home)) as again:
        run = again.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == INGEST_JOB
        event = again.get_latest_materialization_event(dg.AssetKey("source_documents"))
        assert event is not None and event.run_id == result.run_id
        assert event.asset_materialization is not None
        assert event.asset_materialization.metadata["new"].value == 12
    with psycopg.connect(dagster_pg.dsn(db)) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone() == (
            1,
        )
        events = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,)
        ).fetchone()
        assert events is not None and events[0] > 5
    # Nothing fell back to SQLite files beside the config.
    assert not list(home.rglob("*.db"))


def test_a_plain_postgresql_scheme_breaks_the_event_log(
    tmp_path: Path, dagster_pg: TcpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (DEPLOY / "dagster.yaml").read_text()
    assert "scheme: postgresql+psycopg2" in text
    home, _ = _home(
        tmp_path, dagster_pg, monkeypatch, text.replace("scheme: postgresql+psycopg2", "scheme: postgresql")
    )

    @dg.op
    def one() -> int:
        return 1

    @dg.job
    def tiny() -> None:
        one()

    with dg.DagsterInstance.from_config(str(home)) as instance, pytest.raises(Exception, match=r"NOTIFY"):
        tiny.execute_in_process(instance=instance)


def test_the_workspace_passes_dagsters_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.workspace.config_schema import process_workspace_config

    monkeypatch.setenv("GROUNDWORK_CODE_SERVER_HOST", "groundwork-code.internal")
    config = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert process_workspace_config(config).success
    config["load_from"][0]["grpc_server"]["prot"] = 4000
    assert not process_workspace_config(config).success


def _k8s_job() -> dg.JobDefinition:
    config = load_config(DEPLOY / "groundwork.yaml")
    assert config.orchestration.executor == "k8s"
    return build_definitions(DEPLOY / "groundwork.yaml", config).resolve_job_def(INGEST_JOB)


def test_the_k8s_run_config_passes_the_ingest_jobs_schema() -> None:
    job = _k8s_job()
    assert job.executor_def.name == "k8s"
    steps = {
        n
        for n in job.graph.node_dict
        if not n.endswith(
            ("_chunks_are_governed", "_failures_within_limit", "_after_redaction", "_as_policy_says")
        )
    }
    assert steps == {"source_documents", "index_uk", "index_eu"}
    run_config = yaml.safe_load((DEPLOY / "k8s" / "ingest_run_config.yaml").read_text())
    validated = dg.validate_run_config(job, run_config)["execution"]["k8s"]
    assert validated["step_k8s_config"]["container_config"]["resources"]["limits"]["memory"] == "4Gi"
    # max_concurrent comes from the Groundwork config unless the run config sets it.
    assert validated["max_concurrent"] == 2
    override = {"execution": {"config": {**run_config["execution"]["config"], "max_concurrent": 1}}}
    assert dg.validate_run_config(job, override)["execution"]["k8s"]["max_concurrent"] == 1
    config = load_config(DEPLOY / "groundwork.yaml")
    one = config.model_copy(update={"orchestration": OrchestrationConfig(executor="k8s", max_concurrent=1)})
    job_of_one = build_definitions(DEPLOY / "groundwork.yaml", one).resolve_job_def(INGEST_JOB)
    assert dg.validate_run_config(job_of_one, run_config)["execution"]["k8s"]["max_concurrent"] == 1
    typo = yaml.safe_load((DEPLOY / "k8s" / "ingest_run_config.yaml").read_text())
    typo["execution"]["config"]["step_k8s_config"]["container_cofig"] = typo["execution"]["config"][
        "step_k8s_config"
    ].pop("container_config")
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, typo)


def _helm_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The parts of the instance config the chart renders from ``values`` that this example sets."""
    pg = values["postgresql"]
    return {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    "params": pg["postgresqlParams"],
                    "scheme": pg["postgresqlScheme"],
                }
            }
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": values["dagsterDaemon"]["runCoordinator"]["type"],
            "config": values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"],
        },
        **values["additionalInstanceConfig"],
        "telemetry": values["telemetry"],
    }


def test_the_helm_values_agree_with_the_instance_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.config import dagster_instance_config

    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    rendered = _helm_instance(values)
    assert rendered["concurrency"] == instance["concurrency"]
    assert rendered["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    # Limits in both places are refused by Dagster: the values keep them in `concurrency` only.
    both = {
        **rendered,
        "run_coordinator": {**rendered["run_coordinator"], "config": {"max_concurrent_runs": 4}},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(both))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))
    # The code location is ours, every run and step pod mounts the shared storage where the plan passes.
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert mounts["dagster-storage"] == "/opt/dagster/dagster_home/storage"
    assert deployment["env"]["GROUNDWORK_CONFIG"] == mounts["groundwork-config"] + "/groundwork.yaml"


def _makefile_installs() -> list[str]:
    text = (PROJECT / "Makefile").read_text()
    return re.findall(r"\$\(BIN\)/pip install --quiet (.+)", text)


def test_the_image_installs_like_the_makefile_and_runs_offline() -> None:
    docker = (DEPLOY / "Dockerfile").read_text()
    installs = re.findall(r"pip install --no-cache-dir (.+?)(?: \\|\n)", docker)
    make = _makefile_installs()
    assert len(installs) == len(make) == 4
    # torch first, pinned to the same version, from the CPU wheels.
    assert installs[0].startswith(make[0]) and "download.pytorch.org/whl/cpu" in installs[0]
    # The project (deploy extra instead of dev) and the spaCy shim, under the constraints.
    assert installs[1].replace('".[deploy]"', '-e ".[dev]"') == make[1]
    # The two packages whose pins conflict, without their dependencies, at the Makefile's versions.
    assert installs[2:] == make[2:]
    for switch in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "DO_NOT_TRACK=true"):
        assert switch in docker
    # The instance config and the code location the image serves are the ones tested above.
    assert '"-m", "orchestration.definitions"' in docker
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in docker
