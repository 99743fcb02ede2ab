"""A retrieval server reads as the reader role only, runs no DDL, and refuses to start when it could
not serve safely: a missing or outdated schema, or a role that row-level security would not bind."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from cli.main import main
from groundwork.enums import Role
from groundwork.errors import SchemaError
from groundwork.settings import load_config
from indexes.catalog import IndexCatalog
from indexes.embedded import EmbeddedServer
from indexes.schema import SCHEMA_VERSION
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from serving.retrieval import build_retriever
from tests.conftest import copy_demo, demo_config_on, new_database, write_config


def _config(folder: Path, database: dict[str, object]) -> Path:
    path = copy_demo(folder)
    data = yaml.safe_load(path.read_text())
    data["database"] = database
    return write_config(path, data)


def _has_schema(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.index_meta",)).fetchone()
    return row is not None and row[0] is not None


def test_serve_refuses_a_missing_schema_and_creates_nothing(
    tmp_path: Path, pg_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_database(pg_server)
    path = _config(tmp_path, {"url": url})
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "groundwork migrate" in err
    assert not _has_schema(url, "groundwork_uk") and not _has_schema(url, "groundwork_eu")


def test_serve_refuses_an_outdated_schema_until_migrate_brings_it_up_to_date(
    tmp_path: Path, pg_server: EmbeddedServer, redactor: Redactor, embedder: Embedder
) -> None:
    config = demo_config_on(copy_demo(tmp_path), new_database(pg_server))
    with Services(config, redactor=redactor, embedder=embedder) as services:
        run_all(services)
        uk = services.targets["uk"]
        documents = services.index("uk").counts().documents
    # Put the UK index back into the layout of schema version 2.
    with psycopg.connect(uk.owner_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {uk.schema}.documents DROP COLUMN fingerprint")
        conn.execute(f"DROP TRIGGER retrieval_audit_no_truncate ON {uk.schema}.retrieval_audit")
        conn.execute(f"UPDATE {uk.schema}.index_meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="version 2, this Groundwork needs version"):
        build_retriever(config, embedder=embedder, redactor=redactor, verify=True)

    assert main(["migrate", "--config", str(tmp_path / "groundwork.yaml")]) == 0
    with psycopg.connect(uk.owner_dsn) as conn:
        meta = dict(conn.execute(f"SELECT key, value FROM {uk.schema}.index_meta").fetchall())
        assert meta["schema_version"] == SCHEMA_VERSION
        assert conn.execute(f"SELECT count(*) FROM {uk.schema}.documents").fetchone() == (documents,)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"TRUNCATE {uk.schema}.retrieval_audit")
    with build_retriever(config, embedder=embedder, redactor=redactor, verify=True) as retriever:
        assert retriever.search(config.principal("alice"), "salary bands", 3).results
    # Stored documents kept their versions through the migration: nothing is embedded again.
    with Services(config, redactor=redactor, embedder=embedder) as services:
        plan, reports = run_all(services)
    assert not plan.tasks and sum(r.documents_written for r in reports) == 0


def test_serve_refuses_a_role_that_bypasses_row_level_security(
    ingested_demo: Services, tmp_path: Path, redactor: Redactor, embedder: Embedder
) -> None:
    uk = ingested_demo.targets["uk"]
    # The owner itself (a superuser in the embedded server) as the serving role.
    config = ingested_demo.config.model_copy(
        update={
            "database": ingested_demo.config.database.model_copy(
                update={"reader_urls": {r: SecretStr(t.owner_dsn) for r, t in ingested_demo.targets.items()}}
            )
        }
    )
    with pytest.raises(SchemaError, match="superuser or has BYPASSRLS"):
        IndexCatalog(config, role=Role.READER).verify_reader()
    # The same where the API appends its audit and ledger rows (a replica's primary).
    audit_as_owner = ingested_demo.config.model_copy(
        update={
            "database": ingested_demo.config.database.model_copy(
                update={"audit_urls": {"uk": SecretStr(uk.owner_dsn)}}
            )
        }
    )
    with pytest.raises(SchemaError, match="superuser or has BYPASSRLS"):
        IndexCatalog(audit_as_owner, role=Role.READER).verify_reader()
    # A plain role that may bypass row-level security.
    with psycopg.connect(uk.owner_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS sneaky_reader")
        conn.execute("CREATE ROLE sneaky_reader LOGIN NOSUPERUSER BYPASSRLS")
    bypassing = ingested_demo.config.model_copy(
        update={"database": ingested_demo.config.database.model_copy(update={"reader_role": "sneaky_reader"})}
    )
    with pytest.raises(SchemaError, match="BYPASSRLS"):
        build_retriever(bypassing, embedder=embedder, redactor=redactor, verify=True)


def test_a_server_with_only_the_readers_url_serves(
    ingested_demo: Services, tmp_path: Path, redactor: Redactor, embedder: Embedder
) -> None:
    data = {
        "sources": [
            s.model_dump(mode="json", exclude={"settings"}) | {"path": "x"}
            for s in ingested_demo.config.sources
        ],
        "principals": [p.model_dump(mode="json") for p in ingested_demo.config.principals],
        "database": {
            "reader_url": ingested_demo.targets["uk"].reader_dsn
        },  # one database, a schema per region
    }
    config = load_config(write_config(tmp_path / "reader-only.yaml", data))
    assert config.database.url is None and not config.database.urls
    with build_retriever(config, embedder=embedder, redactor=redactor, verify=True) as retriever:
        out = retriever.search(config.principal("alice"), "How many days of annual leave do I get?", 3)
        assert out.results
        targets = retriever.catalog.targets
        assert all(t.dsn is None for t in targets.values())  # it never held the owner's credentials
    with pytest.raises(Exception, match="no database URL for the owner role"):
        Services(config).migrate()
