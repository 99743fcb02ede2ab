"""Each deployment records its runs in its own Dagster instance: two configs ingested from one
checkout (no ``DAGSTER_HOME`` set) never see each other's runs or materializations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from groundwork.settings import load_config
from indexes.embedded import EmbeddedServer
from orchestration.runner import INSTANCE_TEMPLATE, dagster_home, prepare_dagster_home, run_ingest
from tests.conftest import new_database, write_config


def _deployment(folder: Path, database_url: str, files: dict[str, str]) -> Path:
    (folder / "docs").mkdir(parents=True)
    for name, text in files.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    return write_config(
        folder / "groundwork.yaml",
        {
            "database": {"url": database_url},
            "sources": [
                {
                    "name": "notes",
                    "connector": "filesystem",
                    "path": "docs",
                    "residency": "eu",
                    "contract": "none",
                    "access": ["public"],
                }
            ],
            "principals": [{"name": "reader", "api_key_sha256": "a" * 64, "regions": ["eu"]}],
        },
    )


def test_two_configs_record_their_runs_in_their_own_instances(
    tmp_path: Path, pg_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    one = _deployment(tmp_path / "one", new_database(pg_server), {"a.txt": "The canteen opens at eight."})
    two = _deployment(
        tmp_path / "two",
        new_database(pg_server),
        {"b.txt": "Parking permits are renewed in March.", "c.txt": "The library closes at six."},
    )
    configs = {path: load_config(path) for path in (one, two)}
    homes = {path: dagster_home(config) for path, config in configs.items()}
    assert homes[one] == (tmp_path / "one" / ".groundwork" / "dagster").resolve()
    assert homes[one] != homes[two]
    for path, config in configs.items():
        assert run_ingest(path, config).success
    written = {}
    for path, home in homes.items():
        assert (home / "dagster.yaml").read_text() == INSTANCE_TEMPLATE.read_text()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            assert len(runs) == 1  # its own run only
            event = instance.get_latest_materialization_event(dg.AssetKey(["index", "eu"]))
            assert event is not None and event.run_id == runs[0].run_id
            written[path] = event.asset_materialization.metadata["documents_written"].value  # type: ignore[union-attr]
        # Each document's lineage names the Dagster run that wrote it, in this deployment's instance.
        with psycopg.connect(str(configs[path].database.url.get_secret_value())) as conn:  # type: ignore[union-attr]
            run_ids = {r[0] for r in conn.execute("SELECT run_id FROM groundwork_eu.documents")}
        assert run_ids == {runs[0].run_id}
    assert written == {one: 1, two: 2}


def test_dagster_home_names_the_instance_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = write_config(
        tmp_path / "groundwork.yaml",
        yaml.safe_load((Path(__file__).parents[2] / "examples" / "demo" / "groundwork.yaml").read_text()),
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    config = load_config(config_path)
    home = prepare_dagster_home(config)
    assert home == (tmp_path / "elsewhere").resolve()
    assert (home / "dagster.yaml").is_file()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # an operator's own settings
    assert prepare_dagster_home(config) == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"  # kept, not overwritten
