"""Shared fixtures: a real embedded PostgreSQL + pgvector server and the real models, loaded once."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from groundwork.offline import configure_offline
from groundwork.settings import EmbeddingConfig, GroundworkConfig, RedactionConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.search import Retriever
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from serving.retrieval import build_retriever

configure_offline()

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "examples" / "demo"

#: Demo keys: the demo config stores only their SHA-256.
ALICE_KEY = "demo-key-alice"
BOB_KEY = "demo-key-bob"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One embedded server for the test session, stopped at the end."""
    server = EmbeddedServer(tmp_path_factory.mktemp("pg") / "pgdata")
    server.start()
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        # Hundreds of databases are created and dropped here: recycle their WAL early, so the suite's
        # disk use stays near what its live databases hold (the default lets WAL grow to 1 GB).
        conn.execute("ALTER SYSTEM SET max_wal_size = '128MB'")
        conn.execute("ALTER SYSTEM SET min_wal_size = '32MB'")
        conn.execute("SELECT pg_reload_conf()")
    yield server
    server.stop()


#: Every database :func:`new_database` made, in order: what :func:`_drop_test_databases` drops.
_made: list[tuple[EmbeddedServer, str]] = []


def new_database(server: EmbeddedServer) -> str:
    """Create an empty database on ``server``; returns its DSN. One made during a test (in its body
    or a function-scoped fixture) is dropped when the test ends; one made by a module- or
    session-scoped fixture lives as long as that fixture."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _made.append((server, name))
    return server.dsn(name)


def drop_database(server: EmbeddedServer, dsn: str) -> None:
    """Drop the database of ``dsn`` (made by :func:`new_database`), closing its sessions first."""
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Drop the databases made while a test ran, when it ends (the suite's disk stays near what its
    live databases hold). Fixtures of a wider scope are set up before this one, so theirs are kept."""
    before = len(_made)
    yield
    made = _made[before:]
    del _made[before:]
    for server, name in made:
        # A test that stopped its own server leaves nothing to drop: its folder goes with the test's.
        with suppress(psycopg.OperationalError):
            drop_database(server, server.dsn(name))


@pytest.fixture
def database_url(pg_server: EmbeddedServer) -> str:
    """A new, empty database on the session server, dropped when the test ends by
    :func:`_drop_test_databases` (after fixtures built on it, such as ``demo_services``)."""
    return new_database(pg_server)


@pytest.fixture(scope="session")
def redactor() -> Redactor:
    """The real Presidio redactor, loaded once."""
    r = Redactor(RedactionConfig())
    r.redact("warm up")
    return r


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 embedder, loaded once."""
    e = Embedder(EmbeddingConfig())
    e.embed(["warm up"])
    return e


def copy_demo(folder: Path) -> Path:
    """Copy the demo config and corpus into ``folder``; returns the config path."""
    shutil.copytree(DEMO / "corpus", folder / "corpus")
    shutil.copy(DEMO / "groundwork.yaml", folder / "groundwork.yaml")
    return folder / "groundwork.yaml"


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A private copy of the demo config and corpus; returns the config path."""
    return copy_demo(tmp_path)


def write_config(path: Path, data: dict[str, object]) -> Path:
    """Write a config dict as YAML."""
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def demo_config_on(config_path: Path, database_url: str) -> GroundworkConfig:
    """The demo config at ``config_path``, pointed at ``database_url``."""
    data = yaml.safe_load(config_path.read_text())
    data["database"] = {"url": database_url}
    write_config(config_path, data)
    return load_config(config_path)


@pytest.fixture
def demo_services(
    demo_copy: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> Iterator[Services]:
    """Services for the demo config on a fresh, migrated database, sharing the session's models."""
    services = Services(demo_config_on(demo_copy, database_url), redactor=redactor, embedder=embedder)
    services.migrate()
    yield services
    services.close()


@pytest.fixture(scope="session")
def ingested_demo(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server: EmbeddedServer,
    redactor: Redactor,
    embedder: Embedder,
) -> Iterator[Services]:
    """The demo corpus ingested once for read-only tests (do not modify it)."""
    from orchestration.local import run_all

    config = demo_config_on(copy_demo(tmp_path_factory.mktemp("demo")), new_database(pg_server))
    services = Services(config, redactor=redactor, embedder=embedder)
    run_all(services)
    yield services
    services.close()


def make_reader(config: GroundworkConfig, redactor: Redactor, embedder: Embedder) -> Retriever:
    """A retriever as the reader role, sharing the session's models: what the retrieval API uses."""
    return build_retriever(config, embedder=embedder, redactor=redactor)


@pytest.fixture(scope="session")
def demo_reader(ingested_demo: Services, redactor: Redactor, embedder: Embedder) -> Iterator[Retriever]:
    """The retriever on the ingested demo index."""
    with make_reader(ingested_demo.config, redactor, embedder) as retriever:
        yield retriever


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
